//! The metrics endpoint: after librdkafka produces and consumes, `GET /metrics` reports the
//! topic's messages and bytes in and out, Produce and FetchConsumer requests and latencies,
//! connections, partition counts and per-partition log sizes; `/healthz` and `/readyz` answer.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOPIC: &str = "metered";
const PARTITIONS: i32 = 2;
const MESSAGES: usize = 1000;

/// A plain HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

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
    let addr = broker
        .broker
        .as_ref()
        .and_then(|b| b.metrics_addr())
        .expect("metrics endpoint");
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
    let ctx = broker.broker.as_ref().expect("broker").context().clone();
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
            "kafka_server_socketservermetrics_connection_count",
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
    let addr = broker
        .broker
        .as_ref()
        .and_then(|b| b.metrics_addr())
        .expect("metrics endpoint");
    let ctx = broker.broker.as_ref().expect("broker").context().clone();
    ctx.create_topic("quiet", 3, Default::default())
        .await
        .expect("topic");
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let shutdown = tokio::spawn(b.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(addr, "/readyz").await.0,
        503,
        "not ready while draining"
    );
    assert_eq!(get(addr, "/healthz").await.0, 200, "alive while draining");
    shutdown.await.expect("join").expect("clean shutdown");
    drop(raw);
}
