//! LeaveGroup (key 13), versions 0..=5: v0-2 name one member; v3+ a batch of member identities
//! with per-member errors, where a static member may be named by its instance id alone (KIP-345).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::error::group_code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles a LeaveGroup request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let identities: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = ctx
        .coordinator
        .leave(req.group_id.as_str(), identities.clone())
        .await;
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(group_code(&e).code()),
        Ok(results) if version < 3 => LeaveGroupResponse::default().with_error_code(
            results
                .first()
                .and_then(|r| r.err())
                .map_or(0, |e| group_code(&e).code()),
        ),
        Ok(results) => {
            let members = req
                .members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(r.err().map_or(0, |e| group_code(&e).code()))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}
