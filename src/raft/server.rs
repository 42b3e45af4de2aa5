//! The quorum's TCP server on the controller listener: accepts peers and answers their openraft
//! RPCs and forwarded application requests (frames as in [`network`](super::network)).
//!
//! **Thread.** Runs on the node's "esker-raft" runtime: one accept task, one task per
//! connection handling its requests in order. A frame that is too long, cut short, of an
//! unknown kind or with an undecodable body closes that connection with a warning; nothing else
//! is affected.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Snapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

use super::network::{
    kind, read_frame, write_frame, AddVoterRequest, FullSnapshotRequest, Payload,
    RemoveVoterRequest,
};
use super::quorum::Node;
use super::types::TypeConfig;

/// Accepts connections until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, node: Arc<Node>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Small request/response frames: send them at once; failure is harmless.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, Arc::clone(&node)));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(node = node.id, error = %e, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one peer connection: read a request, answer it, repeat.
async fn connection(stream: TcpStream, peer: SocketAddr, node: Arc<Node>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let (kind, body) = match read_frame(&mut read).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(node = node.id, %peer, error = %e, "closing controller connection: bad frame");
                return;
            }
        };
        let reply = match dispatch(&node, kind, &body).await {
            Ok(reply) => reply,
            Err(reason) => {
                tracing::warn!(node = node.id, %peer, kind, %reason, "closing controller connection: bad request");
                return;
            }
        };
        if let Err(e) = write_frame(&mut write, kind | kind::RESPONSE, &reply).await {
            tracing::debug!(node = node.id, %peer, error = %e, "controller connection closed while answering");
            return;
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("undecodable body: {e}"))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("unencodable reply: {e}"))
}

/// The remote-visible part of an error of an infallible openraft API: only `Fatal` can happen.
fn fatal_only(e: RaftError<u64>) -> Fatal<u64> {
    match e {
        RaftError::APIError(never) => match never {},
        RaftError::Fatal(fatal) => fatal,
    }
}

/// Handles one request; `Err` closes the connection.
async fn dispatch(node: &Node, kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    let deadline = tokio::time::Instant::now() + node.request_timeout;
    match kind {
        kind::APPEND_ENTRIES => {
            let request: AppendEntriesRequest<TypeConfig> = decode(body)?;
            encode(&node.raft.append_entries(request).await.map_err(fatal_only))
        }
        kind::VOTE => {
            let request: VoteRequest<u64> = decode(body)?;
            encode(&node.raft.vote(request).await.map_err(fatal_only))
        }
        kind::INSTALL_SNAPSHOT => {
            let request: InstallSnapshotRequest<TypeConfig> = decode(body)?;
            encode(&node.raft.install_snapshot(request).await)
        }
        kind::FULL_SNAPSHOT => {
            let request: FullSnapshotRequest = decode(body)?;
            let snapshot = Snapshot {
                meta: request.meta,
                snapshot: Box::new(Cursor::new(request.data)),
            };
            encode(
                &node
                    .raft
                    .install_full_snapshot(request.vote, snapshot)
                    .await,
            )
        }
        kind::FORWARD => {
            let Payload(command) = decode(body)?;
            encode(&node.local_write(command, deadline).await)
        }
        kind::CALL_LEADER => {
            let Payload(request) = decode(body)?;
            encode(&node.local_call(request, deadline).await)
        }
        kind::DESCRIBE => {
            let () = decode(body)?;
            encode(&node.local_describe().await)
        }
        kind::ADD_VOTER => {
            let request: AddVoterRequest = decode(body)?;
            encode(
                &node
                    .local_add_voter(request.node_id, request.addr, deadline)
                    .await,
            )
        }
        kind::REMOVE_VOTER => {
            let request: RemoveVoterRequest = decode(body)?;
            encode(&node.local_remove_voter(request.node_id, deadline).await)
        }
        other => Err(format!("unknown request kind {other}")),
    }
}
