//! A shard's state: the partition logs it owns and its group commit of fsyncs. Runs only on the
//! shard's own thread (it is reached through `ShardHandle::call`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use std::sync::Weak;

use tokio::sync::{oneshot, Notify};

use super::ShardSelf;
use crate::log::{AppendInfo, LogConfig, LogError, PartitionLog, ReadResult};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the bytes reach the page cache (acks=1 and acks=0).
    PageCache,
    /// After the bytes are fsynced (acks=-1); fsyncs are group-committed per shard.
    Fsync,
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
}

/// The outcome of a group-committed fsync, sent to every waiter.
pub type SyncResult = Result<(), Arc<std::io::Error>>;

/// What a fetch needs to know about a partition besides its records.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset after the last record.
    pub high_watermark: i64,
}

struct Partition {
    log: PartitionLog,
    /// Long-polling fetches to wake on the next append.
    waiters: Vec<Weak<Notify>>,
    dir: PathBuf,
}

#[derive(Default)]
struct GroupCommit {
    files: Vec<Arc<File>>,
    waiters: Vec<oneshot::Sender<SyncResult>>,
    scheduled: bool,
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
        Lookup::AtOrAfter(target) => set.records.iter().find(|r| r.timestamp >= target),
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
    log_dir: PathBuf,
    log_config: LogConfig,
    linger: Duration,
    /// topic name → partitions held here, indexed by partition number.
    partitions: HashMap<String, HashMap<i32, Partition>>,
    commit: GroupCommit,
    stopped: bool,
}

impl ShardState {
    /// A shard with no partitions yet.
    pub fn new(
        id: usize,
        me: ShardSelf,
        log_dir: PathBuf,
        log_config: LogConfig,
        linger: Duration,
    ) -> ShardState {
        ShardState {
            id,
            me,
            log_dir,
            log_config,
            linger,
            partitions: HashMap::new(),
            commit: GroupCommit::default(),
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

    /// The directory of a partition, in Kafka's `<topic>-<partition>` layout.
    pub fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
        log_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens a partition's log (running recovery unless `clean`). With `topic_id`, the partition
    /// is being created: its directory and `partition.metadata` are written first.
    pub fn open_partition(
        &mut self,
        topic: &str,
        partition: i32,
        topic_id: Option<uuid::Uuid>,
        clean: bool,
    ) -> Result<(), StorageError> {
        let dir = Self::partition_dir(&self.log_dir, topic, partition);
        if let Some(id) = topic_id {
            std::fs::create_dir_all(&dir)?;
            crate::catalog::write_partition_metadata(&dir, id)?;
        }
        let log = PartitionLog::open(&dir, self.log_config.clone(), clean)?;
        self.partitions
            .entry(topic.to_string())
            .or_default()
            .insert(
                partition,
                Partition {
                    log,
                    waiters: Vec::new(),
                    dir,
                },
            );
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

    /// Appends producer batches. With [`Durability::Fsync`] the returned receiver completes
    /// once the bytes are on disk (group commit).
    pub fn append(
        &mut self,
        topic: &str,
        partition: i32,
        records: BytesMut,
        log_append_time: Option<i64>,
        durability: Durability,
    ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError> {
        let p = self
            .partitions
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
            .ok_or(StorageError::UnknownPartition)?;
        let info = p.log.append(records, log_append_time)?;
        for w in p.waiters.drain(..) {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
        let wait = match durability {
            Durability::PageCache => None,
            Durability::Fsync => {
                let files = p.log.take_unsynced();
                Some(self.enqueue_sync(files))
            }
        };
        Ok((info, wait))
    }

    fn enqueue_sync(&mut self, files: Vec<Arc<File>>) -> oneshot::Receiver<SyncResult> {
        for f in files {
            if !self.commit.files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                self.commit.files.push(f);
            }
        }
        let (tx, rx) = oneshot::channel();
        self.commit.waiters.push(tx);
        if !self.commit.scheduled {
            self.commit.scheduled = true;
            let me = self.me.clone();
            let linger = self.linger;
            tokio::spawn(async move {
                if !linger.is_zero() {
                    tokio::time::sleep(linger).await;
                } else {
                    tokio::task::yield_now().await;
                }
                me.send(|s: &mut ShardState| s.flush_group()).await;
            });
        }
        rx
    }

    /// Takes everything gathered during the linger window and fsyncs it on a blocking thread,
    /// then answers every waiter with the one result.
    fn flush_group(&mut self) {
        let files = std::mem::take(&mut self.commit.files);
        let waiters = std::mem::take(&mut self.commit.waiters);
        self.commit.scheduled = false;
        let shard = self.id;
        let me = self.me.clone();
        tokio::spawn(async move {
            let synced = tokio::task::spawn_blocking(move || {
                for f in &files {
                    f.sync_data()?;
                }
                Ok::<(), std::io::Error>(())
            })
            .await;
            let result: SyncResult = match synced {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Arc::new(e)),
                Err(e) => Err(Arc::new(std::io::Error::other(e.to_string()))),
            };
            if let Err(e) = &result {
                // The page cache may have dropped the data: the shard's logs stop taking
                // writes until they are reopened (recovery), rather than retrying silently.
                tracing::error!(shard, error = %e, "fsync failed; poisoning this shard's logs");
                me.send(|s: &mut ShardState| s.poison_all()).await;
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
        });
    }

    /// Reads whole batches from `offset` (see [`PartitionLog::read`]). When nothing is there
    /// yet and `wake` is given, it is notified by the next append (fetch long poll).
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
        let r = p.log.read(offset, max_bytes)?;
        if let (true, Some(w)) = (r.records.is_empty(), wake) {
            p.waiters.retain(|w| w.strong_count() > 0);
            p.waiters.push(Arc::downgrade(w));
        }
        Ok(r)
    }

    /// Log start offset, high watermark and a watch on the latter.
    pub fn snapshot(&self, topic: &str, partition: i32) -> Result<PartitionSnapshot, StorageError> {
        let p = self.get(topic, partition)?;
        Ok(PartitionSnapshot {
            log_start_offset: p.log.log_start_offset(),
            high_watermark: p.log.log_end_offset(),
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
        let log = &self.get(topic, partition)?.log;
        Ok(match timestamp {
            -1 => (log.log_end_offset(), -1),
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
        let mut errors = Vec::new();
        for parts in self.partitions.values_mut() {
            for p in parts.values_mut() {
                if let Err(e) = p.log.close() {
                    tracing::error!(dir = %p.dir.display(), error = %e, "closing log failed");
                    errors.push(e);
                }
            }
        }
        self.partitions.clear();
        self.stopped = true;
        errors
    }
}
