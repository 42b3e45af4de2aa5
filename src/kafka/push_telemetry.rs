//! PushTelemetry (key 72, v0, KIP-714): a client's metrics, an OTLP `MetricsData`
//! (compressed with one of the accepted types), checked and kept by [`crate::telemetry`]
//! for export on `/metrics`.

use kafka_protocol::messages::{PushTelemetryRequest, PushTelemetryResponse};

use super::error::telemetry_code;
use crate::context::BrokerContext;
use crate::telemetry::{ClientInfo, Push};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles a PushTelemetry request.
pub fn handle(
    ctx: &BrokerContext,
    req: &PushTelemetryRequest,
    client: &ClientInfo,
) -> PushTelemetryResponse {
    let push = Push {
        client_instance_id: req.client_instance_id,
        subscription_id: req.subscription_id,
        terminating: req.terminating,
        compression_type: req.compression_type,
        metrics: &req.metrics,
    };
    match ctx.telemetry.push(&push, client, std::time::Instant::now()) {
        Ok(()) => PushTelemetryResponse::default(),
        Err(e) => {
            tracing::debug!(client_id = %client.client_id, client_instance_id = %req.client_instance_id, error = %e, "PushTelemetry refused");
            PushTelemetryResponse::default().with_error_code(telemetry_code(&e).code())
        }
    }
}
