//! The Kinesis Data Streams API driven by the stock AWS SDK for Rust (`aws-sdk-kinesis`) over
//! plain HTTP against an in-process broker, plus raw HTTP for malformed input, and
//! cross-protocol checks with librdkafka.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode,
    StreamModeDetails,
};
use aws_sdk_kinesis::Client;
use common::TestBroker;
use md5::{Digest, Md5};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client_for(addr: std::net::SocketAddr, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

fn kinesis_addr(b: &TestBroker) -> std::net::SocketAddr {
    b.broker
        .as_ref()
        .and_then(|b| b.kinesis_addr())
        .expect("kinesis listener bound")
}

fn client(b: &TestBroker) -> Client {
    client_for(kinesis_addr(b), "AKIDTEST", "secret")
}

/// The AWS error code of an SDK error (`ResourceNotFoundException`, ...).
fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    e.code().unwrap_or("<none>").to_string()
}

fn md5_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

async fn create(c: &Client, name: &str, shards: i32) -> TestResult {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await?;
    Ok(())
}

/// (shard id, start, end) of every shard.
async fn ranges(
    c: &Client,
    name: &str,
) -> Result<Vec<(String, u128, u128)>, Box<dyn std::error::Error>> {
    let out = c.list_shards().stream_name(name).send().await?;
    Ok(out
        .shards()
        .iter()
        .map(|s| {
            let r = s.hash_key_range().expect("range");
            (
                s.shard_id().to_string(),
                r.starting_hash_key().parse().expect("start"),
                r.ending_hash_key().parse().expect("end"),
            )
        })
        .collect())
}

async fn iterator(
    c: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> Result<String, Box<dyn std::error::Error>> {
    Ok(c.get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await?
        .shard_iterator()
        .expect("iterator")
        .to_string())
}

/// Reads a shard from `it` until an empty answer; returns (partition key, data) pairs.
async fn drain(
    c: &Client,
    mut it: String,
) -> Result<Vec<(String, Vec<u8>, String)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let r = c.get_records().shard_iterator(&it).send().await?;
        if r.records().is_empty() {
            break;
        }
        for rec in r.records() {
            out.push((
                rec.partition_key().unwrap_or_default().to_string(),
                rec.data().as_ref().to_vec(),
                rec.sequence_number().to_string(),
            ));
        }
        match r.next_shard_iterator() {
            Some(n) => it = n.to_string(),
            None => break,
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle_describe_list_and_delete() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "orders", 3).await?;
    let d = c.describe_stream().stream_name("orders").send().await?;
    let desc = d.stream_description().expect("description");
    assert_eq!(desc.stream_name(), "orders");
    assert_eq!(desc.stream_status().as_str(), "ACTIVE");
    assert_eq!(desc.retention_period_hours(), 24);
    assert_eq!(
        desc.stream_arn(),
        "arn:aws:kinesis:eu-west-1:000000000000:stream/orders"
    );
    assert_eq!(desc.shards().len(), 3);
    assert!(!desc.has_more_shards());
    let r = ranges(&c, "orders").await?;
    assert_eq!(r[0].0, "shardId-000000000000");
    assert_eq!(r[0].1, 0);
    assert_eq!(r[2].2, u128::MAX);
    assert_eq!(r[0].2 + 1, r[1].1);
    assert_eq!(r[1].2 + 1, r[2].1);

    // Shard paging in DescribeStream and ListShards.
    let page = c
        .describe_stream()
        .stream_name("orders")
        .limit(2)
        .send()
        .await?;
    let page = page.stream_description().expect("description");
    assert_eq!(page.shards().len(), 2);
    assert!(page.has_more_shards());
    let rest = c
        .describe_stream()
        .stream_name("orders")
        .exclusive_start_shard_id("shardId-000000000001")
        .send()
        .await?;
    let rest = rest.stream_description().expect("description");
    assert_eq!(rest.shards().len(), 1);
    assert_eq!(rest.shards()[0].shard_id(), "shardId-000000000002");
    let first = c
        .list_shards()
        .stream_name("orders")
        .max_results(2)
        .send()
        .await?;
    assert_eq!(first.shards().len(), 2);
    let token = first.next_token().expect("next token").to_string();
    let second = c.list_shards().next_token(token).send().await?;
    assert_eq!(second.shards().len(), 1);
    assert!(second.next_token().is_none());
    let latest = c
        .list_shards()
        .stream_name("orders")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000000")
                .build()?,
        )
        .send()
        .await?;
    assert_eq!(latest.shards().len(), 2);

    let s = c
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await?;
    let s = s.stream_description_summary().expect("summary");
    assert_eq!(s.open_shard_count(), 3);

    // On-demand streams get 4 shards.
    c.create_stream()
        .stream_name("auto")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()?,
        )
        .send()
        .await?;
    let s = c
        .describe_stream_summary()
        .stream_name("auto")
        .send()
        .await?;
    let s = s.stream_description_summary().expect("summary");
    assert_eq!(s.open_shard_count(), 4);
    assert_eq!(
        s.stream_mode_details().map(|m| m.stream_mode().as_str()),
        Some("ON_DEMAND")
    );

    // Stream paging.
    create(&c, "zeta", 1).await?;
    let l = c.list_streams().limit(2).send().await?;
    assert_eq!(l.stream_names(), ["auto", "orders"]);
    assert!(l.has_more_streams());
    assert_eq!(l.stream_summaries().len(), 2);
    let l2 = c
        .list_streams()
        .next_token(l.next_token().expect("token"))
        .send()
        .await?;
    assert_eq!(l2.stream_names(), ["zeta"]);
    assert!(!l2.has_more_streams());
    let l3 = c
        .list_streams()
        .exclusive_start_stream_name("auto")
        .send()
        .await?;
    assert_eq!(l3.stream_names(), ["orders", "zeta"]);

    // Errors.
    let e = c
        .create_stream()
        .stream_name("orders")
        .shard_count(1)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(code(&e), "ResourceInUseException");
    let e = c
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&e), "ResourceNotFoundException");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    let e = c
        .create_stream()
        .stream_name("bad name")
        .shard_count(1)
        .send()
        .await
        .expect_err("name");
    assert_eq!(code(&e), "ValidationException");
    let e = c
        .create_stream()
        .stream_name("huge")
        .shard_count(100_000)
        .send()
        .await
        .expect_err("limit");
    assert_eq!(code(&e), "LimitExceededException");
    let limits = c.describe_limits().send().await?;
    assert_eq!(limits.shard_limit(), 500);
    assert_eq!(limits.open_shard_count(), 8);

    c.delete_stream().stream_name("orders").send().await?;
    let e = c
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&e), "ResourceNotFoundException");
    let l = c.list_streams().send().await?;
    assert_eq!(l.stream_names(), ["auto", "zeta"]);
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_with_every_iterator_type() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "events", 4).await?;
    let shards = ranges(&c, "events").await?;
    let shard_of = |hash: u128| {
        shards
            .iter()
            .find(|(_, s, e)| *s <= hash && hash <= *e)
            .map(|x| x.0.clone())
            .expect("a shard owns every hash")
    };

    // PutRecord: the shard is the one whose range holds MD5(key); sequence numbers grow.
    let mut seqs = Vec::new();
    for i in 0..20 {
        let key = format!("user-{}", i % 5);
        let r = c
            .put_record()
            .stream_name("events")
            .partition_key(&key)
            .data(Blob::new(format!("event-{i}")))
            .send()
            .await?;
        assert_eq!(r.shard_id(), shard_of(md5_hash(&key)), "key {key}");
        seqs.push((r.shard_id().to_string(), r.sequence_number().to_string()));
    }
    for w in seqs.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(w[0].1.parse::<u128>()? < w[1].1.parse::<u128>()?);
        }
    }

    // PutRecords with explicit hash keys: one record per shard, by range.
    let entries: Vec<PutRecordsRequestEntry> = shards
        .iter()
        .map(|(_, start, _)| {
            PutRecordsRequestEntry::builder()
                .partition_key("any")
                .explicit_hash_key(start.to_string())
                .data(Blob::new(format!("explicit-{start}")))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let out = c
        .put_records()
        .stream_name("events")
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(out.failed_record_count(), Some(0));
    for (res, (id, _, _)) in out.records().iter().zip(&shards) {
        assert_eq!(res.shard_id(), Some(id.as_str()));
    }

    // TRIM_HORIZON on every shard returns all 24 records, each on its own shard.
    let mut total = 0;
    for (id, _, _) in &shards {
        let it = iterator(&c, "events", id, ShardIteratorType::TrimHorizon).await?;
        let recs = drain(&c, it).await?;
        for (key, data, _) in &recs {
            if key != "any" {
                assert_eq!(&shard_of(md5_hash(key)), id);
            } else {
                assert!(String::from_utf8_lossy(data).starts_with("explicit-"));
            }
        }
        total += recs.len();
    }
    assert_eq!(total, 24);

    // Everything on one shard from here on: explicit hash key 0 → shard 0.
    let shard0 = shards[0].0.clone();
    let put0 = |data: &'static str| {
        c.put_record()
            .stream_name("events")
            .partition_key("k0")
            .explicit_hash_key("0")
            .data(Blob::new(data))
            .send()
    };
    let latest = iterator(&c, "events", &shard0, ShardIteratorType::Latest).await?;
    let r = c.get_records().shard_iterator(&latest).send().await?;
    assert!(r.records().is_empty());
    assert_eq!(r.millis_behind_latest(), Some(0));
    let after_latest = r.next_shard_iterator().expect("open shard").to_string();
    let a = put0("a").await?;
    let before_b = DateTime::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _b = put0("b").await?;
    let _c2 = put0("c").await?;
    let got = drain(&c, after_latest).await?;
    assert_eq!(
        got.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );

    let at = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(&shard0)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(a.sequence_number())
        .send()
        .await?;
    let got = drain(&c, at.shard_iterator().expect("it").to_string()).await?;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].2, a.sequence_number());
    let after = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(&shard0)
        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
        .starting_sequence_number(a.sequence_number())
        .send()
        .await?;
    let got = drain(&c, after.shard_iterator().expect("it").to_string()).await?;
    assert_eq!(
        got.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        [b"b".to_vec(), b"c".to_vec()]
    );
    let ts = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(&shard0)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(before_b)
        .send()
        .await?;
    let got = drain(&c, ts.shard_iterator().expect("it").to_string()).await?;
    assert_eq!(
        got.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        [b"b".to_vec(), b"c".to_vec()]
    );

    // Limit and NextShardIterator paging; MillisBehindLatest while behind.
    let it = iterator(&c, "events", &shard0, ShardIteratorType::TrimHorizon).await?;
    let r = c.get_records().shard_iterator(&it).limit(1).send().await?;
    assert_eq!(r.records().len(), 1);
    assert!(r.millis_behind_latest().unwrap_or(0) >= 0);
    let r2 = c
        .get_records()
        .shard_iterator(r.next_shard_iterator().expect("next"))
        .limit(1)
        .send()
        .await?;
    assert_eq!(r2.records().len(), 1);
    assert!(
        r2.records()[0].sequence_number().parse::<u128>()?
            > r.records()[0].sequence_number().parse::<u128>()?
    );
    let stamp = r2.records()[0]
        .approximate_arrival_timestamp()
        .expect("timestamp");
    assert!(stamp.secs() > 1_600_000_000);

    // Sequence number of another shard, or of nothing at all.
    let e = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(&shards[1].0)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(a.sequence_number())
        .send()
        .await
        .expect_err("wrong shard");
    assert_eq!(code(&e), "InvalidArgumentException");
    let e = iterator(
        &c,
        "events",
        "shardId-000000000009",
        ShardIteratorType::Latest,
    )
    .await
    .expect_err("no shard");
    assert!(
        e.to_string().contains("ResourceNotFound")
            || format!("{e:?}").contains("ResourceNotFoundException")
    );
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_answers_aws_exceptions() -> TestResult {
    let b = TestBroker::start_with(&[("kinesis.shard.iterator.ttl.ms", "300")]).await;
    let c = client(&b);
    create(&c, "s", 1).await?;
    let e = c
        .put_record()
        .stream_name("missing")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("no stream");
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = c
        .get_records()
        .shard_iterator("AAAA")
        .send()
        .await
        .expect_err("bad iterator");
    assert_eq!(code(&e), "InvalidArgumentException");
    // Expired iterator (ttl 300 ms here).
    let it = iterator(
        &c,
        "s",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = c
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("expired");
    assert_eq!(code(&e), "ExpiredIteratorException");
    // 1 MiB + 1 byte of data.
    let e = c
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .data(Blob::new(vec![0u8; (1 << 20) + 1]))
        .send()
        .await
        .expect_err("too large");
    assert_eq!(code(&e), "ValidationException");
    // 501 records.
    let entries: Vec<PutRecordsRequestEntry> = (0..501)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(Blob::new("x"))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let e = c
        .put_records()
        .stream_name("s")
        .set_records(Some(entries))
        .send()
        .await
        .expect_err("501");
    assert_eq!(code(&e), "ValidationException");
    // Explicit hash key out of range.
    let e = c
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("hash key");
    assert_eq!(code(&e), "InvalidArgumentException");
    let e = c
        .increase_stream_retention_period()
        .stream_name("s")
        .retention_period_hours(10)
        .send()
        .await
        .expect_err("too short");
    assert_eq!(code(&e), "InvalidArgumentException");

    // Raw HTTP: malformed JSON, unknown target, missing target.
    let addr = kinesis_addr(&b);
    let (status, body) = raw_post(addr, "Kinesis_20131202.ListStreams", "{not json").await?;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");
    let (status, body) = raw_post(addr, "Kinesis_20131202.FlyToTheMoon", "{}").await?;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    let (status, body) = raw_post(addr, "DynamoDB_20120810.ListTables", "{}").await?;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    let (status, body) = raw_post(addr, "Kinesis_20131202.ListStreams", "").await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"StreamNames\":[\"s\"]"), "{body}");
    b.stop().await;
    Ok(())
}

/// POSTs a JSON body over HTTP/1.1 and answers (status, body).
async fn raw_post(
    addr: std::net::SocketAddr,
    target: &str,
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await??;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(
        text.to_ascii_lowercase().contains("x-amzn-requestid"),
        "{text}"
    );
    let status = text.split(' ').nth(1).unwrap_or("0").parse()?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_is_verified_when_required() -> TestResult {
    let b = TestBroker::start_with(&[
        ("kinesis.auth", "sigv4"),
        (
            "kinesis.credentials",
            "AKIDALICE:alice-secret:alice,AKIDBOB:bob-secret",
        ),
    ])
    .await;
    let addr = kinesis_addr(&b);
    let good = client_for(addr, "AKIDALICE", "alice-secret");
    create(&good, "signed", 1).await?;
    good.put_record()
        .stream_name("signed")
        .partition_key("k")
        .data(Blob::new("v"))
        .send()
        .await?;
    client_for(addr, "AKIDBOB", "bob-secret")
        .list_streams()
        .send()
        .await?;
    let e = client_for(addr, "AKIDALICE", "wrong")
        .list_streams()
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(code(&e), "InvalidSignatureException");
    let e = client_for(addr, "AKIDNOBODY", "x")
        .list_streams()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(code(&e), "UnrecognizedClientException");
    let (status, body) = raw_post(addr, "Kinesis_20131202.ListStreams", "{}").await?;
    assert_eq!(status, 400);
    assert!(
        body.contains("MissingAuthenticationTokenException"),
        "{body}"
    );
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_retention_and_monitoring_survive_a_restart() -> TestResult {
    let mut b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "tagged", 2).await?;
    c.add_tags_to_stream()
        .stream_name("tagged")
        .tags("team", "data")
        .tags("env", "test")
        .send()
        .await?;
    c.remove_tags_from_stream()
        .stream_name("tagged")
        .tag_keys("env")
        .send()
        .await?;
    c.increase_stream_retention_period()
        .stream_name("tagged")
        .retention_period_hours(48)
        .send()
        .await?;
    let e = c
        .decrease_stream_retention_period()
        .stream_name("tagged")
        .retention_period_hours(72)
        .send()
        .await
        .expect_err("longer");
    assert_eq!(code(&e), "InvalidArgumentException");
    let m = c
        .enable_enhanced_monitoring()
        .stream_name("tagged")
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::IncomingBytes)
        .send()
        .await?;
    assert_eq!(m.desired_shard_level_metrics().len(), 1);
    let put = c
        .put_record()
        .stream_name("tagged")
        .partition_key("k")
        .data(Blob::new("kept"))
        .send()
        .await?;
    let it = iterator(&c, "tagged", put.shard_id(), ShardIteratorType::TrimHorizon).await?;

    b.restart().await;
    let c = client(&b);
    let tags = c
        .list_tags_for_stream()
        .stream_name("tagged")
        .send()
        .await?;
    let pairs: Vec<(String, String)> = tags
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(pairs, [("team".to_string(), "data".to_string())]);
    let d = c
        .describe_stream_summary()
        .stream_name("tagged")
        .send()
        .await?;
    let d = d.stream_description_summary().expect("summary");
    assert_eq!(d.retention_period_hours(), 48);
    let metrics = d
        .enhanced_monitoring()
        .first()
        .map(|m| m.shard_level_metrics().len());
    assert_eq!(metrics, Some(1));
    // An iterator issued before the restart still reads.
    let got = drain(&c, it).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"kept");
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_records_are_consumed_by_kafka_clients() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "bridge", 2).await?;
    let entries: Vec<PutRecordsRequestEntry> = (0..50)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(format!("value-{i}")))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let out = c
        .put_records()
        .stream_name("bridge")
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(out.failed_record_count(), Some(0));

    let consumer: StreamConsumer = common::consumer_config(&b.bootstrap()).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("bridge", 0, Offset::Beginning)?;
    tpl.add_partition_offset("bridge", 1, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 50 {
        let m = tokio::time::timeout(common::TIMEOUT, consumer.recv()).await??;
        let key = String::from_utf8(m.key().unwrap_or_default().to_vec())?;
        let value = String::from_utf8(m.payload().unwrap_or_default().to_vec())?;
        // The partition is the shard PutRecords answered.
        let i: usize = key.trim_start_matches("key-").parse()?;
        assert_eq!(
            out.records()[i].shard_id(),
            Some(format!("shardId-{:012}", m.partition()).as_str())
        );
        seen.insert(key, value);
    }
    assert_eq!(seen.get("key-7").map(String::as_str), Some("value-7"));
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_messages_are_read_by_get_records() -> TestResult {
    let b = TestBroker::start().await;
    for (topic, codec) in [
        ("from-kafka-gzip", "gzip"),
        ("from-kafka-zstd", "zstd"),
        ("from-kafka-plain", "none"),
    ] {
        let producer: FutureProducer = common::producer_config(&b.bootstrap(), "all")
            .set("compression.type", codec)
            .set("linger.ms", "20")
            .create()?;
        let mut sends = Vec::new();
        for i in 0..30 {
            let key = format!("k{i}");
            let value = format!("kafka-{codec}-{i}");
            sends.push(
                producer
                    .send_result(
                        FutureRecord::to(topic)
                            .partition(0)
                            .key(&key)
                            .payload(&value),
                    )
                    .map_err(|_| "queue full")?,
            );
        }
        // One message without a key.
        sends.push(
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload("no key"),
                )
                .map_err(|_| "queue full")?,
        );
        for s in sends {
            s.await?.map_err(|(e, _)| e)?;
        }
        let c = client(&b);
        // A topic created by Kafka is a stream.
        let names = c.list_streams().send().await?;
        assert!(names.stream_names().iter().any(|n| n == topic));
        let it = iterator(
            &c,
            topic,
            "shardId-000000000000",
            ShardIteratorType::TrimHorizon,
        )
        .await?;
        let got = drain(&c, it).await?;
        assert_eq!(got.len(), 31, "{codec}");
        for (i, (key, data, _)) in got.iter().take(30).enumerate() {
            assert_eq!(key, &format!("k{i}"));
            assert_eq!(data, format!("kafka-{codec}-{i}").as_bytes());
        }
        assert_eq!(got[30].0, "kafka:null");
        assert_eq!(got[30].1, b"no key");
    }
    b.stop().await;
    Ok(())
}
