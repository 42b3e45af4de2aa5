//! Quorum administration from outside a node (`esker quorum ...`): asks the controllers at the
//! given addresses, one after the other, until the leader answers, to describe the quorum or to
//! add or remove a voter (KIP-853's AddRaftVoter / RemoveRaftVoter). Runs on the caller's
//! runtime; every attempt is bounded.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::BufReader;
use tokio::net::TcpStream;

use super::network::{
    kind, read_frame, write_frame, AddVoterRequest, AppError, RemoveVoterRequest,
};
use super::QuorumDescription;

/// What to ask the quorum's leader.
#[derive(Debug, Clone)]
pub enum AdminRequest {
    /// The leader's view of the quorum.
    Describe,
    /// Add a node (learner first, then voter).
    AddVoter {
        /// Its node id.
        node_id: u64,
        /// Its controller listener, `host:port`.
        addr: String,
    },
    /// Remove a voter.
    RemoveVoter {
        /// Its node id.
        node_id: u64,
    },
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No address answered as the leader.
    #[error("no controller at {tried:?} answered as the quorum leader; last error: {last}")]
    NoLeader {
        /// The addresses tried.
        tried: Vec<String>,
        /// The last failure.
        last: String,
    },
    /// The leader refused or failed.
    #[error("the quorum leader refused: {0}")]
    Refused(String),
}

/// Sends `request` to each of `addrs` in turn until the leader answers; `Describe` returns the
/// description, the membership changes `None`.
pub async fn request(
    addrs: &[String],
    request: AdminRequest,
    timeout: Duration,
) -> Result<Option<QuorumDescription>, AdminError> {
    let mut last = String::from("no address given");
    for addr in addrs {
        let outcome = match &request {
            AdminRequest::Describe => {
                ask::<_, QuorumDescription>(addr, kind::DESCRIBE, &(), timeout)
                    .await
                    .map(|r| r.map(Some))
            }
            AdminRequest::AddVoter { node_id, addr: a } => {
                let req = AddVoterRequest {
                    node_id: *node_id,
                    addr: a.clone(),
                };
                ask::<_, ()>(addr, kind::ADD_VOTER, &req, timeout)
                    .await
                    .map(|r| r.map(|()| None))
            }
            AdminRequest::RemoveVoter { node_id } => {
                let req = RemoveVoterRequest { node_id: *node_id };
                ask::<_, ()>(addr, kind::REMOVE_VOTER, &req, timeout)
                    .await
                    .map(|r| r.map(|()| None))
            }
        };
        match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(AppError::NotLeader { leader })) => {
                last = format!("{addr} is not the leader (leader: {leader:?})");
            }
            Ok(Err(AppError::Failed { message })) | Ok(Err(AppError::Timeout { message })) => {
                return Err(AdminError::Refused(message))
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(AdminError::NoLeader {
        tried: addrs.to_vec(),
        last,
    })
}

/// One request/response exchange with a controller.
async fn ask<Req: Serialize, T: DeserializeOwned>(
    addr: &str,
    kind: u8,
    request: &Req,
    timeout: Duration,
) -> Result<Result<T, AppError>, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (read, mut write) = stream.into_split();
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        write_frame(&mut write, kind, &body)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut read = BufReader::new(read);
        match read_frame(&mut read).await {
            Ok(Some((k, body))) if k == kind | kind::RESPONSE => {
                serde_json::from_slice::<Result<T, AppError>>(&body)
                    .map_err(|e| format!("undecodable answer: {e}"))
            }
            Ok(Some((k, _))) => Err(format!("unexpected answer kind {k}")),
            Ok(None) => Err("connection closed".into()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}
