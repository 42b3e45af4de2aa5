//! Stream metadata: what Kinesis knows about a stream beyond its topic — each shard's hash-key
//! range, parents and closing point, the stream mode, creation time, tags and enhanced
//! monitoring settings. On a single node it is stored as one JSON file per stream in
//! `<log.dirs>/.esker-config/kinesis/<stream>.json` (written atomically: temporary file, fsync,
//! rename, directory fsync) and loaded at start. In a cluster it is stored with the topic in the
//! metadata log (`SetStreamMetadata`), so every node's endpoint sees the same streams, shards,
//! tags and consumers; deleting the topic deletes it, and each node parses a topic's document
//! once per change of it.
//!
//! A topic created by Kafka clients has no file: its metadata is derived (even hash ranges over
//! its partitions, no parents) and kept in memory only, until a Kinesis operation changes
//! something (tags, resharding), which stores it. Stored metadata whose topic id no longer
//! matches the topic (deleted and recreated through Kafka) is ignored and derived afresh.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::hash::{even_ranges, HashRange};
use crate::catalog::TopicMeta;
use crate::controller::Controller;
use crate::metadata::{Command, Reply};

/// When and where a shard was closed by resharding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// The partition's log end offset when it closed: its last record is at `end_offset - 1`.
    pub end_offset: i64,
    /// When it closed (ms since the epoch).
    pub at_ms: i64,
}

/// One shard (partition) of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The partition, also the number in `shardId-000000000000`.
    pub partition: i32,
    /// StartingHashKey, decimal.
    pub start: String,
    /// EndingHashKey, decimal.
    pub end: String,
    /// ParentShardId's partition.
    #[serde(default)]
    pub parent: Option<i32>,
    /// AdjacentParentShardId's partition (merges).
    #[serde(default)]
    pub adjacent_parent: Option<i32>,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
    /// Set once resharding closed the shard.
    #[serde(default)]
    pub closed: Option<Closed>,
}

impl ShardMeta {
    /// A new open shard owning `range`.
    pub fn new(partition: i32, range: HashRange, created_ms: i64) -> ShardMeta {
        ShardMeta {
            partition,
            start: range.start.to_string(),
            end: range.end.to_string(),
            parent: None,
            adjacent_parent: None,
            created_ms,
            closed: None,
        }
    }

    /// The hash-key range.
    pub fn range(&self) -> HashRange {
        HashRange {
            start: self.start.parse().unwrap_or(0),
            end: self.end.parse().unwrap_or(0),
        }
    }

    /// Whether new records may go to this shard.
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

/// An enhanced fan-out consumer (RegisterStreamConsumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    /// ConsumerName.
    pub name: String,
    /// ConsumerCreationTimestamp (ms); its seconds end the ConsumerARN.
    pub created_ms: i64,
    /// Tags (TagResource on the consumer's ARN).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The resource policy (PutResourcePolicy on the consumer's ARN), verbatim.
    #[serde(default)]
    pub policy: Option<String>,
}

impl ConsumerMeta {
    /// A new consumer without tags or policy.
    pub fn new(name: String, created_ms: i64) -> ConsumerMeta {
        ConsumerMeta {
            name,
            created_ms,
            tags: BTreeMap::new(),
            policy: None,
        }
    }
}

/// Server-side encryption of a stream (StartStreamEncryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// EncryptionType: KMS.
    pub kind: String,
    /// KeyId as given (ARN, alias or key id).
    pub key_id: String,
}

/// A stream's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The topic id this metadata belongs to.
    pub topic_id: uuid::Uuid,
    /// StreamCreationTimestamp (ms).
    pub created_ms: i64,
    /// PROVISIONED or ON_DEMAND.
    pub mode: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Shards by partition, in partition order.
    pub shards: Vec<ShardMeta>,
    /// Enhanced monitoring's shard-level metrics (accepted and echoed).
    #[serde(default)]
    pub shard_level_metrics: Vec<String>,
    /// Registered enhanced fan-out consumers.
    #[serde(default)]
    pub consumers: Vec<ConsumerMeta>,
    /// The resource policy (PutResourcePolicy on the stream's ARN), verbatim.
    #[serde(default)]
    pub policy: Option<String>,
    /// Server-side encryption; `None` is EncryptionType NONE.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// CREATING until this time (ms; `kinesis.create.stream.ms` after creation).
    #[serde(default)]
    pub active_from_ms: i64,
    /// UPDATING until this time (ms; `kinesis.update.stream.ms` after a change).
    #[serde(default)]
    pub updating_until_ms: i64,
    /// Set by DeleteStream with `kinesis.delete.stream.ms`: DELETING until this time (ms),
    /// when the topic is deleted.
    #[serde(default)]
    pub deleting_until_ms: i64,
    /// Derived from a Kafka topic and never stored.
    #[serde(skip)]
    pub derived: bool,
}

impl StreamMeta {
    /// Metadata of a new stream of `shards` shards splitting the hash-key space evenly.
    pub fn new(topic_id: uuid::Uuid, shards: i32, mode: &str, now_ms: i64) -> StreamMeta {
        StreamMeta {
            topic_id,
            created_ms: now_ms,
            mode: mode.to_string(),
            tags: BTreeMap::new(),
            shards: even_ranges(shards.max(1) as u32)
                .into_iter()
                .enumerate()
                .map(|(i, r)| ShardMeta::new(i as i32, r, now_ms))
                .collect(),
            shard_level_metrics: Vec::new(),
            consumers: Vec::new(),
            policy: None,
            encryption: None,
            active_from_ms: 0,
            updating_until_ms: 0,
            deleting_until_ms: 0,
            derived: false,
        }
    }

    /// The shard of a partition.
    pub fn shard(&self, partition: i32) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.partition == partition)
    }

    /// The open shard whose range holds `hash_key`.
    pub fn open_shard_for(&self, hash_key: u128) -> Option<i32> {
        self.shards
            .iter()
            .find(|s| s.is_open() && s.range().contains(hash_key))
            .map(|s| s.partition)
    }

    /// The shards created from `partition` by a split or merge.
    pub fn children_of(&self, partition: i32) -> Vec<&ShardMeta> {
        self.shards
            .iter()
            .filter(|s| s.parent == Some(partition) || s.adjacent_parent == Some(partition))
            .collect()
    }

    /// StreamStatus at `now_ms`: DELETING, CREATING, UPDATING or ACTIVE.
    pub fn status(&self, now_ms: i64) -> &'static str {
        if self.deleting_until_ms > 0 {
            "DELETING"
        } else if now_ms < self.active_from_ms {
            "CREATING"
        } else if now_ms < self.updating_until_ms {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }

    /// Number of open shards.
    pub fn open_shards(&self) -> usize {
        self.shards.iter().filter(|s| s.is_open()).count()
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Where stream metadata is kept.
enum Backing {
    /// One file per stream in this directory (a single node).
    Files(PathBuf),
    /// The cluster's metadata log, written through this node's controller.
    Cluster(Arc<Controller>),
}

/// Why stream metadata could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing the file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata could not be encoded.
    #[error("cannot encode stream metadata: {0}")]
    Encode(#[from] serde_json::Error),
    /// The metadata log did not take the change.
    #[error("metadata log: {0}")]
    Cluster(String),
    /// The stream's topic was deleted (or recreated) meanwhile.
    #[error("stream {0} was deleted meanwhile")]
    Gone(String),
}

/// What [`StreamStore`] keeps in memory.
#[derive(Default)]
struct Cache {
    /// Single node: every stored stream, and derived metadata. Cluster: derived metadata only.
    streams: HashMap<String, Arc<StreamMeta>>,
    /// Cluster: each topic's document as last parsed (compared by pointer with the image's).
    parsed: HashMap<String, (Arc<str>, Arc<StreamMeta>)>,
}

/// Every stream's metadata, cached in memory.
pub struct StreamStore {
    backing: Backing,
    cache: Mutex<Cache>,
    /// Serializes operations that change a stream (create, delete, reshard, tags, retention),
    /// which span storage calls and a metadata write. (On one node: two nodes of a cluster
    /// changing the same stream at once may each overwrite the other's change.)
    pub admin: tokio::sync::Mutex<()>,
}

impl StreamStore {
    /// The directory of the metadata files under a log directory.
    pub fn dir_of(log_dir: &Path) -> PathBuf {
        log_dir.join(".esker-config").join("kinesis")
    }

    /// The store of a cluster node: the metadata log, through `controller`.
    pub fn cluster(controller: Arc<Controller>) -> StreamStore {
        StreamStore {
            backing: Backing::Cluster(controller),
            cache: Mutex::new(Cache::default()),
            admin: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every stored stream from `dir` (created if missing).
    pub fn open(dir: PathBuf) -> std::io::Result<StreamStore> {
        std::fs::create_dir_all(&dir)?;
        let mut cache = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<StreamMeta>(&b).map_err(|e| e.to_string()))
            {
                Ok(meta) => {
                    cache.insert(name.to_string(), Arc::new(meta));
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable Kinesis stream metadata")
                }
            }
        }
        Ok(StreamStore {
            backing: Backing::Files(dir),
            cache: Mutex::new(Cache {
                streams: cache,
                parsed: HashMap::new(),
            }),
            admin: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cluster topic's stored metadata, parsed once per version of its document.
    fn from_image(
        controller: &Controller,
        cache: &mut Cache,
        name: &str,
    ) -> Option<Arc<StreamMeta>> {
        let image = controller.image();
        let Some(json) = image.topics.get(name).and_then(|t| t.stream.clone()) else {
            cache.parsed.remove(name);
            return None;
        };
        if let Some((seen, meta)) = cache.parsed.get(name) {
            if Arc::ptr_eq(seen, &json) {
                return Some(meta.clone());
            }
        }
        match serde_json::from_str::<StreamMeta>(&json) {
            Ok(meta) => {
                let meta = Arc::new(meta);
                cache.parsed.insert(name.to_string(), (json, meta.clone()));
                Some(meta)
            }
            Err(e) => {
                tracing::warn!(stream = name, error = %e, "ignoring unreadable Kinesis stream metadata in the metadata log");
                None
            }
        }
    }

    /// The metadata of an existing topic: stored, or derived from its partitions.
    pub fn get(&self, topic: &TopicMeta, now_ms: i64) -> Arc<StreamMeta> {
        let mut cache = self.lock();
        let stored = match &self.backing {
            Backing::Files(_) => cache.streams.get(&*topic.name).cloned(),
            Backing::Cluster(c) => Self::from_image(c, &mut cache, &topic.name),
        };
        if let Some(m) = stored.or_else(|| cache.streams.get(&*topic.name).cloned()) {
            let current = m.topic_id == topic.id;
            if current && m.shards.len() as i32 == topic.partitions {
                return m;
            }
            if current && !m.derived {
                // Partitions added through Kafka (CreatePartitions) after Kinesis stored the
                // stream: they own no hash range, so they are listed as closed shards (still
                // readable with GetRecords).
                let mut meta = (*m).clone();
                for p in meta.shards.len() as i32..topic.partitions {
                    // Created "with the stream", so their sequence numbers stay the same.
                    let mut s = ShardMeta::new(p, HashRange { start: 0, end: 0 }, meta.created_ms);
                    s.closed = Some(Closed {
                        end_offset: 0,
                        at_ms: now_ms,
                    });
                    meta.shards.push(s);
                }
                return Arc::new(meta);
            }
        }
        let mut meta = StreamMeta::new(topic.id, topic.partitions, "PROVISIONED", now_ms);
        meta.derived = true;
        let meta = Arc::new(meta);
        cache.streams.insert(topic.name.to_string(), meta.clone());
        meta
    }

    /// Stores a stream's metadata: on a single node its file first, then the cache; in a
    /// cluster through the metadata log, answering once this node has applied it.
    pub async fn put(
        &self,
        name: &str,
        mut meta: StreamMeta,
    ) -> Result<Arc<StreamMeta>, StoreError> {
        meta.derived = false;
        match &self.backing {
            Backing::Files(dir) => {
                let bytes = serde_json::to_vec_pretty(&meta)?;
                write_atomically(&dir.join(format!("{name}.json")), &bytes)?;
                let meta = Arc::new(meta);
                self.lock().streams.insert(name.to_string(), meta.clone());
                Ok(meta)
            }
            Backing::Cluster(c) => {
                let json = serde_json::to_string(&meta)?;
                let cmd = Command::SetStreamMetadata {
                    name: name.to_string(),
                    id: meta.topic_id,
                    json: Some(json),
                };
                let applied = c
                    .propose(cmd)
                    .await
                    .map_err(|e| StoreError::Cluster(e.to_string()))?;
                match applied.reply {
                    Reply::Ok => Ok(Arc::new(meta)),
                    Reply::UnknownTopic | Reply::Stale => Err(StoreError::Gone(name.to_string())),
                    other => Err(StoreError::Cluster(format!("unexpected reply {other:?}"))),
                }
            }
        }
    }

    /// Removes the stored metadata of streams whose topic is gone or was recreated (deleted
    /// through Kafka): `current(name, topic id)` tells whether a stream's topic still exists.
    /// (In a cluster the metadata goes with its topic: nothing to do.)
    pub fn prune(&self, current: impl Fn(&str, uuid::Uuid) -> bool) {
        let stale: Vec<String> = self
            .lock()
            .streams
            .iter()
            .filter(|(name, m)| !current(name, m.topic_id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            match self.remove(&name) {
                Ok(()) => tracing::info!(stream = %name, "removed metadata of a deleted stream"),
                Err(e) => {
                    tracing::warn!(stream = %name, error = %e, "cannot remove stale stream metadata")
                }
            }
        }
    }

    /// Forgets a stream (its file and cache entry; in a cluster the metadata went with the
    /// topic).
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        let mut cache = self.lock();
        cache.streams.remove(name);
        cache.parsed.remove(name);
        drop(cache);
        let Backing::Files(dir) = &self.backing else {
            return Ok(());
        };
        match std::fs::remove_file(dir.join(format!("{name}.json"))) {
            Ok(()) => std::fs::File::open(dir)?.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: uuid::Uuid, partitions: i32) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id,
            partitions,
            configs: Arc::default(),
        }
    }

    #[tokio::test]
    async fn stored_derived_and_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = StreamStore::open(dir.path().join("k")).unwrap();
        let id = uuid::Uuid::new_v4();
        let t = topic("s", id, 3);
        let derived = store.get(&t, 5);
        assert!(derived.derived);
        assert_eq!(derived.shards.len(), 3);
        let mut meta = (*derived).clone();
        meta.tags.insert("a".into(), "b".into());
        store.put("s", meta.clone()).await.unwrap();
        // Reloaded from disk.
        let store = StreamStore::open(dir.path().join("k")).unwrap();
        let got = store.get(&t, 9);
        assert_eq!(got.tags.get("a").map(String::as_str), Some("b"));
        assert!(!got.derived);
        // Kafka added a partition: listed as closed.
        let got = store.get(&topic("s", id, 4), 9);
        assert_eq!(got.shards.len(), 4);
        assert!(!got.shards[3].is_open());
        // Recreated topic: the stored metadata is stale.
        let got = store.get(&topic("s", uuid::Uuid::new_v4(), 2), 9);
        assert!(got.derived && got.tags.is_empty() && got.shards.len() == 2);
        store.remove("s").unwrap();
        // Pruning drops the metadata of topics that are gone.
        store
            .put("gone", StreamMeta::new(id, 1, "PROVISIONED", 1))
            .await
            .unwrap();
        store
            .put("kept", StreamMeta::new(id, 1, "PROVISIONED", 1))
            .await
            .unwrap();
        store.prune(|name, _| name == "kept");
        let store = StreamStore::open(dir.path().join("k")).unwrap();
        assert!(!store.get(&topic("kept", id, 1), 9).derived);
        assert!(store.get(&topic("gone", id, 1), 9).derived);
    }
}
