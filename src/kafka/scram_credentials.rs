//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), v0: list users
//! with their mechanisms and iterations (DESCRIBE on the cluster), and set or delete
//! credentials (ALTER on the cluster). Upsertions carry the salted password; the broker keeps
//! only the derived StoredKey/ServerKey (see `crate::auth::scram`).

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use super::Access;
use crate::auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::auth::scram::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::context::BrokerContext;

/// Supported versions of both APIs.
pub const VERSIONS: (i16, i16) = (0, 0);

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// Handles DescribeUserScramCredentials.
pub async fn describe(
    ctx: Arc<BrokerContext>,
    req: DescribeUserScramCredentialsRequest,
    access: Access,
) -> DescribeUserScramCredentialsResponse {
    if !access.allowed(
        &ctx,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(msg("DESCRIBE on the cluster is required"));
    }
    let all = ctx.security.credentials.describe();
    let info = |creds: &Vec<(Mechanism, i32)>| {
        creds
            .iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(*i)
            })
            .collect()
    };
    let results = match req.users {
        None => all
            .iter()
            .map(|(u, c)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(u.clone()))
                    .with_credential_infos(info(c))
            })
            .collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            users
                .iter()
                .map(|u| {
                    let name = u.name.to_string();
                    let r = DescribeUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(name.clone()));
                    if !seen.insert(name.clone()) {
                        return r
                            .with_error_code(Code::DuplicateResource.code())
                            .with_error_message(msg(format!("user {name} named twice")));
                    }
                    match all.get(&name) {
                        Some(c) => r.with_credential_infos(info(c)),
                        None => r
                            .with_error_code(Code::ResourceNotFound.code())
                            .with_error_message(msg(format!(
                                "attempt to describe a user credential that does not exist: {name}"
                            ))),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// Handles AlterUserScramCredentials.
pub async fn alter(
    ctx: Arc<BrokerContext>,
    req: AlterUserScramCredentialsRequest,
    access: Access,
) -> AlterUserScramCredentialsResponse {
    let result = |user: &str, code: Code, m: Option<String>| {
        AlterUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_error_code(code.code())
            .with_error_message(m.and_then(msg))
    };
    let users: BTreeSet<String> = req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()))
        .collect();
    if !access.allowed(&ctx, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let results = users
            .iter()
            .map(|u| {
                result(
                    u,
                    Code::ClusterAuthorizationFailed,
                    Some("ALTER on the cluster is required".into()),
                )
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    // Validate per user; a user with any invalid entry is left unchanged.
    let mut errors: std::collections::BTreeMap<String, (Code, String)> = Default::default();
    let mut deletions = Vec::new();
    let mut upsertions = Vec::new();
    for d in &req.deletions {
        let name = d.name.to_string();
        match Mechanism::from_code(d.mechanism) {
            Some(m) if !name.is_empty() => deletions.push((name, m)),
            Some(_) => {
                errors.insert(
                    name,
                    (Code::UnacceptableCredential, "empty user name".into()),
                );
            }
            None => {
                errors.insert(
                    name,
                    (
                        Code::UnsupportedSaslMechanism,
                        "unknown SCRAM mechanism".into(),
                    ),
                );
            }
        }
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        let Some(m) = Mechanism::from_code(u.mechanism) else {
            errors.insert(
                name,
                (
                    Code::UnsupportedSaslMechanism,
                    "unknown SCRAM mechanism".into(),
                ),
            );
            continue;
        };
        if name.is_empty() {
            errors.insert(
                name,
                (Code::UnacceptableCredential, "empty user name".into()),
            );
        } else if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
            errors.insert(
                name,
                (
                    Code::UnacceptableCredential,
                    format!("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"),
                ),
            );
        } else if u.salt.is_empty() || u.salted_password.is_empty() {
            errors.insert(
                name,
                (
                    Code::UnacceptableCredential,
                    "salt and salted password are required".into(),
                ),
            );
        } else {
            let cred = ScramCredential::from_salted(m, &u.salt, &u.salted_password, u.iterations);
            upsertions.push((name, m, cred));
        }
    }
    deletions.retain(|(u, _)| !errors.contains_key(u));
    upsertions.retain(|(u, _, _)| !errors.contains_key(u));
    match ctx.alter_scram(deletions.clone(), upsertions).await {
        Ok(found) => {
            for ((u, m), hit) in deletions.iter().zip(found) {
                if !hit {
                    errors.entry(u.clone()).or_insert((
                        Code::ResourceNotFound,
                        format!(
                            "attempt to delete a {} credential that does not exist",
                            m.name()
                        ),
                    ));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store scram credentials");
            for u in &users {
                errors
                    .entry(u.clone())
                    .or_insert((Code::UnknownServerError, e.to_string()));
            }
        }
    }
    tracing::info!(target: "esker::audit", principal = %access.principal, users = ?users, "scram credentials altered");
    let results = users
        .iter()
        .map(|u| match errors.get(u) {
            Some((c, m)) => result(u, *c, Some(m.clone())),
            None => AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(u.clone())),
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
