//! TLS for the `SSL` and `SASL_SSL` Kafka listeners and the Kinesis HTTPS endpoint: settings
//! (the `ssl.*` keys and their `listener.name.<listener>.ssl.*` overrides), rustls server
//! configurations built from PEM files (ring provider, TLS 1.2 and 1.3), the handshake with its
//! timeout, client-certificate principals, and reloading certificates without a restart.
//!
//! Every listener has its own [`TlsServer`]. The handshake runs on the connection's shard, in its
//! task; a reload task on shard 0 polls the files every `ssl.reload.interval.ms` and swaps in a
//! new configuration when their contents change (new connections use it; open ones keep theirs).
//! A file that does not load keeps the previous configuration and logs a warning.
//!
//! - [`principal`]: RFC 2253 subject DNs and `ssl.principal.mapping.rules`.
//! - [`certs`]: the `esker certs` generator.

pub mod certs;
pub mod principal;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::{Principal, SecurityProtocol};
pub use principal::PrincipalMapper;

/// How long a client has to complete the TLS handshake unless `ssl.handshake.timeout.ms` says
/// otherwise.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys a listener may override with `listener.name.<listener>.<key>`.
pub const LISTENER_KEYS: &[&str] = &[
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.ca.location",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
];

/// TLS failures: loading certificates (start-up, reload) and handshakes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The configuration key naming the file.
        key: String,
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PEM file that holds no usable certificate or key, or a key that does not match.
    #[error("{key}: {path}: {reason}")]
    Invalid {
        /// The configuration key naming the file.
        key: String,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("listener {listener}: {reason}")]
    Build {
        /// The listener.
        listener: String,
        /// rustls' message.
        reason: String,
    },
    /// The handshake failed (not TLS, wrong or missing client certificate, ...).
    #[error("tls handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("tls handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    /// The broker is shutting down.
    #[error("shutting down")]
    Stopped,
    /// The client certificate's subject could not be read.
    #[error(transparent)]
    Subject(#[from] principal::SubjectError),
    /// No `ssl.principal.mapping.rules` rule applies to the certificate's DN.
    #[error("no ssl.principal.mapping.rules rule applies to `{0}`")]
    NoMatchingRule(String),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    None,
    /// A certificate is asked for; a client without one is `User:ANONYMOUS`.
    Requested,
    /// A client without a certificate signed by `ssl.ca.location` fails the handshake.
    Required,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
        match s.trim() {
            "none" | "" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// A PEM file and the key that named it (for error messages).
#[derive(Debug, Clone)]
pub struct PemFile {
    /// `ssl.certificate.location` or `listener.name.x.ssl.certificate.location`, ...
    pub key: String,
    /// The path.
    pub path: PathBuf,
}

/// The resolved TLS settings of one listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The listener's name, for logs.
    pub listener: String,
    /// Certificate chain, leaf first.
    pub certificate: PemFile,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PemFile,
    /// CA certificates that sign client certificates.
    pub ca: Option<PemFile>,
    /// Client certificates: none, requested or required.
    pub client_auth: ClientAuth,
    /// TLS 1.2 and/or 1.3.
    pub protocols: Vec<&'static SupportedProtocolVersion>,
    /// Certificate DN → principal name.
    pub mapper: Arc<PrincipalMapper>,
    /// ALPN protocols offered (Kinesis: h2, http/1.1; Kafka: none).
    pub alpn: Vec<Vec<u8>>,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
}

/// A setting that is missing or invalid; `key` is the key to fix.
#[derive(Debug, Clone)]
pub struct SettingError {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// The `ssl.*` keys as configured: broker-wide values and per-listener overrides.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// `ssl.*` → value (defaults included).
    pub base: BTreeMap<String, String>,
    /// Listener name (upper case) → `ssl.*` → value, from `listener.name.<listener>.ssl.*`.
    pub overrides: BTreeMap<String, BTreeMap<String, String>>,
    /// `ssl.reload.interval.ms` (zero: never reload).
    pub reload_interval: Duration,
    /// `ssl.handshake.timeout.ms`.
    pub handshake_timeout: Duration,
    /// `kinesis.ssl.enabled`.
    pub kinesis_enabled: bool,
}

impl TlsConfig {
    /// Splits `listener.name.<listener>.<ssl key>` into the listener (upper case) and the key.
    pub fn listener_key(key: &str) -> Option<(String, &'static str)> {
        let rest = key.strip_prefix("listener.name.")?;
        let (name, suffix) = rest.split_once('.')?;
        let def = LISTENER_KEYS.iter().find(|k| **k == suffix)?;
        (!name.is_empty()).then(|| (name.to_ascii_uppercase(), *def))
    }

    /// The value of `key` for a listener, and the key it came from.
    fn lookup(&self, listener: Option<&str>, key: &str) -> (String, String) {
        if let Some(l) = listener {
            if let Some(v) = self.overrides.get(l).and_then(|m| m.get(key)) {
                return (
                    v.clone(),
                    format!("listener.name.{}.{key}", l.to_ascii_lowercase()),
                );
            }
        }
        (
            self.base.get(key).cloned().unwrap_or_default(),
            key.to_string(),
        )
    }

    /// The settings of a TLS listener. On `SASL_SSL` listeners client certificates are asked
    /// for only if `listener.name.<listener>.ssl.client.auth` says so (KIP-684).
    pub fn for_listener(
        &self,
        listener: &str,
        protocol: SecurityProtocol,
    ) -> Result<TlsSettings, SettingError> {
        let client_auth = if protocol == SecurityProtocol::SaslSsl {
            self.overrides
                .get(listener)
                .and_then(|m| m.get("ssl.client.auth"))
                .map(|v| {
                    (
                        v.clone(),
                        format!(
                            "listener.name.{}.ssl.client.auth",
                            listener.to_ascii_lowercase()
                        ),
                    )
                })
                .unwrap_or_else(|| ("none".into(), "ssl.client.auth".into()))
        } else {
            self.lookup(Some(listener), "ssl.client.auth")
        };
        self.settings(Some(listener), client_auth, Vec::new())
    }

    /// The settings of the Kinesis HTTPS endpoint: the broker-wide certificate and key, no
    /// client certificates (requests are authenticated by SigV4).
    pub fn for_kinesis(&self) -> Result<TlsSettings, SettingError> {
        self.settings(
            None,
            ("none".into(), "ssl.client.auth".into()),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        )
    }

    /// The settings of the web console's `console.listener`: the broker-wide certificate, key
    /// and CA, with client certificates as `console.ssl.client.auth` says (mTLS).
    pub fn for_console(&self, client_auth: &str) -> Result<TlsSettings, SettingError> {
        let mut s = self.settings_for(
            None,
            "console.listener",
            (client_auth.into(), "console.ssl.client.auth".into()),
            vec![b"http/1.1".to_vec()],
        )?;
        s.listener = "console".into();
        Ok(s)
    }

    fn settings(
        &self,
        listener: Option<&str>,
        auth: (String, String),
        alpn: Vec<Vec<u8>>,
    ) -> Result<TlsSettings, SettingError> {
        self.settings_for(listener, "the Kinesis endpoint", auth, alpn)
    }

    fn settings_for(
        &self,
        listener: Option<&str>,
        unnamed: &str,
        (auth_value, auth_key): (String, String),
        alpn: Vec<Vec<u8>>,
    ) -> Result<TlsSettings, SettingError> {
        let who = listener.map_or_else(|| unnamed.to_string(), |l| l.to_string());
        let file = |key: &str| -> Option<PemFile> {
            let (value, key) = self.lookup(listener, key);
            (!value.trim().is_empty()).then(|| PemFile {
                key,
                path: PathBuf::from(value.trim()),
            })
        };
        let required = |key: &str| -> Result<PemFile, SettingError> {
            file(key).ok_or_else(|| {
                let (value, key) = self.lookup(listener, key);
                SettingError {
                    key,
                    value,
                    reason: format!("a PEM file is required for TLS on {who}"),
                }
            })
        };
        let certificate = required("ssl.certificate.location")?;
        let key = required("ssl.key.location")?;
        let ca = file("ssl.ca.location");
        let client_auth = ClientAuth::parse(&auth_value).ok_or_else(|| SettingError {
            key: auth_key.clone(),
            value: auth_value.clone(),
            reason: "must be one of required, requested, none".into(),
        })?;
        if client_auth != ClientAuth::None && ca.is_none() {
            let (value, key) = self.lookup(listener, "ssl.ca.location");
            return Err(SettingError {
                key,
                value,
                reason: format!(
                    "{auth_key}={auth_value} needs the CA that signs client certificates"
                ),
            });
        }
        let (value, key_name) = self.lookup(listener, "ssl.enabled.protocols");
        let protocols = parse_protocols(&value).map_err(|reason| SettingError {
            key: key_name,
            value,
            reason,
        })?;
        let (value, key_name) = self.lookup(listener, "ssl.principal.mapping.rules");
        let mapper = PrincipalMapper::parse(&value).map_err(|e| SettingError {
            key: key_name,
            value,
            reason: e.reason,
        })?;
        Ok(TlsSettings {
            listener: listener.unwrap_or("kinesis").to_string(),
            certificate,
            key,
            ca,
            client_auth,
            protocols,
            mapper: Arc::new(mapper),
            alpn,
            handshake_timeout: if self.handshake_timeout.is_zero() {
                HANDSHAKE_TIMEOUT
            } else {
                self.handshake_timeout
            },
        })
    }
}

/// Parses `ssl.enabled.protocols` (`TLSv1.2,TLSv1.3`).
pub fn parse_protocols(s: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match p {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            other => {
                return Err(format!(
                    "`{other}` is not supported (TLSv1.2 and TLSv1.3 are)"
                ))
            }
        };
        if !out.iter().any(|o| o.version == v.version) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err("at least one of TLSv1.2, TLSv1.3 is required".into());
    }
    Ok(out)
}

/// Reads every certificate of a PEM text.
pub fn read_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))
}

/// The contents of a listener's PEM files (certificate, key, CA); `None` when unreadable.
type FileContents = Vec<Option<Vec<u8>>>;

/// A listener's TLS acceptor, reloadable.
pub struct TlsServer {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// The contents last loaded or last tried (so a broken file warns once, not every poll).
    seen: Mutex<FileContents>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("listener", &self.settings.listener)
            .finish()
    }
}

impl TlsServer {
    /// Loads the certificate, key and CA; fails with an error naming the key to fix.
    pub fn load(settings: TlsSettings) -> Result<TlsServer, TlsError> {
        let files = read_files(&settings)?;
        let config = build(&settings, &files)?;
        tracing::info!(
            listener = %settings.listener,
            certificate = %settings.certificate.path.display(),
            client_auth = ?settings.client_auth,
            "tls enabled"
        );
        Ok(TlsServer {
            settings,
            current: RwLock::new(config),
            seen: Mutex::new(files.into_iter().map(Some).collect()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the files; when their contents changed, builds and swaps in a new
    /// configuration. `Some(Ok)` after a reload, `Some(Err)` when the new files do not load
    /// (the previous configuration stays), `None` when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let contents: FileContents = self.paths().map(|p| std::fs::read(&p.path).ok()).collect();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == contents {
                return None;
            }
            seen.clone_from(&contents);
        }
        let result = read_files(&self.settings).and_then(|files| build(&self.settings, &files));
        Some(result.map(|config| {
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        }))
    }

    fn paths(&self) -> impl Iterator<Item = &PemFile> {
        [&self.settings.certificate, &self.settings.key]
            .into_iter()
            .chain(self.settings.ca.as_ref())
    }

    /// Runs the server side of the handshake, within `ssl.handshake.timeout.ms` and until
    /// shutdown.
    pub async fn accept(
        &self,
        stream: TcpStream,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        let limit = self.settings.handshake_timeout;
        tokio::select! {
            r = tokio::time::timeout(limit, acceptor.accept(stream)) => match r {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(TlsError::Handshake(e)),
                Err(_) => Err(TlsError::HandshakeTimeout(limit)),
            },
            _ = stop.wait_for(|s| *s) => Err(TlsError::Stopped),
        }
    }

    /// The principal of a client certificate, mapped by `ssl.principal.mapping.rules`;
    /// `None` when the client sent no certificate.
    pub fn peer_principal(
        &self,
        conn: &rustls::ServerConnection,
    ) -> Result<Option<Principal>, TlsError> {
        let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
            return Ok(None);
        };
        let dn = principal::subject_dn(leaf)?;
        match self.settings.mapper.map(&dn) {
            Some(name) => Ok(Some(Principal::user(&name))),
            None => Err(TlsError::NoMatchingRule(dn)),
        }
    }
}

/// Reads the certificate, key and CA files (in that order).
fn read_files(settings: &TlsSettings) -> Result<Vec<Vec<u8>>, TlsError> {
    [&settings.certificate, &settings.key]
        .into_iter()
        .chain(settings.ca.as_ref())
        .map(|f| {
            std::fs::read(&f.path).map_err(|source| TlsError::Read {
                key: f.key.clone(),
                path: f.path.display().to_string(),
                source,
            })
        })
        .collect()
}

/// Builds a rustls server configuration from the files' contents.
fn build(settings: &TlsSettings, files: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let invalid = |f: &PemFile, reason: String| TlsError::Invalid {
        key: f.key.clone(),
        path: f.path.display().to_string(),
        reason,
    };
    let build_err = |e: rustls::Error| TlsError::Build {
        listener: settings.listener.clone(),
        reason: e.to_string(),
    };
    let (cert_pem, key_pem) = match files {
        [c, k, ..] => (c, k),
        _ => {
            return Err(TlsError::Build {
                listener: settings.listener.clone(),
                reason: "certificate and key files missing".into(),
            })
        }
    };
    let chain = read_certs(cert_pem).map_err(|r| invalid(&settings.certificate, r))?;
    if chain.is_empty() {
        return Err(invalid(
            &settings.certificate,
            "no CERTIFICATE block found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| invalid(&settings.key, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.protocols)
        .map_err(build_err)?;
    let verifier = match (settings.client_auth, &settings.ca, files.get(2)) {
        (ClientAuth::None, _, _) => WebPkiClientVerifier::no_client_auth(),
        (auth, Some(ca), Some(ca_pem)) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca_pem).map_err(|r| invalid(ca, r))? {
                roots
                    .add(c)
                    .map_err(|e| invalid(ca, format!("unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(invalid(ca, "no CERTIFICATE block found".into()));
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let b = if auth == ClientAuth::Requested {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| invalid(ca, e.to_string()))?
        }
        _ => {
            return Err(TlsError::Build {
                listener: settings.listener.clone(),
                reason: "client authentication needs ssl.ca.location".into(),
            })
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            invalid(
                &settings.key,
                format!("does not go with the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = settings.alpn.clone();
    Ok(Arc::new(config))
}

/// Polls every server's files each `interval` and reloads those that changed, until shutdown.
/// Each attempt is reported to `on_reload(listener, loaded)` (the broker counts them).
pub async fn reload_loop(
    servers: Vec<Arc<TlsServer>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_reload: impl Fn(&str, bool) + Send + 'static,
) {
    if servers.is_empty() || interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for s in &servers {
            // File reads and key parsing are small and quick; no need to leave the runtime.
            match s.reload_if_changed() {
                None => {}
                Some(Ok(())) => {
                    tracing::info!(
                        listener = %s.settings.listener,
                        certificate = %s.settings.certificate.path.display(),
                        "tls certificates reloaded; new connections use them"
                    );
                    on_reload(&s.settings.listener, true);
                }
                Some(Err(e)) => {
                    tracing::warn!(
                        listener = %s.settings.listener,
                        error = %e,
                        "tls certificates changed but do not load; keeping the previous ones"
                    );
                    on_reload(&s.settings.listener, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)], overrides: &[(&str, &str, &str)]) -> TlsConfig {
        let mut c = TlsConfig::default();
        for (k, v) in [
            ("ssl.client.auth", "none"),
            ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
            ("ssl.principal.mapping.rules", "DEFAULT"),
        ]
        .iter()
        .chain(pairs)
        {
            c.base.insert(k.to_string(), v.to_string());
        }
        for (l, k, v) in overrides {
            c.overrides
                .entry(l.to_string())
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
        c
    }

    #[test]
    fn missing_files_name_the_key() {
        let c = config(&[("ssl.key.location", "k.pem")], &[]);
        let e = c
            .for_listener("SSL", SecurityProtocol::Ssl)
            .expect_err("no cert");
        assert_eq!(e.key, "ssl.certificate.location");
        let c = config(
            &[
                ("ssl.certificate.location", "c.pem"),
                ("ssl.key.location", "k.pem"),
                ("ssl.client.auth", "required"),
            ],
            &[],
        );
        let e = c
            .for_listener("SSL", SecurityProtocol::Ssl)
            .expect_err("no ca");
        assert_eq!(e.key, "ssl.ca.location");
    }

    #[test]
    fn listener_overrides_and_kip_684() {
        let c = config(
            &[
                ("ssl.certificate.location", "c.pem"),
                ("ssl.key.location", "k.pem"),
                ("ssl.ca.location", "ca.pem"),
                ("ssl.client.auth", "required"),
            ],
            &[("INTERNAL", "ssl.certificate.location", "internal.pem")],
        );
        let s = c
            .for_listener("INTERNAL", SecurityProtocol::Ssl)
            .expect("ok");
        assert_eq!(s.certificate.path, PathBuf::from("internal.pem"));
        assert_eq!(
            s.certificate.key,
            "listener.name.internal.ssl.certificate.location"
        );
        assert_eq!(s.client_auth, ClientAuth::Required);
        // SASL_SSL ignores the broker-wide ssl.client.auth...
        let s = c
            .for_listener("SASL_SSL", SecurityProtocol::SaslSsl)
            .expect("ok");
        assert_eq!(s.client_auth, ClientAuth::None);
        // ... but honours the listener's own.
        let c2 = config(
            &[
                ("ssl.certificate.location", "c.pem"),
                ("ssl.key.location", "k.pem"),
                ("ssl.ca.location", "ca.pem"),
            ],
            &[("SASL_SSL", "ssl.client.auth", "requested")],
        );
        let s = c2
            .for_listener("SASL_SSL", SecurityProtocol::SaslSsl)
            .expect("ok");
        assert_eq!(s.client_auth, ClientAuth::Requested);
    }

    #[test]
    fn listener_key_syntax() {
        assert_eq!(
            TlsConfig::listener_key("listener.name.internal.ssl.client.auth"),
            Some(("INTERNAL".into(), "ssl.client.auth"))
        );
        assert_eq!(TlsConfig::listener_key("listener.name.x.log.dirs"), None);
        assert_eq!(TlsConfig::listener_key("ssl.client.auth"), None);
    }

    #[test]
    fn protocols() {
        assert_eq!(parse_protocols("TLSv1.3").expect("ok").len(), 1);
        assert_eq!(parse_protocols("TLSv1.2, TLSv1.3").expect("ok").len(), 2);
        assert!(parse_protocols("TLSv1.1").is_err());
        assert!(parse_protocols("").is_err());
    }
}
