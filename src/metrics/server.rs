//! The metrics endpoint on `metrics.listener` (HTTP/1.1, hyper, as the Kinesis endpoint):
//! `GET /metrics` (Prometheus text format), `GET /healthz` (200 while the process serves) and
//! `GET /readyz` (200 once logs are loaded and listeners bound, 503 before and while shutting
//! down), and the web console under `/ui` when `console.enable` is set (see
//! [`crate::console`]). It takes no part in the connection drain: it keeps answering (`/readyz` 503) until
//! the shutdown closes it just before the shards stop.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::context::BrokerContext;
use crate::net::http_listener::{self, Caller, HttpListener};

/// Binds `metrics.listener` (the first address it resolves to). A listener left at its default
/// is best effort: if its port is taken the broker runs without it, with a warning.
pub fn bind(config: &super::MetricsConfig) -> std::io::Result<Option<std::net::TcpListener>> {
    let Some(addr) = config.listener.as_deref() else {
        return Ok(None);
    };
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let first = crate::kinesis::resolve_listener(addr)?
            .into_iter()
            .next()
            .ok_or_else(|| std::io::Error::other("resolves to no address"))?;
        let sock = std::net::TcpListener::bind(first)?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    };
    match bind() {
        Ok(sock) => Ok(Some(sock)),
        Err(e) if config.listener_explicit => Err(e),
        Err(e) => {
            tracing::warn!(addr, error = %e, "cannot bind the default metrics.listener; metrics are not served");
            Ok(None)
        }
    }
}

/// The `listener` label of the metrics endpoint's connection series.
pub const LISTENER: &str = "METRICS";

/// Accepts connections until `stop` turns true. Connections count against their own limiter
/// (`max.connections`, `max.connections.per.ip`), apart from the client listeners', and are
/// closed when idle or when a request head is too slow ([`crate::net::http_listener`]).
pub async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<BrokerContext>,
    console: Option<Arc<crate::console::Console>>,
    stop: watch::Receiver<bool>,
) {
    let side = HttpListener {
        name: LISTENER,
        limiter: ctx.net.monitoring.clone(),
        limits: ctx.net.config.clone(),
        metrics: ctx.metrics.listener(LISTENER),
        tls: None,
    };
    http_listener::accept_loop(listener, side, stop, move |req, caller: Caller| {
        let ctx = ctx.clone();
        let console = console.clone();
        async move {
            match &console {
                Some(c) if req.uri().path().starts_with(crate::console::PREFIX) => {
                    c.handle(req, caller.ip, None).await
                }
                _ => handle(&ctx, req).await,
            }
        }
    })
    .await
}

async fn handle(ctx: &BrokerContext, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let m = &ctx.metrics;
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(m.render(ctx).await),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok")),
        (&Method::GET, "/readyz") if m.is_ready() => {
            (StatusCode::OK, "text/plain", Bytes::from_static(b"ready"))
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"not ready"),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found"),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}
