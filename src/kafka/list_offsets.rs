//! ListOffsets (key 2), versions 1..=10: `-1` latest (the high watermark), `-2` earliest (the
//! log start offset), `-3` max timestamp (KIP-734), otherwise the first record at or after the
//! timestamp; a timestamp past the last record answers offset -1. With `isolation_level` 1
//! (read committed, v2+) latest is the last stable offset, and a timestamp lookup landing at
//! or beyond it answers offset -1.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::{IsolationLevel, ShardState};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 10);

/// Handles a ListOffsets request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let isolation = if version >= 2 {
        IsolationLevel::from_kafka(req.isolation_level)
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.catalog.get(t.name.as_str());
        let mut pending = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition_index;
            let ts = p.timestamp;
            let rx = match &meta {
                Some(m) if ctx.not_leader(&m.name, index, "").is_some() => {
                    Err(Code::NotLeaderOrFollower)
                }
                Some(m) if index >= 0 && index < m.partitions => {
                    let topic = m.name.clone();
                    ctx.shard(&m.name, index)
                        .submit(move |s: &mut ShardState| {
                            s.list_offset_isolated(&topic, index, ts, isolation)
                        })
                        .await
                        .map_err(|e| shard_code(&e))
                }
                _ => Err(Code::UnknownTopicOrPartition),
            };
            pending.push((index, rx));
        }
        let mut partitions = Vec::with_capacity(pending.len());
        let image = ctx.cluster.as_ref().map(|c| c.image());
        for (index, rx) in pending {
            // The partition's leader epoch: 0 on a single node, the image's in a cluster.
            let epoch = image
                .as_ref()
                .and_then(|i| i.partition(t.name.as_str(), index).map(|p| p.leader_epoch))
                .unwrap_or(0);
            let mut pr = ListOffsetsPartitionResponse::default()
                .with_partition_index(index)
                .with_timestamp(-1)
                .with_offset(-1)
                // The field exists from v4; below it must keep its default (-1).
                .with_leader_epoch(if version >= 4 { epoch } else { -1 });
            let result = match rx {
                Err(code) => Err(code),
                Ok(rx) => match rx.await {
                    Err(_) => Err(Code::NotLeaderOrFollower),
                    Ok(Err(e)) => Err(storage_code(&e)),
                    Ok(Ok(v)) => Ok(v),
                },
            };
            match result {
                Ok((offset, timestamp)) => {
                    pr.offset = offset;
                    pr.timestamp = timestamp;
                }
                Err(code) => pr.error_code = code.code(),
            }
            partitions.push(pr);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
