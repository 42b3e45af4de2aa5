//! A shard's state: the partition logs it owns, its group commit of fsyncs and its maintenance
//! tick (retention, `segment.ms`, `flush.*`, recovery-point checkpoints, idle file handles).
//! Runs only on the shard's own thread (it is reached through `ShardHandle::call`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::sync::Weak;

use tokio::sync::{oneshot, Notify};

use super::producer_state::{BatchMeta, ProducerState, Verdict};
use super::replica::{AckResult, FollowerState, IsrChange, LeaderState, Role};
use super::ShardSelf;
use crate::config::Config;
use crate::log::batch::{txn_marker, txn_marker_batch, TxnMarker};
use crate::log::{
    AbortedTxn, AppendInfo, LogConfig, LogError, PartitionLog, ReadResult, RecordSet, SyncToken,
    Unsynced,
};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the bytes reach the page cache (acks=1 and acks=0).
    PageCache,
    /// After the bytes are fsynced (acks=-1); fsyncs are group-committed per shard.
    Fsync,
}

/// How a shard fsyncs `acks=-1` appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Group commit: the first append waiting for an fsync schedules one after `linger`; every
    /// file written by then, on any partition of the shard, is fsynced once and all waiters get
    /// the one result. One group is synced at a time; appends arriving meanwhile form the next.
    GroupCommit {
        /// `log.flush.linger.ms`.
        linger: Duration,
    },
    /// One fsync per append, inline on the shard thread: the baseline the benchmark compares
    /// group commit against. Not reachable from the configuration file.
    PerAppend,
}

/// Everything a shard needs to know from the broker configuration.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// `log.dirs`.
    pub log_dir: PathBuf,
    /// The log settings partitions are opened with (topic overrides are applied afterwards
    /// with [`ShardState::set_log_config`]).
    pub log: LogConfig,
    /// How acks=-1 appends are fsynced.
    pub flush: FlushPolicy,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub recovery_point_checkpoint_interval: Duration,
    /// Inactive segment files not read for this long are closed.
    pub idle_file_timeout: Duration,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// The broker's log cleaner (`None` with `log.cleaner.enable=false`).
    pub cleaner: Option<Arc<super::cleaner::Cleaner>>,
}

/// How long an inactive segment's file stays open after its last read.
pub const IDLE_FILE_TIMEOUT: Duration = Duration::from_secs(60);

/// The shortest maintenance tick.
const MIN_TICK: Duration = Duration::from_millis(10);

impl ShardConfig {
    /// The shard settings of a broker configuration.
    pub fn from_config(config: &Config) -> ShardConfig {
        ShardConfig {
            log_dir: config.log_dir.clone(),
            log: config.log_config(),
            flush: if config.fsync_per_append {
                FlushPolicy::PerAppend
            } else {
                FlushPolicy::GroupCommit {
                    linger: config.flush_linger,
                }
            },
            retention_check_interval: config.log_retention_check_interval,
            recovery_point_checkpoint_interval: config.log_flush_offset_checkpoint_interval,
            idle_file_timeout: IDLE_FILE_TIMEOUT,
            producer_id_expiration_ms: config.producer_id_expiration_ms,
            cleaner: super::cleaner::Cleaner::from_config(config),
        }
    }

    /// How often the maintenance job runs: often enough for every periodic duty.
    fn tick(&self) -> Duration {
        let mut tick = self
            .retention_check_interval
            .min(self.recovery_point_checkpoint_interval)
            .min(self.idle_file_timeout);
        if let Some(ms) = self.log.flush_interval_ms {
            tick = tick.min(Duration::from_millis(ms));
        }
        tick.max(MIN_TICK)
    }
}

/// Errors of storage operations on a shard.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// This shard does not hold the partition (unknown topic or partition).
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The log refused or failed the operation.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A file-system operation outside the log failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An idempotent producer skipped sequence numbers.
    #[error("out of order sequence number: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The sequence the partition expected.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// An idempotent producer wrote with an epoch older than its current one.
    #[error("producer epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer's current epoch.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
    /// This broker does not lead the partition (or no longer does).
    #[error("this broker is not the partition's leader")]
    NotLeader,
    /// An `acks=all` append found fewer in-sync replicas than `min.insync.replicas`.
    #[error("min.insync.replicas is {min} but {isr} replicas are in sync")]
    NotEnoughReplicas {
        /// ISR size.
        isr: usize,
        /// `min.insync.replicas`.
        min: usize,
    },
    /// The request's leader epoch is older than the partition's.
    #[error("leader epoch {got} is older than the current {current}")]
    FencedLeaderEpoch {
        /// The partition's epoch here.
        current: i32,
        /// The request's.
        got: i32,
    },
    /// The request's leader epoch is newer than this broker knows.
    #[error("leader epoch {got} is newer than the current {current}")]
    UnknownLeaderEpoch {
        /// The partition's epoch here.
        current: i32,
        /// The request's.
        got: i32,
    },
    /// A produce carried a control batch: only the broker writes those (transaction markers).
    #[error("control batches are written by the broker, not by clients")]
    ControlBatchFromClient,
    /// A transaction marker from a coordinator older than the one that wrote the producer's
    /// last marker.
    #[error("coordinator epoch {got} is older than the last marker's {current}")]
    CoordinatorFenced {
        /// The coordinator epoch of the producer's last marker.
        current: i32,
        /// The marker's.
        got: i32,
    },
}

/// Failed recovery-point checkpoints: one log line per minute.
static CHECKPOINT_FAILURES: crate::log::disk_full::RateLimited =
    crate::log::disk_full::RateLimited::new(Duration::from_secs(60));

impl StorageError {
    /// Whether the file system holding the data directory is full (ENOSPC, EDQUOT).
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StorageError::Log(e) => e.is_out_of_space(),
            StorageError::Io(e) => crate::log::disk_full::is_out_of_space(e),
            _ => false,
        }
    }
}

/// Which records a consumer may see (Kafka's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything below the high watermark (0).
    ReadUncommitted,
    /// Everything below the last stable offset, with the aborted transactions listed so the
    /// consumer drops their records (1).
    ReadCommitted,
}

impl IsolationLevel {
    /// The level a request's `isolation_level` field names (anything but 1 reads uncommitted).
    pub fn from_kafka(level: i8) -> IsolationLevel {
        if level == 1 {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        }
    }
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// The last sequence number of its last batch (-1: none remembered).
    pub last_sequence: i32,
    /// The max timestamp of its last batch (-1: none remembered).
    pub last_timestamp: i64,
    /// Coordinator epoch of the last transaction marker written for it (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction (-1: none).
    pub current_txn_start_offset: i64,
}

/// The outcome of a group-committed fsync, sent to every waiter.
pub type SyncResult = Result<(), Arc<std::io::Error>>;

/// Counters of a shard's fsyncs, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Fsync rounds: group commits, or single appends with [`FlushPolicy::PerAppend`].
    pub flushes: u64,
    /// `fdatasync` calls (one per file per round).
    pub fsyncs: u64,
    /// acks=-1 appends answered after an fsync.
    pub waiters: u64,
}

/// The replication state of a shard's led partitions (see [`ShardState::replication_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationStats {
    /// Partitions whose ISR is smaller than their replica set.
    pub under_replicated: usize,
    /// Partitions whose ISR is smaller than `min.insync.replicas`.
    pub under_min_isr: usize,
    /// The largest lag, in offsets, of an in-sync follower behind its leader's log end.
    pub max_lag: i64,
}

/// What a fetch needs to know about a partition besides its records.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset after the last record.
    pub high_watermark: i64,
    /// The last stable offset: the high watermark, or the first offset of the earliest open
    /// transaction if that is smaller.
    pub last_stable_offset: i64,
    /// Bytes on disk in the partition's segments.
    pub size_bytes: u64,
}

struct Partition {
    log: PartitionLog,
    /// Leader or follower of a replicated partition (cluster); `None` on a single node, where
    /// the high watermark is the log end.
    role: Option<Role>,
    /// Long-polling fetches to wake on the next append.
    waiters: Vec<Weak<Notify>>,
    dir: PathBuf,
    /// Producers' sequences (duplicate and gap detection) and open transactions.
    producers: ProducerState,
}

/// A recovery point to move once a group's files are synced.
type Mark = (String, i32, SyncToken);

#[derive(Default)]
struct GroupCommit {
    files: Vec<Arc<File>>,
    marks: Vec<Mark>,
    waiters: Vec<oneshot::Sender<SyncResult>>,
    /// A flush job is queued (its linger timer may be running).
    scheduled: bool,
    /// A group is being fsynced on the blocking pool.
    in_flight: bool,
}

impl GroupCommit {
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.marks.is_empty() && self.waiters.is_empty()
    }
}

enum Lookup {
    /// The first record with a timestamp at or after this one.
    AtOrAfter(i64),
    /// The first record carrying the largest timestamp.
    Max,
}

/// The log answers timestamp lookups exactly inside uncompressed batches, but with a compressed
/// batch's base offset and max timestamp. Kafka answers with the exact record, so a compressed
/// batch is decompressed here (ListOffsets by timestamp is rare; the produce and fetch paths
/// never decompress).
fn refine_in_compressed_batch(
    log: &PartitionLog,
    offset: i64,
    ts: i64,
    lookup: Lookup,
) -> (i64, i64) {
    let Ok(read) = log.read(offset, 1) else {
        return (offset, ts);
    };
    let mut records = read.records;
    // attributes (i16) sit at byte 21 of a v2 batch; bits 0-2 are the codec.
    if records.len() < 61 || records[22] & 0x07 == 0 {
        return (offset, ts);
    }
    let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut records) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(offset, error = %e, "cannot decompress batch for a timestamp lookup");
            return (offset, ts);
        }
    };
    let found = match lookup {
        Lookup::AtOrAfter(target) => set
            .records
            .iter()
            .find(|r| r.timestamp >= target && r.offset >= log.log_start_offset()),
        Lookup::Max => set.records.iter().fold(
            None::<&kafka_protocol::records::Record>,
            |best, r| match best {
                Some(b) if b.timestamp >= r.timestamp => Some(b),
                _ => Some(r),
            },
        ),
    };
    found.map_or((offset, ts), |r| (r.offset, r.timestamp))
}

/// The state owned by one shard.
pub struct ShardState {
    id: usize,
    me: ShardSelf,
    config: ShardConfig,
    /// topic name → partitions held here, indexed by partition number.
    partitions: HashMap<String, HashMap<i32, Partition>>,
    commit: GroupCommit,
    stats: SyncStats,
    /// Time of each fsync round, when the broker registered metrics.
    flush_timer: Option<prometheus::Histogram>,
    next_retention: Instant,
    next_checkpoint: Instant,
    stopped: bool,
}

impl ShardState {
    /// A shard with no partitions yet. When called on a tokio runtime (the shard's own), it
    /// starts the maintenance tick: a task that queues [`ShardState::maintenance`] on the
    /// shard every [`ShardConfig`] tick until the shard stops.
    pub fn new(id: usize, me: ShardSelf, config: ShardConfig) -> ShardState {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tick = config.tick();
            if let Some(cleaner) = config.cleaner.clone() {
                runtime.spawn(super::cleaner::run(me.clone(), cleaner));
            }
            let me = me.clone();
            runtime.spawn(async move {
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    if !me.send(|s: &mut ShardState| s.maintenance()).await {
                        break;
                    }
                }
            });
        }
        let now = Instant::now();
        ShardState {
            id,
            me,
            next_retention: now + config.retention_check_interval,
            next_checkpoint: now + config.recovery_point_checkpoint_interval,
            config,
            partitions: HashMap::new(),
            commit: GroupCommit::default(),
            stats: SyncStats::default(),
            flush_timer: None,
            stopped: false,
        }
    }

    /// The shard's index.
    pub fn id(&self) -> usize {
        self.id
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The shard's fsync counters.
    pub fn sync_stats(&self) -> SyncStats {
        self.stats
    }

    /// Where to record the time of each fsync round (the broker's metrics).
    pub fn set_flush_timer(&mut self, timer: prometheus::Histogram) {
        self.flush_timer = Some(timer);
    }

    /// The directory of a partition, in Kafka's `<topic>-<partition>` layout.
    pub fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
        log_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens a partition's log with the shard's default log settings; see
    /// [`ShardState::open_partition_with`].
    pub fn open_partition(
        &mut self,
        topic: &str,
        partition: i32,
        topic_id: Option<uuid::Uuid>,
        clean: bool,
    ) -> Result<(), StorageError> {
        let config = self.config.log.clone();
        self.open_partition_with(topic, partition, topic_id, clean, config)
    }

    /// Opens a partition's log with `config` (the topic's log settings), running recovery
    /// unless `clean`. With `topic_id`, the partition is being created: its directory and
    /// `partition.metadata` are written first. Files the open created or recovered are fsynced
    /// in the background, which moves the recovery point.
    pub fn open_partition_with(
        &mut self,
        topic: &str,
        partition: i32,
        topic_id: Option<uuid::Uuid>,
        clean: bool,
        config: LogConfig,
    ) -> Result<(), StorageError> {
        let dir = Self::partition_dir(&self.config.log_dir, topic, partition);
        if let Some(id) = topic_id {
            std::fs::create_dir_all(&dir)?;
            crate::catalog::write_partition_metadata(&dir, id)?;
        }
        let mut log = PartitionLog::open(&dir, config, clean)?;
        let producers = rebuild_producer_state(&mut log, &dir, clean)?;
        let needs_sync = log.needs_background_sync();
        self.partitions
            .entry(topic.to_string())
            .or_default()
            .insert(
                partition,
                Partition {
                    producers,
                    role: None,
                    log,
                    waiters: Vec::new(),
                    dir,
                },
            );
        if needs_sync {
            self.background_sync(topic, partition);
        }
        Ok(())
    }

    /// Replaces a partition's log settings (a topic config changed; see
    /// [`LogConfig::set_topic_config`]). Takes effect from the next append or retention pass.
    pub fn set_log_config(
        &mut self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<(), StorageError> {
        self.get_mut(topic, partition)?.log.set_config(config);
        Ok(())
    }

    /// Closes a partition and deletes its directory (topic deletion).
    pub fn remove_partition(&mut self, topic: &str, partition: i32) -> Result<(), StorageError> {
        let Some(parts) = self.partitions.get_mut(topic) else {
            return Err(StorageError::UnknownPartition);
        };
        let Some(p) = parts.remove(&partition) else {
            return Err(StorageError::UnknownPartition);
        };
        if parts.is_empty() {
            self.partitions.remove(topic);
        }
        let dir = p.dir.clone();
        drop(p);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn get(&self, topic: &str, partition: i32) -> Result<&Partition, StorageError> {
        self.partitions
            .get(topic)
            .and_then(|t| t.get(&partition))
            .ok_or(StorageError::UnknownPartition)
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Result<&mut Partition, StorageError> {
        self.partitions
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
            .ok_or(StorageError::UnknownPartition)
    }

    /// Appends producer batches. With [`Durability::Fsync`] the returned receiver completes
    /// once the bytes are on disk (group commit, or an inline fsync with
    /// [`FlushPolicy::PerAppend`]). With [`Durability::PageCache`], a roll or `flush.messages`
    /// schedules a background fsync that nobody waits for.
    pub fn append(
        &mut self,
        topic: &str,
        partition: i32,
        records: impl Into<Bytes>,
        log_append_time: Option<i64>,
        durability: Durability,
    ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError> {
        let records: Bytes = records.into();
        let p = self.get_mut(topic, partition)?;
        p.check_leader_append(durability)?;
        if crate::log::batch::batches(&records)
            .flatten()
            .any(|(h, _)| h.is_control())
        {
            return Err(StorageError::ControlBatchFromClient);
        }
        let producer = producer_batch(&records);
        // Batches without sequences (base sequence -1: transactional offset commits written by
        // the group coordinator) skip duplicate and gap detection, not the epoch check.
        if let Some(b) = producer.as_ref().filter(|b| b.first_seq < 0) {
            if let Err(current) = p.producers.check_epoch(b.producer_id, b.epoch) {
                return Err(StorageError::InvalidProducerEpoch {
                    current,
                    got: b.epoch,
                });
            }
        }
        if let Some(b) = producer.as_ref().filter(|b| b.first_seq >= 0) {
            match p
                .producers
                .check(b.producer_id, b.epoch, b.first_seq, b.count)
            {
                Verdict::Append => {}
                Verdict::Duplicate(meta) => {
                    // A retry of a batch already written: its original offsets, nothing stored.
                    tracing::debug!(
                        topic,
                        partition,
                        producer_id = b.producer_id,
                        seq = b.first_seq,
                        "duplicate batch"
                    );
                    let info = AppendInfo {
                        base_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                        max_timestamp: meta.max_timestamp,
                        record_count: 0,
                        bytes: 0,
                    };
                    return self.after_append(topic, partition, info, durability);
                }
                Verdict::OutOfOrder { expected } => {
                    return Err(StorageError::OutOfOrderSequence {
                        expected,
                        got: b.first_seq,
                    })
                }
                Verdict::StaleEpoch { current } => {
                    return Err(StorageError::InvalidProducerEpoch {
                        current,
                        got: b.epoch,
                    })
                }
            }
        }
        let info = p.log.append(records, log_append_time)?;
        if let Some(b) = producer {
            let now = wall_clock_ms();
            if b.first_seq >= 0 {
                let meta = BatchMeta {
                    first_seq: b.first_seq,
                    last_seq: b.first_seq.wrapping_add(b.count.max(1) - 1),
                    first_offset: info.base_offset,
                    last_offset: info.last_offset,
                    max_timestamp: info.max_timestamp,
                };
                p.producers.record(b.producer_id, b.epoch, meta, now);
            } else {
                p.producers.record_unsequenced(b.producer_id, b.epoch, now);
            }
            if b.transactional {
                p.producers.begin_txn(b.producer_id, info.base_offset);
            }
        }
        self.after_append(topic, partition, info, durability)
    }

    /// Writes a transaction marker (WriteTxnMarkers) on a partition led here: a control batch
    /// committing or aborting `producer_id`'s open transaction, appended with
    /// [`Durability::Fsync`] (the returned receiver answers once it is on disk; the min-ISR
    /// check of [`ShardState::append`] applies). A marker whose epoch is older than the
    /// producer's is refused ([`StorageError::InvalidProducerEpoch`]); a newer one becomes the
    /// producer's epoch. The transaction closes, which may move the last stable offset, and an
    /// abort is recorded in the aborted-transaction index. A marker for a producer without an
    /// open transaction is written all the same, with no index entry.
    pub fn write_txn_marker(
        &mut self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError> {
        let p = self.get_mut(topic, partition)?;
        p.check_leader_append(Durability::Fsync)?;
        if let Err(current) = p.producers.check_epoch(producer_id, producer_epoch) {
            return Err(StorageError::InvalidProducerEpoch {
                current,
                got: producer_epoch,
            });
        }
        if let Err(current) = p
            .producers
            .check_coordinator_epoch(producer_id, coordinator_epoch)
        {
            return Err(StorageError::CoordinatorFenced {
                current,
                got: coordinator_epoch,
            });
        }
        let now = wall_clock_ms();
        let marker = TxnMarker {
            commit,
            coordinator_epoch,
        };
        let batch = txn_marker_batch(producer_id, producer_epoch, marker, now);
        let info = p.log.append(batch.freeze(), None)?;
        let aborted = apply_marker(
            &mut p.producers,
            producer_id,
            producer_epoch,
            marker,
            info.base_offset,
            now,
        );
        if let Some(txn) = aborted {
            p.log.append_aborted_txn(txn)?;
        }
        tracing::debug!(
            topic,
            partition,
            producer_id,
            producer_epoch,
            commit,
            offset = info.base_offset,
            "wrote a transaction marker"
        );
        self.after_append(topic, partition, info, Durability::Fsync)
    }

    /// The last stable offset of a partition: the high watermark, or the first offset of the
    /// earliest open transaction if that is smaller.
    pub fn last_stable_offset(&self, topic: &str, partition: i32) -> Result<i64, StorageError> {
        Ok(self.get(topic, partition)?.last_stable_offset())
    }

    /// Wakes long polls and arranges the durability the producer asked for.
    fn after_append(
        &mut self,
        topic: &str,
        partition: i32,
        info: AppendInfo,
        durability: Durability,
    ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError> {
        let p = self.get_mut(topic, partition)?;
        let log_end = p.log.log_end_offset();
        if let Some(Role::Leader(l)) = &mut p.role {
            // A lone in-sync leader moves the high watermark itself.
            l.advance(log_end);
        }
        p.wake_fetches();
        match durability {
            Durability::PageCache => {
                if p.log.needs_background_sync() || p.log.flush_due(wall_clock_ms()) {
                    self.background_sync(topic, partition);
                }
                Ok((info, None))
            }
            Durability::Fsync => {
                let unsynced = match p.log.take_unsynced() {
                    Ok(u) => u,
                    Err(e) => {
                        // The append is in the page cache but cannot be made durable.
                        p.log.poison();
                        return Err(e.into());
                    }
                };
                let wait = match self.config.flush {
                    FlushPolicy::GroupCommit { .. } => {
                        let (tx, rx) = oneshot::channel();
                        self.enqueue_sync(topic, partition, unsynced, Some(tx));
                        rx
                    }
                    FlushPolicy::PerAppend => self.sync_inline(topic, partition, unsynced),
                };
                Ok((info, Some(wait)))
            }
        }
    }

    /// [`FlushPolicy::PerAppend`]: fsyncs one append's files right here.
    fn sync_inline(
        &mut self,
        topic: &str,
        partition: i32,
        unsynced: Unsynced,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let started = Instant::now();
        let result = unsynced.files.iter().try_for_each(|f| f.sync_data());
        observe_ms(self.flush_timer.as_ref(), started);
        self.stats.flushes += 1;
        self.stats.fsyncs += unsynced.files.len() as u64;
        self.stats.waiters += 1;
        match result {
            Ok(()) => {
                let mark = (topic.to_string(), partition, unsynced.token);
                if self.commit.in_flight || !self.commit.marks.is_empty() {
                    // Files taken earlier may still be in flight: move the recovery point
                    // after them.
                    self.commit.marks.push(mark);
                } else {
                    self.apply_marks(vec![mark]);
                }
                let _ = tx.send(Ok(()));
            }
            Err(e) => {
                tracing::error!(shard = self.id, error = %e, "fsync failed; poisoning this shard's logs");
                self.poison_all();
                let _ = tx.send(Err(Arc::new(e)));
            }
        }
        rx
    }

    /// Queues a partition's unsynced files for the next group commit without a waiter (a
    /// rolled or recovered segment, `flush.messages`, `flush.ms`).
    fn background_sync(&mut self, topic: &str, partition: i32) {
        let Ok(p) = self.get_mut(topic, partition) else {
            return;
        };
        match p.log.take_unsynced() {
            Ok(unsynced) => self.enqueue_sync(topic, partition, unsynced, None),
            Err(e) => {
                tracing::warn!(shard = self.id, topic, partition, error = %e, "cannot prepare a background fsync");
            }
        }
    }

    fn enqueue_sync(
        &mut self,
        topic: &str,
        partition: i32,
        unsynced: Unsynced,
        waiter: Option<oneshot::Sender<SyncResult>>,
    ) {
        for f in unsynced.files {
            if !self.commit.files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                self.commit.files.push(f);
            }
        }
        self.commit
            .marks
            .push((topic.to_string(), partition, unsynced.token));
        if let Some(tx) = waiter {
            self.commit.waiters.push(tx);
        }
        self.schedule_flush(false);
    }

    /// Queues a flush job unless one is queued or a group is in flight (its completion
    /// schedules the next). `now` skips the linger: the group gathered while the previous one
    /// was being synced.
    fn schedule_flush(&mut self, now: bool) {
        if self.commit.scheduled || self.commit.in_flight || self.commit.is_empty() {
            return;
        }
        self.commit.scheduled = true;
        let me = self.me.clone();
        let linger = match self.config.flush {
            FlushPolicy::GroupCommit { linger } if !now => linger,
            _ => Duration::ZERO,
        };
        tokio::spawn(async move {
            if !linger.is_zero() {
                tokio::time::sleep(linger).await;
            } else {
                tokio::task::yield_now().await;
            }
            me.send(|s: &mut ShardState| s.flush_group()).await;
        });
    }

    /// Takes everything gathered during the linger window and fsyncs it on a blocking thread,
    /// then answers every waiter with the one result and moves the recovery points.
    fn flush_group(&mut self) {
        self.commit.scheduled = false;
        if self.commit.in_flight || self.commit.is_empty() {
            return;
        }
        let files = std::mem::take(&mut self.commit.files);
        let marks = std::mem::take(&mut self.commit.marks);
        let waiters = std::mem::take(&mut self.commit.waiters);
        self.stats.waiters += waiters.len() as u64;
        if files.is_empty() {
            // Everything was synced by earlier groups, which have completed.
            self.apply_marks(marks);
            for w in waiters {
                let _ = w.send(Ok(()));
            }
            return;
        }
        self.stats.flushes += 1;
        self.stats.fsyncs += files.len() as u64;
        self.commit.in_flight = true;
        let shard = self.id;
        let me = self.me.clone();
        let timer = self.flush_timer.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = sync_concurrently(files).await;
            observe_ms(timer.as_ref(), started);
            if let Err(e) = &result {
                // The page cache may have dropped the data: the shard's logs stop taking
                // writes until they are reopened (recovery), rather than retrying silently.
                tracing::error!(shard, error = %e, "fsync failed; poisoning this shard's logs");
                me.send(|s: &mut ShardState| s.poison_all()).await;
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            let ok = result.is_ok();
            me.send(move |s: &mut ShardState| {
                s.commit.in_flight = false;
                if ok {
                    s.apply_marks(marks);
                }
                s.schedule_flush(true);
            })
            .await;
        });
    }

    fn apply_marks(&mut self, marks: Vec<Mark>) {
        for (topic, partition, token) in marks {
            if let Ok(p) = self.get_mut(&topic, partition) {
                p.log.mark_synced(token);
            }
        }
    }

    /// The periodic job: retention and `segment.ms` (every `log.retention.check.interval.ms`),
    /// `flush.ms` / `flush.messages` and background fsyncs of rolled segments, recovery-point
    /// checkpoints (every `log.flush.offset.checkpoint.interval.ms`), and closing idle segment
    /// files.
    pub fn maintenance(&mut self) {
        let now = wall_clock_ms();
        let tick = Instant::now();
        let retention_due = tick >= self.next_retention;
        if retention_due {
            self.next_retention = tick + self.config.retention_check_interval;
        }
        let checkpoint_due = tick >= self.next_checkpoint;
        if checkpoint_due {
            self.next_checkpoint = tick + self.config.recovery_point_checkpoint_interval;
        }
        let idle = self.config.idle_file_timeout;
        let mut to_sync = Vec::new();
        for (topic, parts) in &mut self.partitions {
            for (&partition, p) in parts.iter_mut() {
                if p.log.is_poisoned() {
                    continue;
                }
                if retention_due {
                    if let Err(e) = p.log.apply_retention(now) {
                        tracing::warn!(dir = %p.dir.display(), error = %e, "retention pass failed");
                    }
                    p.producers
                        .expire(now, self.config.producer_id_expiration_ms);
                }
                if p.log.needs_background_sync() || p.log.flush_due(now) {
                    to_sync.push((topic.clone(), partition));
                }
                if checkpoint_due {
                    if let Err(e) = p.log.checkpoint_recovery_point() {
                        // Every partition fails this way when the disk is full.
                        if let Some(held_back) = CHECKPOINT_FAILURES.permit() {
                            tracing::warn!(dir = %p.dir.display(), error = %e,
                                similar_failures_not_logged = held_back,
                                "cannot write the recovery point (retried at the next checkpoint)");
                        }
                    }
                }
                p.log.close_idle_files(idle);
            }
        }
        for (topic, partition) in to_sync {
            self.background_sync(&topic, partition);
        }
    }

    /// After an `acks=all` append ending before `required`: a receiver answered once every
    /// in-sync replica has the records (`None` when the partition is not replicated, so the
    /// local fsync is all there is to wait for).
    pub fn replication_wait(
        &mut self,
        topic: &str,
        partition: i32,
        required: i64,
    ) -> Option<oneshot::Receiver<AckResult>> {
        let p = self.get_mut(topic, partition).ok()?;
        match &mut p.role {
            Some(Role::Leader(l)) => {
                let min_isr = l.min_isr;
                Some(l.wait(required, min_isr))
            }
            _ => None,
        }
    }

    /// Makes this broker the partition's leader for `epoch` (or updates the ISR and replicas
    /// under the same epoch). A new epoch is recorded in the log's leader-epoch cache; waiters
    /// of an earlier leadership are answered `NotLeader`.
    #[allow(clippy::too_many_arguments)]
    pub fn become_leader(
        &mut self,
        topic: &str,
        partition: i32,
        me: i32,
        epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        min_isr: usize,
    ) -> Result<(), StorageError> {
        let now = wall_clock_ms();
        let p = self.get_mut(topic, partition)?;
        let log_end = p.log.log_end_offset();
        if let Some(Role::Leader(l)) = &mut p.role {
            if l.epoch == epoch {
                l.min_isr = min_isr;
                l.update(partition_epoch, replicas, isr, log_end, now);
                p.wake_fetches();
                return Ok(());
            }
        }
        p.log.assign_leader_epoch(epoch)?;
        let hw = match p.role.take() {
            Some(Role::Leader(mut l)) => {
                l.abandon();
                l.high_watermark
            }
            Some(Role::Follower(f)) => f.high_watermark,
            None => p.log.log_start_offset(),
        };
        let mut leader = LeaderState::new(
            me,
            epoch,
            partition_epoch,
            replicas,
            isr,
            log_end,
            hw.max(p.log.log_start_offset()),
            now,
        );
        leader.min_isr = min_isr;
        tracing::info!(
            topic,
            partition,
            epoch,
            log_end,
            high_watermark = leader.high_watermark,
            "leading partition"
        );
        p.role = Some(Role::Leader(leader));
        p.wake_fetches();
        Ok(())
    }

    /// Makes this broker a follower of `leader` for `epoch`; waiters of an earlier leadership
    /// are answered `NotLeader`. Truncation is the fetcher's job (it asks the leader first).
    pub fn become_follower(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        epoch: i32,
    ) -> Result<(), StorageError> {
        let p = self.get_mut(topic, partition)?;
        let log_end = p.log.log_end_offset();
        let hw = match p.role.take() {
            Some(Role::Leader(mut l)) => {
                l.abandon();
                l.high_watermark
            }
            Some(Role::Follower(f)) => f.high_watermark,
            None => p.log.log_start_offset(),
        };
        tracing::info!(
            topic,
            partition,
            leader,
            epoch,
            log_end,
            "following partition"
        );
        p.role = Some(Role::Follower(FollowerState {
            leader,
            epoch,
            high_watermark: hw.min(log_end),
        }));
        Ok(())
    }

    /// A follower's fetch at the leader: records its position (which may move the high
    /// watermark and answer `acks=all` appends), then reads from `offset` up to the log end.
    /// Returns the read and the high watermark to report.
    #[allow(clippy::too_many_arguments)]
    pub fn replica_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        replica: i32,
        broker_epoch: i64,
        current_leader_epoch: i32,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        wake: Option<&Arc<Notify>>,
    ) -> Result<ReadResult<RecordSet>, StorageError> {
        let now = wall_clock_ms();
        let p = self.get_mut(topic, partition)?;
        let log_end = p.log.log_end_offset();
        let Some(Role::Leader(l)) = &mut p.role else {
            return Err(StorageError::NotLeader);
        };
        check_epoch(l.epoch, current_leader_epoch)?;
        let moved = l.on_fetch(replica, broker_epoch, offset, log_end, now);
        let hw = l.high_watermark;
        if moved {
            p.wake_fetches();
        }
        p.read_parked(offset, max_bytes, file_min_bytes, log_end, hw, wake)
    }

    /// A follower appends what it fetched from its leader (batches kept byte for byte) and
    /// takes the leader's high watermark. With `durable`, the returned receiver answers once
    /// the bytes are fsynced (group commit), before the next fetch reports them.
    pub fn append_as_follower(
        &mut self,
        topic: &str,
        partition: i32,
        epoch: i32,
        records: Bytes,
        leader_high_watermark: i64,
        durable: bool,
    ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError> {
        let p = self.get_mut(topic, partition)?;
        match &p.role {
            Some(Role::Follower(f)) if f.epoch == epoch => {}
            Some(Role::Follower(f)) => {
                return Err(StorageError::FencedLeaderEpoch {
                    current: f.epoch,
                    got: epoch,
                })
            }
            _ => return Err(StorageError::NotLeader),
        }
        let info = if records.is_empty() {
            let end = p.log.log_end_offset();
            AppendInfo {
                base_offset: end,
                last_offset: end - 1,
                max_timestamp: -1,
                record_count: 0,
                bytes: 0,
            }
        } else {
            let from = p.log.log_end_offset();
            let info = p.log.append_replica(records.clone())?;
            if info.bytes > 0 {
                let mut aborted = Vec::new();
                apply_batches(
                    &mut p.producers,
                    &records,
                    from,
                    wall_clock_ms(),
                    &mut aborted,
                );
                for txn in aborted {
                    p.log.append_aborted_txn(txn)?;
                }
            }
            info
        };
        let log_end = p.log.log_end_offset();
        if let Some(Role::Follower(f)) = &mut p.role {
            f.high_watermark = f.high_watermark.max(leader_high_watermark.min(log_end));
        }
        if info.bytes == 0 {
            p.wake_fetches();
            return Ok((info, None));
        }
        let durability = if durable {
            Durability::Fsync
        } else {
            Durability::PageCache
        };
        self.after_append(topic, partition, info, durability)
    }

    /// A follower follows its leader's log start offset (DeleteRecords on the leader): records
    /// below it, up to this log's end, are deleted here too.
    pub fn follow_log_start(
        &mut self,
        topic: &str,
        partition: i32,
        leader_log_start: i64,
    ) -> Result<(), StorageError> {
        let p = self.get(topic, partition)?;
        if !matches!(p.role, Some(Role::Follower(_)))
            || leader_log_start <= p.log.log_start_offset()
        {
            return Ok(());
        }
        let to = leader_log_start.min(p.log.log_end_offset());
        self.delete_records(topic, partition, to).map(|_| ())
    }

    /// A client's `current_leader_epoch` (Fetch, KIP-320) against this replica's: an older one
    /// answers FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this broker has not
    /// applied that leader change yet), so the client refreshes its metadata. A single node and
    /// a client that does not say (-1) pass.
    pub fn check_leader_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<(), StorageError> {
        match &self.get(topic, partition)?.role {
            Some(role) => check_epoch(role.epoch(), current_leader_epoch),
            None => Ok(()),
        }
    }

    /// What a follower's fetcher needs before fetching: (log end, newest leader epoch in its
    /// cache).
    pub fn fetch_position(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(i64, Option<i32>), StorageError> {
        let p = self.get(topic, partition)?;
        Ok((p.log.log_end_offset(), p.log.latest_epoch()))
    }

    /// OffsetForLeaderEpoch: the end offset of `epoch` in this log (the leader's answer), with
    /// the request's current leader epoch checked against this broker's.
    pub fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<Option<(i32, i64)>, StorageError> {
        let p = self.get(topic, partition)?;
        match &p.role {
            Some(Role::Leader(l)) => check_epoch(l.epoch, current_leader_epoch)?,
            Some(Role::Follower(_)) => return Err(StorageError::NotLeader),
            None => {
                // A single node: every record was written under epoch 0 (or unstamped).
                if epoch < 0 {
                    return Ok(None);
                }
                return Ok(Some((0, p.log.log_end_offset())));
            }
        }
        Ok(p.log.end_offset_for_epoch(epoch))
    }

    /// Cuts a follower's divergent tail: everything from `offset` on goes (see
    /// [`PartitionLog::truncate_to`]); the idempotent producers' state is rebuilt from the log.
    /// Returns the new log end.
    pub fn truncate(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, StorageError> {
        let p = self.get_mut(topic, partition)?;
        if offset >= p.log.log_end_offset() {
            return Ok(p.log.log_end_offset());
        }
        let end = p.log.truncate_to(offset)?;
        p.producers = rebuild_producer_state(&mut p.log, &p.dir, false)?;
        if let Some(Role::Follower(f)) = &mut p.role {
            f.high_watermark = f.high_watermark.min(end);
        }
        tracing::info!(
            topic,
            partition,
            log_end = end,
            "truncated a divergent tail"
        );
        self.background_sync(topic, partition);
        Ok(end)
    }

    /// The leader answered OffsetForLeaderEpoch for this follower's newest epoch with
    /// `(leader_epoch, leader_end)`: cut the tail that the leader does not have (the smaller of
    /// its end and this log's own end of `leader_epoch`, KIP-279). An undefined answer (-1)
    /// cuts to the high watermark. Returns the new log end.
    pub fn truncate_to_leader(
        &mut self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        leader_end: i64,
    ) -> Result<i64, StorageError> {
        let p = self.get(topic, partition)?;
        let cut = if leader_epoch < 0 || leader_end < 0 {
            p.high_watermark()
        } else {
            match p.log.end_offset_for_epoch(leader_epoch) {
                Some((_, local_end)) => leader_end.min(local_end),
                None => leader_end,
            }
        };
        self.truncate(topic, partition, cut)
    }

    /// A follower far behind a leader whose log starts later: the log restarts empty there.
    pub fn restart_at(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), StorageError> {
        let p = self.get_mut(topic, partition)?;
        p.log.truncate_fully_and_start_at(offset)?;
        p.producers = ProducerState::default();
        if let Some(Role::Follower(f)) = &mut p.role {
            f.high_watermark = offset;
        }
        tracing::info!(
            topic,
            partition,
            offset,
            "replica restarted at the leader's log start"
        );
        self.background_sync(topic, partition);
        Ok(())
    }

    /// The ISR changes this shard's leaders want to propose now: `(topic, partition, change)`.
    /// Each is marked pending until the metadata shows a newer partition epoch.
    pub fn isr_changes(&mut self, lag_ms: i64) -> Vec<(String, i32, IsrChange)> {
        let now = wall_clock_ms();
        let mut out = Vec::new();
        for (topic, parts) in &mut self.partitions {
            for (&partition, p) in parts.iter_mut() {
                let log_end = p.log.log_end_offset();
                if let Some(Role::Leader(l)) = &mut p.role {
                    if let Some(change) = l.isr_change(log_end, now, lag_ms) {
                        l.pending_change = Some(change.partition_epoch + 1);
                        out.push((topic.clone(), partition, change));
                    }
                }
            }
        }
        out
    }

    /// A proposed ISR change was refused or failed: it may be proposed again.
    pub fn clear_pending_isr_change(&mut self, topic: &str, partition: i32) {
        if let Ok(p) = self.get_mut(topic, partition) {
            if let Some(Role::Leader(l)) = &mut p.role {
                l.pending_change = None;
            }
        }
    }

    /// The largest gap between a partition's high watermark and its last stable offset (how
    /// far open transactions hold read_committed consumers back), for the metrics.
    pub fn max_lso_lag(&self) -> i64 {
        self.partitions
            .values()
            .flat_map(|t| t.values())
            .filter(|p| !matches!(p.role, Some(Role::Follower(_))))
            .map(|p| p.high_watermark() - p.last_stable_offset())
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// The replication state of the partitions led here, for the metrics.
    pub fn replication_stats(&self) -> ReplicationStats {
        let mut out = ReplicationStats::default();
        for p in self.partitions.values().flat_map(|t| t.values()) {
            if let Some(Role::Leader(l)) = &p.role {
                let end = p.log.log_end_offset();
                out.under_replicated += usize::from(l.isr.len() < l.replicas.len());
                out.under_min_isr += usize::from(l.isr.len() < l.min_isr);
                let lag = l
                    .followers()
                    .filter(|(r, _)| l.isr.contains(r))
                    .map(|(_, f)| end - f.log_end.max(0))
                    .max()
                    .unwrap_or(0);
                out.max_lag = out.max_lag.max(lag);
            }
        }
        out
    }

    /// DeleteRecords: moves the partition's log start offset to `offset` (-1: the high
    /// watermark) and returns the new low watermark (see
    /// [`PartitionLog::delete_records_before`]).
    pub fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, StorageError> {
        let p = self.get_mut(topic, partition)?;
        let low_watermark = p.log.delete_records_before(offset)?;
        if p.log.needs_background_sync() {
            self.background_sync(topic, partition);
        }
        Ok(low_watermark)
    }

    /// Runs `f` on a partition's log (tests and tools).
    pub fn with_log<R>(
        &mut self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut PartitionLog) -> R,
    ) -> Result<R, StorageError> {
        Ok(f(&mut self.get_mut(topic, partition)?.log))
    }

    /// The producers of a partition, for DescribeProducers.
    pub fn producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerInfo>, StorageError> {
        let p = self.get(topic, partition)?;
        Ok(p.producers
            .producers()
            .map(|(id, e)| {
                let last = e.batches.back();
                ProducerInfo {
                    producer_id: *id,
                    epoch: e.epoch,
                    last_sequence: last.map_or(-1, |b| b.last_seq),
                    last_timestamp: last.map_or(-1, |b| b.max_timestamp),
                    coordinator_epoch: e.coordinator_epoch,
                    current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
                }
            })
            .collect())
    }

    /// Reads whole batches from `offset` up to the log end, committed or not (the group
    /// coordinator loading its partition as the new leader).
    pub fn read_to_log_end(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        Ok(self.get(topic, partition)?.log.read(offset, max_bytes)?)
    }

    /// Reads whole batches from `offset` below the high watermark (see
    /// [`PartitionLog::read`]). When nothing is there yet and `wake` is given, it is notified
    /// by the next append or high-watermark move (fetch long poll).
    pub fn read(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wake: Option<&Arc<Notify>>,
    ) -> Result<ReadResult, StorageError> {
        let p = self
            .partitions
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
            .ok_or(StorageError::UnknownPartition)?;
        let mut r = p.log.read_upto(offset, max_bytes, p.high_watermark())?;
        r.high_watermark = p.high_watermark();
        if let (true, Some(w)) = (r.records.is_empty(), wake) {
            p.park(w);
        }
        Ok(r)
    }

    /// [`ShardState::read`] for a fetch that can send file regions (`sendfile`): record sets of
    /// at least `file_min_bytes` stay in the segment files ([`PartitionLog::read_records`]).
    /// `wake` (a long poll) is notified by the next append even when this read found records,
    /// since they may be fewer than the fetch's `min_bytes`.
    pub fn read_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        wake: Option<&Arc<Notify>>,
    ) -> Result<ReadResult<RecordSet>, StorageError> {
        let p = self
            .partitions
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
            .ok_or(StorageError::UnknownPartition)?;
        let hw = p.high_watermark();
        p.read_parked(offset, max_bytes, file_min_bytes, hw, hw, wake)
    }

    /// [`ShardState::read_records`] for a read-committed consumer: batches below the last
    /// stable offset, with the aborted transactions overlapping the batches returned (see
    /// [`PartitionLog::read_committed`]).
    pub fn read_committed_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        wake: Option<&Arc<Notify>>,
    ) -> Result<(ReadResult<RecordSet>, Vec<AbortedTxn>), StorageError> {
        let p = self.get_mut(topic, partition)?;
        let lso = p.last_stable_offset();
        let (mut r, aborted) = p
            .log
            .read_committed(offset, max_bytes, file_min_bytes, lso)?;
        r.high_watermark = p.high_watermark();
        if let Some(w) = wake {
            p.park(w);
        }
        Ok((r, aborted))
    }

    /// The dirtiest compacted log of this shard whose cleaning is due, with its pass planned
    /// (`map_capacity`: offset map entries).
    pub fn plan_clean(
        &mut self,
        map_capacity: usize,
    ) -> Option<(String, i32, crate::log::cleaner::CleanPlan)> {
        let now = wall_clock_ms();
        let mut best: Option<(f64, String, i32)> = None;
        for (topic, parts) in &mut self.partitions {
            for (&partition, p) in parts.iter_mut() {
                let lso = p.last_stable_offset();
                let Some(d) = p.log.dirtiness(now, lso) else {
                    continue;
                };
                if d.due && best.as_ref().map_or(true, |(r, _, _)| d.ratio > *r) {
                    best = Some((d.ratio, topic.clone(), partition));
                }
            }
        }
        let (_, topic, partition) = best?;
        let p = self.get_mut(&topic, partition).ok()?;
        let lso = p.last_stable_offset();
        let last_batches = p
            .producers
            .producers()
            .filter_map(|(&pid, e)| e.batches.back().map(|b| (pid, b.first_offset)))
            .collect();
        let plan = p.log.plan_clean(now, lso, last_batches, map_capacity)?;
        Some((topic, partition, plan))
    }

    /// Swaps a finished cleaning pass in; `None` if it was discarded (the partition is gone
    /// or its log changed meanwhile) or failed (logged).
    pub fn commit_clean(
        &mut self,
        topic: &str,
        partition: i32,
        done: crate::log::cleaner::CleanedSegments,
    ) -> Option<crate::log::cleaner::CleanStats> {
        let Ok(p) = self.get_mut(topic, partition) else {
            done.discard();
            return None;
        };
        match p.log.commit_clean(done) {
            Ok(stats) => stats,
            Err(e) => {
                tracing::error!(dir = %p.dir.display(), error = %e,
                    "cannot swap cleaned segments in; the log refuses writes until reopened");
                p.log.poison();
                None
            }
        }
    }

    /// The largest dirty ratio of this shard's compacted logs, and the broker's cleaner
    /// counters (`None` when the cleaner is off).
    pub fn cleaner_metrics(&mut self) -> (f64, Option<Arc<super::cleaner::Cleaner>>) {
        let now = wall_clock_ms();
        let mut max = 0.0f64;
        for parts in self.partitions.values_mut() {
            for p in parts.values_mut() {
                let lso = p.last_stable_offset();
                if let Some(d) = p.log.dirtiness(now, lso) {
                    max = max.max(d.ratio);
                }
            }
        }
        (max, self.config.cleaner.clone())
    }

    /// Log start offset, high watermark and a watch on the latter.
    pub fn snapshot(&self, topic: &str, partition: i32) -> Result<PartitionSnapshot, StorageError> {
        let p = self.get(topic, partition)?;
        Ok(PartitionSnapshot {
            log_start_offset: p.log.log_start_offset(),
            high_watermark: p.high_watermark(),
            last_stable_offset: p.last_stable_offset(),
            size_bytes: p.log.size_bytes(),
        })
    }

    /// ListOffsets: `-1` latest, `-2` earliest, `-3` max timestamp, else the first record with a
    /// timestamp at or after `timestamp`. Returns `(offset, timestamp)`, `(-1, -1)` when none.
    pub fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), StorageError> {
        self.list_offset_isolated(topic, partition, timestamp, IsolationLevel::ReadUncommitted)
    }

    /// [`ShardState::list_offset`] at an isolation level: read-committed, `-1` answers the last
    /// stable offset, and a timestamp lookup whose answer lies at or beyond it answers none.
    pub fn list_offset_isolated(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        isolation: IsolationLevel,
    ) -> Result<(i64, i64), StorageError> {
        let p = self.get(topic, partition)?;
        let found = Self::lookup_offset(p, timestamp)?;
        Ok(match (isolation, timestamp) {
            (IsolationLevel::ReadCommitted, -1) => (p.last_stable_offset(), -1),
            (IsolationLevel::ReadCommitted, -2) => found,
            (IsolationLevel::ReadCommitted, _) if found.0 >= p.last_stable_offset() => (-1, -1),
            _ => found,
        })
    }

    /// [`ShardState::list_offset`]'s answer on a partition.
    fn lookup_offset(p: &Partition, timestamp: i64) -> Result<(i64, i64), StorageError> {
        let log = &p.log;
        Ok(match timestamp {
            -1 => (p.high_watermark(), -1),
            -2 => (log.log_start_offset(), -1),
            -3 => match log.max_timestamp() {
                Some((ts, off)) => refine_in_compressed_batch(log, off, ts, Lookup::Max),
                None => (-1, -1),
            },
            ts => match log.offset_for_timestamp(ts)? {
                Some((off, found)) => {
                    refine_in_compressed_batch(log, off, found, Lookup::AtOrAfter(ts))
                }
                None => (-1, -1),
            },
        })
    }

    fn poison_all(&mut self) {
        for p in self.partitions.values_mut().flat_map(|t| t.values_mut()) {
            p.log.poison();
        }
    }

    /// Closes every log (flush indexes, fsync) for a clean shutdown and stops the shard.
    pub(super) fn close_all(&mut self) -> Vec<LogError> {
        if let Some(cleaner) = &self.config.cleaner {
            cleaner.stop();
        }
        let mut errors = Vec::new();
        for parts in self.partitions.values_mut() {
            for p in parts.values_mut() {
                if let Err(e) = p.log.close() {
                    tracing::error!(dir = %p.dir.display(), error = %e, "closing log failed");
                    errors.push(e);
                } else if let Err(e) = p.producers.write_snapshot(&p.dir, p.log.log_end_offset()) {
                    // Not fatal: the next start rebuilds the state from the log.
                    tracing::warn!(dir = %p.dir.display(), error = %e, "cannot write producer snapshot");
                }
            }
        }
        if errors.is_empty() {
            // Closing fsynced every file, so appends still waiting for a group are durable.
            for w in self.commit.waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
        self.partitions.clear();
        self.stopped = true;
        errors
    }
}

/// Most files of one group fsynced on their own blocking thread; more share threads.
const MAX_PARALLEL_FSYNCS: usize = 16;

/// Fsyncs `files` on the blocking pool, several at once: a group's files are mostly different
/// partitions' segments, and concurrent fsyncs share the file system's journal commit (ext4
/// and XFS batch them), so a group costs about one fsync rather than one per file. The result
/// is the first error, if any.
async fn sync_concurrently(files: Vec<Arc<File>>) -> SyncResult {
    let lanes = files.len().clamp(1, MAX_PARALLEL_FSYNCS);
    let mut chunks: Vec<Vec<Arc<File>>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, f) in files.into_iter().enumerate() {
        chunks[i % lanes].push(f);
    }
    let mut set = tokio::task::JoinSet::new();
    for chunk in chunks {
        set.spawn_blocking(move || chunk.iter().try_for_each(|f| f.sync_data()));
    }
    let mut result = Ok(());
    while let Some(joined) = set.join_next().await {
        let outcome = match joined {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        if let (Ok(()), Err(e)) = (&result, outcome) {
            result = Err(Arc::new(e));
        }
    }
    result
}

/// Records the milliseconds since `started` in `timer`, if there is one.
fn observe_ms(timer: Option<&prometheus::Histogram>, started: Instant) {
    if let Some(t) = timer {
        t.observe(started.elapsed().as_secs_f64() * 1000.0);
    }
}

/// Milliseconds since the epoch by the system clock.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The producer fields of a batch with a producer id (>= 0), read from the header of the
/// first batch of a produce (clients send one batch per partition per request).
struct ProducerBatch {
    producer_id: i64,
    epoch: i16,
    /// -1: no sequence numbers (transactional offset commits of the group coordinator).
    first_seq: i32,
    count: i32,
    transactional: bool,
}

fn producer_batch(records: &[u8]) -> Option<ProducerBatch> {
    let h = crate::log::batch::BatchHeader::parse(records).ok()?;
    (h.producer_id >= 0).then_some(ProducerBatch {
        producer_id: h.producer_id,
        epoch: h.producer_epoch,
        first_seq: h.base_sequence,
        count: h.last_offset_delta + 1,
        transactional: h.is_transactional(),
    })
}

/// Producer state after opening (or truncating) a partition: the snapshot written at a clean
/// shutdown when it matches the log end and the aborted-transaction index files were trusted,
/// else a scan of the whole log's batch headers (and markers), which also rebuilds the
/// aborted-transaction index.
fn rebuild_producer_state(
    log: &mut PartitionLog,
    dir: &Path,
    clean: bool,
) -> Result<ProducerState, StorageError> {
    if clean {
        // Read (and removed) in any case, so a later crash cannot resurrect it.
        let snapshot = ProducerState::read_snapshot(dir, log.log_end_offset());
        if let (Some(state), true) = (snapshot, log.txn_index_trusted()) {
            return Ok(state);
        }
    } else {
        let _ = std::fs::remove_file(dir.join(crate::shard::producer_state::SNAPSHOT_FILE));
    }
    let mut state = ProducerState::default();
    let mut aborted = Vec::new();
    let mut offset = log.log_start_offset();
    let now = wall_clock_ms();
    while offset < log.log_end_offset() {
        let Ok(read) = log.read(offset, 1 << 20) else {
            break;
        };
        if read.records.is_empty() {
            break;
        }
        let next =
            apply_batches(&mut state, &read.records, offset, now, &mut aborted).unwrap_or(offset);
        if next <= offset {
            break;
        }
        offset = next;
    }
    log.replace_aborted_txns(aborted)?;
    Ok(state)
}

/// Applies the batches found in `records` (whole batches as stored) that start at or after
/// `from` to the producer state, as the leader did when it appended them: sequences, open
/// transactions, and markers closing them (an abort is added to `aborted`). Returns the offset
/// after the last batch seen.
fn apply_batches(
    state: &mut ProducerState,
    records: &[u8],
    from: i64,
    now: i64,
    aborted: &mut Vec<AbortedTxn>,
) -> Option<i64> {
    let mut next = None;
    for (h, bytes) in crate::log::batch::batches(records).flatten() {
        next = Some(h.next_offset());
        if h.producer_id < 0 || h.base_offset < from {
            continue;
        }
        if h.is_control() {
            // Control batches other than transaction markers change nothing.
            if let Some(marker) = txn_marker(bytes) {
                let txn = apply_marker(
                    state,
                    h.producer_id,
                    h.producer_epoch,
                    marker,
                    h.base_offset,
                    now,
                );
                aborted.extend(txn);
            }
            continue;
        }
        if h.base_sequence >= 0 {
            state.record(
                h.producer_id,
                h.producer_epoch,
                BatchMeta {
                    first_seq: h.base_sequence,
                    last_seq: h.base_sequence.wrapping_add(h.last_offset_delta),
                    first_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                },
                now,
            );
        } else {
            state.record_unsequenced(h.producer_id, h.producer_epoch, now);
        }
        if h.is_transactional() {
            state.begin_txn(h.producer_id, h.base_offset);
        }
    }
    next
}

/// Closes a producer's transaction with the marker at `offset`; for an abort of an open
/// transaction, the entry of the aborted-transaction index, whose last stable offset is the
/// first offset of the earliest transaction still open (or the offset after the marker).
fn apply_marker(
    state: &mut ProducerState,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    offset: i64,
    now: i64,
) -> Option<AbortedTxn> {
    let first = state.end_txn(producer_id, producer_epoch, marker.coordinator_epoch, now)?;
    (!marker.commit).then(|| AbortedTxn {
        producer_id,
        first_offset: first,
        last_offset: offset,
        last_stable_offset: state.first_unstable_offset().unwrap_or(offset + 1),
    })
}

/// A request's leader epoch against the partition's (`-1`: the client did not say).
fn check_epoch(current: i32, requested: i32) -> Result<(), StorageError> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested < current {
        Err(StorageError::FencedLeaderEpoch {
            current,
            got: requested,
        })
    } else {
        Err(StorageError::UnknownLeaderEpoch {
            current,
            got: requested,
        })
    }
}

impl Partition {
    /// The high watermark: the log end on a single node.
    fn high_watermark(&self) -> i64 {
        match &self.role {
            Some(r) => r.high_watermark(),
            None => self.log.log_end_offset(),
        }
    }

    /// The last stable offset: the high watermark, or the first offset of the earliest open
    /// transaction if that is smaller.
    fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.producers
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// Whether a leader-side append with `durability` may go ahead: not on a follower
    /// (NotLeader), and with acks=all not below `min.insync.replicas`.
    fn check_leader_append(&self, durability: Durability) -> Result<(), StorageError> {
        match &self.role {
            Some(Role::Follower(_)) => Err(StorageError::NotLeader),
            Some(Role::Leader(l)) if durability == Durability::Fsync && l.isr.len() < l.min_isr => {
                Err(StorageError::NotEnoughReplicas {
                    isr: l.isr.len(),
                    min: l.min_isr,
                })
            }
            _ => Ok(()),
        }
    }

    /// A fetch's read of batches below `upper` (file regions from `file_min_bytes` on),
    /// reporting `high_watermark`; `wake` is parked for the next append or high-watermark move.
    fn read_parked(
        &mut self,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        upper: i64,
        high_watermark: i64,
        wake: Option<&Arc<Notify>>,
    ) -> Result<ReadResult<RecordSet>, StorageError> {
        let mut r = self
            .log
            .read_records_upto(offset, max_bytes, file_min_bytes, upper)?;
        r.high_watermark = high_watermark;
        if let Some(w) = wake {
            self.park(w);
        }
        Ok(r)
    }

    /// Registers a long-polling fetch to be woken by the next append or high-watermark move.
    fn park(&mut self, wake: &Arc<Notify>) {
        self.waiters.retain(|w| w.strong_count() > 0);
        self.waiters.push(Arc::downgrade(wake));
    }

    /// Wakes the long-polling fetches (new records, or a high watermark that moved).
    fn wake_fetches(&mut self) {
        for w in self.waiters.drain(..) {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
    }
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod txn_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_leader_epochs_are_checked_as_kafka_does() {
        assert!(
            check_epoch(5, -1).is_ok(),
            "a client that does not say passes"
        );
        assert!(check_epoch(5, 5).is_ok());
        assert!(matches!(
            check_epoch(5, 4),
            Err(StorageError::FencedLeaderEpoch { current: 5, got: 4 })
        ));
        assert!(matches!(
            check_epoch(5, 6),
            Err(StorageError::UnknownLeaderEpoch { current: 5, got: 6 })
        ));
    }
}
