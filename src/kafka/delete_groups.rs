//! DeleteGroups (key 42), versions 0..=2: an empty group is removed with its offsets
//! (tombstones in `__consumer_offsets`); one with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::error::group_code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Handles a DeleteGroups request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let r = ctx.coordinator.delete(id.as_str()).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(r.err().map_or(0, |e| group_code(&e).code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
