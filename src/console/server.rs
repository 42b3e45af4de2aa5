//! `console.listener`: the console on a port of its own, HTTP/1.1 or (with
//! `console.ssl.enabled`) HTTPS with the broker's certificate, and client certificates
//! (`console.ssl.client.auth`) whose mapped principal authenticates the caller, as on an SSL
//! Kafka listener. Everything outside `/ui` redirects to `/ui/`. Like the metrics endpoint it
//! takes no part in the connection drain and closes when the shutdown stops it.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Console, ConsoleConfig};
use crate::auth::Principal;
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

/// Accepts connections until `stop` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    console: Arc<Console>,
    tls: Option<Arc<TlsServer>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "console accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let console = console.clone();
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let ip = peer.ip();
            match tls {
                None => serve(stream, console, ip, None, stop).await,
                Some(tls) => {
                    let stream = match tls.accept(stream, &mut stop).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "console TLS handshake failed");
                            return;
                        }
                    };
                    let cert = match tls.peer_principal(stream.get_ref().1) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::info!(target: "esker::audit", ip = %ip, error = %e, "console client certificate refused");
                            return;
                        }
                    };
                    serve(stream, console, ip, cert, stop).await
                }
            }
        });
    }
    tracing::debug!("console listener closed");
}

async fn serve<S>(
    stream: S,
    console: Arc<Console>,
    ip: IpAddr,
    cert: Option<Principal>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let console = console.clone();
        let cert = cert.clone();
        async move {
            let resp = if req.uri().path().starts_with(super::PREFIX) {
                console.handle(req, ip, cert).await
            } else {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                r.headers_mut().insert(
                    hyper::header::LOCATION,
                    hyper::header::HeaderValue::from_static("/ui/"),
                );
                r
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
}
