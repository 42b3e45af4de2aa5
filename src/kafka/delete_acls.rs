//! DeleteAcls (key 31), v1-3: needs ALTER on the cluster; each filter answers the bindings it
//! removed.

use std::sync::Arc;

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use super::Access;
use crate::auth::acl::{AclFilter, Operation, ResourceType, CLUSTER_NAME};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 3);

/// Handles a DeleteAcls request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DeleteAclsRequest,
    access: Access,
) -> DeleteAclsResponse {
    let fail = |code: Code, msg: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(msg)))
    };
    if !access.allowed(&ctx, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                fail(
                    Code::ClusterAuthorizationFailed,
                    "ALTER on the cluster is required".into(),
                )
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let mut parsed = Vec::new();
    let mut results: Vec<Option<DeleteAclsFilterResult>> = Vec::new();
    for f in &req.filters {
        match AclFilter::from_wire(
            f.resource_type_filter,
            f.resource_name_filter.as_ref().map(|s| s.as_str()),
            f.pattern_type_filter,
            f.principal_filter.as_ref().map(|s| s.as_str()),
            f.host_filter.as_ref().map(|s| s.as_str()),
            f.operation,
            f.permission_type,
        ) {
            Ok(f) => {
                parsed.push(f);
                results.push(None);
            }
            Err(e) => results.push(Some(fail(Code::InvalidRequest, e.to_string()))),
        }
    }
    let deleted = match ctx.delete_acls(parsed).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot store acls");
            let results = req
                .filters
                .iter()
                .map(|_| fail(Code::UnknownServerError, e.to_string()))
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let mut deleted = deleted.into_iter();
    let results = results
        .into_iter()
        .map(|r| match r {
            Some(r) => r,
            None => {
                let gone = deleted.next().unwrap_or_default();
                if !gone.is_empty() {
                    tracing::info!(target: "esker::audit", principal = %access.principal, acls = ?gone, "acls deleted");
                }
                DeleteAclsFilterResult::default().with_matching_acls(
                    gone.into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(StrBytes::from_string(b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(StrBytes::from_string(b.principal))
                                .with_host(StrBytes::from_string(b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
