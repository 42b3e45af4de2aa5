//! ListGroups (key 16), versions 0..=5: every group of every coordinator partition, filtered by
//! state (v4+, case-insensitive) and by type (v5: `classic`, `consumer`).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::group_code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles a ListGroups request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let groups = match ctx.coordinator.list().await {
        Ok(g) => g,
        Err(e) => return ListGroupsResponse::default().with_error_code(group_code(&e).code()),
    };
    let matches = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let listed = groups
        .into_iter()
        .filter(|g| version < 4 || matches(&req.states_filter, g.state))
        .filter(|g| version < 5 || matches(&req.types_filter, g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= 4 {
                l.group_state = StrBytes::from_static_str(g.state);
            }
            if version >= 5 {
                l.group_type = StrBytes::from_static_str(g.group_type);
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}
