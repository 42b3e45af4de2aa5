//! OffsetFetch (key 9), versions 1..=9 (Kafka 4 dropped 0): the committed offsets of the
//! requested partitions (-1 where none), or of every partition with a commit when the topic
//! list is null (v2+). v8+ asks for several groups at once. Offsets become visible only once
//! durable; transactional ones only once their transaction commits. With `require_stable`
//! (v7+) a partition that an open transaction holds offsets for answers
//! UNSTABLE_OFFSET_COMMIT (88) so the consumer retries; without it the last committed offset
//! is returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::{group_code, group_error_code};
use crate::context::BrokerContext;
use crate::coordinator::{FetchedOffset, GroupError};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 9);

type Fetched = Result<Vec<FetchedOffset>, GroupError>;

/// Groups offsets by topic, keeping the order topics first appear in.
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut order = Vec::new();
    let mut map: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
    for o in offsets {
        if !map.contains_key(&o.topic) {
            order.push(o.topic.clone());
        }
        map.entry(o.topic.clone()).or_default().push(o);
    }
    order
        .into_iter()
        .map(|t| {
            let v = map.remove(&t).unwrap_or_default();
            (t, v)
        })
        .collect()
}

async fn fetch(
    ctx: &BrokerContext,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> Fetched {
    let partitions = topics.map(|ts| {
        ts.into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    ctx.coordinator
        .fetch_offsets(group_id, partitions, member, require_stable)
        .await
}

/// Handles an OffsetFetch request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            // v9: a consumer-protocol member names itself and its epoch (KIP-848).
            let member = (version >= 9)
                .then(|| {
                    g.member_id
                        .as_ref()
                        .map(|m| (m.to_string(), g.member_epoch))
                })
                .flatten();
            let fetched = fetch(
                &ctx,
                g.group_id.as_str(),
                topics,
                member,
                req.require_stable,
            )
            .await;
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            groups.push(match fetched {
                Err(e) => group.with_error_code(group_code(&e).code()),
                Ok(offsets) => group.with_topics(
                    by_topic(offsets)
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|o| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(o.partition)
                                                .with_committed_offset(o.offset)
                                                .with_committed_leader_epoch(o.leader_epoch)
                                                .with_metadata(
                                                    o.metadata.map(StrBytes::from_string),
                                                )
                                                .with_error_code(group_error_code(o.error))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && req.require_stable;
    let fetched = fetch(
        &ctx,
        req.group_id.as_str(),
        requested.clone(),
        None,
        require_stable,
    )
    .await;
    let partition = |p: i32, offset: i64, epoch: i32, metadata: Option<String>, code: i16| {
        let r = OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_metadata(metadata.map(StrBytes::from_string))
            .with_error_code(code);
        if version >= 5 {
            r.with_committed_leader_epoch(epoch)
        } else {
            r
        }
    };
    match fetched {
        Ok(offsets) => {
            let topics = by_topic(offsets)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|o| {
                                    let code = group_error_code(o.error);
                                    partition(
                                        o.partition,
                                        o.offset,
                                        o.leader_epoch,
                                        o.metadata,
                                        code,
                                    )
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(e) => {
            // v2+ has a top-level error; v1 only per partition.
            let code = group_code(&e).code();
            let topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| partition(p, -1, -1, None, code))
                                .collect(),
                        )
                })
                .collect();
            let resp = OffsetFetchResponse::default().with_topics(topics);
            if version >= 2 {
                resp.with_error_code(code)
            } else {
                resp
            }
        }
    }
}
