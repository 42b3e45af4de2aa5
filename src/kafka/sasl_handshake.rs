//! SaslHandshake (key 17), v0-1: picks the mechanism of a SASL listener's exchange. v1 clients
//! then send SaslAuthenticate requests; v0's raw (unframed) tokens are not supported, so a v0
//! handshake must also be followed by SaslAuthenticate (every current client uses v1).
//! Once authenticated, a new handshake starts a KIP-152 re-authentication when
//! `connections.max.reauth.ms` is set (same mechanism); otherwise, or in the middle of an
//! exchange, it answers ILLEGAL_SASL_STATE and the connection is closed.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::auth::{Security, Session};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles a handshake in the read loop (it changes the connection's state).
pub fn handle(
    session: &mut Session,
    sec: &Security,
    req: &SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let enabled = |v: Vec<String>| v.into_iter().map(StrBytes::from_string).collect();
    if !session.listener.protocol.sasl() || !session.awaiting_handshake(sec) {
        tracing::info!(ip = %session.ip, listener = %session.listener.name, "SaslHandshake out of order; closing");
        session.close_after_response = true;
        return SaslHandshakeResponse::default()
            .with_error_code(Code::IllegalSaslState.code())
            .with_mechanisms(enabled(sec.config.mechanisms.clone()));
    }
    if let Some(previous) = session.reauth_mechanism_change(req.mechanism.as_str()) {
        tracing::info!(target: "esker::audit", ip = %session.ip, %previous, mechanism = %req.mechanism.as_str(), "re-authentication changes the SASL mechanism; closing");
        session.close_after_response = true;
        return SaslHandshakeResponse::default()
            .with_error_code(Code::IllegalSaslState.code())
            .with_mechanisms(enabled(sec.config.mechanisms.clone()));
    }
    match session.handshake(sec, req.mechanism.as_str()) {
        Ok(()) => {
            SaslHandshakeResponse::default().with_mechanisms(enabled(sec.config.mechanisms.clone()))
        }
        Err(list) => {
            tracing::info!(ip = %session.ip, mechanism = %req.mechanism.as_str(), "unsupported SASL mechanism");
            SaslHandshakeResponse::default()
                .with_error_code(Code::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled(list))
        }
    }
}
