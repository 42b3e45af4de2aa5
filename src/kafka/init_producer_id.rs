//! InitProducerId (key 22), versions 0..=5: producer ids for idempotent producers, allocated
//! durably (never reused after a restart), and for transactional producers the id and bumped
//! epoch of their transactional id from the transaction coordinator (fencing older instances).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::error::{txn_code, Code};
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles an InitProducerId request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(tid) = &req.transactional_id {
        if tid.is_empty() {
            return resp.with_error_code(Code::InvalidRequest.code());
        }
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        return match ctx
            .transactions
            .init_producer_id(&ctx, tid.as_str(), req.transaction_timeout_ms, expected)
            .await
        {
            Ok((id, epoch)) => resp
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => {
                tracing::debug!(transactional_id = %tid.as_str(), error = %e, "InitProducerId refused");
                resp.with_error_code(txn_code(&e, version < 4).code())
            }
        };
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
