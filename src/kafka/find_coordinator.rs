//! FindCoordinator (key 10), versions 0..=6. A single broker coordinates every group and every
//! transactional id, so GROUP (0) and TRANSACTION (1) keys are answered with its own address;
//! in a cluster the coordinator of a key is the leader of its `__consumer_offsets` partition
//! (groups) or `__transaction_state` partition (transactional ids), COORDINATOR_NOT_AVAILABLE
//! while there is none; any other key type is INVALID_REQUEST. v4+
//! carries a batch of keys (KIP-699).

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 6);

/// Handles a FindCoordinator request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    // GROUP or TRANSACTION; v0 has no key type and means GROUP.
    let known = matches!(req.key_type, 0 | 1);
    if known && ctx.cluster.is_some() {
        return clustered(&ctx, req, version, listener);
    }
    let (host, port) = ctx.advertised.clone();
    let node = BrokerId(ctx.config.node_id);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                if known {
                    c.with_node_id(node)
                        .with_host(StrBytes::from_string(host.clone()))
                        .with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(Code::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "unsupported coordinator key type",
                        )))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    if known {
        resp.with_node_id(node)
            .with_host(StrBytes::from_string(host))
            .with_port(port)
    } else {
        let resp = resp
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(Code::InvalidRequest.code());
        if version >= 1 {
            resp.with_error_message(Some(StrBytes::from_static_str(
                "unsupported coordinator key type",
            )))
        } else {
            resp
        }
    }
}

/// The leader of a key's `__consumer_offsets` (key type 0) or `__transaction_state` (1)
/// partition, as the metadata image has it.
fn coordinator_of(
    ctx: &BrokerContext,
    key_type: i8,
    key: &str,
    listener: &str,
) -> Result<(i32, String, i32), Code> {
    let cluster = ctx.cluster.as_ref().ok_or(Code::CoordinatorNotAvailable)?;
    let image = cluster.image();
    let (topic, partition) = if key_type == 1 {
        (crate::txn::TXN_TOPIC, ctx.transactions.partition_for(key))
    } else {
        (
            crate::coordinator::OFFSETS_TOPIC,
            ctx.coordinator.partition_for(key),
        )
    };
    let leader = image
        .partition(topic, partition)
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or(Code::CoordinatorNotAvailable)?;
    let (host, port) = crate::context::broker_endpoint(&image, leader, listener)
        .ok_or(Code::CoordinatorNotAvailable)?;
    Ok((leader, host, port))
}

/// FindCoordinator in a cluster.
fn clustered(
    ctx: &BrokerContext,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = coordinator_of(ctx, req.key_type, key.as_str(), listener);
                let c = Coordinator::default().with_key(key);
                match found {
                    Ok((id, host, port)) => c
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err(code) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code()),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match coordinator_of(ctx, req.key_type, req.key.as_str(), listener) {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err(code) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(code.code()),
    }
}
