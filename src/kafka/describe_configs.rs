//! DescribeConfigs (key 32), versions 1..=4: topic configs (override, else broker key, else
//! default, with Kafka's sources and synonyms) and broker configs: this node's (per-broker
//! dynamic > cluster-default dynamic > static > default, with every layer as a synonym) or the
//! cluster default's (resource name "": only the keys set there).

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::config::{Kind, KEYS};
use crate::context::BrokerContext;
use crate::topic_config::{self, config_type, Source};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 4);

/// Resource type codes.
pub const TOPIC: i8 = 2;
/// Resource type code of a broker.
pub const BROKER: i8 = 4;

/// Handles a DescribeConfigs request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let wanted = |k: &str| {
            r.configuration_keys
                .as_ref()
                .map_or(true, |keys| keys.iter().any(|w| w.as_str() == k))
        };
        let mut res = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match r.resource_type {
            TOPIC => match ctx.catalog.get(r.resource_name.as_str()) {
                Some(meta) => {
                    res.configs = topic_config::TOPIC_KEYS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) =
                                topic_config::effective(d, &meta.configs, &ctx.config);
                            let mut e = entry(
                                d.name,
                                value,
                                source,
                                d.config_type,
                                d.doc,
                                req.include_documentation,
                            );
                            if req.include_synonyms {
                                e.synonyms = synonyms(&ctx, d, &meta.configs);
                            }
                            e.read_only = false;
                            e
                        })
                        .collect();
                }
                None => {
                    res.error_code = Code::UnknownTopicOrPartition.code();
                    res.error_message = Some(StrBytes::from_string(format!(
                        "topic '{}' does not exist",
                        r.resource_name.as_str()
                    )));
                }
            },
            BROKER => match super::alter_configs::broker_scope(&ctx, r.resource_name.as_str()) {
                Err((code, msg)) => {
                    res.error_code = code.code();
                    res.error_message = Some(StrBytes::from_string(msg));
                }
                // The cluster default: only the keys set there, as Kafka describes it.
                Ok(None) => {
                    let layer = ctx.dynamic_broker_configs(None);
                    res.configs = KEYS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .filter_map(|d| {
                            let value = layer.get(d.name)?.clone();
                            let mut e = broker_entry(
                                d,
                                value.clone(),
                                Source::DynamicDefaultBroker,
                                req.include_documentation,
                            );
                            if req.include_synonyms {
                                e.synonyms =
                                    vec![synonym(d.name, value, Source::DynamicDefaultBroker)];
                            }
                            Some(hide_sensitive(d.name, e))
                        })
                        .collect();
                }
                Ok(Some(_)) => {
                    res.configs = KEYS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let all = broker_synonyms(&ctx, d.name, true);
                            let (value, source) = all.first().map_or_else(
                                || (d.default.to_string(), Source::Default),
                                |s| (s.1.clone(), s.2),
                            );
                            let mut e = broker_entry(d, value, source, req.include_documentation);
                            if req.include_synonyms {
                                e.synonyms = all
                                    .into_iter()
                                    .map(|(name, value, source)| synonym(name, value, source))
                                    .collect();
                            }
                            hide_sensitive(d.name, e)
                        })
                        .collect();
                }
            },
            super::client_metrics::CLIENT_METRICS => {
                super::client_metrics::describe(&ctx, &r, &mut res);
            }
            other => {
                res.error_code = Code::InvalidRequest.code();
                res.error_message = Some(StrBytes::from_string(format!(
                    "resource type {other} is not supported"
                )));
            }
        }
        results.push(res);
    }
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    name: &'static str,
    value: String,
    source: Source,
    ty: i8,
    doc: &'static str,
    docs: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source as i8)
        .with_config_type(ty)
        .with_documentation(docs.then(|| StrBytes::from_static_str(doc)))
}

/// Kafka lists the synonyms from most to least specific: the topic override, then the broker
/// key that supplies the default.
fn synonyms(
    ctx: &BrokerContext,
    d: &'static topic_config::TopicKeyDef,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(d.name) {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str(d.name))
                .with_value(Some(StrBytes::from_string(v.clone())))
                .with_source(Source::Topic as i8),
        );
    }
    if let Some(bk) = d.broker_key {
        out.extend(
            broker_synonyms(ctx, bk, false)
                .into_iter()
                .map(|(name, value, source)| synonym(name, value, source)),
        );
    }
    out
}

/// A broker key's values from the most to the least specific, as Kafka lists them: this
/// broker's dynamic value, the cluster default, the static value (`server.properties`) and,
/// with `with_default` or when nothing else is set, the default.
fn broker_synonyms(
    ctx: &BrokerContext,
    key: &'static str,
    with_default: bool,
) -> Vec<(&'static str, String, Source)> {
    let mut out = Vec::new();
    let dynamic = ctx.config.dynamic_configs();
    if let Some(v) = dynamic.per_broker.get(key) {
        out.push((key, v.clone(), Source::DynamicBroker));
    }
    if let Some(v) = dynamic.cluster_default.get(key) {
        out.push((key, v.clone(), Source::DynamicDefaultBroker));
    }
    let explicit = ctx.config.explicit.contains(key);
    if let Some(v) = ctx.config.values.get(key) {
        if explicit {
            out.push((key, v.clone(), Source::StaticBroker));
        } else {
            out.push((key, v.clone(), Source::Default));
        }
    }
    if with_default && explicit {
        if let Some(d) = KEYS.iter().find(|d| d.name == key) {
            out.push((key, d.default.to_string(), Source::Default));
        }
    }
    out
}

fn synonym(name: &'static str, value: String, source: Source) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_source(source as i8)
}

fn broker_entry(
    d: &'static crate::config::KeyDef,
    value: String,
    source: Source,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let ty = match d.kind {
        Kind::Int { max, .. } if max > i64::from(i32::MAX) => config_type::LONG,
        Kind::Int { .. } => config_type::INT,
        Kind::Bool => config_type::BOOLEAN,
        Kind::Listeners => config_type::LIST,
        Kind::Ratio => config_type::DOUBLE,
        Kind::Str | Kind::Enum(_) => config_type::STRING,
    };
    let mut e = entry(d.name, value, source, ty, d.doc, docs);
    e.read_only = !crate::config::DYNAMIC_KEYS.contains(&d.name);
    e
}

/// As Kafka does for passwords: flagged, never shown.
fn hide_sensitive(
    name: &str,
    mut e: DescribeConfigsResourceResult,
) -> DescribeConfigsResourceResult {
    if crate::config::SENSITIVE_KEYS.contains(&name) {
        e.value = None;
        e.is_sensitive = true;
        for s in &mut e.synonyms {
            s.value = None;
        }
    }
    e
}
