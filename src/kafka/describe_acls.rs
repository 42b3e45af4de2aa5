//! DescribeAcls (key 29), v1-3: needs DESCRIBE on the cluster; one filter (ANY/MATCH allowed),
//! bindings grouped by resource pattern.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use super::Access;
use crate::auth::acl::{AclFilter, Operation, ResourceType, CLUSTER_NAME};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 3);

/// Handles a DescribeAcls request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeAclsRequest,
    access: Access,
) -> DescribeAclsResponse {
    let error = |code: Code, msg: String| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(msg)))
    };
    if !access.allowed(
        &ctx,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return error(
            Code::ClusterAuthorizationFailed,
            "DESCRIBE on the cluster is required".into(),
        );
    }
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_ref().map(|s| s.as_str()),
        req.pattern_type_filter,
        req.principal_filter.as_ref().map(|s| s.as_str()),
        req.host_filter.as_ref().map(|s| s.as_str()),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(Code::InvalidRequest, e.to_string()),
    };
    let mut grouped: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in ctx.security.authorizer.describe(&filter) {
        grouped
            .entry((
                b.resource_type.code(),
                b.resource_name.clone(),
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(b.principal))
                    .with_host(StrBytes::from_string(b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = grouped
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
