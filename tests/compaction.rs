//! Log compaction seen through librdkafka: a compacted topic written with 100 000 updates over
//! 1 000 keys (and tombstones) reads back as exactly the latest value of each key, tombstones go
//! after `delete.retention.ms`, the disk use drops; records without a key are refused; and a
//! group committing thousands of times keeps `__consumer_offsets` small and its offsets across
//! a restart. Conditions are awaited by polling with a deadline.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{consumer_config, eventually, producer_config, TestBroker, TIMEOUT};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Key → latest value (`None`: tombstone), in offset order of the latest record.
type Table = BTreeMap<String, Option<String>>;

async fn create_compacted(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        producer_config(bootstrap, "1").create().expect("admin");
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "65536")
        .set("segment.ms", "1000")
        .set("min.cleanable.dirty.ratio", "0.01");
    for (k, v) in extra {
        t = t.set(k, v);
    }
    let res = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// Every record from the beginning up to the high watermark: (key, value) in offset order.
fn read_all(bootstrap: &str, topic: &str) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last_offset = -1;
    let deadline = Instant::now() + TIMEOUT;
    while last_offset + 1 < high {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_offset = m.offset();
                let key = String::from_utf8_lossy(m.key().expect("key")).into_owned();
                let value = m.payload().map(|v| String::from_utf8_lossy(v).into_owned());
                out.push((key, value));
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {
                // The records up to the high watermark may end in removed offsets.
                let pos = consumer.position().expect("position");
                let at = pos.find_partition(topic, 0).and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
                if at.is_some_and(|o| o >= high) {
                    break;
                }
            }
        }
    }
    out
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_of_each_key() {
    let broker = TestBroker::start_with(&[
        ("log.cleaner.backoff.ms", "100"),
        ("log.retention.check.interval.ms", "100"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    let topic = "table";
    create_compacted(&bootstrap, topic, &[("delete.retention.ms", "4000")]).await;

    let producer: FutureProducer = producer_config(&bootstrap, "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let mut table = Table::new();
    let mut produced_bytes = 0u64;
    let mut pending = Vec::new();
    for i in 0..100_000u32 {
        let key = format!("key-{:04}", (i * 7919) % 1000);
        // The last update of every tenth key is a tombstone.
        let tombstone = i >= 99_000 && key.ends_with('0');
        let value = (!tombstone).then(|| format!("value-{i}-{}", "x".repeat(40)));
        produced_bytes += (key.len() + value.as_ref().map_or(0, String::len)) as u64;
        let mut record = FutureRecord::to(topic).key(&key).partition(0);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        pending.push(producer.send_result(record).expect("queue"));
        table.insert(key, value);
        if pending.len() >= 5000 {
            for f in pending.drain(..) {
                f.await.expect("delivery").expect("acked");
            }
        }
    }
    for f in pending.drain(..) {
        f.await.expect("delivery").expect("acked");
    }
    let deleted = table.values().filter(|v| v.is_none()).count();
    assert_eq!(deleted, 100);

    // After cleaning: each key once, with its latest value; tombstones still there.
    let dir = broker.dir.path().join(format!("{topic}-0"));
    eventually("the log to be compacted", Duration::from_secs(60), || {
        let records = read_all(&bootstrap, topic);
        let mut seen = Table::new();
        for (k, v) in &records {
            if seen.insert(k.clone(), v.clone()).is_some() {
                return None;
            }
        }
        (seen == table).then_some(())
    })
    .await;
    assert!(dir.is_dir(), "{} is the partition directory", dir.display());
    let compacted = dir_bytes(&dir);
    assert!(compacted > 0);
    assert!(
        compacted * 20 < produced_bytes,
        "{compacted} bytes on disk after compaction, {produced_bytes} produced"
    );

    // Once delete.retention.ms has passed, the tombstones go too.
    let live: Table = table
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    eventually("the tombstones to go", Duration::from_secs(60), || {
        let records = read_all(&bootstrap, topic);
        let got: Table = records.into_iter().collect();
        (got == live).then_some(())
    })
    .await;

    // The broker's cleaner metrics saw it.
    let (status, body) = common::http_get(broker.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200);
    let passes: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("esker_log_cleaner_passes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("cleaner passes metric");
    assert!(passes >= 2.0, "{passes}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_key_are_refused_on_compacted_topics() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, "keyed", &[]).await;
    let producer: FutureProducer = producer_config(&bootstrap, "1")
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    let refused = producer
        .send(
            FutureRecord::<(), _>::to("keyed")
                .payload("no key")
                .partition(0),
            Duration::from_secs(5),
        )
        .await;
    match refused {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    let ok = producer
        .send(
            FutureRecord::to("keyed").key("k").payload("v").partition(0),
            Duration::from_secs(5),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_stay_bounded_under_frequent_commits() {
    let mut broker = TestBroker::start_with(&[
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "16384"),
        ("log.roll.ms", "300"),
        ("log.retention.check.interval.ms", "100"),
        ("log.cleaner.backoff.ms", "100"),
        ("log.cleaner.min.cleanable.ratio", "0.1"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    broker.create_topic("events", 1).await;
    let consumer: BaseConsumer = consumer_config(&bootstrap)
        .set("group.id", "committer")
        .create()
        .expect("consumer");
    let commits = 3000i64;
    for offset in 1..=commits {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("events", 0, Offset::Offset(offset))
            .expect("tpl");
        consumer
            .commit(&tpl, CommitMode::Sync)
            .expect("offset commit");
    }
    let dir = broker.dir.path().join("__consumer_offsets-0");
    assert!(dir.is_dir(), "{} is the partition directory", dir.display());
    // Each commit record is ~100 bytes: 3000 of them would be ~300 kB uncleaned.
    let size = eventually(
        "__consumer_offsets to be compacted",
        Duration::from_secs(60),
        || {
            let size = dir_bytes(&dir);
            (size > 0 && size < 40_000).then_some(size)
        },
    )
    .await;
    assert!(size < 40_000);
    drop(consumer);

    broker.restart().await;
    let consumer: BaseConsumer = consumer_config(&broker.bootstrap())
        .set("group.id", "committer")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("events", 0);
    let committed = consumer.committed_offsets(tpl, TIMEOUT).expect("committed");
    let offset = committed
        .find_partition("events", 0)
        .map(|p| p.offset())
        .expect("partition");
    assert_eq!(offset, Offset::Offset(commits));
    broker.stop().await;
}
