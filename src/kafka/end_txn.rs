//! EndTxn (key 26), versions 0..=4: commit or abort the producer's open transaction. Answered once
//! the coordinator's Prepare record is durable; the markers follow in the background.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::error::txn_code;
use crate::context::BrokerContext;

/// Supported versions (v5, KIP-890's server-side epoch bump, is not served).
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handles an EndTxn request (authorized by the caller).
pub async fn handle(ctx: Arc<BrokerContext>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let r = ctx
        .transactions
        .end_txn(
            &ctx,
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        )
        .await;
    match r {
        Ok(()) => EndTxnResponse::default(),
        Err(e) => {
            tracing::debug!(transactional_id = %req.transactional_id.as_str(), error = %e, "EndTxn refused");
            EndTxnResponse::default().with_error_code(txn_code(&e, version < 2).code())
        }
    }
}
