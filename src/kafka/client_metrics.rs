//! The CLIENT_METRICS config resource type (16, KIP-714) in DescribeConfigs,
//! IncrementalAlterConfigs and AlterConfigs: a client metrics resource is a named
//! subscription owned by [`crate::telemetry`]; this translates to and from the wire. As in
//! Kafka, DescribeConfigs lists only the keys a resource sets (source CLIENT_METRICS_CONFIG),
//! and a resource left without keys is removed.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::protocol::StrBytes;

use super::error::{client_metrics_code, Code};
use crate::context::BrokerContext;
use crate::telemetry::{subscription, AlterOp};
use crate::topic_config::config_type;

/// The resource type code of a client metrics resource.
pub const CLIENT_METRICS: i8 = 16;
/// `ConfigSource.CLIENT_METRICS_CONFIG`.
const CLIENT_METRICS_CONFIG: i8 = 7;

type Outcome = Result<(), (Code, String)>;

/// Fills a DescribeConfigs result for a client metrics resource.
pub fn describe(ctx: &BrokerContext, r: &DescribeConfigsResource, res: &mut DescribeConfigsResult) {
    let name = r.resource_name.as_str();
    if name.is_empty() {
        res.error_code = Code::InvalidRequest.code();
        res.error_message = Some(StrBytes::from_static_str(
            "Client metrics subscription name must not be empty",
        ));
        return;
    }
    let wanted = |k: &str| {
        r.configuration_keys.as_ref().map_or(true, |keys| {
            keys.is_empty() || keys.iter().any(|w| w.as_str() == k)
        })
    };
    res.configs = ctx
        .telemetry
        .resource(name)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| {
            let ty = if subscription::LIST_KEYS.contains(&k.as_str()) {
                config_type::LIST
            } else {
                config_type::INT
            };
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(k))
                .with_value(Some(StrBytes::from_string(v)))
                .with_config_source(CLIENT_METRICS_CONFIG)
                .with_config_type(ty)
                .with_read_only(false)
        })
        .collect();
}

/// Applies an IncrementalAlterConfigs resource of type CLIENT_METRICS.
pub fn alter_incremental(
    ctx: &BrokerContext,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Outcome {
    let mut changes = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let op = match c.config_operation {
            0 => AlterOp::Set,
            1 => AlterOp::Delete,
            2 => AlterOp::Append,
            3 => AlterOp::Subtract,
            other => {
                return Err((
                    Code::InvalidRequest,
                    format!("unknown config operation {other}"),
                ))
            }
        };
        changes.push((
            c.name.to_string(),
            op,
            c.value.as_ref().map(|v| v.to_string()),
        ));
    }
    ctx.telemetry
        .alter_incremental(r.resource_name.as_str(), &changes, validate_only)
        .map_err(|e| outcome(r.resource_name.as_str(), e))
}

/// Applies a legacy AlterConfigs resource of type CLIENT_METRICS: the given set replaces the
/// resource's configs.
pub fn alter(
    ctx: &BrokerContext,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Outcome {
    ctx.telemetry
        .replace(name, configs, validate_only)
        .map_err(|e| outcome(name, e))
}

fn outcome(name: &str, e: crate::telemetry::ConfigError) -> (Code, String) {
    tracing::info!(subscription = name, error = %e, "client metrics resource change refused");
    (client_metrics_code(&e), e.to_string())
}
