//! TxnOffsetCommit (key 28): offsets committed inside a transaction; they stay pending in the
//! group coordinator until the transaction's marker reaches `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 3);

/// Handles a TxnOffsetCommit request.
pub async fn handle(
    _ctx: Arc<BrokerContext>,
    _req: TxnOffsetCommitRequest,
    _version: i16,
) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default()
}
