//! DescribeTopicPartitions (key 75), version 0: the topics (all, or the ones named) with every
//! partition's leader, epoch, replicas, ISR and offline replicas, in name order, paged by
//! `response_partition_limit` with a cursor (KIP-966's API, which the Java AdminClient's
//! `describeTopics` uses). ELR fields are null: Esker has no eligible leader replicas. Topics
//! the principal may not describe are left out of a full listing and answer
//! TOPIC_AUTHORIZATION_FAILED when named.

use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Access;
use super::error::Code;
use super::metadata::View;
use crate::auth::acl::Operation;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Kafka's default and ceiling for `response_partition_limit`.
const PARTITION_LIMIT: i32 = 2000;

/// `topic_authorized_operations` when not computed.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Handles a DescribeTopicPartitions request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeTopicPartitionsRequest,
    access: Access,
) -> DescribeTopicPartitionsResponse {
    let limit = match req.response_partition_limit {
        l if l <= 0 => PARTITION_LIMIT,
        l => l.min(PARTITION_LIMIT),
    } as usize;
    let node = BrokerId(ctx.config.node_id);
    let view = View::of(&ctx);
    let mut names: Vec<String> = if req.topics.is_empty() {
        ctx.catalog
            .all()
            .into_iter()
            .map(|m| m.name.to_string())
            .filter(|n| access.topic(&ctx, Operation::Describe, n))
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut topics = Vec::new();
    let mut budget = limit;
    let mut next_cursor = None;
    for name in names {
        if start_topic.as_ref().is_some_and(|s| name < *s) {
            continue;
        }
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition
        } else {
            0
        };
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        let entry = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(topic_name.clone()))
            .with_topic_authorized_operations(OPS_NOT_REQUESTED);
        if !access.topic(&ctx, Operation::Describe, &name) {
            topics.push(entry.with_error_code(Code::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some((meta, states)) = ctx
            .catalog
            .get(&name)
            .and_then(|m| view.partitions(node, &m).map(|s| (m, s)))
        else {
            topics.push(entry.with_error_code(Code::UnknownTopicOrPartition.code()));
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(first),
            );
            break;
        }
        let mut partitions = Vec::new();
        for (i, p) in states.into_iter().enumerate().skip(first as usize) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(topic_name.clone())
                        .with_partition_index(i as i32),
                );
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(if p.leader < 0 {
                        Code::LeaderNotAvailable.code()
                    } else {
                        0
                    })
                    .with_partition_index(i as i32)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas)
                    .with_isr_nodes(p.isr)
                    .with_eligible_leader_replicas(None)
                    .with_last_known_elr(None)
                    .with_offline_replicas(p.offline),
            );
        }
        topics.push(
            entry
                .with_topic_id(meta.id)
                .with_is_internal(meta.name.starts_with("__"))
                .with_partitions(partitions),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
