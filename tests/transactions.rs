//! Transactions (exactly-once) end to end: librdkafka's transactional producer (the `rdkafka`
//! crate) committing and aborting across topics with consumer offsets, a zombie fenced by a new
//! instance of its transactional id, a transaction the broker aborts on its timeout, the
//! coordinators' error codes for bad requests through a hand-rolled client, and a
//! consume-transform-produce loop that copies 100 000 records exactly once while the broker
//! process is SIGKILLed and restarted under it.
//!
//! Visibility is checked by reading to the end with read_committed and read_uncommitted
//! consumers, after waiting (bounded) until each partition is stable: its last stable offset
//! (ListOffsets, read_committed) equals its high watermark, so every marker is written.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::cluster::{within, Cluster};
use common::raw::Raw;
use common::{TestBroker, TIMEOUT};
use futures::StreamExt;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, BrokerId, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, EndTxnRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, JoinGroupRequest, ListOffsetsRequest, OffsetFetchRequest,
    ProduceRequest, ProducerId, SyncGroupRequest, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, FutureProducer, FutureRecord, Producer, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Broker keys of every test here: few transaction-state and offsets partitions (fast start),
/// no initial rebalance delay, short sessions allowed.
const TXN_OVERRIDES: &[(&str, &str)] = &[
    ("transaction.state.log.num.partitions", "4"),
    ("transaction.state.log.replication.factor", "1"),
    ("offsets.topic.num.partitions", "4"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "500"),
];

/// How long a partition may take to become stable (every marker written).
const STABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka error codes the raw test expects.
const NONE: i16 = 0;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const MEMBER_ID_REQUIRED: i16 = 79;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;

/// Runs a blocking client call (librdkafka's transactional calls block) on this worker thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A transactional producer's configuration. `message.timeout.ms` is left to librdkafka, which
/// derives it from `transaction.timeout.ms`.
fn txn_producer_config(bootstrap: &str, transactional_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("linger.ms", "5")
        .set("broker.address.family", "v4");
    c
}

/// A consumer's configuration: no auto commit, from the earliest offset, `isolation` as given.
fn consumer_config(bootstrap: &str, group: &str, isolation: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .set("broker.address.family", "v4");
    c
}

/// Whether `code` is how librdkafka reports a fenced transactional producer (it normalises
/// PRODUCER_FENCED and INVALID_PRODUCER_EPOCH to its own `__FENCED`).
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced
    )
}

/// A record as a consumer saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    topic: String,
    partition: i32,
    key: String,
    value: String,
}

impl Rec {
    fn new(topic: &str, partition: i32, key: &str, value: &str) -> Rec {
        Rec {
            topic: topic.to_string(),
            partition,
            key: key.to_string(),
            value: value.to_string(),
        }
    }
}

/// Waits until every partition of `topics` (`(name, partition count)`) is stable: its last
/// stable offset equals its high watermark (no open transaction, every marker written). Returns
/// each partition's end offset.
async fn await_stable(
    bootstrap: &str,
    topics: &[(&str, i32)],
    limit: Duration,
) -> BTreeMap<(String, i32), i64> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match stable_ends(bootstrap, topics).await {
            Ok(ends) => return ends,
            Err(why) => why,
        };
        assert!(
            Instant::now() < deadline,
            "partitions not stable within {limit:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every partition's end offset if each one's last stable offset equals its high watermark.
async fn stable_ends(
    bootstrap: &str,
    topics: &[(&str, i32)],
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let mut raw = Raw::connect(bootstrap).await;
    let committed = list_latest(&mut raw, topics, 1).await?;
    let uncommitted = list_latest(&mut raw, topics, 0).await?;
    for (tp, lso) in &committed {
        let hw = uncommitted.get(tp).copied().unwrap_or(-1);
        if *lso != hw {
            return Err(format!(
                "{tp:?}: last stable offset {lso}, high watermark {hw}"
            ));
        }
    }
    Ok(committed)
}

/// ListOffsets (v5, latest) at `isolation` (0 read_uncommitted, 1 read_committed).
async fn list_latest(
    raw: &mut Raw,
    topics: &[(&str, i32)],
    isolation: i8,
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(
            topics
                .iter()
                .map(|(t, n)| {
                    ListOffsetsTopic::default()
                        .with_name(tname(t))
                        .with_partitions(
                            (0..*n)
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = raw.call(&req, 5).await;
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != NONE {
                return Err(format!(
                    "ListOffsets {}-{} (isolation {isolation}): error {}",
                    t.name.as_str(),
                    p.partition_index,
                    p.error_code
                ));
            }
            out.insert((t.name.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

/// Reads every partition of `topics` from the beginning until each reports its end
/// (`enable.partition.eof`), with `isolation`; one consumer per topic (an end names only its
/// partition). Call after [`await_stable`]: the ends then cannot move back, so no partition
/// reports its end early.
fn read_to_end(bootstrap: &str, isolation: &str, topics: &[(&str, i32)]) -> Vec<Rec> {
    let mut out = Vec::new();
    for (topic, partitions) in topics {
        read_topic_to_end(bootstrap, isolation, topic, *partitions, &mut out);
    }
    out
}

fn read_topic_to_end(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partitions: i32,
    out: &mut Vec<Rec>,
) {
    let consumer: BaseConsumer = consumer_config(bootstrap, "txn-test-reader", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut pending: BTreeSet<i32> = (0..partitions).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{isolation} reader of {topic}: no end reached on partitions {pending:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        match m {
            Ok(m) => out.push(Rec {
                topic: m.topic().to_string(),
                partition: m.partition(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            }),
            Err(KafkaError::PartitionEOF(p)) => {
                pending.remove(&p);
            }
            Err(e) => panic!("{isolation} reader of {topic}: {e}"),
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tname(v: &str) -> TopicName {
    TopicName(s(v))
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn txn_id(v: &str) -> TransactionalId {
    TransactionalId(s(v))
}

/// Creates topics through the admin API (for the broker process of the SIGKILL test).
async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .create()
        .expect("admin");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1)))
        .collect();
    let res = admin
        .create_topics(&new, &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await
        .expect("create topics");
    for r in res {
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Produces `records` (non-transactional, acks=all) and checks each was delivered.
async fn produce_plain(bootstrap: &str, records: &[Rec]) {
    let producer: FutureProducer = common::producer_config(bootstrap, "-1")
        .create()
        .expect("producer");
    for r in records {
        producer
            .send(
                FutureRecord::to(&r.topic)
                    .partition(r.partition)
                    .key(&r.key)
                    .payload(&r.value),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// The offsets of `topic` as a list, for `send_offsets_to_transaction` and comparisons.
fn offsets_list(topic: &str, offsets: &[(i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("tpl");
    }
    tpl
}

/// Partitions `0..n` of `topic`, without offsets.
fn partitions_list(topic: &str, n: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    tpl
}

fn offsets_of(tpl: &TopicPartitionList) -> Vec<(String, i32, Offset)> {
    let mut v: Vec<(String, i32, Offset)> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition(), e.offset()))
        .collect();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

/// Sends `records` inside the producer's open transaction; waits until librdkafka has them
/// in its queue (deliveries complete at commit, or by `flush`).
fn send_all(producer: &ThreadedProducer<DefaultProducerContext>, records: &[Rec]) {
    for r in records {
        let rec = BaseRecord::to(&r.topic)
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.value);
        producer
            .send(rec)
            .map_err(|(e, _)| e)
            .expect("queued in the transaction");
    }
}

/// 1. A transaction over six partitions of two topics with a consumer group's offsets commits;
/// a second one aborts. read_committed sees exactly the first; read_uncommitted both; the
/// group's committed offsets are the first transaction's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_with_offsets() {
    const IN: &str = "eos-in";
    const OUT: [&str; 2] = ["eos-out-a", "eos-out-b"];
    const GROUP: &str = "eos-group";
    let broker = TestBroker::start_with(TXN_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    broker.create_topic(IN, 2).await;
    for t in OUT {
        broker.create_topic(t, 3).await;
    }
    let input: Vec<Rec> = (0..2)
        .flat_map(|p| (0..10).map(move |i| Rec::new(IN, p, &format!("in-{p}"), &format!("{i}"))))
        .collect();
    produce_plain(&bootstrap, &input).await;

    // A member of the group consumes the input.
    let consumer: BaseConsumer = consumer_config(&bootstrap, GROUP, "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[IN]).expect("subscribe");
    let consumed = blocking(|| {
        let deadline = Instant::now() + TIMEOUT;
        let mut n = 0;
        while n < input.len() {
            assert!(Instant::now() < deadline, "consumed {n} of {}", input.len());
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m.expect("consume");
                n += 1;
            }
        }
        n
    });
    assert_eq!(consumed, 20);
    let cgm = consumer.group_metadata().expect("group metadata");

    let records = |tag: &str| -> Vec<Rec> {
        OUT.iter()
            .flat_map(|t| {
                (0..3).flat_map(move |p| {
                    (0..3).map(move |i| {
                        Rec::new(t, p, &format!("{tag}-{p}"), &format!("{tag}-{t}-{p}-{i}"))
                    })
                })
            })
            .collect()
    };
    let committed = records("commit");
    let aborted = records("abort");
    let first = offsets_list(IN, &[(0, 5), (1, 5)]);
    let second = offsets_list(IN, &[(0, 10), (1, 10)]);

    let producer: ThreadedProducer<DefaultProducerContext> =
        txn_producer_config(&bootstrap, "eos-tx")
            .create()
            .expect("producer");
    blocking(|| {
        producer.init_transactions(TIMEOUT).expect("init");
        producer.begin_transaction().expect("begin");
        send_all(&producer, &committed);
        producer
            .send_offsets_to_transaction(&first, &cgm, TIMEOUT)
            .expect("offsets in the first transaction");
        producer.commit_transaction(TIMEOUT).expect("commit");

        producer.begin_transaction().expect("begin again");
        send_all(&producer, &aborted);
        producer
            .send_offsets_to_transaction(&second, &cgm, TIMEOUT)
            .expect("offsets in the second transaction");
        // Delivered before the abort (abort purges what is still queued).
        producer.flush(TIMEOUT).expect("flush");
        producer.abort_transaction(TIMEOUT).expect("abort");
    });

    let outs: Vec<(&str, i32)> = OUT.iter().map(|t| (*t, 3)).collect();
    await_stable(&bootstrap, &outs, STABLE_TIMEOUT).await;
    let mut seen = blocking(|| read_to_end(&bootstrap, "read_committed", &outs));
    seen.sort();
    let mut want = committed.clone();
    want.sort();
    assert_eq!(
        seen, want,
        "read_committed sees exactly the committed transaction"
    );

    let mut seen = blocking(|| read_to_end(&bootstrap, "read_uncommitted", &outs));
    seen.sort();
    let mut want: Vec<Rec> = committed.iter().chain(&aborted).cloned().collect();
    want.sort();
    assert_eq!(
        seen, want,
        "read_uncommitted sees both transactions' records, once each, no control record"
    );

    let offsets = blocking(|| {
        consumer
            .committed_offsets(partitions_list(IN, 2), TIMEOUT)
            .expect("committed offsets")
    });
    assert_eq!(
        offsets_of(&offsets),
        offsets_of(&first),
        "the group's offsets are the committed transaction's"
    );
    // The coordinator's counters: one commit and one abort completed, nothing open.
    let addr = broker.metrics_addr();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, text) = common::http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or(-1.0)
        };
        let seen = (
            value("esker_transactions_committed_total"),
            value("esker_transactions_aborted_total"),
            value("esker_transactions_open"),
            value("esker_log_last_stable_offset_lag_max"),
        );
        if seen == (1.0, 1.0, 0.0, 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transaction metrics (committed, aborted, open, LSO lag) = {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(consumer);
    drop(producer);
    broker.stop().await;
}

/// 2. A second producer with the same transactional id fences the first: the first's next
/// send and commit fail with a fatal fencing error, the second commits, and read_committed
/// sees only the second's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_is_fenced() {
    const TOPIC: &str = "zombie";
    let broker = TestBroker::start_with(TXN_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    broker.create_topic(TOPIC, 2).await;

    let zombie: FutureProducer = txn_producer_config(&bootstrap, "zombie-tx")
        .create()
        .expect("producer 1");
    blocking(|| {
        zombie.init_transactions(TIMEOUT).expect("init 1");
        zombie.begin_transaction().expect("begin 1");
    });
    zombie
        .send(
            FutureRecord::to(TOPIC)
                .partition(0)
                .key("z")
                .payload("zombie-a"),
            TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("producer 1's first record delivered");

    let fresh: FutureProducer = txn_producer_config(&bootstrap, "zombie-tx")
        .create()
        .expect("producer 2");
    blocking(|| fresh.init_transactions(TIMEOUT)).expect("init 2 (fences producer 1)");

    // Producer 1 goes on: a record for a partition not yet in its transaction
    // (AddPartitionsToTxn), then a commit (EndTxn).
    let late = zombie.send_result(
        FutureRecord::to(TOPIC)
            .partition(1)
            .key("z")
            .payload("zombie-b"),
    );
    let commit = blocking(|| zombie.commit_transaction(TIMEOUT));
    match commit {
        Err(KafkaError::Transaction(e)) => {
            assert!(
                is_fencing(e.code()),
                "producer 1's commit failed with {e} ({:?}), not a fencing error",
                e.code()
            );
            assert!(e.is_fatal(), "fencing is fatal: {e}");
        }
        other => panic!("producer 1's commit after being fenced: {other:?}"),
    }
    match late {
        Err((e, _)) => eprintln!("producer 1's send refused at once: {e}"),
        Ok(delivery) => {
            let outcome = tokio::time::timeout(TIMEOUT, delivery)
                .await
                .expect("producer 1's late record settles")
                .expect("delivery report");
            match outcome {
                Err((e, _)) => eprintln!("producer 1's late record failed: {e}"),
                Ok(d) => panic!("producer 1's record delivered after fencing: {d:?}"),
            }
        }
    }
    let (code, reason) = zombie
        .client()
        .fatal_error()
        .expect("producer 1 is in a fatal state");
    assert!(is_fencing(code), "fatal error {code:?}: {reason}");

    blocking(|| fresh.begin_transaction()).expect("begin 2");
    for (p, v) in [(0, "fresh-a"), (1, "fresh-b")] {
        fresh
            .send(
                FutureRecord::to(TOPIC).partition(p).key("f").payload(v),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("producer 2's record delivered");
    }
    blocking(|| fresh.commit_transaction(TIMEOUT)).expect("producer 2 commits");

    await_stable(&bootstrap, &[(TOPIC, 2)], STABLE_TIMEOUT).await;
    let seen = blocking(|| read_to_end(&bootstrap, "read_committed", &[(TOPIC, 2)]));
    let values: BTreeSet<String> = seen.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        BTreeSet::from(["fresh-a".to_string(), "fresh-b".to_string()]),
        "read_committed sees only producer 2's records"
    );
    assert_eq!(seen.len(), 2, "once each: {seen:?}");
    let all = blocking(|| read_to_end(&bootstrap, "read_uncommitted", &[(TOPIC, 2)]));
    assert!(
        all.iter().any(|r| r.value == "zombie-a"),
        "producer 1's aborted record is in the log: {all:?}"
    );
    drop(zombie);
    drop(fresh);
    broker.stop().await;
}

/// 3. A transaction left open past its `transaction.timeout.ms` is aborted by the broker:
/// the partition becomes stable past its records, read_committed never sees them,
/// read_uncommitted does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_transaction_is_aborted() {
    const TOPIC: &str = "slow";
    let mut overrides = TXN_OVERRIDES.to_vec();
    overrides.push((
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "200",
    ));
    let broker = TestBroker::start_with(&overrides).await;
    let bootstrap = broker.bootstrap();
    broker.create_topic(TOPIC, 1).await;

    let producer: FutureProducer = txn_producer_config(&bootstrap, "slow-tx")
        .set("transaction.timeout.ms", "1000")
        .create()
        .expect("producer");
    blocking(|| {
        producer.init_transactions(TIMEOUT).expect("init");
        producer.begin_transaction().expect("begin");
    });
    let mut last = -1;
    for i in 0..5 {
        let v = format!("never-committed-{i}");
        let d = producer
            .send(
                FutureRecord::to(TOPIC).partition(0).key("k").payload(&v),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        last = d.offset;
    }
    let started = Instant::now();

    // Never committed: the broker aborts it, which moves the last stable offset past it.
    let ends = await_stable(&bootstrap, &[(TOPIC, 1)], STABLE_TIMEOUT).await;
    let end = ends[&(TOPIC.to_string(), 0)];
    assert!(
        end > last + 1,
        "the end ({end}) is past the records (last at {last}) and an abort marker"
    );
    eprintln!(
        "aborted by the broker {} ms after the last send",
        started.elapsed().as_millis()
    );
    let seen = blocking(|| read_to_end(&bootstrap, "read_committed", &[(TOPIC, 1)]));
    assert!(seen.is_empty(), "read_committed saw {seen:?}");
    let all = blocking(|| read_to_end(&bootstrap, "read_uncommitted", &[(TOPIC, 1)]));
    assert_eq!(
        all.len(),
        5,
        "read_uncommitted sees the aborted records: {all:?}"
    );

    // The producer's epoch was bumped: its commit cannot succeed.
    let commit = blocking(|| producer.commit_transaction(TIMEOUT));
    assert!(
        commit.is_err(),
        "a transaction the broker aborted committed"
    );
    drop(producer);
    broker.stop().await;
}

/// Whether a coordinator answered a code its clients retry: loading, moved, or a transaction
/// still completing.
fn retriable(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
    )
}

/// `retrying!(what, call.await, |resp| code)`: repeats the call (bounded) while its code is
/// [`retriable`]; evaluates to the first other response.
macro_rules! retrying {
    ($what:expr, $call:expr, |$r:ident| $code:expr) => {{
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let resp = $call;
            let code: i16 = {
                let $r = &resp;
                $code
            };
            if !retriable(code) {
                break resp;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still error {code} after {TIMEOUT:?}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }};
}

/// The raw client's transactional producer.
struct RawProducer {
    id: &'static str,
    pid: i64,
    epoch: i16,
    /// Next sequence number on the test's one partition.
    seq: i32,
}

async fn init_producer_id(raw: &mut Raw, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = retrying!("InitProducerId", raw.call(&req, 4).await, |r| r.error_code);
    assert_eq!(resp.error_code, NONE, "InitProducerId {id}");
    (resp.producer_id.0, resp.producer_epoch)
}

async fn add_partitions(raw: &mut Raw, id: &str, pid: i64, epoch: i16, version: i16) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(tname(RAW_TOPIC))
            .with_partitions(vec![0])]);
    let resp = retrying!("AddPartitionsToTxn", raw.call(&req, version).await, |r| {
        r.results_by_topic_v3_and_below
            .first()
            .and_then(|t| t.results_by_partition.first())
            .map_or(-1, |p| p.partition_error_code)
    });
    resp.results_by_topic_v3_and_below
        .first()
        .and_then(|t| t.results_by_partition.first())
        .map_or(-1, |p| p.partition_error_code)
}

async fn end_txn(raw: &mut Raw, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp = retrying!("EndTxn", raw.call(&req, 3).await, |r| r.error_code);
    resp.error_code
}

async fn txn_offset_commit(
    raw: &mut Raw,
    p: &RawProducer,
    member: &str,
    generation: i32,
    offset: i64,
) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(p.id))
        .with_group_id(gid(RAW_GROUP))
        .with_producer_id(ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(tname(RAW_TOPIC))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("")))])]);
    let resp = retrying!("TxnOffsetCommit", raw.call(&req, 3).await, |r| {
        r.topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(-1, |p| p.error_code)
    });
    resp.topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code)
}

const RAW_TOPIC: &str = "raw-txn";
const RAW_GROUP: &str = "raw-txn-group";

/// One transactional record on the raw topic, acknowledged.
async fn produce_txn(raw: &mut Raw, p: &mut RawProducer, value: &str) {
    let mut b = esker::log::batch::BatchBuilder::new(1_700_000_000_000)
        .producer(p.pid, p.epoch, p.seq)
        .transactional(true);
    b.record(
        Some(b"raw".as_slice()),
        Some(value.as_bytes()),
        1_700_000_000_000,
    );
    let req = ProduceRequest::default()
        .with_transactional_id(Some(txn_id(p.id)))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tname(RAW_TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(b.build().freeze()))])]);
    let resp = raw.call(&req, 9).await;
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(code, NONE, "transactional produce of {value}");
    p.seq += 1;
}

/// A whole valid transaction: one record, the group's offset, commit.
async fn valid_transaction(
    raw: &mut Raw,
    p: &mut RawProducer,
    member: &str,
    generation: i32,
    n: i64,
) {
    assert_eq!(
        add_partitions(raw, p.id, p.pid, p.epoch, 3).await,
        NONE,
        "AddPartitionsToTxn of transaction {n}"
    );
    produce_txn(raw, p, &format!("txn-{n}")).await;
    add_offsets(raw, p, n).await;
    assert_eq!(
        txn_offset_commit(raw, p, member, generation, n).await,
        NONE,
        "TxnOffsetCommit of transaction {n}"
    );
    assert_eq!(
        end_txn(raw, p.id, p.pid, p.epoch, true).await,
        NONE,
        "EndTxn of transaction {n}"
    );
}

async fn add_offsets(raw: &mut Raw, p: &RawProducer, n: i64) {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(p.id))
        .with_producer_id(ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_group_id(gid(RAW_GROUP));
    let resp = retrying!("AddOffsetsToTxn", raw.call(&req, 3).await, |r| r.error_code);
    assert_eq!(resp.error_code, NONE, "AddOffsetsToTxn of transaction {n}");
}

/// The group's committed offset of the raw topic's partition (OffsetFetch v7, stable only).
async fn group_offset(raw: &mut Raw) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(RAW_GROUP))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(tname(RAW_TOPIC))
            .with_partition_indexes(vec![0])]))
        .with_require_stable(true);
    let resp = retrying!("OffsetFetch", raw.call(&req, 7).await, |r| {
        let c = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(r.error_code, |p| p.error_code);
        // Pending transactional offsets answer UNSTABLE_OFFSET_COMMIT until the marker.
        if c == UNSTABLE_OFFSET_COMMIT || r.error_code == UNSTABLE_OFFSET_COMMIT {
            CONCURRENT_TRANSACTIONS
        } else {
            c.max(r.error_code)
        }
    });
    assert_eq!(resp.error_code, NONE, "OffsetFetch");
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "OffsetFetch partition");
    p.committed_offset
}

/// Joins the group as its only member (classic protocol); returns (member id, generation).
async fn join_group(raw: &mut Raw) -> (String, i32) {
    let mut sub = BytesMut::new();
    sub.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(RAW_TOPIC)])
        .encode(&mut sub, 1)
        .expect("subscription");
    let mut member = String::new();
    let joined = loop {
        let req = JoinGroupRequest::default()
            .with_group_id(gid(RAW_GROUP))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(&member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(sub.clone().freeze())]);
        let resp = retrying!("JoinGroup", raw.call(&req, 5).await, |r| r.error_code);
        if resp.error_code == MEMBER_ID_REQUIRED && member.is_empty() {
            member = resp.member_id.to_string();
            continue;
        }
        assert_eq!(resp.error_code, NONE, "JoinGroup");
        break resp;
    };
    let member = joined.member_id.to_string();
    let mut assignment = BytesMut::new();
    assignment.put_i16(1);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![
            kafka_protocol::messages::consumer_protocol_assignment::TopicPartition::default()
                .with_topic(tname(RAW_TOPIC))
                .with_partitions(vec![0]),
        ])
        .encode(&mut assignment, 1)
        .expect("assignment");
    let req = SyncGroupRequest::default()
        .with_group_id(gid(RAW_GROUP))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&member))
            .with_assignment(assignment.freeze())]);
    let resp = raw.call(&req, 3).await;
    assert_eq!(resp.error_code, NONE, "SyncGroup");
    (member, joined.generation_id)
}

/// 4. Bad transactional requests get Kafka's codes, and each leaves the valid producer able
/// to commit a transaction with the group's offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactional_requests() {
    let broker = TestBroker::start_with(TXN_OVERRIDES).await;
    let bootstrap = broker.bootstrap();
    broker.create_topic(RAW_TOPIC, 1).await;
    let mut raw = Raw::connect(&bootstrap).await;
    let limit = Duration::from_secs(120);
    tokio::time::timeout(limit, async {
        // The transaction coordinator of the id is this broker (once loaded).
        let find = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("raw-tx")]);
        let found = retrying!("FindCoordinator", raw.call(&find, 4).await, |r| r
            .coordinators
            .first()
            .map_or(-1, |c| c.error_code));
        assert_eq!(
            found.coordinators[0].error_code, NONE,
            "FindCoordinator TRANSACTION"
        );

        let (pid, stale) = init_producer_id(&mut raw, "raw-tx").await;
        let (pid2, epoch) = init_producer_id(&mut raw, "raw-tx").await;
        assert_eq!(pid2, pid, "the same transactional id keeps its producer id");
        assert_eq!(epoch, stale + 1, "a second InitProducerId bumps the epoch");
        let mut p = RawProducer {
            id: "raw-tx",
            pid,
            epoch,
            seq: 0,
        };
        let (member, generation) = join_group(&mut raw).await;

        // EndTxn for a transactional id the coordinator never saw.
        assert_eq!(
            end_txn(&mut raw, "raw-unknown-tx", pid, epoch, true).await,
            INVALID_PRODUCER_ID_MAPPING,
            "EndTxn for an unknown transactional id"
        );
        valid_transaction(&mut raw, &mut p, &member, generation, 1).await;
        assert_eq!(group_offset(&mut raw).await, 1);

        // AddPartitionsToTxn with the epoch the second InitProducerId fenced.
        assert_eq!(
            add_partitions(&mut raw, "raw-tx", pid, stale, 3).await,
            PRODUCER_FENCED,
            "AddPartitionsToTxn v3 with a stale epoch"
        );
        assert_eq!(
            add_partitions(&mut raw, "raw-tx", pid, stale, 1).await,
            INVALID_PRODUCER_EPOCH,
            "AddPartitionsToTxn v1 with a stale epoch (PRODUCER_FENCED is v2+)"
        );
        valid_transaction(&mut raw, &mut p, &member, generation, 2).await;
        assert_eq!(group_offset(&mut raw).await, 2);

        // TxnOffsetCommit with a wrong generation and with an unknown member, inside an open
        // transaction that then commits.
        assert_eq!(
            add_partitions(&mut raw, p.id, p.pid, p.epoch, 3).await,
            NONE
        );
        produce_txn(&mut raw, &mut p, "txn-3").await;
        add_offsets(&mut raw, &p, 3).await;
        assert_eq!(
            txn_offset_commit(&mut raw, &p, &member, generation + 7, 99).await,
            ILLEGAL_GENERATION,
            "TxnOffsetCommit v3 with a wrong generation"
        );
        assert_eq!(
            txn_offset_commit(&mut raw, &p, "no-such-member", generation, 99).await,
            UNKNOWN_MEMBER_ID,
            "TxnOffsetCommit v3 for an unknown member"
        );
        assert_eq!(
            txn_offset_commit(&mut raw, &p, &member, generation, 3).await,
            NONE,
            "TxnOffsetCommit v3 of the member"
        );
        assert_eq!(end_txn(&mut raw, p.id, p.pid, p.epoch, true).await, NONE);
        assert_eq!(
            group_offset(&mut raw).await,
            3,
            "the group's offset is the last commit's"
        );

        // Three committed records, each followed by its marker.
        let ends = await_stable(&bootstrap, &[(RAW_TOPIC, 1)], STABLE_TIMEOUT).await;
        assert_eq!(
            ends[&(RAW_TOPIC.to_string(), 0)],
            6,
            "3 records and 3 markers"
        );
        let b = bootstrap.clone();
        let seen = blocking(move || read_to_end(&b, "read_committed", &[(RAW_TOPIC, 1)]));
        let values: Vec<&str> = seen.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, ["txn-1", "txn-2", "txn-3"]);
    })
    .await
    .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
    drop(raw);
    broker.stop().await;
}

// ----- 5. consume-transform-produce across SIGKILLs -----

const CTP_IN: &str = "ctp-in";
const CTP_OUT: &str = "ctp-out";
const CTP_GROUP: &str = "ctp-group";
const CTP_PARTITIONS: i32 = 4;
const CTP_PER_PARTITION: i64 = 25_000;
/// Records per transaction at most.
const CTP_BATCH: usize = 400;
/// Timeout of each transactional call of the copy loop.
const CTP_CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn ctp_key(p: i32, i: i64) -> String {
    format!("k{p}-{i:05}")
}

fn ctp_value(p: i32, i: i64) -> String {
    format!("v{p}-{i:05}")
}

/// Counts the consumer's rebalances (assignments and revocations), which are served only
/// inside its `poll`.
#[derive(Default)]
struct RebalanceCounter(AtomicU64);

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the copy loop shares with the test.
#[derive(Default)]
struct CopyState {
    stop: AtomicBool,
    /// Next input offset to copy per partition, as committed (acknowledged commits, and the
    /// group's committed offsets when the loop finds nothing to read).
    committed: Mutex<BTreeMap<i32, i64>>,
    commits: AtomicU64,
    aborts: AtomicU64,
    recreated: AtomicU64,
    /// Between `begin_transaction` and the transaction's outcome.
    in_transaction: AtomicBool,
    /// Set by the test: the loop "crashes" in its next transaction once the records are
    /// written (drops its clients without committing or aborting), then clears it.
    crash: AtomicBool,
    crashes: AtomicU64,
}

impl CopyState {
    /// Input records copied and committed so far.
    fn progress(&self) -> i64 {
        self.committed.lock().expect("state").values().sum()
    }

    fn done(&self) -> bool {
        let c = self.committed.lock().expect("state");
        (0..CTP_PARTITIONS).all(|p| c.get(&p).copied().unwrap_or(0) >= CTP_PER_PARTITION)
    }

    fn record(&self, tpl: &TopicPartitionList) {
        let mut c = self.committed.lock().expect("state");
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                let v = c.entry(e.partition()).or_insert(0);
                *v = (*v).max(o);
            }
        }
    }
}

/// Stops the copy loop when the test ends, however it ends.
struct StopOnDrop(Arc<CopyState>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

type CtpConsumer = BaseConsumer<RebalanceCounter>;
type CtpProducer = ThreadedProducer<DefaultProducerContext>;

fn ctp_consumer(bootstrap: &str) -> Result<CtpConsumer, String> {
    let c: CtpConsumer = consumer_config(bootstrap, CTP_GROUP, "read_committed")
        .create_with_context(RebalanceCounter::default())
        .map_err(|e| format!("consumer: {e}"))?;
    c.subscribe(&[CTP_IN])
        .map_err(|e| format!("subscribe: {e}"))?;
    Ok(c)
}

fn ctp_producer(bootstrap: &str) -> Result<CtpProducer, String> {
    let p: CtpProducer = txn_producer_config(bootstrap, "ctp-tx")
        .set("transaction.timeout.ms", "10000")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    p.init_transactions(CTP_CALL_TIMEOUT)
        .map_err(|e| format!("init_transactions: {e}"))?;
    Ok(p)
}

/// What to do after a failed transactional step.
enum Recovery {
    /// Abort the transaction and rewind the consumer to the group's offsets.
    Abort,
    /// Drop the producer (fatal, e.g. fenced) and the consumer; start both again.
    Recreate,
}

fn recovery(producer: &CtpProducer, e: &KafkaError) -> Recovery {
    let fatal = producer.client().fatal_error().is_some()
        || matches!(e, KafkaError::Transaction(t) if t.is_fatal());
    if fatal {
        Recovery::Recreate
    } else {
        Recovery::Abort
    }
}

/// Commits, calling again while librdkafka says the commit is retriable.
fn commit(producer: &CtpProducer) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match producer.commit_transaction(CTP_CALL_TIMEOUT) {
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && !e.txn_requires_abort() && attempts < 5 =>
            {
                attempts += 1;
                eprintln!("copy: commit retried: {e}");
            }
            other => return other,
        }
    }
}

fn abort(producer: &CtpProducer) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match producer.abort_transaction(CTP_CALL_TIMEOUT) {
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && !e.is_fatal() && attempts < 5 =>
            {
                attempts += 1;
                eprintln!("copy: abort retried: {e}");
            }
            other => return other,
        }
    }
}

/// The consume-transform-produce loop: read_committed input in a group, each record copied
/// (key, value, partition) to the output in transactions with the consumed offsets, until the
/// group has committed the whole input. Recreates its clients after fatal errors, aborts (and
/// rewinds by recreating the consumer) after the others.
fn copy_loop(bootstrap: &str, state: &CopyState, deadline: Instant) -> Result<(), String> {
    let mut producer: Option<CtpProducer> = None;
    let mut consumer: Option<CtpConsumer> = None;
    let mut failures_in_a_row = 0u32;
    loop {
        if state.done() {
            return Ok(());
        }
        if state.stop.load(Ordering::SeqCst) {
            return Err("stopped by the test".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the copy did not finish in time: {} of {} records committed",
                state.progress(),
                i64::from(CTP_PARTITIONS) * CTP_PER_PARTITION
            ));
        }
        if failures_in_a_row > 0 {
            // Back off while the broker is down or restarting.
            std::thread::sleep(Duration::from_millis(
                100 * u64::from(failures_in_a_row.min(10)),
            ));
        }
        let p = match producer.take() {
            Some(p) => p,
            None => match ctp_producer(bootstrap) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("copy: {e}");
                    failures_in_a_row += 1;
                    continue;
                }
            },
        };
        let c = match consumer.take() {
            Some(c) => c,
            None => match ctp_consumer(bootstrap) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("copy: {e}");
                    producer = Some(p);
                    failures_in_a_row += 1;
                    continue;
                }
            },
        };

        // A batch: records polled until the batch is full or the input pauses. A rebalance
        // after the first record (positions reset to the group's offsets) voids the batch.
        let mut batch: Vec<(i32, i64, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut rebalances = c.context().0.load(Ordering::SeqCst);
        let mut voided = false;
        let poll_until = Instant::now() + Duration::from_secs(1);
        while batch.len() < CTP_BATCH && Instant::now() < poll_until {
            let m = c.poll(Duration::from_millis(100));
            let now = c.context().0.load(Ordering::SeqCst);
            if now != rebalances {
                if batch.is_empty() {
                    rebalances = now;
                } else {
                    voided = true;
                    break;
                }
            }
            match m {
                None if !batch.is_empty() => break,
                None => {}
                Some(Ok(m)) => batch.push((
                    m.partition(),
                    m.offset(),
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Some(Err(e)) => eprintln!("copy: poll: {e}"),
            }
        }
        if voided {
            eprintln!("copy: rebalance during a batch; consumer recreated");
            state.recreated.fetch_add(1, Ordering::SeqCst);
            producer = Some(p);
            continue;
        }
        if batch.is_empty() {
            // Nothing to read: perhaps everything is copied (a commit whose answer was lost).
            if let Ok(tpl) = c.committed(CTP_CALL_TIMEOUT) {
                state.record(&tpl);
            }
            producer = Some(p);
            consumer = Some(c);
            continue;
        }

        let mut offsets = BTreeMap::new();
        for (part, off, _, _) in &batch {
            let next = offsets.entry(*part).or_insert(0);
            *next = (*next).max(off + 1);
        }
        let tpl = offsets_list(
            CTP_IN,
            &offsets.iter().map(|(p, o)| (*p, *o)).collect::<Vec<_>>(),
        );
        let result = (|| -> Result<bool, KafkaError> {
            p.begin_transaction()?;
            state.in_transaction.store(true, Ordering::SeqCst);
            for (part, _, key, value) in &batch {
                let mut rec = BaseRecord::to(CTP_OUT)
                    .partition(*part)
                    .key(key.as_slice())
                    .payload(value.as_slice());
                loop {
                    match p.send(rec) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            rec = r;
                            let _ = p.flush(Duration::from_millis(100));
                        }
                        Err((e, _)) => return Err(e),
                    }
                }
            }
            if state.crash.load(Ordering::SeqCst) {
                // The records reach the log; the transaction is left open.
                p.flush(CTP_CALL_TIMEOUT)?;
                return Ok(false);
            }
            let cgm = c.group_metadata().ok_or_else(|| {
                KafkaError::Subscription("the consumer has no group metadata".into())
            })?;
            p.send_offsets_to_transaction(&tpl, &cgm, CTP_CALL_TIMEOUT)?;
            commit(&p).map(|()| true)
        })();
        state.in_transaction.store(false, Ordering::SeqCst);
        match result {
            Ok(true) => {
                state.record(&tpl);
                state.commits.fetch_add(1, Ordering::SeqCst);
                failures_in_a_row = 0;
                producer = Some(p);
                consumer = Some(c);
            }
            Ok(false) => {
                eprintln!(
                    "copy: crashing with {} records in an open transaction",
                    batch.len()
                );
                drop(c);
                drop(p);
                state.crash.store(false, Ordering::SeqCst);
                state.crashes.fetch_add(1, Ordering::SeqCst);
                state.recreated.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                failures_in_a_row += 1;
                state.aborts.fetch_add(1, Ordering::SeqCst);
                state.recreated.fetch_add(1, Ordering::SeqCst);
                match recovery(&p, &e) {
                    Recovery::Recreate => {
                        eprintln!("copy: {e}; producer and consumer recreated");
                        drop(c);
                        drop(p);
                    }
                    Recovery::Abort => match abort(&p) {
                        Ok(()) => {
                            eprintln!("copy: {e}; aborted, consumer recreated");
                            drop(c);
                            producer = Some(p);
                        }
                        Err(a) => {
                            eprintln!("copy: {e}; abort failed ({a}); both recreated");
                            drop(c);
                            drop(p);
                        }
                    },
                }
            }
        }
    }
}

/// Waits (bounded) until `check` holds, failing early if the copy loop has ended.
async fn wait_for(
    what: &str,
    state: &CopyState,
    copier: &std::thread::JoinHandle<Result<(), String>>,
    check: impl Fn() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(
            !copier.is_finished(),
            "the copy loop ended while waiting for {what} (progress {})",
            state.progress()
        );
        assert!(
            Instant::now() < deadline,
            "waiting for {what}: progress {}",
            state.progress()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// 5. A consume-transform-produce loop copies 100 000 records exactly once, in order, while
/// the broker process is SIGKILLed and restarted three times on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_survives_sigkill() {
    const KILLS: usize = 3;
    let limit = Duration::from_secs(300);
    let started = Instant::now();
    let mut cluster = Cluster::start_single_node(TXN_OVERRIDES).await;
    let logs = cluster.logs();
    within(limit, &logs, async {
        let bootstrap = cluster.bootstrap(1);
        create_topics(
            &bootstrap,
            &[(CTP_IN, CTP_PARTITIONS), (CTP_OUT, CTP_PARTITIONS)],
        )
        .await;

        // Preload the input with an idempotent producer.
        let producer: FutureProducer = common::producer_config(&bootstrap, "-1")
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .create()
            .expect("producer");
        let total = i64::from(CTP_PARTITIONS) * CTP_PER_PARTITION;
        let producer_ref = &producer;
        let failures = futures::stream::iter(0..total)
            .map(|n| async move {
                let (p, i) = (
                    (n % i64::from(CTP_PARTITIONS)) as i32,
                    n / i64::from(CTP_PARTITIONS),
                );
                let (k, v) = (ctp_key(p, i), ctp_value(p, i));
                producer_ref
                    .send(
                        FutureRecord::to(CTP_IN).partition(p).key(&k).payload(&v),
                        TIMEOUT,
                    )
                    .await
                    .is_err()
            })
            .buffered(10_000)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        assert_eq!(failures, 0, "preload deliveries failed");
        drop(producer);
        let ends = await_stable(&bootstrap, &[(CTP_IN, CTP_PARTITIONS)], STABLE_TIMEOUT).await;
        for p in 0..CTP_PARTITIONS {
            assert_eq!(
                ends[&(CTP_IN.to_string(), p)],
                CTP_PER_PARTITION,
                "input partition {p}"
            );
        }
        eprintln!("preloaded {total} records in {:?}", started.elapsed());

        let state = Arc::new(CopyState::default());
        let _stop = StopOnDrop(state.clone());
        let copier = {
            let state = state.clone();
            let bootstrap = bootstrap.clone();
            let deadline = started + limit - Duration::from_secs(30);
            std::thread::spawn(move || copy_loop(&bootstrap, &state, deadline))
        };

        // Kills at even steps of progress, each while a transaction is open; between the
        // first two, the copy application itself crashes with a transaction open (its
        // records written), which its next instance's InitProducerId aborts.
        for k in 0..KILLS {
            let target = total * (k as i64 + 1) / (KILLS as i64 + 1);
            wait_for(
                &format!("progress {target} before kill {}", k + 1),
                &state,
                &copier,
                || state.progress() >= target && state.in_transaction.load(Ordering::SeqCst),
            )
            .await;
            eprintln!("kill {} at {} records copied", k + 1, state.progress());
            cluster.kill(1);
            cluster.restart(1);
            cluster.wait_ready().await;
            if k == 0 {
                let target = total * 3 / (4 * (KILLS as i64 + 1)) + target;
                wait_for("progress before the client crash", &state, &copier, || {
                    state.progress() >= target
                })
                .await;
                state.crash.store(true, Ordering::SeqCst);
                wait_for("the client crash", &state, &copier, || {
                    state.crashes.load(Ordering::SeqCst) == 1
                })
                .await;
                eprintln!("client crashed at {} records copied", state.progress());
            }
        }

        // Joined on a blocking thread: the test's time limit still bounds it.
        let outcome = tokio::task::spawn_blocking(move || copier.join())
            .await
            .expect("join task")
            .expect("copy thread");
        if let Err(e) = outcome {
            logs.panic(&format!("copy loop: {e}"));
        }
        eprintln!(
            "copied in {} transactions; {} failed steps, {} client recreations; {:?}",
            state.commits.load(Ordering::SeqCst),
            state.aborts.load(Ordering::SeqCst),
            state.recreated.load(Ordering::SeqCst),
            started.elapsed()
        );

        await_stable(&bootstrap, &[(CTP_OUT, CTP_PARTITIONS)], STABLE_TIMEOUT).await;
        let b = bootstrap.clone();
        let out = blocking(move || read_to_end(&b, "read_committed", &[(CTP_OUT, CTP_PARTITIONS)]));
        let mut per_partition: BTreeMap<i32, Vec<&Rec>> = BTreeMap::new();
        for r in &out {
            per_partition.entry(r.partition).or_default().push(r);
        }
        for p in 0..CTP_PARTITIONS {
            let got = per_partition.remove(&p).unwrap_or_default();
            for (i, r) in got.iter().enumerate() {
                let i = i as i64;
                if r.key != ctp_key(p, i) || r.value != ctp_value(p, i) {
                    panic!(
                        "output partition {p}, record {i}: ({}, {}) where ({}, {}) belongs \
                         ({} records in the partition)",
                        r.key,
                        r.value,
                        ctp_key(p, i),
                        ctp_value(p, i),
                        got.len()
                    );
                }
            }
            assert_eq!(
                got.len() as i64,
                CTP_PER_PARTITION,
                "output partition {p} holds every input record exactly once"
            );
        }
        // The crashed transaction's records are in the log, aborted.
        let b = bootstrap.clone();
        let all =
            blocking(move || read_to_end(&b, "read_uncommitted", &[(CTP_OUT, CTP_PARTITIONS)]));
        assert!(
            all.len() as i64 > total,
            "read_uncommitted sees the aborted records too ({} records)",
            all.len()
        );
        eprintln!(
            "{} records in the output log, {} committed",
            all.len(),
            out.len()
        );
    })
    .await;
}

/// 6. The admin and broker-side APIs: DescribeTransactions and ListTransactions show an open
/// transaction and then its commit; AddPartitionsToTxn v4 (the batched broker form of KIP-890,
/// `verify_only`) confirms the transaction's partition and refuses one outside it, a wrong epoch
/// and an unknown transactional id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_list_and_verify_transactions() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    use kafka_protocol::messages::{DescribeTransactionsRequest, ListTransactionsRequest};
    let broker = TestBroker::start_with(TXN_OVERRIDES).await;
    broker.create_topic(RAW_TOPIC, 2).await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let id = "tx-admin";
    let (pid, epoch) = init_producer_id(&mut raw, id).await;
    assert_eq!(add_partitions(&mut raw, id, pid, epoch, 3).await, NONE);

    let described = raw
        .call(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id(id), txn_id("tx-unknown")]),
            0,
        )
        .await;
    let open = &described.transaction_states[0];
    assert_eq!(
        (
            open.error_code,
            open.transaction_state.as_str(),
            open.producer_id.0,
            open.producer_epoch,
            open.transaction_timeout_ms
        ),
        (NONE, "Ongoing", pid, epoch, 60_000),
        "{described:?}"
    );
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(open.topics.len(), 1);
    assert_eq!(
        (
            open.topics[0].topic.as_str(),
            open.topics[0].partitions.clone()
        ),
        (RAW_TOPIC, vec![0])
    );
    assert_eq!(
        described.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    let listed = raw
        .call(
            &ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("Bogus")])
                .with_duration_filter(-1),
            1,
        )
        .await;
    assert_eq!(listed.error_code, NONE);
    assert_eq!(listed.unknown_state_filters, vec![s("Bogus")]);
    assert!(
        listed
            .transaction_states
            .iter()
            .any(|t| t.transactional_id.as_str() == id
                && t.producer_id.0 == pid
                && t.transaction_state.as_str() == "Ongoing"),
        "{listed:?}"
    );

    let verify = |tid: &str, pid: i64, epoch: i16| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(tid))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(tname(RAW_TOPIC))
                .with_partitions(vec![0, 1])])
    };
    let verified = raw
        .call(
            &AddPartitionsToTxnRequest::default().with_transactions(vec![
                verify(id, pid, epoch),
                verify(id, pid, epoch + 1),
                verify("tx-unknown", pid, epoch),
            ]),
            4,
        )
        .await;
    assert_eq!(verified.error_code, NONE, "{verified:?}");
    let codes: Vec<Vec<i16>> = verified
        .results_by_transaction
        .iter()
        .map(|t| {
            t.topic_results[0]
                .results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
                .collect()
        })
        .collect();
    // In the transaction / not in it (INVALID_TXN_STATE); wrong epoch (PRODUCER_FENCED);
    // unknown id (INVALID_PRODUCER_ID_MAPPING).
    assert_eq!(codes, vec![vec![0, 48], vec![90, 90], vec![49, 49]]);

    assert_eq!(end_txn(&mut raw, id, pid, epoch, true).await, NONE);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let d = raw
            .call(
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]),
                0,
            )
            .await;
        let st = &d.transaction_states[0];
        if st.transaction_state.as_str() == "CompleteCommit" {
            assert!(st.topics.is_empty(), "{st:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not completed: {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await;
}
