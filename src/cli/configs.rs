//! `esker config get|set` for brokers, the broker defaults and topics (DescribeConfigs,
//! IncrementalAlterConfigs), also used by `topic describe` and `topic alter-config`.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::output::{print_json, topic_what, Table};
use super::{key_value, CliResult, ConfigAction, ConfigChanges, ConfigResource};
use crate::client::{check, Client, Target};

/// What a config belongs to.
#[derive(Debug, Clone)]
pub enum Resource {
    /// A topic.
    Topic(String),
    /// One broker.
    Broker(i32),
    /// The cluster-wide broker defaults.
    BrokerDefaults,
}

impl Resource {
    fn wire(&self) -> (i8, String) {
        match self {
            Resource::Topic(t) => (2, t.clone()),
            Resource::Broker(id) => (4, id.to_string()),
            Resource::BrokerDefaults => (4, String::new()),
        }
    }

    /// Broker configs of one broker are answered by that broker, as in Kafka.
    fn target(&self) -> Target {
        match self {
            Resource::Broker(id) => Target::Node(*id),
            _ => Target::Any,
        }
    }

    fn what(&self, code: i16, op: &str) -> String {
        match self {
            Resource::Topic(t) => topic_what(t, code, op),
            Resource::Broker(id) if code == 31 => format!("not authorized to {op} broker {id}"),
            Resource::Broker(id) => format!("cannot {} configs of broker {id}", op.to_lowercase()),
            Resource::BrokerDefaults if code == 31 => {
                format!("not authorized to {op} the broker defaults")
            }
            Resource::BrokerDefaults => {
                format!("cannot {} the broker defaults", op.to_lowercase())
            }
        }
    }

    fn label(&self) -> String {
        match self {
            Resource::Topic(t) => format!("topic '{t}'"),
            Resource::Broker(id) => format!("broker {id}"),
            Resource::BrokerDefaults => "the broker defaults".to_string(),
        }
    }
}

/// One config entry.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    /// Key.
    pub name: String,
    /// Value (`None` when sensitive).
    pub value: Option<String>,
    /// Kafka's ConfigSource name.
    pub source: &'static str,
    /// Sensitive (value hidden).
    pub sensitive: bool,
    /// Read-only.
    pub read_only: bool,
}

impl ConfigEntry {
    /// Set dynamically (not a default nor a static broker setting).
    pub fn dynamic(&self) -> bool {
        matches!(
            self.source,
            "DYNAMIC_TOPIC_CONFIG" | "DYNAMIC_BROKER_CONFIG" | "DYNAMIC_DEFAULT_BROKER_CONFIG"
        )
    }
}

fn source_name(s: i8) -> &'static str {
    match s {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// DescribeConfigs of one resource, sorted by key.
pub async fn describe(client: &mut Client, res: &Resource) -> CliResult<Vec<ConfigEntry>> {
    let (rtype, name) = res.wire();
    let resp = client
        .send(res.target(), |_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(rtype)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_configuration_keys(None),
            ])
        })
        .await?;
    let mut out = Vec::new();
    for r in resp.results {
        check(r.error_code, r.error_message.as_deref(), || {
            res.what(r.error_code, "DESCRIBE_CONFIGS")
        })?;
        for c in r.configs {
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: if c.is_sensitive {
                    None
                } else {
                    c.value.as_ref().map(|v| v.to_string())
                },
                source: source_name(c.config_source),
                sensitive: c.is_sensitive,
                read_only: c.read_only,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// IncrementalAlterConfigs: `--set` then `--delete`.
pub async fn alter(
    client: &mut Client,
    res: Resource,
    changes: &ConfigChanges,
    json: bool,
) -> CliResult<()> {
    let sets = changes
        .set
        .iter()
        .map(|s| key_value(s, "--set"))
        .collect::<CliResult<Vec<_>>>()?;
    let mut configs: Vec<AlterableConfig> = sets
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    configs.extend(changes.delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    }));
    let (rtype, name) = res.wire();
    let resp = client
        .send(res.target(), |_| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(rtype)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_configs(configs),
            ])
        })
        .await?;
    for r in &resp.responses {
        check(r.error_code, r.error_message.as_deref(), || {
            res.what(r.error_code, "ALTER_CONFIGS")
        })?;
    }
    if json {
        let set: std::collections::BTreeMap<_, _> = sets.into_iter().collect();
        return print_json(&serde_json::json!({
            "resource": res.label(), "set": set, "deleted": changes.delete
        }));
    }
    let mut parts = Vec::new();
    if !sets.is_empty() {
        let s: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("set {}", s.join(", ")));
    }
    if !changes.delete.is_empty() {
        parts.push(format!("deleted {}", changes.delete.join(", ")));
    }
    println!("updated {}: {}", res.label(), parts.join("; "));
    Ok(())
}

fn resource(r: &ConfigResource) -> Resource {
    match (&r.topic, r.broker) {
        (Some(t), _) => Resource::Topic(t.clone()),
        (None, Some(id)) => Resource::Broker(id),
        (None, None) => Resource::BrokerDefaults,
    }
}

/// Runs a config action.
pub async fn run(client: &mut Client, action: ConfigAction, json: bool) -> CliResult<()> {
    match action {
        ConfigAction::Get { resource: r, all } => {
            let entries: Vec<ConfigEntry> = describe(client, &resource(&r))
                .await?
                .into_iter()
                .filter(|c| all || c.dynamic())
                .collect();
            if json {
                return print_json(&entries);
            }
            let mut table = Table::new(&["KEY", "VALUE", "SOURCE"]);
            for c in &entries {
                table.row(vec![
                    c.name.clone(),
                    match &c.value {
                        _ if c.sensitive => "(sensitive)".to_string(),
                        Some(v) => v.clone(),
                        None => "(null)".to_string(),
                    },
                    c.source.to_string(),
                ]);
            }
            table.print();
            Ok(())
        }
        ConfigAction::Set {
            resource: r,
            changes,
        } => alter(client, resource(&r), &changes, json).await,
    }
}
