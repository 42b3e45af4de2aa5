//! CreateDelegationToken (key 38), v1-3: a new token for the requester, or (v3, KIP-373) for
//! another owner when the requester has CREATE_TOKENS on that `User` resource. Refused on
//! channels that may not handle tokens (PLAINTEXT, anonymous one-way SSL, token-authenticated
//! connections). The token is written through [`BrokerContext::alter_tokens`] (the metadata
//! log in a cluster); the answer carries its id and HMAC. v0 was removed in Kafka 4.0
//! (KIP-896) and is not offered.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{CreateDelegationTokenRequest, CreateDelegationTokenResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::{token_code, Code};
use super::Access;
use crate::auth::acl::{Operation, ResourceType};
use crate::auth::delegation::{new_token_id, TokenChange};
use crate::auth::Principal;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 3);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Handles a CreateDelegationToken request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: CreateDelegationTokenRequest,
    version: i16,
    access: Access,
) -> CreateDelegationTokenResponse {
    let requester = (*access.principal).clone();
    let owner = match req.owner_principal_name.as_deref() {
        Some(name) if !name.is_empty() => Principal {
            kind: req
                .owner_principal_type
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("User")
                .to_string(),
            name: name.to_string(),
        },
        _ => requester.clone(),
    };
    let mut resp = CreateDelegationTokenResponse::default()
        .with_principal_type(s(&owner.kind))
        .with_principal_name(s(&owner.name));
    if version >= 3 {
        resp = resp
            .with_token_requester_principal_type(s(&requester.kind))
            .with_token_requester_principal_name(s(&requester.name));
    }
    if !access.may_request_tokens() {
        tracing::info!(principal = %requester, listener = %access.listener.name, "CreateDelegationToken not allowed on this channel");
        return resp.with_error_code(Code::DelegationTokenRequestNotAllowed.code());
    }
    if owner != requester
        && !access.allowed(
            &ctx,
            Operation::CreateTokens,
            ResourceType::User,
            &owner.to_string(),
        )
    {
        return resp.with_error_code(Code::DelegationTokenAuthorizationFailed.code());
    }
    let renewers = req
        .renewers
        .iter()
        .map(|r| Principal {
            kind: r.principal_type.to_string(),
            name: r.principal_name.to_string(),
        })
        .collect();
    let tokens = &ctx.security.tokens;
    let planned = tokens.config().plan_create(
        BrokerContext::now_ms(),
        owner.clone(),
        requester.clone(),
        renewers,
        req.max_lifetime_ms,
        new_token_id(),
    );
    let info = match planned {
        Ok(info) => info,
        Err(e) => {
            tracing::info!(principal = %requester, error = %e, "CreateDelegationToken refused");
            return resp.with_error_code(token_code(e).code());
        }
    };
    let Some(mac) = tokens.hmac_of(&info.token_id) else {
        return resp.with_error_code(Code::DelegationTokenAuthDisabled.code());
    };
    match ctx.alter_tokens(TokenChange::Create(info.clone())).await {
        Ok(true) => {
            tracing::info!(token = %info.token_id, %owner, %requester, "delegation token created");
            resp.with_issue_timestamp_ms(info.issue_timestamp_ms)
                .with_expiry_timestamp_ms(info.expiry_timestamp_ms)
                .with_max_timestamp_ms(info.max_timestamp_ms)
                .with_token_id(s(&info.token_id))
                .with_hmac(Bytes::from(mac))
        }
        Ok(false) => {
            tracing::warn!(token = %info.token_id, "delegation token id collision");
            resp.with_error_code(Code::UnknownServerError.code())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a delegation token");
            resp.with_error_code(Code::UnknownServerError.code())
        }
    }
}
