//! OffsetDelete (key 47), version 0: removes committed offsets of a group, refused per partition
//! (GROUP_SUBSCRIBED_TO_TOPIC) while members still subscribe to the topic.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::error::{group_code, Code};
use super::offset_commit::partition_exists;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles an OffsetDelete request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let mut sent = Vec::new();
    let mut partitions = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic_codes = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            if partition_exists(&ctx, t.name.as_str(), p.partition_index) {
                sent.push((ti, pi));
                partitions.push((t.name.to_string(), p.partition_index));
                topic_codes.push(0);
            } else {
                topic_codes.push(Code::UnknownTopicOrPartition.code());
            }
        }
        codes.push(topic_codes);
    }
    let results = ctx
        .coordinator
        .delete_offsets(req.group_id.as_str(), partitions)
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(group_code(&e).code()),
    };
    for ((ti, pi), r) in sent.into_iter().zip(results) {
        codes[ti][pi] = r.err().map_or(0, |e| group_code(&e).code());
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
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
