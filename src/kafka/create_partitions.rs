//! CreatePartitions (key 37), versions 0..=3: raises a topic's partition count; the new
//! partitions are created on their owning shards. Manual assignments may only name this broker.
//! One request adds at most [`MAX_PARTITIONS_PER_REQUEST`] partitions in total (POLICY_VIOLATION
//! for the topic that would go over).

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::MAX_PARTITIONS_PER_REQUEST;
use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 3);

/// Handles a CreatePartitions request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    // New partitions granted so far in this request (bounded as CreateTopics bounds them).
    let mut added: i64 = 0;
    for t in req.topics {
        let name = t.name.to_string();
        let outcome: Result<(), (Code, String)> = async {
            let meta = ctx.catalog.get(&name).ok_or_else(|| {
                (
                    Code::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )
            })?;
            if t.count <= meta.partitions {
                return Err((
                    Code::InvalidPartitions,
                    format!(
                        "topic has {} partitions; the new count {} must be larger",
                        meta.partitions, t.count
                    ),
                ));
            }
            let new = i64::from(t.count) - i64::from(meta.partitions);
            if added + new > MAX_PARTITIONS_PER_REQUEST {
                return Err((
                    Code::PolicyViolation,
                    "Excessively large number of partitions per request.".into(),
                ));
            }
            added += new;
            if let Some(assignments) = &t.assignments {
                let node = ctx.config.node_id;
                if assignments
                    .iter()
                    .any(|a| a.broker_ids.iter().any(|b| b.0 != node))
                {
                    return Err((
                        Code::InvalidReplicaAssignment,
                        format!("only broker {node} exists"),
                    ));
                }
            }
            if req.validate_only {
                return Ok(());
            }
            ctx.add_partitions(&name, t.count)
                .await
                .map_err(|e| (Code::KafkaStorageError, e))
        }
        .await;
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err((code, msg)) = outcome {
            tracing::info!(topic = %name, error = %msg, "create partitions refused");
            r.error_code = code.code();
            r.error_message = Some(StrBytes::from_string(msg));
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}
