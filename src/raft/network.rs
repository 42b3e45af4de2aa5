//! The quorum's TCP protocol, client side: frames, message bodies, the per-peer connection pool
//! and openraft's [`RaftNetwork`] over it.
//!
//! **Thread.** Runs on the node's "esker-raft" runtime: openraft's replication and election
//! tasks, and the routing of application requests to the leader, call [`Pool::call`].
//!
//! **Frames.** Both directions use `u32 length (big-endian) | u8 kind | body`, where `length`
//! counts the kind byte and the body (so it is at least 1 and at most [`MAX_FRAME`]), and the
//! body is JSON. One request, then its response, on a connection at a time; the response's kind
//! is the request's kind with [`kind::RESPONSE`] set and its body a JSON `Result`. A peer that
//! sends anything else is disconnected.
//!
//! **Pool.** Connections are kept per peer and reused: normally one, more only while RPCs to the
//! same peer overlap (a forwarded write waiting for its commit must not hold up heartbeats). A
//! connection that failed, timed out or was closed by the peer is dropped and the next RPC
//! reconnects. Every RPC is bounded by a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory, Snapshot, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::types::{b64, SnapshotMeta, TypeConfig};

/// The largest frame accepted or sent (length field value): 64 MiB.
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// At most this many idle connections are kept per peer.
const MAX_IDLE_PER_PEER: usize = 2;

/// Frame kinds.
pub(crate) mod kind {
    /// openraft AppendEntries (also the heartbeat).
    pub(crate) const APPEND_ENTRIES: u8 = 1;
    /// openraft RequestVote.
    pub(crate) const VOTE: u8 = 2;
    /// openraft InstallSnapshot, one chunk.
    pub(crate) const INSTALL_SNAPSHOT: u8 = 3;
    /// A whole snapshot in one frame.
    pub(crate) const FULL_SNAPSHOT: u8 = 4;
    /// A command forwarded to the leader to be replicated.
    pub(crate) const FORWARD: u8 = 5;
    /// An application request for the leader's `LeaderHandler`.
    pub(crate) const CALL_LEADER: u8 = 6;
    /// The leader's view of the quorum.
    pub(crate) const DESCRIBE: u8 = 7;
    /// Add a voter (learner first, then promotion).
    pub(crate) const ADD_VOTER: u8 = 8;
    /// Remove a voter.
    pub(crate) const REMOVE_VOTER: u8 = 9;
    /// Set on the kind of a response.
    pub(crate) const RESPONSE: u8 = 0x80;
}

/// Body of [`kind::FULL_SNAPSHOT`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FullSnapshotRequest {
    pub(crate) vote: Vote<u64>,
    pub(crate) meta: SnapshotMeta,
    #[serde(with = "b64")]
    pub(crate) data: Vec<u8>,
}

/// Opaque bytes: the body of [`kind::FORWARD`] and [`kind::CALL_LEADER`] requests and of the
/// call-leader reply.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Payload(#[serde(with = "b64")] pub(crate) Vec<u8>);

/// The leader's answer to a forwarded write: where it was committed and the machine's reply.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WriteReply {
    pub(crate) index: u64,
    #[serde(with = "b64")]
    pub(crate) reply: Vec<u8>,
}

/// Body of [`kind::ADD_VOTER`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AddVoterRequest {
    pub(crate) node_id: u64,
    pub(crate) addr: String,
}

/// Body of [`kind::REMOVE_VOTER`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoveVoterRequest {
    pub(crate) node_id: u64,
}

/// Why the node asked to handle an application request did not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum AppError {
    /// It is not the leader (any more); `leader` is who it thinks leads.
    NotLeader { leader: Option<u64> },
    /// It tried and failed; the request did not take effect.
    Failed { message: String },
    /// It did not finish in time; the request may still take effect.
    Timeout { message: String },
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The connection failed or closed mid-frame.
    #[error("i/o error reading a frame: {0}")]
    Io(#[from] io::Error),
    /// The length field is 0 or larger than [`MAX_FRAME`].
    #[error("frame length {0} is out of range (1..={MAX_FRAME})")]
    BadLength(u32),
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    body: &[u8],
) -> io::Result<()> {
    let len = body.len() + 1;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {len} bytes exceeds the maximum of {MAX_FRAME}"),
        ));
    }
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(kind);
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame: `Ok(None)` when the peer closed the connection between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
    let mut header = [0u8; 4];
    if r.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[1..]).await?;
    let len = u32::from_be_bytes(header);
    if len == 0 || len as usize > MAX_FRAME {
        return Err(FrameError::BadLength(len));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await?;
    // The buffer grows as the body arrives: a length field alone (from any peer that can reach
    // the port) never reserves MAX_FRAME.
    let want = len as usize - 1;
    let mut body = Vec::new();
    if (&mut *r).take(want as u64).read_to_end(&mut body).await? < want {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some((kind[0], body)))
}

/// Why an RPC through the pool failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Connecting or sending failed: the peer never got the whole request.
    #[error("request not delivered: {0}")]
    NotSent(#[source] io::Error),
    /// The deadline passed; `sent` says whether the whole request had been written.
    #[error("no response within {after:?}")]
    Timeout {
        /// The deadline given.
        after: Duration,
        /// Whether the peer may have received (and acted on) the request.
        sent: bool,
    },
    /// The connection failed after the request was sent: the peer may have acted on it.
    #[error("connection lost after sending the request: {0}")]
    Lost(#[source] FrameError),
    /// The peer answered with something that is not a response to the request.
    #[error("unexpected response: {0}")]
    Protocol(String),
}

struct Idle {
    addr: String,
    stream: TcpStream,
}

/// Outgoing connections, per peer, plus when each peer last answered.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<u64, Vec<Idle>>>,
    contacts: Mutex<HashMap<u64, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Pool {
    /// Sends one request to `target` at `addr` and returns the response body.
    pub(crate) async fn call(
        &self,
        target: u64,
        addr: &str,
        kind: u8,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + timeout;
        let mut stream = match self.take_idle(target, addr) {
            Some(stream) => stream,
            None => match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Err(_) => {
                    return Err(CallError::Timeout {
                        after: timeout,
                        sent: false,
                    })
                }
                Ok(Err(e)) => return Err(CallError::NotSent(e)),
                Ok(Ok(stream)) => {
                    // Latency matters more than packet count for small RPCs; failure is harmless.
                    let _ = stream.set_nodelay(true);
                    stream
                }
            },
        };
        match tokio::time::timeout_at(deadline, write_frame(&mut stream, kind, body)).await {
            Err(_) => {
                return Err(CallError::Timeout {
                    after: timeout,
                    sent: false,
                })
            }
            Ok(Err(e)) => return Err(CallError::NotSent(e)),
            Ok(Ok(())) => {}
        }
        let (reply_kind, reply) =
            match tokio::time::timeout_at(deadline, read_frame(&mut stream)).await {
                Err(_) => {
                    return Err(CallError::Timeout {
                        after: timeout,
                        sent: true,
                    })
                }
                Ok(Err(e)) => return Err(CallError::Lost(e)),
                Ok(Ok(None)) => {
                    return Err(CallError::Lost(FrameError::Io(
                        io::ErrorKind::UnexpectedEof.into(),
                    )))
                }
                Ok(Ok(Some(frame))) => frame,
            };
        if reply_kind != kind | kind::RESPONSE {
            return Err(CallError::Protocol(format!(
                "response kind {reply_kind:#04x} to a request of kind {kind}"
            )));
        }
        lock(&self.contacts).insert(target, now_ms());
        let mut idle = lock(&self.idle);
        let conns = idle.entry(target).or_default();
        if conns.len() < MAX_IDLE_PER_PEER {
            conns.push(Idle {
                addr: addr.to_string(),
                stream,
            });
        }
        Ok(reply)
    }

    /// An idle connection to `target` at `addr` that the peer has not closed, if any.
    fn take_idle(&self, target: u64, addr: &str) -> Option<TcpStream> {
        let mut idle = lock(&self.idle);
        let conns = idle.get_mut(&target)?;
        while let Some(conn) = conns.pop() {
            if conn.addr != addr {
                continue;
            }
            // Between RPCs nothing may arrive; readable means EOF, an error or junk: drop it.
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(conn.stream),
                _ => continue,
            }
        }
        None
    }

    /// When `target` last answered an RPC from this node, in ms since the epoch.
    pub(crate) fn last_contact(&self, target: u64) -> Option<u64> {
        lock(&self.contacts).get(&target).copied()
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        lock(&self.idle).clear();
    }
}

/// openraft's network factory: one [`Peer`] per replication stream or election, all sharing the
/// pool.
pub(crate) struct Network {
    pub(crate) node_id: u64,
    pub(crate) pool: Arc<Pool>,
    pub(crate) rpc_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            node_id: self.node_id,
            target,
            addr: node.addr.clone(),
            pool: Arc::clone(&self.pool),
            rpc_timeout: self.rpc_timeout,
        }
    }
}

/// The openraft RPC client for one peer.
pub(crate) struct Peer {
    node_id: u64,
    target: u64,
    addr: String,
    pool: Arc<Pool>,
    rpc_timeout: Duration,
}

/// A transport failure, before it is shaped into the error type openraft wants.
enum Transport {
    Unreachable(Unreachable),
    Timeout(Timeout<u64>),
    Network(NetworkError),
}

impl Transport {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, BasicNode, E> {
        match self {
            Transport::Unreachable(e) => RPCError::Unreachable(e),
            Transport::Timeout(e) => RPCError::Timeout(e),
            Transport::Network(e) => RPCError::Network(e),
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig, Fatal<u64>> {
        match self {
            Transport::Unreachable(e) => StreamingError::Unreachable(e),
            Transport::Timeout(e) => StreamingError::Timeout(e),
            Transport::Network(e) => StreamingError::Network(e),
        }
    }
}

impl Peer {
    /// One RPC: `Ok` holds the remote node's own result.
    async fn exchange<Req, Resp>(
        &self,
        action: RPCTypes,
        kind: u8,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Transport>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body =
            serde_json::to_vec(request).map_err(|e| Transport::Network(NetworkError::new(&e)))?;
        if body.len() + 1 > MAX_FRAME {
            let e = AnyError::error(format!(
                "request of {} bytes exceeds the frame limit",
                body.len()
            ));
            tracing::warn!(target_node = self.target, error = %e, "raft rpc not sent");
            return Err(Transport::Unreachable(Unreachable::new(&e)));
        }
        let reply = self
            .pool
            .call(self.target, &self.addr, kind, &body, timeout)
            .await
            .map_err(|e| {
                tracing::debug!(target_node = self.target, addr = %self.addr, ?action, error = %e, "raft rpc failed");
                match e {
                    CallError::NotSent(e) => Transport::Unreachable(Unreachable::new(&e)),
                    CallError::Timeout { .. } => Transport::Timeout(Timeout {
                        action,
                        id: self.node_id,
                        target: self.target,
                        timeout,
                    }),
                    other => Transport::Network(NetworkError::new(&other)),
                }
            })?;
        serde_json::from_slice(&reply).map_err(|e| {
            tracing::debug!(target_node = self.target, ?action, error = %e, "undecodable raft rpc response");
            Transport::Network(NetworkError::new(&e))
        })
    }

    fn deadline(&self, option: &RPCOption) -> Duration {
        // Answer before openraft's own timeout fires, so the connection is dropped cleanly here.
        self.rpc_timeout.min(option.soft_ttl())
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let timeout = self.deadline(&option);
        let result: Result<AppendEntriesResponse<u64>, Fatal<u64>> = self
            .exchange(RPCTypes::AppendEntries, kind::APPEND_ENTRIES, &rpc, timeout)
            .await
            .map_err(Transport::into_rpc)?;
        result
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, RaftError::Fatal(e))))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let timeout = option.hard_ttl();
        let result: Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> =
            self.exchange(
                RPCTypes::InstallSnapshot,
                kind::INSTALL_SNAPSHOT,
                &rpc,
                timeout,
            )
            .await
            .map_err(Transport::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let timeout = self.deadline(&option);
        let result: Result<VoteResponse<u64>, Fatal<u64>> = self
            .exchange(RPCTypes::Vote, kind::VOTE, &rpc, timeout)
            .await
            .map_err(Transport::into_rpc)?;
        result
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, RaftError::Fatal(e))))
    }

    /// Sends the whole snapshot in one frame (our snapshots are small), bounded by openraft's
    /// `install_snapshot_timeout`.
    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let request = FullSnapshotRequest {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let timeout = option.hard_ttl();
        let send = self.exchange::<_, Result<SnapshotResponse<u64>, Fatal<u64>>>(
            RPCTypes::InstallSnapshot,
            kind::FULL_SNAPSHOT,
            &request,
            timeout,
        );
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = send => result.map_err(Transport::into_streaming)?,
        };
        result.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_round_trips() {
        let mut wire = Vec::new();
        write_frame(&mut wire, 7, b"{\"a\":1}")
            .await
            .expect("write");
        let mut r = &wire[..];
        let (kind, body) = read_frame(&mut r).await.expect("read").expect("a frame");
        assert_eq!((kind, body.as_slice()), (7, &b"{\"a\":1}"[..]));
        assert!(read_frame(&mut r).await.expect("clean end").is_none());
    }

    #[tokio::test]
    async fn a_length_without_its_body_is_a_torn_frame() {
        // The largest length accepted, then 10 bytes and the end of the stream: an error, and
        // the body buffer only ever held what arrived (it grows with the bytes read).
        let mut wire = (MAX_FRAME as u32).to_be_bytes().to_vec();
        wire.push(1);
        wire.extend_from_slice(&[b'x'; 10]);
        match read_frame(&mut &wire[..]).await {
            Err(FrameError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a torn frame, got {other:?}"),
        }
        let mut wire = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        wire.push(1);
        assert!(matches!(
            read_frame(&mut &wire[..]).await,
            Err(FrameError::BadLength(_))
        ));
    }
}
