//! The web console's JSON API against an in-process broker: off by default; open without
//! users; listings, record pages from an offset and from a time, group lag after rdkafka
//! commits, Kinesis shards, masked configuration, throughput samples; HTTP basic against SCRAM
//! users with 401 and 403, creating and deleting topics allowed and denied by ACLs; mTLS on
//! `console.listener`. The browser side runs in tests/compat/console_test.mjs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{producer_config, TestBroker, TIMEOUT};
use esker::auth::acl::{AclBinding, PatternType, Permission};
use esker::auth::scram::{Mechanism, ScramCredential};
use esker::auth::{Operation, ResourceType};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A response: status, headers (lower-case names) and body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over `stream` (closed after the response).
async fn request_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<&Value>,
    script: bool,
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        head += &format!(
            "Authorization: Basic {}\r\n",
            B64.encode(format!("{u}:{p}"))
        );
    }
    if script {
        head += "X-Esker-Console: 1\r\n";
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    head += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<&Value>,
) -> Resp {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    request_on(s, method, path, auth, body, true).await
}

async fn get(addr: std::net::SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Resp {
    request(addr, "GET", path, auth, None).await
}

fn b64(s: &str) -> Value {
    Value::String(B64.encode(s))
}

fn producer(b: &TestBroker) -> FutureProducer {
    producer_config(&b.bootstrap(), "all")
        .create()
        .expect("producer")
}

/// Ten records on partition 0 of `topic`, timestamps 1000, 2000, ... 10000.
async fn produce_ten(b: &TestBroker, topic: &str) {
    let p = producer(b);
    for i in 0..10i64 {
        let value = format!("{{\"n\":{i},\"tag\":\"<b>x</b>\"}}");
        let key = format!("k{i}");
        p.send(
            FutureRecord::to(topic)
                .partition(0)
                .key(&key)
                .payload(&value)
                .timestamp((i + 1) * 1000)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "trace",
                    value: Some("t-1"),
                })),
            TIMEOUT,
        )
        .await
        .expect("produce");
    }
}

fn commit(b: &TestBroker, group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = common::consumer_config(&b.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_off_by_default() {
    let b = TestBroker::start().await;
    let r = get(b.metrics_addr(), "/ui/", None).await;
    assert_eq!(r.status, 404);
    let r = get(b.metrics_addr(), "/ui/api/topics", None).await;
    assert_eq!(r.status, 404);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_console_lists_browses_and_shows_lag() {
    let b = TestBroker::start_with(&[
        ("console.enable", "true"),
        ("sasl.plain.users", ""),
        ("kinesis.credentials", "AKID:very-secret"),
    ])
    .await;
    let addr = b.metrics_addr();
    b.create_topic("orders", 2).await;
    produce_ten(&b, "orders").await;

    // The page and its assets: CSP, no inline script.
    let page = get(addr, "/ui/", None).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.body.contains("<script src=\"/ui/console.js\""));
    assert!(!page.body.contains("<script>"), "no inline script");
    let js = get(addr, "/ui/console.js", None).await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/javascript"));
    assert!(
        !js.body.contains("innerHTML"),
        "records are never rendered as HTML"
    );
    // Metrics still served beside the console.
    assert_eq!(get(addr, "/metrics", None).await.status, 200);

    // No authorizer, no users: open, as ANONYMOUS.
    let s = get(addr, "/ui/api/session", None).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.json()["principal"], "User:ANONYMOUS");
    assert_eq!(s.json()["authentication_required"], false);

    let topics = get(addr, "/ui/api/topics", None).await.json();
    let orders = topics
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("orders listed");
    assert_eq!(orders["partition_count"], 2);
    assert_eq!(orders["records"], 10);
    assert_eq!(orders["partitions"][0]["log_start_offset"], 0);
    assert_eq!(orders["partitions"][0]["log_end_offset"], 10);
    assert_eq!(orders["partitions"][1]["log_end_offset"], 0);
    assert_eq!(orders["partitions"][0]["leader"], 0);
    assert!(orders["size_bytes"].as_i64().unwrap_or(0) > 0);
    let one = get(addr, "/ui/api/topics/orders", None).await.json();
    assert_eq!(one["stream"], "orders");
    assert_eq!(one["can_delete"], true);
    assert_eq!(
        get(addr, "/ui/api/topics/nope", None).await.status,
        404,
        "unknown topic"
    );

    // Records from an offset: a page of 3, bytes as base64, headers.
    let page = get(
        addr,
        "/ui/api/topics/orders/records?partition=0&offset=2&limit=3",
        None,
    )
    .await
    .json();
    let recs = page["records"].as_array().expect("records");
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["offset"], 2);
    assert_eq!(recs[0]["key"], b64("k2"));
    assert_eq!(recs[0]["value"], b64("{\"n\":2,\"tag\":\"<b>x</b>\"}"));
    assert_eq!(recs[0]["timestamp"], 3000);
    assert_eq!(recs[0]["headers"][0]["key"], "trace");
    assert_eq!(recs[0]["headers"][0]["value"], b64("t-1"));
    assert_eq!(page["next_offset"], 5);
    assert_eq!(page["high_watermark"], 10);
    // From a time: the first record at or after 6500 ms is offset 6 (7000 ms).
    let page = get(
        addr,
        "/ui/api/topics/orders/records?partition=0&timestamp=6500&limit=2",
        None,
    )
    .await
    .json();
    assert_eq!(page["records"][0]["offset"], 6);
    assert_eq!(page["records"][1]["offset"], 7);
    // Past the last record: an empty page at the end.
    let page = get(
        addr,
        "/ui/api/topics/orders/records?partition=0&timestamp=99999",
        None,
    )
    .await
    .json();
    assert_eq!(page["records"].as_array().map(Vec::len), Some(0));
    assert_eq!(page["start_offset"], 10);
    // Without a start: the latest `limit`.
    let page = get(addr, "/ui/api/topics/orders/records?limit=4", None)
        .await
        .json();
    assert_eq!(page["records"][0]["offset"], 6);
    // Bad parameters.
    for bad in [
        "partition=7",
        "limit=0",
        "limit=abc",
        "offset=1&timestamp=1",
    ] {
        let r = get(addr, &format!("/ui/api/topics/orders/records?{bad}"), None).await;
        assert!(r.status == 400 || r.status == 404, "{bad}: {}", r.status);
        assert!(r.json()["error"].is_string(), "{bad}: an error message");
    }

    // Lag after commits by an rdkafka consumer.
    commit(&b, "billing", "orders", 3);
    let g = get(addr, "/ui/api/groups/billing", None).await.json();
    assert_eq!(g["offsets"][0]["committed_offset"], 3);
    assert_eq!(g["offsets"][0]["log_end_offset"], 10);
    assert_eq!(g["offsets"][0]["lag"], 7);
    commit(&b, "billing", "orders", 9);
    let groups = get(addr, "/ui/api/groups", None).await.json();
    let billing = groups
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group_id"] == "billing")
        .expect("billing listed");
    assert_eq!(billing["lag"], 1);
    assert_eq!(get(addr, "/ui/api/groups/nobody", None).await.status, 404);

    // Kinesis: every topic is a stream; two shards split the hash-key space.
    let streams = get(addr, "/ui/api/streams", None).await.json();
    let st = streams["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["stream"] == "orders")
        .expect("orders stream");
    assert_eq!(st["shards"][0]["shard_id"], "shardId-000000000000");
    assert_eq!(st["shards"][0]["starting_hash_key"], "0");
    assert_eq!(
        st["shards"][1]["ending_hash_key"],
        u128::MAX.to_string().as_str()
    );
    assert!(
        !streams.to_string().contains("__consumer_offsets"),
        "internal topics are not streams"
    );

    // Configuration, secrets masked.
    let cfg = get(addr, "/ui/api/config", None).await;
    assert!(!cfg.body.contains("very-secret"), "secret leaked");
    let cfg = cfg.json();
    let key = |name: &str| {
        cfg.as_array()
            .expect("keys")
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .expect("key listed")
    };
    assert_eq!(key("kinesis.credentials")["sensitive"], true);
    assert_eq!(key("kinesis.credentials")["value"], Value::Null);
    assert_eq!(key("console.enable")["value"], "true");
    assert_eq!(key("console.enable")["source"], "STATIC_BROKER_CONFIG");

    // Throughput samples from the broker's counters.
    let samples =
        common::eventually_async("a throughput sample", Duration::from_secs(10), || async {
            let t = get(addr, "/ui/api/throughput", None).await.json();
            match t["samples"].as_array().filter(|s| !s.is_empty()) {
                Some(s) => Ok(s.clone()),
                None => Err(t),
            }
        })
        .await;
    assert!(samples[0]["bytes_in"].is_number());
    assert!(samples[0]["at_ms"].as_i64().unwrap_or(0) > 0);

    // Malformed bodies and paths get a 400 with a message, never a panic.
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let not_json = Value::String("{".into());
    let r = request_on(s, "POST", "/ui/api/topics", None, Some(&not_json), true).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let huge = serde_json::json!({ "name": "x".repeat(70 * 1024) });
    let r = request(addr, "POST", "/ui/api/topics", None, Some(&huge)).await;
    assert_eq!(r.status, 400, "oversized body: {}", r.body);
    let r = request(
        addr,
        "POST",
        "/ui/api/topics",
        None,
        Some(&serde_json::json!({ "name": "bad/name?" })),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(get(addr, "/ui/api/topics/%zz", None).await.status, 400);
    assert_eq!(get(addr, "/ui/api/topics/ord%65rs", None).await.status, 200);

    // Unknown routes and methods.
    assert_eq!(get(addr, "/ui/api/nothing", None).await.status, 404);
    assert_eq!(
        request(addr, "PUT", "/ui/api/topics", None, None)
            .await
            .status,
        400
    );
    b.stop().await;
}

fn binding(
    principal: &str,
    op: Operation,
    rt: ResourceType,
    name: &str,
    pt: PatternType,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        pattern_type: pt,
        resource_name: name.into(),
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: Permission::Allow,
    }
}

async fn add_user(b: &TestBroker, user: &str, password: &str, mech: Mechanism) {
    let cred = ScramCredential::from_password(mech, password, b"0123456789abcdef", 4096);
    b.context()
        .alter_scram(vec![], vec![(user.to_string(), mech, cred)])
        .await
        .expect("scram user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_scram_users_and_acls() {
    let b = TestBroker::start_with(&[
        ("console.enable", "true"),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
    ])
    .await;
    let addr = b.metrics_addr();
    add_user(&b, "admin", "admin-secret", Mechanism::Sha512).await;
    add_user(&b, "alice", "alice-secret", Mechanism::Sha256).await;
    add_user(&b, "bob", "bob-secret", Mechanism::Sha512).await;
    b.create_topic("alice-a", 1).await;
    b.create_topic("other", 1).await;
    use Operation::*;
    use PatternType::*;
    use ResourceType::Topic;
    b.context()
        .create_acls(vec![
            binding("User:alice", Create, Topic, "alice-", Prefixed),
            binding("User:alice", Delete, Topic, "alice-", Prefixed),
            binding("User:alice", Read, Topic, "alice-", Prefixed),
            binding("User:bob", Describe, Topic, "alice-a", Literal),
        ])
        .await
        .expect("acls");

    // 401 without credentials (a browser gets a basic challenge), with a wrong password, an
    // unknown user or a malformed header.
    let r = get(addr, "/ui/api/topics", None).await;
    assert_eq!(r.status, 401);
    let plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let r = request_on(plain, "GET", "/ui/api/topics", None, None, false).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("Basic"));
    for (u, p) in [("alice", "wrong"), ("mallory", "x"), ("alice", "")] {
        assert_eq!(
            get(addr, "/ui/api/session", Some((u, p))).await.status,
            401,
            "{u}"
        );
    }
    // The static page itself needs no credentials (it holds no data).
    assert_eq!(get(addr, "/ui/", None).await.status, 200);

    // alice sees only what she may DESCRIBE (READ implies it).
    let alice = Some(("alice", "alice-secret"));
    let s = get(addr, "/ui/api/session", alice).await.json();
    assert_eq!(s["principal"], "User:alice");
    assert_eq!(s["authentication_required"], true);
    // Twice: the second login is answered from the verified-password cache.
    assert_eq!(get(addr, "/ui/api/session", alice).await.status, 200);
    let names: Vec<String> = get(addr, "/ui/api/topics", alice)
        .await
        .json()
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, vec!["alice-a".to_string()]);
    assert_eq!(get(addr, "/ui/api/topics/other", alice).await.status, 404);
    assert_eq!(
        get(addr, "/ui/api/topics/alice-a/records?offset=0", alice)
            .await
            .status,
        200
    );
    // ACLs, users and the configuration need cluster rights.
    for path in ["/ui/api/acls", "/ui/api/users", "/ui/api/config"] {
        assert_eq!(get(addr, path, alice).await.status, 403, "{path}");
    }

    // Creating: allowed under alice's prefix, refused elsewhere, refused without the header.
    let body = serde_json::json!({ "name": "alice-new", "partitions": 3, "configs": { "retention.ms": "60000" } });
    let r = request(addr, "POST", "/ui/api/topics", alice, Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["partition_count"], 3);
    let meta = b.context().catalog.get("alice-new").expect("created");
    assert_eq!(
        meta.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    let r = request(addr, "POST", "/ui/api/topics", alice, Some(&body)).await;
    assert_eq!(r.status, 409, "exists: {}", r.body);
    let other = serde_json::json!({ "name": "other-new", "partitions": 1 });
    let r = request(addr, "POST", "/ui/api/topics", alice, Some(&other)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(b.context().catalog.get("other-new").is_none());
    let bad = serde_json::json!({ "name": "alice-bad", "configs": { "retention.ms": "soon" } });
    let r = request(addr, "POST", "/ui/api/topics", alice, Some(&bad)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let r = request_on(s, "POST", "/ui/api/topics", alice, Some(&body), false).await;
    assert_eq!(r.status, 403, "no CSRF header: {}", r.body);

    // Deleting: bob may describe alice-a but not delete it; alice may.
    let bob = Some(("bob", "bob-secret"));
    let r = request(addr, "DELETE", "/ui/api/topics/alice-a", bob, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        request(addr, "DELETE", "/ui/api/topics/other", bob, None)
            .await
            .status,
        404,
        "not describable: existence not leaked"
    );
    let r = request(addr, "DELETE", "/ui/api/topics/alice-a", alice, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(b.context().catalog.get("alice-a").is_none());

    // The super user sees ACLs and users: names and mechanisms, never salts or keys.
    let admin = Some(("admin", "admin-secret"));
    let acls = get(addr, "/ui/api/acls", admin).await.json();
    assert_eq!(acls["acls"].as_array().map(Vec::len), Some(4));
    let users = get(addr, "/ui/api/users", admin).await;
    assert_eq!(users.status, 200);
    let stored = b
        .context()
        .security
        .credentials
        .get("alice", Mechanism::Sha256)
        .expect("alice");
    assert!(!users.body.contains(&stored.salt) && !users.body.contains(&stored.stored_key));
    let u = users.json();
    assert_eq!(u["scram"][1]["user"], "alice");
    assert_eq!(u["scram"][1]["mechanisms"][0]["mechanism"], "SCRAM-SHA-256");
    let all = get(addr, "/ui/api/topics", admin).await.json().to_string();
    assert!(
        all.contains("\"other\"") && all.contains("\"alice-new\""),
        "{all}"
    );
    b.stop().await;
}

fn certs(dir: &Path) {
    esker::tls::certs::generate(&esker::tls::certs::CertsRequest {
        out: dir.to_path_buf(),
        hostnames: Vec::new(),
        clients: vec!["alice".into()],
        ca_name: "console test CA".into(),
    })
    .expect("certificates");
}

fn connector(dir: &Path, client: bool) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if client {
        let chain = CertificateDer::pem_file_iter(dir.join("alice.pem"))
            .expect("client cert")
            .map(|c| c.expect("cert"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("alice.key")).expect("client key");
        b.with_client_auth_cert(chain, key).expect("client auth")
    } else {
        b.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_on_the_console_listener() {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    certs(certs_dir.path());
    let p = |f: &str| certs_dir.path().join(f).display().to_string();
    let (cert, key, ca) = (p("server.pem"), p("server.key"), p("ca.pem"));
    let b = TestBroker::start_with(&[
        ("console.listener", "127.0.0.1:0"),
        ("console.ssl.enabled", "true"),
        ("console.ssl.client.auth", "requested"),
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &key),
        ("ssl.ca.location", &ca),
        ("authorizer.class.name", "StandardAuthorizer"),
        (
            "ssl.principal.mapping.rules",
            "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
        ),
    ])
    .await;
    let addr = b.console_addr();
    // Not on the metrics listener (console.enable is off).
    assert_eq!(get(b.metrics_addr(), "/ui/", None).await.status, 404);
    b.context()
        .create_acls(vec![binding(
            "User:alice",
            Operation::Describe,
            ResourceType::Topic,
            "*",
            PatternType::Literal,
        )])
        .await
        .expect("acls");
    b.create_topic("t1", 1).await;

    let call = |client: bool, path: &'static str| {
        let tls = connector(certs_dir.path(), client);
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let s = tls.connect(name, tcp).await.expect("handshake");
            request_on(s, "GET", path, None, None, true).await
        }
    };
    // The certificate authenticates alice.
    let r = call(true, "/ui/api/session").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["principal"], "User:alice");
    let topics = call(true, "/ui/api/topics").await.json().to_string();
    assert!(topics.contains("\"t1\""), "{topics}");
    // No certificate, an authorizer: 401.
    assert_eq!(call(false, "/ui/api/session").await.status, 401);
    // Outside /ui: a redirect to the console.
    let r = call(true, "/").await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/ui/"));
    b.stop().await;
}

/// The lag a group shows is read live: a later commit changes it (the browser test polls the
/// same API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_follows_commits() {
    let b = TestBroker::start_with(&[("console.enable", "true")]).await;
    let addr = b.metrics_addr();
    b.create_topic("events", 1).await;
    produce_ten(&b, "events").await;
    commit(&b, "g", "events", 0);
    let lag = |v: Value| v["offsets"][0]["lag"].as_i64();
    assert_eq!(
        lag(get(addr, "/ui/api/groups/g", None).await.json()),
        Some(10)
    );
    commit(&b, "g", "events", 10);
    let r = get(addr, "/ui/api/groups/g", None).await.json();
    assert_eq!(lag(r), Some(0));
    b.stop().await;
}
