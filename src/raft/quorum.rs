//! [`Quorum`], the handle the rest of the broker holds, and [`Node`], the state it shares with
//! the RPC server: starting the "esker-raft" thread, routing requests to the leader, status.
//!
//! **Threads.** [`Quorum::start`] spawns the "esker-raft" OS thread with a current-thread tokio
//! runtime; [`Node`] and everything it does live on that runtime. [`Quorum`]'s async methods
//! spawn their work there and await the join handle (which works from any runtime); its sync
//! methods read watch channels and mutexes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::storage::Adaptor;
use openraft::{BasicNode, ChangeMembers, LogIdOptionExt, Raft, ServerState};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::network::{
    kind, now_ms, AddVoterRequest, AppError, CallError, Network, Payload, Pool, RemoveVoterRequest,
    WriteReply,
};
use super::store::Store;
use super::types::{Command, TypeConfig};
use super::{
    LeaderHandler, QuorumConfig, QuorumDescription, QuorumError, QuorumStatus, ReplicaState,
    StateMachine,
};

/// How long to wait before retrying a request whose leader was unreachable or stale.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running quorum node. Cheap to clone (all clones share the node); `Send + Sync`.
///
/// Dropping the last clone stops the node as [`Quorum::shutdown`] would, without waiting.
#[derive(Clone)]
pub struct Quorum {
    shared: Arc<Shared>,
}

struct Shared {
    node: Arc<Node>,
    runtime: tokio::runtime::Handle,
    /// Taken by the first `shutdown`; dropping it also stops the thread.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Fires when the thread has dropped its runtime (files and sockets closed).
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

/// The node's shared state on the "esker-raft" runtime.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) raft: Raft<TypeConfig>,
    pool: Arc<Pool>,
    on_leader: LeaderHandler,
    pub(crate) request_timeout: Duration,
    /// Last committed index seen (openraft's metrics do not carry it).
    committed: Mutex<Option<u64>>,
    leader_tx: watch::Sender<Option<u64>>,
    /// The accept loop and the metrics watcher, stopped before openraft is.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Quorum {
    /// Starts this node: opens/recovers the durable store in `config.dir`, serves peers on
    /// `listener` (already bound, so tests can use port 0), and, when the store is brand new
    /// and this node is among `config.voters`, initializes the cluster with those voters
    /// ("already initialized" is not an error). A node not among the voters waits to be added
    /// with [`Quorum::add_voter`].
    ///
    /// openraft and the RPC server run on a dedicated OS thread ("esker-raft") with its own
    /// tokio runtime. This call blocks the calling thread while the store is recovered (reading
    /// the log and snapshot), then returns; every method is then callable from any runtime.
    pub fn start(
        config: QuorumConfig,
        listener: TcpListener,
        machine: Box<dyn StateMachine>,
        on_leader: LeaderHandler,
    ) -> Result<Quorum, QuorumError> {
        let raft_config = config.raft_config()?;
        listener
            .set_nonblocking(true)
            .map_err(|source| QuorumError::Io {
                context: "making the controller listener non-blocking".into(),
                source,
            })?;
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("esker-raft".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("esker-raft-io")
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let context = "building the esker-raft runtime".to_string();
                        let _ = ready_tx.send(Err(QuorumError::Io { context, source }));
                        return;
                    }
                };
                let handle = runtime.handle().clone();
                runtime.block_on(async move {
                    let node = match boot(config, raft_config, listener, machine, on_leader).await {
                        Ok(node) => node,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if ready_tx.send(Ok((Arc::clone(&node), handle))).is_err() {
                        node.stop().await;
                        return;
                    }
                    // A send or the drop of every `Quorum` clone: either way, stop.
                    let _ = stop_rx.await;
                    node.stop().await;
                });
                // Dropping the runtime cancels the connection tasks and closes the listener.
                drop(runtime);
                let _ = done_tx.send(());
            })
            .map_err(|source| QuorumError::Io {
                context: "spawning the esker-raft thread".into(),
                source,
            })?;
        let (node, runtime) = match ready_rx.recv() {
            Ok(booted) => booted?,
            Err(_) => return Err(QuorumError::Shutdown),
        };
        Ok(Quorum {
            shared: Arc::new(Shared {
                node,
                runtime,
                stop: Mutex::new(Some(stop_tx)),
                done: Mutex::new(Some(done_rx)),
            }),
        })
    }

    /// Runs `work` on the quorum's runtime and awaits it from the caller's.
    async fn run<T, F>(&self, work: F) -> Result<T, QuorumError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QuorumError>> + Send + 'static,
    {
        if lock(&self.shared.stop).is_none() {
            return Err(QuorumError::Shutdown);
        }
        match self.shared.runtime.spawn(work).await {
            Ok(result) => result,
            Err(_) => Err(QuorumError::Shutdown),
        }
    }

    /// Replicates a command and returns the state machine's reply once it is committed and
    /// applied *on this node*, so reading local state afterwards sees the write. A follower
    /// forwards the command to the leader and then waits for its own state machine to apply
    /// that index.
    ///
    /// Bounded by [`QuorumConfig::request_timeout`]: [`QuorumError::NoLeader`] if no leader was
    /// reachable (the command was not delivered), [`QuorumError::Timeout`] or
    /// [`QuorumError::Disconnected`] if the outcome is unknown (the command may still be
    /// applied). Not retried after it may have reached a leader, so it is applied at most once
    /// per successful call, but a failed call may have been applied.
    pub async fn write(&self, command: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        let node = Arc::clone(&self.shared.node);
        self.run(async move { node.write(command).await }).await
    }

    /// Sends an application request to the current leader's [`LeaderHandler`] (locally if this
    /// node leads) and returns its answer. Same bounds as [`Quorum::write`]; not retried once it
    /// may have reached the handler.
    pub async fn call_leader(&self, request: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        let node = Arc::clone(&self.shared.node);
        self.run(async move { node.call_leader(request).await })
            .await
    }

    /// This node's view: leader, term, applied and committed indexes, role, membership.
    pub fn status(&self) -> QuorumStatus {
        self.shared.node.status()
    }

    /// The leader's view for DescribeQuorum: answered locally if this node leads, otherwise
    /// fetched from the leader. Same bounds as [`Quorum::write`].
    pub async fn describe(&self) -> Result<QuorumDescription, QuorumError> {
        let node = Arc::clone(&self.shared.node);
        self.run(async move { node.describe().await }).await
    }

    /// Adds `node_id` (listening at `addr`) as a learner, waits for it to catch up, then
    /// promotes it to voter (KIP-853's AddRaftVoter). Forwarded to the leader when called on a
    /// follower. Adding an existing member does not change its address.
    pub async fn add_voter(&self, node_id: u64, addr: String) -> Result<(), QuorumError> {
        let node = Arc::clone(&self.shared.node);
        self.run(async move { node.add_voter(node_id, addr).await })
            .await
    }

    /// Removes a voter from the membership (KIP-853's RemoveRaftVoter). Forwarded to the leader
    /// when called on a follower. The removed node keeps running until shut down; it no longer
    /// receives entries.
    pub async fn remove_voter(&self, node_id: u64) -> Result<(), QuorumError> {
        let node = Arc::clone(&self.shared.node);
        self.run(async move { node.remove_voter(node_id).await })
            .await
    }

    /// A watch of the current leader (`None` while there is none, and after shutdown); it
    /// changes whenever the leader does.
    pub fn leader_watch(&self) -> watch::Receiver<Option<u64>> {
        self.shared.node.leader_tx.subscribe()
    }

    /// Stops the node: openraft shuts down, the listener and every connection close, the
    /// thread exits; the store stays consistent (every acknowledged write is on disk). Takes
    /// `&self` so a clone can stop the node; afterwards every method of every clone fails with
    /// [`QuorumError::Shutdown`]. Returns once the thread has released the files and sockets,
    /// so the same directory and address can be reused at once. A second call returns at once.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        let stop = lock(&self.shared.stop).take();
        let done = lock(&self.shared.done).take();
        let Some(stop) = stop else {
            return Ok(());
        };
        let _ = stop.send(());
        if let Some(done) = done {
            // An error means the thread is gone, which is what we wait for.
            let _ = done.await;
        }
        Ok(())
    }
}

/// Opens the store, starts openraft, the server and the metrics watcher; initializes the
/// cluster if this is a brand-new initial voter. Runs on the "esker-raft" runtime.
async fn boot(
    config: QuorumConfig,
    raft_config: openraft::Config,
    listener: TcpListener,
    machine: Box<dyn StateMachine>,
    on_leader: LeaderHandler,
) -> Result<Arc<Node>, QuorumError> {
    let store = Store::open(&config.dir, machine).map_err(|source| QuorumError::Io {
        context: format!("opening the raft store in {}", config.dir.display()),
        source,
    })?;
    let (log_store, state_machine) = Adaptor::new(store);
    let pool = Arc::new(Pool::default());
    let network = Network {
        node_id: config.node_id,
        pool: Arc::clone(&pool),
        rpc_timeout: config.rpc_timeout,
    };
    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config),
        network,
        log_store,
        state_machine,
    )
    .await?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|source| QuorumError::Io {
            context: "registering the controller listener".into(),
            source,
        })?;
    let (leader_tx, _) = watch::channel(None);
    let node = Arc::new(Node {
        id: config.node_id,
        raft: raft.clone(),
        pool,
        on_leader,
        request_timeout: config.request_timeout,
        committed: Mutex::new(None),
        leader_tx,
        tasks: Mutex::new(Vec::new()),
    });
    let server = tokio::spawn(super::server::serve(listener, Arc::clone(&node)));
    let watcher = tokio::spawn(watch_metrics(Arc::clone(&node)));
    lock(&node.tasks).extend([server.abort_handle(), watcher.abort_handle()]);

    if raft.is_initialized().await? {
        tracing::info!(node = config.node_id, dir = %config.dir.display(), "raft node recovered");
    } else if config.voters.contains_key(&config.node_id) {
        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(node = config.node_id, voters = ?config.voters, "raft quorum initialized")
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::debug!(node = config.node_id, error = %e, "raft quorum already initialized")
            }
            Err(e) => return Err(QuorumError::Init(e.to_string())),
        }
    } else {
        tracing::info!(
            node = config.node_id,
            "raft node is not among the initial voters; waiting to be added"
        );
    }
    Ok(node)
}

/// Follows openraft's metrics: publishes leader changes and caches the committed index.
async fn watch_metrics(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    let mut leader = None;
    let mut seen_log = None;
    loop {
        let (current, term, log) = {
            let m = metrics.borrow_and_update();
            (
                m.current_leader,
                m.current_term,
                (m.last_log_index, m.last_applied.map(|l| l.index)),
            )
        };
        if current != leader {
            tracing::info!(node = node.id, leader = ?current, term, "raft leader changed");
            leader = current;
            node.leader_tx.send_replace(current);
        }
        // Asking the core for its state makes it report metrics again: ask only when the log
        // moved, or this loop would keep the raft thread busy forever.
        if Some(log) != seen_log {
            seen_log = Some(log);
            if let Ok(committed) = node.raft.with_raft_state(|st| st.committed.index()).await {
                *lock(&node.committed) = committed;
            }
        }
        if metrics.changed().await.is_err() {
            break;
        }
    }
    node.leader_tx.send_replace(None);
}

/// Maps openraft's client-write error (also used by membership changes) to the wire form.
fn client_write_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> AppError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => AppError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(other) => AppError::Failed {
            message: other.to_string(),
        },
        RaftError::Fatal(fatal) => AppError::Failed {
            message: format!("raft stopped: {fatal}"),
        },
    }
}

fn timeout_error(what: &str) -> AppError {
    AppError::Timeout {
        message: format!("{what} did not complete within the deadline"),
    }
}

impl Node {
    fn is_leader(&self) -> Result<(), AppError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.state == ServerState::Leader && m.current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(AppError::NotLeader {
                leader: m.current_leader,
            })
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }

    pub(crate) fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let last_applied = m.last_applied.index();
        let committed = (*lock(&self.committed)).max(last_applied);
        QuorumStatus {
            node_id: self.id,
            leader_id: m.current_leader,
            term: m.current_term,
            is_leader: m.state == ServerState::Leader,
            last_applied,
            committed,
            last_log_index: m.last_log_index,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        }
    }

    // ---- leader side: requests this node handles itself ----

    /// Replicates a command as the leader.
    pub(crate) async fn local_write(
        &self,
        command: Vec<u8>,
        deadline: Instant,
    ) -> Result<WriteReply, AppError> {
        self.is_leader()?;
        match tokio::time::timeout_at(deadline, self.raft.client_write(Command(command))).await {
            Err(_) => Err(timeout_error("the write")),
            Ok(Ok(response)) => Ok(WriteReply {
                index: response.log_id.index,
                reply: response.data.0,
            }),
            Ok(Err(e)) => Err(client_write_error(e)),
        }
    }

    /// Runs the leader handler.
    pub(crate) async fn local_call(
        &self,
        request: Vec<u8>,
        deadline: Instant,
    ) -> Result<Payload, AppError> {
        self.is_leader()?;
        match tokio::time::timeout_at(deadline, (self.on_leader)(request)).await {
            Err(_) => Err(timeout_error("the leader handler")),
            Ok(reply) => Ok(Payload(reply)),
        }
    }

    /// The leader's view of the quorum.
    pub(crate) async fn local_describe(&self) -> Result<QuorumDescription, AppError> {
        self.is_leader()?;
        let m = self.raft.metrics().borrow().clone();
        let committed = match self.raft.with_raft_state(|st| st.committed.index()).await {
            Ok(committed) => committed,
            Err(fatal) => {
                return Err(AppError::Failed {
                    message: format!("raft stopped: {fatal}"),
                })
            }
        };
        let membership = m.membership_config.membership();
        let replica = |id: u64| {
            let matched = if id == self.id {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten()
                    .index()
                    .or(m.last_log_index)
            } else {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten()
                    .index()
            };
            ReplicaState {
                node_id: id,
                addr: membership
                    .get_node(&id)
                    .map(|n| n.addr.clone())
                    .unwrap_or_default(),
                matched_index: matched,
                last_contact_ms: if id == self.id {
                    Some(now_ms())
                } else {
                    self.pool.last_contact(id)
                },
            }
        };
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        Ok(QuorumDescription {
            leader_id: self.id,
            term: m.current_term,
            high_watermark: committed,
            voters: voters.into_iter().map(replica).collect(),
            learners: learners.into_iter().map(replica).collect(),
        })
    }

    /// Adds a learner, waits for it to catch up, promotes it.
    pub(crate) async fn local_add_voter(
        &self,
        id: u64,
        addr: String,
        deadline: Instant,
    ) -> Result<(), AppError> {
        self.is_leader()?;
        let add = self.raft.add_learner(id, BasicNode::new(addr), true);
        match tokio::time::timeout_at(deadline, add).await {
            Err(_) => return Err(timeout_error("adding the learner")),
            Ok(Err(e)) => return Err(client_write_error(e)),
            Ok(Ok(_)) => {}
        }
        let promote = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
        match tokio::time::timeout_at(deadline, promote).await {
            Err(_) => Err(timeout_error("promoting the learner")),
            Ok(Err(e)) => Err(client_write_error(e)),
            Ok(Ok(_)) => {
                tracing::info!(node = self.id, added = id, "raft voter added");
                Ok(())
            }
        }
    }

    /// Removes a voter.
    pub(crate) async fn local_remove_voter(
        &self,
        id: u64,
        deadline: Instant,
    ) -> Result<(), AppError> {
        self.is_leader()?;
        let remove = self
            .raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false);
        match tokio::time::timeout_at(deadline, remove).await {
            Err(_) => Err(timeout_error("removing the voter")),
            Ok(Err(e)) => Err(client_write_error(e)),
            Ok(Ok(_)) => {
                tracing::info!(node = self.id, removed = id, "raft voter removed");
                Ok(())
            }
        }
    }

    // ---- any node: route to the leader ----

    async fn write(&self, command: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        let deadline = self.deadline();
        let request = Payload(command);
        let reply: WriteReply = self
            .route(deadline, kind::FORWARD, &request, false, || {
                self.local_write(request.0.clone(), deadline)
            })
            .await?;
        self.wait_applied(reply.index, deadline).await?;
        Ok(reply.reply)
    }

    async fn call_leader(&self, request: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        let deadline = self.deadline();
        let request = Payload(request);
        let reply: Payload = self
            .route(deadline, kind::CALL_LEADER, &request, false, || {
                self.local_call(request.0.clone(), deadline)
            })
            .await?;
        Ok(reply.0)
    }

    async fn describe(&self) -> Result<QuorumDescription, QuorumError> {
        let deadline = self.deadline();
        self.route(deadline, kind::DESCRIBE, &(), true, || {
            self.local_describe()
        })
        .await
    }

    async fn add_voter(&self, node_id: u64, addr: String) -> Result<(), QuorumError> {
        let deadline = self.deadline();
        let request = AddVoterRequest { node_id, addr };
        self.route(deadline, kind::ADD_VOTER, &request, true, || {
            self.local_add_voter(request.node_id, request.addr.clone(), deadline)
        })
        .await
    }

    async fn remove_voter(&self, node_id: u64) -> Result<(), QuorumError> {
        let deadline = self.deadline();
        let request = RemoveVoterRequest { node_id };
        self.route(deadline, kind::REMOVE_VOTER, &request, true, || {
            self.local_remove_voter(node_id, deadline)
        })
        .await
    }

    /// Runs a request on the leader: `local` when this node leads, else an RPC of `kind` to the
    /// leader. Retries, until `deadline`, while no leader is known, the leader is unreachable or
    /// says it no longer leads; retries after a lost connection only if `idempotent`.
    async fn route<Req, T, F, Fut>(
        &self,
        deadline: Instant,
        kind: u8,
        request: &Req,
        idempotent: bool,
        local: F,
    ) -> Result<T, QuorumError>
    where
        Req: Serialize,
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        let body = serde_json::to_vec(request).map_err(|e| QuorumError::Protocol(e.to_string()))?;
        let mut problem = "no leader known".to_string();
        loop {
            if Instant::now() >= deadline {
                return Err(QuorumError::NoLeader {
                    waited: self.request_timeout,
                    reason: problem,
                });
            }
            let Some(leader) = self.wait_leader(deadline).await else {
                return Err(QuorumError::NoLeader {
                    waited: self.request_timeout,
                    reason: problem,
                });
            };
            let outcome = if leader == self.id {
                local().await
            } else {
                let addr = {
                    let metrics = self.raft.metrics();
                    let m = metrics.borrow();
                    m.membership_config
                        .membership()
                        .get_node(&leader)
                        .map(|n| n.addr.clone())
                };
                let Some(addr) = addr else {
                    problem = format!("leader {leader} has no known address");
                    pause(deadline).await;
                    continue;
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                match self.pool.call(leader, &addr, kind, &body, remaining).await {
                    Ok(reply) => {
                        serde_json::from_slice::<Result<T, AppError>>(&reply).map_err(|e| {
                            QuorumError::Protocol(format!(
                                "undecodable reply from leader {leader}: {e}"
                            ))
                        })?
                    }
                    Err(e @ (CallError::NotSent(_) | CallError::Timeout { sent: false, .. })) => {
                        tracing::debug!(node = self.id, leader, %addr, error = %e, "leader unreachable; retrying");
                        problem = format!("leader {leader} at {addr}: {e}");
                        pause(deadline).await;
                        continue;
                    }
                    Err(e) if idempotent => {
                        tracing::debug!(node = self.id, leader, %addr, error = %e, "request to the leader failed; retrying");
                        problem = format!("leader {leader} at {addr}: {e}");
                        pause(deadline).await;
                        continue;
                    }
                    Err(e @ CallError::Timeout { .. }) => {
                        return Err(QuorumError::Timeout(format!(
                            "leader {leader} at {addr}: {e}"
                        )))
                    }
                    Err(e) => {
                        return Err(QuorumError::Disconnected(format!(
                            "leader {leader} at {addr}: {e}"
                        )))
                    }
                }
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(AppError::NotLeader { leader: hint }) => {
                    problem = format!("node {leader} is not the leader (it points at {hint:?})");
                    pause(deadline).await;
                }
                Err(AppError::Failed { message }) => return Err(QuorumError::Failed(message)),
                Err(AppError::Timeout { message }) => return Err(QuorumError::Timeout(message)),
            }
        }
    }

    /// The current leader, waiting for one until `deadline`.
    async fn wait_leader(&self, deadline: Instant) -> Option<u64> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Some(leader);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Waits until this node's state machine has applied `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), QuorumError> {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_and_update().last_applied.index() >= Some(index) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(QuorumError::Shutdown),
                Err(_) => {
                    return Err(QuorumError::Timeout(format!(
                        "committed at index {index} but not applied on node {} within the deadline",
                        self.id
                    )))
                }
            }
        }
    }

    /// Shuts openraft down and stops accepting connections. Runs on the quorum's runtime.
    async fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = self.id, error = %e, "raft core ended abnormally");
        }
        self.pool.clear();
        self.leader_tx.send_replace(None);
        tracing::info!(node = self.id, "raft node stopped");
    }
}

/// Waits a little before retrying, never past `deadline`.
async fn pause(deadline: Instant) {
    tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_PAUSE)).await;
}
