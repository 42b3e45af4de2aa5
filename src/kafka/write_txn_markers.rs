//! WriteTxnMarkers (key 27), version 1: the transaction coordinator asks a partition leader to
//! close a producer's transaction with a commit or abort control batch. [`write_marker`] is the
//! local path the coordinator also uses for partitions this broker leads; the handler writes
//! every partition of every marker concurrently and answers an error code per partition.
//! Only brokers may call it: CLUSTER_ACTION on the cluster (checked before the handler runs).

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::durable::{self, DurableError};
use crate::shard::replica::ReplicationError;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 1);

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
    let written = durable::write(
        ctx.shard(&meta.name, partition),
        &meta.name,
        partition,
        move |s: &mut ShardState| {
            s.write_txn_marker(
                &name,
                partition,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
            )
        },
    )
    .await;
    if let Err(e) = written {
        tracing::info!(topic, partition, producer_id, error = %e, "transaction marker not written");
        return Err(match e {
            DurableError::Storage(e) => storage_code(&e),
            DurableError::Shard(e) => shard_code(&e),
            DurableError::Fsync(_) => Code::KafkaStorageError,
            DurableError::Replication(ReplicationError::NotEnoughReplicasAfterAppend) => {
                Code::NotEnoughReplicasAfterAppend
            }
            DurableError::Replication(ReplicationError::NotLeader) => Code::NotLeaderOrFollower,
            DurableError::Timeout(_) => Code::RequestTimedOut,
        });
    }
    if &*meta.name == crate::coordinator::OFFSETS_TOPIC {
        ctx.coordinator
            .complete_transaction(partition, producer_id, commit)
            .await;
    }
    Ok(())
}
