//! Entry points for the cargo-fuzz targets in `fuzz/` (and for regression tests of what they
//! found): thin wrappers around parsers and handlers that are otherwise private to their
//! layers. Not a stable API; hidden from the docs.
//!
//! Each function takes bytes as a peer would send them and must return (an answer or an
//! error), never panic and never wait without bound.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::auth::{ListenerInfo, Principal, SecurityProtocol, Session};
use crate::context::BrokerContext;
use crate::kafka::{Dispatch, Reply};
use crate::kinesis::sigv4::{self, AuthMode, Caller, Credentials, SignedRequest};
use crate::kinesis::{Encoding, Kinesis, KinesisError};

/// What one Kafka request frame led to.
#[derive(Debug)]
pub enum KafkaOutcome {
    /// Shorter than a request header: `net` refuses it before dispatch.
    TooShort,
    /// The connection would be closed (malformed or unsupported request).
    Closed(String),
    /// The response (or none, for `acks=0`).
    Reply(Reply),
    /// No answer within the time limit (a long poll, a throttle, a rebalance wait).
    TimedOut,
}

/// An in-process broker as the fuzz targets run it: one shard, 1 MiB segments, no Kinesis or
/// metrics listener, a PLAINTEXT listener on an ephemeral port, on a runtime of its own (one
/// worker thread) that the target drives with `block_on`.
pub struct FuzzBroker {
    /// The broker's runtime.
    pub rt: tokio::runtime::Runtime,
    /// The broker's shared state.
    pub ctx: Arc<BrokerContext>,
    /// The PLAINTEXT listener as `net` describes it, for [`kafka_request`].
    pub listener: Arc<ListenerInfo>,
    /// Kept reachable for the life of the harness (LeakSanitizer reports memory that only a
    /// discarded pointer held); the mutex makes the harness `Sync`, for a `static`.
    broker: Mutex<crate::Broker>,
}

/// Why a [`FuzzBroker`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum FuzzBrokerError {
    /// The runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The configuration was refused.
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The broker did not start.
    #[error("broker: {0}")]
    Broker(#[from] crate::broker::BrokerError),
}

impl FuzzBroker {
    /// Starts a broker with its data in `dir` and the `extra` configuration keys (which win
    /// over the defaults above).
    pub fn start(dir: &Path, extra: &[(&str, &str)]) -> Result<FuzzBroker, FuzzBrokerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(FuzzBrokerError::Runtime)?;
        let mut pairs: Vec<(String, String)> = [
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("num.shards", "1"),
            ("kinesis.listener", ""),
            ("metrics.listener", ""),
            ("log.segment.bytes", "1048576"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        pairs.push(("log.dirs".into(), dir.display().to_string()));
        let config = crate::Config::from_pairs(pairs)?;
        let broker = rt.block_on(crate::Broker::start(config))?;
        let ctx = broker.context().clone();
        let port = broker.kafka_addrs().first().map_or(0, |a| a.port());
        Ok(FuzzBroker {
            rt,
            ctx,
            listener: plaintext_listener(port),
            broker: Mutex::new(broker),
        })
    }

    /// Shuts the broker down gracefully (for tests: a fuzz target's broker lives as long as
    /// its process).
    pub fn shutdown(self) -> Result<(), FuzzBrokerError> {
        let broker = self
            .broker
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.rt.block_on(broker.shutdown())?;
        Ok(())
    }
}

/// A PLAINTEXT listener's description as `net` builds it, for [`kafka_request`].
pub fn plaintext_listener(port: u16) -> Arc<ListenerInfo> {
    Arc::new(ListenerInfo {
        name: "PLAINTEXT".into(),
        protocol: SecurityProtocol::Plaintext,
        advertised: ("127.0.0.1".into(), i32::from(port)),
    })
}

/// Handles one request frame (without its 4-byte size prefix) as a fresh connection on
/// `listener` would: the header decode, the API and version check, the handler, the encoded
/// response. The connection is `User:ANONYMOUS` unless the listener uses SASL. Gives up after
/// `limit`.
pub async fn kafka_request(
    ctx: &Arc<BrokerContext>,
    listener: &Arc<ListenerInfo>,
    frame: Bytes,
    limit: Duration,
) -> KafkaOutcome {
    // net::read_frame refuses frames shorter than api key + version + correlation id.
    if frame.len() < 8 {
        return KafkaOutcome::TooShort;
    }
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 50_000));
    let mut session = Session::new(listener.clone(), peer.ip().to_string());
    let work = async {
        match crate::kafka::dispatch(frame, ctx, peer, &mut session).await {
            Dispatch::Close(reason) => KafkaOutcome::Closed(reason),
            Dispatch::Respond(fut) => KafkaOutcome::Reply(fut.await),
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(KafkaOutcome::TimedOut)
}

/// Every Kinesis operation name the router knows, then some it refuses; a fuzz input picks one
/// by its first byte.
pub const KINESIS_OPERATIONS: &[&str] = &[
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreams",
    "ListTagsForStream",
    "PutRecord",
    "PutRecords",
    "RemoveTagsFromStream",
    "MergeShards",
    "SplitShard",
    "UpdateShardCount",
    "RegisterStreamConsumer",
    "DescribeStreamConsumer",
    "ListStreamConsumers",
    "DeregisterStreamConsumer",
    "SubscribeToShard",
    "StartStreamEncryption",
    "NoSuchOperation",
];

/// Opens the Kinesis front end over a running broker's context (the broker's own Kinesis
/// listener should be disabled, `kinesis.listener=`, so that only one owns the stream store).
pub fn kinesis_open(
    ctx: Arc<BrokerContext>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Arc<Kinesis>> {
    Kinesis::open(ctx, stop).map(Arc::new)
}

/// Runs one Kinesis request body through the router's decode, the operation's handler and the
/// encoder, as an anonymous caller. Returns the HTTP status and the body (the error document
/// for errors); event streams (SubscribeToShard) are dropped at once. Gives up after `limit`
/// (`None`).
pub async fn kinesis_request(
    k: &Arc<Kinesis>,
    operation: &str,
    body: &[u8],
    cbor: bool,
    limit: Duration,
) -> Option<(u16, Bytes)> {
    let encoding = if cbor { Encoding::Cbor } else { Encoding::Json };
    let caller = Caller {
        principal: Principal::anonymous(),
        region: "us-east-1".into(),
        ip: "127.0.0.1".into(),
    };
    let work = crate::kinesis::dispatch_operation(k, operation, body, encoding, &caller);
    let result = tokio::time::timeout(limit, work).await.ok()?;
    Some(match result {
        Ok(crate::kinesis::OperationReply::Body(b)) => (200, b),
        Ok(crate::kinesis::OperationReply::Events(_)) => (200, Bytes::new()),
        Err(e) => (e.status(), Bytes::from(error_text(&e))),
    })
}

fn error_text(e: &KinesisError) -> String {
    format!("{}: {}", e.type_name(), e.message())
}

/// Parses a raw HTTP/1.1 request (request line, header lines, a blank line, the body) and
/// authenticates it with SigV4 against `credentials`, at the time its `X-Amz-Date` names (so
/// a well-signed request reaches the signature comparison), then in dev mode (`kinesis.auth
/// = none`). Returns the principal, or the error's type and message.
pub fn sigv4_request(raw: &[u8], credentials: &Credentials) -> Result<String, String> {
    use hyper::header::{HeaderMap, HeaderName, HeaderValue};
    let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (raw, &[][..]),
    };
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut parts = request_line.splitn(3, ' ');
    let method = parts.next().unwrap_or("POST");
    let target = parts.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let req = SignedRequest {
        method,
        path,
        query,
        headers: &headers,
        authority: None,
        body,
    };
    let now = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::parse_amz_date)
        .unwrap_or(0);
    let dev = sigv4::authenticate(AuthMode::None, credentials, &req, now);
    if let Err(e) = &dev {
        // Dev mode accepts anything; an error here is a bug.
        return Err(format!("dev mode refused a request: {}", error_text(e)));
    }
    sigv4::authenticate(AuthMode::SigV4, credentials, &req, now)
        .map(|c| c.principal.to_string())
        .map_err(|e| error_text(&e))
}
