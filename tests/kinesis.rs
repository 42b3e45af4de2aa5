//! The Kinesis Data Streams API driven by the stock AWS SDK for Rust (`aws-sdk-kinesis`) over
//! plain HTTP against an in-process broker, plus raw HTTP for malformed input, and
//! cross-protocol checks with librdkafka.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode,
    StreamModeDetails,
};
use aws_sdk_kinesis::Client;
use common::kinesis::{client, client_for, code, create, iterator, kinesis_addr, TestResult};
use common::TestBroker;
use md5::{Digest, Md5};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A sequence number as something that orders as its number: AWS's are 56 decimal digits
/// (more than a u128 holds), so (length, digits).
fn seq_order(s: &str) -> (usize, &str) {
    assert_eq!(s.len(), 56, "sequence number {s} is not of AWS's length");
    assert!(s.bytes().all(|b| b.is_ascii_digit()), "{s}");
    (s.len(), s)
}

fn md5_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
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
            assert!(seq_order(&w[0].1) < seq_order(&w[1].1));
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
    // Timestamps are milliseconds: keep `a` and `b` apart from the time in between.
    tokio::time::sleep(Duration::from_millis(20)).await;
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
        seq_order(r2.records()[0].sequence_number()) > seq_order(r.records()[0].sequence_number())
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
    // Expired iterator (ttl 300 ms here): only time expires it, so the sleep is the test.
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
    // An empty JSON body is not `{}`: AWS answers SerializationException without a message.
    let (status, body) = raw_post(addr, "Kinesis_20131202.ListStreams", "").await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body, r#"{"__type":"SerializationException"}"#);
    // Type errors carry AWS's text under `Message`; constraint violations are listed together.
    let (status, body) = raw_post(addr, "Kinesis_20131202.ListStreams", r#"{"Limit":"5"}"#).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        r#"{"Message":"class java.lang.String can not be converted to an Integer","__type":"SerializationException"}"#
    );
    let (status, body) = raw_post(
        addr,
        "Kinesis_20131202.DescribeStream",
        r#"{"StreamName":"","Limit":0}"#,
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(
            "3 validation errors detected: Value '0' at 'limit' failed to satisfy constraint: \
             Member must have value greater than or equal to 1; Value '' at 'streamName'"
        ),
        "{body}"
    );
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
    // The secrets are not readable through Kafka's DescribeConfigs.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        common::consumer_config(&b.bootstrap()).create()?;
    let res = admin
        .describe_configs(
            &[rdkafka::admin::ResourceSpecifier::Broker(0)],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await?;
    let broker = res.into_iter().next().ok_or("no result")??;
    let creds = broker
        .entries
        .iter()
        .find(|e| e.name == "kinesis.credentials")
        .ok_or("kinesis.credentials listed")?;
    assert!(creds.is_sensitive);
    assert_eq!(creds.value, None);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_merge_and_update_shard_count() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "reshard", 1).await?;
    let key = "stable-key";
    let before = c
        .put_record()
        .stream_name("reshard")
        .partition_key(key)
        .data(Blob::new("old"))
        .send()
        .await?;
    assert_eq!(before.shard_id(), "shardId-000000000000");
    let half = (1u128 << 127).to_string();
    c.split_shard()
        .stream_name("reshard")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&half)
        .send()
        .await?;
    let shards = c.list_shards().stream_name("reshard").send().await?;
    let shards = shards.shards();
    assert_eq!(shards.len(), 3);
    let parent = &shards[0];
    let ending = parent
        .sequence_number_range()
        .and_then(|r| r.ending_sequence_number())
        .expect("parent closed");
    assert_eq!(ending, before.sequence_number());
    assert_eq!(shards[1].parent_shard_id(), Some("shardId-000000000000"));
    assert_eq!(
        shards[2].hash_key_range().map(|r| r.starting_hash_key()),
        Some(half.as_str())
    );
    let open = c
        .list_shards()
        .stream_name("reshard")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()?,
        )
        .send()
        .await?;
    assert_eq!(open.shards().len(), 2);

    // The same key now lands on the child whose range holds MD5(key).
    let after = c
        .put_record()
        .stream_name("reshard")
        .partition_key(key)
        .data(Blob::new("new"))
        .send()
        .await?;
    let expected = if md5_hash(key) < (1u128 << 127) {
        "shardId-000000000001"
    } else {
        "shardId-000000000002"
    };
    assert_eq!(after.shard_id(), expected);
    // Kafka sees the new partitions.
    let consumer: StreamConsumer = common::consumer_config(&b.bootstrap()).create()?;
    let md = consumer.fetch_metadata(Some("reshard"), common::TIMEOUT)?;
    assert_eq!(md.topics()[0].partitions().len(), 3);

    // The drained parent answers no next iterator, but its children.
    let it = iterator(
        &c,
        "reshard",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await?;
    let r = c.get_records().shard_iterator(&it).send().await?;
    assert_eq!(r.records().len(), 1);
    assert!(r.next_shard_iterator().is_none());
    assert_eq!(r.child_shards().len(), 2);
    let e = c
        .split_shard()
        .stream_name("reshard")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("5")
        .send()
        .await
        .expect_err("closed");
    assert_eq!(code(&e), "InvalidArgumentException");

    // Merge the two children back.
    c.merge_shards()
        .stream_name("reshard")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await?;
    let shards = c.list_shards().stream_name("reshard").send().await?;
    let merged = &shards.shards()[3];
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000002")
    );
    assert_eq!(
        merged
            .hash_key_range()
            .map(|r| r.ending_hash_key().to_string()),
        Some(u128::MAX.to_string())
    );

    // UpdateShardCount 1 → 2 → 3.
    let u = c
        .update_shard_count()
        .stream_name("reshard")
        .target_shard_count(2)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await?;
    assert_eq!(u.current_shard_count(), Some(1));
    assert_eq!(u.target_shard_count(), Some(2));
    c.update_shard_count()
        .stream_name("reshard")
        .target_shard_count(3)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await?;
    let s = c
        .describe_stream_summary()
        .stream_name("reshard")
        .send()
        .await?;
    assert_eq!(
        s.stream_description_summary().map(|s| s.open_shard_count()),
        Some(3)
    );
    let e = c
        .update_shard_count()
        .stream_name("reshard")
        .target_shard_count(7)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("more than double");
    assert_eq!(code(&e), "LimitExceededException");
    // Every record is still readable, and the open shards cover the whole space.
    let r = ranges(&c, "reshard").await?;
    assert_eq!(r.len(), 9);
    let mut total = 0;
    for (id, _, _) in &r {
        total += drain(
            &c,
            iterator(&c, "reshard", id, ShardIteratorType::TrimHorizon).await?,
        )
        .await?
        .len();
    }
    assert_eq!(total, 2);
    b.stop().await;
    Ok(())
}

/// POSTs `body` with a content type over HTTP/1.1; answers (status, body bytes).
async fn raw_bytes(
    addr: std::net::SocketAddr,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         X-Amz-Target: {target}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await??;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {content_type}")),
        "{head}"
    );
    let status = head.split(' ').nth(1).unwrap_or("0").parse()?;
    Ok((status, out[split + 4..].to_vec()))
}

fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("encodes");
    out
}

fn field<'a>(v: &'a ciborium::Value, name: &str) -> Option<&'a ciborium::Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbor_requests_as_the_java_sdk_sends_them() -> TestResult {
    use ciborium::Value;
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "cbor", 1).await?;
    let addr = kinesis_addr(&b);
    let ct = "application/x-amz-cbor-1.1";
    let text = |s: &str| Value::Text(s.to_string());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let put = Value::Map(vec![
        (text("StreamName"), text("cbor")),
        (text("PartitionKey"), text("k")),
        (text("Data"), Value::Bytes(vec![0, 1, 2, 255])),
    ]);
    let (status, body) = raw_bytes(addr, "Kinesis_20131202.PutRecord", ct, &cbor(&put)).await?;
    assert_eq!(status, 200);
    let out: Value = ciborium::from_reader(&body[..])?;
    assert_eq!(
        field(&out, "ShardId").and_then(Value::as_text),
        Some("shardId-000000000000")
    );

    // AT_TIMESTAMP with a tag-1 epoch-milliseconds timestamp, as the Java SDK writes it.
    let gsi = Value::Map(vec![
        (text("StreamName"), text("cbor")),
        (text("ShardId"), text("shardId-000000000000")),
        (text("ShardIteratorType"), text("AT_TIMESTAMP")),
        (
            text("Timestamp"),
            Value::Tag(1, Box::new(Value::Integer((now_ms - 60_000).into()))),
        ),
    ]);
    let (status, body) =
        raw_bytes(addr, "Kinesis_20131202.GetShardIterator", ct, &cbor(&gsi)).await?;
    assert_eq!(status, 200);
    let out: Value = ciborium::from_reader(&body[..])?;
    let it = field(&out, "ShardIterator")
        .and_then(Value::as_text)
        .ok_or("iterator")?
        .to_string();
    let gr = Value::Map(vec![(text("ShardIterator"), text(&it))]);
    let (status, body) = raw_bytes(addr, "Kinesis_20131202.GetRecords", ct, &cbor(&gr)).await?;
    assert_eq!(status, 200);
    let out: Value = ciborium::from_reader(&body[..])?;
    let records = field(&out, "Records")
        .and_then(Value::as_array)
        .ok_or("records")?;
    assert_eq!(records.len(), 1);
    assert_eq!(
        field(&records[0], "Data").and_then(Value::as_bytes),
        Some(&vec![0u8, 1, 2, 255])
    );
    match field(&records[0], "ApproximateArrivalTimestamp") {
        Some(Value::Tag(1, v)) => {
            let ms: i128 = v.as_integer().ok_or("integer")?.into();
            assert!((ms as i64 - now_ms).abs() < 60_000, "{ms}");
        }
        other => panic!("timestamp {other:?}"),
    }
    // Errors come back in CBOR too.
    let bad = Value::Map(vec![(text("ShardIterator"), text("AAAA"))]);
    let (status, body) = raw_bytes(addr, "Kinesis_20131202.GetRecords", ct, &cbor(&bad)).await?;
    assert_eq!(status, 400);
    let out: Value = ciborium::from_reader(&body[..])?;
    assert_eq!(
        field(&out, "__type").and_then(Value::as_text),
        Some("InvalidArgumentException")
    );
    let (status, _) = raw_bytes(addr, "Kinesis_20131202.ListStreams", ct, &[0xff, 0x00]).await?;
    assert_eq!(status, 400);
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_tls_is_served() -> TestResult {
    use http_body_util::{BodyExt, Full};
    let b = TestBroker::start().await;
    let addr = kinesis_addr(&b);
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{addr}/"))
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(bytes::Bytes::from_static(b"{}")))?;
    let resp = sender.send_request(req).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let body = resp.into_body().collect().await?.to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("StreamNames"));
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_limits_are_enforced_when_asked() -> TestResult {
    let b = TestBroker::start_with(&[("kinesis.enforce.limits", "true")]).await;
    let c = client(&b);
    create(&c, "limited", 2).await?;
    let batch =
        |n: usize, hash: &str| -> Result<Vec<PutRecordsRequestEntry>, Box<dyn std::error::Error>> {
            Ok((0..n)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("k{i}"))
                        .explicit_hash_key(hash)
                        .data(Blob::new(vec![7u8; 10]))
                        .build()
                })
                .collect::<Result<_, _>>()?)
        };
    // 1000 records/s per shard: two batches of 500 fit, the next 450 do not (on shard 0; they
    // would after 0.45 s of refill, which leaves room for a slow, loaded test machine), while
    // shard 1 still takes records.
    for _ in 0..2 {
        let out = c
            .put_records()
            .stream_name("limited")
            .set_records(Some(batch(500, "0")?))
            .send()
            .await?;
        assert_eq!(out.failed_record_count(), Some(0));
    }
    let mut entries = batch(450, "0")?;
    entries.extend(batch(1, &u128::MAX.to_string())?);
    let out = c
        .put_records()
        .stream_name("limited")
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(out.failed_record_count(), Some(450));
    assert_eq!(
        out.records()[0].error_code(),
        Some("ProvisionedThroughputExceededException")
    );
    assert_eq!(out.records()[450].shard_id(), Some("shardId-000000000001"));
    // 1 MiB/s per shard: one record of 1 000 000 bytes fits, a second one right after does not.
    let big = || {
        c.put_record()
            .stream_name("limited")
            .partition_key("k")
            .explicit_hash_key(u128::MAX.to_string())
            .data(Blob::new(vec![0u8; 1_000_000]))
            .send()
    };
    // On a loaded machine the second put may only arrive after the bucket refilled (about
    // 0.95 s for 1 000 000 bytes); then its success is correct and proves nothing, so it is
    // retried (bounded) until two puts land close enough together.
    let mut refused = false;
    for round in 0..5 {
        if round > 0 {
            // The limit is a rate: only time refills the bucket for the next try.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let first = std::time::Instant::now();
        big().await?;
        match big().await {
            Err(e) => {
                assert_eq!(code(&e), "ProvisionedThroughputExceededException");
                refused = true;
                break;
            }
            Ok(_) => assert!(
                first.elapsed() >= Duration::from_millis(900),
                "two 1 MB puts within {:?} were both accepted",
                first.elapsed()
            ),
        }
    }
    assert!(refused, "the second 1 MB put was never refused");
    // 5 GetRecords/s per shard.
    let it = iterator(
        &c,
        "limited",
        "shardId-000000000001",
        ShardIteratorType::Latest,
    )
    .await?;
    let mut throttled = false;
    for _ in 0..30 {
        match c.get_records().shard_iterator(&it).send().await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(code(&e), "ProvisionedThroughputExceededException");
                throttled = true;
                break;
            }
        }
    }
    assert!(throttled);
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_fan_out_pushes_records_put_after_subscribing() -> TestResult {
    use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEventStream};
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "fanout", 1).await?;
    let stream_arn = c
        .describe_stream_summary()
        .stream_name("fanout")
        .send()
        .await?
        .stream_description_summary()
        .map(|s| s.stream_arn().to_string())
        .ok_or("summary")?;
    let reg = c
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app")
        .send()
        .await?;
    let consumer = reg.consumer().ok_or("consumer")?;
    let consumer_arn = consumer.consumer_arn().to_string();
    assert!(consumer_arn.starts_with(&format!("{stream_arn}/consumer/app:")));
    let e = c
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app")
        .send()
        .await
        .expect_err("dup");
    assert_eq!(code(&e), "ResourceInUseException");
    let d = c
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await?;
    assert_eq!(
        d.consumer_description().map(|d| d.consumer_name()),
        Some("app")
    );
    let l = c
        .list_stream_consumers()
        .stream_arn(&stream_arn)
        .send()
        .await?;
    assert_eq!(l.consumers().len(), 1);
    let s = c
        .describe_stream_summary()
        .stream_name("fanout")
        .send()
        .await?;
    assert_eq!(
        s.stream_description_summary()
            .and_then(|s| s.consumer_count()),
        Some(1)
    );

    c.put_record()
        .stream_name("fanout")
        .partition_key("k")
        .data(Blob::new("before"))
        .send()
        .await?;
    let mut sub = c
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build()?,
        )
        .send()
        .await?;
    // A second subscription of the same consumer and shard is refused while the first lives.
    let e = c
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build()?,
        )
        .send()
        .await
        .expect_err("in use");
    assert_eq!(code(&e), "ResourceInUseException");

    let writer = client(&b);
    // The subscription above is established (LATEST resolved when it was accepted), so these
    // records are put after it started.
    let put = tokio::spawn(async move {
        for i in 0..5 {
            writer
                .put_record()
                .stream_name("fanout")
                .partition_key("k")
                .data(Blob::new(format!("pushed-{i}")))
                .send()
                .await
                .expect("put");
        }
    });
    let mut got = Vec::new();
    let mut continuation = String::new();
    while got.len() < 5 {
        let ev = tokio::time::timeout(common::TIMEOUT, sub.event_stream.recv())
            .await??
            .ok_or("stream ended")?;
        if let SubscribeToShardEventStream::SubscribeToShardEvent(ev) = ev {
            for r in ev.records() {
                got.push(String::from_utf8(r.data().as_ref().to_vec())?);
            }
            continuation = ev.continuation_sequence_number().to_string();
        }
    }
    put.await?;
    assert_eq!(
        got,
        ["pushed-0", "pushed-1", "pushed-2", "pushed-3", "pushed-4"]
    );
    drop(sub);
    // Resubscribing after the continuation point gives nothing new; a record put now arrives.
    // The broker notices the dropped subscription asynchronously: until then the consumer and
    // shard are still in use, so retry on ResourceInUseException.
    let from = StartingPosition::builder()
        .r#type(ShardIteratorType::AfterSequenceNumber)
        .sequence_number(&continuation)
        .build()?;
    let (c, arn) = (&c, &consumer_arn);
    let mut sub = common::eventually_async(
        "the dropped subscription's release",
        common::TIMEOUT,
        || {
            let from = from.clone();
            async move {
                let attempt = c
                    .subscribe_to_shard()
                    .consumer_arn(arn)
                    .shard_id("shardId-000000000000")
                    .starting_position(from)
                    .send()
                    .await;
                match attempt {
                    Ok(sub) => Ok(sub),
                    Err(e) if code(&e) == "ResourceInUseException" => Err(e),
                    Err(e) => panic!("resubscribe: {e:?}"),
                }
            }
        },
    )
    .await;
    c.put_record()
        .stream_name("fanout")
        .partition_key("k")
        .data(Blob::new("later"))
        .send()
        .await?;
    let mut next = Vec::new();
    while next.is_empty() {
        let ev = tokio::time::timeout(common::TIMEOUT, sub.event_stream.recv())
            .await??
            .ok_or("stream ended")?;
        if let SubscribeToShardEventStream::SubscribeToShardEvent(ev) = ev {
            next.extend(ev.records().iter().map(|r| r.data().as_ref().to_vec()));
        }
    }
    assert_eq!(next, [b"later".to_vec()]);
    drop(sub);

    let e = c
        .delete_stream()
        .stream_name("fanout")
        .send()
        .await
        .expect_err("has consumers");
    assert_eq!(code(&e), "ResourceInUseException");
    c.deregister_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await?;
    let e = c
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&e), "ResourceNotFoundException");
    c.delete_stream().stream_name("fanout").send().await?;
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_subscriptions() -> TestResult {
    use aws_sdk_kinesis::types::StartingPosition;
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "live", 1).await?;
    let arn = "arn:aws:kinesis:eu-west-1:000000000000:stream/live";
    let reg = c
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("app")
        .send()
        .await?;
    let consumer_arn = reg.consumer().ok_or("consumer")?.consumer_arn().to_string();
    let mut sub = c
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()?,
        )
        .send()
        .await?;
    let first = tokio::time::timeout(common::TIMEOUT, sub.event_stream.recv()).await??;
    assert!(first.is_some());
    let started = std::time::Instant::now();
    b.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The stream ends (or fails) rather than hanging.
    let end = tokio::time::timeout(common::TIMEOUT, async {
        while let Ok(Some(_)) = sub.event_stream.recv().await {}
    })
    .await;
    assert!(end.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_named_like_internal_topics_live_in_escaped_topics() -> TestResult {
    use rdkafka::consumer::CommitMode;
    let b = TestBroker::start().await;
    let c = client(&b);
    // AWS allows names starting with `__`: the stream lives in topic `kinesis.__orders`.
    create(&c, "__orders", 2).await?;
    let d = c.describe_stream().stream_name("__orders").send().await?;
    let desc = d.stream_description().ok_or("description")?;
    assert_eq!(desc.stream_name(), "__orders");
    assert_eq!(
        desc.stream_arn(),
        "arn:aws:kinesis:eu-west-1:000000000000:stream/__orders"
    );
    assert_eq!(desc.shards().len(), 2);
    let put = c
        .put_record()
        .stream_name("__orders")
        .partition_key("k")
        .data(Blob::new("hello"))
        .send()
        .await?;
    let it = iterator(
        &c,
        "__orders",
        put.shard_id(),
        ShardIteratorType::TrimHorizon,
    )
    .await?;
    let got = c.get_records().shard_iterator(&it).send().await?;
    assert_eq!(got.records().len(), 1);
    assert_eq!(got.records()[0].data().as_ref(), b"hello");
    assert_eq!(got.records()[0].sequence_number(), put.sequence_number());

    // Kafka clients see the stream as `kinesis.__orders`; committing creates __consumer_offsets.
    let ctx = b.context();
    let topic = ctx.catalog.get("kinesis.__orders").ok_or("escaped topic")?;
    assert_eq!(topic.partitions, 2);
    assert!(ctx.catalog.get("__orders").is_none());
    let partition: i32 = put.shard_id().trim_start_matches("shardId-").parse()?;
    let consumer: StreamConsumer = common::consumer_config(&b.bootstrap()).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("kinesis.__orders", partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let m = tokio::time::timeout(common::TIMEOUT, consumer.recv()).await??;
    assert_eq!(m.payload(), Some(&b"hello"[..]));
    assert_eq!(m.key(), Some(&b"k"[..]));
    consumer.commit_message(&m, CommitMode::Sync)?;
    assert!(ctx.catalog.get("__consumer_offsets").is_some());
    // A topic Kafka clients created under `__` is internal too.
    b.create_topic("__kafka_only", 1).await;

    // Only the stream is listed: not the internal topics, not the escaped topic's name.
    let names = c.list_streams().send().await?.stream_names().to_vec();
    assert_eq!(names, vec!["__orders".to_string()]);
    for internal in ["__consumer_offsets", "__kafka_only"] {
        let e = c
            .describe_stream()
            .stream_name(internal)
            .send()
            .await
            .expect_err("internal topics are no streams");
        assert_eq!(code(&e), "ResourceNotFoundException", "{internal}");
        let e = c
            .get_shard_iterator()
            .stream_name(internal)
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect_err("internal topics cannot be read");
        assert_eq!(code(&e), "ResourceNotFoundException", "{internal}");
        let e = c
            .put_record()
            .stream_name(internal)
            .partition_key("k")
            .data(Blob::new("x"))
            .send()
            .await
            .expect_err("internal topics cannot be written");
        assert_eq!(code(&e), "ResourceNotFoundException", "{internal}");
    }
    // A stream may even be named like an internal topic: it is a topic of its own.
    create(&c, "__consumer_offsets", 1).await?;
    let d = c
        .describe_stream_summary()
        .stream_name("__consumer_offsets")
        .send()
        .await?;
    assert_eq!(
        d.stream_description_summary()
            .ok_or("summary")?
            .open_shard_count(),
        1
    );
    assert!(ctx.catalog.get("kinesis.__consumer_offsets").is_some());
    let internal = ctx.catalog.get("__consumer_offsets").ok_or("internal")?;
    assert!(internal.partitions > 1, "the internal topic is untouched");
    // Tags and deletion reach the escaped topic.
    c.add_tags_to_stream()
        .stream_name("__orders")
        .tags("team", "data")
        .send()
        .await?;
    let tags = c
        .list_tags_for_stream()
        .stream_name("__orders")
        .send()
        .await?;
    assert_eq!(tags.tags().len(), 1);
    c.delete_stream().stream_name("__orders").send().await?;
    assert!(ctx.catalog.get("kinesis.__orders").is_none());
    let names = c.list_streams().send().await?.stream_names().to_vec();
    assert_eq!(names, vec!["__consumer_offsets".to_string()]);
    b.stop().await;
    Ok(())
}

/// One raw HTTP/1.1 exchange: (status, lower-cased headers, body).
async fn raw_http(
    addr: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, std::collections::HashMap<String, String>, String), Box<dyn std::error::Error>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!("{method} / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await??;
    let text = String::from_utf8(out)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .ok_or("no status")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_as_aws_headers_empty_bodies_403_and_cors() -> TestResult {
    use base64::Engine;
    let b = TestBroker::start().await;
    let addr = kinesis_addr(&b);
    let post = |target: &'static str, body: &'static str| async move {
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target),
        ];
        raw_http(addr, "POST", &headers, body).await
    };
    // Every answer carries a request id and an x-amz-id-2 of 72 random bytes.
    let ids = |h: &std::collections::HashMap<String, String>| -> TestResult {
        assert_eq!(
            h.get("x-amzn-requestid").map(String::len),
            Some(36),
            "{h:?}"
        );
        let id2 = h.get("x-amz-id-2").ok_or("x-amz-id-2")?;
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(id2)?.len(),
            72
        );
        Ok(())
    };

    // Operations without output answer an empty body; the others a JSON document.
    for (target, body) in [
        (
            "Kinesis_20131202.CreateStream",
            r#"{"StreamName":"web","ShardCount":2}"#,
        ),
        (
            "Kinesis_20131202.AddTagsToStream",
            r#"{"StreamName":"web","Tags":{"a":"b"}}"#,
        ),
        (
            "Kinesis_20131202.RemoveTagsFromStream",
            r#"{"StreamName":"web","TagKeys":["a"]}"#,
        ),
        (
            "Kinesis_20131202.IncreaseStreamRetentionPeriod",
            r#"{"StreamName":"web","RetentionPeriodHours":48}"#,
        ),
        (
            "Kinesis_20131202.DecreaseStreamRetentionPeriod",
            r#"{"StreamName":"web","RetentionPeriodHours":24}"#,
        ),
    ] {
        let (status, h, body) = post(target, body).await?;
        assert_eq!((status, body.as_str()), (200, ""), "{target}");
        assert_eq!(h.get("content-length").map(String::as_str), Some("0"));
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/x-amz-json-1.1")
        );
        ids(&h)?;
    }
    let (status, h, body) = post("Kinesis_20131202.ListStreams", "{}").await?;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(listed["StreamNames"], serde_json::json!(["web"]), "{body}");
    ids(&h)?;
    // Errors too.
    let (status, h, body) = post("Kinesis_20131202.FlyToTheMoon", "{}").await?;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    ids(&h)?;
    let (status, h, body) =
        post("Kinesis_20131202.DeleteStream", r#"{"StreamName":"web"}"#).await?;
    assert_eq!((status, body.as_str()), (200, ""));
    ids(&h)?;

    // Anything but POST (and a preflight): AWS's XML 403.
    let denied = "<AccessDeniedException>\n  <Message>Unable to determine service/operation \
                  name to be authorized</Message>\n</AccessDeniedException>\n";
    for method in ["GET", "PUT", "DELETE", "OPTIONS"] {
        let (status, h, body) = raw_http(addr, method, &[], "").await?;
        assert_eq!((status, body.as_str()), (403, denied), "{method}");
        ids(&h)?;
        assert!(!h.contains_key("access-control-allow-origin"));
    }

    // CORS preflight: the asked methods and headers allowed, cached for two days.
    let (status, h, body) = raw_http(
        addr,
        "OPTIONS",
        &[
            ("Origin", "http://example.com"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "x-amz-target,content-type",
            ),
        ],
        "",
    )
    .await?;
    assert_eq!((status, body.as_str()), (200, ""));
    let get = |k: &str| h.get(k).map(String::as_str);
    assert_eq!(get("access-control-allow-origin"), Some("*"));
    assert_eq!(get("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        get("access-control-allow-headers"),
        Some("x-amz-target,content-type")
    );
    assert_eq!(get("access-control-max-age"), Some("172800"));
    assert_eq!(get("x-amzn-requestid").map(str::len), Some(36));
    assert!(!h.contains_key("x-amz-id-2"));
    // A cross-origin POST: allowed, with AWS's exposed headers.
    let (status, h, _) = raw_http(
        addr,
        "POST",
        &[
            ("Origin", "http://example.com"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
        ],
        "{}",
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(
        h.get("access-control-allow-origin").map(String::as_str),
        Some("*")
    );
    assert_eq!(
        h.get("access-control-expose-headers").map(String::as_str),
        Some("x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date")
    );
    ids(&h)?;
    b.stop().await;
    Ok(())
}
