//! Console authentication: an HTTP basic `Authorization` header checked against the SCRAM
//! credentials (the password is salted with the stored salt and iterations and its StoredKey
//! compared, as a SCRAM exchange would) or `sasl.plain.users`; else a client certificate's
//! principal; else `User:ANONYMOUS` when the broker has no authorizer and no users.
//!
//! PBKDF2 with thousands of iterations is slow on purpose, so a verified password is
//! remembered (as a keyed hash, never in clear) until the user's credential changes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::ConsoleError;
use crate::auth::scram::{Mechanism, ScramCredential};
use crate::auth::{constant_time_eq, Principal};
use crate::context::BrokerContext;

/// Remembered successful logins: user → (keyed hash of the password, the StoredKey it matched).
pub(super) struct Verifier {
    key: [u8; 16],
    verified: Mutex<HashMap<String, ([u8; 32], String)>>,
}

impl Verifier {
    pub(super) fn new() -> Verifier {
        Verifier {
            key: *uuid::Uuid::new_v4().as_bytes(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The caller's principal, or 401.
    pub(super) fn principal(
        &self,
        ctx: &BrokerContext,
        headers: &HeaderMap,
        cert: Option<Principal>,
        peer: IpAddr,
    ) -> Result<Principal, ConsoleError> {
        if let Some(value) = headers.get(hyper::header::AUTHORIZATION) {
            let parsed = value.to_str().ok().and_then(parse_basic);
            let Some((user, password)) = parsed else {
                tracing::info!(target: "esker::audit", ip = %peer, "console: malformed Authorization header");
                return Err(ConsoleError::Unauthorized);
            };
            if self.verify(ctx, &user, &password) {
                return Ok(Principal::user(&user));
            }
            tracing::info!(target: "esker::audit", ip = %peer, user = %user, "console authentication failed");
            return Err(ConsoleError::Unauthorized);
        }
        if let Some(p) = cert {
            return Ok(p);
        }
        if required(ctx) {
            return Err(ConsoleError::Unauthorized);
        }
        Ok(Principal::anonymous())
    }

    /// Whether `password` is `user`'s SCRAM (either mechanism) or PLAIN password.
    fn verify(&self, ctx: &BrokerContext, user: &str, password: &str) -> bool {
        let sec = &ctx.security;
        if let Some(p) = sec.config.plain_users.get(user) {
            if constant_time_eq(p.as_bytes(), password.as_bytes()) {
                return true;
            }
        }
        let digest = self.digest(user, password);
        for mech in [Mechanism::Sha512, Mechanism::Sha256] {
            let Some(cred) = sec.credentials.get(user, mech) else {
                continue;
            };
            {
                let seen = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((d, stored)) = seen.get(user) {
                    if *stored == cred.stored_key && constant_time_eq(d, &digest) {
                        return true;
                    }
                }
            }
            let Ok(salt) = B64.decode(&cred.salt) else {
                continue;
            };
            let derived = ScramCredential::from_password(mech, password, &salt, cred.iterations);
            if constant_time_eq(derived.stored_key.as_bytes(), cred.stored_key.as_bytes()) {
                let mut seen = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                seen.insert(user.to_string(), (digest, cred.stored_key));
                return true;
            }
        }
        false
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }
}

/// Whether callers must authenticate: the broker has an authorizer or any user.
pub(super) fn required(ctx: &BrokerContext) -> bool {
    let sec = &ctx.security;
    sec.authorizer.enabled()
        || !sec.config.plain_users.is_empty()
        || !sec.credentials.describe().is_empty()
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(rest.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_headers() {
        let h = format!("Basic {}", B64.encode("alice:pa:ss"));
        assert_eq!(
            parse_basic(&h),
            Some(("alice".to_string(), "pa:ss".to_string()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic(&format!("Basic {}", B64.encode(":x"))), None);
    }
}
