//! Durability settings seen from outside the log: `log.flush.interval.messages` and
//! `log.flush.interval.ms` make acks=1 data durable (the partition's recovery point reaches the
//! end), the recovery point is checkpointed, and a clean restart of a broker with many
//! partitions scans nothing and stays fast.

mod common;

use std::time::{Duration, Instant};

use common::{producer_config, TestBroker, TIMEOUT};
use esker::shard::ShardState;
use esker::Broker;
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn produce(bootstrap: &str, topic: &str, n: usize, acks: &str) {
    let producer: FutureProducer = producer_config(bootstrap, acks)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..n {
        let value = format!("m{i}");
        producer
            .send(FutureRecord::<(), _>::to(topic).payload(&value), TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
}

/// `(recovery point, log end offset)` of a partition.
async fn recovery_point(broker: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    let t = topic.to_string();
    broker
        .context()
        .shard(topic, partition)
        .call(move |s: &mut ShardState| {
            s.with_log(&t, partition, |l| (l.recovery_point(), l.log_end_offset()))
        })
        .await
        .expect("shard")
        .expect("partition")
}

async fn eventually_synced(broker: &Broker, topic: &str, end: i64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (point, log_end) = recovery_point(broker, topic, 0).await;
        assert_eq!(log_end, end);
        if point == end {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "recovery point stuck at {point} of {end}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_1_data_is_not_fsynced_by_default() {
    let broker = TestBroker::start_with(&[("num.partitions", "1")]).await;
    produce(&broker.bootstrap(), "lazy", 10, "1").await;
    let b = broker.broker.as_ref().expect("running");
    // The page cache is trusted: nothing moved the recovery point.
    assert_eq!(recovery_point(b, "lazy", 0).await, (0, 10));
    // acks=-1 does.
    produce(&broker.bootstrap(), "lazy", 1, "-1").await;
    assert_eq!(recovery_point(b, "lazy", 0).await, (11, 11));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_interval_messages_fsyncs_acks_1_data() {
    let broker = TestBroker::start_with(&[
        ("num.partitions", "1"),
        ("log.flush.interval.messages", "5"),
    ])
    .await;
    produce(&broker.bootstrap(), "counted", 20, "1").await;
    let b = broker.broker.as_ref().expect("running");
    eventually_synced(b, "counted", 20).await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_interval_ms_fsyncs_acks_1_data() {
    let broker =
        TestBroker::start_with(&[("num.partitions", "1"), ("log.flush.interval.ms", "100")]).await;
    produce(&broker.bootstrap(), "timed", 3, "1").await;
    let b = broker.broker.as_ref().expect("running");
    eventually_synced(b, "timed", 3).await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_point_is_checkpointed_periodically() {
    let broker = TestBroker::start_with(&[
        ("num.partitions", "1"),
        ("log.flush.offset.checkpoint.interval.ms", "50"),
    ])
    .await;
    produce(&broker.bootstrap(), "points", 7, "-1").await;
    let file = broker.dir.path().join("points-0/recovery-point-offset");
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read_to_string(&file).ok().as_deref() != Some("0\n7\n") {
        assert!(Instant::now() < deadline, "checkpoint not written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_with_many_partitions_scans_nothing() {
    const PARTITIONS: i32 = 1000;
    let mut broker = TestBroker::start().await;
    broker.create_topic("wide", PARTITIONS).await;
    produce(&broker.bootstrap(), "wide", 2000, "1").await;

    // The first restart fsyncs what was written; the second has nothing to flush.
    for round in 0..2 {
        let started = Instant::now();
        broker.restart().await;
        let restart = started.elapsed();
        let ctx = broker.context();
        let mut records = 0;
        for p in 0..PARTITIONS {
            let (scanned, end) = ctx
                .shard("wide", p)
                .call(move |s: &mut ShardState| {
                    s.with_log("wide", p, |l| {
                        (l.open_stats().segments_scanned, l.log_end_offset())
                    })
                })
                .await
                .expect("shard")
                .expect("partition");
            assert_eq!(scanned, 0, "partition {p} was scanned");
            records += end;
        }
        assert_eq!(records, 2000);
        // Generous for a 2-core CI machine; it takes about a second locally.
        assert!(
            restart < Duration::from_secs(20),
            "restart took {restart:?}"
        );
        // One descriptor per partition (its active segment); no directory handles are kept.
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        eprintln!(
            "clean restart {round} with {PARTITIONS} partitions: {restart:?}, {fds} open descriptors"
        );
        assert!(fds < PARTITIONS as usize + 400, "{fds} open descriptors");
    }
    broker.stop().await;
}
