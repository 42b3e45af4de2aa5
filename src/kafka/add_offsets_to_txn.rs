//! AddOffsetsToTxn (key 25), versions 0..=4: adds the group's `__consumer_offsets` partition to
//! the transaction, so TxnOffsetCommit's offsets complete with its markers.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::error::txn_code;
use crate::context::BrokerContext;
use crate::coordinator::OFFSETS_TOPIC;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handles an AddOffsetsToTxn request (authorized by the caller).
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition = ctx.coordinator.partition_for(req.group_id.as_str());
    let r = ctx
        .transactions
        .add_partitions(
            &ctx,
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await;
    match r {
        Ok(()) => AddOffsetsToTxnResponse::default(),
        Err(e) => {
            AddOffsetsToTxnResponse::default().with_error_code(txn_code(&e, version < 2).code())
        }
    }
}
