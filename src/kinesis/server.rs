//! The HTTP side: an accept loop that spreads connections over the shard runtimes, hyper
//! serving HTTP/1.1 and HTTP/2 on each (h2c with prior knowledge; with `kinesis.ssl.enabled`,
//! HTTPS after a TLS handshake on the connection's shard, ALPN h2 or http/1.1), and the router that
//! turns a request into an operation call: the request queue and memory pool shared with the
//! Kafka listeners (`queued.max.requests`, `queued.max.request.bytes`, taken before a body is
//! read), body limit, SigV4, `X-Amz-Target`, content type, and errors in AWS's shape (`{"__type", "message"}` with the error's status and
//! `x-amzn-ErrorType`). Every response carries `x-amzn-RequestId` and `x-amz-id-2`; CORS
//! preflights and non-POST requests are answered as AWS does (see [`handle`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::error::KinesisError;
use super::sigv4::{self, SignedRequest};
use super::{ops, Kinesis};
use crate::context::BrokerContext;
use crate::metrics::{LimitClose, ListenerMetrics};
use crate::net::http::{Activity, Guarded, Tracked};
use crate::net::Drain;

/// The `listener` label of the Kinesis endpoint's connection series.
pub const LISTENER: &str = "KINESIS";

/// The largest request body accepted: a PutRecords of 5 MiB of data, base64-encoded, with room
/// for the JSON around it.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The prefix of every `X-Amz-Target`.
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-amz-json-1.1` (boto3, the AWS CLI, the Rust and Go SDKs).
    Json,
    /// `application/x-amz-cbor-1.1` (the Java SDKs' default, the KPL and KCL).
    Cbor,
}

impl Encoding {
    /// The `Content-Type` of bodies in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/x-amz-json-1.1",
            Encoding::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

/// Accepts Kinesis connections until shutdown and serves each on a shard runtime.
pub async fn accept_loop(
    listener: TcpListener,
    kinesis: Arc<Kinesis>,
    tls: Option<Arc<crate::tls::TlsServer>>,
    mut stop: watch::Receiver<bool>,
    drain: Drain,
) {
    let mut next = 0usize;
    let connections = kinesis.ctx.metrics.listener(LISTENER);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "kinesis accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match kinesis.ctx.net.clients.try_open(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                connections.rejected(why);
                kinesis.ctx.net.clients.log_refusal(LISTENER, peer, why);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand over kinesis connection");
                continue;
            }
        };
        let shards = &kinesis.ctx.shards;
        let shard = &shards[next % shards.len()];
        next = next.wrapping_add(1);
        let kinesis = kinesis.clone();
        let mut stop = stop.clone();
        let guard = drain.enter();
        let tls = tls.clone();
        let open = connections.opened();
        let metrics = connections.clone();
        shard.spawn(async move {
            let _guard = guard;
            let _open = open;
            let _permit = permit;
            let read_timeout = kinesis.ctx.net.config.request_read_timeout;
            match (tokio::net::TcpStream::from_std(std_stream), tls) {
                (Ok(stream), None) => serve_connection(stream, kinesis, stop, peer, metrics).await,
                (Ok(stream), Some(tls)) => {
                    let handshake = tls.accept(stream, &mut stop);
                    let accepted = match read_timeout {
                        Some(t) => tokio::time::timeout(t, handshake).await.ok(),
                        None => Some(handshake.await),
                    };
                    match accepted {
                        Some(Ok(stream)) => {
                            serve_connection(stream, kinesis, stop, peer, metrics).await
                        }
                        Some(Err(crate::tls::TlsError::Stopped)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "closing kinesis connection")
                        }
                        None => {
                            metrics.closed(LimitClose::SlowFrame);
                            tracing::info!(%peer, "closing kinesis connection: TLS handshake not completed within socket.request.read.timeout.ms");
                        }
                    }
                }
                (Err(e), _) => tracing::warn!(error = %e, "cannot register kinesis connection"),
            }
        });
    }
}

/// Resolves once shutdown is signalled (without holding the watch's lock guard).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

async fn serve_connection<S>(
    stream: S,
    kinesis: Arc<Kinesis>,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
    metrics: ListenerMetrics,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = kinesis.ctx.net.config.clone();
    let activity = Activity::new();
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let kinesis = kinesis.clone();
        let guard = requests.request();
        async move {
            let resp = handle(&kinesis, req, peer.ip()).await;
            Ok::<_, Infallible>(resp.map(|body| Guarded::new(body, guard)))
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(
        TokioIo::new(Tracked::new(stream, activity.clone())),
        service,
    );
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "kinesis connection ended");
            }
        }
        why = activity.watch(limits.idle_timeout, limits.request_read_timeout) => {
            metrics.closed(why);
            tracing::info!(%peer, reason = ?why, "closing kinesis connection (connections.max.idle.ms / socket.request.read.timeout.ms)");
        }
        _ = stopped(&mut stop) => {
            // Finish in-flight requests, accept no new ones.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// What an operation answers: a whole body, or an event stream (SubscribeToShard) whose
/// messages arrive on a channel and end when it closes.
pub enum Reply {
    /// The encoded response.
    Body(Bytes),
    /// Event-stream messages.
    Events(mpsc::Receiver<Bytes>),
}

/// A response body: whole (with its length), or streamed from a channel.
pub enum ResponseBody {
    /// Sent at once.
    Full(Option<Bytes>),
    /// Sent as the messages arrive.
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => {
                std::task::Poll::Ready(b.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            ResponseBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|m| m.map(|b| Ok(hyper::body::Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => hyper::body::SizeHint::with_exact(0),
            ResponseBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// The content type of an event stream.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// What browsers may read of an answer to a cross-origin request (AWS's list).
const EXPOSE_HEADERS: &str =
    "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date";

/// How long a browser may cache a preflight answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "172800";

/// An `x-amz-id-2` value: 72 random bytes in base64, as AWS sends.
fn amz_id_2() -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(80);
    for _ in 0..5 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(72);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Serves one request. Every answer carries `x-amzn-RequestId` and (but a CORS preflight's)
/// `x-amz-id-2`; a request with an `Origin` gets `Access-Control-Allow-Origin: *`. An
/// `OPTIONS` with an `Origin` is a CORS preflight, answered 200 with the methods and headers
/// asked for; any other method but `POST` is AWS's XML 403 `AccessDeniedException`.
pub async fn handle(
    kinesis: &Arc<Kinesis>,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Response<ResponseBody> {
    use hyper::header::{self, HeaderValue};
    let request_id = uuid::Uuid::new_v4().to_string();
    let origin = req.headers().contains_key(header::ORIGIN);
    let preflight = origin && req.method() == hyper::Method::OPTIONS;
    let mut resp = if preflight {
        let mut resp = Response::new(ResponseBody::Full(None));
        let h = resp.headers_mut();
        for (asked, allow) in [
            (
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
            ),
            (
                header::ACCESS_CONTROL_REQUEST_METHOD,
                header::ACCESS_CONTROL_ALLOW_METHODS,
            ),
        ] {
            if let Some(v) = req.headers().get(&asked) {
                h.insert(allow, v.clone());
            }
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        resp
    } else if req.method() != hyper::Method::POST {
        let mut resp = Response::new(ResponseBody::Full(Some(Bytes::from_static(
            ACCESS_DENIED_XML,
        ))));
        *resp.status_mut() = StatusCode::FORBIDDEN;
        resp
    } else {
        answer(kinesis, req, peer).await
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    if !preflight {
        if let Ok(v) = HeaderValue::from_str(&amz_id_2()) {
            headers.insert("x-amz-id-2", v);
        }
    }
    if origin {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if !preflight {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
    resp
}

/// Answers a POST: the operation's reply or its error, in the request's encoding.
async fn answer(
    kinesis: &Arc<Kinesis>,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Response<ResponseBody> {
    let (encoding, result) = match route(kinesis, req, peer).await {
        Routed::Operation(encoding, result) => (encoding, result),
        Routed::Raw(resp) => return resp,
    };
    let mut content_type = encoding.content_type();
    let (status, body, error_type) = match result {
        // An operation without output answers an empty body, as AWS does.
        Ok(Reply::Body(body)) if body.is_empty() => {
            (StatusCode::OK, ResponseBody::Full(None), None)
        }
        Ok(Reply::Body(body)) => (StatusCode::OK, ResponseBody::Full(Some(body)), None),
        Ok(Reply::Events(rx)) => {
            content_type = EVENT_STREAM;
            (StatusCode::OK, ResponseBody::Stream(rx), None)
        }
        Err(e) => {
            if e.status() >= 500 {
                tracing::warn!(error = %e, kind = e.type_name(), "kinesis request failed");
            }
            (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                ResponseBody::Full(Some(error_body(&e, encoding))),
                Some(e.type_name()),
            )
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Some(t) = error_type {
        headers.insert(
            "x-amzn-ErrorType",
            hyper::header::HeaderValue::from_static(t),
        );
    }
    resp
}

/// `{"__type": ..., "message": ...}` in the request's encoding.
/// The message is left out when empty (AWS's answer to a body it cannot parse) and is under
/// [`KinesisError::message_key`].
fn error_body(e: &KinesisError, encoding: Encoding) -> Bytes {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), e.type_name().into());
    if !e.message().is_empty() {
        body.insert(e.message_key().into(), e.message().into());
    }
    let body = serde_json::Value::Object(body);
    match encoding {
        Encoding::Json => Bytes::from(body.to_string()),
        Encoding::Cbor => {
            let mut out = Vec::new();
            match ciborium::into_writer(&body, &mut out) {
                Ok(()) => Bytes::from(out),
                Err(_) => Bytes::new(),
            }
        }
    }
}

/// What the router made of a request: an operation's result, or an answer AWS gives before
/// any operation is known (in a content type of its own).
enum Routed {
    Operation(Encoding, Result<Reply, KinesisError>),
    Raw(Response<ResponseBody>),
}

/// An answer with a fixed body.
fn raw(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> Routed {
    let mut resp = Response::new(ResponseBody::Full(Some(body)));
    *resp.status_mut() = status;
    if let Some(t) = content_type {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(t),
        );
    }
    Routed::Raw(resp)
}

/// The XML 403 AWS answers when it cannot tell the operation.
const ACCESS_DENIED_XML: &[u8] = b"<AccessDeniedException>\n  <Message>Unable to determine \
      service/operation name to be authorized</Message>\n</AccessDeniedException>\n";

/// The checks AWS's front end makes before authentication, in its order (kinesalite shows
/// it): an empty body, the content type, the target. `Some` is the answer.
fn front_door(content_type: &str, target: &str, body: &[u8]) -> Option<Routed> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let (service, operation) = {
        let mut parts = target.split('.');
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
    };
    let known = service == TARGET_PREFIX.trim_end_matches('.')
        && super::validate::operation(operation).is_some();
    if body.is_empty() {
        let encoding = if mime == Encoding::Json.content_type() {
            Encoding::Json
        } else {
            Encoding::Cbor
        };
        let e = if known {
            KinesisError::Serialization(String::new())
        } else {
            KinesisError::UnknownOperation(String::new())
        };
        return Some(Routed::Operation(encoding, Err(e)));
    }
    if mime == "application/json" {
        // AWS's generic JSON protocol answer: this service does not speak it.
        let parses = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object());
        let (status, kind) = if parses {
            (StatusCode::NOT_FOUND, "UnknownOperationException")
        } else {
            (StatusCode::BAD_REQUEST, "SerializationException")
        };
        let body = format!(
            "{{\"Output\":{{\"__type\":\"com.amazon.coral.service#{kind}\"}},\"Version\":\"1.0\"}}"
        );
        return Some(raw(status, Some("application/json"), Bytes::from(body)));
    }
    if mime != Encoding::Json.content_type() && mime != Encoding::Cbor.content_type() {
        tracing::debug!(
            content_type,
            target,
            "kinesis request with an unknown content type"
        );
        return Some(if service.is_empty() || operation.is_empty() {
            raw(
                StatusCode::FORBIDDEN,
                None,
                Bytes::from_static(ACCESS_DENIED_XML),
            )
        } else {
            raw(
                StatusCode::NOT_FOUND,
                None,
                Bytes::from_static(b"<UnknownOperationException/>\n"),
            )
        });
    }
    None
}

async fn route(kinesis: &Arc<Kinesis>, req: Request<Incoming>, peer: std::net::IpAddr) -> Routed {
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let encoding = if content_type.starts_with("application/x-amz-cbor") {
        Encoding::Cbor
    } else {
        Encoding::Json
    };
    // Kafka's order: a place in the request queue, then the body's bytes from the memory pool
    // (`queued.max.request.bytes`), and only then the body itself. Time spent waiting for
    // either does not count against the read timeout.
    let announced = hyper::body::Body::size_hint(&body).exact();
    let announced = match announced.map(usize::try_from) {
        Some(Ok(n)) if n <= MAX_BODY_BYTES => Some(n),
        None => None,
        Some(_) => {
            tracing::info!(%peer, length = ?announced, "kinesis request body over the limit refused before reading it");
            return Routed::Operation(encoding, Err(BodyError::TooLarge.into()));
        }
    };
    let limits = &kinesis.ctx.net;
    let place = limits.queue.enter().await;
    let mut memory = match announced {
        Some(0) => Default::default(),
        // A body of unknown length (HTTP/1 chunked, HTTP/2 without content-length) reserves
        // the most it may take, then gives back what it did not use.
        n => limits.reserve(n.unwrap_or(MAX_BODY_BYTES)).await,
    };
    let read = read_body(body, announced);
    let read = match kinesis.ctx.net.config.request_read_timeout {
        Some(t) => match tokio::time::timeout(t, read).await {
            Ok(r) => r,
            Err(_) => {
                tracing::info!(%peer, "kinesis request body not received within socket.request.read.timeout.ms");
                return Routed::Operation(
                    encoding,
                    Err(KinesisError::Serialization(format!(
                        "the request body was not received within {} ms",
                        t.as_millis()
                    ))),
                );
            }
        },
        None => read.await,
    };
    let body = match read {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "kinesis request body not read");
            return Routed::Operation(encoding, Err(e.into()));
        }
    };
    if announced.is_none() {
        memory.shrink_to(body.capacity());
    }
    // The bytes stay reserved until the operation has answered.
    crate::net::limits::run_request(
        operate(
            kinesis,
            &parts,
            body.freeze(),
            &content_type,
            encoding,
            peer,
        ),
        place,
        memory,
    )
    .await
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// Longer than [`MAX_BODY_BYTES`] (announced or as it arrived).
    #[error("length limit exceeded")]
    TooLarge,
    /// The connection failed or the body ended early.
    #[error("{0}")]
    Io(#[from] hyper::Error),
}

impl From<BodyError> for KinesisError {
    fn from(e: BodyError) -> Self {
        KinesisError::Serialization(format!(
            "cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}"
        ))
    }
}

/// Reads a request body into one buffer: of its announced length when known (so the buffer
/// is the size the pool reserved), else grown as the body arrives, never past
/// [`MAX_BODY_BYTES`].
async fn read_body(mut body: Incoming, announced: Option<usize>) -> Result<BytesMut, BodyError> {
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > announced.unwrap_or(MAX_BODY_BYTES) {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Routes a request whose body has been read: the front-door checks, authentication, then the
/// operation.
async fn operate(
    kinesis: &Arc<Kinesis>,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    content_type: &str,
    encoding: Encoding,
    peer: std::net::IpAddr,
) -> Routed {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(answer) = front_door(content_type, target, &body) {
        return answer;
    }
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body: &body,
    };
    let caller = match sigv4::authenticate(
        kinesis.config.auth,
        &kinesis.config.credentials,
        &signed,
        BrokerContext::now_ms(),
    ) {
        Ok(c) => sigv4::Caller {
            ip: peer.to_string(),
            ..c
        },
        Err(e) => return Routed::Operation(encoding, Err(e)),
    };
    // AWS answers an unknown operation without a message.
    let operation = match target.strip_prefix(TARGET_PREFIX) {
        Some(op) if super::validate::operation(op).is_some() => op,
        _ => {
            tracing::debug!(target, "kinesis request for an unknown operation");
            return Routed::Operation(encoding, Err(KinesisError::UnknownOperation(String::new())));
        }
    };
    tracing::trace!(operation, principal = %caller.principal, "kinesis request");
    Routed::Operation(
        encoding,
        ops::dispatch(kinesis, operation, &body, encoding, &caller).await,
    )
}
