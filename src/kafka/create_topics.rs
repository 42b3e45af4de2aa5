//! CreateTopics (key 19), versions 2..=7: topic-name rules, partition count (`-1` means
//! `num.partitions`), replication factor (`-1` means `default.replication.factor`; a single
//! broker takes only 1) or explicit replica assignments, `validate_only`.
//! Topic configs are validated against [`crate::topic_config`] (INVALID_CONFIG naming the key)
//! and stored; v5+ responses list the topic's effective configs with their sources.

use std::sync::Arc;

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::catalog::validate_topic_name;
use crate::context::{BrokerContext, CreateTopicError};
use crate::topic_config;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (2, 7);

/// Handles a CreateTopics request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let mut r = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let partitions = if t.num_partitions == -1 {
            ctx.config.num_partitions
        } else {
            t.num_partitions
        };
        let overrides: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let check: Result<(), (Code, String)> = (|| {
            validate_topic_name(&name).map_err(|e| (Code::InvalidTopicException, e.to_string()))?;
            if !t.assignments.is_empty() && (t.num_partitions != -1 || t.replication_factor != -1) {
                return Err((
                    Code::InvalidRequest,
                    "both numPartitions or replicationFactor and replicasAssignments were set; \
                     both cannot be used at the same time"
                        .into(),
                ));
            }
            if partitions < 1 && t.assignments.is_empty() {
                return Err((
                    Code::InvalidPartitions,
                    "number of partitions must be larger than 0".into(),
                ));
            }
            if t.replication_factor == 0 || t.replication_factor < -1 {
                return Err((
                    Code::InvalidReplicationFactor,
                    "replication factor must be larger than 0".into(),
                ));
            }
            for c in &t.configs {
                let value = c.value.as_ref().map(|v| v.as_str()).unwrap_or("");
                topic_config::validate(c.name.as_str(), value)
                    .map_err(|e| (Code::InvalidConfig, e.to_string()))?;
            }
            if ctx.catalog.get(&name).is_some() {
                return Err((
                    Code::TopicAlreadyExists,
                    format!("topic '{name}' already exists"),
                ));
            }
            // '.' and '_' map to the same metric names, so Kafka refuses names that differ
            // from an existing topic only in those characters.
            if name.contains(['.', '_']) {
                let norm = |n: &str| n.replace('.', "_");
                if let Some(other) = ctx
                    .catalog
                    .all()
                    .into_iter()
                    .find(|m| norm(&m.name) == norm(&name))
                {
                    return Err((
                        Code::InvalidTopicException,
                        format!(
                            "topic '{name}' collides with existing topic '{}'",
                            other.name
                        ),
                    ));
                }
                tracing::warn!(topic = %name, "topic names with '.' or '_' can collide in metric names; avoid mixing them");
            }
            Ok(())
        })();
        let assignments = (!t.assignments.is_empty()).then(|| {
            let mut a: Vec<_> = t.assignments.iter().collect();
            a.sort_by_key(|a| a.partition_index);
            a.into_iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())
                .collect::<Vec<_>>()
        });
        let rf = (t.replication_factor != -1).then_some(t.replication_factor);
        let (partitions, rf) = match &assignments {
            Some(a) => (a.len() as i32, a.first().map(|r| r.len() as i16)),
            None => (partitions, rf),
        };
        let outcome = match check {
            Err(e) => Err(e),
            Ok(()) => match ctx
                .create_topic_with(
                    &name,
                    partitions,
                    rf,
                    assignments,
                    overrides.clone(),
                    req.validate_only,
                )
                .await
            {
                Ok(meta) => Ok(meta.map(|m| m.id)),
                Err(e) => Err((error_code(&e), e.to_string())),
            },
        };
        match outcome {
            Ok(id) => {
                r.num_partitions = partitions;
                r.replication_factor = match (rf, &ctx.cluster) {
                    (Some(rf), _) => rf,
                    (None, Some(c)) => c.config().default_replication_factor,
                    (None, None) => 1,
                };
                if let Some(id) = id {
                    r.topic_id = id;
                }
                r.configs = Some(
                    topic_config::TOPIC_KEYS
                        .iter()
                        .map(|d| {
                            let (value, source) =
                                topic_config::effective(d, &overrides, &ctx.config);
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_static_str(d.name))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(source as i8)
                        })
                        .collect(),
                );
            }
            Err((code, msg)) => {
                tracing::info!(topic = %name, error = %msg, "create topic refused");
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_string(msg));
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// The Kafka error code of a failed topic creation.
pub fn error_code(e: &CreateTopicError) -> Code {
    match e {
        CreateTopicError::AlreadyExists(_) => Code::TopicAlreadyExists,
        CreateTopicError::InvalidName(_) => Code::InvalidTopicException,
        CreateTopicError::InvalidPartitions => Code::InvalidPartitions,
        CreateTopicError::Storage(_) => Code::KafkaStorageError,
        CreateTopicError::InvalidReplicationFactor(_) => Code::InvalidReplicationFactor,
        CreateTopicError::InvalidReplicaAssignment(_) => Code::InvalidReplicaAssignment,
        CreateTopicError::Unavailable(_) => Code::RequestTimedOut,
    }
}
