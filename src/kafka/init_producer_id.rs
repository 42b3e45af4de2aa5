//! InitProducerId (key 22), versions 0..=5: producer ids for idempotent producers, allocated
//! durably (never reused after a restart). Transactions are not supported yet, so a request
//! with a transactional id is refused with a message saying so.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles an InitProducerId request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(tid) = &req.transactional_id {
        tracing::warn!(transactional_id = %tid.as_str(), "transactions are not supported yet");
        return resp.with_error_code(Code::InvalidRequest.code());
    }
    // Idempotent producers (with or without a previous id, KIP-360) get a fresh id at epoch 0.
    match ctx.allocate_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(Code::KafkaStorageError.code())
        }
    }
}
