//! WriteTxnMarkers (key 27): the transaction coordinator asks a partition leader to close a
//! producer's transaction with a commit or abort control batch. [`write_marker`] is the local
//! path the coordinator also uses for partitions this broker leads.

use std::sync::Arc;

use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 1);

/// Handles a WriteTxnMarkers request.
pub async fn handle(
    _ctx: Arc<BrokerContext>,
    _req: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    WriteTxnMarkersResponse::default()
}

/// Writes one marker (commit or abort of `producer_id`'s open transaction) to a partition this
/// broker leads and waits until it is durable (fsync, and the ISR in a cluster). A marker on a
/// `__consumer_offsets` partition also completes the producer's pending transactional offset
/// commits in the group coordinator.
pub async fn write_marker(
    _ctx: &BrokerContext,
    _topic: &str,
    _partition: i32,
    _producer_id: i64,
    _producer_epoch: i16,
    _commit: bool,
    _coordinator_epoch: i32,
) -> Result<(), Code> {
    Err(Code::UnknownServerError)
}
