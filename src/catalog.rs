//! The topic catalog: which topics exist, their ids and partition counts. It is read by
//! Metadata and by every request that names a topic, and written only by topic creation and
//! deletion, so a read-mostly lock suffices; the data path itself is owned by the shards.
//!
//! The catalog is rebuilt on start from the partition directories (`<topic>-<n>/partition.metadata`
//! holds the topic id, as in Kafka).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

/// A topic as the catalog knows it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    /// The topic name.
    pub name: Arc<str>,
    /// The topic id (UUID), stored in every partition's `partition.metadata`.
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level config overrides (see [`crate::topic_config`]).
    pub configs: Arc<BTreeMap<String, String>>,
}

/// Why a topic name is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicNameError {
    /// Empty name.
    #[error("topic name is empty")]
    Empty,
    /// `.` and `..` are reserved.
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
    /// Longer than 249 characters.
    #[error("topic name is longer than 249 characters")]
    TooLong,
    /// A character outside `[a-zA-Z0-9._-]`.
    #[error(
        "topic name {0:?} contains a character other than ASCII alphanumerics, '.', '_' and '-'"
    )]
    IllegalChar(String),
}

/// Kafka's topic-name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > 249 {
        return Err(TopicNameError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicNameError::IllegalChar(name.to_string()));
    }
    Ok(())
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<Arc<str>, TopicMeta>,
    by_id: HashMap<Uuid, Arc<str>>,
}

/// The set of topics.
#[derive(Default)]
pub struct Catalog {
    inner: RwLock<Inner>,
    /// Bumped whenever a topic is added, removed or grows.
    version: std::sync::atomic::AtomicU64,
}

impl Catalog {
    /// Looks a topic up by name.
    pub fn get(&self, name: &str) -> Option<TopicMeta> {
        self.read().by_name.get(name).cloned()
    }

    /// Looks a topic up by id.
    pub fn get_by_id(&self, id: &Uuid) -> Option<TopicMeta> {
        let inner = self.read();
        inner
            .by_id
            .get(id)
            .and_then(|n| inner.by_name.get(n))
            .cloned()
    }

    /// A number that changes whenever a topic is added, removed or gets more partitions (the
    /// group coordinator resolves regex subscriptions again when it does).
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every topic name, unsorted.
    pub fn names(&self) -> Vec<String> {
        self.read().by_name.keys().map(|n| n.to_string()).collect()
    }

    fn bump(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<TopicMeta> {
        let mut v: Vec<TopicMeta> = self.read().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Adds a topic; `false` if one with that name already exists.
    pub fn insert(&self, meta: TopicMeta) -> bool {
        let mut inner = self.write();
        if inner.by_name.contains_key(&meta.name) {
            return false;
        }
        inner.by_id.insert(meta.id, meta.name.clone());
        inner.by_name.insert(meta.name.clone(), meta);
        drop(inner);
        self.bump();
        true
    }

    /// Replaces a topic's config overrides; `false` if the topic does not exist.
    pub fn set_configs(&self, name: &str, configs: BTreeMap<String, String>) -> bool {
        let mut inner = self.write();
        match inner.by_name.get_mut(name) {
            Some(m) => {
                m.configs = Arc::new(configs);
                true
            }
            None => false,
        }
    }

    /// Raises a topic's partition count; `false` if the topic does not exist.
    pub fn set_partitions(&self, name: &str, partitions: i32) -> bool {
        let mut inner = self.write();
        match inner.by_name.get_mut(name) {
            Some(m) => {
                m.partitions = partitions;
                drop(inner);
                self.bump();
                true
            }
            None => false,
        }
    }

    /// Removes a topic by name and returns it.
    pub fn remove(&self, name: &str) -> Option<TopicMeta> {
        let mut inner = self.write();
        let meta = inner.by_name.remove(name)?;
        inner.by_id.remove(&meta.id);
        drop(inner);
        self.bump();
        Some(meta)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `partition.metadata` (Kafka's format: version and base64url topic id) durably.
pub fn write_partition_metadata(dir: &Path, id: Uuid) -> std::io::Result<()> {
    let path = dir.join("partition.metadata");
    let tmp = dir.join("partition.metadata.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    write!(f, "version: 0\ntopic_id: {}\n", uuid_to_base64(id))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Reads the topic id from `partition.metadata`, if present and well formed.
pub fn read_partition_metadata(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| uuid_from_base64(v.trim()))
}

/// Scans the log directory for `<topic>-<n>` partition directories and returns the topics
/// found, with their partition counts (highest index + 1).
pub fn scan_log_dir(log_dir: &Path) -> std::io::Result<Vec<TopicMeta>> {
    let mut topics: HashMap<String, (Uuid, i32)> = HashMap::new();
    for entry in std::fs::read_dir(log_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, part)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(part) = part.parse::<i32>() else {
            continue;
        };
        if validate_topic_name(topic).is_err() || part < 0 || topic == "__cluster_metadata" {
            continue;
        }
        let Some(id) = read_partition_metadata(&entry.path()) else {
            tracing::warn!(dir = %entry.path().display(), "partition directory without partition.metadata, ignored");
            continue;
        };
        let e = topics.entry(topic.to_string()).or_insert((id, 0));
        e.1 = e.1.max(part + 1);
    }
    Ok(topics
        .into_iter()
        .map(|(name, (id, partitions))| TopicMeta {
            configs: Arc::new(crate::topic_config::load(log_dir, &name)),
            name: name.into(),
            id,
            partitions,
        })
        .collect())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka prints UUIDs as unpadded base64url (22 characters).
pub fn uuid_to_base64(id: Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(B64[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B64[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// Parses the unpadded base64url form of a UUID.
pub fn uuid_from_base64(s: &str) -> Option<Uuid> {
    let mut bytes = Vec::with_capacity(16);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let arr: [u8; 16] = bytes.try_into().ok()?;
    Some(Uuid::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
    }

    #[test]
    fn uuid_base64_round_trip() {
        for _ in 0..100 {
            let id = Uuid::new_v4();
            let s = uuid_to_base64(id);
            assert_eq!(s.len(), 22);
            assert_eq!(uuid_from_base64(&s), Some(id));
        }
        assert_eq!(uuid_from_base64("!!"), None);
    }
}
