//! Shared helpers for the integration tests: an in-process broker on an ephemeral port with a
//! temporary data directory, and rdkafka client configurations pointing at it.

#![allow(dead_code)]

pub mod cluster;
pub mod kinesis;
pub mod netns;
pub mod raw;
pub mod replica_check;

use std::time::Duration;

use esker::{Broker, Config};
use rdkafka::config::ClientConfig;

/// A broker running in this process, with its data directory.
pub struct TestBroker {
    pub broker: Option<Broker>,
    pub dir: tempfile::TempDir,
    pub overrides: Vec<(String, String)>,
}

impl TestBroker {
    /// The running broker's shared state.
    pub fn context(&self) -> std::sync::Arc<esker::context::BrokerContext> {
        self.broker.as_ref().expect("running").context().clone()
    }

    /// Creates `name` with `partitions` partitions and default settings.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        self.context()
            .create_topic(name, partitions, Default::default())
            .await
            .expect("create topic");
    }

    /// The address of the broker's metrics endpoint (HTTP).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.broker
            .as_ref()
            .and_then(|b| b.metrics_addr())
            .expect("metrics endpoint")
    }

    /// The address of the broker's own console listener (`console.listener`).
    pub fn console_addr(&self) -> std::net::SocketAddr {
        self.broker
            .as_ref()
            .and_then(|b| b.console_addr())
            .expect("console listener")
    }

    /// Starts a broker on 127.0.0.1:0 with a fresh data directory.
    pub async fn start() -> TestBroker {
        Self::start_with(&[]).await
    }

    /// Starts a broker with extra configuration keys.
    pub async fn start_with(overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let broker = Broker::start(config(dir.path(), &overrides, 0))
            .await
            .expect("broker starts");
        TestBroker {
            broker: Some(broker),
            dir,
            overrides,
        }
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.broker.as_ref().expect("running").bootstrap()
    }

    /// Shuts down gracefully and starts again on the same data directory and port.
    pub async fn restart(&mut self) {
        let broker = self.broker.take().expect("running");
        let port = broker.kafka_addrs()[0].port();
        broker.shutdown().await.expect("clean shutdown");
        let broker = Broker::start(config(self.dir.path(), &self.overrides, port))
            .await
            .expect("broker restarts");
        self.broker = Some(broker);
    }

    /// Graceful shutdown.
    pub async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("clean shutdown");
        }
    }
}

fn config(dir: &std::path::Path, overrides: &[(String, String)], port: u16) -> Config {
    let mut pairs = vec![
        (
            "listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("log.dirs".to_string(), dir.display().to_string()),
        ("num.shards".to_string(), "2".to_string()),
        ("kinesis.listener".to_string(), "127.0.0.1:0".to_string()),
        ("metrics.listener".to_string(), "127.0.0.1:0".to_string()),
    ];
    pairs.extend(overrides.iter().cloned());
    Config::from_pairs(pairs).expect("valid test config")
}

/// Producer configuration for the broker.
pub fn producer_config(bootstrap: &str, acks: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("enable.idempotence", "false")
        .set("broker.address.family", "v4");
    c
}

/// Consumer configuration (no group: partitions are assigned by the test).
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", "esker-test")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    c
}

/// Polls `f` every 50 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    eventually_async(what, limit, || {
        let got = f().ok_or("not yet");
        async move { got }
    })
    .await
}

/// Awaits `check` every 50 ms until it returns `Ok`, failing with `what` and the last `Err`
/// (why it is not there yet: the state seen, the error answered) after `limit`. For checks that
/// await: a client request, a scrape, a connect.
pub async fn eventually_async<T, E, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Generous timeout for client operations in tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A plain HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}");
    http_exchange(addr, &head, b"").await
}

/// One raw HTTP/1.1 exchange on a fresh connection: the request head (without the final empty
/// line), then `body` as it is; answers (status, body) within [`TIMEOUT`].
pub async fn http_exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut wire = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    wire.extend_from_slice(body);
    s.write_all(&wire).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}
