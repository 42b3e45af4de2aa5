//! Network layer: listeners and connections. It knows bytes, not the protocol: size-prefixed
//! frames (`socket.request.max.bytes` checked before anything is allocated), pipelining with
//! responses written in request order, and the connection side of graceful shutdown.
//!
//! Accept loops run on shard 0; each accepted connection is handed to the next shard's runtime
//! round-robin, and its reader and writer run there. On `SSL`/`SASL_SSL` listeners the TLS
//! handshake ([`crate::tls`]) runs there first; the connection is then served the same way over
//! the TLS stream (plaintext connections keep their zero-cost TCP halves).
//!
//! Before a frame's body is read, the connection takes a place in the broker-wide request
//! queue (`queued.max.requests`) and reserves the frame's bytes in the memory pool
//! (`queued.max.request.bytes`); the reader closes connections that stay idle or send a frame
//! too slowly ([`limits`]).
//!
//! Responses are written from an [`OutQueue`]: small frames coalesced, large chunks by
//! reference with `writev`, and file chunks (a fetch's record sets left in the segment files)
//! with `sendfile(2)` on plaintext TCP, or read and written on streams that transform the
//! bytes (TLS).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::auth::{ListenerInfo, Principal, SecurityProtocol, Session};
use crate::context::BrokerContext;
use crate::kafka::frame::Chunk;
use crate::kafka::{self, Dispatch, Reply};
use crate::log::FileRegion;
use crate::metrics::{LimitClose, ListenerMetrics};

pub mod http;
pub mod http_listener;
pub mod limits;

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

/// A connection's byte stream, split into the reader and writer halves that run in separate
/// tasks.
pub trait Connection: Send + 'static {
    /// The read half.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The write half.
    type Writer: ResponseWriter;
    /// Splits the stream.
    fn split(self) -> (Self::Reader, Self::Writer);
}

/// A connection's write half, as far as file chunks are concerned.
pub trait ResponseWriter: AsyncWrite + Unpin + Send + 'static {
    /// The TCP socket underneath when bytes reach it unchanged (so `sendfile` may write to it
    /// directly); `None` for streams that transform them (TLS).
    fn plain_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl ResponseWriter for tokio::net::tcp::OwnedWriteHalf {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl ResponseWriter for tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>> {}

impl Connection for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl Connection for tokio_rustls::server::TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// Accepts connections until shutdown and spreads them over the shards. `tls` is the
/// listener's TLS acceptor on `SSL`/`SASL_SSL` listeners.
pub async fn accept_loop(
    listener: TcpListener,
    info: Arc<ListenerInfo>,
    tls: Option<Arc<crate::tls::TlsServer>>,
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
        let permit = match ctx.net.try_open_kafka(&info.name, peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                connections.rejected(why);
                ctx.net.clients.log_refusal(&info.name, peer, why);
                drop(stream);
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
        let tls = tls.clone();
        let open = connections.opened();
        let metrics = connections.clone();
        shard.spawn(async move {
            let _guard = guard;
            let _open = open;
            let _permit = permit;
            let conn = Conn {
                peer,
                info,
                ctx,
                stop,
                metrics,
            };
            match (TcpStream::from_std(std_stream), tls) {
                (Ok(stream), None) => serve_connection(stream, conn, None).await,
                (Ok(stream), Some(tls)) => serve_tls(stream, conn, &tls).await,
                (Err(e), _) => tracing::warn!(error = %e, "cannot register connection"),
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
    let size = read_frame_size(r, max).await?;
    read_frame_body(r, size).await
}

/// Reads a frame's size prefix and checks it against `max` and the request header's size.
pub async fn read_frame_size<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<usize, FrameError> {
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
    Ok(size)
}

/// Reads a frame's `size` bytes (after its prefix).
pub async fn read_frame_body<R: AsyncReadExt + Unpin>(
    r: &mut R,
    size: usize,
) -> Result<Bytes, FrameError> {
    // Read into the spare capacity: no zero-filling of a buffer the socket overwrites anyway,
    // and never past this frame's end (the next frame stays in the reader).
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        let remaining = size - buf.len();
        if r.read_buf(&mut bytes::BufMut::limit(&mut buf, remaining))
            .await?
            == 0
        {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(buf.freeze())
}

/// Runs the TLS handshake, works out the certificate principal (SSL listeners), then serves the
/// connection over TLS. A failed handshake closes the connection with a warning.
async fn serve_tls(stream: TcpStream, mut conn: Conn, tls: &crate::tls::TlsServer) {
    let (peer, listener) = (conn.peer, conn.info.name.clone());
    // The handshake is a frame like any other: it must complete within the read timeout.
    let handshake = tls.accept(stream, &mut conn.stop);
    let stream = match conn.ctx.net.config.request_read_timeout {
        Some(limit) => match tokio::time::timeout(limit, handshake).await {
            Ok(r) => r,
            Err(_) => {
                conn.metrics.closed(LimitClose::SlowFrame);
                tracing::info!(%peer, %listener, "closing connection: TLS handshake not completed within socket.request.read.timeout.ms");
                return;
            }
        },
        None => handshake.await,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(crate::tls::TlsError::Stopped) => return,
        Err(e) => {
            tracing::warn!(%peer, %listener, error = %e, "closing connection");
            return;
        }
    };
    // On SASL_SSL the SASL exchange decides the principal; a certificate does not.
    let principal = if conn.info.protocol == SecurityProtocol::Ssl {
        match tls.peer_principal(stream.get_ref().1) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%peer, %listener, error = %e, "closing connection");
                return;
            }
        }
    } else {
        None
    };
    serve_connection(stream, conn, principal).await;
}

/// What a connection's tasks share about it.
struct Conn {
    peer: SocketAddr,
    info: Arc<ListenerInfo>,
    ctx: Arc<BrokerContext>,
    stop: watch::Receiver<bool>,
    metrics: ListenerMetrics,
}

/// Why a connection's reader stopped waiting for the next frame.
enum Wait {
    /// Bytes of a frame are buffered.
    Frame,
    /// The peer closed the connection.
    Eof,
    /// Nothing read for `connections.max.idle.ms` and nothing in flight.
    Idle,
    /// Shutdown.
    Stopped,
    /// The socket failed.
    Io(std::io::Error),
}

/// Waits until the first byte of the next frame is buffered. The connection is idle meanwhile:
/// after `idle` with no request in flight (`inflight`, counted by the reader and the writer)
/// it is given up. Waiting on `fill_buf` loses no byte when the timer fires first.
async fn wait_for_frame<R: AsyncRead + Unpin>(
    reader: &mut tokio::io::BufReader<R>,
    idle: Option<std::time::Duration>,
    inflight: &AtomicUsize,
    stop: &mut watch::Receiver<bool>,
) -> Wait {
    use tokio::io::AsyncBufReadExt;
    loop {
        if !reader.buffer().is_empty() {
            return Wait::Frame;
        }
        let fill = async {
            match idle {
                Some(d) => tokio::time::timeout(d, reader.fill_buf())
                    .await
                    .map(|r| r.map(|b| b.is_empty())),
                None => Ok(reader.fill_buf().await.map(|b| b.is_empty())),
            }
        };
        let filled = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Wait::Stopped,
            f = fill => f,
        };
        match filled {
            Ok(Ok(true)) => return Wait::Eof,
            Ok(Ok(false)) => return Wait::Frame,
            Ok(Err(e)) => return Wait::Io(e),
            // A long-poll or a slow handler: not idle while it runs.
            Err(_) if inflight.load(Ordering::Acquire) > 0 => continue,
            Err(_) => return Wait::Idle,
        }
    }
}

/// Runs `fut` unless shutdown comes first, and within `limit` when set (`Err(())` on timeout).
async fn bounded<F: std::future::Future>(
    stop: &mut watch::Receiver<bool>,
    limit: Option<std::time::Duration>,
    fut: F,
) -> Option<Result<F::Output, ()>> {
    let run = async {
        match limit {
            Some(d) => tokio::time::timeout(d, fut).await.map_err(drop),
            None => Ok(fut.await),
        }
    };
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        r = run => Some(r),
    }
}

async fn serve_connection<S: Connection>(stream: S, conn: Conn, principal: Option<Principal>) {
    let Conn {
        peer,
        info,
        ctx,
        mut stop,
        metrics,
    } = conn;
    tracing::debug!(%peer, listener = %info.name, principal = ?principal, "connection opened");
    let listener = info.name.clone();
    let mut session = Session::new(info, peer.ip().to_string());
    if let Some(p) = principal {
        session.principal = Arc::new(p);
    }
    let (read_half, write_half) = stream.split();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, read_half);
    let (tx, rx) = mpsc::channel::<JoinHandle<Reply>>(ctx.config.max_inflight_per_connection);
    let inflight = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_responses(write_half, rx, peer, inflight.clone()));
    let max = ctx.config.socket_request_max_bytes;
    let limits = &ctx.net;
    let read_timeout = limits.config.request_read_timeout;
    let slow = |what: &str| {
        metrics.closed(LimitClose::SlowFrame);
        tracing::info!(%peer, %listener, what, timeout = ?read_timeout, "closing connection: frame not received within socket.request.read.timeout.ms");
    };
    loop {
        match wait_for_frame(
            &mut reader,
            limits.config.idle_timeout,
            &inflight,
            &mut stop,
        )
        .await
        {
            Wait::Frame => {}
            Wait::Eof | Wait::Stopped => break,
            Wait::Idle => {
                metrics.closed(LimitClose::Idle);
                tracing::info!(%peer, %listener, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Wait::Io(e) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
        }
        // A frame has started: it must arrive within the read timeout, not counting the time
        // spent waiting for room in the request queue or the memory pool.
        let started = std::time::Instant::now();
        let size = match bounded(&mut stop, read_timeout, read_frame_size(&mut reader, max)).await {
            None => break,
            Some(Err(())) => {
                slow("size");
                break;
            }
            Some(Ok(r)) => r,
        };
        let size = match size {
            Ok(s) => s,
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
        let Some(Ok(place)) = bounded(&mut stop, None, limits.queue.enter()).await else {
            break;
        };
        let Some(Ok(memory)) = bounded(&mut stop, None, limits.reserve(size)).await else {
            break;
        };
        let left = read_timeout.map(|t| t.saturating_sub(started.elapsed()));
        let frame = match bounded(&mut stop, left, read_frame_body(&mut reader, size)).await {
            None => break,
            Some(Err(())) => {
                slow("body");
                break;
            }
            Some(Ok(Ok(f))) => f,
            Some(Ok(Err(e))) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
        };
        match kafka::dispatch(frame, &ctx, peer, &mut session).await {
            Dispatch::Respond(fut) => {
                inflight.fetch_add(1, Ordering::AcqRel);
                let handle = tokio::spawn(limits::run_request(fut, place, memory));
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
async fn write_responses<W: ResponseWriter>(
    mut w: W,
    mut rx: mpsc::Receiver<JoinHandle<Reply>>,
    peer: SocketAddr,
    inflight: Arc<AtomicUsize>,
) {
    let mut out = OutQueue::default();
    // Responses queued but not yet written: they leave `inflight` once flushed. When the writer
    // stops, nothing is in flight any more (the reader may then find the connection idle).
    let _clear = ClearOnDrop(inflight.clone());
    let mut unflushed = 0usize;
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
            Reply::Frame(bytes) => out.push(bytes),
            Reply::Vectored(chunks) => chunks.into_iter().for_each(|c| out.push_chunk(c)),
            Reply::Nothing => {}
            Reply::Close => break,
        }
        unflushed += 1;
        // Pipelined responses that are already complete share one write; anything else
        // (e.g. a long-polling fetch) must not hold back what is queued.
        next = rx.try_recv().ok();
        if out.queued >= OutQueue::FLUSH_AT || !next.as_ref().is_some_and(|h| h.is_finished()) {
            if let Err(e) = out.flush(&mut w).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
            inflight.fetch_sub(std::mem::take(&mut unflushed), Ordering::AcqRel);
            if next.is_none() {
                next = rx.recv().await;
            }
        }
    }
    let _ = out.flush(&mut w).await;
    let _ = w.shutdown().await;
}

/// Sets a connection's in-flight count to zero when its writer ends.
struct ClearOnDrop(Arc<AtomicUsize>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Response bytes waiting for the socket. Small frames are copied into one coalescing buffer;
/// large chunks (a fetch's record sets) are queued by reference and written with vectored I/O
/// (`writev`), so record bytes read from a segment reach the socket without another copy; file
/// chunks are sent from the segment file with `sendfile` where the stream allows it.
#[derive(Default)]
struct OutQueue {
    chunks: std::collections::VecDeque<Chunk>,
    small: BytesMut,
    queued: usize,
    /// Reused buffer for file chunks on streams that cannot `sendfile`.
    scratch: BytesMut,
}

impl OutQueue {
    /// Chunks shorter than this are copied into the coalescing buffer.
    const COALESCE_BELOW: usize = 16 * 1024;
    /// Queued bytes that trigger a write even while more completed responses are waiting.
    const FLUSH_AT: usize = 1 << 20;
    /// Slices per `writev` call (well under every platform's `IOV_MAX`).
    const MAX_IOV: usize = 64;
    /// Bytes of a file chunk read at a time on streams that cannot `sendfile`.
    const READ_PIECE: usize = 256 * 1024;
    /// Bytes per `sendfile` call (Linux caps one call at 0x7ffff000).
    const MAX_SENDFILE: usize = 1 << 30;

    fn push(&mut self, chunk: Bytes) {
        self.queued += chunk.len();
        if chunk.len() < Self::COALESCE_BELOW {
            self.small.extend_from_slice(&chunk);
        } else {
            self.seal();
            self.chunks.push_back(Chunk::Bytes(chunk));
        }
    }

    fn push_chunk(&mut self, chunk: Chunk) {
        match chunk {
            Chunk::Bytes(b) => self.push(b),
            Chunk::File(f) if f.is_empty() => {}
            Chunk::File(f) => {
                self.queued += f.len();
                self.seal();
                self.chunks.push_back(Chunk::File(f));
            }
        }
    }

    /// Moves the coalesced small bytes behind the queued chunks, keeping their order.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.chunks
                .push_back(Chunk::Bytes(self.small.split().freeze()));
        }
    }

    /// Writes everything queued, handling short writes; falls back to one chunk per write on
    /// streams without vectored writes (TLS). File chunks go out with `sendfile` on plain TCP,
    /// after everything queued before them.
    async fn flush<W: ResponseWriter>(&mut self, w: &mut W) -> std::io::Result<()> {
        if self.chunks.is_empty() {
            // Only small frames: write them from the buffer, which keeps its capacity.
            w.write_all(&self.small).await?;
            self.small.clear();
        } else {
            self.seal();
            // Around file chunks, hold partial segments back (TCP_CORK) so the frame's header
            // and tail bytes share segments with the file data instead of going out as tiny
            // packets of their own; uncorking below pushes what is left.
            let has_file = self.chunks.iter().any(|c| matches!(c, Chunk::File(_)));
            let corked = has_file && w.plain_tcp().is_some_and(|tcp| set_cork(tcp, true).is_ok());
            let written = self.write_chunks(w).await;
            let uncorked = match (corked, w.plain_tcp()) {
                (true, Some(tcp)) => set_cork(tcp, false),
                _ => Ok(()),
            };
            written?;
            uncorked?;
        }
        self.queued = 0;
        w.flush().await
    }

    /// Writes the queued chunks in order (see [`OutQueue::flush`]).
    async fn write_chunks<W: ResponseWriter>(&mut self, w: &mut W) -> std::io::Result<()> {
        while let Some(front) = self.chunks.front() {
            if let Chunk::File(_) = front {
                if let Some(Chunk::File(region)) = self.chunks.pop_front() {
                    self.write_file(w, region).await?;
                }
                continue;
            }
            let n = if w.is_write_vectored() {
                let mut iov = [std::io::IoSlice::new(&[]); Self::MAX_IOV];
                let mut count = 0;
                let memory = self.chunks.iter().map_while(|c| match c {
                    Chunk::Bytes(b) => Some(b),
                    Chunk::File(_) => None,
                });
                for (slot, chunk) in iov.iter_mut().zip(memory) {
                    *slot = std::io::IoSlice::new(chunk);
                    count += 1;
                }
                w.write_vectored(&iov[..count]).await?
            } else {
                match front {
                    Chunk::Bytes(chunk) => w.write(chunk).await?,
                    Chunk::File(_) => 0,
                }
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.advance(n);
        }
        Ok(())
    }

    /// Writes one file chunk: `sendfile` on plain TCP, else read a piece at a time and write it.
    async fn write_file<W: ResponseWriter>(
        &mut self,
        w: &mut W,
        mut region: FileRegion,
    ) -> std::io::Result<()> {
        if let Some(tcp) = w.plain_tcp() {
            match sendfile_all(tcp, &mut region).await {
                Ok(()) => return Ok(()),
                // A file system without sendfile support: write the rest the other way.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
                Err(e) => return Err(e),
            }
        }
        while !region.is_empty() {
            let piece = region.prefix(Self::READ_PIECE);
            self.scratch.clear();
            piece.read_into(&mut self.scratch)?;
            w.write_all(&self.scratch).await?;
            region.advance(piece.len());
        }
        Ok(())
    }

    /// Drops `n` written bytes from the front of the queue (bytes chunks only).
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(Chunk::Bytes(front)) = self.chunks.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                bytes::Buf::advance(front, n);
                n = 0;
            }
        }
    }
}

/// Sets or clears `TCP_CORK` on the socket.
fn set_cork(tcp: &TcpStream, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = on.into();
    // SAFETY: a valid socket descriptor and a pointer to a live `c_int` of the given size.
    let r = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends `region` to the socket with `sendfile(2)`, waiting for writability and handling short
/// writes; `region` is advanced past what was sent (also on error).
async fn sendfile_all(tcp: &TcpStream, region: &mut FileRegion) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while !region.is_empty() {
        tcp.writable().await?;
        let sent = tcp.try_io(Interest::WRITABLE, || {
            let mut offset = libc::off_t::try_from(region.position())
                .map_err(|_| std::io::Error::other("file position out of range"))?;
            let count = region.len().min(OutQueue::MAX_SENDFILE);
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed, the file is held by the region); the kernel reads `offset` and writes
            // back the new one, a local.
            let n = unsafe {
                libc::sendfile(
                    tcp.as_raw_fd(),
                    region.file().as_raw_fd(),
                    &mut offset,
                    count,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                // The file ended before the region did: the frame cannot be completed.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the record set being sent",
                ));
            }
            Ok(n) => region.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod out_queue_tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A writer that takes at most `max` bytes per call, with or without vectored writes.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
        vectored: bool,
        calls: usize,
    }

    impl ResponseWriter for Trickle {}

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            self.calls += 1;
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn chunk(len: usize, seed: u8) -> Bytes {
        Bytes::from((0..len).map(|i| (i as u8) ^ seed).collect::<Vec<u8>>())
    }

    #[tokio::test]
    async fn short_writes_keep_every_byte_in_order() {
        for vectored in [true, false] {
            for max in [1usize, 7, 4096, 100_000, usize::MAX] {
                let pieces = [
                    chunk(10, 1),
                    chunk(20_000, 2),
                    chunk(5, 3),
                    chunk(300, 4),
                    chunk(70_000, 5),
                    chunk(16 * 1024, 6),
                    chunk(1, 7),
                ];
                let mut q = OutQueue::default();
                let mut w = Trickle {
                    got: Vec::new(),
                    max,
                    vectored,
                    calls: 0,
                };
                let mut expected = Vec::new();
                for (i, p) in pieces.iter().enumerate() {
                    q.push(p.clone());
                    expected.extend_from_slice(p);
                    if i == 3 {
                        q.flush(&mut w).await.expect("flush");
                    }
                }
                q.flush(&mut w).await.expect("flush");
                assert_eq!(w.got, expected, "vectored={vectored} max={max}");
                assert_eq!(q.queued, 0);
                assert!(q.chunks.is_empty() && q.small.is_empty());
            }
        }
    }

    fn file_with(bytes: &[u8]) -> Arc<std::fs::File> {
        use std::io::Write;
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(b"head").expect("write");
        f.write_all(bytes).expect("write");
        Arc::new(f)
    }

    /// A queue of memory and file chunks, and the bytes it stands for.
    fn mixed_queue() -> (OutQueue, Vec<u8>) {
        let big = chunk(3 << 20, 9);
        let file = file_with(&big);
        let pieces = [
            Chunk::Bytes(chunk(10, 1)),
            Chunk::File(FileRegion::new(file.clone(), 4, 100_000)),
            Chunk::Bytes(chunk(20_000, 2)),
            Chunk::File(FileRegion::new(file.clone(), 4 + 100_000, 5)),
            Chunk::File(FileRegion::new(
                file.clone(),
                4 + 100_005,
                (3 << 20) - 100_005,
            )),
            Chunk::Bytes(chunk(300, 4)),
            Chunk::File(FileRegion::new(file, 4, 0)),
            Chunk::Bytes(chunk(1, 7)),
        ];
        let mut q = OutQueue::default();
        let mut expected = Vec::new();
        for p in pieces {
            match &p {
                Chunk::Bytes(b) => expected.extend_from_slice(b),
                Chunk::File(f) => {
                    let from = (f.position() - 4) as usize;
                    expected.extend_from_slice(&big[from..from + f.len()]);
                }
            }
            q.push_chunk(p);
        }
        (q, expected)
    }

    #[tokio::test]
    async fn file_chunks_are_read_and_written_in_order_on_streams_without_sendfile() {
        for (vectored, max) in [(true, 7), (false, 4096), (true, usize::MAX)] {
            let (mut q, expected) = mixed_queue();
            let mut w = Trickle {
                got: Vec::new(),
                max,
                vectored,
                calls: 0,
            };
            q.flush(&mut w).await.expect("flush");
            assert!(w.got == expected, "vectored={vectored} max={max}");
            assert_eq!(q.queued, 0);
        }
    }

    #[tokio::test]
    async fn file_chunks_go_out_with_sendfile_in_order_on_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (_r, mut w) = server.into_split();
        assert!(w.plain_tcp().is_some());
        let (mut q, expected) = mixed_queue();
        let want = expected.len();
        // A slow reader, so the socket buffer fills and sendfile sees short writes and EAGAIN.
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut got = Vec::with_capacity(want);
            let mut buf = vec![0u8; 7000];
            while got.len() < want {
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "early eof after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
                tokio::task::yield_now().await;
            }
            got
        });
        q.flush(&mut w).await.expect("flush");
        let got = reader.await.expect("reader");
        assert!(got == expected, "bytes differ");
    }

    #[tokio::test]
    async fn vectored_flush_writes_large_chunks_in_one_call() {
        let mut q = OutQueue::default();
        let mut w = Trickle {
            got: Vec::new(),
            max: usize::MAX,
            vectored: true,
            calls: 0,
        };
        q.push(chunk(50, 1));
        q.push(chunk(1 << 20, 2));
        q.push(chunk(50, 3));
        q.flush(&mut w).await.expect("flush");
        assert_eq!(w.calls, 1);
        assert_eq!(w.got.len(), (1 << 20) + 100);
    }

    #[tokio::test]
    async fn read_frame_stops_at_the_frame_end() {
        let mut wire = Vec::new();
        for body in [chunk(70_000, 1), chunk(8, 2)] {
            wire.extend_from_slice(&(body.len() as i32).to_be_bytes());
            wire.extend_from_slice(&body);
        }
        wire.extend_from_slice(&100i32.to_be_bytes());
        wire.extend_from_slice(&[0u8; 10]);
        let mut r = tokio::io::BufReader::with_capacity(4096, &wire[..]);
        assert_eq!(
            read_frame(&mut r, 1 << 20).await.expect("first"),
            chunk(70_000, 1)
        );
        assert_eq!(
            read_frame(&mut r, 1 << 20).await.expect("second"),
            chunk(8, 2)
        );
        assert!(matches!(
            read_frame(&mut r, 1 << 20).await,
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof
        ));
        assert!(matches!(
            read_frame(&mut r, 1 << 20).await,
            Err(FrameError::Eof)
        ));
    }
}
