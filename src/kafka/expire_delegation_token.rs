//! ExpireDelegationToken (key 40), v1-2: the owner or a renewer moves a token's expiry to
//! `now + period` (never past its max timestamp), or with a negative period removes it at
//! once. The token is named by its HMAC. v0 was removed in Kafka 4.0 (KIP-896).

use std::sync::Arc;

use kafka_protocol::messages::{ExpireDelegationTokenRequest, ExpireDelegationTokenResponse};

use super::error::{token_code, Code};
use super::renew_delegation_token::ERROR_TIMESTAMP;
use super::Access;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 2);

fn error(code: Code) -> ExpireDelegationTokenResponse {
    ExpireDelegationTokenResponse::default()
        .with_error_code(code.code())
        .with_expiry_timestamp_ms(ERROR_TIMESTAMP)
}

/// Handles an ExpireDelegationToken request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: ExpireDelegationTokenRequest,
    access: Access,
) -> ExpireDelegationTokenResponse {
    if !access.may_request_tokens() {
        tracing::info!(principal = %access.principal, listener = %access.listener.name, "ExpireDelegationToken not allowed on this channel");
        return error(Code::DelegationTokenRequestNotAllowed);
    }
    let tokens = &ctx.security.tokens;
    let token = tokens.by_hmac(&req.hmac);
    let planned = tokens.config().plan_expire(
        token.as_ref(),
        &access.principal,
        BrokerContext::now_ms(),
        req.expiry_time_period_ms,
    );
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            tracing::info!(principal = %access.principal, error = %e, "ExpireDelegationToken refused");
            return error(token_code(e));
        }
    };
    let id = token.map(|t| t.token_id).unwrap_or_default();
    match ctx.alter_tokens(plan.change).await {
        Ok(true) => {
            tracing::info!(token = %id, principal = %access.principal, expiry_timestamp_ms = plan.expiry_timestamp_ms, "delegation token expiry changed");
            ExpireDelegationTokenResponse::default()
                .with_expiry_timestamp_ms(plan.expiry_timestamp_ms)
        }
        // Removed meanwhile.
        Ok(false) => error(Code::DelegationTokenNotFound),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a delegation token expiry");
            error(Code::UnknownServerError)
        }
    }
}
