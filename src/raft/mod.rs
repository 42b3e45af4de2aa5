//! Cluster mode's Raft metadata quorum: a replicated log of opaque commands, applied in order to
//! an application [`StateMachine`] on every node, built on openraft 0.9.
//!
//! **Ownership.** This module owns the quorum's durable store (log, vote, snapshot; the
//! private `store` module documents the files), the controller-listener protocol between the
//! nodes (frames in the private `network` module), and the openraft instance. It knows nothing
//! about what the commands mean: the metadata layer supplies the [`StateMachine`] and the
//! [`LeaderHandler`].
//!
//! **Threads.** [`Quorum::start`] spawns one OS thread named "esker-raft" running its own
//! current-thread tokio runtime (file I/O goes to that runtime's blocking pool, threads named
//! "esker-raft-io"). openraft, the RPC server and every connection task run there; the state
//! machine's methods and the leader handler are called there. [`Quorum`]'s methods may be called
//! from any thread or tokio runtime: the async ones run their work on the quorum's runtime and
//! only await the result, so the caller's runtime never blocks on an fsync.
//!
//! **Membership.** A node whose id is among [`QuorumConfig::voters`] and whose store is brand
//! new initializes the cluster with those voters (every initial voter does so; the same
//! configuration everywhere makes that safe). A node *not* listed there never initializes: it
//! waits, serving its listener, until a member adds it with [`Quorum::add_voter`].
//!
//! **Indexes.** Log indexes are openraft's: the first entry (the initial membership) has index
//! 0, so "nothing yet" is `None`. Commands written with [`Quorum::write`] get the index passed to
//! [`StateMachine::apply`]; membership changes and each new leader's blank entry use indexes too.

pub mod admin;
mod network;
mod quorum;
mod server;
mod store;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::quorum::Quorum;

/// What the quorum replicates: applied in log order on every node.
///
/// Called on the quorum's "esker-raft" thread, which also runs elections and heartbeats: the
/// methods must be quick and must not block (no network, no waiting on other runtimes). An
/// `apply` that takes longer than the election timeout can cost the leadership.
pub trait StateMachine: Send + 'static {
    /// Applies one committed command (opaque bytes from [`Quorum::write`]) at `index`; returns
    /// the reply bytes given to the writer.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// A full copy of the state, for snapshots.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// Handles application requests sent to the leader with [`Quorum::call_leader`] (e.g. broker
/// heartbeats). Runs on the quorum's runtime: the future must not block that thread; work that
/// belongs on another runtime should be spawned there and awaited. It is bounded by
/// [`QuorumConfig::request_timeout`]. It may call [`Quorum::write`] on a clone of the quorum
/// (set into e.g. a `OnceLock` after start; that clone keeps the node alive until an explicit
/// [`Quorum::shutdown`]).
pub type LeaderHandler =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// How to run one quorum node.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id.
    pub node_id: u64,
    /// The initial voters: node id -> "host:port" of its controller listener (Kafka's
    /// `controller.quorum.voters`). Only used to initialize a brand-new cluster; afterwards the
    /// membership lives in the log. May be empty for a node that waits to be added.
    pub voters: BTreeMap<u64, String>,
    /// Where the log, vote and snapshots live (created if missing), e.g.
    /// `<log.dirs>/__cluster_metadata-0`.
    pub dir: PathBuf,
    /// How often the leader sends heartbeats (default 150 ms).
    pub heartbeat_interval: Duration,
    /// Minimum election timeout (default 600 ms).
    pub election_timeout_min: Duration,
    /// Maximum election timeout (default 1200 ms).
    pub election_timeout_max: Duration,
    /// Take a snapshot (and purge the log below it) every this many applied entries (default
    /// 1000).
    pub snapshot_every: u64,
    /// How many entries below the latest snapshot are kept in the log, so that a slightly
    /// lagging follower catches up from the log rather than by snapshot (default 100).
    pub logs_to_keep: u64,
    /// Per-RPC deadline between nodes (default 1 s): a stopped peer cannot hang anything. A
    /// snapshot transfer gets ten times this.
    pub rpc_timeout: Duration,
    /// Deadline of [`Quorum::write`], [`Quorum::call_leader`], [`Quorum::describe`] and the
    /// membership changes, including finding a leader and forwarding to it (default 5 s).
    pub request_timeout: Duration,
}

impl QuorumConfig {
    /// A configuration with the default timings.
    pub fn new(
        node_id: u64,
        voters: BTreeMap<u64, String>,
        dir: impl Into<PathBuf>,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            dir: dir.into(),
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(600),
            election_timeout_max: Duration::from_millis(1200),
            snapshot_every: 1000,
            logs_to_keep: 100,
            rpc_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The openraft configuration, validated.
    fn raft_config(&self) -> Result<openraft::Config, QuorumError> {
        let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        if self.heartbeat_interval.is_zero() {
            return Err(QuorumError::Config(
                "heartbeat_interval must be positive".into(),
            ));
        }
        if self.snapshot_every == 0 {
            return Err(QuorumError::Config(
                "snapshot_every must be positive".into(),
            ));
        }
        if self.rpc_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(QuorumError::Config(
                "rpc_timeout and request_timeout must be positive".into(),
            ));
        }
        let config = openraft::Config {
            cluster_name: "esker".to_string(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.rpc_timeout.saturating_mul(10)),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

/// This node's view of the quorum ([`Quorum::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node's id.
    pub node_id: u64,
    /// The current leader as far as this node knows.
    pub leader_id: Option<u64>,
    /// The current term (Kafka's leader epoch of the quorum).
    pub term: u64,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// Index of the last entry applied to this node's state machine.
    pub last_applied: Option<u64>,
    /// Index of the last entry this node knows to be committed (refreshed on each openraft
    /// metrics change, so it may trail by a moment; never below `last_applied`).
    pub committed: Option<u64>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// The voters of the membership this node uses.
    pub voters: BTreeSet<u64>,
    /// The learners (non-voting members) of that membership.
    pub learners: BTreeSet<u64>,
}

/// The leader's view of the quorum, for DescribeQuorum (Kafka API 55) ([`Quorum::describe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    /// The leader that answered.
    pub leader_id: u64,
    /// Its term (the quorum's leader epoch).
    pub term: u64,
    /// The committed index (Kafka's high watermark is this plus one).
    pub high_watermark: Option<u64>,
    /// The voters, by node id.
    pub voters: Vec<ReplicaState>,
    /// The learners (observers), by node id.
    pub learners: Vec<ReplicaState>,
}

/// One member's replication state, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Node id.
    pub node_id: u64,
    /// Its controller listener address.
    pub addr: String,
    /// The last log index known to match the leader's (Kafka's log end offset is this plus one).
    pub matched_index: Option<u64>,
    /// When the leader last heard from it, in ms since the Unix epoch (the leader itself: now).
    pub last_contact_ms: Option<u64>,
}

/// Errors of the quorum layer.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The configuration is unusable.
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// A file or socket operation failed at start-up.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// openraft stopped on an unrecoverable error (e.g. a failed fsync).
    #[error("raft stopped: {0}")]
    Fatal(#[source] Box<openraft::error::Fatal<u64>>),
    /// Initializing the cluster failed for another reason than "already initialized".
    #[error("initializing the quorum failed: {0}")]
    Init(String),
    /// No leader was known and reachable within the deadline; the request was not delivered.
    #[error("no leader reachable within {waited:?}: {reason}")]
    NoLeader {
        /// The deadline.
        waited: Duration,
        /// The last problem seen.
        reason: String,
    },
    /// The request reached the leader but did not complete within the deadline: it may or may
    /// not take effect.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection to the leader broke after the request was sent: it may or may not have
    /// taken effect.
    #[error("connection to the leader lost: {0}")]
    Disconnected(String),
    /// The leader refused or failed the request (e.g. a membership change in progress); it did
    /// not take effect.
    #[error("request failed: {0}")]
    Failed(String),
    /// A peer answered with something unreadable.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node was shut down.
    #[error("the quorum node is shut down")]
    Shutdown,
}

impl From<openraft::error::Fatal<u64>> for QuorumError {
    fn from(fatal: openraft::error::Fatal<u64>) -> QuorumError {
        QuorumError::Fatal(Box::new(fatal))
    }
}
