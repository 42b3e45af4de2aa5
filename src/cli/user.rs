//! `esker user list|set-password|delete`: SCRAM credentials through
//! Describe/AlterUserScramCredentials. The salted password is computed here (random 32-byte
//! salt, PBKDF2 with the chosen hash), so the password itself never travels.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::output::{print_json, Table};
use super::{usage, CliResult, UserAction};
use crate::auth::scram::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::client::{check, Client, Target};

#[derive(Serialize)]
struct UserCredential {
    user: String,
    mechanism: String,
    iterations: i32,
}

fn user_what(user: &str, code: i16) -> String {
    match code {
        31 => "not authorized to manage SCRAM users (needs ALTER / DESCRIBE on the cluster)"
            .to_string(),
        91 => format!("user '{user}' has no SCRAM credentials"),
        _ => format!("cannot change SCRAM credentials of user '{user}'"),
    }
}

fn mechanism(s: &str) -> CliResult<Mechanism> {
    Mechanism::from_name(&s.to_ascii_uppercase()).ok_or_else(|| {
        usage(format!(
            "--mechanism `{s}`: expected SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
    })
}

async fn describe(client: &mut Client, user: Option<&str>) -> CliResult<Vec<UserCredential>> {
    let users =
        user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.to_string()))]);
    let resp = client
        .send(Target::Any, |_| {
            DescribeUserScramCredentialsRequest::default().with_users(users)
        })
        .await?;
    check(resp.error_code, resp.error_message.as_deref(), || {
        user_what(user.unwrap_or_default(), resp.error_code)
    })?;
    let mut out = Vec::new();
    for r in resp.results {
        let name = r.user.to_string();
        check(r.error_code, r.error_message.as_deref(), || {
            user_what(&name, r.error_code)
        })?;
        for c in r.credential_infos {
            out.push(UserCredential {
                user: name.clone(),
                mechanism: Mechanism::from_code(c.mechanism)
                    .map(|m| m.name().to_string())
                    .unwrap_or_else(|| format!("UNKNOWN({})", c.mechanism)),
                iterations: c.iterations,
            });
        }
    }
    out.sort_by(|a, b| (&a.user, &a.mechanism).cmp(&(&b.user, &b.mechanism)));
    Ok(out)
}

/// Runs a user action.
pub async fn run(client: &mut Client, action: UserAction, json: bool) -> CliResult<()> {
    match action {
        UserAction::List => {
            let creds = describe(client, None).await?;
            if json {
                return print_json(&creds);
            }
            let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for c in &creds {
                table.row(vec![
                    c.user.clone(),
                    c.mechanism.clone(),
                    c.iterations.to_string(),
                ]);
            }
            table.print();
            Ok(())
        }
        UserAction::SetPassword {
            user,
            password,
            mechanism: mech,
            iterations,
        } => {
            let mech = mechanism(&mech)?;
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err(usage(format!(
                    "--iterations {iterations}: expected {MIN_ITERATIONS} to {MAX_ITERATIONS}"
                )));
            }
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            if password.is_empty() {
                return Err(usage("the password is empty"));
            }
            let mut salt = Vec::with_capacity(32);
            salt.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            salt.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            let salted = mech.salted_password(password.as_bytes(), &salt, iterations as u32);
            let resp = client
                .send(Target::Controller, |_| {
                    AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                        ScramCredentialUpsertion::default()
                            .with_name(StrBytes::from_string(user.clone()))
                            .with_mechanism(mech.code())
                            .with_iterations(iterations)
                            .with_salt(Bytes::from(salt))
                            .with_salted_password(Bytes::from(salted)),
                    ])
                })
                .await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_deref(), || {
                    user_what(&user, r.error_code)
                })?;
            }
            if json {
                return print_json(&serde_json::json!({
                    "user": user, "mechanism": mech.name(), "iterations": iterations
                }));
            }
            println!(
                "set the password of user '{user}' ({}, {iterations} iterations)",
                mech.name()
            );
            Ok(())
        }
        UserAction::Delete { user, mechanism: m } => {
            let mechs: Vec<Mechanism> = match m {
                Some(m) => vec![mechanism(&m)?],
                None => describe(client, Some(&user))
                    .await?
                    .iter()
                    .filter_map(|c| Mechanism::from_name(&c.mechanism))
                    .collect(),
            };
            if mechs.is_empty() {
                return Err(crate::client::ClientError::Response {
                    what: user_what(&user, 91),
                    code: 91,
                    message: None,
                }
                .into());
            }
            let resp = client
                .send(Target::Controller, |_| {
                    AlterUserScramCredentialsRequest::default().with_deletions(
                        mechs
                            .iter()
                            .map(|m| {
                                ScramCredentialDeletion::default()
                                    .with_name(StrBytes::from_string(user.clone()))
                                    .with_mechanism(m.code())
                            })
                            .collect(),
                    )
                })
                .await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_deref(), || {
                    user_what(&user, r.error_code)
                })?;
            }
            let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
            if json {
                return print_json(&serde_json::json!({ "user": user, "deleted": names }));
            }
            println!("deleted {} of user '{user}'", names.join(", "));
            Ok(())
        }
    }
}
