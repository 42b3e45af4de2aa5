//! Cluster mode (Kafka's KRaft keys, every node `broker,controller`) with three `esker` processes
//! on loopback, driven only by librdkafka (the `rdkafka` crate) and signals:
//!
//! - `three_nodes_metadata_and_placement`: every node's Metadata lists the three brokers at their
//!   advertised addresses and names a listed broker as controller (KRaft brokers name a live
//!   broker; exactly one node is the active controller); a 6-partition topic with replication
//!   factor 3 has its leaders on all three brokers and three replicas and in-sync replicas per
//!   partition, the same seen from every node; replication factor 4 is refused with
//!   INVALID_REPLICATION_FACTOR and creates nothing; a producer bootstrapped from node 1 (acks=all)
//!   and a consumer group bootstrapped from node 2 move keyed records through every partition,
//!   each read back once, at its acknowledged offset, with its key and value.
//! - `controller_failover`: SIGKILL of the active controller (the quorum's leader, the node whose
//!   ActiveControllerCount gauge is 1: Metadata does not name it); another node is elected, and
//!   CreateTopics through a surviving node succeeds within seconds (printed); the killed node
//!   restarts on its data directory and serves Metadata with every topic, including the one
//!   created while it was down, and all three brokers.
//! - `full_restart_keeps_metadata`: topics with configs (set at creation and altered after), all
//!   three nodes stopped with SIGTERM (each exits 0) and started again: the topics, their
//!   partition counts and their DescribeConfigs values and sources are back on every node.
//! - `stopped_broker_is_fenced`: a SIGSTOPped partition leader is fenced once its session times
//!   out (not before): the other nodes' Metadata no longer lists it and names it neither leader
//!   nor in-sync replica of any partition; after SIGCONT it is listed again.
//! - `harness_handles_a_single_node_process`: the harness itself (signals, exit status, restart,
//!   no process left behind) on a single node without cluster keys.
//!
//! - `replicas_follow_and_survive_a_leader_kill`: a topic with replication factor 3 and
//!   `min.insync.replicas=2`; records acknowledged with acks=all, SIGKILL of a partition leader,
//!   more records through the two survivors; a consumer group reads exactly the acknowledged
//!   records at their offsets; the killed node restarts, catches up and rejoins every ISR;
//!   DeleteRecords on a leader moves every replica's log start; after SIGTERM the three copies
//!   of every partition are the same bytes.
//!
//! - `group_offsets_survive_a_coordinator_kill`: offsets committed through the coordinator
//!   FindCoordinator names are read back through the surviving nodes after SIGKILL of it: the
//!   new leader of the group's `__consumer_offsets` partition loaded its replicated copy.
//! - `throttled_reassignment_moves_the_data`: AlterPartitionReassignments (raw request: no
//!   client of this suite offers it) moves a one-replica partition from node 1 to node 2 with
//!   the follower throttled to 256 KiB/s; ListPartitionReassignments shows it in progress; the
//!   move takes at least the throttled time; the records are read back from node 2 and node 1
//!   deletes its copy.
//! - `kinesis_endpoint_of_every_node_serves_every_stream`: every node with a Kinesis endpoint
//!   (`aws-sdk-kinesis`); a 4-shard stream created through node 1, its partitions led by all
//!   three nodes; every node lists the same shards; PutRecords through node 2 and node 3 and a
//!   PutRecord through node 1 land on every shard; GetShardIterator (TRIM_HORIZON, AT_TIMESTAMP,
//!   AFTER_SEQUENCE_NUMBER) and GetRecords of every shard through every node return exactly the
//!   records put, in order, with the sequence numbers PutRecords answered; the stream's
//!   creation time and tags read the same from every node, and a SplitShard through node 3 is
//!   listed by every node.
//!
//! Run with `--nocapture` to see the measured durations.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{within, Cluster, MetadataView, HEARTBEAT_INTERVAL, SESSION_TIMEOUT};
use common::{consumer_config, producer_config, TIMEOUT};
use kafka_protocol::messages::{describe_quorum_request, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The longest any test here may run (each starts its own cluster).
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// How long a topic may take to show up, with leaders, in a node's Metadata.
const PROPAGATION: Duration = Duration::from_secs(30);
/// How much later than its session timeout a silent broker may be fenced and seen so by every
/// other node (the controller's check interval, applying the change, our polling).
const FENCE_SLACK: Duration = Duration::from_secs(4);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    producer_config(bootstrap, "all")
        .create()
        .expect("admin client")
}

/// CreateTopics for one topic: `Ok` or the error code (of the topic, or of the request).
async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let res = admin
        .create_topics(&[topic], &opts)
        .await
        .map_err(|e| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))?;
    match res.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => Err(code),
        None => Err(RDKafkaErrorCode::Fail),
    }
}

/// A topic's configs as DescribeConfigs reports them: key → (value, source).
type Configs = BTreeMap<String, (Option<String>, String)>;

/// DescribeConfigs of a topic for `keys`, or why there is no answer.
async fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    keys: &[&str],
) -> Result<Configs, String> {
    let res = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .map_err(|e| format!("DescribeConfigs: {e}"))?;
    let r = res[0]
        .as_ref()
        .map_err(|e| format!("DescribeConfigs of {topic}: {e:?}"))?;
    keys.iter()
        .map(|k| {
            let e = r
                .get(k)
                .ok_or_else(|| format!("{topic}: {k} not described"))?;
            Ok((k.to_string(), (e.value.clone(), format!("{:?}", e.source))))
        })
        .collect()
}

/// Polls DescribeConfigs of `topic` through node `id` until the `expected` values are described
/// (a node applies a committed metadata change a moment later); returns `keys`' configs.
async fn wait_configs(
    c: &Cluster,
    id: i32,
    topic: &str,
    keys: &[&str],
    expected: &[(&str, &str)],
) -> Configs {
    let a = admin(&c.bootstrap(id));
    let a = &a;
    c.wait_until(
        &format!("{topic}'s configs {expected:?} through node {id}"),
        PROPAGATION,
        move || async move {
            let got = topic_configs(a, topic, keys).await?;
            for (k, v) in expected {
                if got.get(*k).and_then(|(v, _)| v.as_deref()) != Some(*v) {
                    return Err(format!("{got:?}"));
                }
            }
            Ok(got)
        },
    )
    .await
}

/// `Ok(partitions)` once `topic` is listed with `count` partitions, each with a leader.
fn topic_ready(
    md: &MetadataView,
    topic: &str,
    count: usize,
) -> Result<Vec<common::cluster::PartitionView>, String> {
    let Some(t) = md.topic(topic) else {
        return Err(format!("{topic} not listed"));
    };
    if t.error.is_some() || t.partitions.len() != count || t.partitions.iter().any(|p| p.leader < 0)
    {
        return Err(format!("{topic}: {t:?}"));
    }
    Ok(t.partitions.clone())
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// A record the test produced: partition, key, value.
type Sent = (i32, String, String);

/// Produces `per_partition` keyed records to every partition of `topic` through a producer
/// bootstrapped from `bootstrap` with acks=all; returns (partition, offset) → record.
async fn produce_everywhere(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) -> BTreeMap<(i32, i64), Sent> {
    let producer: FutureProducer = producer_config(bootstrap, "all")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    for i in 0..per_partition * partitions as usize {
        let p = (i % partitions as usize) as i32;
        let key = format!("key-{i:04}");
        let value = format!("value {i} for partition {p}");
        let fut = producer
            .send_result(
                FutureRecord::to(topic)
                    .partition(p)
                    .key(key.as_bytes())
                    .payload(value.as_bytes()),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        pending.push((fut, (p, key, value)));
    }
    let mut acked = BTreeMap::new();
    for (fut, sent) in pending {
        let d = fut
            .await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("{} not acknowledged: {e}", sent.1));
        assert_eq!(
            d.partition, sent.0,
            "{} acknowledged on another partition",
            sent.1
        );
        assert!(
            acked.insert((d.partition, d.offset), sent).is_none(),
            "two records acknowledged at {}/{}",
            d.partition,
            d.offset
        );
    }
    acked
}

/// Reads `topic` in a new consumer group bootstrapped from `bootstrap` until `expected` records
/// arrived (bounded): (partition, offset) → (partition, key, value).
async fn consume_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    expected: usize,
) -> BTreeMap<(i32, i64), Sent> {
    let consumer: StreamConsumer = consumer_config(bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = BTreeMap::new();
    while got.len() < expected {
        let m = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(r) => r.expect("consumer error"),
            Err(_) => panic!(
                "group {group} read {} of {expected} records within 60 s",
                got.len()
            ),
        };
        let key = String::from_utf8(m.key().expect("key").to_vec()).expect("utf-8 key");
        let value = String::from_utf8(m.payload().expect("value").to_vec()).expect("utf-8 value");
        let previous = got.insert((m.partition(), m.offset()), (m.partition(), key, value));
        assert!(
            previous.is_none(),
            "{}/{} read twice",
            m.partition(),
            m.offset()
        );
    }
    // Nothing beyond what was acknowledged is in the partitions.
    for p in got.keys().map(|(p, _)| *p).collect::<BTreeSet<_>>() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .expect("watermarks");
        let read = got.keys().filter(|(q, _)| *q == p).count() as i64;
        assert_eq!(high, read, "partition {p}: high watermark vs records read");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_metadata_and_placement() {
    let c = Cluster::start(3, &[]).await;
    within(TEST_LIMIT, &c.logs(), async {
        // Every node lists the three brokers at their advertised addresses and names one of
        // them as controller; exactly one node is the active controller.
        let controller = c.controller_id().await;
        let want: BTreeMap<i32, String> = c
            .ids()
            .into_iter()
            .map(|id| (id, c.bootstrap(id)))
            .collect();
        for id in c.ids() {
            let md = c.metadata(id).await.expect("metadata");
            assert_eq!(md.brokers, want, "brokers listed by node {id}");
            assert!(
                want.contains_key(&md.controller_id),
                "node {id} names controller {}, not a listed broker",
                md.controller_id
            );
            println!(
                "Metadata from node {id} names node {} as controller",
                md.controller_id
            );
        }
        println!("active controller (quorum leader): node {controller}");

        // 6 partitions, replication factor 3: leaders spread over all three brokers.
        let a = admin(&c.bootstrap(1));
        create_topic(&a, "placed", 6, 3, &[])
            .await
            .expect("CreateTopics placed (6 partitions, RF 3)");
        let mut layouts = Vec::new();
        for id in c.ids() {
            let layout = c
                .wait_metadata(id, "placed with 6 led partitions", PROPAGATION, |md| {
                    topic_ready(md, "placed", 6)
                })
                .await;
            layouts.push((id, layout));
        }
        let (_, layout) = &layouts[0];
        for (id, l) in &layouts[1..] {
            assert_eq!(l, layout, "node {id} describes placed as node 1 does");
        }
        let mut led: BTreeMap<i32, usize> = BTreeMap::new();
        for p in layout {
            *led.entry(p.leader).or_default() += 1;
            assert_eq!(
                sorted(&p.replicas),
                vec![1, 2, 3],
                "replicas of placed/{}",
                p.id
            );
            assert_eq!(sorted(&p.isr), vec![1, 2, 3], "ISR of placed/{}", p.id);
            assert!(
                p.replicas.contains(&p.leader),
                "placed/{}: leader is a replica",
                p.id
            );
        }
        println!("placed: partitions led per broker {led:?}");
        assert_eq!(
            led.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3],
            "leaders of placed on every broker"
        );

        // More replicas than brokers.
        assert_eq!(
            create_topic(&a, "too-many-replicas", 1, 4, &[]).await,
            Err(RDKafkaErrorCode::InvalidReplicationFactor),
            "CreateTopics with replication factor 4 on 3 brokers"
        );
        for id in c.ids() {
            let md = c.metadata(id).await.expect("metadata");
            assert!(
                md.topic("too-many-replicas").is_none(),
                "node {id} lists the refused topic: {:?}",
                md.topic("too-many-replicas")
            );
        }

        // Produce through node 1 to every partition, consume in a group through node 2.
        let started = Instant::now();
        let acked = produce_everywhere(&c.bootstrap(1), "placed", 6, 50).await;
        println!(
            "produced {} records (acks=all) in {} ms",
            acked.len(),
            started.elapsed().as_millis()
        );
        assert_eq!(
            acked.keys().map(|(p, _)| *p).collect::<BTreeSet<_>>(),
            (0..6).collect::<BTreeSet<_>>(),
            "records acknowledged on every partition"
        );
        let started = Instant::now();
        let read = consume_group(&c.bootstrap(2), "placement-readers", "placed", acked.len()).await;
        println!(
            "group read {} records in {} ms",
            read.len(),
            started.elapsed().as_millis()
        );
        assert_eq!(read, acked, "records read by the group vs acknowledged");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_failover() {
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let a = admin(&c.bootstrap(1));
        create_topic(&a, "before", 3, 3, &[])
            .await
            .expect("CreateTopics before the failover");
        drop(a);
        for id in c.ids() {
            c.wait_metadata(id, "topic before", PROPAGATION, |md| {
                topic_ready(md, "before", 3)
            })
            .await;
        }

        let old = c.controller_id().await;
        let survivors: Vec<i32> = c.ids().into_iter().filter(|&id| id != old).collect();
        let via = survivors[0];
        println!("controller: node {old}; killing it, CreateTopics through node {via}");

        let killed_at = Instant::now();
        c.kill(old);
        // controller_id polls until exactly one live node (a survivor) is the active controller.
        let new = c.controller_id().await;
        let elected = killed_at.elapsed();
        assert!(
            survivors.contains(&new),
            "new controller {new} is a surviving node"
        );

        // Replication factor 2: valid whether or not the killed broker is fenced yet.
        let a = admin(&c.bootstrap(via));
        let a = &a;
        let mut attempts = 0;
        let attempts_ref = &mut attempts;
        let outcome = c
            .wait_until(
                "CreateTopics after the failover",
                Duration::from_secs(30),
                || {
                    *attempts_ref += 1;
                    async move {
                        match create_topic(a, "during", 3, 2, &[]).await {
                            Ok(()) => Ok("created"),
                            // An earlier attempt that timed out on the client may have succeeded.
                            Err(RDKafkaErrorCode::TopicAlreadyExists) => Ok("already created"),
                            Err(e) => Err(format!("{e:?}")),
                        }
                    }
                },
            )
            .await;
        let created = killed_at.elapsed();
        println!(
            "failover: node {new} active controller {} ms after SIGKILL of node {old}; \
             CreateTopics succeeded ({outcome}) {} ms after it, attempt {attempts}",
            elected.as_millis(),
            created.as_millis()
        );
        assert!(
            created < Duration::from_secs(15),
            "CreateTopics succeeded only {created:?} after the controller was killed"
        );

        // The killed node comes back on its data directory and catches up.
        let restarted_at = Instant::now();
        c.restart(old);
        c.wait_metadata(
            old,
            "the restarted node to list every topic and broker",
            Duration::from_secs(60),
            |md| {
                if md.broker_ids() != BTreeSet::from([1, 2, 3]) {
                    return Err(format!("brokers {:?}", md.broker_ids()));
                }
                topic_ready(md, "before", 3)?;
                topic_ready(md, "during", 3)?;
                Ok(())
            },
        )
        .await;
        println!(
            "node {old} restarted and caught up in {} ms",
            restarted_at.elapsed().as_millis()
        );
        let md = c.metadata(old).await.expect("metadata");
        for p in md.partitions("during") {
            assert_eq!(
                p.replicas.len(),
                2,
                "during/{}: replicas {:?}",
                p.id,
                p.replicas
            );
        }
        c.wait_ready().await;
        // DescribeQuorum (API 55, asked of a survivor's Kafka listener: the Java AdminClient's
        // describeMetadataQuorum, which no client of this suite offers, hence the raw request)
        // shows the restarted node back in sync: every voter's log end at the high watermark.
        let via_addr = c.bootstrap(via);
        c.wait_until(
            "DescribeQuorum to show all three voters in sync",
            Duration::from_secs(30),
            || {
                let addr = via_addr.clone();
                async move {
                    let mut raw = common::raw::Raw::connect(&addr).await;
                    let req = DescribeQuorumRequest::default().with_topics(vec![
                        describe_quorum_request::TopicData::default()
                            .with_topic_name(TopicName(StrBytes::from_static_str(
                                "__cluster_metadata",
                            )))
                            .with_partitions(vec![
                                describe_quorum_request::PartitionData::default()
                                    .with_partition_index(0),
                            ]),
                    ]);
                    let resp = raw.call(&req, 1).await;
                    let p = resp
                        .topics
                        .first()
                        .and_then(|t| t.partitions.first())
                        .ok_or("no partition in the answer")?;
                    if p.error_code != 0 || p.leader_id.0 < 0 {
                        return Err(format!("error {} leader {}", p.error_code, p.leader_id.0));
                    }
                    let voters: BTreeMap<i32, i64> = p
                        .current_voters
                        .iter()
                        .map(|v| (v.replica_id.0, v.log_end_offset))
                        .collect();
                    let in_sync =
                        voters.len() == 3 && voters.values().all(|leo| *leo == p.high_watermark);
                    if in_sync {
                        Ok(())
                    } else {
                        Err(format!(
                            "high watermark {}, voters {voters:?}",
                            p.high_watermark
                        ))
                    }
                }
            },
        )
        .await;
        // Exactly one of the three is the active controller (controller_id checks that); a
        // rejoining voter may or may not have caused another election, so which is only reported.
        let now = c.controller_id().await;
        println!(
            "controller after node {old} rejoined: node {now} ({})",
            if now == new { "unchanged" } else { "changed" }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_metadata() {
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let keys = ["retention.ms", "cleanup.policy", "max.message.bytes"];
        let a = admin(&c.bootstrap(1));
        create_topic(&a, "kept-a", 4, 3, &[("retention.ms", "3600000")])
            .await
            .expect("CreateTopics kept-a");
        create_topic(
            &a,
            "kept-b",
            2,
            2,
            &[("cleanup.policy", "compact"), ("retention.ms", "1000000")],
        )
        .await
        .expect("CreateTopics kept-b");
        // Altered after creation. AlterConfigs (not the incremental one) replaces the topic's
        // whole set of dynamic configs, so all three are given.
        let want_a = [("retention.ms", "3600000")];
        let want_b = [
            ("cleanup.policy", "compact"),
            ("retention.ms", "7200000"),
            ("max.message.bytes", "2000000"),
        ];
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic("kept-b"));
        for (k, v) in want_b {
            alter = alter.set(k, v);
        }
        let altered = a
            .alter_configs(&[alter], &AdminOptions::new())
            .await
            .expect("AlterConfigs");
        assert!(altered[0].is_ok(), "AlterConfigs kept-b: {:?}", altered[0]);
        drop(a);
        for id in c.ids() {
            c.wait_metadata(id, "kept-a and kept-b", PROPAGATION, |md| {
                topic_ready(md, "kept-a", 4)?;
                topic_ready(md, "kept-b", 2)
            })
            .await;
        }
        let before_a = wait_configs(&c, 1, "kept-a", &keys, &want_a).await;
        let before_b = wait_configs(&c, 1, "kept-b", &keys, &want_b).await;
        println!("before the restart: kept-a {before_a:?}, kept-b {before_b:?}");

        // One node after the other: the last one shuts down without a quorum.
        for id in c.ids() {
            c.terminate(id).await;
        }
        let started = Instant::now();
        c.restart_all().await;
        println!(
            "all three nodes restarted, each listing three brokers, in {} ms",
            started.elapsed().as_millis()
        );

        for id in c.ids() {
            c.wait_metadata(
                id,
                "kept-a and kept-b after the restart",
                PROPAGATION,
                |md| {
                    let a = topic_ready(md, "kept-a", 4)?;
                    let b = topic_ready(md, "kept-b", 2)?;
                    for p in &a {
                        if p.replicas.len() != 3 {
                            return Err(format!("kept-a/{} replicas {:?}", p.id, p.replicas));
                        }
                    }
                    for p in &b {
                        if p.replicas.len() != 2 {
                            return Err(format!("kept-b/{} replicas {:?}", p.id, p.replicas));
                        }
                    }
                    Ok(())
                },
            )
            .await;
        }
        for id in c.ids() {
            assert_eq!(
                wait_configs(&c, id, "kept-a", &keys, &want_a).await,
                before_a,
                "kept-a configs and their sources after the restart (through node {id})"
            );
            assert_eq!(
                wait_configs(&c, id, "kept-b", &keys, &want_b).await,
                before_b,
                "kept-b configs and their sources after the restart (through node {id})"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_broker_is_fenced() {
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let a = admin(&c.bootstrap(1));
        create_topic(&a, "fenced", 6, 3, &[])
            .await
            .expect("CreateTopics fenced");
        drop(a);
        let layout = c
            .wait_metadata(1, "fenced with 6 led partitions", PROPAGATION, |md| {
                topic_ready(md, "fenced", 6)
            })
            .await;
        // A partition leader that is not the controller (stopping the controller would test
        // an election as well).
        let controller = c.controller_id().await;
        let victim = layout
            .iter()
            .map(|p| p.leader)
            .filter(|&l| l != controller)
            .max()
            .expect("a partition led by a node other than the controller");
        let others: Vec<i32> = c.ids().into_iter().filter(|&id| id != victim).collect();
        let led: Vec<i32> = layout
            .iter()
            .filter(|p| p.leader == victim)
            .map(|p| p.id)
            .collect();
        println!("controller: node {controller}; SIGSTOP node {victim}, leader of {led:?}");

        let stopped_at = Instant::now();
        c.stop(victim).await;
        let bound = SESSION_TIMEOUT + FENCE_SLACK;
        let fenced = |md: &MetadataView| -> Result<(), String> {
            if md.brokers.contains_key(&victim) {
                return Err(format!("node {victim} still listed"));
            }
            for p in md.partitions("fenced") {
                if p.leader == victim || p.isr.contains(&victim) {
                    return Err(format!(
                        "fenced/{}: leader {} ISR {:?}",
                        p.id, p.leader, p.isr
                    ));
                }
                if !others.contains(&p.leader) {
                    return Err(format!(
                        "fenced/{}: leader {} is not a live broker",
                        p.id, p.leader
                    ));
                }
            }
            Ok(())
        };
        for &id in &others {
            c.wait_metadata(id, "the stopped node to be fenced", bound, fenced)
                .await;
        }
        let took = stopped_at.elapsed();
        println!(
            "node {victim} fenced {} ms after SIGSTOP (session timeout {} ms)",
            took.as_millis(),
            SESSION_TIMEOUT.as_millis()
        );
        // Its last heartbeat was at most one interval before the stop; fencing earlier than
        // that session would be fencing a live broker.
        let earliest = SESSION_TIMEOUT - HEARTBEAT_INTERVAL - Duration::from_millis(500);
        assert!(
            took >= earliest,
            "node {victim} fenced {took:?} after SIGSTOP, before its session could time out"
        );
        assert!(
            took <= bound,
            "node {victim} fenced only {took:?} after SIGSTOP (session timeout {SESSION_TIMEOUT:?})"
        );
        let md = c.metadata(others[0]).await.expect("metadata");
        println!(
            "fenced leaders: {:?}",
            md.partitions("fenced")
                .iter()
                .map(|p| (p.id, p.leader))
                .collect::<Vec<_>>()
        );

        let resumed_at = Instant::now();
        c.cont(victim);
        for &id in &others {
            c.wait_metadata(
                id,
                "the resumed node to be listed again",
                Duration::from_secs(30),
                |md| {
                    if md.broker_ids() == BTreeSet::from([1, 2, 3]) {
                        Ok(())
                    } else {
                        Err(format!("brokers {:?}", md.broker_ids()))
                    }
                },
            )
            .await;
        }
        println!(
            "node {victim} listed again {} ms after SIGCONT",
            resumed_at.elapsed().as_millis()
        );
        c.wait_ready().await;
    })
    .await;
}

/// The bytes of a partition's segment files under `data`, in offset order.
fn segment_bytes(data: &std::path::Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = data.join(format!("{topic}-{partition}"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_and_survive_a_leader_kill() {
    let mut c = Cluster::start(3, &[("replica.lag.time.max.ms", "3000")]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let admin = admin(&c.bootstrap_all());
        create_topic(&admin, "replicated", 3, 3, &[("min.insync.replicas", "2")])
            .await
            .expect("create replicated");
        c.wait_metadata(1, "replicated to have leaders", PROPAGATION, |md| {
            topic_ready(md, "replicated", 3).map(|_| ())
        })
        .await;
        let mut acked = produce_everywhere(&c.bootstrap_all(), "replicated", 3, 100).await;

        // SIGKILL the leader of partition 0: another in-sync replica leads, nothing is lost.
        let md = c.metadata(1).await.expect("metadata");
        let victim = md.partitions("replicated")[0].leader;
        let survivor = c
            .ids()
            .into_iter()
            .find(|id| *id != victim)
            .expect("survivor");
        c.kill(victim);
        let killed_at = Instant::now();
        c.wait_metadata(
            survivor,
            "partition 0 to move off the killed leader",
            PROPAGATION,
            |md| {
                let parts = topic_ready(md, "replicated", 3)?;
                if parts
                    .iter()
                    .any(|p| p.leader == victim || p.isr.contains(&victim))
                {
                    return Err(format!("{parts:?}"));
                }
                Ok(())
            },
        )
        .await;
        println!(
            "leaders moved {} ms after SIGKILL of node {victim}",
            killed_at.elapsed().as_millis()
        );
        // Two in-sync replicas are enough for min.insync.replicas=2.
        let survivors: Vec<String> = c
            .ids()
            .into_iter()
            .filter(|id| *id != victim)
            .map(|id| c.bootstrap(id))
            .collect();
        let more = produce_everywhere(&survivors.join(","), "replicated", 3, 50).await;
        acked.extend(more);
        let read = consume_group(
            &c.bootstrap(survivor),
            "after-kill",
            "replicated",
            acked.len(),
        )
        .await;
        assert_eq!(
            read, acked,
            "records read after the leader kill differ from those acknowledged"
        );

        // The killed node comes back, catches up and rejoins every ISR.
        c.restart(victim);
        c.wait_metadata(
            survivor,
            "the restarted node back in every ISR",
            Duration::from_secs(60),
            |md| {
                let parts = topic_ready(md, "replicated", 3)?;
                if parts.iter().all(|p| p.isr.len() == 3) {
                    Ok(())
                } else {
                    Err(format!("{parts:?}"))
                }
            },
        )
        .await;
        println!(
            "node {victim} back in every ISR {} ms after SIGKILL",
            killed_at.elapsed().as_millis()
        );
        // DeleteRecords on the leader: the followers' log starts follow.
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("replicated", 1, rdkafka::Offset::Offset(50))
            .expect("tpl");
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let deleted = admin
            .delete_records(&tpl, &opts)
            .await
            .expect("delete records");
        for e in deleted.elements() {
            assert!(e.error().is_ok(), "{e:?}");
        }
        let log_start = |id: i32| {
            std::fs::read_to_string(c.data_dir(id).join("replicated-1").join("log-start-offset"))
                .unwrap_or_default()
        };
        c.wait_until(
            "every replica's log start at 50",
            Duration::from_secs(30),
            || {
                let starts: Vec<String> = c.ids().into_iter().map(log_start).collect();
                async move {
                    if starts.iter().all(|s| s.lines().any(|l| l.trim() == "50")) {
                        Ok(())
                    } else {
                        Err(format!("log-start-offset files: {starts:?}"))
                    }
                }
            },
        )
        .await;
        // Byte for byte the same logs on every replica (nothing produced since).
        c.terminate_all().await;
        for p in 0..3 {
            let copies: Vec<Vec<u8>> = c
                .ids()
                .iter()
                .map(|id| segment_bytes(c.data_dir(*id), "replicated", p))
                .collect();
            assert!(!copies[0].is_empty(), "partition {p} is empty");
            for (i, copy) in copies.iter().enumerate() {
                assert!(
                    copy == &copies[0],
                    "partition {p}: replica on node {} differs ({} vs {} bytes)",
                    c.ids()[i],
                    copy.len(),
                    copies[0].len()
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_survive_a_coordinator_kill() {
    use rdkafka::consumer::{BaseConsumer, CommitMode};
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let admin = admin(&c.bootstrap_all());
        create_topic(&admin, "tracked", 2, 3, &[]).await.expect("create tracked");
        c.wait_metadata(1, "__consumer_offsets and tracked", PROPAGATION, |md| {
            topic_ready(md, "tracked", 2)?;
            topic_ready(md, "__consumer_offsets", 50).map(|_| ())
        })
        .await;
        // The group's coordinator, as FindCoordinator names it.
        let coordinator = find_coordinator(&c, 0, "tracker").await;
        // Commit offsets 40 and 7 in group `tracker` (acknowledged once the ISR has them).
        let bootstrap = c.bootstrap_all();
        let committed = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = consumer_config(&bootstrap)
                .set("group.id", "tracker")
                .create()
                .expect("consumer");
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset("tracked", 0, rdkafka::Offset::Offset(40))
                .expect("tpl");
            tpl.add_partition_offset("tracked", 1, rdkafka::Offset::Offset(7))
                .expect("tpl");
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await
        .expect("join");
        committed.expect("commit");

        // SIGKILL the coordinator: another node loads the replicated partition and answers.
        c.kill(coordinator);
        let survivors: Vec<String> = c
            .ids()
            .into_iter()
            .filter(|id| *id != coordinator)
            .map(|id| c.bootstrap(id))
            .collect();
        let bootstrap = survivors.join(",");
        let started = Instant::now();
        let reader: Arc<BaseConsumer> = Arc::new(
            consumer_config(&bootstrap)
                .set("group.id", "tracker")
                .create()
                .expect("consumer"),
        );
        let offsets = c
            .wait_until(
                "the new coordinator to answer the committed offsets",
                Duration::from_secs(60),
                || {
                    let reader = reader.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let mut tpl = rdkafka::TopicPartitionList::new();
                            tpl.add_partition("tracked", 0);
                            tpl.add_partition("tracked", 1);
                            let got = reader
                                .committed_offsets(tpl, Duration::from_secs(5))
                                .map_err(|e| e.to_string())?;
                            let offsets: Vec<rdkafka::Offset> =
                                got.elements().iter().map(|e| e.offset()).collect();
                            if offsets.iter().all(|o| *o != rdkafka::Offset::Invalid) {
                                Ok(offsets)
                            } else {
                                Err(format!("not committed yet: {offsets:?}"))
                            }
                        })
                        .await
                        .map_err(|e| e.to_string())?
                    }
                },
            )
            .await;
        println!(
            "committed offsets read from the new coordinator {} ms after SIGKILL of node {coordinator}",
            started.elapsed().as_millis()
        );
        assert_eq!(
            offsets,
            vec![rdkafka::Offset::Offset(40), rdkafka::Offset::Offset(7)]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reassignment_moves_the_data() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    };
    let c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let admin = admin(&c.bootstrap_all());
        // One partition, one replica on node 1, followers throttled to 256 KiB/s.
        let topic = NewTopic::new("moved", 1, TopicReplication::Variable(&[&[1]]))
            .set("follower.replication.throttled.replicas", "*");
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = admin.create_topics(&[topic], &opts).await.expect("create");
        assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
        let rate = (256 * 1024).to_string();
        let broker = AlterConfig::new(ResourceSpecifier::Broker(2))
            .set("follower.replication.throttled.rate", &rate);
        let res = admin
            .alter_configs(&[broker], &opts)
            .await
            .expect("alter configs");
        assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
        c.wait_metadata(1, "moved to have a leader", PROPAGATION, |md| {
            topic_ready(md, "moved", 1).map(|_| ())
        })
        .await;
        // About 1 MiB of records.
        let producer: FutureProducer = producer_config(&c.bootstrap_all(), "all")
            .create()
            .expect("producer");
        let value = vec![b'x'; 10 * 1024];
        let mut sent = 0;
        for i in 0..100 {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to("moved")
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                    TIMEOUT,
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
            sent += 1;
        }

        let started = Instant::now();
        let mut raw = common::raw::Raw::connect(&c.bootstrap(3)).await;
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("moved")))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(vec![BrokerId(2)]))])]);
        let resp = raw.call(&req, 0).await;
        let code = resp.responses[0].partitions[0].error_code;
        assert_eq!((resp.error_code, code), (0, 0), "{resp:?}");
        // In progress: listed with node 2 being added and node 1 removed.
        let listed = raw
            .call(&ListPartitionReassignmentsRequest::default(), 0)
            .await;
        let ongoing = &listed.topics[0].partitions[0];
        assert_eq!(
            (
                ongoing.adding_replicas.clone(),
                ongoing.removing_replicas.clone()
            ),
            (vec![BrokerId(2)], vec![BrokerId(1)]),
            "{listed:?}"
        );
        c.wait_metadata(
            3,
            "the partition to move to node 2",
            Duration::from_secs(60),
            |md| {
                let parts = topic_ready(md, "moved", 1)?;
                if parts[0].replicas == [2] && parts[0].leader == 2 {
                    Ok(())
                } else {
                    Err(format!("{parts:?}"))
                }
            },
        )
        .await;
        let took = started.elapsed();
        println!("1 MiB moved at 256 KiB/s in {} ms", took.as_millis());
        // The bucket starts with one second's worth: the rest takes about three seconds.
        assert!(
            took >= Duration::from_secs(2),
            "the follower throttle was not applied: moved in {took:?}"
        );
        let read = consume_group(&c.bootstrap(2), "moved-reader", "moved", sent).await;
        assert_eq!(read.len(), sent);
        c.wait_until("node 1 to delete its copy", Duration::from_secs(30), || {
            let gone = !c.data_dir(1).join("moved-0").exists();
            async move {
                if gone {
                    Ok(())
                } else {
                    Err("moved-0 still on node 1".to_string())
                }
            }
        })
        .await;
        assert!(c.data_dir(2).join("moved-0").exists());
        // Nothing in progress any more.
        let listed = raw
            .call(&ListPartitionReassignmentsRequest::default(), 0)
            .await;
        assert!(listed.topics.is_empty(), "{listed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_handles_a_single_node_process() {
    let mut c = Cluster::start_single_node(&[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let md = c.metadata(1).await.expect("metadata");
        assert_eq!(md.brokers, BTreeMap::from([(1, c.bootstrap(1))]));
        assert_eq!(md.controller_id, 1, "controller id read from Metadata");
        assert_eq!(
            c.controller_id().await,
            1,
            "the single node reports itself as the active controller"
        );

        // A stopped process accepts connections but does not answer; it does after SIGCONT.
        c.stop(1).await;
        assert_eq!(c.live_ids(), Vec::<i32>::new());
        assert!(
            c.metadata(1).await.is_err(),
            "a SIGSTOPped node answered Metadata"
        );
        c.cont(1);
        c.wait_ready().await;

        // SIGTERM: exit 0 (asserted by terminate); restart on the same port and directory.
        c.terminate(1).await;
        assert!(c.pid(1).is_none());
        c.restart(1);
        c.wait_ready().await;

        // SIGKILL, restart.
        c.kill(1);
        c.restart(1);
        c.wait_ready().await;

        // A stopped process is killed and reaped on drop.
        c.stop(1).await;
    })
    .await;
    let pid = c.pid(1).expect("running");
    drop(c);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} left behind by the drop"
    );
}

/// A record put through Kinesis: sequence number, partition key, data.
type PutRecordView = (String, String, Vec<u8>);

/// A sequence number as something that orders as its number: (length, digits).
type SeqKey = (usize, String);

/// Every record of `shard` from `iterator` on, through `k`, until `want` records arrived (a
/// shard's records become readable once its in-sync replicas have them, so reads are repeated
/// until then, bounded by the caller).
async fn read_shard_through(
    k: &aws_sdk_kinesis::Client,
    iterator: String,
    want: usize,
) -> Result<Vec<PutRecordView>, String> {
    let mut got = Vec::new();
    let mut it = Some(iterator);
    while let Some(i) = it.take() {
        let out = k
            .get_records()
            .shard_iterator(i)
            .send()
            .await
            .map_err(|e| format!("GetRecords: {e:?}"))?;
        let records = out.records();
        for r in records {
            got.push((
                r.sequence_number().to_string(),
                r.partition_key().unwrap_or_default().to_string(),
                r.data().as_ref().to_vec(),
            ));
        }
        if records.is_empty() || got.len() >= want {
            break;
        }
        it = out.next_shard_iterator().map(str::to_string);
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_endpoint_of_every_node_serves_every_stream() {
    use aws_sdk_kinesis::primitives::{Blob, DateTime};
    use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

    const STREAM: &str = "spread";
    let c = Cluster::start_with_kinesis(3, &[]).await;
    within(TEST_LIMIT, &c.logs(), async {
        let k: BTreeMap<i32, aws_sdk_kinesis::Client> = c
            .ids()
            .into_iter()
            .map(|id| {
                (
                    id,
                    common::kinesis::client_for(c.kinesis_addr(id), "AKIDTEST", "secret"),
                )
            })
            .collect();
        k[&1]
            .create_stream()
            .stream_name(STREAM)
            .shard_count(4)
            .tags("team", "payments")
            .send()
            .await
            .expect("CreateStream through node 1");
        let mut leaders = BTreeSet::new();
        for id in c.ids() {
            let partitions = c
                .wait_metadata(
                    id,
                    "the stream's 4 partitions with leaders",
                    PROPAGATION,
                    |md| topic_ready(md, STREAM, 4),
                )
                .await;
            leaders = partitions.iter().map(|p| p.leader).collect();
        }
        assert_eq!(
            leaders,
            c.ids().into_iter().collect::<BTreeSet<_>>(),
            "the 4 shards are led by all three nodes"
        );

        // Every node lists the same shards with the same hash-key ranges.
        let shards_of = |id: i32| {
            let k = k[&id].clone();
            async move {
                let out = k
                    .list_shards()
                    .stream_name(STREAM)
                    .send()
                    .await
                    .map_err(|e| format!("ListShards through node {id}: {e:?}"))?;
                Ok::<_, String>(
                    out.shards()
                        .iter()
                        .map(|s| {
                            let r = s.hash_key_range();
                            (
                                s.shard_id().to_string(),
                                r.map(|r| r.starting_hash_key().to_string()),
                                r.map(|r| r.ending_hash_key().to_string()),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            }
        };
        let shards = shards_of(1).await.expect("ListShards through node 1");
        assert_eq!(shards.len(), 4, "{shards:?}");
        for id in c.ids() {
            let listed = c
                .wait_until("the stream listed by every node", PROPAGATION, || {
                    shards_of(id)
                })
                .await;
            assert_eq!(listed, shards, "ListShards through node {id}");
        }

        // PutRecords through node 2 and node 3, a PutRecord through node 1: shard id →
        // records in sequence-number order.
        let started = Instant::now();
        // Sequence numbers are 56 decimal digits (too wide for u128): ordered as (length, digits).
        let seq_key = |s: &str| -> SeqKey { (s.len(), s.to_string()) };
        let mut put: BTreeMap<String, Vec<(SeqKey, PutRecordView)>> = BTreeMap::new();
        for id in [2, 3] {
            let entries: Vec<PutRecordsRequestEntry> = (0..60)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("node{id}-key{i}"))
                        .data(Blob::new(format!("record {i} through node {id}")))
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = k[&id]
                .put_records()
                .stream_name(STREAM)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutRecords through node {id}: {e:?}"));
            assert_eq!(out.failed_record_count(), Some(0), "{:?}", out.records());
            for (entry, r) in entries.iter().zip(out.records()) {
                let seq = r.sequence_number().expect("sequence number").to_string();
                put.entry(r.shard_id().expect("shard id").to_string())
                    .or_default()
                    .push((
                        seq_key(&seq),
                        (
                            seq,
                            entry.partition_key().unwrap_or_default().to_string(),
                            entry.data().as_ref().to_vec(),
                        ),
                    ));
            }
        }
        let one = k[&1]
            .put_record()
            .stream_name(STREAM)
            .partition_key("through-node-1")
            .data(Blob::new("one record through node 1"))
            .send()
            .await
            .expect("PutRecord through node 1");
        put.entry(one.shard_id().to_string()).or_default().push((
            seq_key(one.sequence_number()),
            (
                one.sequence_number().to_string(),
                "through-node-1".into(),
                b"one record through node 1".to_vec(),
            ),
        ));
        println!(
            "121 records put through nodes 2, 3 and 1 in {:?}",
            started.elapsed()
        );
        assert_eq!(
            put.keys().cloned().collect::<Vec<_>>(),
            shards.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            "records landed on every shard"
        );
        let put: BTreeMap<String, Vec<PutRecordView>> = put
            .into_iter()
            .map(|(shard, mut recs)| {
                recs.sort_by(|a, b| a.0.cmp(&b.0));
                (shard, recs.into_iter().map(|r| r.1).collect())
            })
            .collect();

        // Every shard through every node, three ways in: the records put, in order, with the
        // sequence numbers PutRecords answered.
        for id in c.ids() {
            for (shard, want) in &put {
                let starts = [
                    (ShardIteratorType::TrimHorizon, None, None, want.clone()),
                    (
                        ShardIteratorType::AtTimestamp,
                        None,
                        Some(DateTime::from_secs(0)),
                        want.clone(),
                    ),
                    (
                        ShardIteratorType::AfterSequenceNumber,
                        Some(want[0].0.clone()),
                        None,
                        want[1..].to_vec(),
                    ),
                ];
                for (kind, seq, ts, expected) in starts {
                    let what = format!("{shard} through node {id} from {kind:?}");
                    let k = &k[&id];
                    let got = c
                        .wait_until(&what, PROPAGATION, || {
                            let (kind, seq, expected) = (kind.clone(), seq.clone(), &expected);
                            async move {
                                let it = k
                                    .get_shard_iterator()
                                    .stream_name(STREAM)
                                    .shard_id(shard)
                                    .shard_iterator_type(kind)
                                    .set_starting_sequence_number(seq)
                                    .set_timestamp(ts)
                                    .send()
                                    .await
                                    .map_err(|e| format!("GetShardIterator: {e:?}"))?;
                                let it = it.shard_iterator().ok_or("no iterator")?.to_string();
                                let got = read_shard_through(k, it, expected.len()).await?;
                                if got.len() < expected.len() {
                                    return Err(format!(
                                        "{} of {} records readable",
                                        got.len(),
                                        expected.len()
                                    ));
                                }
                                Ok(got)
                            }
                        })
                        .await;
                    assert_eq!(&got, &expected, "{what}");
                }
            }
        }
        println!("every shard read through every node");

        // The stream's Kinesis metadata is the cluster's: the same creation time and tags from
        // every node, and a split through node 3 is seen by every node.
        let summary_of = |id: i32| {
            let k = k[&id].clone();
            async move {
                let d = k
                    .describe_stream_summary()
                    .stream_name(STREAM)
                    .send()
                    .await
                    .map_err(|e| format!("DescribeStreamSummary through node {id}: {e:?}"))?;
                let d = d.stream_description_summary().ok_or("no summary")?;
                let tags = k
                    .list_tags_for_stream()
                    .stream_name(STREAM)
                    .send()
                    .await
                    .map_err(|e| format!("ListTagsForStream through node {id}: {e:?}"))?;
                Ok::<_, String>((
                    d.stream_creation_timestamp().to_millis().ok(),
                    d.open_shard_count(),
                    tags.tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().map(str::to_string)))
                        .collect::<Vec<_>>(),
                ))
            }
        };
        let summary = summary_of(1).await.expect("summary through node 1");
        assert_eq!(
            summary.2,
            vec![("team".to_string(), Some("payments".to_string()))]
        );
        for id in c.ids() {
            assert_eq!(summary_of(id).await.expect("summary"), summary, "node {id}");
        }
        let first = &shards[0];
        let (start, end): (u128, u128) = (
            first
                .1
                .as_deref()
                .and_then(|v| v.parse().ok())
                .expect("start"),
            first
                .2
                .as_deref()
                .and_then(|v| v.parse().ok())
                .expect("end"),
        );
        k[&3]
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split(&first.0)
            .new_starting_hash_key((start + (end - start) / 2).to_string())
            .send()
            .await
            .expect("SplitShard through node 3");
        let split = shards_of(3).await.expect("ListShards through node 3");
        assert_eq!(split.len(), 6, "{split:?}");
        for id in c.ids() {
            let listed = c
                .wait_until("the split seen by every node", PROPAGATION, || {
                    let split = &split;
                    let listing = shards_of(id);
                    async move {
                        let got = listing.await?;
                        if &got == split {
                            Ok(got)
                        } else {
                            Err(format!("node {id} lists {got:?}"))
                        }
                    }
                })
                .await;
            assert_eq!(listed.len(), 6);
        }
        println!("creation time, tags and a split agree on every node");
    })
    .await;
}

/// The node FindCoordinator (asked at node 1) names for `key` of `key_type` (0 group, 1
/// transactional id).
async fn find_coordinator(c: &Cluster, key_type: i8, key: &'static str) -> i32 {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let mut raw = common::raw::Raw::connect(&c.bootstrap(1)).await;
    let fc = raw
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![StrBytes::from_static_str(key)]),
            4,
        )
        .await;
    assert_eq!(fc.coordinators[0].error_code, 0, "{fc:?}");
    fc.coordinators[0].node_id.0
}

/// Reads every record of `topic` (partitions `0..n`) to the end with `isolation`, as
/// `(partition, value)` sorted.
fn read_values(bootstrap: &str, topic: &str, n: i32, isolation: &str) -> Vec<(i32, String)> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_end = BTreeSet::new();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < n as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => got.push((
                m.partition(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_survive_a_coordinator_kill() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    within(TEST_LIMIT, &logs, async {
        let admin = admin(&c.bootstrap_all());
        create_topic(&admin, "txout", 3, 3, &[]).await.expect("create txout");
        c.wait_metadata(1, "__transaction_state and txout", PROPAGATION, |md| {
            topic_ready(md, "txout", 3)?;
            topic_ready(md, "__transaction_state", 50).map(|_| ())
        })
        .await;
        let coordinator = find_coordinator(&c, 1, "tx-cluster").await;
        let survivors: Vec<String> = c
            .ids()
            .into_iter()
            .filter(|id| *id != coordinator)
            .map(|id| c.bootstrap(id))
            .collect();
        let survivors = survivors.join(",");
        let make = |bootstrap: String| {
            producer_config(&bootstrap, "all")
                .set("enable.idempotence", "true")
                .set("transactional.id", "tx-cluster")
                .set("transaction.timeout.ms", "60000")
                .create::<ThreadedProducer<DefaultProducerContext>>()
                .expect("producer")
        };
        let send = |p: &ThreadedProducer<DefaultProducerContext>, tag: &str| {
            for part in 0..3 {
                let v = format!("{tag}-{part}");
                p.send(BaseRecord::<(), str>::to("txout").partition(part).payload(&v))
                    .map_err(|(e, _)| e)
                    .expect("send");
            }
        };
        // One committed and one aborted transaction over partitions led by every node: the
        // coordinator writes its markers locally and with WriteTxnMarkers to the others.
        let bootstrap = c.bootstrap_all();
        tokio::task::spawn_blocking(move || {
            let p = make(bootstrap);
            let t = Duration::from_secs(30);
            p.init_transactions(t).expect("init");
            p.begin_transaction().expect("begin");
            send(&p, "committed");
            p.commit_transaction(t).expect("commit");
            p.begin_transaction().expect("begin");
            send(&p, "aborted");
            p.flush(t).expect("flush");
            p.abort_transaction(t).expect("abort");
            // A third transaction stays open: its coordinator is killed under it.
            p.begin_transaction().expect("begin");
            send(&p, "orphaned");
            p.flush(t).expect("flush");
            std::mem::forget(p);
        })
        .await
        .expect("join");
        c.kill(coordinator);
        // A new instance on the survivors: the new coordinator loads the replicated state,
        // aborts the orphaned transaction (fencing the old instance) and serves this one.
        let started = Instant::now();
        let boot = survivors.clone();
        tokio::task::spawn_blocking(move || {
            let p = make(boot);
            let t = Duration::from_secs(90);
            p.init_transactions(t).expect("init after failover");
            p.begin_transaction().expect("begin");
            send(&p, "after");
            p.commit_transaction(t).expect("commit after failover");
        })
        .await
        .expect("join");
        println!(
            "a new producer instance committed {} ms after SIGKILL of coordinator node {coordinator}",
            started.elapsed().as_millis()
        );
        let want = |tags: &[&str]| {
            let mut v: Vec<(i32, String)> = tags
                .iter()
                .flat_map(|t| (0..3).map(move |p| (p, format!("{t}-{p}"))))
                .collect();
            v.sort();
            v
        };
        let committed = want(&["committed", "after"]);
        let boot = survivors.clone();
        let read = c
            .wait_until(
                "read_committed to show exactly the committed transactions",
                Duration::from_secs(60),
                || {
                    let boot = boot.clone();
                    let committed = committed.clone();
                    async move {
                        let got = tokio::task::spawn_blocking(move || {
                            read_values(&boot, "txout", 3, "read_committed")
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                        if got == committed {
                            Ok(got)
                        } else {
                            Err(format!("read_committed saw {got:?}"))
                        }
                    }
                },
            )
            .await;
        assert_eq!(read, committed);
        let boot = survivors.clone();
        let all = tokio::task::spawn_blocking(move || {
            read_values(&boot, "txout", 3, "read_uncommitted")
        })
        .await
        .expect("join");
        assert_eq!(all, want(&["committed", "aborted", "orphaned", "after"]));
    })
    .await;
}
