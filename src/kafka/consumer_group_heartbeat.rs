//! ConsumerGroupHeartbeat (key 68), versions 0..=1: the consumer group protocol of KIP-848
//! (`group.protocol=consumer`). Members join with epoch 0, heartbeat with their epoch and owned
//! partitions, and get their assignment computed by a server-side assignor; see
//! `coordinator::consumer`. A regular-expression subscription (`SubscribedTopicRegex`) matches
//! only the topics the caller may DESCRIBE; one that does not compile answers
//! INVALID_REGULAR_EXPRESSION.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::group_error_code;
use super::Caller;
use crate::context::BrokerContext;
use crate::coordinator::{ConsumerHeartbeat, TopicFilter};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles a ConsumerGroupHeartbeat request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: ConsumerGroupHeartbeatRequest,
    _version: i16,
    caller: Caller,
    describable: Option<TopicFilter>,
) -> ConsumerGroupHeartbeatResponse {
    let owned = req.topic_partitions.map(|tps| {
        let mut owned: BTreeMap<uuid::Uuid, BTreeSet<i32>> = BTreeMap::new();
        for tp in tps {
            owned.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        owned
    });
    let params = ConsumerHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: caller.client_id,
        client_host: caller.host,
        describable,
    };
    let o = ctx.coordinator.consumer_heartbeat(params).await;
    let assignment = o.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(topic_id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(group_error_code(o.error))
        .with_error_message(o.error_message.map(StrBytes::from_string))
        .with_member_id((!o.member_id.is_empty()).then(|| StrBytes::from_string(o.member_id)))
        .with_member_epoch(o.member_epoch)
        .with_heartbeat_interval_ms(o.heartbeat_interval_ms)
        .with_assignment(assignment)
}
