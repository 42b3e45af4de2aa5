//! SaslAuthenticate (key 36), v0-2: one step of the SASL exchange chosen by SaslHandshake. A
//! failure answers SASL_AUTHENTICATION_FAILED with a message, and the connection is closed
//! once that response is written. With `connections.max.reauth.ms` set, a successful step
//! answers (v1+) the session's lifetime (KIP-152).

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::auth::{Security, Session};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Handles a step in the read loop (it changes the connection's principal).
pub fn handle(
    session: &mut Session,
    sec: &Security,
    req: &SaslAuthenticateRequest,
    version: i16,
) -> SaslAuthenticateResponse {
    if !session.awaiting_authenticate() {
        tracing::info!(ip = %session.ip, listener = %session.listener.name, "SaslAuthenticate out of order; closing");
        session.close_after_response = true;
        return SaslAuthenticateResponse::default()
            .with_error_code(Code::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate before a successful SaslHandshake",
            )));
    }
    match session.authenticate(sec, &req.auth_bytes) {
        Ok(out) => {
            let resp = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(out));
            // KIP-152: from v1 the client learns when to re-authenticate.
            if version >= 1 && session.exchange_complete() {
                resp.with_session_lifetime_ms(session.session_lifetime_ms())
            } else {
                resp
            }
        }
        Err(e) => {
            tracing::info!(target: "esker::audit", ip = %session.ip, listener = %session.listener.name, error = %e, "SASL authentication failed");
            session.close_after_response = true;
            SaslAuthenticateResponse::default()
                .with_error_code(Code::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Authentication failed: {e}"
                ))))
        }
    }
}
