//! FindCoordinator (key 10), versions 0..=6. This broker coordinates every group and every
//! transactional id, so GROUP (0) and TRANSACTION (1) keys are answered with its own address;
//! any other key type is INVALID_REQUEST. v4+ carries a batch of keys (KIP-699).

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::broker::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 6);

/// Handles a FindCoordinator request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = ctx.advertised.clone();
    let node = BrokerId(ctx.config.node_id);
    // GROUP or TRANSACTION; v0 has no key type and means GROUP.
    let known = matches!(req.key_type, 0 | 1);
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
