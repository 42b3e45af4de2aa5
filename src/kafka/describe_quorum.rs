//! DescribeQuorum (key 55), versions 0..=2: the metadata quorum as its leader sees it (leader,
//! epoch, high watermark, each voter's and observer's log end offset and last contact), and in
//! v2 the voters' endpoints. Asked of any broker, answered from the quorum's leader. A single
//! node has no quorum: it answers with itself as the only voter, so tools work the same.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Kafka's name of the metadata log.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// Handles a DescribeQuorum request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let asked = req.topics.iter().any(|t| {
        t.topic_name.as_str() == METADATA_TOPIC
            && t.partitions.iter().any(|p| p.partition_index == 0)
    });
    let partition = PartitionData::default().with_partition_index(0);
    let partition = if !asked {
        partition.with_error_code(Code::UnknownTopicOrPartition.code())
    } else {
        match &ctx.cluster {
            None => {
                let me = ReplicaState::default()
                    .with_replica_id(BrokerId(ctx.config.node_id))
                    .with_log_end_offset(0)
                    .with_last_fetch_timestamp(-1)
                    .with_last_caught_up_timestamp(-1);
                partition
                    .with_leader_id(BrokerId(ctx.config.node_id))
                    .with_leader_epoch(0)
                    .with_high_watermark(0)
                    .with_current_voters(vec![me])
            }
            Some(c) => match c.quorum().describe().await {
                Err(e) => {
                    tracing::info!(error = %e, "DescribeQuorum: no quorum leader");
                    partition
                        .with_error_code(Code::NotLeaderOrFollower.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string())))
                }
                Ok(d) => {
                    let hw = d.high_watermark.map_or(0, |i| i as i64 + 1);
                    let state = |r: &crate::raft::ReplicaState| {
                        let contact = r.last_contact_ms.map_or(-1, |t| t as i64);
                        let leo = r.matched_index.map_or(0, |i| i as i64 + 1);
                        ReplicaState::default()
                            .with_replica_id(BrokerId(r.node_id as i32))
                            .with_log_end_offset(leo)
                            .with_last_fetch_timestamp(contact)
                            .with_last_caught_up_timestamp(if leo >= hw { contact } else { -1 })
                    };
                    partition
                        .with_leader_id(BrokerId(d.leader_id as i32))
                        .with_leader_epoch(d.term as i32)
                        .with_high_watermark(hw)
                        .with_current_voters(d.voters.iter().map(state).collect())
                        .with_observers(d.learners.iter().map(state).collect())
                }
            },
        }
    };
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition])]);
    if version >= 2 {
        if let Some(c) = &ctx.cluster {
            let listener = c.config().controller_listener.clone();
            resp.nodes = c
                .config()
                .voters
                .iter()
                .filter_map(|(id, addr)| {
                    let (host, port) = addr.rsplit_once(':')?;
                    Some(Node::default().with_node_id(BrokerId(*id)).with_listeners(
                        vec![Listener::default()
                                .with_name(StrBytes::from_string(listener.clone()))
                                .with_host(StrBytes::from_string(host.to_string()))
                                .with_port(port.parse().ok()?)],
                    ))
                })
                .collect();
        }
    }
    resp
}
