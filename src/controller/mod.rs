//! The controller: this node's seat in the metadata quorum and the decisions written to the
//! metadata log. It starts the quorum ([`crate::raft`]) over the metadata state machine, proposes
//! commands for the front ends (topic creation with replica placement, deletion, partitions,
//! configs, producer-id blocks), registers this broker and sends its heartbeats, and, while
//! this node leads the quorum, fences brokers whose heartbeats stop and unfences them when they
//! come back. Front ends read the image through [`Controller::feed`]; only this module writes
//! the metadata log.
//!
//! Runs on the quorum's own thread (`esker-raft`: the leader's heartbeat handler) and on shard
//! 0's runtime (the registration, heartbeat and fencing loops).

pub mod placement;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::{
    Applied, ClusterConfig, Command, Endpoint, MetadataFeed, MetadataImage, Reply, TopicImage,
};
use crate::raft::{LeaderHandler, Quorum, QuorumConfig, QuorumError};
pub use placement::PlacementError;

/// How long a metadata write may take before the caller gets an error.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the controller layer.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The quorum has no reachable leader, or the write did not complete in time.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(#[from] QuorumError),
    /// Placement failed.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The topic exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// No such topic.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The change raced another one; nothing was changed.
    #[error("the metadata changed concurrently; retry")]
    Stale,
    /// An unexpected reply or refusal.
    #[error("metadata write refused: {0}")]
    Refused(String),
    /// The quorum could not be started.
    #[error("cannot start the metadata quorum: {0}")]
    Start(String),
}

/// What a broker sends the active controller.
#[derive(Debug, Serialize, Deserialize)]
enum LeaderRequest {
    Heartbeat { id: i32, epoch: i64 },
}

/// The active controller's answer to a heartbeat.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum HeartbeatReply {
    Ok,
    /// The epoch is not the broker's current registration: register again.
    Reregister,
}

/// Heartbeat bookkeeping of the active controller.
#[derive(Default)]
struct Liveness {
    last_seen: HashMap<i32, Instant>,
    leader_since: Option<Instant>,
    /// When the leader-imbalance check last ran.
    last_rebalance: Option<Instant>,
}

/// How long a controlled shutdown waits for its fencing to commit.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's controller.
pub struct Controller {
    node_id: i32,
    config: ClusterConfig,
    quorum: Quorum,
    feed: MetadataFeed,
    broker_epoch: AtomicI64,
    incarnation: Uuid,
    endpoints: Vec<Endpoint>,
    liveness: Arc<Mutex<Liveness>>,
}

impl Controller {
    /// Starts the quorum member on `listener` (the controller listener, already bound) with its
    /// store in `dir`. `endpoints` are this broker's advertised listeners.
    pub fn start(
        config: ClusterConfig,
        dir: std::path::PathBuf,
        listener: std::net::TcpListener,
        endpoints: Vec<Endpoint>,
    ) -> Result<Arc<Controller>, ControllerError> {
        let (machine, feed) = crate::metadata::state_machine();
        let liveness = Arc::new(Mutex::new(Liveness::default()));
        let handler_feed = feed.clone();
        let handler_liveness = liveness.clone();
        let handler_quorum: Arc<OnceLock<Quorum>> = Arc::new(OnceLock::new());
        let quorum_cell = handler_quorum.clone();
        let on_leader: LeaderHandler = Arc::new(move |bytes: Vec<u8>| {
            let feed = handler_feed.clone();
            let liveness = handler_liveness.clone();
            let quorum = quorum_cell.clone();
            Box::pin(async move {
                let reply = match serde_json::from_slice::<LeaderRequest>(&bytes) {
                    Ok(LeaderRequest::Heartbeat { id, epoch }) => {
                        heartbeat(&feed, &liveness, quorum.get(), id, epoch).await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable request to the controller");
                        HeartbeatReply::Reregister
                    }
                };
                serde_json::to_vec(&reply).unwrap_or_default()
            })
        });
        let election = config.election_timeout;
        let quorum = Quorum::start(
            QuorumConfig {
                heartbeat_interval: election / 5,
                election_timeout_min: election,
                election_timeout_max: election * 2,
                snapshot_every: config.snapshot_every,
                rpc_timeout: election,
                ..QuorumConfig::new(
                    config.node_id as u64,
                    config
                        .voters
                        .iter()
                        .map(|(id, addr)| (*id as u64, addr.clone()))
                        .collect(),
                    dir,
                )
            },
            listener,
            Box::new(machine),
            on_leader,
        )
        .map_err(|e| ControllerError::Start(e.to_string()))?;
        let _ = handler_quorum.set(quorum.clone());
        Ok(Arc::new(Controller {
            node_id: config.node_id,
            config,
            quorum,
            feed,
            broker_epoch: AtomicI64::new(-1),
            incarnation: Uuid::new_v4(),
            endpoints,
            liveness,
        }))
    }

    /// The metadata image feed.
    pub fn feed(&self) -> &MetadataFeed {
        &self.feed
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.feed.image()
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The cluster settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The quorum member.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// The active controller (the quorum leader), if known.
    pub fn active_controller(&self) -> Option<i32> {
        self.quorum.status().leader_id.map(|l| l as i32)
    }

    /// This broker's epoch (-1 until registered).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Relaxed)
    }

    /// Writes a command and waits until this node's image has applied it.
    pub async fn propose(&self, cmd: Command) -> Result<Applied, ControllerError> {
        let bytes =
            serde_json::to_vec(&cmd).map_err(|e| ControllerError::Refused(e.to_string()))?;
        let started = Instant::now();
        let out = tokio::time::timeout(WRITE_TIMEOUT, self.quorum.write(bytes))
            .await
            .map_err(|_| ControllerError::Refused("metadata write timed out".into()))??;
        let committed = started.elapsed();
        let applied: Applied = serde_json::from_slice(&out)
            .map_err(|e| ControllerError::Refused(format!("undecodable reply: {e}")))?;
        self.feed.wait_for(applied.index, WRITE_TIMEOUT).await;
        tracing::debug!(
            index = applied.index,
            committed_us = committed.as_micros() as u64,
            applied_us = started.elapsed().as_micros() as u64,
            "metadata write"
        );
        Ok(applied)
    }

    /// Creates a topic: replicas placed over the live brokers (or as assigned), configs
    /// stored with it. `rf` None means `default.replication.factor`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: Option<i16>,
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(Uuid, u64), ControllerError> {
        let image = self.image();
        if image.topics.contains_key(name) {
            return Err(ControllerError::TopicExists(name.into()));
        }
        let assignments = match assignments {
            Some(a) => {
                placement::check(&image, &a)?;
                a
            }
            None => placement::assign(
                &image,
                partitions,
                rf.unwrap_or(self.config.default_replication_factor),
                image.partition_count(),
            )?,
        };
        let id = Uuid::new_v4();
        if validate_only {
            return Ok((id, image.applied_index));
        }
        let applied = self
            .propose(Command::CreateTopic {
                name: name.into(),
                id,
                configs,
                assignments,
            })
            .await?;
        match applied.reply {
            Reply::Ok => Ok((id, applied.index)),
            Reply::TopicExists => Err(ControllerError::TopicExists(name.into())),
            other => Err(ControllerError::Refused(format!("{other:?}"))),
        }
    }

    /// Deletes a topic cluster-wide.
    pub async fn delete_topic(&self, name: &str) -> Result<u64, ControllerError> {
        let applied = self
            .propose(Command::DeleteTopic { name: name.into() })
            .await?;
        expect_ok(applied, name)
    }

    /// Raises a topic's partition count.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<u64, ControllerError> {
        let image = self.image();
        let topic: Arc<TopicImage> = image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| ControllerError::UnknownTopic(name.into()))?;
        let from = topic.partitions.len() as i32;
        let rf = topic
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len() as i16);
        let assignments = match assignments {
            Some(a) => {
                placement::check(&image, &a)?;
                a
            }
            None => placement::assign(&image, count - from, rf, image.partition_count())?,
        };
        if validate_only {
            return Ok(image.applied_index);
        }
        let applied = self
            .propose(Command::CreatePartitions {
                name: name.into(),
                from,
                assignments,
            })
            .await?;
        expect_ok(applied, name)
    }

    /// Replaces a topic's config overrides cluster-wide.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<u64, ControllerError> {
        let applied = self
            .propose(Command::SetTopicConfigs {
                name: name.into(),
                configs,
            })
            .await?;
        expect_ok(applied, name)
    }

    /// A block of `count` producer ids unique in the cluster; returns its first id.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, ControllerError> {
        let applied = self
            .propose(Command::AllocateProducerIds {
                broker: self.node_id,
                count,
            })
            .await?;
        match applied.reply {
            Reply::ProducerIds { start } => Ok(start),
            other => Err(ControllerError::Refused(format!("{other:?}"))),
        }
    }

    /// Registers this broker (retrying until the quorum answers or `deadline` passes).
    pub async fn register(&self, deadline: Duration) -> Result<i64, ControllerError> {
        let until = Instant::now() + deadline;
        loop {
            let res = self
                .propose(Command::RegisterBroker {
                    id: self.node_id,
                    incarnation: self.incarnation,
                    endpoints: self.endpoints.clone(),
                    rack: self.config.rack.clone(),
                })
                .await;
            match res {
                Ok(Applied {
                    reply: Reply::BrokerEpoch { epoch },
                    ..
                }) => {
                    self.broker_epoch.store(epoch, Ordering::Relaxed);
                    tracing::info!(node = self.node_id, epoch, "broker registered");
                    return Ok(epoch);
                }
                Ok(other) => return Err(ControllerError::Refused(format!("{:?}", other.reply))),
                Err(e) if Instant::now() >= until => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "broker registration not yet possible; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The broker's heartbeat loop and, while this node leads the quorum, the fencing loop;
    /// both end when `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leader = self.quorum.leader_watch();
        // The quorum may have elected this node before the loop started: look now, not only
        // at the next change.
        let led = *leader.borrow_and_update() == Some(self.node_id as u64);
        self.on_leadership(led);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = heartbeat.tick() => {
                    self.send_heartbeat().await;
                    let status = self.quorum.status();
                    if status.is_leader {
                        // Also covers a change the watch folded away (same leader again).
                        self.on_leadership(true);
                        self.lead().await;
                    }
                }
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let led = *leader.borrow_and_update() == Some(self.node_id as u64);
                    self.on_leadership(led);
                }
            }
        }
    }

    /// Notes whether this node leads the quorum. On taking over, every broker gets a full
    /// session from now (the previous leader's heartbeat times are not known here).
    fn on_leadership(&self, leader: bool) {
        let mut l = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        match (leader, l.leader_since.is_some()) {
            (true, false) => {
                l.last_seen.clear();
                l.leader_since = Some(Instant::now());
                tracing::info!(node = self.node_id, "this node is the active controller");
            }
            (false, true) => {
                l.leader_since = None;
                tracing::info!(
                    node = self.node_id,
                    "this node is no longer the active controller"
                );
            }
            _ => {}
        }
    }

    async fn send_heartbeat(&self) {
        let epoch = self.broker_epoch();
        if epoch < 0 {
            return;
        }
        let req = LeaderRequest::Heartbeat {
            id: self.node_id,
            epoch,
        };
        let Ok(bytes) = serde_json::to_vec(&req) else {
            return;
        };
        match self.quorum.call_leader(bytes).await {
            Ok(out) => {
                if serde_json::from_slice::<HeartbeatReply>(&out).ok()
                    == Some(HeartbeatReply::Reregister)
                {
                    tracing::warn!(
                        node = self.node_id,
                        epoch,
                        "the controller does not know this broker's epoch; registering again"
                    );
                    if let Err(e) = self.register(self.config.session_timeout).await {
                        tracing::warn!(error = %e, "re-registration failed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
    }

    /// The active controller's periodic duties: the cluster id, fencing brokers whose
    /// heartbeats stopped.
    async fn lead(&self) {
        let image = self.image();
        if image.cluster_id.is_none() {
            let cluster_id = crate::catalog::uuid_to_base64(Uuid::new_v4());
            if let Err(e) = self.propose(Command::InitCluster { cluster_id }).await {
                tracing::debug!(error = %e, "cannot set the cluster id yet");
            }
        }
        let now = Instant::now();
        let overdue: Vec<(i32, i64)> = {
            let l = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
            let Some(since) = l.leader_since else {
                return;
            };
            image
                .live_brokers()
                .filter(|b| {
                    let seen = l.last_seen.get(&b.id).copied().unwrap_or(since).max(since);
                    now.duration_since(seen) > self.config.session_timeout
                })
                .map(|b| (b.id, b.epoch))
                .collect()
        };
        for (id, epoch) in overdue {
            tracing::warn!(broker = id, epoch, "broker heartbeats stopped; fencing it");
            if let Err(e) = self.propose(Command::FenceBroker { id, epoch }).await {
                tracing::warn!(broker = id, error = %e, "cannot fence broker");
            }
        }
        let rebalance = self.config.auto_leader_rebalance && {
            let mut l = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
            let due = l.last_rebalance.map_or(true, |t| {
                now.duration_since(t) >= self.config.leader_imbalance_check_interval
            });
            if due {
                l.last_rebalance = Some(now);
            }
            due
        };
        self.elect_leaders(&self.image(), rebalance).await;
    }

    /// Fences this broker before it stops (Kafka's controlled shutdown), so the partitions it
    /// leads move to other in-sync replicas at once. Bounded: a quorum that cannot commit does
    /// not hold the shutdown.
    pub async fn controlled_shutdown(&self) {
        let epoch = self.broker_epoch();
        if epoch < 0 {
            return;
        }
        let cmd = Command::FenceBroker {
            id: self.node_id,
            epoch,
        };
        match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, self.propose(cmd)).await {
            Ok(Ok(_)) => {
                tracing::info!(node = self.node_id, "controlled shutdown: leadership moved")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown not committed"),
            Err(_) => tracing::warn!("controlled shutdown timed out"),
        }
    }

    /// Leader elections the active controller makes by itself: unclean ones for partitions with
    /// no live in-sync replica where `unclean.leader.election.enable` allows it, and preferred
    /// ones when `auto.leader.rebalance.enable` finds a broker's preferred partitions led
    /// elsewhere beyond `leader.imbalance.per.broker.percentage`.
    async fn elect_leaders(&self, image: &MetadataImage, rebalance: bool) {
        let mut elections = Vec::new();
        // The broker default: a dynamic value (this node's, else the cluster default) wins
        // over server.properties.
        let default_unclean = image
            .effective_broker_configs(self.node_id)
            .get("unclean.leader.election.enable")
            .map_or(self.config.unclean_leader_election, |v| {
                v.trim().eq_ignore_ascii_case("true")
            });
        for t in image.topics.values() {
            let unclean = t
                .configs
                .get("unclean.leader.election.enable")
                .map_or(default_unclean, |v| v.trim().eq_ignore_ascii_case("true"));
            for (p, part) in t.partitions.iter().enumerate() {
                if unclean && part.leader == -1 && part.replicas.iter().any(|r| image.is_live(*r)) {
                    elections.push((t.name.clone(), p as i32, false));
                }
            }
        }
        if rebalance {
            // Per broker: (preferred partitions, those led elsewhere and electable).
            let mut share: HashMap<i32, (usize, Vec<(String, i32)>)> = HashMap::new();
            for t in image.topics.values() {
                for (p, part) in t.partitions.iter().enumerate() {
                    let Some(&preferred) = part.replicas.first() else {
                        continue;
                    };
                    let e = share.entry(preferred).or_default();
                    e.0 += 1;
                    if part.leader != preferred
                        && image.is_live(preferred)
                        && part.isr.contains(&preferred)
                    {
                        e.1.push((t.name.clone(), p as i32));
                    }
                }
            }
            for (broker, (total, moved)) in share {
                let pct = (moved.len() * 100).checked_div(total).unwrap_or(0) as i64;
                if !moved.is_empty() && pct > self.config.leader_imbalance_percentage {
                    tracing::info!(
                        broker,
                        imbalance_pct = pct,
                        partitions = moved.len(),
                        "electing preferred leaders"
                    );
                    elections.extend(moved.into_iter().map(|(t, p)| (t, p, true)));
                }
            }
        }
        // Reassignments whose added replicas all joined the ISR.
        for t in image.topics.values() {
            for (p, part) in t.partitions.iter().enumerate() {
                if part.reassigning() && part.adding.iter().all(|r| part.isr.contains(r)) {
                    let cmd = Command::CompleteReassignment {
                        topic: t.name.clone(),
                        partition: p as i32,
                    };
                    match self.propose(cmd).await {
                        Ok(a) if a.reply == Reply::Ok => {
                            tracing::info!(topic = %t.name, partition = p, replicas = ?part.target_replicas(), "reassignment complete")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "reassignment completion not committed")
                        }
                    }
                }
            }
        }
        for (topic, partition, preferred) in elections {
            let cmd = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                preferred,
            };
            match self.propose(cmd).await {
                Ok(a) => {
                    if let Reply::Partition { leader, .. } = a.reply {
                        if preferred {
                            tracing::info!(topic, partition, leader, "preferred leader elected");
                        } else {
                            tracing::warn!(
                                topic,
                                partition,
                                leader,
                                "unclean leader election: records the new leader lacks are lost"
                            );
                        }
                    }
                }
                Err(e) => tracing::debug!(topic, partition, error = %e, "election not committed"),
            }
        }
    }

    /// Stops the quorum member.
    pub async fn shutdown(&self) {
        if let Err(e) = self.quorum.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
    }
}

fn expect_ok(applied: Applied, name: &str) -> Result<u64, ControllerError> {
    match applied.reply {
        Reply::Ok => Ok(applied.index),
        Reply::UnknownTopic => Err(ControllerError::UnknownTopic(name.into())),
        Reply::Stale => Err(ControllerError::Stale),
        other => Err(ControllerError::Refused(format!("{other:?}"))),
    }
}

/// The active controller's handling of one heartbeat: note it, and unfence a fenced broker
/// that heartbeats with its current epoch.
async fn heartbeat(
    feed: &MetadataFeed,
    liveness: &Mutex<Liveness>,
    quorum: Option<&Quorum>,
    id: i32,
    epoch: i64,
) -> HeartbeatReply {
    let image = feed.image();
    let Some(b) = image.brokers.get(&id) else {
        return HeartbeatReply::Reregister;
    };
    if b.epoch != epoch {
        return HeartbeatReply::Reregister;
    }
    liveness
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_seen
        .insert(id, Instant::now());
    if b.fenced {
        if let Some(q) = quorum {
            tracing::info!(
                broker = id,
                epoch,
                "fenced broker heartbeats again; unfencing it"
            );
            if let Ok(cmd) = serde_json::to_vec(&Command::UnfenceBroker { id, epoch }) {
                if let Err(e) = q.write(cmd).await {
                    tracing::warn!(broker = id, error = %e, "cannot unfence broker");
                }
            }
        }
    }
    HeartbeatReply::Ok
}
