//! DescribeGroups (key 15), versions 0..=6: state, protocol and members with their metadata and
//! assignment (those two only when the group is Stable, as in Kafka). An unknown group is
//! reported as Dead with no error before v6 and as GROUP_ID_NOT_FOUND from v6 (KIP-1043).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::{group_code, Code};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 6);

/// `authorized_operations` when the client did not ask for them.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Without ACLs every group operation is allowed: READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Handles a DescribeGroups request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let ops = if version >= 3 && req.include_authorized_operations {
        GROUP_OPS
    } else {
        OPS_NOT_REQUESTED
    };
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let base = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(ops);
        let described = match ctx.coordinator.describe(id.as_str()).await {
            Err(e) => base.with_error_code(group_code(&e).code()),
            Ok(None) if version >= 6 => base
                .with_error_code(Code::GroupIdNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "group {} not found",
                    id.as_str()
                ))))
                .with_group_state(StrBytes::from_static_str("Dead")),
            Ok(None) => base.with_group_state(StrBytes::from_static_str("Dead")),
            Ok(Some(d)) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(m.member_id))
                            .with_client_id(StrBytes::from_string(m.client_id))
                            .with_client_host(StrBytes::from_string(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if version >= 4 {
                            member.with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        } else {
                            member
                        }
                    })
                    .collect();
                base.with_group_state(StrBytes::from_static_str(d.state))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol))
                    .with_members(members)
            }
        };
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
