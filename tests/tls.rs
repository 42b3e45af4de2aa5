//! TLS listeners: handshakes with and without client certificates, certificates from another
//! CA, garbage instead of a ClientHello, certificate principals through the mapping rules and
//! the authorizer, SASL over TLS (KIP-684), certificate reload, start-up errors, Kinesis HTTPS.
//!
//! The rdkafka crate here is built without OpenSSL, so the Kafka side speaks the protocol by
//! hand over a tokio-rustls client; real clients (kcat, confluent-kafka, boto3) are exercised in
//! tests/compat/ssl_*.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{http_get, TestBroker};
use esker::tls::certs::{generate, CertsRequest};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(10);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Generates a CA, server cert and the given clients into `dir`.
fn certs(dir: &Path, clients: &[&str]) {
    generate(&CertsRequest {
        out: dir.to_path_buf(),
        hostnames: Vec::new(),
        clients: clients.iter().map(|c| c.to_string()).collect(),
        ca_name: format!("test CA {}", dir.display()),
    })
    .expect("certificates");
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// A TLS client trusting `cas`, presenting `client` (`dir`, name) when given.
fn connector(cas: &[&Path], client: Option<(&Path, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for c in CertificateDer::pem_file_iter(ca.join("ca.pem")).expect("ca") {
            roots.add(c.expect("ca cert")).expect("add ca");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        None => b.with_no_client_auth(),
        Some((dir, name)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
                    .expect("client cert")
                    .map(|c| c.expect("cert"))
                    .collect();
            let key =
                PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).expect("client key");
            b.with_client_auth_cert(chain, key).expect("client auth")
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A Kafka protocol connection over TLS (tests/common/raw.rs, over a TLS stream).
struct TlsRaw {
    s: TlsStream<TcpStream>,
    corr: i32,
}

impl TlsRaw {
    async fn connect(addr: &str, tls: &tokio_rustls::TlsConnector) -> std::io::Result<TlsRaw> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        let s = tokio::time::timeout(WAIT, tls.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::other("handshake hangs"))??;
        Ok(TlsRaw { s, corr: 0 })
    }

    /// The leaf certificate the server presented.
    fn server_cert(&self) -> Vec<u8> {
        self.s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .expect("server certificate")
    }

    async fn send<Req: Request + Encodable>(&mut self, req: &Req, version: i16) -> i32 {
        self.corr += 1;
        let frame = common::raw::request_frame(req, version, self.corr, "tls-raw");
        // A refused handshake may surface here (TLS 1.3 reports it after the client's Finished).
        let _ = self.s.write_all(&frame).await;
        let _ = self.s.flush().await;
        self.corr
    }

    /// The next response frame; `None` when the connection failed or closed.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(WAIT, self.s.read_exact(&mut len))
            .await
            .expect("no hang")
            .ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    async fn try_call<Req: Request + Encodable>(
        &mut self,
        req: &Req,
        version: i16,
    ) -> Option<Req::Response>
    where
        Req::Response: Decodable + HeaderVersion,
    {
        let sent = self.send(req, version).await;
        let mut frame = self.read_frame().await?;
        let h = ResponseHeader::decode(&mut frame, Req::Response::header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, sent);
        Some(Req::Response::decode(&mut frame, version).expect("response body"))
    }

    async fn call<Req: Request + Encodable>(&mut self, req: &Req, version: i16) -> Req::Response
    where
        Req::Response: Decodable + HeaderVersion,
    {
        self.try_call(req, version).await.expect("a response")
    }
}

/// Connects and asks for ApiVersions; `Some(error_code)` when the broker answered.
async fn api_versions(addr: &str, tls: &tokio_rustls::TlsConnector) -> Option<i16> {
    let mut c = TlsRaw::connect(addr, tls).await.ok()?;
    let r = c
        .try_call(
            &ApiVersionsRequest::default()
                .with_client_software_name(s("tls-test"))
                .with_client_software_version(s("1")),
            3,
        )
        .await?;
    assert!(!r.api_keys.is_empty(), "ApiVersions lists the APIs");
    Some(r.error_code)
}

async fn ssl_broker(dir: &Path, extra: &[(&str, &str)]) -> TestBroker {
    let (cert, key, ca) = (
        path(dir, "server.pem"),
        path(dir, "server.key"),
        path(dir, "ca.pem"),
    );
    let mut o: Vec<(&str, &str)> = vec![
        ("listeners", "SSL://127.0.0.1:0"),
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &key),
        ("ssl.ca.location", &ca),
        ("ssl.client.auth", "required"),
    ];
    o.extend_from_slice(extra);
    TestBroker::start_with(&o).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required_other_ca_and_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &["alice"]);
    certs(other.path(), &["mallory"]);
    let broker = ssl_broker(dir.path(), &[]).await;
    let addr = broker.bootstrap();

    // With a certificate signed by the CA: handshake, then ApiVersions is answered.
    let alice = connector(&[dir.path()], Some((dir.path(), "alice")));
    assert_eq!(api_versions(&addr, &alice).await, Some(0));

    // Without a certificate the handshake fails: no answer.
    let anonymous = connector(&[dir.path()], None);
    assert_eq!(api_versions(&addr, &anonymous).await, None);

    // A certificate from another CA is refused too.
    let mallory = connector(&[dir.path()], Some((other.path(), "mallory")));
    assert_eq!(api_versions(&addr, &mallory).await, None);

    // Garbage instead of a ClientHello: the broker closes the connection (after an alert).
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the broker closes the connection");
    assert!(
        read.is_err() || rest.len() < 64,
        "at most an alert: {rest:?}"
    );
    // The broker is unaffected: a new connection is served.
    assert_eq!(api_versions(&addr, &alice).await, Some(0));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &["alice"]);
    let broker = ssl_broker(dir.path(), &[("ssl.handshake.timeout.ms", "300")]).await;
    let addr = broker.bootstrap();
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("the broker closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, got {read:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "not before the timeout: {:?}",
        start.elapsed()
    );
    let alice = connector(&[dir.path()], Some((dir.path(), "alice")));
    assert_eq!(api_versions(&addr, &alice).await, Some(0));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_principal_through_mapping_rules_and_acls() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &["Admin", "Alice", "Bob"]);
    let broker = ssl_broker(
        dir.path(),
        &[
            ("authorizer.class.name", "StandardAuthorizer"),
            ("super.users", "User:admin"),
            // CN=Alice → alice; anything else keeps its DN.
            (
                "ssl.principal.mapping.rules",
                "RULE:^CN=([^,]*)$/$1/L,DEFAULT",
            ),
        ],
    )
    .await;
    let addr = broker.bootstrap();
    let mut admin = TlsRaw::connect(
        &addr,
        &connector(&[dir.path()], Some((dir.path(), "Admin"))),
    )
    .await
    .expect("admin connects");
    let created = admin
        .call(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_num_partitions(1)
                    .with_replication_factor(1)])
                .with_timeout_ms(10_000),
            5,
        )
        .await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "User:admin (CN=Admin) is a super user"
    );
    // WRITE on topic `orders` for User:alice only (topic 2, literal 3, write 4, allow 3).
    let acls = admin
        .call(
            &CreateAclsRequest::default().with_creations(vec![AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(4)
                .with_permission_type(3)]),
            3,
        )
        .await;
    assert_eq!(acls.results[0].error_code, 0);

    let produce = |client: &'static str| {
        let addr = addr.clone();
        let tls = connector(&[dir.path()], Some((dir.path(), client)));
        async move {
            let mut c = TlsRaw::connect(&addr, &tls).await.expect("connects");
            let mut b = esker::log::batch::BatchBuilder::new(1_700_000_000_000);
            b.record(None, Some(b"v"), 1_700_000_000_000);
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s("orders")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(b.build().freeze()))])]);
            let r = c.call(&req, 9).await;
            r.responses[0].partition_responses[0].error_code
        }
    };
    assert_eq!(produce("Alice").await, 0, "CN=Alice maps to User:alice");
    assert_eq!(
        produce("Bob").await,
        29,
        "User:bob has no ACL: TOPIC_AUTHORIZATION_FAILED"
    );
    drop(admin);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_ignores_broker_wide_client_auth_kip_684() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[]);
    let broker = ssl_broker(
        dir.path(),
        &[
            ("listeners", "SASL_SSL://127.0.0.1:0"),
            ("sasl.plain.users", "carol:pw"),
        ],
    )
    .await;
    let addr = broker.bootstrap();
    // ssl.client.auth=required is broker-wide; SASL_SSL asks for no certificate.
    let mut c = TlsRaw::connect(&addr, &connector(&[dir.path()], None))
        .await
        .expect("handshake without a client certificate");
    let hs = c
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth = c
        .call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from("\0carol\0pw")),
            2,
        )
        .await;
    assert_eq!(auth.error_code, 0);
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.brokers.len(), 1);
    broker.stop().await;

    // With listener.name.sasl_ssl.ssl.client.auth=required the certificate is asked for.
    let broker = ssl_broker(
        dir.path(),
        &[
            ("listeners", "SASL_SSL://127.0.0.1:0"),
            ("listener.name.sasl_ssl.ssl.client.auth", "required"),
        ],
    )
    .await;
    let anonymous = connector(&[dir.path()], None);
    assert_eq!(api_versions(&broker.bootstrap(), &anonymous).await, None);
    broker.stop().await;
}

/// Polls until a new connection is served with a server certificate satisfying `want`.
async fn await_server_cert(addr: &str, tls: &tokio_rustls::TlsConnector, want: &[u8]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let c = TlsRaw::connect(addr, tls).await.expect("connects");
        if c.server_cert() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the metrics endpoint until the broker has counted a certificate reload attempt with
/// `result` (`reloaded` or `failed`).
async fn await_reloads(broker: &TestBroker, result: &str) {
    let addr = broker.metrics_addr();
    let label = format!("result=\"{result}\"");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, text) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        let counted = text
            .lines()
            .filter(|l| l.starts_with("esker_tls_certificate_reloads_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if counted >= 1.0 {
            return;
        }
        assert!(Instant::now() < deadline, "no {result} reload was counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leaf_der(pem_path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem_path)
        .expect("pem")
        .next()
        .expect("a certificate")
        .expect("valid")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let next = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[]);
    certs(next.path(), &[]);
    let broker = ssl_broker(
        dir.path(),
        &[
            ("ssl.client.auth", "none"),
            ("ssl.reload.interval.ms", "100"),
        ],
    )
    .await;
    let addr = broker.bootstrap();
    let tls = connector(&[dir.path(), next.path()], None);
    let first = leaf_der(&dir.path().join("server.pem"));
    let old = TlsRaw::connect(&addr, &tls).await.expect("connects");
    assert_eq!(old.server_cert(), first);

    // A broken certificate file keeps the previous configuration.
    std::fs::write(dir.path().join("server.pem"), "not a certificate").expect("write");
    await_reloads(&broker, "failed").await;
    await_server_cert(&addr, &tls, &first).await;
    assert_eq!(api_versions(&addr, &tls).await, Some(0));

    // New files: new connections get the new certificate.
    for f in ["server.pem", "server.key"] {
        std::fs::copy(next.path().join(f), dir.path().join(f)).expect("copy");
    }
    let second = leaf_der(&next.path().join("server.pem"));
    await_server_cert(&addr, &tls, &second).await;
    await_reloads(&broker, "reloaded").await;
    assert_eq!(api_versions(&addr, &tls).await, Some(0));
    broker.stop().await;
}

#[tokio::test]
async fn start_up_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = esker::Config::load("listeners=SSL://127.0.0.1:0\n", &[]).expect_err("no cert");
    assert!(e.to_string().contains("ssl.certificate.location"), "{e}");
    let e = esker::Config::load(
        "listeners=SSL://127.0.0.1:0\nssl.certificate.location=a\nssl.key.location=b\n\
         ssl.client.auth=required\n",
        &[],
    )
    .expect_err("no ca");
    assert!(e.to_string().contains("ssl.ca.location"), "{e}");
    let e = esker::Config::load(
        "listeners=SSL://127.0.0.1:0\nssl.certificate.location=a\nssl.key.location=b\n\
         ssl.principal.mapping.rules=RULE:broken\n",
        &[],
    )
    .expect_err("bad rules");
    assert!(e.to_string().contains("ssl.principal.mapping.rules"), "{e}");

    // A file that cannot be read stops start-up with the key in the message.
    let missing = path(dir.path(), "missing.pem");
    let config = esker::Config::from_pairs([
        ("listeners", "SSL://127.0.0.1:0"),
        ("log.dirs", &path(dir.path(), "data")),
        ("ssl.certificate.location", &missing),
        ("ssl.key.location", &missing),
        ("kinesis.listener", ""),
        ("metrics.listener", ""),
    ])
    .expect("config");
    let e = match esker::Broker::start(config).await {
        Ok(_) => panic!("started without a certificate"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("ssl.certificate.location"), "{e}");
    assert!(e.contains("missing.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[]);
    let broker = TestBroker::start_with(&[
        ("kinesis.ssl.enabled", "true"),
        ("ssl.certificate.location", &path(dir.path(), "server.pem")),
        ("ssl.key.location", &path(dir.path(), "server.key")),
    ])
    .await;
    let addr = broker
        .broker
        .as_ref()
        .and_then(|b| b.kinesis_addr())
        .expect("kinesis endpoint");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector(&[dir.path()], None)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("https handshake");
    let body = "{}";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.expect("request");
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut resp))
        .await
        .expect("response");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("StreamNames"), "{text}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_client_auth_anonymous_without_certificate_dn_with_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &["alice"]);
    let broker = ssl_broker(
        dir.path(),
        &[
            ("ssl.client.auth", "requested"),
            ("authorizer.class.name", "StandardAuthorizer"),
            // DEFAULT mapping: the principal is the whole DN.
            ("super.users", "User:CN=alice"),
        ],
    )
    .await;
    let addr = broker.bootstrap();
    let create = |name: &'static str| {
        CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(10_000)
    };
    // Without a certificate the handshake succeeds and the client is User:ANONYMOUS: no ACL.
    let mut anonymous = TlsRaw::connect(&addr, &connector(&[dir.path()], None))
        .await
        .expect("requested: a certificate is optional");
    let r = anonymous.call(&create("anon-topic"), 5).await;
    assert_eq!(
        r.topics[0].error_code, 29,
        "User:ANONYMOUS may not create topics"
    );
    // With one, the principal is User:CN=alice, a super user.
    let mut alice = TlsRaw::connect(
        &addr,
        &connector(&[dir.path()], Some((dir.path(), "alice"))),
    )
    .await
    .expect("connects");
    let r = alice.call(&create("alice-topic"), 5).await;
    assert_eq!(r.topics[0].error_code, 0, "User:CN=alice is a super user");
    drop((anonymous, alice));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_no_mapping_rule_applies_to_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &["admin", "alice"]);
    // No DEFAULT: a DN that the one rule does not match has no principal.
    let broker = ssl_broker(
        dir.path(),
        &[("ssl.principal.mapping.rules", "RULE:^CN=admin$/admin/")],
    )
    .await;
    let addr = broker.bootstrap();
    let admin = connector(&[dir.path()], Some((dir.path(), "admin")));
    let alice = connector(&[dir.path()], Some((dir.path(), "alice")));
    assert_eq!(api_versions(&addr, &admin).await, Some(0));
    assert_eq!(
        api_versions(&addr, &alice).await,
        None,
        "CN=alice matches no rule: the connection is closed"
    );
    assert_eq!(api_versions(&addr, &admin).await, Some(0));
    broker.stop().await;
}
