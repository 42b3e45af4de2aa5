//! The transaction coordinator: the state of every transactional id, durable in the internal
//! topic `__transaction_state`, and the two-phase completion of transactions (a Prepare record,
//! then commit or abort markers in every partition of the transaction, then a Complete record).
//!
//! **Ownership.** As in Kafka, transactional id `t` belongs to partition
//! `abs(javaHashCode(t)) % transaction.state.log.num.partitions`; the leader of that partition
//! coordinates it. Each partition's ids sit behind their own short-held mutex (never held across
//! an await): a request decides its transition under the lock ([`state`]), marks the id
//! pending, writes the record without the lock, and applies it once durable, so ids of one
//! partition progress concurrently and a second request for a pending id answers
//! CONCURRENT_TRANSACTIONS, as Kafka's does.
//!
//! **Markers** are written by [`markers`] to each partition's leader (this broker's shards
//! directly, others with WriteTxnMarkers), retried until they land or this broker stops
//! coordinating the id; a coordinator that loads a partition finishes the prepared transactions
//! it finds. Open transactions past their timeout are aborted at a bumped epoch (fencing the
//! producer); idle ids expire after `transactional.id.expiration.ms`.

pub mod markers;
pub mod records;
pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use self::records::Record;
use self::state::{Step, TxnError, TxnMetadata, TxnRecord, TxnState};
use crate::context::{BrokerContext, CreateTopicError};
use crate::log::batch::{self, BatchBuilder};
use crate::shard::{durable, Durability, ShardState};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Bytes read per step while replaying a partition.
const LOAD_CHUNK: usize = 1 << 20;

/// The `transaction.*` settings.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub num_partitions: i32,
    /// `transaction.state.log.replication.factor`.
    pub replication_factor: i32,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_interval: Duration,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub expiry_interval: Duration,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i64,
}

impl Default for TxnConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        TxnConfig {
            num_partitions: 50,
            replication_factor: 3,
            min_isr: 2,
            max_timeout_ms: 900_000,
            abort_interval: Duration::from_millis(10_000),
            id_expiration_ms: 604_800_000,
            expiry_interval: Duration::from_millis(3_600_000),
            segment_bytes: 104_857_600,
        }
    }
}

/// The ids of one `__transaction_state` partition.
#[derive(Default)]
struct Slot {
    /// This broker coordinates the partition (single node: always, once loaded).
    leading: bool,
    /// The partition has been replayed.
    loaded: bool,
    /// Bumped at every load and unload, so a write begun under an earlier leadership does not
    /// apply to a later one.
    generation: u64,
    /// The leader epoch of the partition when it was loaded, written into markers.
    coordinator_epoch: i32,
    txns: HashMap<String, TxnMetadata>,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TxnStats {
    /// Transactions committed (every marker written).
    pub commits: AtomicU64,
    /// Transactions aborted (every marker written).
    pub aborts: AtomicU64,
    /// Transactions aborted because they outlived their timeout.
    pub timeouts: AtomicU64,
}

/// One transactional id, for DescribeTransactions and ListTransactions.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    /// The durable state.
    pub record: TxnRecord,
}

/// Errors of coordinator start-up.
#[derive(Debug, thiserror::Error)]
pub enum TxnStartError {
    /// `__transaction_state` could not be created.
    #[error("cannot create {TXN_TOPIC}: {0}")]
    CreateTopic(#[from] CreateTopicError),
    /// A partition could not be replayed.
    #[error("cannot load {TXN_TOPIC}-{partition}: {reason}")]
    Load {
        /// The partition.
        partition: i32,
        /// What failed.
        reason: String,
    },
}

/// The transaction coordinator; shared through [`BrokerContext`].
pub struct TxnCoordinator {
    config: TxnConfig,
    slots: Vec<Mutex<Slot>>,
    /// Counters.
    pub stats: TxnStats,
}

/// Outcome of a transition: the record in force afterwards.
type Transition = Result<TxnRecord, TxnError>;

impl TxnCoordinator {
    /// A coordinator for `partitions` partitions of `__transaction_state`; nothing is served
    /// until a partition is loaded.
    pub fn new(config: TxnConfig, partitions: i32) -> TxnCoordinator {
        let n = partitions.max(1);
        TxnCoordinator {
            config,
            slots: (0..n).map(|_| Mutex::new(Slot::default())).collect(),
            stats: TxnStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Number of `__transaction_state` partitions.
    pub fn num_partitions(&self) -> i32 {
        self.slots.len() as i32
    }

    /// The `__transaction_state` partition of a transactional id (Kafka's mapping).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        let h = crate::coordinator::java_hash(transactional_id);
        let abs = if h == i32::MIN { 0 } else { h.abs() };
        abs % self.num_partitions()
    }

    fn lock(&self, partition: i32) -> Option<MutexGuard<'_, Slot>> {
        let slot = self.slots.get(usize::try_from(partition).ok()?)?;
        Some(slot.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The slot of a serving partition, or why it is not serving.
    fn serving(&self, partition: i32) -> Result<MutexGuard<'_, Slot>, TxnError> {
        let slot = self.lock(partition).ok_or(TxnError::NotCoordinator)?;
        if !slot.leading {
            return Err(TxnError::NotCoordinator);
        }
        if !slot.loaded {
            return Err(TxnError::CoordinatorLoadInProgress);
        }
        Ok(slot)
    }

    /// Whether this broker coordinates `partition` under `generation`.
    fn still_serving(&self, partition: i32, generation: u64) -> bool {
        self.lock(partition)
            .is_some_and(|s| s.leading && s.loaded && s.generation == generation)
    }

    /// Starts or stops coordinating a partition (cluster: its leadership moved). Stopping
    /// forgets its ids; a later [`TxnCoordinator::load_partition`] replays it again.
    pub fn unload_partition(&self, partition: i32) {
        if let Some(mut slot) = self.lock(partition) {
            slot.leading = false;
            slot.loaded = false;
            slot.generation += 1;
            slot.txns.clear();
        }
    }

    /// Replays partition `partition` of `__transaction_state` and starts coordinating its ids
    /// with `coordinator_epoch` (the partition's leader epoch); prepared transactions found
    /// there are completed in the background. Returns the number of ids.
    pub async fn load_partition(
        &self,
        ctx: &Arc<BrokerContext>,
        partition: i32,
        coordinator_epoch: i32,
    ) -> Result<usize, TxnStartError> {
        let load_err = |reason: String| TxnStartError::Load { partition, reason };
        let txns = replay(ctx, partition).await.map_err(load_err)?;
        let n = txns.len();
        let (generation, prepared) = {
            let mut slot = self
                .lock(partition)
                .ok_or_else(|| load_err("no such partition".into()))?;
            slot.generation += 1;
            slot.leading = true;
            slot.loaded = true;
            slot.coordinator_epoch = coordinator_epoch;
            slot.txns = txns;
            let prepared: Vec<TxnRecord> = slot
                .txns
                .values()
                .filter(|m| m.record.state.is_prepare())
                .map(|m| m.record.clone())
                .collect();
            (slot.generation, prepared)
        };
        for r in prepared {
            tracing::info!(
                transactional_id = %r.transactional_id,
                state = r.state.name(),
                "completing a prepared transaction found at load"
            );
            spawn_finish(ctx.clone(), partition, generation, coordinator_epoch, r);
        }
        Ok(n)
    }

    /// Runs one transition of `id`: `decide` picks it under the partition's lock; a write is
    /// made durable before it applies; a prepared transaction's markers are sent afterwards.
    async fn transition<F>(&self, ctx: &Arc<BrokerContext>, id: &str, decide: F) -> Transition
    where
        F: FnOnce(Option<&TxnMetadata>) -> Result<Step, TxnError>,
    {
        let partition = self.partition_for(id);
        let (next, fail, generation, coordinator_epoch, created) = {
            let mut slot = self.serving(partition)?;
            let step = decide(slot.txns.get(id))?;
            let (next, fail) = match step {
                Step::Done => {
                    return slot
                        .txns
                        .get(id)
                        .map(|m| m.record.clone())
                        .ok_or(TxnError::InvalidProducerIdMapping)
                }
                Step::Write(r) => (r, None),
                Step::WriteThenFail(r, e) => (r, Some(e)),
            };
            let created = !slot.txns.contains_key(id);
            slot.txns
                .entry(id.to_string())
                .or_insert_with(|| TxnMetadata::from_record(next.clone()))
                .pending = true;
            (next, fail, slot.generation, slot.coordinator_epoch, created)
        };
        let written = write_record(
            ctx,
            partition,
            records::key(id),
            Some(records::value(&next)),
        )
        .await;
        {
            let mut slot = self.lock(partition).ok_or(TxnError::NotCoordinator)?;
            if slot.generation != generation {
                return Err(TxnError::NotCoordinator);
            }
            if let Err(e) = written {
                tracing::warn!(transactional_id = id, error = %e, "cannot write transaction state");
                if created {
                    slot.txns.remove(id);
                } else if let Some(m) = slot.txns.get_mut(id) {
                    m.pending = false;
                }
                return Err(TxnError::CoordinatorNotAvailable);
            }
            if let Some(m) = slot.txns.get_mut(id) {
                let before = (m.record.producer_id, m.record.producer_epoch);
                if !created && before != (next.producer_id, next.producer_epoch) {
                    m.last_producer = Some(before);
                }
                m.record = next.clone();
                m.pending = false;
            }
        }
        if next.state.is_prepare() {
            spawn_finish(
                ctx.clone(),
                partition,
                generation,
                coordinator_epoch,
                next.clone(),
            );
        }
        match fail {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }

    /// InitProducerId with a transactional id: the producer id and the (bumped) epoch.
    pub async fn init_producer_id(
        &self,
        ctx: &Arc<BrokerContext>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let now = BrokerContext::now_ms();
        let first = self
            .transition(ctx, id, |m| {
                state::init(m, id, timeout_ms, expected, None, now)
            })
            .await;
        let r = match first {
            Err(TxnError::NeedProducerId) => {
                let fresh = ctx.allocate_producer_id().await.map_err(|e| {
                    tracing::error!(error = %e, "cannot allocate a producer id");
                    TxnError::CoordinatorNotAvailable
                })?;
                self.transition(ctx, id, |m| {
                    state::init(m, id, timeout_ms, expected, Some(fresh), now)
                })
                .await?
            }
            other => other?,
        };
        Ok((r.producer_id, r.producer_epoch))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        ctx: &Arc<BrokerContext>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let now = BrokerContext::now_ms();
        self.transition(ctx, id, |m| {
            state::add_partitions(m, producer_id, epoch, partitions, now)
        })
        .await
        .map(|_| ())
    }

    /// AddPartitionsToTxn v4+ `verify_only`: per partition, whether the transaction holds it.
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), TxnError> {
        let slot = self.serving(self.partition_for(id))?;
        state::verify(slot.txns.get(id), producer_id, epoch, partition)
    }

    /// EndTxn: answered once the Prepare record is durable; markers follow.
    pub async fn end_txn(
        &self,
        ctx: &Arc<BrokerContext>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let now = BrokerContext::now_ms();
        self.transition(ctx, id, |m| state::end(m, producer_id, epoch, commit, now))
            .await
            .map(|_| ())
    }

    /// DescribeTransactions: the id's state, or the error for it.
    pub fn describe(&self, id: &str) -> Result<TxnRecord, Option<TxnError>> {
        let slot = self.serving(self.partition_for(id)).map_err(Some)?;
        slot.txns.get(id).map(|m| m.record.clone()).ok_or(None)
    }

    /// ListTransactions: every id this broker coordinates.
    pub fn list(&self) -> Vec<TxnRecord> {
        let mut all = Vec::new();
        for slot in &self.slots {
            let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.leading && slot.loaded {
                all.extend(slot.txns.values().map(|m| m.record.clone()));
            }
        }
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Open transactions (Ongoing or completing) this broker coordinates, for the metrics.
    pub fn open_transactions(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.txns
                    .values()
                    .filter(|m| !m.record.state.is_idle())
                    .count()
            })
            .sum()
    }

    /// One pass of the timers: aborts transactions past their timeout; with `expire`, also
    /// removes ids idle for longer than `transactional.id.expiration.ms`.
    pub async fn tick(&self, ctx: &Arc<BrokerContext>, expire: bool) {
        let now = BrokerContext::now_ms();
        for p in 0..self.num_partitions() {
            let (timed_out, expired): (Vec<TxnRecord>, Vec<String>) = {
                let Ok(slot) = self.serving(p) else {
                    continue;
                };
                let timed_out = slot
                    .txns
                    .values()
                    .filter_map(|m| state::timed_out(m, now))
                    .collect();
                let expired = if expire {
                    slot.txns
                        .values()
                        .filter(|m| state::expired(m, now, self.config.id_expiration_ms))
                        .map(|m| m.record.transactional_id.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                (timed_out, expired)
            };
            for abort in timed_out {
                let id = abort.transactional_id.clone();
                let (pid, epoch) = (abort.producer_id, abort.producer_epoch);
                let r = self
                    .transition(ctx, &id, |m| match m {
                        Some(m) => match state::timed_out(m, now) {
                            Some(r) if r == abort => Ok(Step::Write(r)),
                            _ => Ok(Step::Done),
                        },
                        None => Ok(Step::Done),
                    })
                    .await;
                match r {
                    Ok(r) if r.state == TxnState::PrepareAbort => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            transactional_id = %id,
                            producer_id = pid,
                            epoch,
                            "aborting a transaction open past its timeout"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(transactional_id = %id, error = %e, "timeout abort deferred")
                    }
                }
            }
            for id in expired {
                self.expire(ctx, p, &id, now).await;
            }
        }
    }

    /// Removes an idle id with a tombstone.
    async fn expire(&self, ctx: &Arc<BrokerContext>, partition: i32, id: &str, now: i64) {
        let generation = {
            let Ok(mut slot) = self.serving(partition) else {
                return;
            };
            let Some(m) = slot.txns.get_mut(id) else {
                return;
            };
            if !state::expired(m, now, self.config.id_expiration_ms) {
                return;
            }
            m.pending = true;
            slot.generation
        };
        let written = write_record(ctx, partition, records::key(id), None).await;
        let Some(mut slot) = self.lock(partition) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        match written {
            Ok(()) => {
                slot.txns.remove(id);
                tracing::info!(transactional_id = id, "transactional id expired");
            }
            Err(e) => {
                tracing::warn!(transactional_id = id, error = %e, "cannot expire transactional id");
                if let Some(m) = slot.txns.get_mut(id) {
                    m.pending = false;
                }
            }
        }
    }
}

/// Appends one record to `__transaction_state` and waits until it is durable (fsync and ISR).
async fn write_record(
    ctx: &BrokerContext,
    partition: i32,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
) -> Result<(), durable::DurableError> {
    let now = BrokerContext::now_ms();
    let mut b = BatchBuilder::new(now);
    b.record(Some(&key), value.as_deref(), now);
    let batch = b.build().freeze();
    durable::write(
        ctx.shard(TXN_TOPIC, partition),
        TXN_TOPIC,
        partition,
        move |s: &mut ShardState| s.append(TXN_TOPIC, partition, batch, None, Durability::Fsync),
    )
    .await
    .map(|_| ())
}

/// Reads a `__transaction_state` partition from its log start to its end.
async fn replay(
    ctx: &BrokerContext,
    partition: i32,
) -> Result<HashMap<String, TxnMetadata>, String> {
    let shard = ctx.shard(TXN_TOPIC, partition);
    let start = shard
        .call(move |s: &mut ShardState| s.snapshot(TXN_TOPIC, partition))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .log_start_offset;
    let mut txns = HashMap::new();
    let mut offset = start;
    loop {
        let read = shard
            .call(move |s: &mut ShardState| {
                s.read_to_log_end(TXN_TOPIC, partition, offset, LOAD_CHUNK)
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
            let next = header.next_offset();
            if next <= offset {
                continue;
            }
            progressed = true;
            offset = next;
            if header.is_control() {
                continue;
            }
            let recs = match batch::records(bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "skipping unreadable batch");
                    continue;
                }
            };
            for rec in recs {
                let rec = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(partition, error = %e, "skipping unreadable record");
                        break;
                    }
                };
                match records::decode(rec.key, rec.value) {
                    Ok(Record::Txn(r)) => {
                        txns.insert(r.transactional_id.clone(), TxnMetadata::from_record(r));
                    }
                    Ok(Record::Tombstone(id)) => {
                        txns.remove(&id);
                    }
                    Err(e) => tracing::warn!(partition, error = %e, "skipping record"),
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(txns)
}

/// Spawns [`finish`] (a plain function, so the future of a transition, which spawns it, does
/// not contain its own type).
fn spawn_finish(
    ctx: Arc<BrokerContext>,
    partition: i32,
    generation: u64,
    coordinator_epoch: i32,
    prepared: TxnRecord,
) {
    let fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(finish(
        ctx,
        partition,
        generation,
        coordinator_epoch,
        prepared,
    ));
    tokio::spawn(fut);
}

/// Completes a prepared transaction: its markers, then the Complete record. Gives up when
/// this broker stops coordinating the partition (the next coordinator finishes it).
async fn finish(
    ctx: Arc<BrokerContext>,
    partition: i32,
    generation: u64,
    coordinator_epoch: i32,
    prepared: TxnRecord,
) {
    let coordinator = &ctx.transactions;
    let commit = prepared.state == TxnState::PrepareCommit;
    let serving = || coordinator.still_serving(partition, generation);
    if !markers::deliver(&ctx, &prepared, commit, coordinator_epoch, &serving).await {
        return;
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        let now = BrokerContext::now_ms();
        let r = coordinator
            .transition(&ctx, &prepared.transactional_id, |m| {
                Ok(match state::complete(m, &prepared, now) {
                    Some(r) => Step::Write(r),
                    None => Step::Done,
                })
            })
            .await;
        match r {
            Ok(r) => {
                if r.state == TxnState::CompleteCommit {
                    coordinator.stats.commits.fetch_add(1, Ordering::Relaxed);
                } else if r.state == TxnState::CompleteAbort {
                    coordinator.stats.aborts.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(TxnError::NotCoordinator | TxnError::CoordinatorLoadInProgress) => return,
            Err(e) => {
                if !serving() {
                    return;
                }
                tracing::debug!(transactional_id = %prepared.transactional_id, error = %e, "completing the transaction again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The configs of `__transaction_state` created with `replication_factor` replicas: compacted
/// in Kafka (kept forever here until compaction exists), `min.insync.replicas` from
/// `transaction.state.log.min.isr` capped by the replication factor.
pub fn txn_topic_configs(
    config: &TxnConfig,
    replication_factor: i32,
) -> std::collections::BTreeMap<String, String> {
    let min_isr = config.min_isr.min(replication_factor).max(1);
    [
        ("cleanup.policy", "compact".to_string()),
        ("retention.ms", "-1".to_string()),
        ("segment.bytes", config.segment_bytes.to_string()),
        ("min.insync.replicas", min_isr.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Single-node start-up: creates `__transaction_state` if needed and replays it, before the
/// listeners accept connections; then starts the timers.
pub async fn start_up(ctx: &Arc<BrokerContext>) -> Result<(), TxnStartError> {
    let coordinator = &ctx.transactions;
    if ctx.catalog.get(TXN_TOPIC).is_none() {
        let configs = txn_topic_configs(coordinator.config(), 1);
        match ctx
            .create_topic(TXN_TOPIC, coordinator.num_partitions(), configs)
            .await
        {
            Ok(_) | Err(CreateTopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let started = std::time::Instant::now();
    let mut ids = 0;
    for p in 0..coordinator.num_partitions() {
        ids += coordinator.load_partition(ctx, p, 0).await?;
    }
    tracing::info!(
        transactional_ids = ids,
        partitions = coordinator.num_partitions(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "transaction coordinator loaded"
    );
    spawn_timers(ctx);
    Ok(())
}

/// Starts the timeout and expiry timers (until the broker's context is dropped).
pub fn spawn_timers(ctx: &Arc<BrokerContext>) {
    let weak = Arc::downgrade(ctx);
    let cfg = ctx.transactions.config().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.abort_interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_expiry = tokio::time::Instant::now() + cfg.expiry_interval;
        loop {
            tick.tick().await;
            let Some(ctx) = weak.upgrade() else {
                return;
            };
            let expire = tokio::time::Instant::now() >= next_expiry;
            if expire {
                next_expiry = tokio::time::Instant::now() + cfg.expiry_interval;
            }
            ctx.transactions.tick(&ctx, expire).await;
        }
    });
}
