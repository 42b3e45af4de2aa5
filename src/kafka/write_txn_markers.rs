//! WriteTxnMarkers (key 27), version 1: the transaction coordinator asks a partition leader to
//! close a producer's transaction with a commit or abort control batch. [`write_marker`] is the
//! local path the coordinator also uses for partitions this broker leads; the handler writes
//! every partition of every marker concurrently and answers an error code per partition.
//! Only brokers may call it: CLUSTER_ACTION on the cluster (checked before the handler runs).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::replica::ReplicationError;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 1);

/// How long a marker waits for the in-sync replicas (as the group coordinator's writes do).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Handles a WriteTxnMarkers request: every partition of every marker is written at once.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let mut writes = tokio::task::JoinSet::new();
    for (m, marker) in req.markers.iter().enumerate() {
        for (t, topic) in marker.topics.iter().enumerate() {
            for (i, &partition) in topic.partition_indexes.iter().enumerate() {
                let ctx = ctx.clone();
                let name = topic.name.to_string();
                let (producer_id, producer_epoch) = (marker.producer_id.0, marker.producer_epoch);
                let (commit, coordinator_epoch) =
                    (marker.transaction_result, marker.coordinator_epoch);
                writes.spawn(async move {
                    let result = write_marker(
                        &ctx,
                        &name,
                        partition,
                        producer_id,
                        producer_epoch,
                        commit,
                        coordinator_epoch,
                    )
                    .await;
                    ((m, t, i), result.err().map_or(0, |code| code.code()))
                });
            }
        }
    }
    // A write that did not finish (its task panicked) answers UNKNOWN_SERVER_ERROR.
    let mut codes: Vec<Vec<Vec<i16>>> = req
        .markers
        .iter()
        .map(|marker| {
            marker
                .topics
                .iter()
                .map(|topic| vec![Code::UnknownServerError.code(); topic.partition_indexes.len()])
                .collect()
        })
        .collect();
    while let Some(joined) = writes.join_next().await {
        if let Ok(((m, t, i), code)) = joined {
            codes[m][t][i] = code;
        }
    }
    let markers = req
        .markers
        .into_iter()
        .zip(codes)
        .map(|(marker, codes)| {
            let topics = marker
                .topics
                .into_iter()
                .zip(codes)
                .map(|(topic, codes)| {
                    let partitions = topic
                        .partition_indexes
                        .into_iter()
                        .zip(codes)
                        .map(|(index, code)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// Writes one marker (commit or abort of `producer_id`'s open transaction) to a partition this
/// broker leads and waits until it is durable (fsync, and the ISR in a cluster). A marker on a
/// `__consumer_offsets` partition also completes the producer's pending transactional offset
/// commits in the group coordinator.
pub async fn write_marker(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<(), Code> {
    let Some(meta) = ctx.catalog.get(topic) else {
        return Err(Code::UnknownTopicOrPartition);
    };
    if partition < 0 || partition >= meta.partitions {
        return Err(Code::UnknownTopicOrPartition);
    }
    if ctx.not_leader(&meta.name, partition, "").is_some() {
        return Err(Code::NotLeaderOrFollower);
    }
    let name = meta.name.clone();
    let (sync, replicated) = ctx
        .shard(&meta.name, partition)
        .call(move |s: &mut ShardState| {
            let (info, sync) = s.write_txn_marker(
                &name,
                partition,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
            )?;
            let replicated = s.replication_wait(&name, partition, info.last_offset + 1);
            Ok::<_, crate::shard::StorageError>((sync, replicated))
        })
        .await
        .map_err(|e| shard_code(&e))?
        .map_err(|e| {
            tracing::info!(topic, partition, producer_id, error = %e, "transaction marker refused");
            storage_code(&e)
        })?;
    if let Some(sync) = sync {
        match sync.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(topic, partition, error = %e, "transaction marker not made durable");
                return Err(Code::KafkaStorageError);
            }
            Err(_) => return Err(Code::KafkaStorageError),
        }
    }
    if let Some(replicated) = replicated {
        match tokio::time::timeout(REPLICATION_TIMEOUT, replicated).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(ReplicationError::NotEnoughReplicasAfterAppend))) => {
                return Err(Code::NotEnoughReplicas)
            }
            Ok(Ok(Err(ReplicationError::NotLeader))) | Ok(Err(_)) => {
                return Err(Code::NotLeaderOrFollower)
            }
            Err(_) => return Err(Code::RequestTimedOut),
        }
    }
    if &*meta.name == crate::coordinator::OFFSETS_TOPIC {
        ctx.coordinator
            .complete_transaction(partition, producer_id, commit)
            .await;
    }
    Ok(())
}
