//! KIP-848 consumer groups (`group.protocol=consumer`) that survive a broker restart, and
//! regular-expression subscriptions, with librdkafka through the rdkafka crate (and a raw
//! client for the error librdkafka would not send).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// What a consumer thread saw: how often each (topic, partition, offset) was consumed.
#[derive(Default)]
struct Seen {
    consumed: BTreeMap<(String, i32, i64), u32>,
    commit_errors: u32,
}

/// A `group.protocol=consumer` consumer polling on its own thread; it commits every message
/// synchronously after recording it.
struct TestConsumer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestConsumer {
    fn start(config: ClientConfig, subscription: &[&str], seen: Arc<Mutex<Seen>>) -> Self {
        let consumer: BaseConsumer = config.create().expect("consumer");
        consumer.subscribe(subscription).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let Ok(m) = m else {
                    continue; // transient errors while the broker restarts
                };
                let key = (m.topic().to_string(), m.partition(), m.offset());
                *seen.lock().expect("lock").consumed.entry(key).or_default() += 1;
                if consumer.commit_message(&m, CommitMode::Sync).is_err() {
                    seen.lock().expect("lock").commit_errors += 1;
                }
            }
            consumer.unsubscribe();
        });
        TestConsumer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }
}

fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("reconnect.backoff.max.ms", "500")
        .set("broker.address.family", "v4");
    c
}

/// Produces `per_partition` messages to each of `partitions` partitions; returns every
/// (topic, partition, offset).
async fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) -> Vec<(String, i32, i64)> {
    let producer: FutureProducer = producer_config(bootstrap, "-1").create().expect("producer");
    let mut out = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let payload = format!("{topic}-{p}-{i}");
            let r = FutureRecord::<(), _>::to(topic)
                .partition(p)
                .payload(&payload);
            let d = producer
                .send(r, TIMEOUT)
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
            out.push((topic.to_string(), d.partition, d.offset));
        }
    }
    out
}

/// Waits until `check` holds for what the consumers saw.
async fn wait_seen(seen: &Mutex<Seen>, what: &str, check: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if check(&seen.lock().expect("lock")) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ConsumerGroupDescribe v1 of one group.
async fn describe(bootstrap: &str, group: &str) -> DescribedGroup {
    let mut raw = Raw::connect(bootstrap).await;
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let mut d = raw.call(&req, 1).await;
    d.groups.remove(0)
}

/// Waits until the group is Stable with one member that owns `partitions` partitions.
async fn wait_stable(bootstrap: &str, group: &str, partitions: usize) -> DescribedGroup {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let g = describe(bootstrap, group).await;
        let owned: usize = g
            .members
            .iter()
            .flat_map(|m| &m.assignment.topic_partitions)
            .map(|t| t.partitions.len())
            .sum();
        if g.error_code == 0
            && g.group_state.as_str() == "Stable"
            && g.members.len() == 1
            && owned == partitions
        {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "group never stable with {partitions} partitions: {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The broker restarts on the same data directory and port while a consumer is in a KIP-848
/// group: the group is replayed from `__consumer_offsets`, the consumer resumes heartbeating
/// with its member id and epoch and keeps its partitions (no rejoin, no new epoch), and every
/// record is consumed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_survives_broker_restart() {
    let mut broker = TestBroker::start_with(&[
        ("group.consumer.heartbeat.interval.ms", "200"),
        ("offsets.topic.num.partitions", "4"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("durable-members", "durable-group");
    broker.create_topic(topic, 4).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumer = TestConsumer::start(consumer_config(&bootstrap, group), &[topic], seen.clone());
    let before = wait_stable(&bootstrap, group, 4).await;
    let mut produced = produce(&bootstrap, topic, 4, 5).await;
    let n = produced.len();
    wait_seen(&seen, "first records", |s| s.consumed.len() >= n).await;
    let member = before.members[0].clone();
    assert!(member.member_epoch > 0);

    broker.restart().await;
    assert_eq!(broker.bootstrap(), bootstrap, "same port");
    // Replayed before any heartbeat: the same member, epoch and partitions.
    let replayed = describe(&bootstrap, group).await;
    assert_eq!(replayed.error_code, 0, "{replayed:?}");
    assert_eq!(replayed.group_epoch, before.group_epoch);
    assert_eq!(replayed.assignment_epoch, before.assignment_epoch);
    assert_eq!(replayed.members.len(), 1);
    assert_eq!(replayed.members[0].member_id, member.member_id);
    assert_eq!(replayed.members[0].member_epoch, member.member_epoch);
    assert_eq!(replayed.members[0].assignment, member.assignment);

    // The consumer carries on: records produced after the restart are consumed.
    produced.extend(produce(&bootstrap, topic, 4, 5).await);
    let n = produced.len();
    wait_seen(&seen, "records after the restart", |s| {
        s.consumed.len() >= n
    })
    .await;
    let after = wait_stable(&bootstrap, group, 4).await;
    assert_eq!(after.members[0].member_id, member.member_id);
    assert_eq!(
        (after.group_epoch, after.members[0].member_epoch),
        (before.group_epoch, member.member_epoch),
        "the member neither rejoined nor got a new epoch"
    );
    consumer.stop();
    {
        let s = seen.lock().expect("lock");
        let twice: Vec<_> = s.consumed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "consumed more than once: {twice:?}");
        let consumed: Vec<_> = s.consumed.keys().cloned().collect();
        produced.sort();
        assert_eq!(consumed, produced, "every record consumed, none skipped");
    }
    broker.stop().await;
}

/// A regex subscription (`^orders-.*`) gets a topic created after the consumer started, and
/// never a topic the regex does not match; ConsumerGroupDescribe reports the regex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_subscription_picks_up_new_topics() {
    let broker = TestBroker::start_with(&[
        ("group.consumer.heartbeat.interval.ms", "200"),
        ("offsets.topic.num.partitions", "4"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    let group = "regex-group";
    broker.create_topic("orders-eu", 2).await;
    broker.create_topic("payments", 2).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumer = TestConsumer::start(
        consumer_config(&bootstrap, group),
        &["^orders-.*"],
        seen.clone(),
    );
    wait_stable(&bootstrap, group, 2).await;
    let mut expected = produce(&bootstrap, "orders-eu", 2, 3).await;
    produce(&bootstrap, "payments", 2, 3).await;
    let n = expected.len();
    wait_seen(&seen, "orders-eu records", |s| s.consumed.len() >= n).await;

    broker.create_topic("orders-us", 3).await;
    let g = wait_stable(&bootstrap, group, 5).await;
    let m = &g.members[0];
    assert_eq!(
        m.subscribed_topic_regex.as_ref().map(|r| r.as_str()),
        Some("(^orders-.*)"),
        "librdkafka's combined regex, as the member sent it"
    );
    let mut topics: Vec<&str> = m
        .assignment
        .topic_partitions
        .iter()
        .map(|t| t.topic_name.as_str())
        .collect();
    topics.sort();
    assert_eq!(topics, ["orders-eu", "orders-us"]);
    expected.extend(produce(&bootstrap, "orders-us", 3, 3).await);
    let n = expected.len();
    wait_seen(&seen, "orders-us records", |s| s.consumed.len() >= n).await;
    consumer.stop();
    {
        let s = seen.lock().expect("lock");
        let consumed: Vec<_> = s.consumed.keys().cloned().collect();
        expected.sort();
        assert_eq!(
            consumed, expected,
            "orders-* consumed once each, payments never"
        );
        assert!(s.consumed.values().all(|n| *n == 1));
    }
    broker.stop().await;
}

/// A regex that does not compile answers INVALID_REGULAR_EXPRESSION (128) and creates no
/// member; a valid one joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_regex_is_refused() {
    let broker = TestBroker::start_with(&[("offsets.topic.num.partitions", "2")]).await;
    let bootstrap = broker.bootstrap();
    broker.create_topic("orders-1", 1).await;
    let mut raw = Raw::connect(&bootstrap).await;
    let join = |regex: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("raw-regex")))
            .with_member_id(s("m-1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(5_000)
            .with_subscribed_topic_names(Some(Vec::<TopicName>::new()))
            .with_subscribed_topic_regex(Some(s(regex)))
            .with_topic_partitions(Some(Vec::new()))
    };
    let r = raw.call(&join("orders-[0-9"), 1).await;
    assert_eq!(r.error_code, 128, "INVALID_REGULAR_EXPRESSION: {r:?}");
    assert!(r.error_message.is_some());
    let d = describe(&bootstrap, "raw-regex").await;
    assert_eq!(d.error_code, 69, "GROUP_ID_NOT_FOUND: no group was created");

    let r = raw.call(&join("orders-[0-9]"), 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let assigned: usize = r
        .assignment
        .iter()
        .flat_map(|a| &a.topic_partitions)
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(assigned, 1);
    broker.stop().await;
}
