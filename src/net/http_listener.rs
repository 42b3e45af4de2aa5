//! The accept loop of the broker's side HTTP listeners, `metrics.listener` and
//! `console.listener`, run as tasks on shard 0's runtime (unlike the Kinesis endpoint, they
//! are not spread over the shards and take no part in the connection drain). One loop gives
//! both the same rules: a connection limiter of their own ([`ConnectionLimiter`]), the idle and
//! slow-request-head deadlines of [`super::http`], optional TLS with the handshake bounded by
//! `socket.request.read.timeout.ms`, the listener's connection series, and a graceful stop.
//! What a request gets is the caller's handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::http::{Activity, Guarded, Tracked};
use super::limits::{ConnectionLimiter, NetLimitsConfig};
use crate::auth::Principal;
use crate::metrics::{LimitClose, ListenerMetrics};
use crate::tls::{TlsError, TlsServer};

/// One side HTTP listener: its name and what its connections count against.
#[derive(Clone)]
pub struct HttpListener {
    /// The `listener` label of its connection series, and its name in log lines.
    pub name: &'static str,
    /// The limiter its connections count against.
    pub limiter: Arc<ConnectionLimiter>,
    /// `connections.max.idle.ms` and `socket.request.read.timeout.ms` (with the limits the
    /// limiter was built from).
    pub limits: NetLimitsConfig,
    /// Its connection series.
    pub metrics: ListenerMetrics,
    /// TLS, when the listener speaks HTTPS.
    pub tls: Option<Arc<TlsServer>>,
}

/// Who sent a request: the peer's address and, on HTTPS with a verified client certificate,
/// the principal it maps to.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The peer's IP address.
    pub ip: IpAddr,
    /// The mapped principal of the client certificate.
    pub cert: Option<Principal>,
}

/// Accepts connections on `listener` until `stop` turns true and serves each (HTTP/1.1 or
/// HTTP/2) with `handle`.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    side: HttpListener,
    mut stop: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Request<Incoming>, Caller) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let name = side.name;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match side.limiter.try_open(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                side.metrics.rejected(why);
                side.limiter.log_refusal(name, peer, why);
                continue;
            }
        };
        let open = side.metrics.opened();
        let side = side.clone();
        let handle = handle.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let Some(tls) = side.tls.clone() else {
                let caller = Caller {
                    ip: peer.ip(),
                    cert: None,
                };
                return serve(stream, &side, peer, caller, stop, handle).await;
            };
            let handshake = tls.accept(stream, &mut stop);
            let accepted = match side.limits.request_read_timeout {
                Some(t) => tokio::time::timeout(t, handshake).await.ok(),
                None => Some(handshake.await),
            };
            let stream = match accepted {
                Some(Ok(s)) => s,
                Some(Err(TlsError::Stopped)) => return,
                Some(Err(e)) => {
                    tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                None => {
                    side.metrics.closed(LimitClose::SlowFrame);
                    tracing::debug!(listener = name, %peer, "closing connection: TLS handshake not completed within socket.request.read.timeout.ms");
                    return;
                }
            };
            let cert = match tls.peer_principal(stream.get_ref().1) {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(target: "esker::audit", listener = name, ip = %peer.ip(), error = %e, "client certificate refused");
                    return;
                }
            };
            let caller = Caller {
                ip: peer.ip(),
                cert,
            };
            serve(stream, &side, peer, caller, stop, handle).await
        });
    }
    tracing::debug!(listener = name, "listener closed");
}

/// Serves one connection until it ends, a deadline closes it, or the stop asks it to finish.
async fn serve<S, H, F>(
    stream: S,
    side: &HttpListener,
    peer: SocketAddr,
    caller: Caller,
    mut stop: watch::Receiver<bool>,
    handle: H,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Caller) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let activity = Activity::new();
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = requests.request();
        let resp = handle(req, caller.clone());
        async move { Ok::<_, Infallible>(resp.await.map(|body| Guarded::new(body, guard))) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        why = activity.watch(side.limits.idle_timeout, side.limits.request_read_timeout) => {
            side.metrics.closed(why);
            tracing::debug!(listener = side.name, %peer, reason = ?why, "closing connection");
        }
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
}
