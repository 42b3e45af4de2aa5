//! The ACL matrix of issue #9: user alice holds only READ on the topic prefix `orders-` and
//! READ on group `g1` (plus a DENY of everything on `orders-secret`); every allowed and denied
//! combination of produce, consume, commit, create, delete, describe configs, offsets and
//! listings is checked with Kafka's exact error code through librdkafka over
//! SASL_PLAINTEXT/PLAIN. The super user bypasses everything. Raw protocol calls are used only
//! for what rdkafka cannot send (CreateAcls, malformed ACLs, SASL out of order).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode as E;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const USERS: &str = "admin:admin-secret,alice:alice-secret";

// ACL wire codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn sasl(c: &mut ClientConfig, user: &str, pass: &str) {
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", pass);
}

fn consumer_cfg(bootstrap: &str, user: &str, group: &str) -> ClientConfig {
    let mut c = common::consumer_config(bootstrap);
    c.set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("topic.metadata.refresh.interval.ms", "1000");
    sasl(&mut c, user, &format!("{user}-secret"));
    c
}

fn admin_client(bootstrap: &str, user: &str) -> AdminClient<DefaultClientContext> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    sasl(&mut c, user, &format!("{user}-secret"));
    c.create().expect("admin client")
}

fn producer(bootstrap: &str, user: &str) -> FutureProducer {
    let mut c = producer_config(bootstrap, "1");
    c.set("message.timeout.ms", "5000");
    sasl(&mut c, user, &format!("{user}-secret"));
    c.create().expect("producer")
}

/// A raw connection logged in with SASL/PLAIN.
async fn login(addr: &str, user: &str, pass: &str) -> Raw {
    let mut raw = Raw::connect(addr).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let resp = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(format!("\0{user}\0{pass}"))),
            2,
        )
        .await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    raw
}

fn acl(rt: i8, name: &str, pattern: i8, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

/// A broker with the matrix's topics (one partition each, one record in orders-x) and ACLs.
async fn matrix_broker() -> TestBroker {
    let broker = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", USERS),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
        ("num.partitions", "1"),
    ])
    .await;
    let addr = broker.bootstrap();
    let admin = admin_client(&addr, "admin");
    let topics: Vec<NewTopic> = ["orders-x", "orders-secret", "orders-other", "payments"]
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created by the super user");
    }
    let mut raw = login(&addr, "admin", "admin-secret").await;
    let resp = raw
        .call(
            &CreateAclsRequest::default().with_creations(vec![
                acl(TOPIC, "orders-", PREFIXED, READ, ALLOW),
                acl(GROUP, "g1", LITERAL, READ, ALLOW),
                acl(TOPIC, "orders-secret", LITERAL, ALL, DENY),
            ]),
            3,
        )
        .await;
    for r in &resp.results {
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }
    // The super user writes anywhere.
    let p = producer(&addr, "admin");
    for t in ["orders-x", "orders-secret", "payments"] {
        p.send(FutureRecord::to(t).key("k").payload("v"), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("super user produces to {t}: {e:?}"));
    }
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_matrix_for_a_read_only_prefixed_user() {
    let broker = matrix_broker().await;
    let addr = broker.bootstrap();

    // Produce: READ does not allow WRITE; DENY ALL and no ACL are denied too.
    let alice_p = producer(&addr, "alice");
    for t in ["orders-x", "orders-secret", "payments"] {
        let err = alice_p
            .send(FutureRecord::to(t).key("k").payload("v"), TIMEOUT)
            .await
            .expect_err("alice may not write");
        assert_eq!(
            err.0.rdkafka_error_code(),
            Some(E::TopicAuthorizationFailed),
            "{t}: {err:?}"
        );
    }

    // Metadata listing: only what alice may DESCRIBE (READ implies it), not orders-secret
    // (DENY ALL wins over the prefixed ALLOW), not payments, not __consumer_offsets.
    let lister: BaseConsumer = consumer_cfg(&addr, "alice", "g1").create().unwrap();
    let md = lister.fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    names.sort();
    assert_eq!(names, ["orders-other", "orders-x"]);
    let md = lister
        .fetch_metadata(Some("payments"), TIMEOUT)
        .expect("metadata");
    assert_eq!(
        md.topics()[0].error().map(E::from),
        Some(E::TopicAuthorizationFailed)
    );

    // ListOffsets (DESCRIBE): allowed on orders-x, denied on orders-secret and payments.
    assert_eq!(
        lister
            .fetch_watermarks("orders-x", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 1)
    );
    // librdkafka refuses a topic missing from its metadata before asking, so the denied
    // ListOffsets goes on the wire raw.
    let mut raw = login(&addr, "alice", "alice-secret").await;
    for t in ["orders-secret", "payments"] {
        let lo = raw
            .call(
                &ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ])]),
                7,
            )
            .await;
        assert_eq!(lo.topics[0].partitions[0].error_code, 29, "{t}");
    }

    // Consume orders-x in group g1: allowed; commit allowed.
    let g1: StreamConsumer = consumer_cfg(&addr, "alice", "g1").create().unwrap();
    g1.subscribe(&["orders-x"]).unwrap();
    let msg = tokio::time::timeout(TIMEOUT, g1.recv())
        .await
        .expect("a record within the timeout")
        .expect("consumed in g1");
    assert_eq!(msg.payload(), Some(&b"v"[..]));
    g1.commit_message(&msg, CommitMode::Sync)
        .expect("commit to g1/orders-x");
    let committed = g1.committed(TIMEOUT).expect("committed offsets");
    assert_eq!(
        committed.find_partition("orders-x", 0).map(|p| p.offset()),
        Some(Offset::Offset(1))
    );
    // A commit to a topic without READ (29) is checked on the wire in
    // `per_api_codes_on_the_wire`.
    // The list `committed()` returned holds a reference on librdkafka's partition object,
    // which holds its leader broker: while the list lives, rd_kafka_destroy (the end of the
    // consumer's drop, after LeaveGroup) waits forever for that broker's thread. librdkafka
    // requires every partition list and message to be destroyed before the handle
    // (INTRODUCTION.md, "Termination"), with any broker; so both go first, then the consumer
    // closes off the async workers, bounded.
    drop(committed);
    drop(msg);
    tokio::time::timeout(TIMEOUT, tokio::task::spawn_blocking(move || drop(g1)))
        .await
        .expect("g1 closes within the timeout")
        .expect("g1 closed");

    // Group g2: no ACL, so joining (FindCoordinator DESCRIBE) and committing answer 30.
    let g2: StreamConsumer = consumer_cfg(&addr, "alice", "g2").create().unwrap();
    g2.subscribe(&["orders-x"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let seen = loop {
        assert!(Instant::now() < deadline, "no group authorization error");
        match tokio::time::timeout(Duration::from_secs(5), g2.recv()).await {
            Ok(Err(e)) if e.rdkafka_error_code() == Some(E::GroupAuthorizationFailed) => break e,
            Ok(Ok(m)) => panic!("g2 consumed {:?}", m.offset()),
            _ => continue,
        }
    };
    assert_eq!(seen.rdkafka_error_code(), Some(E::GroupAuthorizationFailed));
    let g2_commit: BaseConsumer = consumer_cfg(&addr, "alice", "g2").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders-x", 0, Offset::Offset(1))
        .unwrap();
    // librdkafka cannot find g2's coordinator (FindCoordinator answers 30) and fails the
    // commit locally; the OffsetCommit answer itself (30) is checked on the wire in
    // `per_api_codes_on_the_wire`.
    assert!(g2_commit.commit(&tpl, CommitMode::Sync).is_err());

    // Consume orders-secret: DENY wins over the prefixed ALLOW.
    let secret: BaseConsumer = consumer_cfg(&addr, "alice", "g1").create().unwrap();
    secret.subscribe(&["orders-secret"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no topic authorization error");
        match secret.poll(Duration::from_millis(500)) {
            Some(Err(e)) if e.rdkafka_error_code() == Some(E::TopicAuthorizationFailed) => break,
            Some(Ok(m)) => panic!("read orders-secret at {}", m.offset()),
            _ => {}
        }
    }

    // Admin operations: CREATE (no CREATE on the cluster or the topic) → 29; DELETE → 29,
    // also for a topic alice cannot see; a missing topic alice could see → 3.
    let alice = admin_client(&addr, "alice");
    let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let created = alice
        .create_topics(
            &[NewTopic::new("orders-new", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        matches!(&created[0], Err((_, E::TopicAuthorizationFailed))),
        "{created:?}"
    );
    let deleted = alice
        .delete_topics(&["orders-x", "payments", "orders-missing"], &opts)
        .await
        .unwrap();
    let codes: Vec<Option<E>> = deleted
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.1))
        .collect();
    assert_eq!(
        codes,
        [
            Some(E::TopicAuthorizationFailed),
            Some(E::TopicAuthorizationFailed),
            Some(E::UnknownTopicOrPartition)
        ]
    );
    // CreatePartitions (ALTER) and DeleteRecords (DELETE) → 29.
    let grown = alice
        .create_partitions(&[NewPartitions::new("orders-x", 2)], &opts)
        .await
        .unwrap();
    assert!(
        matches!(&grown[0], Err((_, E::TopicAuthorizationFailed))),
        "{grown:?}"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders-x", 0, Offset::Offset(1))
        .unwrap();
    let removed = alice.delete_records(&tpl, &opts).await.expect("answered");
    assert_eq!(
        removed
            .find_partition("orders-x", 0)
            .and_then(|p| p.error().err())
            .and_then(|e| e.rdkafka_error_code()),
        Some(E::TopicAuthorizationFailed)
    );

    // DescribeConfigs: DESCRIBE_CONFIGS on the topic (29) and on the cluster for the broker
    // (31). The rdkafka crate drops per-resource error codes (it only shows no entries), so
    // the codes are read on the wire.
    let described = alice
        .describe_configs(&[ResourceSpecifier::Topic("orders-x")], &opts)
        .await
        .unwrap();
    assert!(described[0].as_ref().map_or(true, |r| r.entries.is_empty()));
    let dc = raw
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders-x"))
                    .with_configuration_keys(None),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("0"))
                    .with_configuration_keys(None),
            ]),
            4,
        )
        .await;
    let codes: Vec<(i16, usize)> = dc
        .results
        .iter()
        .map(|r| (r.error_code, r.configs.len()))
        .collect();
    assert_eq!(codes, [(29, 0), (31, 0)]);

    // ListGroups: without DESCRIBE on the cluster alice sees only the groups she may describe.
    let admin_g: BaseConsumer = consumer_cfg(&addr, "admin", "g3").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("payments", 0, Offset::Offset(1))
        .unwrap();
    admin_g
        .commit(&tpl, CommitMode::Sync)
        .expect("super user commits to g3");
    let listed = lister.fetch_group_list(None, TIMEOUT).expect("group list");
    let groups: Vec<&str> = listed.groups().iter().map(|g| g.name()).collect();
    assert!(groups.contains(&"g1"), "{groups:?}");
    assert!(!groups.contains(&"g3"), "{groups:?}");
    let all = admin_g.fetch_group_list(None, TIMEOUT).expect("group list");
    assert!(all.groups().iter().any(|g| g.name() == "g3"));

    // The super user bypasses every check.
    let admin = admin_client(&addr, "admin");
    let r = admin
        .describe_configs(&[ResourceSpecifier::Topic("orders-secret")], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let r = admin
        .create_topics(
            &[NewTopic::new("orders-new", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin.delete_topics(&["orders-new"], &opts).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let su: BaseConsumer = consumer_cfg(&addr, "admin", "anything").create().unwrap();
    assert_eq!(
        su.fetch_watermarks("orders-secret", 0, TIMEOUT).unwrap(),
        (0, 1)
    );
    // Closing a consumer waits for the broker (LeaveGroup): off the async workers.
    tokio::task::spawn_blocking(move || {
        drop((g2, g2_commit, secret, lister, admin_g, su));
        drop((alice_p, alice, admin, raw));
    })
    .await
    .expect("consumers closed");
    broker.stop().await;
}

/// Raw checks for what rdkafka does not send: OffsetCommit/OffsetFetch/DescribeGroups codes
/// per version, FindCoordinator for a transactional id, DescribeLogDirs and client quotas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_api_codes_on_the_wire() {
    let broker = matrix_broker().await;
    let addr = broker.bootstrap();
    let mut alice = login(&addr, "alice", "alice-secret").await;
    let commit = |group: &str, topic: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1),
                    ]),
            ])
    };
    let c = alice.call(&commit("g1", "orders-x"), 8).await;
    assert_eq!(c.topics[0].partitions[0].error_code, 0);
    let c = alice.call(&commit("g2", "orders-x"), 8).await;
    assert_eq!(c.topics[0].partitions[0].error_code, 30);
    let c = alice.call(&commit("g1", "payments"), 8).await;
    assert_eq!(c.topics[0].partitions[0].error_code, 29);

    // OffsetFetch v8: a denied group is 30; a denied topic's partitions are 29; "all topics"
    // leaves out what alice may not describe.
    let fetch = |group: &str, topics: Option<Vec<&str>>| {
        OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| {
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(TopicName(s(t)))
                                .with_partition_indexes(vec![0])
                        })
                        .collect()
                })),
        ])
    };
    let f = alice.call(&fetch("g2", None), 8).await;
    assert_eq!(f.groups[0].error_code, 30);
    let f = alice
        .call(&fetch("g1", Some(vec!["orders-x", "payments"])), 8)
        .await;
    let got: Vec<(String, i16, i64)> = f.groups[0]
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions[0].error_code,
                t.partitions[0].committed_offset,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("orders-x".into(), 0, 1), ("payments".into(), 29, -1)]
    );
    // The super user commits g1/orders-secret; alice's "all topics" fetch does not show it.
    let mut admin = login(&addr, "admin", "admin-secret").await;
    let c = admin.call(&commit("g1", "orders-secret"), 8).await;
    assert_eq!(c.topics[0].partitions[0].error_code, 0);
    let f = alice.call(&fetch("g1", None), 8).await;
    let names: Vec<String> = f.groups[0]
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["orders-x"]);
    // OffsetFetch v5 (single group): top-level 30.
    let f = alice
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g2")))
                .with_topics(None),
            5,
        )
        .await;
    assert_eq!(f.error_code, 30);

    // FindCoordinator: group g2 → 30, transactional id → 53; g1 is found.
    let fc = alice
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("g1"), s("g2")]),
            4,
        )
        .await;
    let codes: Vec<i16> = fc.coordinators.iter().map(|c| c.error_code).collect();
    assert_eq!(codes, [0, 30]);
    let fc = alice
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(s("tx-1")),
            3,
        )
        .await;
    assert_eq!((fc.error_code, fc.node_id.0), (53, -1));

    // DescribeGroups: per group, with authorized operations on request.
    let dg = alice
        .call(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("g1")), GroupId(s("g2"))])
                .with_include_authorized_operations(true),
            5,
        )
        .await;
    let got: Vec<(String, i16)> = dg
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.error_code))
        .collect();
    assert_eq!(got, [("g1".into(), 0), ("g2".into(), 30)]);
    // READ (3) and the DESCRIBE (8) it implies; not DELETE (6).
    assert_eq!(dg.groups[0].authorized_operations, (1 << 3) | (1 << 8));
    // DeleteGroups needs DELETE.
    let del = alice
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1"))]),
            2,
        )
        .await;
    assert_eq!(del.results[0].error_code, 30);

    // Metadata with authorized operations: topic READ|DESCRIBE; cluster 0 (no DESCRIBE).
    let md = alice
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("orders-x"))))]))
                .with_include_cluster_authorized_operations(true)
                .with_include_topic_authorized_operations(true),
            10,
        )
        .await;
    assert_eq!(
        md.topics[0].topic_authorized_operations,
        (1 << 3) | (1 << 8)
    );
    assert_eq!(md.cluster_authorized_operations, 0);

    // Cluster-level admin: DescribeLogDirs 31, client quotas 31, IncrementalAlterConfigs 29.
    let ld = alice.call(&DescribeLogDirsRequest::default(), 3).await;
    assert_eq!(ld.error_code, 31);
    assert!(ld.results.is_empty());
    let q = alice.call(&DescribeClientQuotasRequest::default(), 1).await;
    assert_eq!(q.error_code, 31);
    let alter = alice
        .call(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders-x")),
            ]),
            1,
        )
        .await;
    assert_eq!(alter.responses[0].error_code, 29);
    // OffsetForLeaderEpoch and DescribeProducers on a denied topic: 29.
    let ole = alice
        .call(
            &OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(TopicName(s("payments")))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0),
                    ]),
            ]),
            4,
        )
        .await;
    assert_eq!(ole.topics[0].partitions[0].error_code, 29);
    let dp = alice
        .call(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s("orders-secret")))
                    .with_partition_indexes(vec![0]),
            ]),
            0,
        )
        .await;
    assert_eq!(dp.topics[0].partitions[0].error_code, 29);
    broker.stop().await;
}

/// Bad input: invalid ACL creations answer INVALID_REQUEST one by one, SASL out of order
/// answers ILLEGAL_SASL_STATE and closes; the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_acls_and_sasl_out_of_order() {
    let broker = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", USERS),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
    ])
    .await;
    let addr = broker.bootstrap();
    let mut admin = login(&addr, "admin", "admin-secret").await;
    let resp = admin
        .call(
            &CreateAclsRequest::default().with_creations(vec![
                acl(99, "x", LITERAL, READ, ALLOW),     // unknown resource type
                acl(1, "x", LITERAL, READ, ALLOW),      // ANY: filters only
                acl(TOPIC, "x", 2, READ, ALLOW),        // MATCH pattern: filters only
                acl(TOPIC, "x", 42, READ, ALLOW),       // unknown pattern type
                acl(TOPIC, "x", LITERAL, 77, ALLOW),    // unknown operation
                acl(TOPIC, "x", LITERAL, READ, 9),      // unknown permission
                acl(TOPIC, "ok", LITERAL, READ, ALLOW), // valid
            ]),
            3,
        )
        .await;
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [42, 42, 42, 42, 42, 42, 0]);
    assert!(resp.results[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("99")));
    // Same connection, still served: exactly the valid binding exists.
    let d = admin
        .call(
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
            3,
        )
        .await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.resources.len(), 1);
    assert_eq!(d.resources[0].resource_name.as_str(), "ok");

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE with a message, then closed.
    let mut raw = Raw::connect(&addr).await;
    let r = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret")),
            2,
        )
        .await;
    assert_eq!(r.error_code, 34);
    assert!(r.error_message.is_some());
    assert!(raw.closed().await);
    // A second handshake in the middle of an exchange: 34, closed.
    let mut raw = Raw::connect(&addr).await;
    let hs = SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256"));
    assert_eq!(raw.call(&hs, 1).await.error_code, 0);
    assert_eq!(raw.call(&hs, 1).await.error_code, 34);
    assert!(raw.closed().await);
    // A handshake after authenticating, with re-authentication off: 34, closed.
    let mut raw = login(&addr, "alice", "alice-secret").await;
    let hs = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
    assert_eq!(raw.call(&hs, 1).await.error_code, 34);
    assert!(raw.closed().await);
    // The broker is unaffected.
    let mut raw = login(&addr, "alice", "alice-secret").await;
    let md = raw.call(&MetadataRequest::default(), 12).await;
    assert_eq!(md.brokers.len(), 1);
    drop(admin);
    broker.stop().await;
}

/// TxnOffsetCommit: WRITE on the transactional id (53 on every partition), then READ on the
/// group (30), then READ on each topic (29 for its partitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_codes_on_the_wire() {
    const TRANSACTIONAL_ID: i8 = 5;
    const WRITE: i8 = 4;
    let broker = matrix_broker().await;
    let addr = broker.bootstrap();
    let mut admin = login(&addr, "admin", "admin-secret").await;
    let resp = admin
        .call(
            &CreateAclsRequest::default().with_creations(vec![acl(
                TRANSACTIONAL_ID,
                "tx-ok",
                LITERAL,
                WRITE,
                ALLOW,
            )]),
            3,
        )
        .await;
    assert_eq!(resp.results[0].error_code, 0);
    let mut alice = login(&addr, "alice", "alice-secret").await;
    let commit = |txn: &str, group: &str, topics: &[&str]| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(0)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(vec![
                                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(1),
                            ])
                    })
                    .collect(),
            )
    };
    let codes = |r: &TxnOffsetCommitResponse| -> Vec<(String, i16)> {
        let mut v: Vec<(String, i16)> = r
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.partitions[0].error_code))
            .collect();
        v.sort();
        v
    };
    let both = ["orders-x", "payments"];
    let r = alice.call(&commit("tx-nope", "g1", &both), 3).await;
    assert_eq!(
        codes(&r),
        vec![("orders-x".into(), 53), ("payments".into(), 53)]
    );
    let r = alice.call(&commit("tx-ok", "g2", &both), 3).await;
    assert_eq!(
        codes(&r),
        vec![("orders-x".into(), 30), ("payments".into(), 30)]
    );
    let r = alice.call(&commit("tx-ok", "g1", &both), 3).await;
    assert_eq!(
        codes(&r),
        vec![("orders-x".into(), 0), ("payments".into(), 29)]
    );
    broker.stop().await;
}
