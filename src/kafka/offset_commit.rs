//! OffsetCommit (key 8), versions 2..=9 (Kafka 4 dropped 0 and 1). Partitions of unknown topics
//! get UNKNOWN_TOPIC_OR_PARTITION; the rest go to the group's coordinator, which checks member
//! and generation and answers once the offsets are fsynced to `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::error::{group_code, Code};
use crate::context::BrokerContext;
use crate::coordinator::{CommitOffset, CommitParams, GroupError};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (2, 9);

/// Whether `topic` exists and has partition `partition`.
pub(super) fn partition_exists(ctx: &BrokerContext, topic: &str, partition: i32) -> bool {
    ctx.catalog
        .get(topic)
        .is_some_and(|m| partition >= 0 && partition < m.partitions)
}

/// Handles an OffsetCommit request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    // (topic index, partition index) of every offset sent to the coordinator.
    let mut sent = Vec::new();
    let mut offsets = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic_codes = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            if partition_exists(&ctx, t.name.as_str(), p.partition_index) {
                sent.push((ti, pi));
                offsets.push(CommitOffset {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
                topic_codes.push(0);
            } else {
                topic_codes.push(Code::UnknownTopicOrPartition.code());
            }
        }
        codes.push(topic_codes);
    }
    if !offsets.is_empty() {
        let params = CommitParams {
            group_id: req.group_id.to_string(),
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: req.generation_id_or_member_epoch,
            offsets,
        };
        let code = |e: GroupError| match e {
            // Before v9 a member commit to a group that does not exist is a stale generation.
            GroupError::GroupIdNotFound if version < 9 => Code::IllegalGeneration.code(),
            e => group_code(&e).code(),
        };
        match ctx.coordinator.commit(params).await {
            Ok(results) => {
                for ((ti, pi), r) in sent.into_iter().zip(results) {
                    codes[ti][pi] = r.err().map_or(0, code);
                }
            }
            Err(e) => {
                for (ti, pi) in sent {
                    codes[ti][pi] = code(e);
                }
            }
        }
    }
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, c)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
