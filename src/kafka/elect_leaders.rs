//! ElectLeaders (key 43), versions 0..=2: preferred (type 0) or unclean (type 1) leader
//! election per partition, through the metadata log. A null partition list means every
//! partition (only those whose election changes something are answered, as in Kafka). A single
//! node leads everything already: every election is ELECTION_NOT_NEEDED.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;
use crate::metadata::records::{Command, Reply};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// The answer when the caller may not ALTER the cluster: the top-level error (v1+) and every
/// partition asked for marked CLUSTER_AUTHORIZATION_FAILED (v0 has only those).
pub fn denied(req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let code = Code::ClusterAuthorizationFailed.code();
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = ElectLeadersResponse::default().with_replica_election_results(results);
    if version >= 1 {
        resp.with_error_code(code)
    } else {
        resp
    }
}

/// Handles an ElectLeaders request (authorized by the caller: ALTER on the cluster).
pub async fn handle(ctx: Arc<BrokerContext>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let preferred = req.election_type == 0;
    let all = req.topic_partitions.is_none();
    // (topic, partitions) to elect.
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(tps) => tps
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        None => match &ctx.cluster {
            Some(c) => c
                .image()
                .topics
                .values()
                .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
                .collect(),
            None => Vec::new(),
        },
    };
    let mut results = Vec::with_capacity(wanted.len());
    let mut last_index = 0;
    for (topic, partitions) in wanted {
        let mut out = Vec::with_capacity(partitions.len());
        for p in partitions {
            let known = ctx
                .catalog
                .get(&topic)
                .is_some_and(|m| p >= 0 && p < m.partitions);
            let result: Result<(), (Code, String)> = if !known {
                Err((Code::UnknownTopicOrPartition, "no such partition".into()))
            } else {
                match &ctx.cluster {
                    None => Err((
                        Code::ElectionNotNeeded,
                        "a single node leads every partition".into(),
                    )),
                    Some(c) => {
                        let cmd = Command::ElectLeader {
                            topic: topic.clone(),
                            partition: p,
                            preferred,
                        };
                        match c.propose(cmd).await {
                            Ok(a) => {
                                last_index = last_index.max(a.index);
                                match a.reply {
                                    Reply::Partition { leader, .. } => {
                                        tracing::info!(
                                            topic,
                                            partition = p,
                                            leader,
                                            preferred,
                                            "leader elected"
                                        );
                                        Ok(())
                                    }
                                    Reply::ElectionNotNeeded => Err((
                                        Code::ElectionNotNeeded,
                                        "the leader is already the one that would be elected"
                                            .into(),
                                    )),
                                    Reply::NotEligible if preferred => Err((
                                        Code::PreferredLeaderNotAvailable,
                                        "the preferred replica is not live and in sync".into(),
                                    )),
                                    Reply::NotEligible => Err((
                                        Code::EligibleLeadersNotAvailable,
                                        "no live replica can lead".into(),
                                    )),
                                    other => Err((Code::UnknownServerError, format!("{other:?}"))),
                                }
                            }
                            Err(e) => Err((Code::RequestTimedOut, e.to_string())),
                        }
                    }
                }
            };
            match result {
                // With every partition asked for, only those that changed are listed.
                Err((Code::ElectionNotNeeded, _)) if all => {}
                Ok(()) => out.push(PartitionResult::default().with_partition_id(p)),
                Err((code, msg)) => out.push(
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
                ),
            }
        }
        if !out.is_empty() || !all {
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(out),
            );
        }
    }
    if last_index > 0 {
        ctx.wait_synced(last_index).await;
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}
