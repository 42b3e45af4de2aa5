//! DescribeConfigs (key 32), versions 1..=4: topic configs (override, else broker key, else
//! default, with Kafka's sources and synonyms) and the broker's static configs.

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
            BROKER
                if r.resource_name.is_empty()
                    || r.resource_name.as_str() == ctx.config.node_id.to_string() =>
            {
                res.configs = KEYS
                    .iter()
                    .filter(|d| wanted(d.name))
                    .map(|d| {
                        let dynamic = ctx.config.dynamic_value(d.name);
                        let value = dynamic
                            .clone()
                            .or_else(|| ctx.config.values.get(d.name).cloned())
                            .unwrap_or_default();
                        let source = if dynamic.is_some() {
                            Source::DynamicBroker
                        } else if ctx.config.explicit.contains(d.name) {
                            Source::StaticBroker
                        } else {
                            Source::Default
                        };
                        let ty = match d.kind {
                            Kind::Int { max, .. } if max > i64::from(i32::MAX) => config_type::LONG,
                            Kind::Int { .. } => config_type::INT,
                            Kind::Bool => config_type::BOOLEAN,
                            Kind::Listeners => config_type::LIST,
                            Kind::Ratio => config_type::DOUBLE,
                            Kind::Str | Kind::Enum(_) => config_type::STRING,
                        };
                        let mut e = entry(
                            d.name,
                            value.clone(),
                            source,
                            ty,
                            d.doc,
                            req.include_documentation,
                        );
                        if req.include_synonyms {
                            e.synonyms = vec![DescribeConfigsSynonym::default()
                                .with_name(StrBytes::from_static_str(d.name))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_source(source as i8)];
                        }
                        e.read_only = !crate::config::DYNAMIC_KEYS.contains(&d.name);
                        if crate::config::SENSITIVE_KEYS.contains(&d.name) {
                            // As Kafka does for passwords: flagged, never shown.
                            e.value = None;
                            e.is_sensitive = true;
                            for s in &mut e.synonyms {
                                s.value = None;
                            }
                        }
                        e
                    })
                    .collect();
            }
            BROKER => {
                res.error_code = Code::InvalidRequest.code();
                res.error_message = Some(StrBytes::from_string(format!(
                    "unknown broker '{}'",
                    r.resource_name.as_str()
                )));
            }
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
        if let Some(v) = ctx.config.dynamic_value(bk) {
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(bk))
                    .with_value(Some(StrBytes::from_string(v)))
                    .with_source(Source::DynamicBroker as i8),
            );
        }
        if let Some(v) = ctx.config.values.get(bk) {
            let source = if ctx.config.explicit.contains(bk) {
                Source::StaticBroker
            } else {
                Source::Default
            };
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(bk))
                    .with_value(Some(StrBytes::from_string(v.clone())))
                    .with_source(source as i8),
            );
        }
    }
    out
}
