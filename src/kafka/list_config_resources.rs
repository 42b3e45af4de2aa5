//! ListConfigResources (key 74, v0..=1): v0 (KIP-714's ListClientMetricsResources) lists the
//! client metrics resources; v1 (KIP-1142, Kafka 4.1) lists config resources of the types
//! asked for (every supported type when none is named), in Kafka's order: groups with configs
//! (Esker has no group configs, so none), client metrics, broker loggers, brokers, topics. A
//! type Kafka does not list fails the whole request with UNSUPPORTED_VERSION.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;

use super::client_metrics::CLIENT_METRICS;
use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 1);

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const GROUP: i8 = 32;
/// The types v1 lists (`ListConfigResourcesRequest.supportedResourceTypes()`).
const SUPPORTED: [i8; 5] = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

/// Handles a ListConfigResources request (already authorized: DESCRIBE_CONFIGS on the
/// cluster). `listener` is the one the request came through: brokers are listed if they
/// have an endpoint on it.
pub fn handle(
    ctx: &BrokerContext,
    req: &ListConfigResourcesRequest,
    version: i16,
    listener: &str,
) -> ListConfigResourcesResponse {
    let resource = |ty: i8, name: String| {
        ConfigResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_string(name))
    };
    if version == 0 {
        let resources = ctx
            .telemetry
            .resource_names()
            .into_iter()
            .map(|n| resource(CLIENT_METRICS, n))
            .collect();
        return ListConfigResourcesResponse::default().with_config_resources(resources);
    }
    if let Some(bad) = req.resource_types.iter().find(|t| !SUPPORTED.contains(t)) {
        tracing::debug!(
            resource_type = bad,
            "ListConfigResources for an unsupported type"
        );
        return ListConfigResourcesResponse::default()
            .with_error_code(Code::UnsupportedVersion.code());
    }
    let wants = |t: i8| req.resource_types.is_empty() || req.resource_types.contains(&t);
    let mut out = Vec::new();
    if wants(CLIENT_METRICS) {
        out.extend(
            ctx.telemetry
                .resource_names()
                .into_iter()
                .map(|n| resource(CLIENT_METRICS, n)),
        );
    }
    let brokers: Vec<i32> = match &ctx.cluster {
        None => vec![ctx.config.node_id],
        Some(c) => c
            .image()
            .brokers
            .values()
            .filter(|b| b.endpoints.iter().any(|e| e.name == listener))
            .map(|b| b.id)
            .collect(),
    };
    for ty in [BROKER_LOGGER, BROKER] {
        if wants(ty) {
            out.extend(brokers.iter().map(|id| resource(ty, id.to_string())));
        }
    }
    if wants(TOPIC) {
        // Sorted by name already.
        out.extend(
            ctx.catalog
                .all()
                .iter()
                .map(|t| resource(TOPIC, t.name.to_string())),
        );
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
}
