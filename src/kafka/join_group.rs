//! JoinGroup (key 11), versions 0..=9: a member joins (or rejoins) a classic group and waits
//! for the join phase to end; the leader gets every member's metadata. New members of v4+ first
//! get MEMBER_ID_REQUIRED with their id (KIP-394); v5+ carries `group.instance.id` (KIP-345);
//! v9 tells a rejoining static leader to skip the assignment (KIP-814).

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::group_error_code;
use super::Caller;
use crate::context::BrokerContext;
use crate::coordinator::JoinParams;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 9);

/// Handles a JoinGroup request; resolves when the join phase completes.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: JoinGroupRequest,
    version: i16,
    caller: Caller,
) -> JoinGroupResponse {
    let params = JoinParams {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: caller.client_id,
        client_host: caller.host,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let o = ctx.coordinator.join(params).await;
    let members = o
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.instance_id.map(StrBytes::from_string))
            } else {
                member
            }
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(group_error_code(o.error))
        .with_generation_id(o.generation)
        .with_leader(StrBytes::from_string(o.leader))
        .with_member_id(StrBytes::from_string(o.member_id))
        .with_members(members);
    if version >= 7 {
        resp.protocol_type = o.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = o.protocol_name.map(StrBytes::from_string);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(StrBytes::from_string(o.protocol_name.unwrap_or_default()));
    }
    if version >= 9 {
        resp.skip_assignment = o.skip_assignment;
    }
    resp
}
