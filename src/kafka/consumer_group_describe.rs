//! ConsumerGroupDescribe (key 69), versions 0..=1: state, epochs, assignor and members (with
//! their subscriptions, topic names and regex, and their current and target assignments) of
//! KIP-848 consumer groups, durable across restarts. A group that does not
//! exist, or is a classic group, is GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::group_code;
use crate::context::BrokerContext;
use crate::coordinator::assignor;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 1);

/// `authorized_operations` when the client did not ask for them.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Without ACLs every group operation is allowed: READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Member type of KIP-1099 (v1): a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn assignment(ctx: &BrokerContext, a: assignor::TopicPartitions) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(id, ps)| {
                let name = ctx
                    .catalog
                    .get_by_id(&id)
                    .map(|t| t.name.to_string())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

/// Handles a ConsumerGroupDescribe request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let ops = if req.include_authorized_operations {
        GROUP_OPS
    } else {
        OPS_NOT_REQUESTED
    };
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let base = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(ops);
        groups.push(match ctx.coordinator.consumer_describe(id.as_str()).await {
            Err(e) => base
                .with_error_code(group_code(&e).code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "group {}: {e}",
                    id.as_str()
                )))),
            Ok(d) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = Member::default()
                            .with_member_id(StrBytes::from_string(m.member_id))
                            .with_instance_id(m.instance_id.map(StrBytes::from_string))
                            .with_rack_id(m.rack_id.map(StrBytes::from_string))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(StrBytes::from_string(m.client_id))
                            .with_client_host(StrBytes::from_string(m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed
                                    .into_iter()
                                    .map(|t| TopicName(StrBytes::from_string(t)))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.subscribed_regex.map(StrBytes::from_string),
                            )
                            .with_assignment(assignment(&ctx, m.assignment))
                            .with_target_assignment(assignment(&ctx, m.target));
                        if version >= 1 {
                            member.with_member_type(MEMBER_TYPE_CONSUMER)
                        } else {
                            member
                        }
                    })
                    .collect();
                base.with_group_state(StrBytes::from_static_str(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(d.assignor))
                    .with_members(members)
            }
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
