//! Connection settings of the admin client, read from kcat-style flags: `-b host:port,..`,
//! `-X key=value` with librdkafka's property names, and `-F client.properties` with the Java
//! client's names (only the PEM forms of the TLS stores).

use std::path::PathBuf;
use std::time::Duration;

use super::ClientError;

/// How the client talks to the listeners (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Plain TCP.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Result<Self, ClientError> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(ClientError::Settings(format!(
                "security.protocol `{s}`: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ))),
        }
    }

    /// True when the connection is wrapped in TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// True when the connection authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// A SASL mechanism the client implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// SCRAM-SHA-256 (RFC 5802, 7677).
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    fn parse(s: &str) -> Result<Self, ClientError> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(ClientError::Settings(format!(
                "sasl.mechanism `{s}` is not supported: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ))),
        }
    }

    /// The mechanism's name in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Everything needed to open an authenticated connection.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `host:port` of the bootstrap brokers, tried in order.
    pub bootstrap: Vec<String>,
    /// The listener's security protocol.
    pub security: SecurityProtocol,
    /// SASL mechanism (PLAIN when unset).
    pub mechanism: SaslMechanism,
    /// SASL user name.
    pub username: Option<String>,
    /// SASL password.
    pub password: Option<String>,
    /// CA certificates (PEM) that sign the brokers' certificates.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM, unencrypted) for mutual TLS.
    pub key: Option<PathBuf>,
    /// Sent as the request header's client id.
    pub client_id: String,
    /// Deadline of one request (connect, send, answer).
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            bootstrap: vec!["localhost:9092".to_string()],
            security: SecurityProtocol::Plaintext,
            mechanism: SaslMechanism::Plain,
            username: None,
            password: None,
            ca: None,
            cert: None,
            key: None,
            client_id: "esker-cli".to_string(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Parses a Java-style properties text into key/value pairs (`#`/`!` comments, `=` or `:`).
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // A trailing backslash continues the value on the next line (sasl.jaas.config is
        // often written that way).
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']);
        match split {
            Some(i) => out.push((
                entry[..i].trim().to_string(),
                entry[i + 1..].trim().to_string(),
            )),
            None => out.push((entry.trim().to_string(), String::new())),
        }
    }
    out
}

/// Reads `username="…"` and `password="…"` out of a `sasl.jaas.config` value.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let after = rest[i + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.strip_prefix('"') {
                    return q.find('"').map(|end| q[..end].to_string());
                }
                let end = v.find([' ', ';']).unwrap_or(v.len());
                return Some(v[..end].to_string());
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

impl ClientSettings {
    /// Builds settings from `-F` file pairs, then `-X` pairs, then `-b` (later wins).
    /// Returns the settings and one warning per ignored property.
    pub fn from_sources(
        file: &[(String, String)],
        overrides: &[(String, String)],
        brokers: Option<&str>,
    ) -> Result<(ClientSettings, Vec<String>), ClientError> {
        let mut s = ClientSettings::default();
        let mut warnings = Vec::new();
        let mut truststore_type = "PEM".to_string();
        let mut keystore_type = "PEM".to_string();
        let mut keystore = None;
        for (k, v) in file.iter().chain(overrides) {
            match k.as_str() {
                "bootstrap.servers" | "metadata.broker.list" => s.bootstrap = split_list(v),
                "security.protocol" => s.security = SecurityProtocol::parse(v)?,
                "sasl.mechanism" | "sasl.mechanisms" => s.mechanism = SaslMechanism::parse(v)?,
                "sasl.username" => s.username = Some(v.clone()),
                "sasl.password" => s.password = Some(v.clone()),
                "sasl.jaas.config" => {
                    if let Some(u) = jaas_option(v, "username") {
                        s.username = Some(u);
                    }
                    if let Some(p) = jaas_option(v, "password") {
                        s.password = Some(p);
                    }
                }
                "ssl.ca.location" | "ssl.truststore.location" => s.ca = Some(PathBuf::from(v)),
                "ssl.certificate.location" => s.cert = Some(PathBuf::from(v)),
                "ssl.key.location" => s.key = Some(PathBuf::from(v)),
                "ssl.keystore.location" => keystore = Some(PathBuf::from(v)),
                "ssl.truststore.type" => truststore_type = v.to_ascii_uppercase(),
                "ssl.keystore.type" => keystore_type = v.to_ascii_uppercase(),
                "ssl.key.password" | "ssl.keystore.password" | "ssl.truststore.password"
                    if !v.is_empty() =>
                {
                    return Err(ClientError::Settings(format!(
                        "{k}: encrypted keys and password-protected stores are not supported; use an unencrypted PEM key"
                    )))
                }
                "ssl.endpoint.identification.algorithm" if !v.eq_ignore_ascii_case("https") => {
                    return Err(ClientError::Settings(format!(
                        "{k}={v}: the client always verifies the broker's host name"
                    )))
                }
                "enable.ssl.certificate.verification" if v == "false" => {
                    return Err(ClientError::Settings(format!(
                        "{k}=false: the client always verifies the broker's certificate"
                    )))
                }
                "client.id" => s.client_id = v.clone(),
                "request.timeout.ms" | "socket.timeout.ms" => {
                    let ms: u64 = v.parse().map_err(|_| {
                        ClientError::Settings(format!("{k} `{v}`: expected milliseconds"))
                    })?;
                    s.request_timeout = Duration::from_millis(ms.max(1));
                }
                _ => warnings.push(format!("ignoring unsupported client property `{k}`")),
            }
        }
        if truststore_type != "PEM" {
            return Err(ClientError::Settings(format!(
                "ssl.truststore.type={truststore_type} is not supported: only PEM"
            )));
        }
        if keystore_type != "PEM" {
            return Err(ClientError::Settings(format!(
                "ssl.keystore.type={keystore_type} is not supported: only PEM"
            )));
        }
        // Java's PEM keystore holds the key and the certificate chain in one file.
        if let Some(ks) = keystore {
            s.cert.get_or_insert(ks.clone());
            s.key.get_or_insert(ks);
        }
        if let Some(b) = brokers {
            s.bootstrap = split_list(b);
        }
        if s.bootstrap.is_empty() {
            return Err(ClientError::Settings(
                "no bootstrap servers (-b host:port)".into(),
            ));
        }
        if s.security.sasl() && (s.username.is_none() || s.password.is_none()) {
            return Err(ClientError::Settings(
                "SASL needs sasl.username and sasl.password (or sasl.jaas.config)".into(),
            ));
        }
        if s.cert.is_some() != s.key.is_some() {
            return Err(ClientError::Settings(
                "mutual TLS needs both ssl.certificate.location and ssl.key.location".into(),
            ));
        }
        Ok((s, warnings))
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("PLAINTEXT://").unwrap_or(s).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn java_properties_with_jaas() {
        let text = "bootstrap.servers=a:1,b:2\nsecurity.protocol=SASL_SSL\n# c\n\
                    sasl.mechanism=SCRAM-SHA-512\n\
                    sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"alice\" password=\"s3cr=t\";\n\
                    ssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\nacks=all\n";
        let (s, warnings) =
            ClientSettings::from_sources(&parse_properties(text), &[], None).unwrap();
        assert_eq!(s.bootstrap, vec!["a:1", "b:2"]);
        assert_eq!(s.security, SecurityProtocol::SaslSsl);
        assert_eq!(s.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(s.username.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("s3cr=t"));
        assert_eq!(s.ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            warnings,
            vec!["ignoring unsupported client property `acks`"]
        );
    }

    #[test]
    fn overrides_win_and_bad_values_are_named() {
        let file = pairs(&[("security.protocol", "SSL")]);
        let x = pairs(&[("security.protocol", "PLAINTEXT")]);
        let (s, _) = ClientSettings::from_sources(&file, &x, Some("h:9")).unwrap();
        assert_eq!(s.security, SecurityProtocol::Plaintext);
        assert_eq!(s.bootstrap, vec!["h:9"]);
        let bad = pairs(&[("ssl.keystore.type", "JKS")]);
        let e = ClientSettings::from_sources(&bad, &[], None).unwrap_err();
        assert!(e.to_string().contains("JKS"), "{e}");
        let nouser = pairs(&[("security.protocol", "SASL_PLAINTEXT")]);
        assert!(ClientSettings::from_sources(&nouser, &[], None).is_err());
    }
}
