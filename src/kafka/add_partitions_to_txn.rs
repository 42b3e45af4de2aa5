//! AddPartitionsToTxn (key 24): versions 0..=3 are the producer's (add partitions to its open
//! transaction); 4 is the batched broker form of KIP-890 (several transactional ids, and
//! `verify_only` checks that a partition is already in the transaction), which needs
//! CLUSTER_ACTION.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::authz::Access;
use super::error::{txn_code, Code};
use crate::auth::{Operation, ResourceType};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handles an AddPartitionsToTxn request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: AddPartitionsToTxnRequest,
    version: i16,
    access: Access,
) -> AddPartitionsToTxnResponse {
    let resp = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        let results = add(
            &ctx,
            Some(&access),
            req.v3_and_below_transactional_id.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            version < 2,
        )
        .await;
        return resp.with_results_by_topic_v3_and_below(results);
    }
    if !access.cluster(&ctx, Operation::ClusterAction) {
        return resp.with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let id = t.transactional_id.as_str();
        let topic_results = if t.verify_only {
            t.topics
                .iter()
                .map(|topic| {
                    let name = topic.name.as_str().to_string();
                    uniform(topic, |p| {
                        match ctx.transactions.verify(
                            id,
                            t.producer_id.0,
                            t.producer_epoch,
                            &(name.clone(), p),
                        ) {
                            Ok(()) => 0,
                            Err(e) => txn_code(&e, false).code(),
                        }
                    })
                })
                .collect()
        } else {
            add(
                &ctx,
                None,
                id,
                t.producer_id.0,
                t.producer_epoch,
                &t.topics,
                false,
            )
            .await
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    resp.with_results_by_transaction(results)
}

/// One topic's result with a code per partition.
fn uniform(
    topic: &AddPartitionsToTxnTopic,
    mut code: impl FnMut(i32) -> i16,
) -> AddPartitionsToTxnTopicResult {
    AddPartitionsToTxnTopicResult::default()
        .with_name(topic.name.clone())
        .with_results_by_partition(
            topic
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code(*p))
                })
                .collect(),
        )
}

/// Adds the partitions to `id`'s transaction after checking them (authorization when `access`
/// is given, existence): if any partition fails, the others answer OPERATION_NOT_ATTEMPTED and
/// nothing is added, as in Kafka.
async fn add(
    ctx: &Arc<BrokerContext>,
    access: Option<&Access>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    fenced_is_epoch: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    if let Some(a) = access {
        if !a.allowed(ctx, Operation::Write, ResourceType::TransactionalId, id) {
            let code = Code::TransactionalIdAuthorizationFailed.code();
            return topics.iter().map(|t| uniform(t, |_| code)).collect();
        }
    }
    // Per partition: None if it may be added, else its error.
    let checks: Vec<Vec<Option<i16>>> = topics
        .iter()
        .map(|t| {
            let name = t.name.as_str();
            let denied = access.is_some_and(|a| !a.topic(ctx, Operation::Write, name));
            let meta = ctx.catalog.get(name);
            t.partitions
                .iter()
                .map(|p| {
                    if denied {
                        Some(Code::TopicAuthorizationFailed.code())
                    } else if !meta.as_ref().is_some_and(|m| *p >= 0 && *p < m.partitions) {
                        Some(Code::UnknownTopicOrPartition.code())
                    } else {
                        None
                    }
                })
                .collect()
        })
        .collect();
    let failed = checks.iter().flatten().any(Option::is_some);
    let code = if failed {
        Code::OperationNotAttempted.code()
    } else {
        let partitions: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.as_str().to_string(), *p))
            })
            .collect();
        match ctx
            .transactions
            .add_partitions(ctx, id, producer_id, epoch, &partitions)
            .await
        {
            Ok(()) => 0,
            Err(e) => {
                tracing::debug!(transactional_id = id, error = %e, "AddPartitionsToTxn refused");
                txn_code(&e, fenced_is_epoch).code()
            }
        }
    };
    topics
        .iter()
        .zip(checks)
        .map(|(t, c)| {
            let mut c = c.into_iter();
            uniform(t, |_| c.next().flatten().unwrap_or(code))
        })
        .collect()
}
