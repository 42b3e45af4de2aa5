//! Network layer: listeners and connections. It knows bytes, not the protocol: size-prefixed
//! frames (`socket.request.max.bytes` checked before anything is allocated), pipelining with
//! responses written in request order, and the connection side of graceful shutdown.
//!
//! Accept loops run on shard 0; each accepted connection is handed to the next shard's runtime
//! round-robin, and its reader and writer run there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::auth::{ListenerInfo, Session};
use crate::broker::BrokerContext;
use crate::kafka::{self, Dispatch, Reply};

/// Counts live connections so shutdown can wait for them to finish.
#[derive(Clone, Default)]
pub struct Drain {
    inner: Arc<(AtomicUsize, Notify)>,
}

impl Drain {
    pub(crate) fn enter(&self) -> DrainGuard {
        self.inner.0.fetch_add(1, Ordering::SeqCst);
        DrainGuard(self.clone())
    }

    /// Live connections.
    pub fn count(&self) -> usize {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Resolves when no connection is left.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub(crate) struct DrainGuard(Drain);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.0.inner.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.inner.1.notify_waiters();
        }
    }
}

/// Accepts connections until shutdown and spreads them over the shards.
pub async fn accept_loop(
    listener: TcpListener,
    info: Arc<ListenerInfo>,
    ctx: Arc<BrokerContext>,
    mut stop: watch::Receiver<bool>,
    drain: Drain,
) {
    let mut next = 0usize;
    let connections = ctx.metrics.listener(&info.name);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand over connection");
                continue;
            }
        };
        let shard = &ctx.shards[next % ctx.shards.len()];
        next = next.wrapping_add(1);
        let ctx = ctx.clone();
        let stop = stop.clone();
        let guard = drain.enter();
        let info = info.clone();
        let open = connections.opened();
        shard.spawn(async move {
            let _guard = guard;
            let _open = open;
            match TcpStream::from_std(std_stream) {
                Ok(stream) => serve_connection(stream, peer, info, ctx, stop).await,
                Err(e) => tracing::warn!(error = %e, "cannot register connection"),
            }
        });
    }
    tracing::debug!("listener closed");
}

/// Why a connection's reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Eof,
    /// The size prefix is negative or above `socket.request.max.bytes`.
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max})")]
    TooLarge {
        /// Announced size.
        size: i64,
        /// The limit.
        max: usize,
    },
    /// A frame too short to hold a request header.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// The connection failed or was closed in the middle of a frame.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one size-prefixed frame. The size is checked before the buffer is allocated.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Eof),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as usize > max {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max,
        });
    }
    let size = size as usize;
    // api key + version + correlation id
    if size < 8 {
        return Err(FrameError::TooShort(size));
    }
    let mut buf = BytesMut::zeroed(size);
    r.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    info: Arc<ListenerInfo>,
    ctx: Arc<BrokerContext>,
    mut stop: watch::Receiver<bool>,
) {
    tracing::debug!(%peer, listener = %info.name, "connection opened");
    let mut session = Session::new(info, peer.ip().to_string());
    let (read_half, write_half) = stream.into_split();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, read_half);
    let (tx, rx) = mpsc::channel::<JoinHandle<Reply>>(ctx.config.max_inflight_per_connection);
    let writer = tokio::spawn(write_responses(write_half, rx, peer));
    let max = ctx.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            f = read_frame(&mut reader, max) => f,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(FrameError::Eof) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        match kafka::dispatch(frame, &ctx, peer, &mut session).await {
            Dispatch::Respond(fut) => {
                let handle = tokio::spawn(fut);
                if tx.send(handle).await.is_err() {
                    break;
                }
                if session.close_after_response {
                    // A failed SASL authentication: answer, then close.
                    tracing::info!(%peer, principal = %session.principal, "closing connection after failed authentication");
                    break;
                }
            }
            Dispatch::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    // Let the writer send every response already in flight, then close.
    drop(tx);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

/// Writes responses in the order the requests were read, whatever order they complete in.
async fn write_responses(
    write_half: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<JoinHandle<Reply>>,
    peer: SocketAddr,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, write_half);
    let mut next = rx.recv().await;
    while let Some(handle) = next.take() {
        let response = match handle.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%peer, error = %e, "request handler failed; closing connection");
                break;
            }
        };
        match response {
            Reply::Frame(bytes) => {
                if let Err(e) = w.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "write failed");
                    return;
                }
            }
            Reply::Nothing => {}
            Reply::Close => break,
        }
        // Pipelined responses that are already complete share one write; anything else
        // (e.g. a long-polling fetch) must not hold back what is buffered.
        next = rx.try_recv().ok();
        if !next.as_ref().is_some_and(|h| h.is_finished()) {
            if let Err(e) = w.flush().await {
                tracing::debug!(%peer, error = %e, "flush failed");
                return;
            }
            if next.is_none() {
                next = rx.recv().await;
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.into_inner().shutdown().await;
}
