//! The group coordinator through a hand-rolled client: the classic protocol's steps and errors
//! at every supported version, static membership, rebalance and session timeouts, bad input
//! (each gets Kafka's error code and leaves the group intact) and durability across a restart.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::raw::Raw;
use common::TestBroker;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

/// (group, error code, [(partition, committed offset)]) of an OffsetFetch v8+ answer.
type GroupOffsets = (String, i16, Vec<(i32, i64)>);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn tname(v: &str) -> TopicName {
    TopicName(s(v))
}

async fn start() -> TestBroker {
    TestBroker::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "100"),
        ("offsets.topic.num.partitions", "4"),
    ])
    .await
}

async fn create_topic(raw: &mut Raw, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(tname(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let resp = raw.call(&req, 5).await;
    assert_eq!(resp.topics[0].error_code, NONE, "create {name}");
}

/// Consumer-protocol member metadata (subscription v1) for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(1);
    sub.encode(&mut b, 1).expect("encode subscription");
    b.freeze()
}

/// A consumer-protocol assignment (v1) of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        kafka_protocol::messages::consumer_protocol_assignment::TopicPartition::default()
            .with_topic(tname(topic))
            .with_partitions(partitions.to_vec()),
    ]);
    let mut b = BytesMut::new();
    b.put_i16(1);
    a.encode(&mut b, 1).expect("encode assignment");
    b.freeze()
}

fn assigned_partitions(bytes: &Bytes) -> Vec<i32> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut b = bytes.clone();
    let v = b.get_i16().min(3);
    let a = ConsumerProtocolAssignment::decode(&mut b, v).expect("assignment decodes");
    a.assigned_partitions
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect()
}

#[derive(Clone)]
struct Join<'a> {
    group: &'a str,
    member: String,
    instance: Option<&'a str>,
    session_ms: i32,
    rebalance_ms: i32,
    protocol_type: &'a str,
    protocols: Vec<(&'a str, Bytes)>,
}

impl<'a> Join<'a> {
    fn new(group: &'a str, topics: &[&str]) -> Join<'a> {
        Join {
            group,
            member: String::new(),
            instance: None,
            session_ms: 10_000,
            rebalance_ms: 10_000,
            protocol_type: "consumer",
            protocols: vec![("range", subscription(topics))],
        }
    }

    fn request(&self, version: i16) -> JoinGroupRequest {
        let mut r = JoinGroupRequest::default()
            .with_group_id(gid(self.group))
            .with_session_timeout_ms(self.session_ms)
            .with_member_id(s(&self.member))
            .with_protocol_type(s(self.protocol_type))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(n))
                            .with_metadata(m.clone())
                    })
                    .collect(),
            );
        if version >= 1 {
            r.rebalance_timeout_ms = self.rebalance_ms;
        }
        if version >= 5 {
            r.group_instance_id = self.instance.map(s);
        }
        r
    }
}

/// Joins as a new member, going through MEMBER_ID_REQUIRED on v4+; returns the response.
async fn join_new(raw: &mut Raw, j: &mut Join<'_>, version: i16) -> JoinGroupResponse {
    let resp = raw.call(&j.request(version), version).await;
    if resp.error_code == MEMBER_ID_REQUIRED {
        assert!(version >= 4 && j.instance.is_none());
        j.member = resp.member_id.to_string();
        return raw.call(&j.request(version), version).await;
    }
    if resp.error_code == NONE {
        j.member = resp.member_id.to_string();
    }
    resp
}

async fn sync(
    raw: &mut Raw,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
    version: i16,
) -> SyncGroupResponse {
    let mut r = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    if version >= 3 {
        r.group_instance_id = instance.map(s);
    }
    if version >= 5 {
        r.protocol_type = Some(s("consumer"));
        r.protocol_name = Some(s("range"));
    }
    raw.call(&r, version).await
}

async fn heartbeat(
    raw: &mut Raw,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> i16 {
    let r = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s));
    raw.call(&r, 4).await.error_code
}

async fn commit(
    raw: &mut Raw,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
    version: i16,
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o) in offsets {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(s("meta")));
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(tname(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let r = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics);
    let resp = raw.call(&r, version).await;
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// OffsetFetch v1-7 for one group; `None` asks for every committed partition.
async fn fetch(
    raw: &mut Raw,
    group: &str,
    partitions: Option<&[(&str, i32)]>,
    version: i16,
) -> (i16, Vec<(String, i32, i64)>) {
    let topics = partitions.map(|ps| {
        let mut topics: Vec<OffsetFetchRequestTopic> = Vec::new();
        for (t, p) in ps {
            match topics.iter_mut().find(|x| x.name.as_str() == *t) {
                Some(x) => x.partition_indexes.push(*p),
                None => topics.push(
                    OffsetFetchRequestTopic::default()
                        .with_name(tname(t))
                        .with_partition_indexes(vec![*p]),
                ),
            }
        }
        topics
    });
    let r = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics);
    let resp = raw.call(&r, version).await;
    let mut out: Vec<(String, i32, i64)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    let code = if version >= 2 {
        resp.error_code
    } else {
        resp.topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(0, |p| p.error_code)
    };
    (code, out)
}

async fn describe(raw: &mut Raw, group: &str, version: i16) -> DescribeGroupsResponse {
    let r = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    raw.call(&r, version).await
}

async fn list(raw: &mut Raw, states: &[&str], types: &[&str], version: i16) -> Vec<String> {
    let mut r = ListGroupsRequest::default();
    if version >= 4 {
        r.states_filter = states.iter().map(|x| s(x)).collect();
    }
    if version >= 5 {
        r.types_filter = types.iter().map(|x| s(x)).collect();
    }
    let resp = raw.call(&r, version).await;
    assert_eq!(resp.error_code, NONE);
    let mut v: Vec<String> = resp.groups.iter().map(|g| g.group_id.to_string()).collect();
    v.sort();
    v
}

/// Every API of the classic protocol at every version it is advertised with: join, sync,
/// heartbeat, commit, fetch, describe, list, leave, delete; each response decodes and carries
/// what the version can say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_at_every_version() {
    let broker = start().await;
    let addr = broker.bootstrap();
    let mut raw = Raw::connect(&addr).await;
    create_topic(&mut raw, "orders", 2).await;
    for v in 0..=9i16 {
        let group = format!("grp-v{v}");
        let mut j = Join::new(&group, &["orders"]);
        let resp = join_new(&mut raw, &mut j, v).await;
        assert_eq!(resp.error_code, NONE, "join v{v}");
        assert_eq!(resp.generation_id, 1, "join v{v}");
        assert_eq!(
            resp.leader.as_str(),
            j.member,
            "join v{v}: alone, so leader"
        );
        assert_eq!(resp.members.len(), 1, "join v{v}");
        assert_eq!(resp.protocol_name.as_deref(), Some("range"), "join v{v}");
        if v >= 7 {
            assert_eq!(resp.protocol_type.as_deref(), Some("consumer"));
        }
        let sv = v.min(5);
        let a = assignment("orders", &[0, 1]);
        let resp = sync(
            &mut raw,
            &group,
            &j.member,
            None,
            1,
            vec![(j.member.clone(), a.clone())],
            sv,
        )
        .await;
        assert_eq!(
            (resp.error_code, resp.assignment.clone()),
            (NONE, a),
            "sync v{sv}"
        );
        assert_eq!(heartbeat(&mut raw, &group, &j.member, None, 1).await, NONE);
        for hv in 0..=4i16 {
            let r = HeartbeatRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id(1)
                .with_member_id(s(&j.member));
            assert_eq!(raw.call(&r, hv).await.error_code, NONE, "heartbeat v{hv}");
        }
        let cv = v.clamp(2, 9);
        let r = commit(
            &mut raw,
            &group,
            &j.member,
            1,
            &[("orders", 0, 5), ("orders", 1, 7)],
            cv,
        )
        .await;
        assert!(r.iter().all(|(_, _, c)| *c == NONE), "commit v{cv}: {r:?}");
        let fv = v.clamp(1, 7);
        let (code, offsets) =
            fetch(&mut raw, &group, Some(&[("orders", 0), ("orders", 1)]), fv).await;
        assert_eq!(code, NONE);
        assert_eq!(
            offsets,
            vec![("orders".to_string(), 0, 5), ("orders".to_string(), 1, 7)],
            "fetch v{fv}"
        );
        let dv = v.min(6);
        let d = describe(&mut raw, &group, dv).await;
        let g = &d.groups[0];
        assert_eq!(
            (g.error_code, g.group_state.as_str()),
            (NONE, "Stable"),
            "describe v{dv}"
        );
        assert_eq!(g.protocol_type.as_str(), "consumer");
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.members.len(), 1);
        let m = &g.members[0];
        assert_eq!(m.member_id.as_str(), j.member);
        assert_eq!(m.client_id.as_str(), "raw");
        assert_eq!(m.client_host.as_str(), "/127.0.0.1");
        assert_eq!(m.member_metadata, subscription(&["orders"]));
        assert_eq!(assigned_partitions(&m.member_assignment), vec![0, 1]);
        let lv = v.min(5);
        assert!(
            list(&mut raw, &[], &[], lv).await.contains(&group),
            "list v{lv}"
        );
        let leave = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&j.member))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(s(&j.member))
        };
        let lv = v.min(5);
        let resp = raw.call(&leave, lv).await;
        assert_eq!(resp.error_code, NONE, "leave v{lv}");
        if lv >= 3 {
            assert_eq!(resp.members.len(), 1);
            assert_eq!(resp.members[0].error_code, NONE);
        }
        let d = describe(&mut raw, &group, dv).await;
        assert_eq!(d.groups[0].group_state.as_str(), "Empty");
        let del = DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]);
        let resp = raw.call(&del, v.min(2)).await;
        assert_eq!(resp.results[0].error_code, NONE, "delete v{}", v.min(2));
        let (_, offsets) = fetch(&mut raw, &group, Some(&[("orders", 0)]), fv).await;
        assert_eq!(
            offsets,
            vec![("orders".to_string(), 0, -1)],
            "offsets deleted with the group"
        );
    }
    // FindCoordinator at every version, single and batched.
    for v in 0..=6i16 {
        let mut r = FindCoordinatorRequest::default();
        if v >= 4 {
            r.coordinator_keys = vec![s("g1"), s("g2")];
        } else {
            r.key = s("g1");
        }
        if v >= 1 {
            r.key_type = 1;
        }
        let resp = raw.call(&r, v).await;
        if v >= 4 {
            assert_eq!(resp.coordinators.len(), 2);
            for c in &resp.coordinators {
                assert_eq!((c.error_code, c.node_id.0), (NONE, 0), "find v{v}");
                assert!(c.port > 0);
            }
        } else {
            assert_eq!((resp.error_code, resp.node_id.0), (NONE, 0), "find v{v}");
            assert!(resp.port > 0);
        }
    }
    let r = FindCoordinatorRequest::default()
        .with_key_type(5)
        .with_coordinator_keys(vec![s("x")]);
    assert_eq!(
        raw.call(&r, 4).await.coordinators[0].error_code,
        INVALID_REQUEST
    );
    broker.stop().await;
}

/// ListGroups filters, OffsetFetch's multi-group form, OffsetDelete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_multi_group_fetch_and_offset_delete() {
    let broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "events", 3).await;
    // "stable-g" has a member; "offsets-only" only has offsets (admin commit).
    let mut j = Join::new("stable-g", &["events"]);
    assert_eq!(join_new(&mut raw, &mut j, 7).await.error_code, NONE);
    let a = assignment("events", &[0, 1, 2]);
    assert_eq!(
        sync(
            &mut raw,
            "stable-g",
            &j.member,
            None,
            1,
            vec![(j.member.clone(), a)],
            5
        )
        .await
        .error_code,
        NONE
    );
    let r = commit(&mut raw, "stable-g", &j.member, 1, &[("events", 0, 3)], 8).await;
    assert_eq!(r[0].2, NONE);
    let r = commit(
        &mut raw,
        "offsets-only",
        "",
        -1,
        &[("events", 1, 11), ("events", 2, 12)],
        8,
    )
    .await;
    assert!(r.iter().all(|x| x.2 == NONE), "{r:?}");

    let both = vec!["offsets-only".to_string(), "stable-g".to_string()];
    assert_eq!(list(&mut raw, &[], &[], 3).await, both);
    assert_eq!(
        list(&mut raw, &["stable"], &[], 4).await,
        vec!["stable-g".to_string()]
    );
    assert_eq!(
        list(&mut raw, &["Empty"], &[], 4).await,
        vec!["offsets-only".to_string()]
    );
    assert_eq!(list(&mut raw, &["Stable", "Empty"], &[], 4).await, both);
    assert_eq!(list(&mut raw, &[], &["classic"], 5).await, both);
    assert!(list(&mut raw, &[], &["consumer"], 5).await.is_empty());

    // v8: several groups, null topics meaning all, plus an unknown group.
    let r = OffsetFetchRequest::default()
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("offsets-only"))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("stable-g"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(tname("events"))
                    .with_partition_indexes(vec![0, 1])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("nobody"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(tname("events"))
                    .with_partition_indexes(vec![0])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid(""))
                .with_topics(None),
        ])
        .with_require_stable(true);
    for v in [8i16, 9] {
        let resp = raw.call(&r, v).await;
        let got: Vec<GroupOffsets> = resp
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.error_code,
                    g.topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (p.partition_index, p.committed_offset))
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("offsets-only".to_string(), NONE, vec![(1, 11), (2, 12)]),
                ("stable-g".to_string(), NONE, vec![(0, 3), (1, -1)]),
                ("nobody".to_string(), NONE, vec![(0, -1)]),
                (String::new(), INVALID_GROUP_ID, vec![]),
            ],
            "v{v}"
        );
    }
    // v2+ with null topics: everything committed.
    let (code, all) = fetch(&mut raw, "offsets-only", None, 7).await;
    assert_eq!(code, NONE);
    assert_eq!(all.len(), 2);

    // OffsetDelete: refused while the member subscribes to the topic; allowed for an empty group.
    let od = |group: &str, parts: &[i32], topic: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(tname(topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                )])
    };
    let resp = raw.call(&od("stable-g", &[0], "events"), 0).await;
    assert_eq!(resp.error_code, NONE);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    let resp = raw.call(&od("offsets-only", &[1], "events"), 0).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
    let resp = raw
        .call(&od("offsets-only", &[0], "no-such-topic"), 0)
        .await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let resp = raw.call(&od("nobody", &[0], "events"), 0).await;
    assert_eq!(resp.error_code, GROUP_ID_NOT_FOUND);
    let (_, all) = fetch(&mut raw, "offsets-only", None, 7).await;
    assert_eq!(all, vec![("events".to_string(), 2, 12)]);
    broker.stop().await;
}

/// Bad input gets Kafka's codes, and the group it was aimed at carries on unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_kafka_error_codes() {
    let broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "t", 2).await;
    let mut j = Join::new("g", &["t"]);
    assert_eq!(join_new(&mut raw, &mut j, 7).await.error_code, NONE);
    let member = j.member.clone();
    let a = assignment("t", &[0, 1]);
    assert_eq!(
        sync(
            &mut raw,
            "g",
            &member,
            None,
            1,
            vec![(member.clone(), a.clone())],
            5
        )
        .await
        .error_code,
        NONE
    );

    // Empty group id, everywhere.
    let mut empty = Join::new("", &["t"]);
    assert_eq!(
        raw.call(&empty.request(7), 7).await.error_code,
        INVALID_GROUP_ID
    );
    empty.member = "x".into();
    assert_eq!(
        sync(&mut raw, "", "x", None, 1, vec![], 5).await.error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(
        heartbeat(&mut raw, "", "x", None, 1).await,
        INVALID_GROUP_ID
    );
    let r = commit(&mut raw, "", "", -1, &[("t", 0, 1)], 8).await;
    assert_eq!(r[0].2, INVALID_GROUP_ID);
    assert_eq!(
        fetch(&mut raw, "", Some(&[("t", 0)]), 7).await.0,
        INVALID_GROUP_ID
    );
    assert_eq!(
        fetch(&mut raw, "", Some(&[("t", 0)]), 1).await.0,
        INVALID_GROUP_ID
    );
    assert_eq!(
        describe(&mut raw, "", 5).await.groups[0].error_code,
        INVALID_GROUP_ID
    );

    // Session timeouts outside the broker's bounds (100 ms .. 30 min here).
    let mut short = Join::new("g2", &["t"]);
    short.session_ms = 50;
    assert_eq!(
        raw.call(&short.request(7), 7).await.error_code,
        INVALID_SESSION_TIMEOUT
    );
    short.session_ms = 1_800_001;
    assert_eq!(
        raw.call(&short.request(7), 7).await.error_code,
        INVALID_SESSION_TIMEOUT
    );

    // Unknown members and stale generations.
    assert_eq!(
        heartbeat(&mut raw, "g", "stranger", None, 1).await,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut raw, "g", &member, None, 0).await,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut raw, "g", &member, None, 2).await,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut raw, "nope", &member, None, 1).await,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sync(&mut raw, "g", "stranger", None, 1, vec![], 5)
            .await
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sync(&mut raw, "g", &member, None, 7, vec![], 5)
            .await
            .error_code,
        ILLEGAL_GENERATION
    );
    let mut stranger = Join::new("g", &["t"]);
    stranger.member = "stranger".into();
    assert_eq!(
        raw.call(&stranger.request(7), 7).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    let mut ghost = Join::new("no-such-group", &["t"]);
    ghost.member = "ghost".into();
    assert_eq!(
        raw.call(&ghost.request(7), 7).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    let r = commit(&mut raw, "g", &member, 5, &[("t", 0, 1)], 8).await;
    assert_eq!(r[0].2, ILLEGAL_GENERATION);
    let r = commit(&mut raw, "g", "stranger", 1, &[("t", 0, 1)], 8).await;
    assert_eq!(r[0].2, UNKNOWN_MEMBER_ID);
    // A commit without member or generation while the group has members.
    let r = commit(&mut raw, "g", "", -1, &[("t", 0, 1)], 8).await;
    assert_eq!(r[0].2, UNKNOWN_MEMBER_ID);
    // A member commit for a group that does not exist: ILLEGAL_GENERATION, GROUP_ID_NOT_FOUND in v9.
    let r = commit(&mut raw, "missing", "m", 1, &[("t", 0, 1)], 8).await;
    assert_eq!(r[0].2, ILLEGAL_GENERATION);
    let r = commit(&mut raw, "missing", "m", 1, &[("t", 0, 1)], 9).await;
    assert_eq!(r[0].2, GROUP_ID_NOT_FOUND);

    // Unknown topic or partition in a commit: per partition, the valid one is stored.
    let r = commit(
        &mut raw,
        "g",
        &member,
        1,
        &[("t", 0, 42), ("t", 9, 1), ("no-such-topic", 0, 1)],
        8,
    )
    .await;
    assert_eq!(
        r,
        vec![
            ("t".to_string(), 0, NONE),
            ("t".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    // Metadata over offset.metadata.max.bytes.
    let big = OffsetCommitRequest::default()
        .with_group_id(gid("g"))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(s(&member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tname("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(9)
                .with_committed_metadata(Some(s(&"m".repeat(5000))))])]);
    let resp = raw.call(&big, 8).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        OFFSET_METADATA_TOO_LARGE
    );

    // A member with another protocol type, or no common protocol.
    let mut other = Join::new("g", &["t"]);
    other.protocol_type = "connect";
    assert_eq!(
        join_new(&mut raw, &mut other, 7).await.error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut other = Join::new("g", &["t"]);
    other.protocols = vec![("roundrobin", subscription(&["t"]))];
    assert_eq!(
        join_new(&mut raw, &mut other, 7).await.error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );

    // DeleteGroups: with members / unknown.
    let del = DeleteGroupsRequest::default().with_groups_names(vec![gid("g"), gid("unknown")]);
    let resp = raw.call(&del, 2).await;
    assert_eq!(resp.results[0].error_code, NON_EMPTY_GROUP);
    assert_eq!(resp.results[1].error_code, GROUP_ID_NOT_FOUND);
    // DescribeGroups of an unknown group: Dead before v6, GROUP_ID_NOT_FOUND from v6.
    let d = describe(&mut raw, "unknown", 5).await;
    assert_eq!(
        (d.groups[0].error_code, d.groups[0].group_state.as_str()),
        (NONE, "Dead")
    );
    let d = describe(&mut raw, "unknown", 6).await;
    assert_eq!(d.groups[0].error_code, GROUP_ID_NOT_FOUND);

    // The group is intact: same member, generation, assignment and offset.
    assert_eq!(heartbeat(&mut raw, "g", &member, None, 1).await, NONE);
    let d = describe(&mut raw, "g", 5).await;
    let g = &d.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.as_str(), member);
    assert_eq!(g.members[0].member_assignment, a);
    let (_, offsets) = fetch(&mut raw, "g", Some(&[("t", 0), ("t", 1)]), 7).await;
    assert_eq!(
        offsets,
        vec![("t".to_string(), 0, 42), ("t".to_string(), 1, -1)]
    );
    // The connection survived every error.
    assert_eq!(list(&mut raw, &[], &[], 4).await, vec!["g".to_string()]);
    broker.stop().await;
}

/// KIP-345: a static member that restarts gets a new member id and its old assignment without a
/// rebalance; the old id is fenced; LeaveGroup by instance id alone removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_membership_survives_restart_and_fences_old_id() {
    let broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "t", 2).await;
    let mut j = Join::new("static", &["t"]);
    j.instance = Some("instance-1");
    let resp = join_new(&mut raw, &mut j, 7).await;
    assert_eq!(
        resp.error_code, NONE,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let old = j.member.clone();
    let a = assignment("t", &[0, 1]);
    let r = sync(
        &mut raw,
        "static",
        &old,
        Some("instance-1"),
        1,
        vec![(old.clone(), a.clone())],
        5,
    )
    .await;
    assert_eq!(r.error_code, NONE);

    // The process restarts: same instance id, no member id.
    let mut again = Join::new("static", &["t"]);
    again.instance = Some("instance-1");
    let resp = raw.call(&again.request(9), 9).await;
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.generation_id, 1, "no new generation");
    let new = resp.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(resp.leader.as_str(), new, "leadership moves to the new id");
    assert!(
        resp.skip_assignment,
        "KIP-814: the static leader keeps the assignment"
    );
    let r = sync(&mut raw, "static", &new, Some("instance-1"), 1, vec![], 5).await;
    assert_eq!((r.error_code, r.assignment), (NONE, a));
    let d = describe(&mut raw, "static", 5).await;
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(
        d.groups[0].members[0].group_instance_id.as_deref(),
        Some("instance-1")
    );

    // The old incarnation is fenced.
    assert_eq!(
        heartbeat(&mut raw, "static", &old, Some("instance-1"), 1).await,
        FENCED_INSTANCE_ID
    );
    let r = sync(&mut raw, "static", &old, Some("instance-1"), 1, vec![], 5).await;
    assert_eq!(r.error_code, FENCED_INSTANCE_ID);
    let mut stale = Join::new("static", &["t"]);
    stale.instance = Some("instance-1");
    stale.member = old.clone();
    assert_eq!(
        raw.call(&stale.request(7), 7).await.error_code,
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        heartbeat(&mut raw, "static", &new, Some("instance-1"), 1).await,
        NONE
    );

    // LeaveGroup v3+: a wrong member id for the instance is fenced, the instance id alone works.
    let leave = |member: &str| {
        LeaveGroupRequest::default()
            .with_group_id(gid("static"))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(s(member))
                .with_group_instance_id(Some(s("instance-1")))])
    };
    let resp = raw.call(&leave(&old), 4).await;
    assert_eq!(resp.members[0].error_code, FENCED_INSTANCE_ID);
    let resp = raw.call(&leave(""), 4).await;
    assert_eq!(resp.members[0].error_code, NONE);
    let d = describe(&mut raw, "static", 5).await;
    assert_eq!(d.groups[0].group_state.as_str(), "Empty");
    broker.stop().await;
}

/// Polls DescribeGroups until `check` holds or the deadline passes.
async fn wait_for_group(
    raw: &mut Raw,
    group: &str,
    what: &str,
    check: impl Fn(&kafka_protocol::messages::describe_groups_response::DescribedGroup) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = describe(raw, group, 5).await;
        if check(&d.groups[0]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group}: {what}; last state {:?}",
            d.groups[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A member that does not rejoin within the rebalance timeout is dropped from the new
/// generation; a member whose heartbeats stop is removed after its session timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_and_session_timeouts_remove_silent_members() {
    let broker = start().await;
    let addr = broker.bootstrap();
    let mut raw = Raw::connect(&addr).await;
    create_topic(&mut raw, "t", 2).await;

    // a and b form generation 2 (a leads).
    let mut a = Join::new("timeouts", &["t"]);
    a.rebalance_ms = 1_000;
    a.session_ms = 30_000;
    assert_eq!(join_new(&mut raw, &mut a, 7).await.generation_id, 1);
    let mut b = a.clone();
    b.member = String::new();
    // b's join parks until a rejoins; a learns it from its heartbeat.
    let mut raw_b = Raw::connect(&addr).await;
    let b_join = tokio::spawn(async move {
        let r = join_new(&mut raw_b, &mut b, 7).await;
        (raw_b, b, r)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = heartbeat(&mut raw, "timeouts", &a.member, None, 1).await;
        if code == REBALANCE_IN_PROGRESS {
            break;
        }
        assert!(Instant::now() < deadline, "no rebalance announced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ra = raw.call(&a.request(7), 7).await;
    let (mut raw_b, b, rb) = b_join.await.expect("b joins");
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.leader.as_str(), a.member);
    assert_eq!(ra.members.len(), 2);
    // b's SyncGroup waits for the leader's.
    let b_member = b.member.clone();
    let b_sync = tokio::spawn(async move {
        let r = sync(&mut raw_b, "timeouts", &b_member, None, 2, vec![], 5).await;
        (raw_b, r)
    });
    let plan = vec![
        (a.member.clone(), assignment("t", &[0])),
        (b.member.clone(), assignment("t", &[1])),
    ];
    let r = sync(&mut raw, "timeouts", &a.member, None, 2, plan, 5).await;
    assert_eq!(assigned_partitions(&r.assignment), vec![0]);
    let (mut raw_b, r) = b_sync.await.expect("b syncs");
    assert_eq!(assigned_partitions(&r.assignment), vec![1]);

    // The leader rejoins (a rebalance); b stays silent and misses the 1 s rebalance timeout.
    let started = Instant::now();
    let ra = raw.call(&a.request(7), 7).await;
    assert_eq!(ra.error_code, NONE);
    assert_eq!(ra.generation_id, 3);
    assert_eq!(ra.members.len(), 1, "b was dropped from the new generation");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the rebalance timeout"
    );
    assert_eq!(
        heartbeat(&mut raw_b, "timeouts", &b.member, None, 2).await,
        UNKNOWN_MEMBER_ID
    );

    // A member whose heartbeats stop is removed after its session timeout.
    let mut c = Join::new("sessions", &["t"]);
    c.session_ms = 300;
    assert_eq!(join_new(&mut raw, &mut c, 7).await.error_code, NONE);
    let r = sync(
        &mut raw,
        "sessions",
        &c.member,
        None,
        1,
        vec![(c.member.clone(), assignment("t", &[0, 1]))],
        5,
    )
    .await;
    assert_eq!(r.error_code, NONE);
    let silent_since = Instant::now();
    wait_for_group(&mut raw, "sessions", "expires", |g| {
        g.group_state.as_str() == "Empty"
    })
    .await;
    assert!(silent_since.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        heartbeat(&mut raw, "sessions", &c.member, None, 1).await,
        UNKNOWN_MEMBER_ID
    );

    // KIP-394: a member id handed out with MEMBER_ID_REQUIRED is forgotten if never used.
    let mut d = Join::new("sessions", &["t"]);
    d.session_ms = 300;
    let resp = raw.call(&d.request(7), 7).await;
    assert_eq!(resp.error_code, MEMBER_ID_REQUIRED);
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.member = resp.member_id.to_string();
    // Now unknown: rejoining with it is refused... unless the group is empty, where Kafka also
    // says UNKNOWN_MEMBER_ID.
    assert_eq!(
        raw.call(&d.request(7), 7).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    broker.stop().await;
}

/// Offsets and group membership are durable: after a restart the offsets are there and the
/// stable group is restored with its member, generation and assignment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_groups_survive_restart() {
    let mut broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "t", 3).await;
    let mut j = Join::new("durable", &["t"]);
    j.session_ms = 60_000;
    assert_eq!(join_new(&mut raw, &mut j, 7).await.error_code, NONE);
    let a = assignment("t", &[0, 1, 2]);
    assert_eq!(
        sync(
            &mut raw,
            "durable",
            &j.member,
            None,
            1,
            vec![(j.member.clone(), a.clone())],
            5
        )
        .await
        .error_code,
        NONE
    );
    let r = commit(
        &mut raw,
        "durable",
        &j.member,
        1,
        &[("t", 0, 10), ("t", 1, 20)],
        8,
    )
    .await;
    assert!(r.iter().all(|x| x.2 == NONE));
    let r = commit(&mut raw, "durable", &j.member, 1, &[("t", 0, 15)], 8).await;
    assert!(r.iter().all(|x| x.2 == NONE));
    let r = commit(&mut raw, "admin-only", "", -1, &[("t", 2, 7)], 8).await;
    assert!(r.iter().all(|x| x.2 == NONE));
    // A deleted group stays deleted.
    let r = commit(&mut raw, "doomed", "", -1, &[("t", 2, 1)], 8).await;
    assert!(r.iter().all(|x| x.2 == NONE));
    let del = DeleteGroupsRequest::default().with_groups_names(vec![gid("doomed")]);
    assert_eq!(raw.call(&del, 2).await.results[0].error_code, NONE);
    drop(raw);

    broker.restart().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let (_, offsets) = fetch(&mut raw, "durable", None, 7).await;
    assert_eq!(
        offsets,
        vec![("t".to_string(), 0, 15), ("t".to_string(), 1, 20)]
    );
    let (_, offsets) = fetch(&mut raw, "admin-only", None, 7).await;
    assert_eq!(offsets, vec![("t".to_string(), 2, 7)]);
    let (_, offsets) = fetch(&mut raw, "doomed", None, 7).await;
    assert!(offsets.is_empty());
    let d = describe(&mut raw, "durable", 5).await;
    let g = &d.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.as_str(), j.member);
    assert_eq!(g.members[0].member_assignment, a);
    // The member carries on with its generation; its SyncGroup returns the stored assignment.
    assert_eq!(
        heartbeat(&mut raw, "durable", &j.member, None, 1).await,
        NONE
    );
    let r = sync(&mut raw, "durable", &j.member, None, 1, vec![], 5).await;
    assert_eq!((r.error_code, r.assignment), (NONE, a));
    let mut names = list(&mut raw, &[], &[], 4).await;
    names.sort();
    assert_eq!(names, vec!["admin-only".to_string(), "durable".to_string()]);
    broker.stop().await;
}

/// The internal topic is the coordinator's: clients cannot produce to it or delete it, and
/// Metadata marks it internal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topic_is_protected() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let batch = esker::log::batch::build_batch(&[(Some(b"k"), Some(b"v"))], 0).freeze();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tname("__consumer_offsets"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let resp = raw.call(&produce, 9).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 17);
    let del = DeleteTopicsRequest::default().with_topic_names(vec![tname("__consumer_offsets")]);
    assert_eq!(raw.call(&del, 4).await.responses[0].error_code, 17);
    let md = raw
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let t = md
        .topics
        .iter()
        .find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "__consumer_offsets")
        })
        .expect("listed");
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 4);
    broker.stop().await;
}

/// A JoinGroup parked in a rebalance is answered with NOT_COORDINATOR when the broker shuts
/// down, so it does not hold the shutdown up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_parked_joins() {
    let broker = start().await;
    let addr = broker.bootstrap();
    let mut raw = Raw::connect(&addr).await;
    create_topic(&mut raw, "t", 1).await;
    let mut a = Join::new("parked", &["t"]);
    a.rebalance_ms = 60_000;
    assert_eq!(join_new(&mut raw, &mut a, 7).await.error_code, NONE);
    // b's join waits for a, which never rejoins.
    let mut raw_b = Raw::connect(&addr).await;
    let mut b = Join::new("parked", &["t"]);
    b.rebalance_ms = 60_000;
    let first = raw_b.call(&b.request(7), 7).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    b.member = first.member_id.to_string();
    raw_b.send(&b.request(7), 7).await;
    wait_for_group(&mut raw, "parked", "rebalancing", |g| {
        g.group_state.as_str() == "PreparingRebalance"
    })
    .await;
    let started = Instant::now();
    let (_, resp): (i32, JoinGroupResponse) = tokio::join!(broker.stop(), raw_b.recv(7)).1;
    assert_eq!(resp.error_code, 16, "NOT_COORDINATOR");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown was not held up"
    );
}

/// A ConsumerGroupHeartbeat (KIP-848) request.
fn cg_heartbeat(
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
    assignor: Option<&str>,
) -> ConsumerGroupHeartbeatRequest {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 5_000 } else { -1 })
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| tname(t)).collect()))
        .with_server_assignor(assignor.map(s))
        .with_topic_partitions(owned.map(|o| {
            o.into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                })
                .collect()
        }))
}

fn cg_assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<(uuid::Uuid, Vec<i32>)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|t| (t.topic_id, t.partitions.clone()))
            .collect()
    })
}

/// The consumer group protocol by hand: join, range assignment, revocation before a partition
/// moves, epochs fenced, commits checked against the member epoch, describe and list, and the
/// errors Kafka gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_by_hand() {
    let broker = TestBroker::start_with(&[
        ("offsets.topic.num.partitions", "4"),
        ("group.consumer.session.timeout.ms", "1500"),
    ])
    .await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "cg", 4).await;
    let md = raw
        .call(
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(tname("cg"))),
            ])),
            12,
        )
        .await;
    let topic_id = md.topics[0].topic_id;

    // Errors first: unknown assignor, unknown member, empty group id.
    let r = raw
        .call(
            &cg_heartbeat(
                "cgroup",
                "a",
                0,
                Some(&["cg"]),
                Some(vec![]),
                Some("sticky"),
            ),
            1,
        )
        .await;
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    let r = raw
        .call(&cg_heartbeat("cgroup", "ghost", 3, None, None, None), 1)
        .await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    let r = raw
        .call(
            &cg_heartbeat("", "a", 0, Some(&["cg"]), Some(vec![]), None),
            1,
        )
        .await;
    assert_eq!(r.error_code, INVALID_GROUP_ID);

    // a joins with the range assignor and gets all four partitions.
    let r = raw
        .call(
            &cg_heartbeat("cgroup", "a", 0, Some(&["cg"]), Some(vec![]), Some("range")),
            1,
        )
        .await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.member_id.as_deref(), Some("a"));
    assert!(r.heartbeat_interval_ms > 0);
    let a_epoch = r.member_epoch;
    assert_eq!(cg_assigned(&r), Some(vec![(topic_id, vec![0, 1, 2, 3])]));

    // b joins: nothing until a has revoked the upper half.
    let r = raw
        .call(
            &cg_heartbeat("cgroup", "b", 0, Some(&["cg"]), Some(vec![]), Some("range")),
            1,
        )
        .await;
    assert_eq!(r.error_code, NONE);
    let b_epoch = r.member_epoch;
    assert_eq!(cg_assigned(&r), Some(vec![]));
    let r = raw
        .call(
            &cg_heartbeat(
                "cgroup",
                "a",
                a_epoch,
                None,
                Some(vec![(topic_id, vec![0, 1, 2, 3])]),
                None,
            ),
            1,
        )
        .await;
    assert_eq!(r.member_epoch, a_epoch, "revocation first, same epoch");
    assert_eq!(cg_assigned(&r), Some(vec![(topic_id, vec![0, 1])]));
    let r = raw
        .call(
            &cg_heartbeat("cgroup", "b", b_epoch, None, Some(vec![]), None),
            1,
        )
        .await;
    assert_eq!(
        cg_assigned(&r).unwrap_or_default(),
        vec![],
        "still owned by a"
    );
    // a confirms the revocation and moves to the new epoch.
    let r = raw
        .call(
            &cg_heartbeat(
                "cgroup",
                "a",
                a_epoch,
                None,
                Some(vec![(topic_id, vec![0, 1])]),
                None,
            ),
            1,
        )
        .await;
    assert_eq!(r.member_epoch, b_epoch);
    let a_epoch = r.member_epoch;
    let r = raw
        .call(
            &cg_heartbeat("cgroup", "b", b_epoch, None, Some(vec![]), None),
            1,
        )
        .await;
    assert_eq!(cg_assigned(&r), Some(vec![(topic_id, vec![2, 3])]));

    // A stale epoch is fenced.
    let r = raw
        .call(
            &cg_heartbeat("cgroup", "a", a_epoch - 1, None, None, None),
            1,
        )
        .await;
    assert_eq!(r.error_code, 110, "FENCED_MEMBER_EPOCH");
    // Commits are checked against the member epoch (OffsetCommit v9).
    let c = commit(&mut raw, "cgroup", "a", a_epoch, &[("cg", 0, 5)], 9).await;
    assert_eq!(c[0].2, NONE);
    let c = commit(&mut raw, "cgroup", "a", a_epoch + 5, &[("cg", 0, 6)], 9).await;
    assert_eq!(c[0].2, 113, "STALE_MEMBER_EPOCH");
    let c = commit(&mut raw, "cgroup", "zz", 1, &[("cg", 0, 6)], 9).await;
    assert_eq!(c[0].2, UNKNOWN_MEMBER_ID);
    let (_, offsets) = fetch(&mut raw, "cgroup", Some(&[("cg", 0)]), 7).await;
    assert_eq!(offsets, vec![("cg".to_string(), 0, 5)]);

    // Describe and list.
    let d = raw
        .call(
            &ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![gid("cgroup"), gid("nope")]),
            1,
        )
        .await;
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (NONE, "Stable"));
    assert_eq!(g.assignor_name.as_str(), "range");
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.members[0].member_id.as_str(), "a");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(g.members[0].subscribed_topic_names[0].as_str(), "cg");
    assert_eq!(
        g.members[0].assignment.topic_partitions[0].partitions,
        vec![0, 1]
    );
    assert_eq!(
        g.members[0].target_assignment.topic_partitions[0]
            .topic_name
            .as_str(),
        "cg"
    );
    assert_eq!(d.groups[1].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        list(&mut raw, &[], &["consumer"], 5).await,
        vec!["cgroup".to_string()]
    );
    assert!(list(&mut raw, &[], &["classic"], 5).await.is_empty());

    // The classic protocol cannot join it; it cannot be deleted while it has members.
    let mut j = Join::new("cgroup", &["cg"]);
    assert_eq!(
        join_new(&mut raw, &mut j, 7).await.error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let del = DeleteGroupsRequest::default().with_groups_names(vec![gid("cgroup")]);
    assert_eq!(
        raw.call(&del, 2).await.results[0].error_code,
        NON_EMPTY_GROUP
    );

    // a leaves; b stops heartbeating and is removed after the 1.5 s session timeout.
    let r = raw
        .call(&cg_heartbeat("cgroup", "a", -1, None, None, None), 1)
        .await;
    assert_eq!((r.error_code, r.member_epoch), (NONE, -1));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = raw
            .call(
                &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("cgroup")]),
                0,
            )
            .await;
        if d.groups[0].group_state.as_str() == "Empty" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never expired: {:?}",
            d.groups[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = raw
        .call(&cg_heartbeat("cgroup", "b", b_epoch, None, None, None), 1)
        .await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    // Empty now: it can be deleted, offsets with it.
    assert_eq!(raw.call(&del, 2).await.results[0].error_code, NONE);
    let (_, offsets) = fetch(&mut raw, "cgroup", None, 7).await;
    assert!(offsets.is_empty());
    broker.stop().await;
}

const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// TxnOffsetCommit of `offsets` for producer 4000 (epoch 0); member and generation are sent
/// from v3 on. Returns (topic, partition, error code) per partition.
async fn txn_commit(
    raw: &mut Raw,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
    version: i16,
) -> Vec<(String, i32, i16)> {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (t, p, o) in offsets {
        let part = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(s("txn")));
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(tname(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let mut r = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("raw-tx")))
        .with_group_id(gid(group))
        .with_producer_id(ProducerId(4000))
        .with_producer_epoch(0)
        .with_topics(topics);
    if version >= 3 {
        r = r.with_generation_id(generation).with_member_id(s(member));
    }
    let resp = raw.call(&r, version).await;
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// OffsetFetch v7 of `partitions`: (partition, committed offset, error code) per partition.
async fn fetch_stable(
    raw: &mut Raw,
    group: &str,
    topic: &str,
    partitions: &[i32],
    require_stable: bool,
) -> Vec<(i32, i64, i16)> {
    let r = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(tname(topic))
            .with_partition_indexes(partitions.to_vec())]))
        .with_require_stable(require_stable);
    let resp = raw.call(&r, 7).await;
    assert_eq!(resp.error_code, NONE);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        })
        .collect()
}

/// TxnOffsetCommit by hand: v3 checks the member's generation like OffsetCommit and leaves the
/// committed offsets alone when it fails; accepted offsets stay pending (require_stable answers
/// UNSTABLE_OFFSET_COMMIT) while a plain fetch keeps returning the committed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_checks_the_generation() {
    let broker = start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    create_topic(&mut raw, "txn-events", 2).await;
    let mut j = Join::new("txn-g", &["txn-events"]);
    assert_eq!(join_new(&mut raw, &mut j, 7).await.error_code, NONE);
    let a = assignment("txn-events", &[0, 1]);
    let synced = sync(
        &mut raw,
        "txn-g",
        &j.member,
        None,
        1,
        vec![(j.member.clone(), a)],
        5,
    );
    assert_eq!(synced.await.error_code, NONE);
    let r = commit(
        &mut raw,
        "txn-g",
        &j.member,
        1,
        &[("txn-events", 0, 5), ("txn-events", 1, 6)],
        8,
    )
    .await;
    assert!(r.iter().all(|x| x.2 == NONE), "{r:?}");
    let committed = vec![(0, 5, NONE), (1, 6, NONE)];

    let offsets = [("txn-events", 0, 50), ("txn-events", 1, 60)];
    let r = txn_commit(&mut raw, "txn-g", &j.member, 2, &offsets, 3).await;
    assert_eq!(
        r.iter().map(|x| x.2).collect::<Vec<_>>(),
        vec![ILLEGAL_GENERATION; 2],
        "{r:?}"
    );
    let r = txn_commit(&mut raw, "txn-g", "stranger", 1, &offsets, 3).await;
    assert!(r.iter().all(|x| x.2 == UNKNOWN_MEMBER_ID), "{r:?}");
    // Nothing was written: the committed offsets stand and nothing is pending.
    assert_eq!(
        fetch_stable(&mut raw, "txn-g", "txn-events", &[0, 1], true).await,
        committed
    );

    // An unknown topic fails alone; the member's own generation is accepted.
    let mut with_unknown = offsets.to_vec();
    with_unknown.push(("no-such-topic", 0, 1));
    let r = txn_commit(&mut raw, "txn-g", &j.member, 1, &with_unknown, 3).await;
    assert_eq!(
        r.iter().map(|x| x.2).collect::<Vec<_>>(),
        vec![NONE, NONE, UNKNOWN_TOPIC_OR_PARTITION],
        "{r:?}"
    );
    assert_eq!(
        fetch_stable(&mut raw, "txn-g", "txn-events", &[0, 1], true).await,
        vec![
            (0, -1, UNSTABLE_OFFSET_COMMIT),
            (1, -1, UNSTABLE_OFFSET_COMMIT)
        ]
    );
    assert_eq!(
        fetch_stable(&mut raw, "txn-g", "txn-events", &[0, 1], false).await,
        committed
    );
    // v0 has no member or generation: not checked against the group.
    let r = txn_commit(&mut raw, "txn-g", "", -1, &offsets[..1], 0).await;
    assert_eq!(r, vec![("txn-events".to_string(), 0, NONE)]);
    broker.stop().await;
}
