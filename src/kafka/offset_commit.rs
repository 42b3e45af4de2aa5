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

/// The offsets of a commit request (OffsetCommit, TxnOffsetCommit) whose partitions exist, with
/// the (topic index, partition index) of each, and per topic the code of every partition so
/// far: 0 for those sent on, UNKNOWN_TOPIC_OR_PARTITION for the others.
#[allow(clippy::type_complexity)]
pub(super) fn split_offsets<'a, T, P: 'a>(
    ctx: &BrokerContext,
    topics: &'a [T],
    parts: impl Fn(&'a T) -> (&'a str, &'a Vec<P>),
    offset: impl Fn(&str, &P) -> CommitOffset,
) -> (Vec<(usize, usize)>, Vec<CommitOffset>, Vec<Vec<i16>>) {
    let mut sent = Vec::new();
    let mut offsets = Vec::new();
    let mut codes = Vec::with_capacity(topics.len());
    for (ti, t) in topics.iter().enumerate() {
        let (name, partitions) = parts(t);
        let mut topic_codes = Vec::with_capacity(partitions.len());
        for (pi, p) in partitions.iter().enumerate() {
            let o = offset(name, p);
            if partition_exists(ctx, name, o.partition) {
                sent.push((ti, pi));
                offsets.push(o);
                topic_codes.push(0);
            } else {
                topic_codes.push(Code::UnknownTopicOrPartition.code());
            }
        }
        codes.push(topic_codes);
    }
    (sent, offsets, codes)
}

/// Handles an OffsetCommit request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let (sent, offsets, mut codes) = split_offsets(
        &ctx,
        &req.topics,
        |t| (t.name.as_str(), &t.partitions),
        |topic, p| CommitOffset {
            topic: topic.to_string(),
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: if version >= 6 {
                p.committed_leader_epoch
            } else {
                -1
            },
            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
        },
    );
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
