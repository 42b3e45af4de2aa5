//! Security: who a connection is and what it may do. Owns principals, the per-connection SASL
//! state machine (PLAIN against `sasl.plain.users`, SCRAM-SHA-256/512 against the salted
//! credential store), and the ACL authorizer. It runs wherever its callers run (the
//! connection's shard); the stores are read-mostly behind `RwLock`s.
//!
//! - [`acl`]: resource types, patterns, operations, bindings and filters (Kafka's wire codes).
//! - [`authorizer`]: StandardAuthorizer semantics, ACLs durable in `.esker-config/acls`.
//! - [`scram`]: the SCRAM exchange and the credential store.
//! - [`delegation`]: delegation tokens (KIP-48), their rules and their store; SCRAM with
//!   `tokenauth=true` authenticates as a token's owner.

pub mod acl;
pub mod authorizer;
pub mod delegation;
pub mod scram;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use acl::{Operation, ResourceType};
pub use authorizer::{Authorizer, AuthorizerConfig};

/// Security errors.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An ACL or filter with an invalid field.
    #[error("invalid acl: {0}")]
    InvalidAcl(String),
    /// A SASL exchange that failed (bad credentials, malformed message).
    #[error("{0}")]
    Failed(String),
    /// The ACL or credential file could not be read or written.
    #[error("security store: {0}")]
    Store(String),
}

/// An authenticated identity, `Type:name` (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// `User` for every principal the broker builds.
    pub kind: String,
    /// The name.
    pub name: String,
}

impl Principal {
    /// `User:<name>`.
    pub fn user(name: &str) -> Principal {
        Principal {
            kind: "User".into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of unauthenticated connections.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// SASL without TLS.
    SaslPlaintext,
    /// TLS; the principal comes from the client certificate, if any.
    Ssl,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// From Kafka's name.
    pub fn from_name(s: &str) -> Option<SecurityProtocol> {
        match s {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Whether connections run TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL first.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A bound listener as connections see it: its name, protocol and what Metadata advertises.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// Listener name (`PLAINTEXT`, `CLIENT`, ...).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Host and port advertised to clients that connected through it.
    pub advertised: (String, i32),
}

/// The SASL mechanisms this broker implements.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Security settings from the broker configuration.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// `listener.security.protocol.map`: listener name → protocol.
    pub protocol_map: BTreeMap<String, String>,
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<String>,
    /// `sasl.plain.users`: user → password.
    pub plain_users: BTreeMap<String, String>,
    /// The authorizer keys.
    pub authorizer: AuthorizerConfig,
    /// `connections.max.reauth.ms` (KIP-152): SASL session lifetime, 0 = unlimited.
    pub reauth_ms: i64,
    /// The `ssl.*` keys (TLS listeners and Kinesis HTTPS).
    pub tls: crate::tls::TlsConfig,
    /// The `delegation.token.*` keys.
    pub tokens: delegation::TokenConfig,
}

impl SecurityConfig {
    /// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
    pub fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, String>, String> {
        let mut m = BTreeMap::new();
        for e in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, proto) = e
                .split_once(':')
                .ok_or_else(|| format!("`{e}` is not NAME:PROTOCOL"))?;
            let proto = proto.trim().to_ascii_uppercase();
            if SecurityProtocol::from_name(&proto).is_none() {
                return Err(format!("unknown security protocol `{proto}`"));
            }
            m.insert(name.trim().to_ascii_uppercase(), proto);
        }
        Ok(m)
    }

    /// Parses `sasl.enabled.mechanisms`.
    pub fn parse_mechanisms(s: &str) -> Result<Vec<String>, String> {
        let v: Vec<String> = s
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
        if let Some(bad) = v.iter().find(|m| !MECHANISMS.contains(&m.as_str())) {
            return Err(format!(
                "mechanism `{bad}` is not supported (supported: {})",
                MECHANISMS.join(", ")
            ));
        }
        Ok(v)
    }

    /// Parses `sasl.plain.users` (`user:password,...`; a password may contain `:`).
    pub fn parse_plain_users(s: &str) -> Result<BTreeMap<String, String>, String> {
        let mut m = BTreeMap::new();
        for e in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (u, p) = e
                .split_once(':')
                .ok_or_else(|| "each entry must be user:password".to_string())?;
            if u.is_empty() {
                return Err("empty user name".into());
            }
            m.insert(u.to_string(), p.to_string());
        }
        Ok(m)
    }

    /// Parses `super.users` (`User:a;User:b`, Kafka's separator; commas accepted too).
    pub fn parse_super_users(s: &str) -> Result<Vec<String>, String> {
        let v: Vec<String> = s
            .split([';', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = v.iter().find(|p| !p.contains(':')) {
            return Err(format!("`{bad}` is not a principal such as User:admin"));
        }
        Ok(v)
    }

    /// The protocol of a listener name: the map's entry, else the name itself if it is a
    /// protocol.
    pub fn protocol_of(&self, listener: &str) -> Result<SecurityProtocol, String> {
        let p = self
            .protocol_map
            .get(listener)
            .map(String::as_str)
            .unwrap_or(listener);
        SecurityProtocol::from_name(p).ok_or_else(|| {
            format!("listener `{listener}` has no entry in listener.security.protocol.map")
        })
    }
}

/// The broker's security state: settings, authorizer and SCRAM credentials.
pub struct Security {
    /// The settings.
    pub config: SecurityConfig,
    /// The ACL authorizer (enforcing only when enabled).
    pub authorizer: Authorizer,
    /// SCRAM credentials.
    pub credentials: scram::CredentialStore,
    /// Delegation tokens.
    pub tokens: delegation::TokenStore,
    /// Successful KIP-152 re-authentications since start.
    pub reauthentications: std::sync::atomic::AtomicU64,
}

impl Security {
    /// Loads the ACLs and credentials of a data directory.
    pub fn open(log_dir: &Path, config: SecurityConfig) -> Result<Security, AuthError> {
        Ok(Security {
            authorizer: Authorizer::open(log_dir, config.authorizer.clone())?,
            credentials: scram::CredentialStore::open(log_dir)?,
            tokens: delegation::TokenStore::open(log_dir, config.tokens.clone())?,
            reauthentications: Default::default(),
            config,
        })
    }

    fn check_plain(&self, token: &[u8]) -> Result<String, AuthError> {
        let fail = || AuthError::Failed("invalid PLAIN message".to_string());
        let mut parts = token.split(|b| *b == 0);
        let authzid = parts.next().ok_or_else(fail)?;
        let user = parts.next().ok_or_else(fail)?;
        let pass = parts.next().ok_or_else(fail)?;
        if parts.next().is_some() {
            return Err(fail());
        }
        let user = std::str::from_utf8(user).map_err(|_| fail())?;
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(AuthError::Failed(
                "authorization id differs from user".into(),
            ));
        }
        match self.config.plain_users.get(user) {
            Some(p) if constant_time_eq(p.as_bytes(), pass) => Ok(user.to_string()),
            _ => Err(AuthError::Failed(format!(
                "invalid username or password for user {user}"
            ))),
        }
    }
}

/// Where a connection's authentication stands.
#[derive(Debug)]
enum SaslState {
    /// A SASL listener before SaslHandshake.
    AwaitHandshake,
    /// Handshake done for PLAIN.
    Plain,
    /// Handshake done for SCRAM (exchange in progress).
    Scram(Box<scram::ScramServer>),
    /// Authenticated, or a listener without SASL.
    Done,
}

/// Per-connection security state: the listener, the peer, the principal and SASL progress.
#[derive(Debug)]
pub struct Session {
    /// The listener the connection came through.
    pub listener: Arc<ListenerInfo>,
    /// Peer IP (ACL host matching).
    pub ip: Arc<str>,
    /// The principal (`User:ANONYMOUS` until SASL succeeds).
    pub principal: Arc<Principal>,
    sasl: SaslState,
    /// Set when the connection must close once the current response is written.
    pub close_after_response: bool,
    /// The mechanism of the last successful SASL authentication.
    mechanism: Option<String>,
    /// When the SASL session ends (`connections.max.reauth.ms`), if it does.
    expires_at: Option<std::time::Instant>,
    /// A KIP-152 re-authentication is in progress: the principal it must end with.
    reauthenticating: Option<Arc<Principal>>,
    /// Authenticated with a delegation token (SCRAM `tokenauth=true`): such connections may
    /// not create, renew, expire or describe tokens.
    token_authenticated: bool,
    /// Client software name and version from the connection's ApiVersions (v3+), KIP-511.
    pub client_software: Option<(String, String)>,
}

/// What a SaslAuthenticate step answers.
pub type SaslStep = Result<Vec<u8>, AuthError>;

impl Session {
    /// A new connection on a listener.
    pub fn new(listener: Arc<ListenerInfo>, ip: String) -> Session {
        let sasl = if listener.protocol.sasl() {
            SaslState::AwaitHandshake
        } else {
            SaslState::Done
        };
        Session {
            listener,
            ip: ip.into(),
            principal: Arc::new(Principal::anonymous()),
            sasl,
            close_after_response: false,
            mechanism: None,
            expires_at: None,
            reauthenticating: None,
            token_authenticated: false,
            client_software: None,
        }
    }

    /// The identity requests of this connection are authorized as.
    pub fn access(&self) -> crate::kafka::Access {
        crate::kafka::Access {
            principal: self.principal.clone(),
            ip: self.ip.clone(),
            listener: self.listener.clone(),
            token_authenticated: self.token_authenticated,
        }
    }

    /// Whether the connection authenticated with a delegation token.
    pub fn token_authenticated(&self) -> bool {
        self.token_authenticated
    }

    /// Whether the connection may send ordinary requests (during a re-authentication it
    /// keeps the identity it had).
    pub fn authenticated(&self) -> bool {
        matches!(self.sasl, SaslState::Done) || self.reauthenticating.is_some()
    }

    /// Whether the SASL exchange is complete (not in the middle of one).
    pub fn exchange_complete(&self) -> bool {
        matches!(self.sasl, SaslState::Done)
    }

    /// Whether the SASL session has ended (KIP-152): only SaslHandshake, SaslAuthenticate and
    /// ApiVersions may follow; anything else closes the connection.
    pub fn expired(&self) -> bool {
        self.expires_at
            .is_some_and(|t| std::time::Instant::now() >= t)
    }

    /// What SaslAuthenticate v1+ reports as `session_lifetime_ms`: the time left, 0 if the
    /// session does not expire.
    pub fn session_lifetime_ms(&self) -> i64 {
        self.expires_at.map_or(0, |t| {
            (t.saturating_duration_since(std::time::Instant::now())
                .as_millis() as i64)
                .max(1)
        })
    }

    /// Whether a SaslHandshake is acceptable now: before authenticating, or to
    /// re-authenticate (KIP-152, when `connections.max.reauth.ms` is set) once authenticated.
    pub fn awaiting_handshake(&self, sec: &Security) -> bool {
        match self.sasl {
            SaslState::AwaitHandshake => true,
            // A token session ends with the token (KIP-48), so it may re-authenticate too.
            SaslState::Done => {
                self.mechanism.is_some() && (sec.config.reauth_ms > 0 || self.token_authenticated)
            }
            _ => false,
        }
    }

    /// A re-authentication handshake naming another mechanism than the session's (which
    /// KIP-152 forbids), if this is one.
    pub fn reauth_mechanism_change(&self, mechanism: &str) -> Option<String> {
        match (&self.sasl, &self.mechanism) {
            (SaslState::Done, Some(m)) if m != mechanism => Some(m.clone()),
            _ => None,
        }
    }

    /// Whether a SaslAuthenticate is acceptable now.
    pub fn awaiting_authenticate(&self) -> bool {
        matches!(self.sasl, SaslState::Plain | SaslState::Scram(_))
    }

    /// SaslHandshake: selects a mechanism. `Err` carries the enabled list.
    pub fn handshake(&mut self, sec: &Security, mechanism: &str) -> Result<(), Vec<String>> {
        let enabled = &sec.config.mechanisms;
        if !self.awaiting_handshake(sec) || !enabled.iter().any(|m| m == mechanism) {
            return Err(enabled.clone());
        }
        if matches!(self.sasl, SaslState::Done) {
            self.reauthenticating = Some(self.principal.clone());
        }
        self.mechanism = Some(mechanism.to_string());
        self.sasl = match scram::Mechanism::from_name(mechanism) {
            Some(m) => SaslState::Scram(Box::new(scram::ScramServer::new(m))),
            None => SaslState::Plain,
        };
        Ok(())
    }

    /// One SaslAuthenticate step. On failure the connection is unauthenticated and the caller
    /// closes it after answering.
    pub fn authenticate(&mut self, sec: &Security, token: &[u8]) -> SaslStep {
        let step = self.step(sec, token);
        if step.is_err() {
            // A failed re-authentication loses the identity too.
            self.reauthenticating = None;
            self.principal = Arc::new(Principal::anonymous());
        }
        step
    }

    fn step(&mut self, sec: &Security, token: &[u8]) -> SaslStep {
        match std::mem::replace(&mut self.sasl, SaslState::AwaitHandshake) {
            SaslState::Plain => {
                let user = sec.check_plain(token)?;
                self.finish(sec, &user, None)?;
                Ok(Vec::new())
            }
            SaslState::Scram(mut server) => match *server {
                scram::ScramServer::Start { .. } => {
                    let nonce = format!("{}", uuid::Uuid::new_v4().simple());
                    let creds = scram::Credentials {
                        users: &sec.credentials,
                        tokens: Some(&sec.tokens),
                        now_ms: now_ms(),
                    };
                    let out = server.client_first_with(token, &creds, &nonce)?;
                    self.sasl = SaslState::Scram(server);
                    Ok(out)
                }
                _ => {
                    let done = server.client_final(token)?;
                    self.finish(sec, &done.user, done.token.as_ref())?;
                    Ok(done.server_final)
                }
            },
            other => {
                self.sasl = other;
                Err(AuthError::Failed(
                    "unexpected SaslAuthenticate request".into(),
                ))
            }
        }
    }

    /// Ends a successful exchange: the principal, and when the session ends. A
    /// re-authentication must keep the principal (KIP-152). With a delegation token the
    /// principal is the token's owner and the session ends no later than the token expires.
    fn finish(
        &mut self,
        sec: &Security,
        user: &str,
        token: Option<&delegation::TokenInfo>,
    ) -> Result<(), AuthError> {
        let principal = match token {
            Some(t) => Principal::user(&t.owner.name),
            None => Principal::user(user),
        };
        if let Some(previous) = self.reauthenticating.take() {
            if *previous != principal {
                return Err(AuthError::Failed(format!(
                    "cannot change principals during re-authentication from {previous} to {principal}"
                )));
            }
            sec.reauthentications
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%principal, ip = %self.ip, "re-authenticated");
        } else {
            tracing::debug!(%principal, ip = %self.ip, "authenticated");
        }
        self.principal = Arc::new(principal);
        self.sasl = SaslState::Done;
        self.token_authenticated = token.is_some();
        let now = std::time::Instant::now();
        let reauth = (sec.config.reauth_ms > 0)
            .then(|| now + std::time::Duration::from_millis(sec.config.reauth_ms as u64));
        // KIP-48 / KIP-368: a token's expiry bounds the session.
        let token_end = token.map(|t| {
            let left = t.expiry_timestamp_ms.saturating_sub(now_ms()).max(0);
            now + std::time::Duration::from_millis(left as u64)
        });
        self.expires_at = match (reauth, token_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (token timestamps).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file durably: tmp file, fsync, rename, directory fsync.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
