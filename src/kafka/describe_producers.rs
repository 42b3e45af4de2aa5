//! DescribeProducers (key 61), version 0: the producers each partition knows, with their
//! epoch, last sequence and timestamp, the coordinator epoch of their last transaction marker
//! and the first offset of their open transaction (-1 for none).

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::error::{shard_code, storage_code, Code};
use crate::context::BrokerContext;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles a DescribeProducers request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.catalog.get(t.name.as_str());
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for index in t.partition_indexes {
            let mut pr = PartitionResponse::default().with_partition_index(index);
            let result = match &meta {
                Some(m) if ctx.not_leader(&m.name, index, "").is_some() => {
                    Err(Code::NotLeaderOrFollower)
                }
                Some(m) if index >= 0 && index < m.partitions => {
                    let topic = m.name.clone();
                    match ctx
                        .shard(&m.name, index)
                        .call(move |s: &mut ShardState| s.producers(&topic, index))
                        .await
                    {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(storage_code(&e)),
                        Err(e) => Err(shard_code(&e)),
                    }
                }
                _ => Err(Code::UnknownTopicOrPartition),
            };
            match result {
                Ok(producers) => {
                    pr.active_producers = producers
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_timestamp)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(p.current_txn_start_offset)
                        })
                        .collect();
                }
                Err(code) => pr.error_code = code.code(),
            }
            partitions.push(pr);
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
