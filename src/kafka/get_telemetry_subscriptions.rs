//! GetTelemetrySubscriptions (key 71, v0, KIP-714): a client asks which of its metrics the
//! broker wants and how often; a client sending the zero instance id is given one. The
//! subscription itself is [`crate::telemetry`]'s; this only translates.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::error::telemetry_code;
use crate::auth::Session;
use crate::context::BrokerContext;
use crate::telemetry::ClientInfo;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 0);

/// What the broker knows of the client sending a telemetry request: the header's client id,
/// the software it named in ApiVersions, and its address.
pub fn client_info(
    header: &RequestHeader,
    peer: std::net::SocketAddr,
    session: &Session,
) -> ClientInfo {
    let (software_name, software_version) = match &session.client_software {
        Some((n, v)) => (Some(n.clone()), Some(v.clone())),
        None => (None, None),
    };
    ClientInfo {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        software_name,
        software_version,
        source_address: Some(peer.ip().to_string()),
        source_port: Some(peer.port()),
    }
}

/// Handles a GetTelemetrySubscriptions request.
pub fn handle(
    ctx: &BrokerContext,
    req: &GetTelemetrySubscriptionsRequest,
    client: &ClientInfo,
) -> GetTelemetrySubscriptionsResponse {
    let now = std::time::Instant::now();
    match ctx
        .telemetry
        .get_subscriptions(req.client_instance_id, client, now)
    {
        Ok(a) => GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(a.client_instance_id)
            .with_subscription_id(a.subscription_id)
            .with_accepted_compression_types(a.accepted_compression_types)
            .with_push_interval_ms(a.push_interval_ms)
            .with_telemetry_max_bytes(a.telemetry_max_bytes)
            .with_delta_temporality(a.delta_temporality)
            .with_requested_metrics(
                a.requested_metrics
                    .into_iter()
                    .map(StrBytes::from_string)
                    .collect(),
            ),
        Err(e) => {
            tracing::debug!(client_id = %client.client_id, error = %e, "GetTelemetrySubscriptions refused");
            GetTelemetrySubscriptionsResponse::default().with_error_code(telemetry_code(&e).code())
        }
    }
}
