//! `console.listener`: the console on a port of its own, HTTP/1.1 or (with
//! `console.ssl.enabled`) HTTPS with the broker's certificate, and client certificates
//! (`console.ssl.client.auth`) whose mapped principal authenticates the caller, as on an SSL
//! Kafka listener. Everything outside `/ui` redirects to `/ui/`. It is served by the same accept
//! loop as the metrics endpoint ([`crate::net::http_listener`]): connection limits, idle and
//! slow-request deadlines, no part in the connection drain, closed when the shutdown stops it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Console, ConsoleConfig};
use crate::net::http_listener::{self, Caller, HttpListener};
use crate::tls::TlsServer;

/// Binds `console.listener` (the first address it resolves to); `None` when unset. A listener
/// that cannot be bound stops start-up (it is only ever set explicitly).
pub fn bind(config: &ConsoleConfig) -> std::io::Result<Option<std::net::TcpListener>> {
    let Some(addr) = config.listener.as_deref() else {
        return Ok(None);
    };
    let first = crate::kinesis::resolve_listener(addr)?
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("resolves to no address"))?;
    let sock = std::net::TcpListener::bind(first)?;
    sock.set_nonblocking(true)?;
    Ok(Some(sock))
}

/// The `listener` label of the console listener's connection series.
pub const LISTENER: &str = "CONSOLE";

/// Accepts connections until `stop` turns true. Like the metrics listener's, they count
/// against a limiter of their own (`max.connections`, `max.connections.per.ip`) and are closed
/// when idle or when a request head (or a TLS handshake) is too slow
/// ([`crate::net::http_listener`]).
pub async fn accept_loop(
    listener: TcpListener,
    console: Arc<Console>,
    tls: Option<Arc<TlsServer>>,
    stop: watch::Receiver<bool>,
) {
    let ctx = &console.ctx;
    let side = HttpListener {
        name: LISTENER,
        limiter: ctx.net.console.clone(),
        limits: ctx.net.config.clone(),
        metrics: ctx.metrics.listener(LISTENER),
        tls,
    };
    http_listener::accept_loop(listener, side, stop, move |req, caller: Caller| {
        let console = console.clone();
        async move {
            if req.uri().path().starts_with(super::PREFIX) {
                return console.handle(req, caller.ip, caller.cert).await;
            }
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            r.headers_mut().insert(
                hyper::header::LOCATION,
                hyper::header::HeaderValue::from_static("/ui/"),
            );
            r
        }
    })
    .await
}
