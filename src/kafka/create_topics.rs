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

/// The most partitions one CreateTopics may ask for in total, as Kafka's controller bounds it
/// (`ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`); above it every topic of the request
/// is refused with POLICY_VIOLATION and nothing is created. Without it one request could ask for
/// 2^31 - 1 partitions and keep the shards creating directories for hours.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's message for a request over [`MAX_PARTITIONS_PER_REQUEST`].
const EXCESSIVE_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// The partitions a request asks for, counted as Kafka counts them: `num_partitions` (`-1`:
/// `default_partitions`; zero or negative counts nothing) or the number of assignments.
fn partitions_requested(req: &CreateTopicsRequest, default_partitions: i32) -> i64 {
    req.topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                t.assignments.len() as i64
            } else if t.num_partitions == -1 {
                i64::from(default_partitions.max(0))
            } else {
                i64::from(t.num_partitions.max(0))
            }
        })
        .sum()
}

/// The answer to a request over [`MAX_PARTITIONS_PER_REQUEST`]: POLICY_VIOLATION for every topic.
fn refuse_excessive(req: &CreateTopicsRequest, total: i64) -> CreateTopicsResponse {
    tracing::info!(
        partitions = total,
        max = MAX_PARTITIONS_PER_REQUEST,
        "CreateTopics refused: too many partitions in one request"
    );
    let topics = req
        .topics
        .iter()
        .map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_error_code(Code::PolicyViolation.code())
                .with_error_message(Some(StrBytes::from_static_str(EXCESSIVE_PARTITIONS)))
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Handles a CreateTopics request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let total = partitions_requested(&req, ctx.config.num_partitions);
    if total > MAX_PARTITIONS_PER_REQUEST {
        return refuse_excessive(&req, total);
    }
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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn topic(name: &'static str, partitions: i32) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
    }

    #[test]
    fn partitions_are_counted_as_kafka_counts_them() {
        let assigned = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("c")))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_broker_ids(vec![BrokerId(1)]);
                3
            ]);
        let req = CreateTopicsRequest::default().with_topics(vec![
            topic("a", -1),
            topic("b", 5),
            topic("z", -7),
            assigned,
        ]);
        assert_eq!(partitions_requested(&req, 4), 4 + 5 + 3);
    }

    /// Found while bounding the kafka_request fuzz target: one CreateTopics asking for
    /// i32::MAX partitions was accepted and kept the shard creating partition directories.
    /// It is refused whole, as Kafka's controller does.
    #[test]
    fn a_request_over_ten_thousand_partitions_is_refused_whole() {
        // CreateTopics v5 body: topics [("big", 2147483647, rf -1), ("small", 1, rf -1)],
        // timeout 5000, validate_only false.
        let body: &[u8] = &[
            0x03, // topics: 2 (compact array, n + 1)
            0x04, b'b', b'i', b'g', 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x00, 0x06,
            b's', b'm', b'a', b'l', b'l', 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x01, 0x01,
            0x00, // each topic: name, partitions, rf, no assignments, no configs, no tags
            0x00, 0x00, 0x13, 0x88, 0x00, 0x00, // timeout 5000 ms, validate_only, no tags
        ];
        let req = CreateTopicsRequest::decode(&mut bytes::Bytes::from_static(body), 5)
            .expect("the request decodes");
        let total = partitions_requested(&req, 1);
        assert_eq!(total, i64::from(i32::MAX) + 1);
        assert!(total > MAX_PARTITIONS_PER_REQUEST);
        let resp = refuse_excessive(&req, total);
        assert_eq!(resp.topics.len(), 2);
        for t in &resp.topics {
            assert_eq!(t.error_code, Code::PolicyViolation.code());
            assert_eq!(t.error_message.as_deref(), Some(EXCESSIVE_PARTITIONS));
        }
        let at_cap =
            CreateTopicsRequest::default().with_topics(vec![topic("a", 6_000), topic("b", 4_000)]);
        assert_eq!(partitions_requested(&at_cap, 1), MAX_PARTITIONS_PER_REQUEST);
    }
}
