//! librdkafka (the `rdkafka` crate) produces keyed messages with headers and timestamps to a
//! 3-partition topic with acks=-1 and acks=1, and reads every one back: per-partition order,
//! contiguous offsets, same key, value, headers and timestamp; again after a restart.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const MESSAGES: usize = 100_000;
const PARTITIONS: i32 = 3;
const BASE_TS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    key: String,
    value: Vec<u8>,
    idx: String,
    ts: i64,
}

async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = producer_config(bootstrap, "1")
        .create()
        .expect("admin client");
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topics");
    assert!(res[0].is_ok(), "{:?}", res[0]);
}

/// Produces MESSAGES messages and returns what landed at each (partition, offset).
async fn produce(bootstrap: &str, topic: &str, acks: &str) -> HashMap<(i32, i64), Sent> {
    let producer: FutureProducer = producer_config(bootstrap, acks).create().expect("producer");
    let mut placed = HashMap::with_capacity(MESSAGES);
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10_000) {
        let futs = chunk.iter().map(|&i| {
            let sent = Sent {
                key: format!("key-{}", i % 1000),
                value: format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes(),
                idx: i.to_string(),
                ts: BASE_TS + i as i64,
            };
            let producer = &producer;
            async move {
                let headers = OwnedHeaders::new().insert(Header {
                    key: "idx",
                    value: Some(sent.idx.as_str()),
                });
                let rec = FutureRecord::to(topic)
                    .key(&sent.key)
                    .payload(&sent.value)
                    .headers(headers)
                    .timestamp(sent.ts);
                let delivery = producer
                    .send(rec, TIMEOUT)
                    .await
                    .map_err(|(e, _)| e)
                    .expect("delivered");
                (delivery.partition, delivery.offset, sent)
            }
        });
        for (p, o, sent) in join_all(futs).await {
            assert!(
                placed.insert((p, o), sent).is_none(),
                "offset {o} of partition {p} acknowledged twice"
            );
        }
    }
    placed
}

/// Reads every partition from the beginning and checks it against what was produced.
fn consume_and_check(bootstrap: &str, topic: &str, expected: &HashMap<(i32, i64), Sent>) {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut seen = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen < expected.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {seen} of {}",
            expected.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let p = msg.partition();
        let want = next.get_mut(&p).expect("known partition");
        assert_eq!(
            msg.offset(),
            *want,
            "partition {p}: offsets must be contiguous and in order"
        );
        *want += 1;
        let sent = expected
            .get(&(p, msg.offset()))
            .unwrap_or_else(|| panic!("unexpected message at {p}/{}", msg.offset()));
        assert_eq!(msg.key(), Some(sent.key.as_bytes()));
        assert_eq!(msg.payload(), Some(sent.value.as_slice()));
        assert_eq!(msg.timestamp().to_millis(), Some(sent.ts));
        let headers = msg.headers().expect("headers");
        assert_eq!(headers.count(), 1);
        let h = headers.get(0);
        assert_eq!(h.key, "idx");
        assert_eq!(h.value, Some(sent.idx.as_bytes()));
        seen += 1;
    }
    // And nothing more than was produced.
    for (p, end) in &next {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, TIMEOUT)
            .expect("watermarks");
        assert_eq!((low, high), (0, *end), "partition {p} watermarks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_acks_all_and_one_then_restart() {
    let mut broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    for acks in ["-1", "1"] {
        let topic = format!("round-trip-acks{acks}");
        create_topic(&bootstrap, &topic).await;
        let placed = produce(&bootstrap, &topic, acks).await;
        assert_eq!(placed.len(), MESSAGES);
        for p in 0..PARTITIONS {
            assert!(
                placed.keys().any(|(q, _)| *q == p),
                "keys spread over partition {p}"
            );
        }
        let b = bootstrap.clone();
        let t = topic.clone();
        let placed = tokio::task::spawn_blocking(move || {
            consume_and_check(&b, &t, &placed);
            placed
        })
        .await
        .expect("consumer thread");

        broker.restart().await;
        let b = broker.bootstrap();
        tokio::task::spawn_blocking(move || consume_and_check(&b, &topic, &placed))
            .await
            .expect("consumer thread after restart");
    }
    broker.stop().await;
}
