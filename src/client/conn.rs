//! One connection to one broker: TCP, optional TLS (rustls), ApiVersions negotiation and SASL
//! authentication, then request/response calls with the highest version both sides support.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::error_name;
use super::scram::ScramClient;
use super::settings::{ClientSettings, SaslMechanism};
use super::ClientError;
use crate::auth::scram::Mechanism;

/// A byte stream to a broker, plain or TLS.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Largest response frame accepted (a fetch answer is bounded by the request's max bytes).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// An open, authenticated connection.
pub struct Connection {
    io: Box<dyn Transport>,
    corr: i32,
    addr: String,
    client_id: StrBytes,
    timeout: std::time::Duration,
    /// The broker's supported range per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// The broker's ApiVersions answer (features, API ranges).
    pub api_versions: ApiVersionsResponse,
}

impl Connection {
    /// Connects to `addr` (`host:port`), negotiates versions and authenticates.
    pub async fn open(addr: &str, s: &ClientSettings) -> Result<Connection, ClientError> {
        let fut = Self::open_inner(addr, s);
        tokio::time::timeout(s.request_timeout, fut)
            .await
            .map_err(|_| {
                ClientError::Connection(format!(
                    "cannot connect to {addr}: timed out after {} ms",
                    s.request_timeout.as_millis()
                ))
            })?
    }

    async fn open_inner(addr: &str, s: &ClientSettings) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connection(format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Transport> = if s.security.tls() {
            Box::new(tls_connect(addr, tcp, s).await?)
        } else {
            Box::new(tcp)
        };
        let mut conn = Connection {
            io,
            corr: 0,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(s.client_id.clone()),
            timeout: s.request_timeout,
            versions: HashMap::new(),
            api_versions: ApiVersionsResponse::default(),
        };
        conn.negotiate().await?;
        if s.security.sasl() {
            conn.authenticate(s).await?;
        }
        Ok(conn)
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions: v3 first (with the client's name), v0 when the broker answers
    /// UNSUPPORTED_VERSION (it then lists its ranges in a v0 body).
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("esker-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp = self.call(&req, 3).await?;
        if resp.error_code == 35 {
            resp = self.call(&ApiVersionsRequest::default(), 0).await?;
        }
        if resp.error_code != 0 {
            return Err(ClientError::Connection(format!(
                "{}: ApiVersions failed ({})",
                self.addr,
                error_name(resp.error_code)
            )));
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        self.api_versions = resp;
        Ok(())
    }

    /// SaslHandshake, then SaslAuthenticate rounds for the configured mechanism.
    async fn authenticate(&mut self, s: &ClientSettings) -> Result<(), ClientError> {
        let user = s.username.clone().unwrap_or_default();
        let pass = s.password.clone().unwrap_or_default();
        let mech = s.mechanism;
        let v = self.version::<SaslHandshakeRequest>()?;
        let hs = self
            .call(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mech.name())),
                v,
            )
            .await?;
        if hs.error_code != 0 {
            let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(ClientError::Auth(format!(
                "{}: the broker does not offer SASL mechanism {} ({}); it offers: {}",
                self.addr,
                mech.name(),
                error_name(hs.error_code),
                offered.join(", ")
            )));
        }
        match mech {
            SaslMechanism::Plain => {
                let token = format!("\0{user}\0{pass}");
                self.sasl_round(Bytes::from(token), &user).await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let m = if mech == SaslMechanism::ScramSha256 {
                    Mechanism::Sha256
                } else {
                    Mechanism::Sha512
                };
                let (mut client, first) = ScramClient::start(m, &user, &pass);
                let server_first = self.sasl_round(Bytes::from(first), &user).await?;
                let fin = client.server_first(&server_first)?;
                let server_final = self.sasl_round(Bytes::from(fin), &user).await?;
                client.server_final(&server_final)?;
            }
        }
        Ok(())
    }

    async fn sasl_round(&mut self, bytes: Bytes, user: &str) -> Result<Bytes, ClientError> {
        let v = self.version::<SaslAuthenticateRequest>()?;
        let resp = self
            .call(
                &SaslAuthenticateRequest::default().with_auth_bytes(bytes),
                v,
            )
            .await?;
        if resp.error_code != 0 {
            return Err(ClientError::Auth(format!(
                "authentication failed for user '{user}' at {} ({}){}",
                self.addr,
                error_name(resp.error_code),
                resp.error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )));
        }
        Ok(resp.auth_bytes)
    }

    /// The highest version of `R` both this client and the broker support.
    pub fn version<R: Request>(&self) -> Result<i16, ClientError> {
        self.version_capped::<R>(R::VERSIONS.max)
    }

    /// As [`Connection::version`], but at most `cap` (for versions whose fields differ).
    pub fn version_capped<R: Request>(&self, cap: i16) -> Result<i16, ClientError> {
        let api = || {
            ApiKey::try_from(R::KEY)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|_| format!("API {}", R::KEY))
        };
        let Some(&(min, max)) = self.versions.get(&R::KEY) else {
            return Err(ClientError::Unsupported { api: api() });
        };
        let hi = max.min(R::VERSIONS.max).min(cap);
        let lo = min.max(R::VERSIONS.min);
        if hi < lo {
            return Err(ClientError::Unsupported { api: api() });
        }
        Ok(hi)
    }

    /// Sends `req` at `version` and reads its response.
    pub async fn call<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let timeout = self.timeout;
        let addr = self.addr.clone();
        tokio::time::timeout(timeout, self.call_inner(req, version))
            .await
            .map_err(|_| {
                ClientError::Connection(format!(
                    "{addr}: no answer within {} ms",
                    timeout.as_millis()
                ))
            })?
    }

    async fn call_inner<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        self.corr = self.corr.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| ClientError::Protocol(format!("encoding a request header: {e}")))?;
        req.encode(&mut body, version).map_err(|e| {
            ClientError::Protocol(format!("encoding API {} v{version}: {e}", R::KEY))
        })?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let broken = |e: std::io::Error| ClientError::Connection(format!("{}: {e}", self.addr));
        self.io.write_all(&frame).await.map_err(broken)?;
        self.io.flush().await.map_err(broken)?;
        let mut len = [0u8; 4];
        let broken = |e: std::io::Error| ClientError::Connection(format!("{}: {e}", self.addr));
        self.io.read_exact(&mut len).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ClientError::Connection(format!(
                    "{}: the broker closed the connection (wrong security.protocol, or not authorised to connect?)",
                    self.addr
                ))
            } else {
                broken(e)
            }
        })?;
        let n = i32::from_be_bytes(len);
        // 0x15 / 0x16 start a TLS alert / handshake record: a TLS listener answered.
        if (n < 0 || n as usize > MAX_FRAME) && (len[0] == 0x15 || len[0] == 0x16) {
            return Err(ClientError::Connection(format!(
                "{}: the broker answered with TLS (security.protocol=SSL or SASL_SSL?)",
                self.addr
            )));
        }
        if n < 0 || n as usize > MAX_FRAME {
            return Err(ClientError::Protocol(format!(
                "{}: response frame of {n} bytes",
                self.addr
            )));
        }
        // Grows as the response arrives: the length field alone never reserves MAX_FRAME.
        let want = n as usize;
        let mut buf = Vec::new();
        let got = (&mut self.io)
            .take(want as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(broken)?;
        if got < want {
            return Err(broken(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let mut buf = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .map_err(|e| ClientError::Protocol(format!("decoding a response header: {e}")))?;
        if h.correlation_id != self.corr {
            return Err(ClientError::Protocol(format!(
                "{}: correlation id {} for request {}",
                self.addr, h.correlation_id, self.corr
            )));
        }
        let resp = R::Response::decode(&mut buf, version).map_err(|e| {
            ClientError::Protocol(format!("decoding API {} v{version}: {e}", R::KEY))
        })?;
        if buf.has_remaining() && R::KEY != ApiKey::ApiVersions as i16 {
            tracing::debug!(
                api = R::KEY,
                left = buf.remaining(),
                "trailing response bytes"
            );
        }
        Ok(resp)
    }
}

/// Wraps `tcp` in TLS: the CA file verifies the broker (its host name or IP must be in the
/// certificate), and a client certificate is offered when one is configured.
async fn tls_connect(
    addr: &str,
    tcp: TcpStream,
    s: &ClientSettings,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{PrivateKeyDer, ServerName};
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ClientError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let ca = s.ca.as_ref().ok_or_else(|| {
        ClientError::Settings("TLS needs ssl.ca.location (the CA certificate, PEM)".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::read_certs(&read(ca)?)
        .map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?
    {
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => {
            let chain = crate::tls::read_certs(&read(cert)?)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", cert.display())))?;
            let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| {
                ClientError::Tls(format!("{}: not a PEM private key: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(addr);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Settings(format!("{addr}: invalid host name: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))
}
