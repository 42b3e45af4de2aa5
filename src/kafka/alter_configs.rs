//! IncrementalAlterConfigs (key 44, versions 0..=1) and AlterConfigs (key 33, versions 0..=2)
//! for topics: every change is validated first (INVALID_CONFIG naming the key), then stored
//! durably and applied to the topic's partitions. For brokers (resource name: this node's id,
//! or "" for the cluster-wide default) the keys of [`crate::dynamic_config`] change at
//! runtime; the rest are refused with Kafka's codes (see `broker_error_code`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{BROKER, TOPIC};
use super::error::Code;
use crate::context::BrokerContext;
use crate::dynamic_config::DynamicConfigError;
use crate::topic_config;

/// Supported versions of IncrementalAlterConfigs.
pub const INCREMENTAL_VERSIONS: (i16, i16) = (0, 1);
/// Supported versions of AlterConfigs.
pub const VERSIONS: (i16, i16) = (0, 2);

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Outcome = Result<(), (Code, String)>;

/// Handles IncrementalAlterConfigs.
pub async fn handle_incremental(
    ctx: Arc<BrokerContext>,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        if r.resource_type == super::client_metrics::CLIENT_METRICS {
            let outcome = super::client_metrics::alter_incremental(&ctx, &r, req.validate_only);
            responses.push(resource_response(r.resource_type, r.resource_name, outcome));
            continue;
        }
        let changes: Vec<(String, i8, Option<String>)> = r
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let outcome = alter(
            &ctx,
            r.resource_type,
            r.resource_name.as_str(),
            req.validate_only,
            |current, broker| {
                let mut next = current.clone();
                if broker {
                    check_broker_changes(&changes)?;
                }
                for (key, op, value) in &changes {
                    let value = value.clone().unwrap_or_default();
                    if broker {
                        // Broker keys are validated by the broker; none of them is a list.
                        match *op {
                            SET => next.insert(key.clone(), value),
                            DELETE => next.remove(key),
                            _ => {
                                return Err((
                                    Code::InvalidConfig,
                                    format!("`{key}` is not a list; APPEND/SUBTRACT do not apply"),
                                ))
                            }
                        };
                        continue;
                    }
                    let def = topic_config::def(key).ok_or_else(|| {
                        (Code::InvalidConfig, format!("unknown topic config `{key}`"))
                    })?;
                    match *op {
                        SET => {
                            next.insert(key.clone(), value);
                        }
                        DELETE => {
                            next.remove(key);
                        }
                        APPEND | SUBTRACT if def.config_type == topic_config::config_type::LIST => {
                            let (base, _) = topic_config::effective(def, &next, &ctx.config);
                            let mut items: Vec<String> = base
                                .split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect();
                            for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                if *op == APPEND && !items.iter().any(|i| i == v) {
                                    items.push(v.to_string());
                                } else if *op == SUBTRACT {
                                    items.retain(|i| i != v);
                                }
                            }
                            next.insert(key.clone(), items.join(","));
                        }
                        APPEND | SUBTRACT => {
                            return Err((
                                Code::InvalidConfig,
                                format!("`{key}` is not a list; APPEND/SUBTRACT do not apply"),
                            ))
                        }
                        other => {
                            return Err((
                                Code::InvalidRequest,
                                format!("unknown config operation {other}"),
                            ))
                        }
                    }
                }
                Ok(next)
            },
        )
        .await;
        let mut resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err((code, msg)) = outcome {
            resp.error_code = code.code();
            resp.error_message = Some(StrBytes::from_string(msg));
        }
        responses.push(resp);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Handles the legacy AlterConfigs: the given set replaces every override of the topic.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let wanted: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = if r.resource_type == super::client_metrics::CLIENT_METRICS {
            super::client_metrics::alter(&ctx, r.resource_name.as_str(), wanted, req.validate_only)
        } else {
            alter(
                &ctx,
                r.resource_type,
                r.resource_name.as_str(),
                req.validate_only,
                |_, _| Ok(wanted.clone()),
            )
            .await
        };
        let mut resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err((code, msg)) = outcome {
            resp.error_code = code.code();
            resp.error_message = Some(StrBytes::from_string(msg));
        }
        responses.push(resp);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// An IncrementalAlterConfigs resource answer.
fn resource_response(
    resource_type: i8,
    name: StrBytes,
    outcome: Outcome,
) -> kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse {
    let mut resp = kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    if let Err((code, msg)) = outcome {
        resp.error_code = code.code();
        resp.error_message = Some(StrBytes::from_string(msg));
    }
    resp
}

/// Computes, validates, stores and applies a topic's new overrides.
async fn alter<F>(
    ctx: &Arc<BrokerContext>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: F,
) -> Outcome
where
    F: FnOnce(&BTreeMap<String, String>, bool) -> Result<BTreeMap<String, String>, (Code, String)>,
{
    match resource_type {
        TOPIC => {}
        BROKER => {
            let scope = broker_scope(ctx, name)?;
            let current = ctx.dynamic_broker_configs(scope);
            let next = change(&current, true)?;
            let mut changes: Vec<(String, Option<String>)> = next
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            changes.extend(
                current
                    .keys()
                    .filter(|k| !next.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            );
            return ctx
                .alter_broker_configs(scope, &changes, validate_only)
                .await
                .map_err(|e| {
                    tracing::info!(broker = name, error = %e, "broker config change refused");
                    (broker_error_code(&e), e.to_string())
                });
        }
        other => {
            return Err((
                Code::InvalidRequest,
                format!("resource type {other} is not supported"),
            ))
        }
    }
    let meta = ctx.catalog.get(name).ok_or_else(|| {
        (
            Code::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let next = change(&meta.configs, false)?;
    for (k, v) in &next {
        topic_config::validate(k, v).map_err(|e| (Code::InvalidConfig, e.to_string()))?;
    }
    if validate_only {
        return Ok(());
    }
    ctx.set_topic_configs(name, next)
        .await
        .map_err(|e| (Code::KafkaStorageError, e))?;
    tracing::info!(topic = name, "topic configs changed");
    Ok(())
}

/// The layer a BROKER resource names: "" is the cluster-wide default, else it must be this
/// node's id. As in Kafka, a per-broker change goes to the broker it names (clients route it
/// there), so another id is INVALID_REQUEST.
pub(super) fn broker_scope(ctx: &BrokerContext, name: &str) -> Result<Option<i32>, (Code, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    let me = ctx.config.node_id;
    match name.parse::<i32>() {
        Ok(id) if id == me => Ok(Some(id)),
        Ok(_) => Err((
            Code::InvalidRequest,
            format!("Unexpected broker id, expected {me} or empty string, but received {name}"),
        )),
        Err(_) => Err((
            Code::InvalidRequest,
            format!("Node id must be an integer, but it is: {name}"),
        )),
    }
}

/// Kafka's preliminary checks of a broker change: no key twice, no SET without a value.
fn check_broker_changes(changes: &[(String, i8, Option<String>)]) -> Outcome {
    for (i, (key, op, value)) in changes.iter().enumerate() {
        if changes[..i].iter().any(|(k, _, _)| k == key) {
            return Err((
                Code::InvalidRequest,
                format!("Error due to duplicate config keys: `{key}`"),
            ));
        }
        if *op != DELETE && value.is_none() {
            return Err((
                Code::InvalidRequest,
                format!("Null value not supported for : {key}"),
            ));
        }
    }
    Ok(())
}

/// The error code Kafka answers a refused broker change with.
fn broker_error_code(e: &DynamicConfigError) -> Code {
    match e {
        DynamicConfigError::Failed(_) => Code::KafkaStorageError,
        e if e.is_invalid_request() => Code::InvalidRequest,
        _ => Code::InvalidConfig,
    }
}
