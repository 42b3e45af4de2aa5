//! AlterPartitionReassignments (key 45, versions 0..=1) and ListPartitionReassignments (key
//! 46, version 0): replica moves as in KIP-455. A reassignment adds the target's new replicas
//! at once (they fetch from the leader outside the ISR); once every one of them is in sync the
//! active controller drops the replicas not in the target (moving leadership if needed), and
//! their brokers delete the local logs. A null replica list cancels the reassignment in
//! progress. A single node has nothing to move to.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;
use crate::metadata::records::{Command, Reply};

/// Supported versions of AlterPartitionReassignments.
pub const ALTER_VERSIONS: (i16, i16) = (0, 1);
/// Supported versions of ListPartitionReassignments.
pub const LIST_VERSIONS: (i16, i16) = (0, 0);

/// Handles AlterPartitionReassignments (authorized by the caller: ALTER on the cluster).
pub async fn alter(
    ctx: Arc<BrokerContext>,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    let mut last_index = 0;
    for t in req.topics {
        let topic = t.name.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let result =
                reassign_one(&ctx, &topic, p.partition_index, target, allow_rf_change).await;
            let mut r =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            match result {
                Ok(index) => last_index = last_index.max(index),
                Err((code, msg)) => {
                    tracing::info!(topic, partition = p.partition_index, error = %msg, "reassignment refused");
                    r.error_code = code.code();
                    r.error_message = Some(StrBytes::from_string(msg));
                }
            }
            partitions.push(r);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions),
        );
    }
    if last_index > 0 {
        ctx.wait_synced(last_index).await;
    }
    let resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        resp.with_allow_replication_factor_change(allow_rf_change)
    } else {
        resp
    }
}

async fn reassign_one(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> Result<u64, (Code, String)> {
    let Some(cluster) = &ctx.cluster else {
        let me = ctx.config.node_id;
        let known = ctx
            .catalog
            .get(topic)
            .is_some_and(|m| partition >= 0 && partition < m.partitions);
        return match target {
            _ if !known => Err((Code::UnknownTopicOrPartition, "no such partition".into())),
            None => Err((
                Code::NoReassignmentInProgress,
                "no reassignment in progress".into(),
            )),
            Some(t) if t == [me] => Ok(0),
            Some(_) => Err((
                Code::InvalidReplicaAssignment,
                format!("a single node has only broker {me}"),
            )),
        };
    };
    let image = cluster.image();
    let Some(current) = image.partition(topic, partition) else {
        return Err((Code::UnknownTopicOrPartition, "no such partition".into()));
    };
    if target.is_none() && !current.reassigning() {
        return Err((
            Code::NoReassignmentInProgress,
            "no reassignment in progress".into(),
        ));
    }
    if let Some(t) = &target {
        if !allow_rf_change && t.len() != current.target_replicas().len() {
            return Err((
                Code::InvalidReplicationFactor,
                format!(
                    "the target has {} replicas, the partition {}, and allow_replication_factor_change is false",
                    t.len(),
                    current.target_replicas().len()
                ),
            ));
        }
    }
    let cmd = Command::Reassign {
        topic: topic.to_string(),
        partition,
        target,
    };
    match cluster.propose(cmd).await {
        Ok(a) => match a.reply {
            Reply::Ok => {
                tracing::info!(topic, partition, index = a.index, "reassignment started");
                Ok(a.index)
            }
            Reply::UnknownTopic => Err((Code::UnknownTopicOrPartition, "no such partition".into())),
            Reply::Error(msg) if msg.contains("no reassignment") => {
                Err((Code::NoReassignmentInProgress, msg))
            }
            Reply::Error(msg) => Err((Code::InvalidReplicaAssignment, msg)),
            other => Err((Code::UnknownServerError, format!("{other:?}"))),
        },
        Err(e) => Err((Code::RequestTimedOut, e.to_string())),
    }
}

/// Handles ListPartitionReassignments (authorized by the caller: DESCRIBE on the cluster).
pub fn list(
    ctx: &BrokerContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let Some(cluster) = &ctx.cluster else {
        return ListPartitionReassignmentsResponse::default();
    };
    let image = cluster.image();
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |v: &[i32]| v.iter().map(|r| BrokerId(*r)).collect::<Vec<_>>();
    let mut topics = Vec::new();
    for t in image.topics.values() {
        let asked: Option<&Vec<i32>> = match &wanted {
            None => None,
            Some(w) => match w.iter().find(|(n, _)| *n == t.name) {
                Some((_, ps)) => Some(ps),
                None => continue,
            },
        };
        let partitions: Vec<OngoingPartitionReassignment> = t
            .partitions
            .iter()
            .enumerate()
            .filter(|(p, part)| {
                part.reassigning() && asked.map_or(true, |ps| ps.contains(&(*p as i32)))
            })
            .map(|(p, part)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(p as i32)
                    .with_replicas(ids(&part.replicas))
                    .with_adding_replicas(ids(&part.adding))
                    .with_removing_replicas(ids(&part.removing))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
