//! Retention and DeleteRecords seen through librdkafka: the low watermark (ListOffsets earliest)
//! advances, old segment files disappear from disk, a consumer positioned before the log start
//! is reset according to `auto.offset.reset`, and DeleteRecords through the AdminClient moves
//! the start durably. Conditions are awaited by polling with a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{consumer_config, eventually, producer_config, TestBroker, TIMEOUT};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// The `.log` files of a partition directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn base_offset(file: &Path) -> i64 {
    file.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment file name")
}

async fn produce(bootstrap: &str, topic: &str, partition: i32, n: usize, size: usize) {
    let producer: FutureProducer = producer_config(bootstrap, "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let value = vec![b'x'; size];
    for i in 0..n {
        let key = format!("k{i}");
        let rec = FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        producer
            .send(rec, TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
}

fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .expect("watermarks")
}

/// Offset of the first message a consumer assigned at `start` with `reset` receives.
fn first_offset_from(bootstrap: &str, topic: &str, start: i64, reset: &str) -> i64 {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("auto.offset.reset", reset)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(start))
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no message for {reset}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => return m.offset(),
            Some(Err(e)) => panic!("consume with {reset}: {e}"),
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_deletes_old_segments_and_resets_consumers() {
    let broker = TestBroker::start_with(&[
        ("log.segment.bytes", "1024"),
        ("log.retention.bytes", "4096"),
        ("log.retention.check.interval.ms", "100"),
    ])
    .await;
    let bs = broker.bootstrap();
    let dir = broker.dir.path().join("sized-0");
    produce(&bs, "sized", 0, 200, 100).await;

    // The retention pass shrinks the partition to about retention.bytes, and ListOffsets
    // earliest is then the first remaining segment's base. (A listing taken while a pass is
    // still deleting files can name a segment that is gone a moment later, so both are read
    // until they agree.)
    let b = bs.clone();
    let (first_base, low, high) = eventually("size-based retention", TIMEOUT, || {
        let files = segment_files(&dir);
        if files.len() > 6 {
            return None;
        }
        let (low, high) = watermarks(&b, "sized", 0);
        let first_base = base_offset(&files[0]);
        (low == first_base && segment_files(&dir) == files).then_some((first_base, low, high))
    })
    .await;
    assert!(first_base > 0);
    assert!(!dir.join("00000000000000000000.log").exists());
    assert!(!dir.join("00000000000000000000.index").exists());
    assert_eq!(high, 200);

    // A consumer positioned at 0, before the log start, is reset per auto.offset.reset.
    let b = bs.clone();
    let first = tokio::task::spawn_blocking(move || first_offset_from(&b, "sized", 0, "earliest"))
        .await
        .expect("consumer");
    assert_eq!(first, low);
    // With `latest`, it skips to the end: keep producing until it receives something, which
    // must be new.
    let b = bs.clone();
    let consumer = std::thread::spawn(move || first_offset_from(&b, "sized", 0, "latest"));
    let deadline = Instant::now() + TIMEOUT;
    while !consumer.is_finished() {
        assert!(Instant::now() < deadline, "latest consumer got nothing");
        produce(&bs, "sized", 0, 1, 10).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latest = consumer.join().expect("consumer thread");
    assert!(latest >= 200, "latest reset gave offset {latest}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_expires_even_the_active_segment() {
    let broker = TestBroker::start_with(&[
        ("log.retention.ms", "1500"),
        ("log.retention.check.interval.ms", "100"),
    ])
    .await;
    let bs = broker.bootstrap();
    let dir = broker.dir.path().join("timed-0");
    produce(&bs, "timed", 0, 50, 100).await;
    assert_eq!(segment_files(&dir).len(), 1);

    // All 50 records expire: the active segment is rolled and deleted, the log starts at 50.
    let b = bs.clone();
    eventually("time-based retention", TIMEOUT, move || {
        let (low, high) = watermarks(&b, "timed", 0);
        (low == 50 && high == 50).then_some(())
    })
    .await;
    let files = segment_files(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(base_offset(&files[0]), 50);
    // Producing continues at the next offset.
    produce(&bs, "timed", 0, 1, 10).await;
    let b = bs.clone();
    let first = tokio::task::spawn_blocking(move || first_offset_from(&b, "timed", 0, "earliest"))
        .await
        .expect("consumer");
    assert_eq!(first, 50);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_through_the_admin_client() {
    let mut broker = TestBroker::start_with(&[("log.segment.bytes", "1024")]).await;
    let bs = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> =
        producer_config(&bs, "1").create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    admin
        .create_topics(
            &[NewTopic::new("trimmed", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create")
        .into_iter()
        .for_each(|r| {
            r.expect("created");
        });
    produce(&bs, "trimmed", 0, 100, 100).await;
    produce(&bs, "trimmed", 1, 30, 100).await;

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(40))
        .expect("tpl");
    tpl.add_partition_offset("trimmed", 1, Offset::End)
        .expect("tpl");
    let result = admin.delete_records(&tpl, &opts).await.expect("delete");
    for elem in result.elements() {
        assert!(elem.error().is_ok(), "{elem:?}");
        let expected = if elem.partition() == 0 { 40 } else { 30 };
        assert_eq!(elem.offset(), Offset::Offset(expected), "low watermark");
    }
    let b = bs.clone();
    let (w0, w1) = tokio::task::spawn_blocking(move || {
        (watermarks(&b, "trimmed", 0), watermarks(&b, "trimmed", 1))
    })
    .await
    .expect("watermarks");
    assert_eq!(w0, (40, 100));
    assert_eq!(w1, (30, 30));

    // Segments wholly below the new start are gone; the one holding offset 40 stays.
    let files = segment_files(&broker.dir.path().join("trimmed-0"));
    assert!(base_offset(&files[0]) <= 40);
    assert!(files.get(1).map_or(true, |f| base_offset(f) > 40));
    assert_eq!(segment_files(&broker.dir.path().join("trimmed-1")).len(), 1);

    // Beyond the high watermark: OFFSET_OUT_OF_RANGE for that partition.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(1000))
        .expect("tpl");
    let result = admin.delete_records(&tpl, &opts).await;
    let err = match result {
        Ok(tpl) => tpl.elements()[0].error().expect_err("out of range"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            KafkaError::AdminOp(RDKafkaErrorCode::OffsetOutOfRange)
                | KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange)
        ) || err.rdkafka_error_code() == Some(RDKafkaErrorCode::OffsetOutOfRange),
        "{err:?}"
    );

    // Consumers from the beginning start at 40; the start survives a restart.
    let b = bs.clone();
    let first =
        tokio::task::spawn_blocking(move || first_offset_from(&b, "trimmed", 0, "earliest"))
            .await
            .expect("consumer");
    assert_eq!(first, 40);
    broker.restart().await;
    let b = broker.bootstrap();
    let w0 = tokio::task::spawn_blocking(move || watermarks(&b, "trimmed", 0))
        .await
        .expect("watermarks");
    assert_eq!(w0, (40, 100));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_retention_overrides_reach_the_logs() {
    let broker = TestBroker::start_with(&[("log.retention.check.interval.ms", "100")]).await;
    let bs = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> =
        producer_config(&bs, "1").create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for r in admin
        .create_topics(
            &[
                NewTopic::new("short", 1, TopicReplication::Fixed(1)).set("retention.ms", "1000"),
                NewTopic::new("long", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .expect("create")
    {
        r.expect("created");
    }
    produce(&bs, "short", 0, 20, 100).await;
    produce(&bs, "long", 0, 20, 100).await;
    let b = bs.clone();
    eventually("topic retention.ms", TIMEOUT, move || {
        (watermarks(&b, "short", 0) == (20, 20)).then_some(())
    })
    .await;
    let b = bs.clone();
    let long = tokio::task::spawn_blocking(move || watermarks(&b, "long", 0))
        .await
        .expect("watermarks");
    assert_eq!(long, (0, 20), "the broker default keeps a week");

    // Altering the topic's config applies to its open log.
    let alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic("long"))
        .set("retention.ms", "1000");
    for r in admin.alter_configs(&[alter], &opts).await.expect("alter") {
        r.expect("altered");
    }
    let b = bs.clone();
    eventually("altered retention.ms", TIMEOUT, move || {
        (watermarks(&b, "long", 0) == (20, 20)).then_some(())
    })
    .await;
    broker.stop().await;
}
