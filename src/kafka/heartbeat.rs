//! Heartbeat (key 12), versions 0..=4: keeps a member's session alive; REBALANCE_IN_PROGRESS
//! tells it to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::error::group_code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handles a Heartbeat request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let r = ctx
        .coordinator
        .heartbeat(
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.group_instance_id.map(|s| s.to_string()),
            req.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(r.err().map_or(0, |e| group_code(&e).code()))
}
