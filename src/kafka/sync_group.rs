//! SyncGroup (key 14), versions 0..=5: the leader hands in the assignment, every member gets
//! its own bytes once the assignment is durable. v5 echoes protocol type and name.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::group_error_code;
use crate::context::BrokerContext;
use crate::coordinator::SyncParams;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles a SyncGroup request; resolves when the member's assignment is known.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let params = SyncParams {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let o = ctx.coordinator.sync(params).await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(group_error_code(o.error))
        .with_assignment(o.assignment);
    if version >= 5 {
        resp.protocol_type = o.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = o.protocol_name.map(StrBytes::from_string);
    }
    resp
}
