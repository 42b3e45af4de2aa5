//! The metrics endpoint: after librdkafka produces and consumes, `GET /metrics` reports the
//! topic's messages and bytes in and out, Produce and FetchConsumer requests and latencies,
//! connections, partition counts and per-partition log sizes; `/healthz` and `/readyz` answer.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{consumer_config, http_get as get, producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "metered";
const PARTITIONS: i32 = 2;
const MESSAGES: usize = 1000;

/// Samples of the exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Sum of every sample of `name` whose labels contain all of `labels`.
fn sum(samples: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_produce_and_fetch() {
    let broker = TestBroker::start().await;
    let addr = broker.metrics_addr();
    assert_eq!(get(addr, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(get(addr, "/nope").await.0, 404);

    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = producer_config(&bootstrap, "1")
        .create()
        .expect("admin client");
    let res = admin
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topics");
    assert!(res[0].is_ok(), "{:?}", res[0]);

    let producer: FutureProducer = producer_config(&bootstrap, "all")
        .create()
        .expect("producer");
    let sends = (0..MESSAGES).map(|i| {
        let producer = &producer;
        async move {
            let key = format!("k{i}");
            let value = format!("value-{i}");
            producer
                .send(FutureRecord::to(TOPIC).key(&key).payload(&value), TIMEOUT)
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    });
    join_all(sends).await;

    let consumer: BaseConsumer = consumer_config(&bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let received = tokio::task::spawn_blocking(move || {
        let mut n = 0;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while n < MESSAGES && std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m.expect("message");
                n += 1;
            }
        }
        n
    })
    .await
    .expect("consumer thread");
    assert_eq!(received, MESSAGES);

    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&text);
    let topic = format!("topic=\"{TOPIC}\"");
    let t = [topic.as_str()];
    let messages_in = sum(&s, "kafka_server_brokertopicmetrics_messagesin_total", &t);
    assert_eq!(messages_in, MESSAGES as f64, "messages in");
    let bytes_in = sum(&s, "kafka_server_brokertopicmetrics_bytesin_total", &t);
    let log_size = sum(&s, "kafka_log_log_size", &t);
    assert!(log_size > 0.0, "log size");
    // Nothing but the produced batches is in the log, verbatim.
    assert_eq!(bytes_in, log_size, "bytes in = bytes on disk");
    let bytes_out = sum(&s, "kafka_server_brokertopicmetrics_bytesout_total", &t);
    assert!(
        bytes_out >= bytes_in,
        "bytes out {bytes_out} < bytes in {bytes_in}"
    );
    assert_eq!(
        sum(&s, "kafka_log_log_logendoffset", &t),
        MESSAGES as f64,
        "log end offsets"
    );
    assert_eq!(sum(&s, "kafka_log_log_logstartoffset", &t), 0.0);
    assert!(
        sum(
            &s,
            "kafka_server_brokertopicmetrics_totalproducerequests_total",
            &t
        ) > 0.0
    );
    assert!(
        sum(
            &s,
            "kafka_server_brokertopicmetrics_totalfetchrequests_total",
            &t
        ) > 0.0
    );
    assert_eq!(
        sum(
            &s,
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            &t
        ),
        0.0
    );
    assert!(
        sum(
            &s,
            "kafka_network_requestmetrics_requests_total",
            &["request=\"Produce\""]
        ) > 0.0
    );
    assert!(
        sum(
            &s,
            "kafka_network_requestmetrics_requests_total",
            &["request=\"FetchConsumer\""]
        ) > 0.0
    );
    assert!(
        sum(
            &s,
            "kafka_network_requestmetrics_totaltimems_count",
            &["request=\"Produce\""]
        ) > 0.0
    );
    let ctx = broker.context();
    let all: i32 = ctx.catalog.all().iter().map(|t| t.partitions).sum();
    assert!(all >= PARTITIONS);
    assert_eq!(
        s.get("kafka_server_replicamanager_partitioncount").copied(),
        Some(f64::from(all)),
        "partition count (the topic and __consumer_offsets)"
    );
    assert_eq!(
        s.get("kafka_controller_kafkacontroller_activecontrollercount")
            .copied(),
        Some(1.0)
    );
    assert!(
        sum(
            &s,
            "kafka_server_socketservermetrics_connections",
            &["listener=\"PLAINTEXT\""]
        ) >= 1.0
    );
    assert!(
        sum(
            &s,
            "kafka_server_socketservermetrics_connection_creation_total",
            &[]
        ) >= 2.0
    );
    assert!(
        sum(&s, "esker_shard_fsyncs_total", &[]) > 0.0,
        "acks=all fsyncs"
    );
    // Request sizes: one observation per Produce request, together more than the values sent
    // ("value-0".."value-999", at least 7 bytes each).
    let produce = ["request=\"Produce\""];
    assert_eq!(
        sum(
            &s,
            "kafka_network_requestmetrics_requestbytes_count",
            &produce
        ),
        sum(&s, "kafka_network_requestmetrics_requests_total", &produce)
    );
    assert!(
        sum(
            &s,
            "kafka_network_requestmetrics_requestbytes_sum",
            &produce
        ) > 7.0 * MESSAGES as f64
    );
    // Every fsync round is timed once it completes (rounds still in flight are not yet).
    let rounds = sum(&s, "esker_shard_flushes_total", &[]);
    let timed = sum(
        &s,
        "kafka_log_logflushstats_logflushrateandtimems_count",
        &[],
    );
    assert!(
        timed >= 1.0 && timed <= rounds,
        "{timed} timed of {rounds} rounds"
    );
    assert!(sum(&s, "kafka_log_logflushstats_logflushrateandtimems_sum", &[]) > 0.0);
    assert_eq!(sum(&s, "esker_build_info", &[]), 1.0);

    drop(producer);
    drop(admin);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_series_can_be_switched_off() {
    let broker = TestBroker::start_with(&[
        ("metrics.partition.labels.enabled", "false"),
        ("auto.create.topics.enable", "true"),
    ])
    .await;
    let addr = broker.metrics_addr();
    broker.create_topic("quiet", 3).await;
    let ctx = broker.context();
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&text);
    let all: i32 = ctx.catalog.all().iter().map(|t| t.partitions).sum();
    assert_eq!(
        s.get("kafka_server_replicamanager_partitioncount").copied(),
        Some(f64::from(all))
    );
    assert_eq!(sum(&s, "kafka_log_log_size", &[]), 0.0);
    assert!(!text.contains("kafka_log_log_size{"));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_while_shutting_down() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let mut broker = TestBroker::start().await;
    let b = broker.broker.take().expect("broker");
    let addr = b.metrics_addr().expect("metrics endpoint");
    b.context()
        .create_topic("idle", 1, Default::default())
        .await
        .expect("topic");
    // A long-polling fetch on an empty partition keeps the drain busy for a while.
    let mut raw = common::raw::Raw::connect(&b.bootstrap()).await;
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(3000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("idle")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    raw.send(&req, 12).await;
    // No broker-side signal says the fetch frame has been read and parked; give the reader
    // a moment so shutdown finds it in flight (the 3 s long poll then keeps the drain busy).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let shutdown = tokio::spawn(b.shutdown());
    // Await the drain's readiness flip; the pending 3 s fetch keeps the broker draining.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while get(addr, "/readyz").await.0 != 503 {
        assert!(
            std::time::Instant::now() < deadline && !shutdown.is_finished(),
            "not ready while draining"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !shutdown.is_finished(),
        "still draining when /readyz said 503"
    );
    assert_eq!(get(addr, "/healthz").await.0, 200, "alive while draining");
    shutdown.await.expect("join").expect("clean shutdown");
    drop(raw);
}

/// Produces `n` records to `partition` of `topic` with acks=all.
async fn produce_to(bootstrap: &str, topic: &str, partition: i32, n: usize) {
    let producer: FutureProducer = producer_config(bootstrap, "all")
        .create()
        .expect("producer");
    let sends = (0..n).map(|i| {
        let producer = &producer;
        async move {
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&value),
                    TIMEOUT,
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    });
    join_all(sends).await;
}

/// Commits `offsets` (partition → offset) of `topic` for `group` through librdkafka.
async fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let (bootstrap, group, topic) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    let offsets = offsets.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&bootstrap)
            .set("group.id", &group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&topic, p, Offset::Offset(o))
                .expect("partition");
        }
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    })
    .await
    .expect("commit thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_follows_commits() {
    let broker = TestBroker::start().await;
    let addr = broker.metrics_addr();
    let bootstrap = broker.bootstrap();
    broker.create_topic("lagged", 2).await;
    produce_to(&bootstrap, "lagged", 0, 100).await;
    produce_to(&bootstrap, "lagged", 1, 30).await;
    commit(&bootstrap, "readers", "lagged", &[(0, 40), (1, 30)]).await;

    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&text);
    let g = "consumergroup=\"readers\"";
    let lag = |p: &str| {
        sum(
            &s,
            "kafka_consumergroup_lag",
            &[g, "topic=\"lagged\"", &format!("partition=\"{p}\"")],
        )
    };
    assert_eq!(lag("0"), 60.0, "log end 100 - committed 40");
    assert_eq!(lag("1"), 0.0, "caught up");
    assert_eq!(
        sum(
            &s,
            "kafka_consumergroup_topic_lag",
            &[g, "topic=\"lagged\""]
        ),
        60.0
    );
    assert_eq!(
        sum(
            &s,
            "kafka_consumergroup_current_offset",
            &[g, "partition=\"0\""]
        ),
        40.0
    );
    assert_eq!(
        sum(&s, "kafka_consumergroup_members", &[g]),
        0.0,
        "offsets only"
    );
    assert!(text.contains("kafka_consumergroup_members{consumergroup=\"readers\"} 0"));
    assert!(s["kafka_coordinator_group_groupmetadatamanager_numgroups"] >= 1.0);

    // More records: the lag grows by exactly as many; a commit at the end brings it to 0.
    produce_to(&bootstrap, "lagged", 0, 25).await;
    let (_, text) = get(addr, "/metrics").await;
    let s = samples(&text);
    assert_eq!(
        sum(
            &s,
            "kafka_consumergroup_topic_lag",
            &[g, "topic=\"lagged\""]
        ),
        85.0
    );
    commit(&bootstrap, "readers", "lagged", &[(0, 125)]).await;
    let (_, text) = get(addr, "/metrics").await;
    let s = samples(&text);
    assert_eq!(
        sum(
            &s,
            "kafka_consumergroup_topic_lag",
            &[g, "topic=\"lagged\""]
        ),
        0.0
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_are_counted() {
    use rdkafka::consumer::StreamConsumer;
    let broker = TestBroker::start_with(&[("group.initial.rebalance.delay.ms", "0")]).await;
    let addr = broker.metrics_addr();
    let bootstrap = broker.bootstrap();
    broker.create_topic("joined", 1).await;
    produce_to(&bootstrap, "joined", 0, 1).await;
    let consumer: StreamConsumer = consumer_config(&bootstrap)
        .set("group.id", "joiners")
        .set("group.protocol", "classic")
        .create()
        .expect("consumer");
    consumer.subscribe(&["joined"]).expect("subscribe");
    tokio::time::timeout(TIMEOUT, consumer.recv())
        .await
        .expect("a record within the timeout")
        .expect("record");
    let (_, text) = get(addr, "/metrics").await;
    let s = samples(&text);
    assert!(
        s["kafka_server_groupcoordinatormetrics_group_rebalance_total"] >= 1.0,
        "the first join is a rebalance"
    );
    assert_eq!(
        sum(
            &s,
            "kafka_consumergroup_members",
            &["consumergroup=\"joiners\""]
        ),
        1.0
    );
    drop(consumer);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_stream_series() {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::ShardIteratorType;

    let broker = TestBroker::start().await;
    let addr = broker.metrics_addr();
    let c = common::kinesis::client(&broker);
    c.create_stream()
        .stream_name("clicks")
        .shard_count(1)
        .send()
        .await
        .expect("create stream");
    for i in 0..3 {
        c.put_record()
            .stream_name("clicks")
            .partition_key("pk")
            .data(Blob::new(format!("data-{i}")))
            .send()
            .await
            .expect("put record");
    }
    let shard = c
        .list_shards()
        .stream_name("clicks")
        .send()
        .await
        .expect("list shards")
        .shards()[0]
        .shard_id()
        .to_string();
    let it = c
        .get_shard_iterator()
        .stream_name("clicks")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator token");
    let got = c
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .expect("get records");
    assert_eq!(got.records().len(), 3);

    let (_, text) = get(addr, "/metrics").await;
    let s = samples(&text);
    let st = ["stream=\"clicks\""];
    assert_eq!(sum(&s, "esker_kinesis_incoming_records_total", &st), 3.0);
    // "data-N" (6 bytes) and "pk" (2 bytes) per record.
    assert_eq!(sum(&s, "esker_kinesis_incoming_bytes_total", &st), 24.0);
    assert_eq!(sum(&s, "esker_kinesis_get_records_records_total", &st), 3.0);
    assert!(sum(&s, "esker_kinesis_get_records_bytes_total", &st) >= 18.0);
    assert_eq!(
        sum(&s, "esker_kinesis_get_records_iterator_age_seconds", &st),
        0.0,
        "caught up"
    );
    assert_eq!(
        sum(
            &s,
            "esker_kinesis_write_provisioned_throughput_exceeded_total",
            &st
        ),
        0.0
    );
    assert!(text
        .contains("esker_kinesis_read_provisioned_throughput_exceeded_total{stream=\"clicks\"} 0"));

    c.delete_stream()
        .stream_name("clicks")
        .send()
        .await
        .expect("delete stream");
    let (_, text) = get(addr, "/metrics").await;
    assert!(
        !text.contains("stream=\"clicks\""),
        "a deleted stream's series go"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_series_can_be_switched_off() {
    for (key, per_partition_gone, per_group_gone) in [
        ("metrics.partition.labels.enabled", true, false),
        ("metrics.group.labels.enabled", true, true),
    ] {
        let broker = TestBroker::start_with(&[(key, "false")]).await;
        let addr = broker.metrics_addr();
        let bootstrap = broker.bootstrap();
        broker.create_topic("quiet", 1).await;
        produce_to(&bootstrap, "quiet", 0, 10).await;
        commit(&bootstrap, "hushed", "quiet", &[(0, 4)]).await;
        let (_, text) = get(addr, "/metrics").await;
        let s = samples(&text);
        assert_eq!(
            !text.contains("kafka_consumergroup_lag{"),
            per_partition_gone,
            "{key}: per-partition lag"
        );
        assert_eq!(
            !text.contains("kafka_consumergroup_current_offset{"),
            per_partition_gone,
            "{key}: per-partition offsets"
        );
        assert_eq!(
            !text.contains("kafka_consumergroup_topic_lag{"),
            per_group_gone,
            "{key}: per-group lag"
        );
        if !per_group_gone {
            assert_eq!(
                sum(
                    &s,
                    "kafka_consumergroup_topic_lag",
                    &["consumergroup=\"hushed\""]
                ),
                6.0
            );
        }
        // Group-independent series stay.
        assert!(s["kafka_coordinator_group_groupmetadatamanager_numgroups"] >= 1.0);
        broker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_allocator_and_build_series() {
    let broker = TestBroker::start().await;
    let addr = broker.metrics_addr();
    let (_, text) = get(addr, "/metrics").await;
    let s = samples(&text);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "esker_jemalloc_allocated_bytes",
        "esker_jemalloc_active_bytes",
        "esker_jemalloc_resident_bytes",
        "esker_jemalloc_mapped_bytes",
    ] {
        assert!(s.contains_key(name), "{name} exported");
    }
    if std::path::Path::new("/proc/self/stat").exists() {
        assert!(s["process_resident_memory_bytes"] > 0.0);
        assert!(s["process_open_fds"] > 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let start = s["process_start_time_seconds"];
        assert!(start > now - 3600.0 && start <= now + 1.0, "start {start}");
        // Shard threads are found by name.
        assert!(text.contains("esker_shard_cpu_seconds_total{shard=\"0\"}"));
    }
    // The test binary does not use jemalloc as its allocator, but its statistics are readable.
    assert!(s["esker_jemalloc_mapped_bytes"] >= 0.0);
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(sum(&s, "esker_build_info", &[&version]), 1.0);
    assert!(text.contains("esker_shard_queue_depth{shard=\"1\"}"));
    assert!(text.contains("kafka_network_requestmetrics_throttletimems_bucket{request=\"Produce\""));
    broker.stop().await;
}

/// The binary with `ESKER_LOG_FORMAT=json` writes one JSON object per line; with
/// `esker::request=debug` each request gets a line in its span (api, client id), and at the
/// default `info` there is none.
#[test]
fn json_logs_and_request_spans() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    for (filter, want_requests) in [("info,esker::request=debug", true), ("info", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_esker"))
            .args([
                "-o",
                &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                "-o",
                &format!("log.dirs={}", dir.path().display()),
                "-o",
                "metrics.listener=127.0.0.1:0",
            ])
            .env("ESKER_LOG_FORMAT", "json")
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn esker");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "broker listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        // One Metadata request from librdkafka with a known client id.
        let consumer: BaseConsumer = consumer_config(&format!("127.0.0.1:{port}"))
            .set("client.id", "json-log-test")
            .create()
            .expect("client");
        consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
        drop(consumer);
        // SAFETY: kill only sends a signal to the child we spawned.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let stdout = child.stdout.take().expect("stdout");
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map(|l| l.expect("utf-8 line"))
            .collect();
        assert!(child.wait().expect("exit").success());
        assert!(lines.len() >= 3, "start-up lines: {lines:?}");
        let mut requests = 0;
        for line in &lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["level"].is_string(), "{line}");
            assert!(
                v["message"].is_string() || v["fields"].is_object(),
                "{line}"
            );
            if v["target"] == "esker::request" {
                requests += 1;
                if v["span"]["api"] == "Metadata" {
                    assert_eq!(v["span"]["client_id"], "json-log-test", "{line}");
                }
            }
        }
        assert_eq!(requests > 0, want_requests, "{filter}: {lines:?}");
        if want_requests {
            assert!(
                lines.iter().any(|l| l.contains("\"api\":\"Metadata\"")),
                "a Metadata request span: {lines:?}"
            );
        }
    }
}
