//! Idle and slow-request deadlines for the HTTP listeners (Kinesis and metrics), which hyper
//! serves: a [`Tracked`] stream notes when bytes move, request guards count what is in flight
//! (until the response body has been sent), and one watcher per connection ([`Activity::watch`])
//! says when to give the connection up:
//!
//! - idle (`connections.max.idle.ms`): no byte read or written for that long and nothing in
//!   flight;
//! - slow request (`socket.request.read.timeout.ms`): bytes of a new HTTP/1 request arrived but
//!   its head was not complete within the timeout (on HTTP/2 connections, whose frames also
//!   carry pings and settings, only the idle rule applies).
//!
//! The watcher sleeps until the next deadline; it is woken early only when a new request
//! starts arriving.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::metrics::LimitClose;

/// What one HTTP connection has been doing.
pub struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` of the last byte moved.
    last: AtomicU64,
    /// Requests whose responses are not yet fully sent.
    inflight: AtomicUsize,
    /// Milliseconds since `origin` + 1 when bytes of a request head started arriving with
    /// nothing in flight; 0 when none is pending.
    head_since: AtomicU64,
    /// The connection speaks HTTP/2 (prior knowledge or ALPN preface seen).
    h2: AtomicBool,
    /// Whether any byte was read yet.
    seen: AtomicBool,
    wake: Notify,
}

impl Activity {
    /// A fresh connection's record.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            seen: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    fn read(&self, bytes: &[u8]) {
        self.touch();
        if !self.seen.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI ") {
            self.h2.store(true, Ordering::Relaxed);
        }
        if !self.h2.load(Ordering::Relaxed)
            && self.inflight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now() + 1, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// Counts a request in flight until the guard is dropped (keep it with the response body).
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Resolves when the connection should be closed, and why; never when both limits are off.
    pub async fn watch(
        &self,
        idle: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> LimitClose {
        loop {
            let now = self.now();
            let busy = self.inflight.load(Ordering::Acquire) > 0;
            let mut next: Option<u64> = None;
            if let Some(rt) = read_timeout {
                let since = self.head_since.load(Ordering::Relaxed);
                if since != 0 && !busy {
                    let due = since - 1 + rt.as_millis() as u64;
                    if now >= due {
                        return LimitClose::SlowFrame;
                    }
                    next = Some(due);
                }
            }
            if let Some(idle) = idle {
                let due = self.last.load(Ordering::Relaxed) + idle.as_millis() as u64;
                if !busy && now >= due {
                    return LimitClose::Idle;
                }
                // While busy, look again one idle period from now.
                let due = if busy {
                    now + idle.as_millis() as u64
                } else {
                    due
                };
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            let notified = self.wake.notified();
            match next {
                Some(due) => {
                    let wait = Duration::from_millis(due.saturating_sub(now).max(1));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = notified => {}
                    }
                }
                None if read_timeout.is_some() => notified.await,
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// A request in flight on an HTTP connection.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until it has been sent.
pub struct Guarded<B> {
    body: B,
    _guard: RequestGuard,
}

impl<B> Guarded<B> {
    /// Ties `guard` to `body`.
    pub fn new(body: B, guard: RequestGuard) -> Self {
        Guarded {
            body,
            _guard: guard,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A stream that records its traffic in an [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn idle_only_without_requests_in_flight() {
        let a = Activity::new();
        let idle = Some(200 * MS);
        let guard = a.request();
        let watch = a.watch(idle, None);
        tokio::pin!(watch);
        assert!(
            tokio::time::timeout(600 * MS, &mut watch).await.is_err(),
            "a request in flight keeps the connection"
        );
        drop(guard);
        let started = Instant::now();
        assert_eq!(watch.await, LimitClose::Idle);
        assert!(started.elapsed() >= 190 * MS);
    }

    #[tokio::test]
    async fn a_request_head_that_does_not_complete_is_slow() {
        let a = Activity::new();
        let w = {
            let a = a.clone();
            tokio::spawn(async move {
                a.watch(Some(Duration::from_secs(600)), Some(300 * MS))
                    .await
            })
        };
        tokio::time::sleep(400 * MS).await;
        assert!(!w.is_finished(), "no request started: not slow");
        a.read(b"POST / HTTP/1.1\r\n");
        let started = Instant::now();
        assert_eq!(w.await.expect("watch"), LimitClose::SlowFrame);
        let took = started.elapsed();
        assert!(took >= 290 * MS && took < 3000 * MS, "{took:?}");
    }

    #[tokio::test]
    async fn http2_is_only_reaped_when_idle() {
        let a = Activity::new();
        a.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(a.head_since.load(Ordering::Relaxed), 0);
        let started = Instant::now();
        assert_eq!(
            a.watch(Some(500 * MS), Some(50 * MS)).await,
            LimitClose::Idle
        );
        assert!(started.elapsed() >= 450 * MS);
    }
}
