//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802 / RFC 7677), server side, and the credential
//! store. Credentials are kept as Kafka keeps them: salt, iterations, StoredKey = H(ClientKey)
//! and ServerKey, never the password; they live in `<log.dirs>/.esker-config/scram-credentials`
//! (JSON, replaced atomically) and are managed with AlterUserScramCredentials.
//!
//! The exchange is checked strictly: the client-final nonce must be exactly the combined nonce
//! the server sent, the channel binding must echo the GS2 header, and the proof must verify.
//!
//! A client-first message with the extension `tokenauth=true` (KIP-48) names a delegation
//! token id as its user; the credential is then derived from the token's HMAC
//! ([`super::delegation::TokenStore::scram_credential`]) and the exchange ends as the token's
//! owner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::AuthError;

/// The credential file, relative to the log directory.
pub const CREDENTIALS_FILE: &str = ".esker-config/scram-credentials";

/// Iterations Kafka accepts at least (and at most).
pub const MIN_ITERATIONS: i32 = 4096;
/// Upper bound on iterations, as Kafka.
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (wire code 1).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512 (wire code 2).
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// From a SASL mechanism name.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// The ScramMechanism wire code.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// From the ScramMechanism wire code.
    pub fn from_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// HMAC with this mechanism's hash (also used by the client side in `crate::client`).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                // HMAC accepts keys of any length.
                Err(_) => Vec::new(),
            }
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// This mechanism's hash function.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// PBKDF2 with this hash's HMAC, one block (RFC 5802's Hi()).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut block = salt.to_vec();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &block);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }
}

/// What the broker keeps for one user and mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Salt, base64.
    pub salt: String,
    /// StoredKey = H(HMAC(SaltedPassword, "Client Key")), base64.
    pub stored_key: String,
    /// ServerKey = HMAC(SaltedPassword, "Server Key"), base64.
    pub server_key: String,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl ScramCredential {
    /// Derives the stored form from a salted password (what AlterUserScramCredentials sends).
    pub fn from_salted(mech: Mechanism, salt: &[u8], salted: &[u8], iterations: i32) -> Self {
        let client_key = mech.hmac(salted, b"Client Key");
        ScramCredential {
            salt: B64.encode(salt),
            stored_key: B64.encode(mech.hash(&client_key)),
            server_key: B64.encode(mech.hmac(salted, b"Server Key")),
            iterations,
        }
    }

    /// Derives the stored form from a password.
    pub fn from_password(mech: Mechanism, password: &str, salt: &[u8], iterations: i32) -> Self {
        let salted = mech.salted_password(password.as_bytes(), salt, iterations.max(1) as u32);
        Self::from_salted(mech, salt, &salted, iterations)
    }
}

/// Every user's credentials by mechanism.
pub type Users = BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>;

/// Applies SCRAM deletions and upsertions to a set of users; returns, per deletion, whether
/// it removed something (shared by the local store and the cluster's metadata image).
pub fn apply_alterations(
    users: &mut Users,
    deletions: &[(String, Mechanism)],
    upsertions: Vec<(String, Mechanism, ScramCredential)>,
) -> Vec<bool> {
    let mut found = Vec::with_capacity(deletions.len());
    for (user, mech) in deletions {
        let hit = users.get_mut(user).and_then(|m| m.remove(mech)).is_some();
        if users.get(user).is_some_and(|m| m.is_empty()) {
            users.remove(user);
        }
        found.push(hit);
    }
    for (user, mech, cred) in upsertions {
        users.entry(user).or_default().insert(mech, cred);
    }
    found
}

/// The SCRAM credentials of every user, durable in [`CREDENTIALS_FILE`].
pub struct CredentialStore {
    path: PathBuf,
    users: RwLock<Users>,
    write: std::sync::Mutex<()>,
}

impl CredentialStore {
    /// Loads the store of a data directory (empty if the file does not exist).
    pub fn open(log_dir: &Path) -> Result<CredentialStore, AuthError> {
        let path = log_dir.join(CREDENTIALS_FILE);
        let users = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| AuthError::Store(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::new(),
            Err(e) => return Err(AuthError::Store(format!("{}: {e}", path.display()))),
        };
        Ok(CredentialStore {
            path,
            users: RwLock::new(users),
            write: std::sync::Mutex::new(()),
        })
    }

    /// A user's credential for a mechanism.
    pub fn get(&self, user: &str, mech: Mechanism) -> Option<ScramCredential> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(user).and_then(|m| m.get(&mech)).cloned()
    }

    /// Users (all when `names` is `None`) with (mechanism, iterations) of each credential.
    pub fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, i32)>> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users
            .iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter().map(|(k, c)| (*k, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Applies deletions and upsertions and persists the result; an unknown deletion is an
    /// error for that entry only (returned per index of `deletions`).
    pub fn alter(
        &self,
        deletions: &[(String, Mechanism)],
        upsertions: Vec<(String, Mechanism, ScramCredential)>,
    ) -> Result<Vec<bool>, AuthError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut copy = self.users.read().unwrap_or_else(|e| e.into_inner()).clone();
        let found = apply_alterations(&mut copy, deletions, upsertions);
        self.store(copy)?;
        Ok(found)
    }

    /// Every user's credentials.
    pub fn all(&self) -> Users {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces every credential (a cluster node following the metadata log) and persists them.
    pub fn replace(&self, users: Users) -> Result<(), AuthError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.store(users)
    }

    /// Writes `copy` durably, then publishes it; a failed write changes nothing.
    fn store(&self, copy: Users) -> Result<(), AuthError> {
        let bytes =
            serde_json::to_vec_pretty(&copy).map_err(|e| AuthError::Store(e.to_string()))?;
        super::write_atomically(&self.path, &bytes)
            .map_err(|e| AuthError::Store(format!("{}: {e}", self.path.display())))?;
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = copy;
        Ok(())
    }
}

/// Where a SCRAM exchange looks credentials up: users, and delegation tokens for
/// `tokenauth=true` (at `now_ms`, so expired tokens fail).
pub struct Credentials<'a> {
    /// SCRAM users.
    pub users: &'a CredentialStore,
    /// Delegation tokens (`None`: token authentication is refused).
    pub tokens: Option<&'a super::delegation::TokenStore>,
    /// The time tokens are checked against.
    pub now_ms: i64,
}

/// A successful exchange.
#[derive(Debug)]
pub struct ScramDone {
    /// The user name of client-first (a token id with token authentication).
    pub user: String,
    /// The token authenticated with, if any (its owner is the principal).
    pub token: Option<super::delegation::TokenInfo>,
    /// server-final-message.
    pub server_final: Vec<u8>,
}

/// Where a server-side SCRAM exchange stands.
#[derive(Debug)]
// One per connection mid-exchange, boxed in the session (`#[expect]` needs Rust 1.81).
#[allow(clippy::large_enum_variant)]
pub enum ScramServer {
    /// Waiting for client-first.
    Start {
        /// The mechanism negotiated.
        mech: Mechanism,
    },
    /// Server-first sent, waiting for client-final.
    SentFirst {
        /// The mechanism.
        mech: Mechanism,
        /// The user named in client-first.
        user: String,
        /// The user's credential (`None`: unknown user, answered with a fake salt so the
        /// exchange fails only at the proof, as RFC 5802 suggests).
        cred: Option<ScramCredential>,
        /// With token authentication, the token.
        token: Option<Box<super::delegation::TokenInfo>>,
        /// client-first-message-bare.
        client_first_bare: String,
        /// server-first-message.
        server_first: String,
        /// GS2 header of client-first (echoed in the channel binding).
        gs2_header: String,
        /// The combined nonce.
        nonce: String,
    },
    /// Finished (successfully or not).
    Done,
}

fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|p| {
        let mut c = p.chars();
        (c.next() == Some(key) && c.next() == Some('=')).then(|| &p[2..])
    })
}

/// RFC 5802 saslname decoding (`=2C` → `,`, `=3D` → `=`).
fn decode_saslname(s: &str) -> Result<String, AuthError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(AuthError::Failed("invalid user name encoding".into())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramServer {
    /// A new exchange.
    pub fn new(mech: Mechanism) -> ScramServer {
        ScramServer::Start { mech }
    }

    /// Handles client-first against SCRAM users only; returns server-first. `server_nonce` is
    /// appended to the client's nonce (random in production, fixed in tests).
    pub fn client_first(
        &mut self,
        msg: &[u8],
        store: &CredentialStore,
        server_nonce: &str,
    ) -> Result<Vec<u8>, AuthError> {
        let creds = Credentials {
            users: store,
            tokens: None,
            now_ms: 0,
        };
        self.client_first_with(msg, &creds, server_nonce)
    }

    /// Handles client-first against users and, with `tokenauth=true`, delegation tokens.
    pub fn client_first_with(
        &mut self,
        msg: &[u8],
        creds: &Credentials<'_>,
        server_nonce: &str,
    ) -> Result<Vec<u8>, AuthError> {
        let ScramServer::Start { mech } = *self else {
            return Err(AuthError::Failed("unexpected client-first message".into()));
        };
        *self = ScramServer::Done;
        let msg = std::str::from_utf8(msg)
            .map_err(|_| AuthError::Failed("client-first is not UTF-8".into()))?;
        // gs2-header: gs2-cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let cbind = parts.next().unwrap_or_default();
        let authzid = parts.next().unwrap_or_default();
        let bare = parts
            .next()
            .ok_or_else(|| AuthError::Failed("malformed client-first message".into()))?;
        if cbind.starts_with('p') {
            return Err(AuthError::Failed("channel binding is not supported".into()));
        }
        if cbind != "n" && cbind != "y" {
            return Err(AuthError::Failed("malformed GS2 header".into()));
        }
        if bare.starts_with("m=") {
            return Err(AuthError::Failed(
                "mandatory extensions are not supported".into(),
            ));
        }
        let user = decode_saslname(
            attr(bare, 'n').ok_or_else(|| AuthError::Failed("client-first without n=".into()))?,
        )?;
        let client_nonce =
            attr(bare, 'r').ok_or_else(|| AuthError::Failed("client-first without r=".into()))?;
        if client_nonce.is_empty() {
            return Err(AuthError::Failed("empty client nonce".into()));
        }
        if let Some(z) = authzid.strip_prefix("a=") {
            if decode_saslname(z)? != user {
                return Err(AuthError::Failed(
                    "authorization id differs from user".into(),
                ));
            }
        }
        // Extensions follow the nonce as `key=value` (Kafka's ScramExtensions); unknown ones
        // are ignored, as Kafka does.
        let token_auth = bare
            .split(',')
            .skip(2)
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"));
        let (cred, token) = if token_auth {
            let found = creds
                .tokens
                .and_then(|t| t.scram_credential(&user, mech, creds.now_ms));
            match found {
                Some((info, cred)) => (Some(cred), Some(Box::new(info))),
                // Kafka's ScramSaslServer: an unknown (or swept) token fails here.
                None => {
                    return Err(AuthError::Failed(format!(
                        "Token Authentication failed: Invalid tokenId : {user}"
                    )))
                }
            }
        } else {
            (creds.users.get(&user, mech), None)
        };
        let (salt, iterations) = match &cred {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                B64.encode(mech.hash(format!("esker-unknown-user:{user}").as_bytes())),
                MIN_ITERATIONS,
            ),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={salt},i={iterations}");
        let out = server_first.clone().into_bytes();
        *self = ScramServer::SentFirst {
            mech,
            user,
            cred,
            token,
            client_first_bare: bare.to_string(),
            server_first,
            gs2_header: format!("{cbind},{authzid},"),
            nonce,
        };
        Ok(out)
    }

    /// Handles client-final; returns who authenticated and server-final on success.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<ScramDone, AuthError> {
        let state = std::mem::replace(self, ScramServer::Done);
        let ScramServer::SentFirst {
            mech,
            user,
            cred,
            token,
            client_first_bare,
            server_first,
            gs2_header,
            nonce,
        } = state
        else {
            return Err(AuthError::Failed("unexpected client-final message".into()));
        };
        let msg = std::str::from_utf8(msg)
            .map_err(|_| AuthError::Failed("client-final is not UTF-8".into()))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| AuthError::Failed("client-final without proof".into()))?;
        if attr(without_proof, 'c') != Some(B64.encode(gs2_header.as_bytes()).as_str()) {
            return Err(AuthError::Failed("channel binding does not match".into()));
        }
        if attr(without_proof, 'r') != Some(nonce.as_str()) {
            return Err(AuthError::Failed(
                "nonce does not match the server's".into(),
            ));
        }
        let fail = || AuthError::Failed(format!("authentication failed for user {user}"));
        let cred = cred.ok_or_else(fail)?;
        let proof = B64.decode(proof).map_err(|_| fail())?;
        let stored_key = B64.decode(&cred.stored_key).map_err(|_| fail())?;
        let server_key = B64.decode(&cred.server_key).map_err(|_| fail())?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = mech.hmac(&stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(fail());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !super::constant_time_eq(&mech.hash(&client_key), &stored_key) {
            return Err(fail());
        }
        let server_signature = mech.hmac(&server_key, auth_message.as_bytes());
        Ok(ScramDone {
            user,
            token: token.map(|t| *t),
            server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_vector() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(Mechanism::Sha256, "pencil", &salt, 4096);
        store
            .alter(&[], vec![("user".into(), Mechanism::Sha256, cred)])
            .unwrap();
        let mut s = ScramServer::new(Mechanism::Sha256);
        let first = s
            .client_first(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                &store,
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let done = s
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(done.user, "user");
        assert!(done.token.is_none());
        assert_eq!(
            done.server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // Durable and never in clear.
        let text = std::fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(!text.contains("pencil"));
        assert!(CredentialStore::open(dir.path())
            .unwrap()
            .get("user", Mechanism::Sha256)
            .is_some());
    }

    #[test]
    fn wrong_proof_and_repeated_nonce_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        let cred = ScramCredential::from_password(Mechanism::Sha256, "pencil", b"salt", 4096);
        store
            .alter(&[], vec![("user".into(), Mechanism::Sha256, cred)])
            .unwrap();
        let mut s = ScramServer::new(Mechanism::Sha256);
        s.client_first(b"n,,n=user,r=abc", &store, "XYZ").unwrap();
        // A client that sends only its own nonce back (librdkafka < 2.6.1's bug) is refused.
        assert!(s.client_final(b"c=biws,r=abc,p=AAAA").is_err());
        let mut s = ScramServer::new(Mechanism::Sha256);
        s.client_first(b"n,,n=user,r=abc", &store, "XYZ").unwrap();
        let bad = format!("c=biws,r=abcXYZ,p={}", B64.encode([0u8; 32]));
        assert!(s.client_final(bad.as_bytes()).is_err());
        // Unknown users fail at the proof, not earlier.
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.client_first(b"n,,n=nobody,r=abc", &store, "XYZ").is_ok());
        assert!(s.client_final(bad.as_bytes()).is_err());
    }

    /// A whole client side of the exchange, as Kafka's ScramSaslClient runs it.
    fn client_exchange(
        s: &mut ScramServer,
        creds: &Credentials<'_>,
        user: &str,
        password: &str,
        extensions: &str,
    ) -> Result<ScramDone, AuthError> {
        let mech = Mechanism::Sha256;
        let bare = format!("n={user},r=clientnonce{extensions}");
        let first = s.client_first_with(format!("n,,{bare}").as_bytes(), creds, "SRV")?;
        let first = String::from_utf8(first).unwrap();
        let salt = B64.decode(attr(&first, 's').unwrap()).unwrap();
        let iterations: u32 = attr(&first, 'i').unwrap().parse().unwrap();
        let nonce = attr(&first, 'r').unwrap();
        let salted = mech.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored_key = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{bare},{first},{without_proof}");
        let sig = mech.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        s.client_final(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())
    }

    #[test]
    fn token_authentication_uses_the_hmac_and_ends_as_the_owner() {
        use crate::auth::delegation::{self, TokenChange, TokenConfig, TokenStore};
        use crate::auth::Principal;
        let dir = tempfile::tempdir().unwrap();
        let users = CredentialStore::open(dir.path()).unwrap();
        let config = TokenConfig {
            secret_key: Some("k".into()),
            max_lifetime_ms: 1000,
            expiry_time_ms: 500,
            check_interval_ms: 100,
        };
        let tokens = TokenStore::open(dir.path(), config.clone()).unwrap();
        let alice = Principal::user("alice");
        let info = config
            .plan_create(0, alice.clone(), alice, vec![], -1, "tok1".into())
            .unwrap();
        tokens.apply(TokenChange::Create(info)).unwrap();
        let password = B64.encode(delegation::hmac("k", "tok1"));
        let creds = Credentials {
            users: &users,
            tokens: Some(&tokens),
            now_ms: 100,
        };
        let done = client_exchange(
            &mut ScramServer::new(Mechanism::Sha256),
            &creds,
            "tok1",
            &password,
            ",tokenauth=true",
        )
        .unwrap();
        assert_eq!(done.user, "tok1");
        assert_eq!(done.token.unwrap().owner.name, "alice");
        // A wrong HMAC fails at the proof.
        assert!(client_exchange(
            &mut ScramServer::new(Mechanism::Sha256),
            &creds,
            "tok1",
            "wrong",
            ",tokenauth=true",
        )
        .is_err());
        // Without the extension the id is an (unknown) SCRAM user.
        assert!(client_exchange(
            &mut ScramServer::new(Mechanism::Sha256),
            &creds,
            "tok1",
            &password,
            "",
        )
        .is_err());
        // Unknown and expired tokens fail at client-first with Kafka's message.
        let err = client_exchange(
            &mut ScramServer::new(Mechanism::Sha256),
            &creds,
            "nope",
            &password,
            ",tokenauth=true",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Token Authentication failed: Invalid tokenId : nope"
        );
        let later = Credentials {
            users: &users,
            tokens: Some(&tokens),
            now_ms: 501,
        };
        assert!(client_exchange(
            &mut ScramServer::new(Mechanism::Sha256),
            &later,
            "tok1",
            &password,
            ",tokenauth=true",
        )
        .is_err());
    }
}
