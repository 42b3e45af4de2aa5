//! One coordinator partition: the actor that owns the groups mapped to one `__consumer_offsets`
//! partition. It runs as a task on the runtime of the shard that owns that partition's log and
//! handles one message at a time, so the group state needs no lock.
//!
//! Writes go to the shard's job queue in the order the actor makes them; a spawned task waits
//! for the group-committed fsync and sends the outcome back as [`Command::Written`], whose
//! continuation applies the change (committed offsets become visible, assignments are
//! delivered) and answers the client. Timers are a min-heap of `(deadline, group)`; a group
//! remembers the deadline it armed, so superseded entries are skipped when they pop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::consumer::{
    records_between, ConsumerGroup, ConsumerGroupImage, ParkedReply, TopicSource,
};
use super::consumer_records::ConsumerRecord;
use super::group::{AfterGroupWrite, ClassicGroup, Clock, GroupState, Persist, StoredOffset};
use super::records::{self, OffsetValue, Record};
use super::{
    CommitParams, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatOutcome,
    ConsumerMemberDescription, CoordinatorMetrics, FetchedOffset, GroupConfig, GroupDescription,
    GroupError, GroupListing, GroupMetrics, JoinOutcome, JoinParams, Results, SyncOutcome,
    SyncParams, TxnCommitParams, OFFSETS_TOPIC,
};
use crate::catalog::Catalog;
use crate::context::BrokerContext;
use crate::log::batch::{self, BatchBuilder};
use crate::shard::durable::{self, DurableError};
use crate::shard::{Durability, ShardHandle, ShardState, StorageError};

/// Bytes read per step while replaying a partition.
const LOAD_CHUNK: usize = 1 << 20;

/// Messages to a coordinator partition.
pub enum Command {
    /// Replay the partition; answers the number of groups.
    Load(oneshot::Sender<Result<usize, String>>),
    /// Another broker leads the partition now: forget its groups (a later Load replays the
    /// log again, replicated meanwhile).
    Unload(oneshot::Sender<()>),
    /// JoinGroup.
    Join(JoinParams, oneshot::Sender<JoinOutcome>),
    /// SyncGroup.
    Sync(SyncParams, oneshot::Sender<SyncOutcome>),
    /// Heartbeat.
    Heartbeat {
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// LeaveGroup.
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
        reply: oneshot::Sender<Results>,
    },
    /// OffsetCommit.
    Commit(CommitParams, oneshot::Sender<Results>),
    /// TxnOffsetCommit.
    TxnCommit(TxnCommitParams, oneshot::Sender<Results>),
    /// A transaction marker of `producer_id` is durable in this partition.
    CompleteTxn {
        producer_id: i64,
        commit: bool,
        reply: oneshot::Sender<()>,
    },
    /// OffsetFetch.
    Fetch {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
        member: Option<(String, i32)>,
        require_stable: bool,
        reply: oneshot::Sender<Result<Vec<FetchedOffset>, GroupError>>,
    },
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat(ConsumerHeartbeat, oneshot::Sender<ConsumerHeartbeatOutcome>),
    /// ConsumerGroupDescribe (KIP-848).
    ConsumerDescribe {
        group_id: String,
        reply: oneshot::Sender<Result<ConsumerGroupDescription, GroupError>>,
    },
    /// ListGroups.
    List(oneshot::Sender<Result<Vec<GroupListing>, GroupError>>),
    /// DescribeGroups.
    Describe {
        group_id: String,
        reply: oneshot::Sender<Result<Option<GroupDescription>, GroupError>>,
    },
    /// DeleteGroups.
    Delete {
        group_id: String,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// OffsetDelete.
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<Results>,
    },
    /// Metrics snapshot: members and committed offsets of every group, rebalances so far.
    Metrics(oneshot::Sender<Result<CoordinatorMetrics, GroupError>>),
    /// Answer every parked request with NOT_COORDINATOR and stop serving (broker shutdown).
    Shutdown(oneshot::Sender<()>),
    /// A write finished: its base offset in the partition, or why it failed.
    Written(AfterWrite, Result<i64, GroupError>),
}

/// What to do once a write is durable.
pub enum AfterWrite {
    /// Group metadata of `group`.
    Group {
        group: String,
        then: AfterGroupWrite,
    },
    /// Offset commits: `entries[i]` is record `i` of the batch and answers `results[index]`.
    Commit {
        group: String,
        entries: Vec<(usize, String, i32, OffsetValue)>,
        results: Vec<Result<(), GroupError>>,
        reply: oneshot::Sender<Results>,
    },
    /// Transactional offset commits of `producer_id`, made while `txn` transactions of the
    /// producer had ended here: `entries[i]` is record `i` of the batch.
    TxnCommit {
        group: String,
        producer_id: i64,
        txn: u64,
        entries: Vec<(usize, String, i32, OffsetValue)>,
        results: Vec<Result<(), GroupError>>,
        reply: oneshot::Sender<Results>,
    },
    /// Records of a KIP-848 group: its parked heartbeat answers go once all its writes are
    /// durable.
    Consumer { group: String },
    /// Tombstones (deleted group, deleted or expired offsets); answer with `results`.
    Tombstones {
        reply: Option<oneshot::Sender<Results>>,
        results: Vec<Result<(), GroupError>>,
    },
}

/// Why a write to `__consumer_offsets` failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The partition refused the batch for a reason the client must see (a transactional
    /// commit with a stale producer epoch).
    #[error("refused: {0}")]
    Refused(GroupError),
    /// Storage, shard or replication failure (and whether the file system is full).
    #[error("{0}")]
    Failed(String, bool),
}

/// Failed writes to the offsets topic: one log line per ten seconds (a full disk fails every
/// commit of every group).
static WRITE_FAILURES: crate::log::disk_full::RateLimited =
    crate::log::disk_full::RateLimited::new(std::time::Duration::from_secs(10));

/// The transactional offset commits of one producer in this partition.
#[derive(Debug, Default)]
struct ProducerTxn {
    /// Groups holding durable pending offsets of the producer.
    groups: HashSet<String>,
    /// Transactional writes appended and not yet durable.
    in_flight: u32,
    /// How many of the producer's transactions ended here while it had writes in flight or
    /// pending offsets; a write remembers the count it was made under.
    ended: u64,
    /// How the last of those ended (true = commit): a write that was in flight when its
    /// marker arrived takes this outcome once durable.
    last_commit: bool,
}

/// The actor of one `__consumer_offsets` partition.
pub struct PartitionActor {
    partition: i32,
    shard: ShardHandle,
    cfg: GroupConfig,
    /// Classic groups, and the committed offsets of every group (a KIP-848 group's offsets
    /// live in a member-less entry of the same id).
    groups: HashMap<String, ClassicGroup>,
    /// KIP-848 consumer groups.
    consumer_groups: HashMap<String, ConsumerGroup>,
    /// KIP-848 groups as replayed so far (only while loading).
    consumer_images: HashMap<String, ConsumerGroupImage>,
    catalog: Arc<Catalog>,
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    me: mpsc::WeakSender<Command>,
    loaded: bool,
    stopped: bool,
    /// Generation (classic) or group-epoch (KIP-848) bumps so far, for the metrics.
    rebalances: u64,
    /// Producers with open transactions holding offsets here (pending or being written).
    txns: HashMap<i64, ProducerTxn>,
}

/// The catalog as the KIP-848 groups see it.
struct CatalogTopics<'a>(&'a Catalog);

impl TopicSource for CatalogTopics<'_> {
    fn resolve(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0.get(name).map(|t| (t.id, t.partitions))
    }

    fn version(&self) -> u64 {
        self.0.version()
    }

    fn names(&self) -> Vec<String> {
        self.0.names()
    }
}

/// Encodes KIP-848 records for a batch.
fn encoded(records: Vec<ConsumerRecord>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    records.iter().map(ConsumerRecord::encode).collect()
}

/// Answers a group's parked heartbeats (with an error if one of their writes failed).
fn release_parked(g: &mut ConsumerGroup) {
    let failed = std::mem::take(&mut g.write_failed);
    for (reply, outcome) in g.parked.drain(..) {
        let outcome = if failed {
            ConsumerHeartbeatOutcome {
                error: Some(GroupError::CoordinatorNotAvailable),
                member_id: outcome.member_id,
                member_epoch: outcome.member_epoch,
                ..ConsumerHeartbeatOutcome::default()
            }
        } else {
            outcome
        };
        let _ = reply.send(outcome);
    }
}

fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        wall_ms: BrokerContext::now_ms(),
    }
}

impl PartitionActor {
    /// An actor for `partition`, writing through `shard`.
    pub fn new(
        partition: i32,
        shard: ShardHandle,
        catalog: Arc<Catalog>,
        cfg: GroupConfig,
        me: mpsc::WeakSender<Command>,
    ) -> Self {
        PartitionActor {
            partition,
            shard,
            cfg,
            groups: HashMap::new(),
            consumer_groups: HashMap::new(),
            consumer_images: HashMap::new(),
            catalog,
            timers: BinaryHeap::new(),
            me,
            loaded: false,
            stopped: false,
            rebalances: 0,
            txns: HashMap::new(),
        }
    }

    /// The actor's loop: requests, timers and the periodic offset expiry, one at a time.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let far = Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep(far);
        tokio::pin!(sleep);
        let mut expiry = tokio::time::interval_at(
            Instant::now() + self.cfg.retention_check_interval,
            self.cfg
                .retention_check_interval
                .max(Duration::from_millis(1)),
        );
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.peek().map(|Reverse((t, _))| *t);
            if let Some(t) = next {
                if sleep.deadline() != t {
                    sleep.as_mut().reset(t);
                }
            }
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = &mut sleep, if next.is_some() && !self.stopped => self.fire_timers().await,
                _ = expiry.tick(), if self.loaded && !self.stopped => self.expire_offsets().await,
            }
        }
        tracing::debug!(partition = self.partition, "coordinator partition stopped");
    }

    async fn handle(&mut self, cmd: Command) {
        if let Command::Shutdown(reply) = cmd {
            for g in self.groups.values_mut() {
                g.release_parked(GroupError::NotCoordinator);
            }
            self.stopped = true;
            let _ = reply.send(());
            return;
        }
        if self.stopped && !matches!(cmd, Command::Written(..)) {
            return reject(cmd, GroupError::NotCoordinator);
        }
        if let Command::Unload(reply) = cmd {
            for g in self.groups.values_mut() {
                g.release_parked(GroupError::NotCoordinator);
            }
            self.groups.clear();
            self.consumer_groups.clear();
            self.consumer_images.clear();
            self.timers.clear();
            self.txns.clear();
            self.loaded = false;
            let _ = reply.send(());
            return;
        }
        if !self.loaded {
            if let Command::Load(reply) = cmd {
                let r = self.load().await;
                self.loaded = r.is_ok();
                let _ = reply.send(r);
            } else {
                reject(cmd, GroupError::CoordinatorLoadInProgress);
            }
            return;
        }
        let clock = clock();
        match cmd {
            Command::Load(reply) => {
                let _ = reply.send(Ok(self.groups.len()));
            }
            Command::Unload(reply) => {
                // Handled before loading is checked.
                let _ = reply.send(());
            }
            Command::Join(p, reply) => {
                let id = p.group_id.clone();
                if let Some(cg) = self.consumer_groups.get(&id) {
                    if !cg.members.is_empty() {
                        let _ = reply.send(JoinOutcome {
                            error: Some(GroupError::InconsistentGroupProtocol),
                            generation: -1,
                            member_id: p.member_id,
                            ..JoinOutcome::default()
                        });
                        return;
                    }
                    // An empty consumer group becomes a classic one (its offsets stay).
                    self.drop_consumer_group(&id).await;
                }
                if p.member_id.is_empty() {
                    self.groups
                        .entry(id.clone())
                        .or_insert_with(|| ClassicGroup::new(id.clone(), clock));
                }
                let Some(g) = self.groups.get_mut(&id) else {
                    let _ = reply.send(JoinOutcome {
                        error: Some(GroupError::UnknownMemberId),
                        generation: -1,
                        member_id: p.member_id,
                        ..JoinOutcome::default()
                    });
                    return;
                };
                let mut fx = Vec::new();
                let generation = g.generation;
                g.join(p, reply, &self.cfg, clock, &mut fx);
                self.rebalances += u64::from(g.generation != generation);
                self.after(&id, fx).await;
            }
            Command::Sync(p, reply) => {
                let id = p.group_id.clone();
                let Some(g) = self.groups.get_mut(&id) else {
                    let _ = reply.send(SyncOutcome::error(GroupError::UnknownMemberId));
                    return;
                };
                let mut fx = Vec::new();
                g.sync(p, reply, clock, &mut fx);
                self.after(&id, fx).await;
            }
            Command::Heartbeat {
                group_id,
                member_id,
                instance_id,
                generation,
                reply,
            } => {
                let r = match self.groups.get_mut(&group_id) {
                    None => Err(GroupError::UnknownMemberId),
                    Some(g) => g.heartbeat(&member_id, instance_id.as_deref(), generation, clock),
                };
                let _ = reply.send(r);
                self.rearm(&group_id);
            }
            Command::Leave {
                group_id,
                members,
                reply,
            } => {
                let Some(g) = self.groups.get_mut(&group_id) else {
                    let _ = reply.send(Err(GroupError::UnknownMemberId));
                    return;
                };
                let mut fx = Vec::new();
                let generation = g.generation;
                let results = members
                    .iter()
                    .map(|(m, i)| g.leave(m, i.as_deref(), &self.cfg, clock, &mut fx))
                    .collect();
                self.rebalances += u64::from(g.generation != generation);
                let _ = reply.send(Ok(results));
                self.after(&group_id, fx).await;
            }
            Command::Commit(p, reply) => self.commit(p, reply, clock).await,
            Command::TxnCommit(p, reply) => self.txn_commit(p, reply, clock).await,
            Command::CompleteTxn {
                producer_id,
                commit,
                reply,
            } => {
                self.complete_txn(producer_id, commit);
                let _ = reply.send(());
            }
            Command::Fetch {
                group_id,
                partitions,
                member,
                require_stable,
                reply,
            } => {
                if let (Some(cg), Some((member_id, epoch))) =
                    (self.consumer_groups.get(&group_id), &member)
                {
                    if *epoch >= 0 {
                        if let Err(e) = cg.validate_member_epoch(member_id, *epoch) {
                            let _ = reply.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = reply.send(Ok(self.fetch(&group_id, partitions, require_stable)));
            }
            Command::ConsumerHeartbeat(p, reply) => {
                let id = p.group_id.clone();
                if self.groups.get(&id).is_some_and(|g| !g.members.is_empty()) {
                    let _ = reply.send(ConsumerHeartbeatOutcome {
                        error: Some(GroupError::GroupIdNotFound),
                        error_message: Some(format!("group {id} is not a consumer group")),
                        member_id: p.member_id,
                        member_epoch: p.member_epoch,
                        ..ConsumerHeartbeatOutcome::default()
                    });
                    return;
                }
                let topics = CatalogTopics(&self.catalog);
                let cfg = &self.cfg;
                let g = self
                    .consumer_groups
                    .entry(id.clone())
                    .or_insert_with(|| ConsumerGroup::new(id.clone(), cfg, clock));
                let epoch = g.group_epoch;
                let out = g.heartbeat(p, &self.cfg, clock, &topics);
                self.rebalances += u64::from(g.group_epoch != epoch);
                // Only a group that no member ever joined (the creating heartbeat failed) goes
                // at once; a group whose members left stays Empty, as in Kafka, until the
                // periodic offsets cleanup removes it.
                if g.members.is_empty()
                    && g.group_epoch == 0
                    && g.persisted.is_none()
                    && !self.groups.contains_key(&id)
                {
                    self.consumer_groups.remove(&id);
                }
                self.persist_consumer(&id, Some((reply, out))).await;
                self.rearm(&id);
            }
            Command::ConsumerDescribe { group_id, reply } => {
                let _ = reply.send(self.consumer_describe(&group_id));
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Ok(self.metrics()));
            }
            Command::List(reply) => {
                let mut list: Vec<GroupListing> = self
                    .groups
                    .values()
                    .filter(|g| g.state != GroupState::Dead)
                    .filter(|g| !self.consumer_groups.contains_key(&g.id))
                    .map(|g| GroupListing {
                        group_id: g.id.clone(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        state: g.state.name(),
                        group_type: "classic",
                    })
                    .collect();
                list.extend(self.consumer_groups.values().map(|g| GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".into(),
                    state: g.state(),
                    group_type: "consumer",
                }));
                let _ = reply.send(Ok(list));
            }
            Command::Describe { group_id, reply } => {
                if self.consumer_groups.contains_key(&group_id) {
                    // Not a classic group: DescribeGroups does not know it.
                    let _ = reply.send(Ok(None));
                    return;
                }
                let d = self.groups.get(&group_id).map(|g| GroupDescription {
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol: if g.state == GroupState::Stable {
                        g.protocol.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    members: g.describe_members(),
                });
                let _ = reply.send(Ok(d));
            }
            Command::Delete { group_id, reply } => self.delete_group(group_id, reply, clock).await,
            Command::DeleteOffsets {
                group_id,
                partitions,
                reply,
            } => self.delete_offsets(group_id, partitions, reply).await,
            Command::Written(after, result) => self.written(after, result, clock).await,
            Command::Shutdown(_) => {}
        }
    }

    /// Runs a group's effects, re-arms its timer and forgets a group that never held anything.
    async fn after(&mut self, id: &str, fx: Vec<Persist>) {
        for p in fx {
            let Persist::Group(then) = p;
            let Some(g) = self.groups.get(id) else {
                continue;
            };
            let value = records::group_value(&g.snapshot());
            let key = records::group_key(id);
            self.write(
                vec![(key, Some(value))],
                AfterWrite::Group {
                    group: id.to_string(),
                    then,
                },
            )
            .await;
        }
        self.rearm(id);
        self.forget_if_unused(id);
    }

    /// Writes the records of a KIP-848 group's changes since its last write. `reply` is
    /// answered once they, and the group's earlier writes, are durable (at once if there is
    /// nothing to wait for), so no answer shows state a restart could lose.
    async fn persist_consumer(&mut self, id: &str, reply: Option<ParkedReply>) {
        let Some(g) = self.consumer_groups.get_mut(id) else {
            if let Some((tx, outcome)) = reply {
                let _ = tx.send(outcome);
            }
            return;
        };
        let records = g.take_records();
        g.parked.extend(reply);
        if records.is_empty() {
            if g.writes_in_flight == 0 {
                release_parked(g);
            }
            return;
        }
        g.writes_in_flight += 1;
        self.write(
            encoded(records),
            AfterWrite::Consumer {
                group: id.to_string(),
            },
        )
        .await;
    }

    /// Removes a KIP-848 group and returns the tombstones of its records.
    fn remove_consumer_group(&mut self, id: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        match self.consumer_groups.remove(id) {
            Some(g) => encoded(records_between(id, g.persisted.as_ref(), None)),
            None => Vec::new(),
        }
    }

    /// Removes a KIP-848 group and writes its tombstones (nobody waits for them).
    async fn drop_consumer_group(&mut self, id: &str) {
        let records = self.remove_consumer_group(id);
        if !records.is_empty() {
            self.write(
                records,
                AfterWrite::Tombstones {
                    reply: None,
                    results: Vec::new(),
                },
            )
            .await;
        }
    }

    /// Forgets a group that never had members and holds nothing.
    fn forget_if_unused(&mut self, id: &str) {
        if let Some(g) = self.groups.get(id) {
            if g.state == GroupState::Empty
                && g.is_removable()
                && g.protocol_type.is_none()
                && g.generation == 0
            {
                self.groups.remove(id);
            }
        }
    }

    fn rearm(&mut self, id: &str) {
        if let Some(g) = self.groups.get_mut(id) {
            if let Some(d) = g.next_deadline() {
                if g.armed.is_none_or_later(d) {
                    g.armed = Some(d);
                    self.timers.push(Reverse((d, id.to_string())));
                }
            }
        }
        if let Some(g) = self.consumer_groups.get_mut(id) {
            if let Some(d) = g.next_deadline() {
                if g.armed.is_none_or_later(d) {
                    g.armed = Some(d);
                    self.timers.push(Reverse((d, id.to_string())));
                }
            }
        }
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, id))) = self.timers.pop() else {
                break;
            };
            let clock = clock();
            if let Some(g) = self.consumer_groups.get_mut(&id) {
                if g.armed == Some(t) {
                    g.armed = None;
                    let epoch = g.group_epoch;
                    g.on_timer(clock);
                    self.rebalances += u64::from(g.group_epoch != epoch);
                    self.persist_consumer(&id, None).await;
                    self.rearm(&id);
                }
            }
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.armed != Some(t) {
                continue;
            }
            g.armed = None;
            let mut fx = Vec::new();
            let generation = g.generation;
            g.on_timer(&self.cfg, clock, &mut fx);
            self.rebalances += u64::from(g.generation != generation);
            self.after(&id, fx).await;
        }
    }

    /// Appends `records` as one batch with fsync; the outcome comes back as `Written`.
    async fn write(&mut self, records: Vec<(Vec<u8>, Option<Vec<u8>>)>, after: AfterWrite) {
        let now = BrokerContext::now_ms();
        let mut b = BatchBuilder::new(now);
        for (k, v) in &records {
            b.record(Some(k), v.as_deref(), now);
        }
        self.append(b, after).await;
    }

    /// Appends a built batch with fsync and, in a cluster, waits for the in-sync replicas;
    /// the outcome (the batch's base offset) comes back as `Written`.
    async fn append(&mut self, b: BatchBuilder, after: AfterWrite) {
        let Some(me) = self.me.upgrade() else {
            return; // shutting down
        };
        let batch = b.build();
        let partition = self.partition;
        // Queued now, so the actor's writes reach the log in the order it made them.
        let submitted = durable::submit(&self.shard, OFFSETS_TOPIC, partition, move |s| {
            s.append(OFFSETS_TOPIC, partition, batch, None, Durability::Fsync)
        })
        .await;
        tokio::spawn(async move {
            let waited = match submitted {
                Ok(pending) => pending.wait().await,
                Err(e) => Err(e),
            };
            let result = match waited {
                Ok(info) => Ok(info.base_offset),
                Err(DurableError::Storage(StorageError::InvalidProducerEpoch { .. })) => {
                    Err(WriteError::Refused(GroupError::InvalidProducerEpoch))
                }
                Err(e) => {
                    let full = matches!(&e, DurableError::Storage(s) if s.is_out_of_space());
                    Err(WriteError::Failed(e.to_string(), full))
                }
            };
            // A write that cannot be made answers COORDINATOR_NOT_AVAILABLE, which clients
            // retry after a backoff. Kafka answers NOT_COORDINATOR for KAFKA_STORAGE_ERROR
            // because its offline log directory moves the coordinator elsewhere; here it stays
            // and resumes once the write succeeds, so "not available (yet)" is the truth.
            let result = result.map_err(|e| match e {
                WriteError::Refused(g) => {
                    tracing::debug!(partition, error = %g, "{OFFSETS_TOPIC} refused a write");
                    g
                }
                WriteError::Failed(e, full) => {
                    if let Some(held_back) = WRITE_FAILURES.permit() {
                        if full {
                            tracing::error!(partition, error = %e, similar_failures_not_logged = held_back,
                                "writing to {OFFSETS_TOPIC} failed: the data directory's file system is full; \
                                 commits and group changes answer COORDINATOR_NOT_AVAILABLE until space is freed");
                        } else {
                            tracing::error!(partition, error = %e, similar_failures_not_logged = held_back,
                                "writing to {OFFSETS_TOPIC} failed");
                        }
                    }
                    GroupError::CoordinatorNotAvailable
                }
            });
            let _ = me.send(Command::Written(after, result)).await;
        });
    }

    async fn written(&mut self, after: AfterWrite, result: Result<i64, GroupError>, clock: Clock) {
        match after {
            AfterWrite::Group { group, then } => match then {
                AfterGroupWrite::SyncDone { generation } => {
                    let Some(g) = self.groups.get_mut(&group) else {
                        return;
                    };
                    let mut fx = Vec::new();
                    g.sync_persisted(generation, result.map(|_| ()), &self.cfg, clock, &mut fx);
                    self.after(&group, fx).await;
                }
                AfterGroupWrite::StaticRejoin { reply, outcome } => {
                    let _ = reply.send(match result {
                        Ok(_) => outcome,
                        Err(e) => JoinOutcome {
                            error: Some(e),
                            generation: -1,
                            member_id: outcome.member_id,
                            ..JoinOutcome::default()
                        },
                    });
                }
                AfterGroupWrite::Nothing => {}
            },
            AfterWrite::Commit {
                group,
                entries,
                mut results,
                reply,
            } => {
                match result {
                    Ok(base) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            for (i, (_, topic, partition, value)) in entries.into_iter().enumerate()
                            {
                                let log_offset = base + i as i64;
                                g.commit_if_newer(
                                    (topic, partition),
                                    StoredOffset { value, log_offset },
                                );
                            }
                        }
                    }
                    Err(e) => {
                        for (index, ..) in entries {
                            results[index] = Err(e);
                        }
                    }
                }
                let _ = reply.send(Ok(results));
            }
            AfterWrite::TxnCommit {
                group,
                producer_id,
                txn,
                entries,
                mut results,
                reply,
            } => {
                let t = self.txns.entry(producer_id).or_default();
                t.in_flight = t.in_flight.saturating_sub(1);
                // `None`: the transaction is still open; else how it ended meanwhile.
                let ended = if txn == t.ended {
                    None
                } else if txn + 1 == t.ended {
                    Some(t.last_commit)
                } else {
                    Some(false)
                };
                match result {
                    Ok(base) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            for (i, (_, topic, partition, value)) in entries.into_iter().enumerate()
                            {
                                let o = StoredOffset {
                                    value,
                                    log_offset: base + i as i64,
                                };
                                match ended {
                                    None => g.add_pending_txn(producer_id, topic, partition, o),
                                    Some(true) => g.commit_if_newer((topic, partition), o),
                                    Some(false) => {}
                                }
                            }
                            if ended.is_none() {
                                t.groups.insert(group.clone());
                            }
                        }
                    }
                    Err(e) => {
                        for (index, ..) in entries {
                            results[index] = Err(e);
                        }
                    }
                }
                if t.in_flight == 0 && t.groups.is_empty() {
                    self.txns.remove(&producer_id);
                }
                if ended.is_some() {
                    self.forget_if_unused(&group);
                }
                let _ = reply.send(Ok(results));
            }
            AfterWrite::Consumer { group } => {
                let Some(g) = self.consumer_groups.get_mut(&group) else {
                    return;
                };
                g.writes_in_flight = g.writes_in_flight.saturating_sub(1);
                if result.is_err() {
                    // What is durable is unknown now: the next write rewrites every record.
                    g.write_failed = true;
                    g.persisted = None;
                }
                if g.writes_in_flight == 0 {
                    release_parked(g);
                }
            }
            AfterWrite::Tombstones { reply, results } => {
                if let Some(reply) = reply {
                    let _ = reply.send(match result {
                        Ok(_) => Ok(results),
                        Err(e) => Err(e),
                    });
                }
            }
        }
    }

    async fn commit(&mut self, p: CommitParams, reply: oneshot::Sender<Results>, clock: Clock) {
        let id = p.group_id.clone();
        let consumer_group = self.consumer_groups.get(&id);
        if let Some(cg) = consumer_group {
            if let Err(e) = cg.validate_member_epoch(&p.member_id, p.generation) {
                let _ = reply.send(Err(e));
                return;
            }
        }
        let is_consumer_group = consumer_group.is_some();
        if is_consumer_group && !self.groups.contains_key(&id) {
            // The holder of a consumer group's offsets.
            self.groups
                .insert(id.clone(), ClassicGroup::new(id.clone(), clock));
        }
        if !self.groups.contains_key(&id) {
            if p.generation >= 0 {
                // A member commit for a group that does not exist (the handler reports it as
                // ILLEGAL_GENERATION before OffsetCommit v9, as Kafka does).
                let _ = reply.send(Err(GroupError::GroupIdNotFound));
                return;
            }
            // A standalone or admin commit creates a group that only holds offsets.
            self.groups
                .insert(id.clone(), ClassicGroup::new(id.clone(), clock));
        }
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        if !is_consumer_group {
            if let Err(e) = g.validate_offset_commit(
                &p.member_id,
                p.instance_id.as_deref(),
                p.generation,
                false,
            ) {
                let _ = reply.send(Err(e));
                return;
            }
        }
        g.touch_member(&p.member_id, clock.now);
        let mut results = Vec::with_capacity(p.offsets.len());
        let mut entries = Vec::new();
        let mut records = Vec::new();
        for (index, o) in p.offsets.into_iter().enumerate() {
            let metadata = o.metadata.unwrap_or_default();
            if metadata.len() > self.cfg.offset_metadata_max_bytes {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            results.push(Ok(()));
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: clock.wall_ms,
            };
            records.push((
                records::offset_key(&id, &o.topic, o.partition),
                Some(records::offset_value(&value)),
            ));
            entries.push((index, o.topic, o.partition, value));
        }
        if records.is_empty() {
            let _ = reply.send(Ok(results));
            return;
        }
        self.write(
            records,
            AfterWrite::Commit {
                group: id.clone(),
                entries,
                results,
                reply,
            },
        )
        .await;
        self.rearm(&id);
    }

    /// The committed offsets of `partitions` (every committed one for `None`). With
    /// `require_stable`, a partition that an open transaction holds offsets for answers
    /// UNSTABLE_OFFSET_COMMIT instead; without, its last committed offset.
    fn fetch(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        let g = self.groups.get(group_id);
        let entry = |topic: &str, partition: i32, o: Option<&StoredOffset>| {
            if require_stable && g.is_some_and(|g| g.has_pending_txn(topic, partition)) {
                return FetchedOffset {
                    topic: topic.to_string(),
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: Some(GroupError::UnstableOffsetCommit),
                };
            }
            FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: o.map_or(-1, |o| o.value.offset),
                leader_epoch: o.map_or(-1, |o| o.value.leader_epoch),
                metadata: o.map(|o| o.value.metadata.clone()),
                error: None,
            }
        };
        match partitions {
            Some(parts) => parts
                .into_iter()
                .map(|(t, p)| {
                    let o = g.and_then(|g| g.offsets.get(&(t.clone(), p)));
                    entry(&t, p, o)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), o)| entry(t, *p, Some(o)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Members and committed offsets of every live group (KIP-848 members counted with the
    /// offsets entry of the same id), and the rebalance count.
    fn metrics(&self) -> CoordinatorMetrics {
        let mut groups: HashMap<&str, GroupMetrics> = HashMap::new();
        for g in self.groups.values().filter(|g| g.state != GroupState::Dead) {
            groups.insert(
                &g.id,
                GroupMetrics {
                    group_id: g.id.clone(),
                    members: g.members.len(),
                    offsets: g
                        .offsets
                        .iter()
                        .map(|((t, p), o)| (t.clone(), *p, o.value.offset))
                        .collect(),
                },
            );
        }
        for g in self.consumer_groups.values() {
            groups
                .entry(&g.id)
                .or_insert_with(|| GroupMetrics {
                    group_id: g.id.clone(),
                    ..GroupMetrics::default()
                })
                .members = g.members.len();
        }
        CoordinatorMetrics {
            groups: groups.into_values().collect(),
            rebalances: self.rebalances,
        }
    }

    fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, GroupError> {
        let g = self
            .consumer_groups
            .get(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        Ok(ConsumerGroupDescription {
            state: g.state(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor.clone(),
            members: g
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    subscribed_regex: m.subscribed_regex.clone(),
                    assignment: m.assigned.clone(),
                    target: g.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    async fn delete_group(
        &mut self,
        group_id: String,
        reply: oneshot::Sender<Result<(), GroupError>>,
        clock: Clock,
    ) {
        let mut records = Vec::new();
        if let Some(cg) = self.consumer_groups.get(&group_id) {
            if !cg.members.is_empty() {
                let _ = reply.send(Err(GroupError::NonEmptyGroup));
                return;
            }
            records = self.remove_consumer_group(&group_id);
            if !self.groups.contains_key(&group_id) {
                tracing::info!(group = %group_id, "group deleted");
                self.write_then_reply(records, reply).await;
                return;
            }
        }
        let Some(g) = self.groups.get_mut(&group_id) else {
            let _ = reply.send(Err(GroupError::GroupIdNotFound));
            return;
        };
        match g.state {
            GroupState::Dead => {
                let _ = reply.send(Err(GroupError::GroupIdNotFound));
                return;
            }
            GroupState::Empty => {}
            _ => {
                let _ = reply.send(Err(GroupError::NonEmptyGroup));
                return;
            }
        }
        g.kill(clock);
        records.extend(
            g.offsets
                .keys()
                .map(|(t, p)| (records::offset_key(&group_id, t, *p), None)),
        );
        records.push((records::group_key(&group_id), None));
        self.groups.remove(&group_id);
        tracing::info!(group = %group_id, "group deleted");
        self.write_then_reply(records, reply).await;
    }

    /// Writes tombstones and answers `reply` once they are durable (at once if none).
    async fn write_then_reply(
        &mut self,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    ) {
        if records.is_empty() {
            let _ = reply.send(Ok(()));
            return;
        }
        // Answer through a one-result adapter once the tombstones are durable.
        let (tx, rx) = oneshot::channel();
        self.write(
            records,
            AfterWrite::Tombstones {
                reply: Some(tx),
                results: Vec::new(),
            },
        )
        .await;
        tokio::spawn(async move {
            let r = match rx.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(GroupError::CoordinatorNotAvailable),
            };
            let _ = reply.send(r);
        });
    }

    async fn delete_offsets(
        &mut self,
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<Results>,
    ) {
        let Some(g) = self.groups.get_mut(&group_id) else {
            let _ = reply.send(Err(GroupError::GroupIdNotFound));
            return;
        };
        if g.state == GroupState::Dead {
            let _ = reply.send(Err(GroupError::GroupIdNotFound));
            return;
        }
        let subscribed = match self.consumer_groups.get(&group_id) {
            Some(cg) => Some(
                cg.members
                    .values()
                    .flat_map(|m| m.topics().cloned())
                    .collect(),
            ),
            None if g.state == GroupState::Empty => Some(Default::default()),
            None => g.subscribed_topics(),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            let busy = subscribed.as_ref().is_none_or_contains(&topic);
            if busy {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if g.offsets.remove(&(topic.clone(), partition)).is_some() {
                records.push((records::offset_key(&group_id, &topic, partition), None));
            }
            results.push(Ok(()));
        }
        if records.is_empty() {
            let _ = reply.send(Ok(results));
            return;
        }
        self.write(
            records,
            AfterWrite::Tombstones {
                reply: Some(reply),
                results,
            },
        )
        .await;
    }

    /// Expires offsets past `offsets.retention.minutes` and removes empty groups left with
    /// nothing, writing tombstones for both.
    async fn expire_offsets(&mut self) {
        let clock = clock();
        let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut gone = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            let consumer_group = self.consumer_groups.get(id);
            if consumer_group.is_some_and(|cg| !cg.members.is_empty()) {
                continue;
            }
            let empty_since = consumer_group.map(|cg| cg.state_timestamp);
            let expired =
                g.expire_offsets(clock.wall_ms, self.cfg.offsets_retention_ms, empty_since);
            if !expired.is_empty() {
                tracing::info!(group = %id, offsets = expired.len(), "offsets expired");
            }
            for (t, p) in expired {
                records.push((records::offset_key(id, &t, p), None));
            }
            if g.state == GroupState::Empty && g.is_removable() {
                g.kill(clock);
                records.push((records::group_key(id), None));
                gone.push(id.clone());
            }
        }
        for id in gone {
            self.groups.remove(&id);
            records.extend(self.remove_consumer_group(&id));
        }
        let unused: Vec<String> = self
            .consumer_groups
            .iter()
            .filter(|(id, cg)| cg.members.is_empty() && !self.groups.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in unused {
            records.extend(self.remove_consumer_group(&id));
        }
        if !records.is_empty() {
            self.write(
                records,
                AfterWrite::Tombstones {
                    reply: None,
                    results: Vec::new(),
                },
            )
            .await;
        }
    }

    /// Replays the partition from its log start offset.
    async fn load(&mut self) -> Result<usize, String> {
        let partition = self.partition;
        let start = self
            .shard
            .call(move |s: &mut ShardState| s.snapshot(OFFSETS_TOPIC, partition))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .log_start_offset;
        let clock = clock();
        let mut offset = start;
        let mut applied = 0usize;
        let mut skipped = 0usize;
        loop {
            let read = self
                .shard
                .call(move |s: &mut ShardState| {
                    s.read_to_log_end(OFFSETS_TOPIC, partition, offset, LOAD_CHUNK)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if read.records.is_empty() {
                break;
            }
            let mut progressed = false;
            for item in batch::batches(&read.records) {
                let (header, bytes) = item.map_err(|e| e.to_string())?;
                let next = header.base_offset + i64::from(header.last_offset_delta) + 1;
                if next <= offset {
                    continue;
                }
                progressed = true;
                offset = next;
                if header.is_control() {
                    self.replay_marker(&header, bytes);
                    continue;
                }
                let producer = header.is_transactional().then_some(header.producer_id);
                let recs = match batch::records(bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(partition, error = %e, "skipping unreadable batch");
                        skipped += 1;
                        continue;
                    }
                };
                for rec in recs {
                    let rec = match rec {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(partition, error = %e, "skipping unreadable record");
                            skipped += 1;
                            break;
                        }
                    };
                    let log_offset = header.base_offset + i64::from(rec.offset_delta);
                    match records::decode(rec.key, rec.value) {
                        Ok(r) => {
                            match producer {
                                Some(producer_id) => {
                                    self.apply_txn(producer_id, r, log_offset, clock)
                                }
                                None => self.apply(r, log_offset, clock),
                            }
                            applied += 1;
                        }
                        Err(e) => {
                            tracing::warn!(partition, log_offset, error = %e, "skipping record");
                            skipped += 1;
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        for (id, image) in std::mem::take(&mut self.consumer_images) {
            let g = ConsumerGroup::restore(id.clone(), image, &self.cfg, clock);
            self.consumer_groups.insert(id, g);
        }
        let ids: Vec<String> = self
            .groups
            .keys()
            .chain(self.consumer_groups.keys())
            .cloned()
            .collect();
        for id in &ids {
            self.rearm(id);
        }
        if applied > 0 || skipped > 0 {
            tracing::debug!(
                partition,
                applied,
                skipped,
                groups = ids.len(),
                "partition replayed"
            );
        }
        let consumer_only = self
            .consumer_groups
            .keys()
            .filter(|id| !self.groups.contains_key(*id))
            .count();
        Ok(self.groups.len() + consumer_only)
    }

    fn apply(&mut self, rec: Record, log_offset: i64, clock: Clock) {
        match rec {
            Record::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(value) => {
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| ClassicGroup::new(group, clock));
                    g.offsets
                        .insert((topic, partition), StoredOffset { value, log_offset });
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                        if g.is_removable() && g.protocol_type.is_none() {
                            self.groups.remove(&group);
                        }
                    }
                }
            },
            Record::Group { group, value } => match value {
                Some(value) => {
                    let (offsets, pending_txn) = self
                        .groups
                        .remove(&group)
                        .map(|g| (g.offsets, g.pending_txn))
                        .unwrap_or_default();
                    let mut g = ClassicGroup::restore(group.clone(), value, clock);
                    g.offsets = offsets;
                    g.pending_txn = pending_txn;
                    self.groups.insert(group, g);
                }
                None => {
                    self.groups.remove(&group);
                }
            },
            Record::Consumer(rec) => ConsumerGroupImage::apply(&mut self.consumer_images, rec),
        }
    }
}

impl PartitionActor {
    /// TxnOffsetCommit: validates as Kafka's coordinator does for a transactional commit,
    /// then writes the offsets as one transactional batch of the producer. Once durable they
    /// are pending until the producer's marker completes them.
    async fn txn_commit(
        &mut self,
        p: TxnCommitParams,
        reply: oneshot::Sender<Results>,
        clock: Clock,
    ) {
        let id = p.group_id.clone();
        if let Some(cg) = self.consumer_groups.get(&id) {
            // Before v3 the request has no member and generation: accepted as is. A stale
            // member epoch is a stale generation to a transactional producer.
            let unchecked = (p.generation_id < 0 && cg.members.is_empty())
                || (p.generation_id == -1
                    && p.member_id.is_empty()
                    && p.group_instance_id.is_none());
            if !unchecked {
                if let Err(e) = cg.validate_member_epoch(&p.member_id, p.generation_id) {
                    let e = match e {
                        GroupError::StaleMemberEpoch => GroupError::IllegalGeneration,
                        e => e,
                    };
                    let _ = reply.send(Err(e));
                    return;
                }
            }
            self.groups
                .entry(id.clone())
                .or_insert_with(|| ClassicGroup::new(id.clone(), clock));
        } else if let Some(g) = self.groups.get(&id) {
            if let Err(e) = g.validate_offset_commit(
                &p.member_id,
                p.group_instance_id.as_deref(),
                p.generation_id,
                true,
            ) {
                let _ = reply.send(Err(e));
                return;
            }
        } else if p.generation_id >= 0 {
            // A member of a group that does not exist: a stale generation.
            let _ = reply.send(Err(GroupError::IllegalGeneration));
            return;
        } else {
            // Created empty, as a standalone OffsetCommit would.
            self.groups
                .insert(id.clone(), ClassicGroup::new(id.clone(), clock));
        }
        let mut results = Vec::with_capacity(p.offsets.len());
        let mut entries = Vec::new();
        let mut b = BatchBuilder::new(clock.wall_ms)
            .producer(p.producer_id, p.producer_epoch, -1)
            .transactional(true);
        for (index, o) in p.offsets.into_iter().enumerate() {
            let metadata = o.metadata.unwrap_or_default();
            if metadata.len() > self.cfg.offset_metadata_max_bytes {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            results.push(Ok(()));
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: clock.wall_ms,
            };
            let key = records::offset_key(&id, &o.topic, o.partition);
            b.record(
                Some(&key),
                Some(&records::offset_value(&value)),
                clock.wall_ms,
            );
            entries.push((index, o.topic, o.partition, value));
        }
        if entries.is_empty() {
            let _ = reply.send(Ok(results));
            self.forget_if_unused(&id);
            return;
        }
        let t = self.txns.entry(p.producer_id).or_default();
        t.in_flight += 1;
        let txn = t.ended;
        self.append(
            b,
            AfterWrite::TxnCommit {
                group: id,
                producer_id: p.producer_id,
                txn,
                entries,
                results,
                reply,
            },
        )
        .await;
    }

    /// A marker of `producer_id` (live, or met while replaying): its pending offsets become
    /// committed or are dropped in every group; writes still in flight take the outcome when
    /// they become durable.
    fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(t) = self.txns.get_mut(&producer_id) else {
            return;
        };
        let groups: Vec<String> = t.groups.drain().collect();
        t.ended += 1;
        t.last_commit = commit;
        if t.in_flight == 0 {
            self.txns.remove(&producer_id);
        }
        for id in groups {
            if let Some(g) = self.groups.get_mut(&id) {
                g.complete_txn(producer_id, commit);
            }
            self.forget_if_unused(&id);
        }
    }

    /// Replays a control batch: its one record's key is `[version i16][type i16]`, type 0
    /// aborting and 1 committing the batch producer's transaction.
    fn replay_marker(&mut self, header: &batch::BatchHeader, bytes: &[u8]) {
        let partition = self.partition;
        let kind = batch::records(bytes).ok().and_then(|mut recs| {
            let rec = recs.next()?.ok()?;
            let key = rec.key?;
            Some(i16::from_be_bytes([*key.get(2)?, *key.get(3)?]))
        });
        match kind {
            Some(0) => self.complete_txn(header.producer_id, false),
            Some(1) => self.complete_txn(header.producer_id, true),
            other => tracing::warn!(
                partition,
                offset = header.base_offset,
                kind = ?other,
                "skipping unreadable control batch"
            ),
        }
    }

    /// Replays a record of a transactional batch of `producer_id`: offsets go to the
    /// producer's pending set (a tombstone takes one out); group metadata applies at once.
    fn apply_txn(&mut self, producer_id: i64, rec: Record, log_offset: i64, clock: Clock) {
        match rec {
            Record::Offset {
                group,
                topic,
                partition,
                value: Some(value),
            } => {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| ClassicGroup::new(group.clone(), clock));
                g.add_pending_txn(
                    producer_id,
                    topic,
                    partition,
                    StoredOffset { value, log_offset },
                );
                self.txns
                    .entry(producer_id)
                    .or_default()
                    .groups
                    .insert(group);
            }
            Record::Offset {
                group,
                topic,
                partition,
                value: None,
            } => {
                if let Some(pending) = self
                    .groups
                    .get_mut(&group)
                    .and_then(|g| g.pending_txn.get_mut(&producer_id))
                {
                    pending.remove(&(topic, partition));
                }
            }
            r @ (Record::Group { .. } | Record::Consumer(_)) => self.apply(r, log_offset, clock),
        }
    }
}

/// Small helpers that keep the call sites readable.
trait OptionExt<T> {
    fn is_none_or_later(&self, t: T) -> bool;
}

impl OptionExt<Instant> for Option<Instant> {
    /// `None`, or a deadline later than `t`.
    fn is_none_or_later(&self, t: Instant) -> bool {
        match self {
            None => true,
            Some(a) => t < *a,
        }
    }
}

trait SubscribedExt {
    fn is_none_or_contains(&self, topic: &str) -> bool;
}

impl SubscribedExt for Option<&std::collections::HashSet<String>> {
    /// Unknown subscriptions count as subscribed (the safe answer for OffsetDelete).
    fn is_none_or_contains(&self, topic: &str) -> bool {
        match self {
            None => true,
            Some(s) => s.contains(topic),
        }
    }
}

/// Answers a request that cannot be served now.
fn reject(cmd: Command, e: GroupError) {
    match cmd {
        Command::Load(r) => {
            let _ = r.send(Err(e.to_string()));
        }
        Command::Unload(r) => {
            let _ = r.send(());
        }
        Command::Join(p, r) => {
            let _ = r.send(JoinOutcome {
                error: Some(e),
                generation: -1,
                member_id: p.member_id,
                ..JoinOutcome::default()
            });
        }
        Command::Sync(_, r) => {
            let _ = r.send(SyncOutcome::error(e));
        }
        Command::Heartbeat { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Leave { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Commit(_, r) | Command::TxnCommit(_, r) => {
            let _ = r.send(Err(e));
        }
        Command::CompleteTxn { reply, .. } => {
            // Not loaded (its replay will see the marker) or stopped: nothing to complete.
            let _ = reply.send(());
        }
        Command::Fetch { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::ConsumerHeartbeat(p, r) => {
            let _ = r.send(ConsumerHeartbeatOutcome {
                error: Some(e),
                member_id: p.member_id,
                member_epoch: p.member_epoch,
                ..ConsumerHeartbeatOutcome::default()
            });
        }
        Command::ConsumerDescribe { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::List(r) => {
            let _ = r.send(Err(e));
        }
        Command::Metrics(r) => {
            let _ = r.send(Err(e));
        }
        Command::Describe { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Delete { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::DeleteOffsets { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Written(..) | Command::Shutdown(_) => {}
    }
}
