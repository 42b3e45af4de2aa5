//! TxnOffsetCommit (key 28), versions 0..=3 (v2 adds the leader epoch, v3 the member id,
//! generation and instance id): offsets committed inside a transaction. The group coordinator
//! writes them as one transactional batch of the producer; they stay pending until the
//! transaction's marker reaches `__consumer_offsets`. Partitions of unknown topics answer
//! UNKNOWN_TOPIC_OR_PARTITION; a whole-request error (NOT_COORDINATOR, INVALID_GROUP_ID, …) is
//! set on every other partition. ACLs are checked before (see `authz::txn_offset_commit`).

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::error::group_code;
use super::offset_commit::split_offsets;
use crate::context::BrokerContext;
use crate::coordinator::{CommitOffset, TxnCommitParams};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 3);

/// Handles a TxnOffsetCommit request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let (sent, offsets, mut codes) = split_offsets(
        &ctx,
        &req.topics,
        |t| (t.name.as_str(), &t.partitions),
        |topic, p| CommitOffset {
            topic: topic.to_string(),
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: if version >= 2 {
                p.committed_leader_epoch
            } else {
                -1
            },
            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
        },
    );
    if !offsets.is_empty() {
        let v3 = version >= 3;
        let params = TxnCommitParams {
            group_id: req.group_id.to_string(),
            transactional_id: req.transactional_id.to_string(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            generation_id: if v3 { req.generation_id } else { -1 },
            member_id: if v3 {
                req.member_id.to_string()
            } else {
                String::new()
            },
            group_instance_id: if v3 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            offsets,
        };
        match ctx.coordinator.txn_commit(params).await {
            Ok(results) => {
                for ((ti, pi), r) in sent.into_iter().zip(results) {
                    codes[ti][pi] = r.err().map_or(0, |e| group_code(&e).code());
                }
            }
            Err(e) => {
                let code = group_code(&e).code();
                for (ti, pi) in sent {
                    codes[ti][pi] = code;
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
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
