//! Consumer groups with librdkafka (the `rdkafka` crate): consumers in one group split a topic's
//! partitions, rebalance when one joins and when one dies (a raw member that stops heartbeating),
//! with eager and cooperative-sticky assignment; every message is consumed exactly once across
//! clean handovers; committed offsets survive a broker restart; the admin operations work.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

/// Broker settings that keep group tests fast: no initial rebalance delay, short sessions.
const GROUP_OVERRIDES: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "500"),
    ("offsets.topic.num.partitions", "8"),
];

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        producer_config(bootstrap, "1").create().expect("admin");
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topics");
    assert!(res[0].is_ok(), "{:?}", res[0]);
}

/// Produces `per_partition` messages to every partition; returns every (partition, offset).
async fn produce(bootstrap: &str, topic: &str, per_partition: usize, tag: &str) -> Vec<(i32, i64)> {
    produce_to(bootstrap, topic, PARTITIONS, per_partition, tag).await
}

/// Produces `per_partition` messages to each of the first `partitions` partitions.
async fn produce_to(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = producer_config(bootstrap, "-1").create().expect("producer");
    let mut futs = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let payload = format!("{tag}-{p}-{i}");
            let producer = &producer;
            futs.push(async move {
                let r = FutureRecord::<(), _>::to(topic)
                    .partition(p)
                    .payload(&payload);
                let d = producer
                    .send(r, TIMEOUT)
                    .await
                    .map_err(|(e, _)| e)
                    .expect("delivered");
                (d.partition, d.offset)
            });
        }
    }
    futures::future::join_all(futs).await
}

fn consumer_config(bootstrap: &str, group: &str, strategy: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .set("partition.assignment.strategy", strategy)
        .set("broker.address.family", "v4");
    c
}

/// What the consumers of a test saw.
#[derive(Default)]
struct Seen {
    /// (partition, offset) → consumer that processed it; a second delivery is a duplicate.
    consumed: HashMap<(i32, i64), usize>,
    duplicates: Vec<(i32, i64, usize, usize)>,
    /// Current assignment of each running consumer.
    assignment: BTreeMap<usize, BTreeSet<i32>>,
    commit_errors: Vec<String>,
}

/// A subscribed rdkafka consumer on its own thread: it processes each message once, commits it
/// synchronously before polling again, and publishes its assignment.
struct TestConsumer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestConsumer {
    fn start(id: usize, config: ClientConfig, topic: &str, seen: Arc<Mutex<Seen>>) -> TestConsumer {
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_string();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let consumer: BaseConsumer = config.create().expect("consumer");
            consumer.subscribe(&[&topic]).expect("subscribe");
            while !stop2.load(Ordering::SeqCst) {
                let msg = consumer.poll(Duration::from_millis(100));
                let assigned: BTreeSet<i32> = consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                let mut s = seen.lock().expect("lock");
                s.assignment.insert(id, assigned);
                let Some(msg) = msg else { continue };
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        s.commit_errors.push(format!("consumer {id}: poll: {e}"));
                        continue;
                    }
                };
                let key = (msg.partition(), msg.offset());
                if let Some(first) = s.consumed.insert(key, id) {
                    s.duplicates.push((key.0, key.1, first, id));
                }
                drop(s);
                if let Err(e) = consumer.commit_message(&msg, CommitMode::Sync) {
                    seen.lock()
                        .expect("lock")
                        .commit_errors
                        .push(format!("consumer {id}: commit {key:?}: {e}"));
                }
            }
            seen.lock().expect("lock").assignment.remove(&id);
            // Dropping the consumer closes it: revoke, commit nothing more, LeaveGroup.
            drop(consumer);
        });
        TestConsumer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }
}

/// Waits (polling, with a deadline) until `check` holds on what the consumers saw.
async fn wait_until(seen: &Arc<Mutex<Seen>>, what: &str, check: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let s = seen.lock().expect("lock");
            if check(&s) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: assignment {:?}, consumed {}, errors {:?}",
                    s.assignment,
                    s.consumed.len(),
                    s.commit_errors
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when the consumers in `ids` together own every partition exactly once, each at least
/// `min_each` of them.
fn split_among(s: &Seen, ids: &[usize], min_each: usize) -> bool {
    let mut all = Vec::new();
    for id in ids {
        let Some(a) = s.assignment.get(id) else {
            return false;
        };
        if a.len() < min_each {
            return false;
        }
        all.extend(a.iter().copied());
    }
    all.sort();
    all == (0..PARTITIONS).collect::<Vec<_>>()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A group member speaking the protocol by hand, used to simulate a consumer that is killed:
/// it joins, takes its partitions, and then goes silent without leaving.
struct RawMember {
    raw: Raw,
    group: String,
    member_id: String,
    generation: i32,
}

impl RawMember {
    async fn join_request(&self, topic: &str, strategy: &str) -> JoinGroupRequest {
        let sub = ConsumerProtocolSubscription::default().with_topics(vec![s(topic)]);
        let mut meta = BytesMut::new();
        meta.put_i16(1);
        sub.encode(&mut meta, 1).expect("subscription");
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_session_timeout_ms(1_500)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(&self.member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s(strategy))
                .with_metadata(meta.freeze())])
    }

    /// Joins and takes part in rebalances (heartbeating in between) until it holds at least one
    /// partition; returns them.
    async fn join_until_assigned(
        addr: &str,
        group: &str,
        topic: &str,
        strategy: &str,
    ) -> (RawMember, Vec<i32>) {
        let mut m = RawMember {
            raw: Raw::connect(addr).await,
            group: group.to_string(),
            member_id: String::new(),
            generation: -1,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "raw member never got a partition"
            );
            let req = m.join_request(topic, strategy).await;
            let resp = m.raw.call(&req, 7).await;
            if resp.error_code == 79 {
                m.member_id = resp.member_id.to_string();
                continue;
            }
            assert_eq!(resp.error_code, 0, "raw member join");
            m.member_id = resp.member_id.to_string();
            m.generation = resp.generation_id;
            assert_ne!(
                resp.leader.as_str(),
                m.member_id,
                "the raw member must not lead"
            );
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id(m.generation)
                .with_member_id(s(&m.member_id));
            let resp = m.raw.call(&sync, 3).await;
            if resp.error_code == 27 {
                continue;
            }
            assert_eq!(resp.error_code, 0, "raw member sync");
            let parts = decode_assignment(&resp.assignment);
            if !parts.is_empty() {
                return (m, parts);
            }
            // Cooperative: nothing yet; heartbeat until the next rebalance round.
            loop {
                assert!(
                    Instant::now() < deadline,
                    "raw member never got a partition"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                let hb = HeartbeatRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id(m.generation)
                    .with_member_id(s(&m.member_id));
                match m.raw.call(&hb, 3).await.error_code {
                    0 => continue,
                    27 => break,
                    e => panic!("raw member heartbeat: error {e}"),
                }
            }
        }
    }
}

fn decode_assignment(bytes: &Bytes) -> Vec<i32> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut b = bytes.clone();
    let version = b.get_i16().min(3);
    let a = ConsumerProtocolAssignment::decode(&mut b, version).expect("assignment");
    a.assigned_partitions
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect()
}

/// Two consumers split six partitions; a third joins and gets its share; a fourth member is
/// killed (stops heartbeating) and its partitions move to the others after its session
/// timeout. Every message is consumed exactly once.
async fn split_rebalance_and_kill(strategy: &str) {
    let broker = TestBroker::start_with(GROUP_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    let topic = format!("split-{strategy}");
    let group = format!("group-{strategy}");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = consumer_config(&bootstrap, &group, strategy);

    // Two consumers: three partitions each.
    let c0 = TestConsumer::start(0, config.clone(), &topic, seen.clone());
    let c1 = TestConsumer::start(1, config.clone(), &topic, seen.clone());
    wait_until(&seen, "two consumers splitting the partitions", |s| {
        split_among(s, &[0, 1], 3)
    })
    .await;
    let mut produced = produce(&bootstrap, &topic, 50, "first").await;
    let total = produced.len();
    wait_until(&seen, "first batch consumed", |s| s.consumed.len() >= total).await;

    // A third: two each.
    let c2 = TestConsumer::start(2, config.clone(), &topic, seen.clone());
    wait_until(&seen, "three consumers with two partitions each", |s| {
        split_among(s, &[0, 1, 2], 2)
    })
    .await;
    produced.extend(produce(&bootstrap, &topic, 50, "second").await);
    let total = produced.len();
    wait_until(&seen, "second batch consumed", |s| {
        s.consumed.len() >= total
    })
    .await;

    // A fourth member takes partitions and dies without leaving.
    let (dead, taken) = RawMember::join_until_assigned(&bootstrap, &group, &topic, strategy).await;
    assert!(!taken.is_empty());
    wait_until(
        &seen,
        "the others hand over the dead member's partitions",
        |s| {
            let owned: BTreeSet<i32> = s.assignment.values().flatten().copied().collect();
            taken.iter().all(|p| !owned.contains(p))
        },
    )
    .await;
    produced.extend(produce(&bootstrap, &topic, 50, "third").await);
    let total = produced.len();
    // After its session timeout (1.5 s) the partitions come back to the living consumers,
    // which resume from the committed offsets.
    let killed_at = Instant::now();
    wait_until(&seen, "the dead member's partitions reassigned", |s| {
        split_among(s, &[0, 1, 2], 2)
    })
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(30));
    wait_until(&seen, "everything consumed", |s| s.consumed.len() >= total).await;
    drop(dead);

    // A clean handover: one consumer closes (LeaveGroup), the other two take over.
    c2.stop();
    wait_until(&seen, "two consumers again", |s| split_among(s, &[0, 1], 3)).await;
    produced.extend(produce(&bootstrap, &topic, 20, "fourth").await);
    let total = produced.len();
    wait_until(&seen, "fourth batch consumed", |s| {
        s.consumed.len() >= total
    })
    .await;
    c0.stop();
    c1.stop();

    {
        let s = seen.lock().expect("lock");
        assert!(
            s.duplicates.is_empty(),
            "consumed twice: {:?}",
            s.duplicates
        );
        assert!(s.commit_errors.is_empty(), "errors: {:?}", s.commit_errors);
        let consumed: BTreeSet<(i32, i64)> = s.consumed.keys().copied().collect();
        let expected: BTreeSet<(i32, i64)> = produced.into_iter().collect();
        assert_eq!(consumed, expected, "every message consumed");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_consumers_split_rebalance_and_survive_a_kill() {
    split_rebalance_and_kill("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_consumers_split_rebalance_and_survive_a_kill() {
    split_rebalance_and_kill("cooperative-sticky").await;
}

/// Offsets committed by a group are where its consumers resume after a broker restart, and a
/// consumer that stays up across the restart carries on in the restored group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_after_restart() {
    let mut broker = TestBroker::start_with(GROUP_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    let topic = "resume";
    create_topic(&bootstrap, topic, PARTITIONS).await;
    produce(&bootstrap, topic, 20, "before").await;
    let group = "resume-group";

    // Commit offset 10 on every partition through a group member.
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&b, group, "range")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut seen = 0;
        let deadline = Instant::now() + TIMEOUT;
        while seen < 10 * PARTITIONS as usize {
            assert!(Instant::now() < deadline, "consumed only {seen}");
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.expect("message");
                if m.offset() < 10 {
                    seen += 1;
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Offset(10))
                .expect("tpl");
        }
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    })
    .await
    .expect("first consumer");

    broker.restart().await;
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, topic, 5, "after").await;
    let b = bootstrap.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&b, group, "range")
            .create()
            .expect("consumer");
        // The committed offsets are readable before joining.
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(tpl, TIMEOUT).expect("committed");
        for e in committed.elements() {
            assert_eq!(
                e.offset(),
                Offset::Offset(10),
                "partition {}",
                e.partition()
            );
        }
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut first: HashMap<i32, i64> = HashMap::new();
        let mut count = 0;
        let deadline = Instant::now() + TIMEOUT;
        while count < 15 * PARTITIONS as usize {
            assert!(
                Instant::now() < deadline,
                "consumed only {count} after restart"
            );
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.expect("message");
                first.entry(m.partition()).or_insert(m.offset());
                count += 1;
            }
        }
        for p in 0..PARTITIONS {
            assert_eq!(
                first.get(&p),
                Some(&10),
                "partition {p} resumes at the committed offset"
            );
        }
        // Keep going across a second restart: the same member carries on.
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Offset(15))
                .expect("tpl");
        }
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
        consumer
    })
    .await
    .expect("second consumer");

    // The consumer stays alive (and in the group) while the broker restarts.
    let consumer = Arc::new(consumer);
    broker.restart().await;
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, topic, 3, "third").await;
    let c = consumer.clone();
    tokio::task::spawn_blocking(move || {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count < 3 * PARTITIONS as usize {
            assert!(
                Instant::now() < deadline,
                "consumed only {count} after the 2nd restart"
            );
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                match m {
                    Ok(m) => {
                        assert!(
                            m.offset() >= 15,
                            "redelivered {}/{}",
                            m.partition(),
                            m.offset()
                        );
                        count += 1;
                    }
                    // A consumer riding through a restart may see transient errors.
                    Err(KafkaError::MessageConsumption(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    })
    .await
    .expect("consumer across the restart");
    tokio::task::spawn_blocking(move || drop(consumer))
        .await
        .expect("close");
    broker.stop().await;
}

/// Admin operations: list groups and describe them (members with their assignment), alter and
/// list a group's offsets, delete a group (refused while it has members).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_describes_alters_and_deletes_groups() {
    let broker = TestBroker::start_with(GROUP_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    let topic = "admin-topic";
    create_topic(&bootstrap, topic, 3).await;
    produce_to(&bootstrap, topic, 3, 2, "x").await;
    let b = bootstrap.clone();
    let member = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&b, "admin-group", "range")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + TIMEOUT;
        while consumer.assignment().map(|a| a.count()).unwrap_or(0) < 3 {
            assert!(Instant::now() < deadline, "no assignment");
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer
    })
    .await
    .expect("member");

    let admin: AdminClient<DefaultClientContext> =
        producer_config(&bootstrap, "1").create().expect("admin");
    let list = admin
        .inner()
        .fetch_group_list(None, TIMEOUT)
        .expect("list groups");
    let g = list
        .groups()
        .iter()
        .find(|g| g.name() == "admin-group")
        .expect("group listed");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    assert_eq!(g.members().len(), 1);
    let m = &g.members()[0];
    assert_eq!(m.client_host(), "/127.0.0.1");
    assert_eq!(
        decode_assignment(&Bytes::copy_from_slice(m.assignment().expect("assignment"))),
        vec![0, 1, 2]
    );
    assert!(m.metadata().is_some_and(|md| !md.is_empty()));

    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = admin
        .delete_groups(&["admin-group"], &opts)
        .await
        .expect("delete");
    assert!(
        matches!(
            &res[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::NonEmptyGroup))
        ),
        "{res:?}"
    );
    tokio::task::spawn_blocking(move || drop(member))
        .await
        .expect("member closes");

    // Alter the (now empty) group's offsets as an admin does: a commit without membership.
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let admin_consumer: BaseConsumer = consumer_config(&b, "admin-group", "range")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for (p, o) in [(0, 1), (1, 2), (2, 0)] {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))
                .expect("tpl");
        }
        // The group may still be rebalancing the departed member away for a moment.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match admin_consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => break,
                Err(e) => assert!(Instant::now() < deadline, "alter offsets: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut q = TopicPartitionList::new();
        for p in 0..3 {
            q.add_partition(topic, p);
        }
        let committed = admin_consumer
            .committed_offsets(q, TIMEOUT)
            .expect("list offsets");
        let got: Vec<(i32, Offset)> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Offset::Offset(1)),
                (1, Offset::Offset(2)),
                (2, Offset::Offset(0))
            ]
        );
    })
    .await
    .expect("alter offsets");

    let list = admin
        .inner()
        .fetch_group_list(Some("admin-group"), TIMEOUT)
        .expect("list");
    assert_eq!(list.groups()[0].state(), "Empty");
    let res = admin
        .delete_groups(&["admin-group"], &opts)
        .await
        .expect("delete");
    assert!(res[0].is_ok(), "{res:?}");
    let list = admin.inner().fetch_group_list(None, TIMEOUT).expect("list");
    assert!(list.groups().iter().all(|g| g.name() != "admin-group"));
    let res = admin
        .delete_groups(&["admin-group"], &opts)
        .await
        .expect("delete again");
    assert!(
        matches!(
            &res[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound))
        ),
        "{res:?}"
    );
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = consumer_config(&b, "admin-group", "range")
            .create()
            .expect("consumer");
        let mut q = TopicPartitionList::new();
        q.add_partition(topic, 0);
        let committed = c.committed_offsets(q, TIMEOUT).expect("offsets");
        assert_eq!(
            committed.elements()[0].offset(),
            Offset::Invalid,
            "offsets deleted"
        );
    })
    .await
    .expect("offsets gone");
    broker.stop().await;
}

/// KIP-848: librdkafka with `group.protocol=consumer` joins, gets every partition from the
/// server-side assignor, shares them when a second consumer joins and gets them back when it
/// leaves; every message is consumed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_members_share_and_rebalance() {
    let broker = TestBroker::start_with(&[
        ("group.consumer.heartbeat.interval.ms", "200"),
        ("offsets.topic.num.partitions", "8"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    let topic = "kip848";
    let group = "kip848-group";
    create_topic(&bootstrap, topic, PARTITIONS).await;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let c0 = TestConsumer::start(0, config.clone(), topic, seen.clone());
    wait_until(&seen, "one consumer with every partition", |s| {
        split_among(s, &[0], 6)
    })
    .await;
    let mut produced = produce(&bootstrap, topic, 30, "a").await;
    let total = produced.len();
    wait_until(&seen, "first batch consumed", |s| s.consumed.len() >= total).await;

    let c1 = TestConsumer::start(1, config.clone(), topic, seen.clone());
    wait_until(&seen, "two consumers with three partitions each", |s| {
        split_among(s, &[0, 1], 3)
    })
    .await;
    produced.extend(produce(&bootstrap, topic, 30, "b").await);
    let total = produced.len();
    wait_until(&seen, "second batch consumed", |s| {
        s.consumed.len() >= total
    })
    .await;

    // The coordinator's view (ConsumerGroupDescribe).
    let mut raw = Raw::connect(&bootstrap).await;
    let req = kafka_protocol::messages::ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s(group))]);
    let d = raw.call(&req, 1).await;
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        let n: usize = m
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        assert_eq!(n, 3);
        assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), topic);
        assert_eq!(m.member_epoch, g.assignment_epoch);
    }

    // The second consumer leaves: the first gets everything back.
    c1.stop();
    wait_until(&seen, "one consumer again", |s| split_among(s, &[0], 6)).await;
    produced.extend(produce(&bootstrap, topic, 10, "c").await);
    let total = produced.len();
    wait_until(&seen, "third batch consumed", |s| s.consumed.len() >= total).await;
    c0.stop();
    {
        let s = seen.lock().expect("lock");
        assert!(
            s.duplicates.is_empty(),
            "consumed twice: {:?}",
            s.duplicates
        );
        assert!(s.commit_errors.is_empty(), "errors: {:?}", s.commit_errors);
        let consumed: BTreeSet<(i32, i64)> = s.consumed.keys().copied().collect();
        let expected: BTreeSet<(i32, i64)> = produced.into_iter().collect();
        assert_eq!(consumed, expected, "every message consumed");
    }
    broker.stop().await;
}
