//! DescribeDelegationToken (key 41), v1-3: the tokens the requester may see among those owned
//! (or renewable) by the listed owners (all when the list is null, none when it is empty).
//! Owners and renewers see their tokens; others need DESCRIBE on the DELEGATION_TOKEN resource
//! (the token id) or DESCRIBE_TOKENS on the owner's USER resource (KIP-373), as Kafka's
//! `DelegationTokenManager.filterToken`. v0 was removed in Kafka 4.0 (KIP-896).

use bytes::Bytes;
use kafka_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use kafka_protocol::messages::{DescribeDelegationTokenRequest, DescribeDelegationTokenResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use super::Access;
use crate::auth::acl::{Operation, ResourceType};
use crate::auth::delegation::TokenInfo;
use crate::auth::Principal;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 3);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Handles a DescribeDelegationToken request.
pub fn handle(
    ctx: &BrokerContext,
    req: DescribeDelegationTokenRequest,
    version: i16,
    access: &Access,
) -> DescribeDelegationTokenResponse {
    if !access.may_request_tokens() {
        tracing::info!(principal = %access.principal, listener = %access.listener.name, "DescribeDelegationToken not allowed on this channel");
        return DescribeDelegationTokenResponse::default()
            .with_error_code(Code::DelegationTokenRequestNotAllowed.code());
    }
    let tokens = &ctx.security.tokens;
    if !tokens.config().enabled() {
        return DescribeDelegationTokenResponse::default()
            .with_error_code(Code::DelegationTokenAuthDisabled.code());
    }
    let owners: Option<Vec<Principal>> = req.owners.map(|o| {
        o.iter()
            .map(|p| Principal {
                kind: p.principal_type.to_string(),
                name: p.principal_name.to_string(),
            })
            .collect()
    });
    let visible = |t: &TokenInfo| {
        if let Some(owners) = &owners {
            if !owners.iter().any(|o| t.owner_or_renewer(o)) {
                return false;
            }
        }
        t.owner_or_renewer(&access.principal)
            || access.may(
                ctx,
                Operation::Describe,
                ResourceType::DelegationToken,
                &t.token_id,
            )
            || access.may(
                ctx,
                Operation::DescribeTokens,
                ResourceType::User,
                &t.owner.to_string(),
            )
    };
    let described = tokens
        .all()
        .into_values()
        .filter(|t| visible(t))
        .filter_map(|t| {
            let mac = tokens.hmac_of(&t.token_id)?;
            let mut d = DescribedDelegationToken::default()
                .with_principal_type(s(&t.owner.kind))
                .with_principal_name(s(&t.owner.name))
                .with_issue_timestamp(t.issue_timestamp_ms)
                .with_expiry_timestamp(t.expiry_timestamp_ms)
                .with_max_timestamp(t.max_timestamp_ms)
                .with_token_id(s(&t.token_id))
                .with_hmac(Bytes::from(mac))
                .with_renewers(
                    t.renewers
                        .iter()
                        .map(|r| {
                            DescribedDelegationTokenRenewer::default()
                                .with_principal_type(s(&r.kind))
                                .with_principal_name(s(&r.name))
                        })
                        .collect(),
                );
            if version >= 3 {
                d = d
                    .with_token_requester_principal_type(s(&t.requester.kind))
                    .with_token_requester_principal_name(s(&t.requester.name));
            }
            Some(d)
        })
        .collect();
    DescribeDelegationTokenResponse::default().with_tokens(described)
}
