//! Delegation tokens (KIP-48, KIP-373, KIP-249): what a token is, Kafka's rules for creating,
//! renewing and expiring one, and the durable token store the SCRAM exchange consults when a
//! client authenticates with `tokenauth=true`.
//!
//! A token is an id, an owner, the principal that requested it, renewers and three timestamps
//! (issue, expiry, max). Its password is the HMAC-SHA512 of the id keyed with
//! `delegation.token.secret.key`; the HMAC is never stored, only recomputed, so every node with
//! the same key derives the same one. Without a key tokens are disabled
//! (DELEGATION_TOKEN_AUTH_DISABLED). Tokens live in `<log.dirs>/.esker-config/delegation-tokens`
//! (JSON, replaced atomically); in a cluster they travel through the metadata log like SCRAM
//! credentials and each node's store follows the image. Expired tokens are removed by a
//! periodic check (`delegation.token.expiry.check.interval.ms`).
//!
//! The rules are pure functions over a token and the clock ([`TokenConfig::plan_create`],
//! [`TokenConfig::plan_renew`], [`TokenConfig::plan_expire`]) that yield a [`TokenChange`];
//! applying a change ([`apply_change`]) is deterministic, so the local store and the metadata
//! image share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use super::scram::{Mechanism, ScramCredential, MIN_ITERATIONS};
use super::{AuthError, Principal};

/// The token file, relative to the log directory.
pub const TOKENS_FILE: &str = ".esker-config/delegation-tokens";

/// The `delegation.token.*` settings.
#[derive(Debug, Clone, Default)]
pub struct TokenConfig {
    /// `delegation.token.secret.key`; `None` (empty) disables tokens.
    pub secret_key: Option<String>,
    /// `delegation.token.max.lifetime.ms`: the longest a token may live, renewals included.
    pub max_lifetime_ms: i64,
    /// `delegation.token.expiry.time.ms`: how long a creation or renewal extends a token.
    pub expiry_time_ms: i64,
    /// `delegation.token.expiry.check.interval.ms`: how often expired tokens are removed.
    pub check_interval_ms: i64,
}

/// Why a token operation is refused (each maps to one Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `delegation.token.secret.key` (DELEGATION_TOKEN_AUTH_DISABLED).
    #[error("delegation tokens are disabled: no delegation.token.secret.key")]
    Disabled,
    /// No token has this HMAC (DELEGATION_TOKEN_NOT_FOUND).
    #[error("delegation token not found")]
    NotFound,
    /// The token's expiry or max timestamp has passed (DELEGATION_TOKEN_EXPIRED).
    #[error("delegation token expired")]
    Expired,
    /// The requester is neither owner nor renewer (DELEGATION_TOKEN_OWNER_MISMATCH).
    #[error("requester is neither the token's owner nor one of its renewers")]
    OwnerMismatch,
    /// A renewer that is not a `User` principal (INVALID_PRINCIPAL_TYPE).
    #[error("renewers must be User principals")]
    InvalidPrincipalType,
}

/// One token as the broker keeps it (without its HMAC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token id (the SCRAM user name of token authentication).
    pub token_id: String,
    /// Whom connections authenticated with the token act as.
    pub owner: Principal,
    /// Who created it (KIP-373: may differ from the owner).
    pub requester: Principal,
    /// Who besides the owner may renew or expire it.
    pub renewers: Vec<Principal>,
    /// Creation time, ms since the epoch.
    pub issue_timestamp_ms: i64,
    /// When it expires unless renewed.
    pub expiry_timestamp_ms: i64,
    /// When it expires whatever the renewals.
    pub max_timestamp_ms: i64,
}

impl TokenInfo {
    /// Whether `p` owns the token or may renew it.
    pub fn owner_or_renewer(&self, p: &Principal) -> bool {
        self.owner == *p || self.renewers.contains(p)
    }

    /// Whether the token has expired at `now` (Kafka: either timestamp passed).
    pub fn expired(&self, now: i64) -> bool {
        self.max_timestamp_ms < now || self.expiry_timestamp_ms < now
    }
}

/// Every token by id.
pub type Tokens = BTreeMap<String, TokenInfo>;

/// A change to the set of tokens (the metadata log carries these in a cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenChange {
    /// A new token.
    Create(TokenInfo),
    /// A renewal or a postponed expiry: the token's new expiry timestamp.
    SetExpiry {
        /// The token.
        token_id: String,
        /// Its new expiry.
        expiry_timestamp_ms: i64,
    },
    /// Tokens expired at once or swept by the expiry check.
    Remove {
        /// The tokens.
        token_ids: Vec<String>,
    },
}

/// Applies a change; `false` when it found nothing to change (a renewal of a token removed
/// meanwhile, or a duplicate id).
pub fn apply_change(tokens: &mut Tokens, change: TokenChange) -> bool {
    match change {
        TokenChange::Create(info) => {
            if tokens.contains_key(&info.token_id) {
                return false;
            }
            tokens.insert(info.token_id.clone(), info);
            true
        }
        TokenChange::SetExpiry {
            token_id,
            expiry_timestamp_ms,
        } => match tokens.get_mut(&token_id) {
            Some(t) => {
                t.expiry_timestamp_ms = expiry_timestamp_ms;
                true
            }
            None => false,
        },
        TokenChange::Remove { token_ids } => {
            let mut any = false;
            for id in token_ids {
                any |= tokens.remove(&id).is_some();
            }
            any
        }
    }
}

/// HMAC-SHA512 of the token id keyed with the secret (Kafka's `DelegationTokenManager.createHmac`).
pub fn hmac(secret: &str, token_id: &str) -> Vec<u8> {
    match <Hmac<Sha512> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut m) => {
            m.update(token_id.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length.
        Err(_) => Vec::new(),
    }
}

/// A fresh token id in the form of Kafka's `Uuid.toString()`: 16 random bytes, URL-safe
/// base64 without padding, never starting with `-`.
pub fn new_token_id() -> String {
    loop {
        let id = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn sum(now: i64, duration: i64) -> i64 {
    now.saturating_add(duration)
}

/// What an ExpireDelegationToken does.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpirePlan {
    /// The change to apply.
    pub change: TokenChange,
    /// The expiry timestamp to answer.
    pub expiry_timestamp_ms: i64,
}

impl TokenConfig {
    /// Whether tokens are enabled (a secret key is configured).
    pub fn enabled(&self) -> bool {
        self.secret_key.is_some()
    }

    /// A new token for `owner`, requested by `requester`: expiry one `expiry.time.ms` away,
    /// max one `max.lifetime.ms` away (or the request's shorter `max_lifetime_ms` if positive).
    pub fn plan_create(
        &self,
        now: i64,
        owner: Principal,
        requester: Principal,
        renewers: Vec<Principal>,
        max_lifetime_ms: i64,
        token_id: String,
    ) -> Result<TokenInfo, TokenError> {
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        if renewers.iter().any(|r| r.kind != "User") {
            return Err(TokenError::InvalidPrincipalType);
        }
        let lifetime = if max_lifetime_ms > 0 {
            self.max_lifetime_ms.min(max_lifetime_ms)
        } else {
            self.max_lifetime_ms
        };
        let max_timestamp_ms = sum(now, lifetime);
        Ok(TokenInfo {
            token_id,
            owner,
            requester,
            renewers,
            issue_timestamp_ms: now,
            expiry_timestamp_ms: max_timestamp_ms.min(sum(now, self.expiry_time_ms)),
            max_timestamp_ms,
        })
    }

    /// A renewal by `renewer`: the new expiry timestamp (`renew_period_ms` if positive and
    /// shorter than `expiry.time.ms`, never past the max timestamp).
    pub fn plan_renew(
        &self,
        token: Option<&TokenInfo>,
        renewer: &Principal,
        now: i64,
        renew_period_ms: i64,
    ) -> Result<TokenChange, TokenError> {
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        let token = token.ok_or(TokenError::NotFound)?;
        if token.expired(now) {
            return Err(TokenError::Expired);
        }
        if !token.owner_or_renewer(renewer) {
            return Err(TokenError::OwnerMismatch);
        }
        let period = if renew_period_ms > 0 {
            self.expiry_time_ms.min(renew_period_ms)
        } else {
            self.expiry_time_ms
        };
        Ok(TokenChange::SetExpiry {
            token_id: token.token_id.clone(),
            expiry_timestamp_ms: token.max_timestamp_ms.min(sum(now, period)),
        })
    }

    /// An expiry by `principal`: a negative period removes the token at once, otherwise its
    /// expiry moves to `now + period` (never past the max timestamp).
    pub fn plan_expire(
        &self,
        token: Option<&TokenInfo>,
        principal: &Principal,
        now: i64,
        expiry_time_period_ms: i64,
    ) -> Result<ExpirePlan, TokenError> {
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        let token = token.ok_or(TokenError::NotFound)?;
        if !token.owner_or_renewer(principal) {
            return Err(TokenError::OwnerMismatch);
        }
        if expiry_time_period_ms < 0 {
            return Ok(ExpirePlan {
                change: TokenChange::Remove {
                    token_ids: vec![token.token_id.clone()],
                },
                expiry_timestamp_ms: now,
            });
        }
        if token.expired(now) {
            return Err(TokenError::Expired);
        }
        let expiry = token.max_timestamp_ms.min(sum(now, expiry_time_period_ms));
        Ok(ExpirePlan {
            change: TokenChange::SetExpiry {
                token_id: token.token_id.clone(),
                expiry_timestamp_ms: expiry,
            },
            expiry_timestamp_ms: expiry,
        })
    }
}

/// The tokens of this node, durable in [`TOKENS_FILE`], with the SCRAM credentials derived
/// from their HMACs (cached per token and mechanism).
pub struct TokenStore {
    path: PathBuf,
    config: TokenConfig,
    tokens: RwLock<Tokens>,
    write: Mutex<()>,
    scram: Mutex<BTreeMap<(String, Mechanism), ScramCredential>>,
}

impl TokenStore {
    /// Loads the tokens of a data directory (none if the file does not exist).
    pub fn open(log_dir: &Path, config: TokenConfig) -> Result<TokenStore, AuthError> {
        let path = log_dir.join(TOKENS_FILE);
        let tokens = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| AuthError::Store(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tokens::new(),
            Err(e) => return Err(AuthError::Store(format!("{}: {e}", path.display()))),
        };
        Ok(TokenStore {
            path,
            config,
            tokens: RwLock::new(tokens),
            write: Mutex::new(()),
            scram: Mutex::new(BTreeMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// A token's HMAC (`None` when tokens are disabled).
    pub fn hmac_of(&self, token_id: &str) -> Option<Vec<u8>> {
        self.config.secret_key.as_deref().map(|k| hmac(k, token_id))
    }

    /// Every token.
    pub fn all(&self) -> Tokens {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The token whose HMAC is `mac` (what Renew/ExpireDelegationToken name a token by).
    pub fn by_hmac(&self, mac: &[u8]) -> Option<TokenInfo> {
        let key = self.config.secret_key.as_deref()?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens
            .values()
            .find(|t| super::constant_time_eq(&hmac(key, &t.token_id), mac))
            .cloned()
    }

    /// Ids of the tokens expired at `now`.
    pub fn expired(&self, now: i64) -> Vec<String> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens
            .values()
            .filter(|t| t.expired(now))
            .map(|t| t.token_id.clone())
            .collect()
    }

    /// Applies a change and persists the result; `false` if it changed nothing.
    pub fn apply(&self, change: TokenChange) -> Result<bool, AuthError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut copy = self.all();
        let applied = apply_change(&mut copy, change);
        if applied {
            self.store(copy)?;
        }
        Ok(applied)
    }

    /// Replaces every token (a cluster node following the metadata log) and persists them.
    pub fn replace(&self, tokens: Tokens) -> Result<(), AuthError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.store(tokens)
    }

    /// The SCRAM credential of a live token for token authentication: its password is the
    /// base64 HMAC, salted and iterated like a user's (Kafka: 4096 iterations). `None` for an
    /// unknown or expired token, or when tokens are disabled.
    pub fn scram_credential(
        &self,
        token_id: &str,
        mech: Mechanism,
        now: i64,
    ) -> Option<(TokenInfo, ScramCredential)> {
        let mac = self.hmac_of(token_id)?;
        let info = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token_id)
            .cloned()?;
        if info.expired(now) {
            return None;
        }
        let key = (token_id.to_string(), mech);
        let mut cache = self.scram.lock().unwrap_or_else(|e| e.into_inner());
        let cred = cache
            .entry(key)
            .or_insert_with(|| {
                let salt = uuid::Uuid::new_v4();
                ScramCredential::from_password(
                    mech,
                    &B64.encode(mac),
                    salt.as_bytes(),
                    MIN_ITERATIONS,
                )
            })
            .clone();
        Some((info, cred))
    }

    /// Writes `copy` durably, then publishes it; a failed write changes nothing.
    fn store(&self, copy: Tokens) -> Result<(), AuthError> {
        let bytes =
            serde_json::to_vec_pretty(&copy).map_err(|e| AuthError::Store(e.to_string()))?;
        super::write_atomically(&self.path, &bytes)
            .map_err(|e| AuthError::Store(format!("{}: {e}", self.path.display())))?;
        self.scram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _), _| copy.contains_key(id));
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = copy;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    fn config() -> TokenConfig {
        TokenConfig {
            secret_key: Some("secret".into()),
            max_lifetime_ms: 7 * DAY,
            expiry_time_ms: DAY,
            check_interval_ms: 3600 * 1000,
        }
    }

    fn alice() -> Principal {
        Principal::user("alice")
    }

    #[test]
    fn hmac_is_hmac_sha512_of_the_id() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac("Jefe", "what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_ne!(hmac("other", "what do ya want for nothing?"), mac);
    }

    #[test]
    fn token_ids_look_like_kafka_uuids() {
        for _ in 0..100 {
            let id = new_token_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }

    #[test]
    fn create_caps_lifetimes_and_checks_renewers() {
        let c = config();
        let t = c
            .plan_create(1000, alice(), alice(), vec![], -1, "id".into())
            .unwrap();
        assert_eq!(t.issue_timestamp_ms, 1000);
        assert_eq!(t.max_timestamp_ms, 1000 + 7 * DAY);
        assert_eq!(t.expiry_timestamp_ms, 1000 + DAY);
        // A shorter max lifetime wins, and expiry never passes the max.
        let t = c
            .plan_create(1000, alice(), alice(), vec![], 5000, "id".into())
            .unwrap();
        assert_eq!((t.max_timestamp_ms, t.expiry_timestamp_ms), (6000, 6000));
        // A longer one is capped.
        let t = c
            .plan_create(0, alice(), alice(), vec![], 30 * DAY, "id".into())
            .unwrap();
        assert_eq!(t.max_timestamp_ms, 7 * DAY);
        let group = Principal {
            kind: "Group".into(),
            name: "g".into(),
        };
        assert_eq!(
            c.plan_create(0, alice(), alice(), vec![group], -1, "id".into()),
            Err(TokenError::InvalidPrincipalType)
        );
        let off = TokenConfig::default();
        assert_eq!(
            off.plan_create(0, alice(), alice(), vec![], -1, "id".into()),
            Err(TokenError::Disabled)
        );
    }

    #[test]
    fn renew_and_expire_rules() {
        let c = config();
        let bob = Principal::user("bob");
        let carol = Principal::user("carol");
        let t = c
            .plan_create(0, alice(), alice(), vec![bob.clone()], 3 * DAY, "t".into())
            .unwrap();
        // Renewers and owners renew; others do not; unknown tokens are not found.
        assert_eq!(
            c.plan_renew(Some(&t), &bob, 10, 100),
            Ok(TokenChange::SetExpiry {
                token_id: "t".into(),
                expiry_timestamp_ms: 110
            })
        );
        assert_eq!(
            c.plan_renew(Some(&t), &alice(), 10, -1),
            Ok(TokenChange::SetExpiry {
                token_id: "t".into(),
                expiry_timestamp_ms: 10 + DAY
            })
        );
        // Never past the max timestamp.
        let renewed = TokenInfo {
            expiry_timestamp_ms: 3 * DAY - 1,
            ..t.clone()
        };
        assert_eq!(
            c.plan_renew(Some(&renewed), &alice(), 2 * DAY + 5, -1),
            Ok(TokenChange::SetExpiry {
                token_id: "t".into(),
                expiry_timestamp_ms: 3 * DAY
            })
        );
        assert_eq!(
            c.plan_renew(Some(&t), &carol, 10, 100),
            Err(TokenError::OwnerMismatch)
        );
        assert_eq!(
            c.plan_renew(None, &alice(), 10, 100),
            Err(TokenError::NotFound)
        );
        // Expired tokens: renewal refused (before the owner check, as Kafka).
        assert_eq!(
            c.plan_renew(Some(&t), &carol, DAY + 1, 100),
            Err(TokenError::Expired)
        );
        // Expire: the owner check comes first; a negative period removes at once.
        assert_eq!(
            c.plan_expire(Some(&t), &carol, 10, -1),
            Err(TokenError::OwnerMismatch)
        );
        assert_eq!(
            c.plan_expire(Some(&t), &bob, 10, -1).unwrap().change,
            TokenChange::Remove {
                token_ids: vec!["t".into()]
            }
        );
        let p = c.plan_expire(Some(&t), &alice(), 10, 50).unwrap();
        assert_eq!(p.expiry_timestamp_ms, 60);
        assert_eq!(
            c.plan_expire(Some(&t), &alice(), DAY + 1, 50),
            Err(TokenError::Expired)
        );
        assert_eq!(
            TokenConfig::default().plan_expire(Some(&t), &alice(), 0, 0),
            Err(TokenError::Disabled)
        );
    }

    #[test]
    fn store_is_durable_finds_by_hmac_and_derives_scram_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        let store = TokenStore::open(dir.path(), c.clone()).unwrap();
        let t = c
            .plan_create(0, alice(), alice(), vec![], -1, new_token_id())
            .unwrap();
        let id = t.token_id.clone();
        assert!(store.apply(TokenChange::Create(t.clone())).unwrap());
        assert!(!store.apply(TokenChange::Create(t.clone())).unwrap());
        let mac = hmac("secret", &id);
        assert_eq!(store.by_hmac(&mac).as_ref(), Some(&t));
        assert_eq!(store.by_hmac(b"nope"), None);
        // The file holds neither the secret nor the HMAC.
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(text.contains(&id));
        assert!(!text.contains("secret"));
        assert!(!text.contains(&B64.encode(&mac)));
        // Reopened: the same token.
        let store = TokenStore::open(dir.path(), c.clone()).unwrap();
        assert_eq!(store.all().get(&id), Some(&t));
        // SCRAM credential: the password is the base64 HMAC.
        let (info, cred) = store.scram_credential(&id, Mechanism::Sha256, 10).unwrap();
        assert_eq!(info.owner, alice());
        let salt = B64.decode(&cred.salt).unwrap();
        let expect =
            ScramCredential::from_password(Mechanism::Sha256, &B64.encode(&mac), &salt, 4096);
        assert_eq!(cred, expect);
        // Expired or unknown: none.
        assert!(store
            .scram_credential(&id, Mechanism::Sha256, DAY + 1)
            .is_none());
        assert!(store
            .scram_credential("unknown", Mechanism::Sha256, 10)
            .is_none());
        assert_eq!(store.expired(DAY + 1), vec![id.clone()]);
        assert!(store
            .apply(TokenChange::SetExpiry {
                token_id: id.clone(),
                expiry_timestamp_ms: 2 * DAY
            })
            .unwrap());
        assert!(store.expired(DAY + 1).is_empty());
        assert!(store
            .apply(TokenChange::Remove {
                token_ids: vec![id.clone()]
            })
            .unwrap());
        assert!(!store
            .apply(TokenChange::SetExpiry {
                token_id: id.clone(),
                expiry_timestamp_ms: 2 * DAY
            })
            .unwrap());
        assert!(TokenStore::open(dir.path(), c).unwrap().all().is_empty());
        // Without a secret nothing authenticates.
        let off = TokenStore::open(dir.path(), TokenConfig::default()).unwrap();
        assert!(off.hmac_of("x").is_none());
        assert!(off.by_hmac(&mac).is_none());
    }
}
