//! DeleteRecords (key 21), versions 0..=2: moves partitions' log start offsets forward. An
//! offset of -1 means the high watermark; an offset above it answers OFFSET_OUT_OF_RANGE; one
//! below the current start changes nothing. Each partition answers its new low watermark (the
//! log start offset). Segments wholly below the new start are deleted at once, and the new start
//! is fsynced before the answer (see `PartitionLog::delete_records_before`).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Handles a DeleteRecords request. Partitions are queued on their shards before any answer is
/// awaited, so the shards work in parallel.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut pending = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.catalog.get(t.name.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let index = p.partition_index;
            let offset = p.offset;
            let rx = match &meta {
                Some(m) if ctx.not_leader(&m.name, index, "").is_some() => {
                    Err(Code::NotLeaderOrFollower)
                }
                Some(m) if index >= 0 && index < m.partitions => {
                    let topic = m.name.clone();
                    ctx.shard(&m.name, index)
                        .submit(move |s: &mut ShardState| s.delete_records(&topic, index, offset))
                        .await
                        .map_err(|e| shard_code(&e))
                }
                _ => Err(Code::UnknownTopicOrPartition),
            };
            partitions.push((index, rx));
        }
        pending.push((t.name, partitions));
    }

    let mut topics = Vec::with_capacity(pending.len());
    for (name, partitions) in pending {
        let mut results = Vec::with_capacity(partitions.len());
        for (index, rx) in partitions {
            let outcome = match rx {
                Err(code) => Err(code),
                Ok(rx) => match rx.await {
                    Err(_) => Err(Code::NotLeaderOrFollower),
                    Ok(Err(e)) => Err(storage_code(&e)),
                    Ok(Ok(low_watermark)) => Ok(low_watermark),
                },
            };
            let result = DeleteRecordsPartitionResult::default().with_partition_index(index);
            results.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => result.with_low_watermark(-1).with_error_code(code.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(results),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
