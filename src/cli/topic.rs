//! `esker topic list|describe|create|delete|alter-config`.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::configs::{alter, describe, Resource};
use super::output::{list_offsets, print_json, topic_what, topics, Deletions, Table};
use super::{key_value, CliError, CliResult, TopicAction};
use crate::client::{check, Client, ClientError, Target};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ids(v: &[i32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Serialize)]
struct ListedTopic {
    name: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
}

#[derive(Serialize)]
struct DescribedPartition {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    log_start_offset: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct DescribedTopic {
    name: String,
    topic_id: String,
    internal: bool,
    partitions: Vec<DescribedPartition>,
    configs: std::collections::BTreeMap<String, Option<String>>,
}

/// Runs a topic action.
pub async fn run(client: &mut Client, action: TopicAction, json: bool) -> CliResult<()> {
    match action {
        TopicAction::List { internal } => {
            let list: Vec<ListedTopic> = topics(client, None)
                .await?
                .into_iter()
                .filter(|t| internal || !t.internal)
                .map(|t| ListedTopic {
                    replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len()),
                    partitions: t.partitions.len(),
                    internal: t.internal,
                    name: t.name,
                })
                .collect();
            if json {
                return print_json(&list);
            }
            let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
            for t in &list {
                table.row(vec![
                    t.name.clone(),
                    t.partitions.to_string(),
                    t.replication_factor.to_string(),
                ]);
            }
            table.print();
            Ok(())
        }
        TopicAction::Describe { topic } => describe_topic(client, &topic, json).await,
        TopicAction::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| key_value(c, "--config"))
                .collect::<CliResult<Vec<_>>>()?;
            let creatable = CreatableTopic::default()
                .with_name(TopicName(sb(&topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(v)))
                        })
                        .collect(),
                );
            let resp = client
                .send(Target::Controller, |_| {
                    CreateTopicsRequest::default()
                        .with_topics(vec![creatable])
                        .with_timeout_ms(30_000)
                })
                .await?;
            for t in &resp.topics {
                let what = || match t.error_code {
                    36 => format!("topic '{topic}' already exists"),
                    29 | 31 => format!("not authorized to CREATE topic '{topic}'"),
                    c => topic_what(&topic, c, "CREATE"),
                };
                check(t.error_code, t.error_message.as_deref(), what)?;
            }
            let (parts, rf) = resp
                .topics
                .first()
                .map_or((partitions, replication_factor), |t| {
                    (t.num_partitions, t.replication_factor)
                });
            if json {
                return print_json(&serde_json::json!({
                    "created": topic, "partitions": parts, "replication_factor": rf
                }));
            }
            println!("created topic '{topic}' ({parts} partitions, replication factor {rf})");
            Ok(())
        }
        TopicAction::Delete { topics: names } => {
            let resp = client
                .send(Target::Controller, |v| {
                    let r = DeleteTopicsRequest::default().with_timeout_ms(30_000);
                    if v >= 6 {
                        r.with_topics(
                            names
                                .iter()
                                .map(|n| {
                                    DeleteTopicState::default().with_name(Some(TopicName(sb(n))))
                                })
                                .collect(),
                        )
                    } else {
                        r.with_topic_names(names.iter().map(|n| TopicName(sb(n))).collect())
                    }
                })
                .await?;
            let mut report = Deletions::new("topic");
            for r in &resp.responses {
                let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let result = check(r.error_code, r.error_message.as_deref(), || {
                    topic_what(&name, r.error_code, "DELETE")
                });
                report.record(name, result);
            }
            report.finish(json)
        }
        TopicAction::AlterConfig { topic, changes } => {
            alter(client, Resource::Topic(topic), &changes, json).await
        }
    }
}

async fn describe_topic(client: &mut Client, topic: &str, json: bool) -> CliResult<()> {
    let info = topics(client, Some(&[topic.to_string()]))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Response {
            what: topic_what(topic, 3, "DESCRIBE"),
            code: 3,
            message: None,
        })?;
    let parts: Vec<(String, i32, i32)> = info
        .partitions
        .iter()
        .map(|p| (info.name.clone(), p.index, p.leader))
        .collect();
    let earliest = list_offsets(client, &parts, -2).await?;
    let latest = list_offsets(client, &parts, -1).await?;
    // Describing a topic needs DESCRIBE; its configs need DESCRIBE_CONFIGS, which a reader
    // may lack: the partitions are still shown.
    let configs: std::collections::BTreeMap<String, Option<String>> =
        match describe(client, &Resource::Topic(topic.to_string())).await {
            Ok(entries) => entries
                .into_iter()
                .filter(|c| c.dynamic())
                .map(|c| (c.name, c.value))
                .collect(),
            Err(CliError::Client(ClientError::Response { code: 29, .. })) => {
                eprintln!(
                "warning: not authorized to DESCRIBE_CONFIGS topic '{topic}': configs not shown"
            );
                Default::default()
            }
            Err(e) => return Err(e),
        };
    let out = DescribedTopic {
        name: info.name.clone(),
        topic_id: info.id.clone(),
        internal: info.internal,
        partitions: info
            .partitions
            .iter()
            .map(|p| DescribedPartition {
                partition: p.index,
                leader: p.leader,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                log_start_offset: earliest
                    .get(&(info.name.clone(), p.index))
                    .copied()
                    .unwrap_or(-1),
                high_watermark: latest
                    .get(&(info.name.clone(), p.index))
                    .copied()
                    .unwrap_or(-1),
            })
            .collect(),
        configs,
    };
    if json {
        return print_json(&out);
    }
    println!(
        "Topic: {}  TopicId: {}  Partitions: {}  ReplicationFactor: {}",
        out.name,
        out.topic_id,
        out.partitions.len(),
        out.partitions.first().map_or(0, |p| p.replicas.len())
    );
    let configs: Vec<String> = out
        .configs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("(sensitive)")))
        .collect();
    println!(
        "Configs: {}",
        if configs.is_empty() {
            "-".to_string()
        } else {
            configs.join(",")
        }
    );
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]);
    for p in &out.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
        ]);
    }
    table.print();
    Ok(())
}
