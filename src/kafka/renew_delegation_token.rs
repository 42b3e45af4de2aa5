//! RenewDelegationToken (key 39), v1-2: the owner or a renewer pushes a live token's expiry
//! forward (by `delegation.token.expiry.time.ms`, or the shorter period asked), never past its
//! max timestamp. The token is named by its HMAC. v0 was removed in Kafka 4.0 (KIP-896).

use std::sync::Arc;

use kafka_protocol::messages::{RenewDelegationTokenRequest, RenewDelegationTokenResponse};

use super::error::{token_code, Code};
use super::Access;
use crate::auth::delegation::TokenChange;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 2);

/// Kafka's expiry timestamp in error responses.
pub(super) const ERROR_TIMESTAMP: i64 = -1;

fn error(code: Code) -> RenewDelegationTokenResponse {
    RenewDelegationTokenResponse::default()
        .with_error_code(code.code())
        .with_expiry_timestamp_ms(ERROR_TIMESTAMP)
}

/// Handles a RenewDelegationToken request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: RenewDelegationTokenRequest,
    access: Access,
) -> RenewDelegationTokenResponse {
    if !access.may_request_tokens() {
        tracing::info!(principal = %access.principal, listener = %access.listener.name, "RenewDelegationToken not allowed on this channel");
        return error(Code::DelegationTokenRequestNotAllowed);
    }
    let tokens = &ctx.security.tokens;
    let token = tokens.by_hmac(&req.hmac);
    let planned = tokens.config().plan_renew(
        token.as_ref(),
        &access.principal,
        BrokerContext::now_ms(),
        req.renew_period_ms,
    );
    let change = match planned {
        Ok(change) => change,
        Err(e) => {
            tracing::info!(principal = %access.principal, error = %e, "RenewDelegationToken refused");
            return error(token_code(e));
        }
    };
    let TokenChange::SetExpiry {
        expiry_timestamp_ms,
        ref token_id,
    } = change
    else {
        return error(Code::UnknownServerError);
    };
    let token_id = token_id.clone();
    match ctx.alter_tokens(change).await {
        Ok(true) => {
            tracing::info!(token = %token_id, principal = %access.principal, expiry_timestamp_ms, "delegation token renewed");
            RenewDelegationTokenResponse::default().with_expiry_timestamp_ms(expiry_timestamp_ms)
        }
        // Expired or removed meanwhile.
        Ok(false) => error(Code::DelegationTokenNotFound),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a delegation token renewal");
            error(Code::UnknownServerError)
        }
    }
}
