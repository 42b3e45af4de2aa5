//! One follower fetcher per leader broker: a task that fetches every partition this node
//! follows from that leader with Kafka's Fetch (replica id and broker epoch in ReplicaState,
//! KIP-903), appends the batches verbatim to the local logs, and reports its new log ends in
//! the next fetch. With `replica.fsync.enable` the appended bytes are fsynced (group commit)
//! before that next fetch, so the leader's high watermark only counts what every in-sync
//! replica has on disk.
//!
//! Before fetching a partition for a new leader epoch (or after the leader said the fetch
//! offset is out of range) the fetcher asks the leader with OffsetForLeaderEpoch where its
//! newest local epoch ends, and truncates a divergent tail to that (Kafka's KIP-101/279).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::client::{BrokerClient, ClientError};
use crate::context::BrokerContext;
use crate::controller::Controller;
use crate::kafka::error::Code;
use crate::shard::{ShardState, StorageError};

/// Fetch version used between brokers (ReplicaState with the broker epoch; topic ids).
const FETCH_VERSION: i16 = 15;
/// OffsetForLeaderEpoch version used between brokers.
const EPOCH_VERSION: i16 = 4;
/// How long a partition rests after its leader refused it (not leader, epoch mismatch),
/// waiting for the metadata to catch up.
const PARTITION_BACKOFF: Duration = Duration::from_millis(100);
/// The first reconnect delay; doubles up to `replica.fetch.backoff.ms`.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// A partition to fetch: its topic id and the leader epoch it is followed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchTarget {
    /// Topic id (Fetch v13+ names topics by id).
    pub topic_id: Uuid,
    /// Leader epoch.
    pub epoch: i32,
}

#[derive(Debug, Clone)]
struct PartitionFetch {
    target: FetchTarget,
    /// Where to fetch next; `None` until the log is truncated for this epoch.
    offset: Option<i64>,
    /// Not before this instant (after a refusal).
    not_before: Option<Instant>,
}

type Partitions = Arc<Mutex<BTreeMap<(String, i32), PartitionFetch>>>;

/// The handle of one leader's fetcher task.
pub struct Fetcher {
    partitions: Partitions,
    changed: Arc<Notify>,
}

impl Fetcher {
    /// Starts the task fetching from `leader` (on a shard's runtime).
    pub fn start(
        ctx: Arc<BrokerContext>,
        controller: Arc<Controller>,
        leader: i32,
        stop: watch::Receiver<bool>,
    ) -> Fetcher {
        let partitions: Partitions = Arc::default();
        let changed = Arc::new(Notify::new());
        let task = Task {
            ctx: ctx.clone(),
            controller,
            leader,
            partitions: partitions.clone(),
            changed: changed.clone(),
            client: None,
            backoff: FIRST_BACKOFF,
        };
        let n = ctx.shards.len().max(1);
        ctx.shards[leader.unsigned_abs() as usize % n].spawn(task.run(stop));
        Fetcher {
            partitions,
            changed,
        }
    }

    /// Fetches `key` for `target` (replacing an earlier epoch's entry: truncation first).
    pub fn add(&self, key: (String, i32), target: FetchTarget) {
        let mut parts = lock(&self.partitions);
        let keep = parts.get(&key).is_some_and(|p| p.target == target);
        if !keep {
            parts.insert(
                key,
                PartitionFetch {
                    target,
                    offset: None,
                    not_before: None,
                },
            );
        }
        drop(parts);
        self.changed.notify_one();
    }

    /// Stops fetching `key`.
    pub fn remove(&self, key: &(String, i32)) {
        lock(&self.partitions).remove(key);
    }

    /// Whether it fetches nothing (its task then only waits; the manager drops idle ones).
    pub fn is_idle(&self) -> bool {
        lock(&self.partitions).is_empty()
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        lock(&self.partitions).clear();
        // The task ends when it finds itself the last owner of the map.
        self.changed.notify_one();
    }
}

fn lock(p: &Partitions) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), PartitionFetch>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

struct Task {
    ctx: Arc<BrokerContext>,
    controller: Arc<Controller>,
    leader: i32,
    partitions: Partitions,
    changed: Arc<Notify>,
    client: Option<BrokerClient>,
    backoff: Duration,
}

/// What one partition of a fetch round came back with.
enum Outcome {
    /// Fetched and appended: the next offset.
    Advanced(i64),
    /// The log must be truncated first (divergence or out of range above the leader's end).
    Truncate,
    /// The leader refused; try again after a pause.
    Refused,
}

impl Task {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::debug!(leader = self.leader, "replica fetcher started");
        loop {
            if *stop.borrow() || Arc::strong_count(&self.partitions) == 1 {
                break;
            }
            let due = self.due();
            if due.is_empty() {
                let wait = self.next_due().unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let round = tokio::select! {
                r = self.round(due) => r,
                _ = stop.changed() => break,
            };
            match round {
                Ok(()) => self.backoff = FIRST_BACKOFF,
                Err(e) => {
                    tracing::debug!(leader = self.leader, error = %e, "replica fetch failed");
                    self.client = None;
                    let max = self.controller.config().replica_fetch_backoff;
                    let pause = self.backoff.min(max);
                    self.backoff = (self.backoff * 2).min(max.max(FIRST_BACKOFF));
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::debug!(leader = self.leader, "replica fetcher stopped");
    }

    /// The partitions not resting.
    fn due(&self) -> Vec<((String, i32), PartitionFetch)> {
        let now = Instant::now();
        lock(&self.partitions)
            .iter()
            .filter(|(_, p)| p.not_before.map_or(true, |t| t <= now))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.partitions)
            .values()
            .filter_map(|p| p.not_before)
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    async fn connect(&mut self) -> Result<&mut BrokerClient, ClientError> {
        if self.client.is_none() {
            let image = self.controller.image();
            let listener = &self.controller.config().inter_broker_listener;
            let (host, port) = crate::context::broker_endpoint(&image, self.leader, listener)
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "broker {} has no {listener} endpoint",
                        self.leader
                    ))
                })?;
            let id = format!("esker-replica-{}", self.controller.node_id());
            let timeout = self.controller.config().replica_socket_timeout;
            let client = BrokerClient::connect(&format!("{host}:{port}"), &id, timeout).await?;
            tracing::debug!(leader = self.leader, %host, port, "replica fetcher connected");
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| ClientError::Protocol("no connection".into()))
    }

    /// One round: truncation where needed, then one fetch of every ready partition.
    async fn round(
        &mut self,
        due: Vec<((String, i32), PartitionFetch)>,
    ) -> Result<(), ClientError> {
        let (truncate, ready): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|(_, p)| p.offset.is_none());
        if !truncate.is_empty() {
            self.truncate(truncate).await?;
        }
        if ready.is_empty() {
            return Ok(());
        }
        self.fetch(ready).await
    }

    /// Asks the leader where our newest epochs end and cuts what diverged.
    async fn truncate(
        &mut self,
        parts: Vec<((String, i32), PartitionFetch)>,
    ) -> Result<(), ClientError> {
        // Local log ends and newest epochs.
        let mut asks = Vec::new();
        for (key, p) in parts {
            let (topic, index) = key.clone();
            let pos = self
                .ctx
                .shard(&topic, index)
                .call(move |s: &mut ShardState| s.fetch_position(&topic, index))
                .await;
            match pos {
                Ok(Ok((end, Some(epoch)))) => asks.push((key, p, end, epoch)),
                Ok(Ok((end, None))) => {
                    // Nothing written under any epoch: nothing can have diverged.
                    self.set_offset(&key, p.target, Outcome::Advanced(end));
                }
                _ => self.set_offset(&key, p.target, Outcome::Refused),
            }
        }
        if asks.is_empty() {
            return Ok(());
        }
        let mut by_topic: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        for ((topic, index), p, _, epoch) in &asks {
            by_topic.entry(topic.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(*index)
                    .with_current_leader_epoch(p.target.epoch)
                    .with_leader_epoch(*epoch),
            );
        }
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.controller.node_id()))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let timeout = self.controller.config().replica_socket_timeout;
        let resp: OffsetForLeaderEpochResponse = self
            .connect()
            .await?
            .call(ApiKey::OffsetForLeaderEpoch, EPOCH_VERSION, &req, timeout)
            .await?;
        let mut answers = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                answers.insert((t.topic.to_string(), p.partition), p);
            }
        }
        for (key, p, end, _) in asks {
            let Some(a) = answers.get(&key) else {
                self.set_offset(&key, p.target, Outcome::Refused);
                continue;
            };
            if a.error_code != 0 {
                tracing::debug!(topic = %key.0, partition = key.1, error = a.error_code, "leader refused OffsetForLeaderEpoch");
                self.set_offset(&key, p.target, Outcome::Refused);
                continue;
            }
            let (topic, index) = key.clone();
            let (leader_epoch, leader_end) = (a.leader_epoch, a.end_offset);
            let cut = self
                .ctx
                .shard(&topic, index)
                .call(move |s: &mut ShardState| {
                    s.truncate_to_leader(&topic, index, leader_epoch, leader_end)
                })
                .await;
            match cut {
                Ok(Ok(new_end)) => {
                    if new_end < end {
                        tracing::info!(topic = %key.0, partition = key.1, from = end, to = new_end, leader = self.leader, "truncated to the leader's epoch end");
                    }
                    self.set_offset(&key, p.target, Outcome::Advanced(new_end));
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot truncate");
                    self.set_offset(&key, p.target, Outcome::Refused);
                }
                Err(_) => self.set_offset(&key, p.target, Outcome::Refused),
            }
        }
        Ok(())
    }

    /// One Fetch of `parts` and the appends of what it returned.
    async fn fetch(
        &mut self,
        parts: Vec<((String, i32), PartitionFetch)>,
    ) -> Result<(), ClientError> {
        let cfg = self.controller.config().clone();
        let me = self.controller.node_id();
        let broker_epoch = self.controller.broker_epoch();
        let mut by_topic: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
        let mut keys: BTreeMap<(Uuid, i32), ((String, i32), PartitionFetch)> = BTreeMap::new();
        let image = self.controller.image();
        let ctx = self.ctx.clone();
        let throttle = &ctx.replication_throttles.follower;
        let may_throttle = throttle.permits(&ctx.config);
        let mut throttled = std::collections::HashSet::new();
        for (key, p) in parts {
            let Some(offset) = p.offset else { continue };
            if image.replica_throttled(
                &key.0,
                key.1,
                "follower.replication.throttled.replicas",
                me,
                me,
            ) {
                if !may_throttle {
                    continue;
                }
                throttled.insert(key.clone());
            }
            by_topic.entry(p.target.topic_id).or_default().push(
                FetchPartition::default()
                    .with_partition(key.1)
                    .with_current_leader_epoch(p.target.epoch)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(cfg.replica_fetch_max_bytes),
            );
            keys.insert((p.target.topic_id, key.1), (key, p));
        }
        let req = FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(me))
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(cfg.replica_fetch_wait_max.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(cfg.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(id, parts)| {
                        FetchTopic::default()
                            .with_topic_id(id)
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let timeout = cfg.replica_socket_timeout + cfg.replica_fetch_wait_max;
        let resp: FetchResponse = self
            .connect()
            .await?
            .call(ApiKey::Fetch, FETCH_VERSION, &req, timeout)
            .await?;
        if resp.error_code != 0 {
            return Err(ClientError::Protocol(format!(
                "leader answered fetch error {}",
                resp.error_code
            )));
        }
        if !throttled.is_empty() {
            let bytes: usize = resp
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
                .filter(|(id, p)| {
                    keys.get(&(*id, p.partition_index))
                        .is_some_and(|(k, _)| throttled.contains(k))
                })
                .map(|(_, p)| p.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            throttle.record(&ctx.config, bytes);
        }
        // Queue every append, then wait for them (and their fsyncs) together.
        let mut pending = Vec::new();
        for t in resp.responses {
            for pd in t.partitions {
                let Some((key, p)) = keys.remove(&(t.topic_id, pd.partition_index)) else {
                    continue;
                };
                let offset = p.offset.unwrap_or(0);
                if pd.error_code != 0 {
                    let outcome = if pd.error_code == Code::OffsetOutOfRange.code() {
                        if pd.log_start_offset > offset {
                            // The leader deleted what we lack: start over at its log start.
                            let (topic, index, start) = (key.0.clone(), key.1, pd.log_start_offset);
                            let r = self
                                .ctx
                                .shard(&key.0, key.1)
                                .call(move |s: &mut ShardState| s.restart_at(&topic, index, start))
                                .await;
                            match r {
                                Ok(Ok(())) => Outcome::Advanced(start),
                                _ => Outcome::Refused,
                            }
                        } else {
                            Outcome::Truncate
                        }
                    } else {
                        tracing::debug!(topic = %key.0, partition = key.1, error = pd.error_code, leader = self.leader, "leader refused fetch");
                        Outcome::Refused
                    };
                    self.set_offset(&key, p.target, outcome);
                    continue;
                }
                let records = pd.records.unwrap_or_else(Bytes::new);
                let (topic, index, epoch, hw) =
                    (key.0.clone(), key.1, p.target.epoch, pd.high_watermark);
                let leader_start = pd.log_start_offset;
                let durable = cfg.replica_fsync;
                let job = move |s: &mut ShardState| {
                    let r = s.append_as_follower(&topic, index, epoch, records, hw, durable);
                    if r.is_ok() {
                        if let Err(e) = s.follow_log_start(&topic, index, leader_start) {
                            tracing::warn!(topic, partition = index, error = %e, "cannot follow the leader's log start");
                        }
                    }
                    let end = s.fetch_position(&topic, index).map(|(end, _)| end);
                    (r.map(|(_, wait)| wait), end)
                };
                match self.ctx.shard(&key.0, key.1).submit(job).await {
                    Ok(rx) => pending.push((key, p, rx)),
                    Err(_) => self.set_offset(&key, p.target, Outcome::Refused),
                }
            }
        }
        for (key, p, rx) in pending {
            let outcome = match rx.await {
                Ok((Ok(wait), Ok(end))) => match wait {
                    None => Outcome::Advanced(end),
                    Some(w) => match w.await {
                        Ok(Ok(())) => Outcome::Advanced(end),
                        _ => {
                            tracing::error!(topic = %key.0, partition = key.1, "fsync of replicated records failed");
                            Outcome::Refused
                        }
                    },
                },
                Ok((Err(StorageError::Log(crate::log::LogError::Poisoned)), _)) => {
                    // TMPFIX
                    Outcome::Truncate
                }
                Ok((Err(e), _)) => {
                    tracing::debug!(topic = %key.0, partition = key.1, error = %e, "replicated records not appended");
                    Outcome::Refused
                }
                _ => Outcome::Refused,
            };
            self.set_offset(&key, p.target, outcome);
        }
        Ok(())
    }

    /// Records a partition's outcome, unless it was re-targeted meanwhile.
    fn set_offset(&self, key: &(String, i32), target: FetchTarget, outcome: Outcome) {
        let mut parts = lock(&self.partitions);
        let Some(p) = parts.get_mut(key) else { return };
        if p.target != target {
            return;
        }
        match outcome {
            Outcome::Advanced(next) => {
                p.offset = Some(next);
                p.not_before = None;
            }
            Outcome::Truncate => {
                p.offset = None;
                p.not_before = None;
            }
            Outcome::Refused => {
                p.not_before = Some(Instant::now() + PARTITION_BACKOFF);
            }
        }
    }
}
