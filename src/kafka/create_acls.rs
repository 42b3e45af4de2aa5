//! CreateAcls (key 30), v1-3: needs ALTER on the cluster; each creation is validated on its own.

use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use super::Access;
use crate::auth::acl::{AclBinding, Operation, ResourceType, CLUSTER_NAME};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 3);

/// Handles a CreateAcls request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: CreateAclsRequest,
    access: Access,
) -> CreateAclsResponse {
    let fail = |code: Code, msg: String| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(msg)))
    };
    if !access.allowed(&ctx, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                fail(
                    Code::ClusterAuthorizationFailed,
                    "ALTER on the cluster is required".into(),
                )
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let mut results = Vec::with_capacity(req.creations.len());
    let mut valid = Vec::new();
    for c in &req.creations {
        match AclBinding::from_wire(
            c.resource_type,
            c.resource_name.as_str(),
            c.resource_pattern_type,
            c.principal.as_str(),
            c.host.as_str(),
            c.operation,
            c.permission_type,
        ) {
            Ok(b) => {
                valid.push(b);
                results.push(AclCreationResult::default());
            }
            Err(e) => results.push(fail(Code::InvalidRequest, e.to_string())),
        }
    }
    if !valid.is_empty() {
        tracing::info!(target: "esker::audit", principal = %access.principal, acls = ?valid, "acls created");
        if let Err(e) = ctx.create_acls(valid).await {
            tracing::error!(error = %e, "cannot store acls");
            for r in results.iter_mut().filter(|r| r.error_code == 0) {
                *r = fail(Code::UnknownServerError, e.to_string());
            }
        }
    }
    CreateAclsResponse::default().with_results(results)
}
