//! OffsetForLeaderEpoch (key 23), versions 2..=4. A single broker has only ever had leader
//! epoch 0, so the end offset of any epoch up to 0 is the high watermark. In a cluster the
//! partition's leader answers from its leader-epoch cache (Kafka's semantics: the largest epoch
//! at most the one asked for, and where it ended); followers truncate divergent tails to it and
//! clients validate their positions after a leader change.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (2, 4);

/// Handles an OffsetForLeaderEpoch request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.catalog.get(t.topic.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            // The partition's leader epoch: 0 on a single node, the image's in a cluster.
            let epoch = ctx
                .cluster
                .as_ref()
                .and_then(|c| {
                    c.image()
                        .partition(t.topic.as_str(), p.partition)
                        .map(|p| p.leader_epoch)
                })
                .unwrap_or(0);
            let result = match &meta {
                // A cluster answers from the leader's epoch cache (leader-epoch-checkpoint):
                // followers truncate to this, clients validate their positions.
                Some(m)
                    if ctx.cluster.is_some() && p.partition >= 0 && p.partition < m.partitions =>
                {
                    let topic = m.name.clone();
                    let (index, current, wanted) =
                        (p.partition, p.current_leader_epoch, p.leader_epoch);
                    match ctx
                        .shard(&m.name, index)
                        .call(move |s: &mut ShardState| {
                            s.end_offset_for_epoch(&topic, index, current, wanted)
                        })
                        .await
                    {
                        Ok(Ok(Some((epoch, end)))) => {
                            r.leader_epoch = epoch;
                            r.end_offset = end;
                            Ok(None)
                        }
                        Ok(Ok(None)) => Ok(None),
                        Ok(Err(e)) => Err(storage_code(&e)),
                        Err(e) => Err(shard_code(&e)),
                    }
                }
                Some(m) if ctx.not_leader(&m.name, p.partition, "").is_some() => {
                    Err(Code::NotLeaderOrFollower)
                }
                Some(m) if p.partition >= 0 && p.partition < m.partitions => {
                    if p.current_leader_epoch > epoch {
                        Err(Code::UnknownLeaderEpoch)
                    } else if p.current_leader_epoch >= 0 && p.current_leader_epoch < epoch {
                        Err(Code::FencedLeaderEpoch)
                    } else if p.leader_epoch > epoch {
                        // An epoch this broker never had: the answer is "undefined".
                        Ok(None)
                    } else {
                        let topic = m.name.clone();
                        let index = p.partition;
                        match ctx
                            .shard(&m.name, index)
                            .call(move |s: &mut ShardState| s.snapshot(&topic, index))
                            .await
                        {
                            Ok(Ok(snap)) => Ok(Some(snap.high_watermark)),
                            Ok(Err(e)) => Err(storage_code(&e)),
                            Err(e) => Err(shard_code(&e)),
                        }
                    }
                }
                _ => Err(Code::UnknownTopicOrPartition),
            };
            match result {
                Ok(Some(end)) => {
                    // Epoch boundaries are not tracked yet (no leader-epoch-checkpoint): every
                    // epoch up to the current one ends at the log end, so no client truncates.
                    r.leader_epoch = p.leader_epoch.max(0);
                    r.end_offset = end;
                }
                Ok(None) => {}
                Err(code) => r.error_code = code.code(),
            }
            partitions.push(r);
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
