//! The durable store of one quorum node: the Raft log, the vote, the committed-index hint and
//! the latest snapshot, all in one directory, plus the wrapper that applies committed entries to
//! the application's [`StateMachine`].
//!
//! **Thread.** Everything here runs on the node's "esker-raft" runtime: openraft's core task
//! calls the [`RaftStorage`] methods one at a time (through openraft's `Adaptor`), replication
//! tasks read the log through clones of [`Store`], and the snapshot builder runs beside them.
//! Writes and fsyncs go to that runtime's blocking pool (`spawn_blocking`), so timers and RPCs
//! keep running while the disk works; the in-memory state sits behind short-held mutexes.
//!
//! **Files** (in `QuorumConfig::dir`):
//! - `raft.log`: append-only frames `u32 length (BE) | u32 CRC32C (BE) of the payload |
//!   payload`, the payload a JSON [`LogRecord`]. An optional first record says up to which log
//!   id the log was purged; every other record is one entry, indexes contiguous. Appends are
//!   fsynced before openraft hears of them. Conflict truncation cuts the file at the first
//!   removed entry (`ftruncate` + fsync); a purge rewrites the remaining entries to
//!   `raft.log.tmp`, fsyncs it and renames it over the log (then fsyncs the directory).
//!   Recovery reads the frames in order and cuts the file at the first torn, corrupt or
//!   out-of-sequence frame, with a warning.
//! - `vote`: one frame holding the vote, replaced atomically (tmp file, fsync, rename, fsync of
//!   the directory) before `save_vote` returns.
//! - `committed`: one frame holding the last committed log id, replaced atomically but not
//!   fsynced: it is a hint that lets a restarted node re-apply its committed entries before a
//!   leader is elected; a missing or unreadable file only means recovering less on start-up.
//!   If the recovered log ends below it, entries this node acknowledged were lost (a torn
//!   append never loses acknowledged entries, since appends are fsynced first): the store
//!   refuses to open, because Raft's safety (and openraft's leader) assumes members never
//!   forget what they acknowledged. The way back is remove the node, empty its directory, add
//!   it again.
//! - `snapshot`: one frame holding the snapshot metadata (last log id, membership) and the
//!   state machine's bytes, replaced atomically and durably.
//! - `lock`: empty; an exclusive `flock` on it while the store is open, so two nodes (or two
//!   processes) never share a directory.
//!
//! On start the state machine is restored from `snapshot`, and openraft re-applies the logged
//! entries after it up to the committed hint; nothing else about the state machine is persisted.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, RaftStorage, Snapshot, StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};

use super::types::{
    b64, LogEntry, LogId, Membership, Reply, SnapshotMeta, StorageError, TypeConfig,
};
use super::StateMachine;

/// The largest frame accepted when reading the store's files (a snapshot is one frame).
const MAX_FILE_FRAME: usize = 1 << 30;
/// File names inside the store directory.
const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
const SNAPSHOT_FILE: &str = "snapshot";
const LOCK_FILE: &str = "lock";

/// One record of `raft.log`.
#[derive(Debug, Serialize, Deserialize)]
enum LogRecord {
    /// Everything up to and including this log id was purged (only as the first record).
    Purged(LogId),
    /// A log entry.
    Entry(LogEntry),
}

/// The content of the `snapshot` file and of the in-memory current snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "b64")]
    data: Vec<u8>,
}

/// What [`Store::inspect_log`] found.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSummary {
    pub(crate) purged: Option<u64>,
    pub(crate) first: Option<u64>,
    pub(crate) last: Option<u64>,
    pub(crate) valid_len: u64,
    pub(crate) file_len: u64,
}

/// The durable store; cheap to clone (all clones share one state). openraft uses it as log
/// store, log reader, state machine and snapshot builder.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Holds an exclusive `flock` on `lock` while the store is open.
    _lock: File,
    log: Mutex<LogMemory>,
    writer: Mutex<LogWriter>,
    machine: Mutex<Applied>,
    snapshot: Mutex<Option<StoredSnapshot>>,
    /// Serializes replacing the snapshot file (held across its I/O; `snapshot` is not).
    snapshot_writer: Mutex<()>,
    vote: Mutex<Option<Vote<u64>>>,
    committed: Mutex<Option<LogId>>,
    /// Distinguishes snapshots built at the same log id.
    snapshot_seq: AtomicU64,
}

/// The application state machine plus what openraft needs to know about it.
struct Applied {
    machine: Box<dyn StateMachine>,
    last_applied: Option<LogId>,
    last_membership: Membership,
}

/// The entries of `raft.log` in memory: what readers see. Locked only briefly, never across
/// file I/O.
struct LogMemory {
    purged: Option<LogId>,
    entries: BTreeMap<u64, LogEntry>,
}

impl LogMemory {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(self.purged)
    }
}

/// The open `raft.log` and where each entry's frame starts. Locked by the (serialized) writes
/// for the duration of their I/O.
struct LogWriter {
    path: PathBuf,
    file: File,
    offsets: BTreeMap<u64, u64>,
    /// Length of the valid part of the file (where the next frame goes).
    end: u64,
}

/// Locks a mutex, ignoring poisoning (a panic elsewhere must not wedge the store).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn io_context(context: String, source: io::Error) -> io::Error {
    io::Error::new(source.kind(), format!("{context}: {source}"))
}

/// Appends one file frame (`len | crc32c | payload`) to `out`.
fn encode_file_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the file frame at the start of `buf`: `Ok(None)` at a clean end, `Ok(Some((payload,
/// frame length)))`, or why the bytes are not a whole, intact frame.
fn decode_file_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let header: [u8; 8] = match buf.get(..8).and_then(|h| h.try_into().ok()) {
        Some(header) => header,
        None => return Err(format!("truncated frame header ({} bytes)", buf.len())),
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FILE_FRAME {
        return Err(format!("frame length {len} exceeds the maximum"));
    }
    let payload = match buf.get(8..8 + len) {
        Some(payload) => payload,
        None => {
            return Err(format!(
                "truncated frame: {} of {len} payload bytes",
                buf.len() - 8
            ))
        }
    };
    if crc32c::crc32c(payload) != crc {
        return Err("frame checksum mismatch".to_string());
    }
    Ok(Some((payload, 8 + len)))
}

/// Writes `name` in `dir` atomically: a tmp file, renamed over the old one. When `durable`, the
/// tmp file is fsynced before and the directory after the rename.
fn write_atomic(dir: &Path, name: &str, payload: &[u8], durable: bool) -> io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    encode_file_frame(&mut frame, payload);
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    {
        let file =
            File::create(&tmp).map_err(|e| io_context(format!("create {}", tmp.display()), e))?;
        file.write_all_at(&frame, 0)
            .map_err(|e| io_context(format!("write {}", tmp.display()), e))?;
        if durable {
            file.sync_all()
                .map_err(|e| io_context(format!("fsync {}", tmp.display()), e))?;
        }
    }
    fs::rename(&tmp, &target)
        .map_err(|e| io_context(format!("rename to {}", target.display()), e))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Takes an exclusive lock on `dir` (released when the returned file is closed), so two nodes
/// never share a store.
fn lock_dir(dir: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_context(format!("open {}", path.display()), e))?;
    // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io_context(
            format!("{} is in use by another quorum node", dir.display()),
            e,
        ));
    }
    Ok(file)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_context(format!("fsync directory {}", dir.display()), e))
}

/// Reads the single-frame file `name`: `Ok(None)` if absent, `Err` with a reason if unreadable.
fn read_single(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_context(format!("read {}", path.display()), e)),
    };
    match decode_file_frame(&bytes) {
        Ok(Some((payload, len))) if len == bytes.len() => Ok(Some(payload.to_vec())),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: empty file or trailing bytes", path.display()),
        )),
        Err(reason) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {reason}", path.display()),
        )),
    }
}

fn invalid_data(path: &Path, e: serde_json::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// What a `raft.log` image holds: the purge point, the entries with their offsets, the length
/// of the valid prefix, and why the rest (if any) is not valid.
type ParsedLog = (
    Option<LogId>,
    BTreeMap<u64, (LogEntry, u64)>,
    usize,
    Option<String>,
);

/// Reads the frames of a `raft.log` image in order, stopping at the first one that is torn,
/// corrupt, undecodable or out of sequence.
fn parse_log(bytes: &[u8]) -> ParsedLog {
    let mut purged = None;
    let mut entries: BTreeMap<u64, (LogEntry, u64)> = BTreeMap::new();
    let mut pos = 0usize;
    let mut damage = None;
    loop {
        let (payload, len) = match decode_file_frame(&bytes[pos..]) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(reason) => {
                damage = Some(reason);
                break;
            }
        };
        let record: LogRecord = match serde_json::from_slice(payload) {
            Ok(record) => record,
            Err(e) => {
                damage = Some(format!("undecodable record: {e}"));
                break;
            }
        };
        match record {
            LogRecord::Purged(log_id) if pos == 0 => purged = Some(log_id),
            LogRecord::Purged(_) => {
                damage = Some("purge record after the start of the log".to_string());
                break;
            }
            LogRecord::Entry(entry) => {
                let expected = match entries.keys().next_back() {
                    Some(last) => last + 1,
                    None => purged.map_or(0, |p: LogId| p.index + 1),
                };
                if entry.log_id.index != expected {
                    damage = Some(format!(
                        "entry index {} where {expected} was expected",
                        entry.log_id.index
                    ));
                    break;
                }
                entries.insert(entry.log_id.index, (entry, pos as u64));
            }
        }
        pos += len;
    }
    (purged, entries, pos, damage)
}

/// Opens (creating if missing) and recovers `raft.log`, cutting a torn or corrupt tail.
fn open_log(path: PathBuf) -> io::Result<(LogMemory, LogWriter)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_context(format!("open {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_context(format!("read {}", path.display()), e))?;

    let (purged, parsed, valid, damage) = parse_log(&bytes);
    if let Some(reason) = damage {
        tracing::warn!(
            path = %path.display(),
            offset = valid,
            dropped_bytes = bytes.len() - valid,
            %reason,
            "raft log has a torn or corrupt tail; truncating it"
        );
        file.set_len(valid as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_context(format!("truncate {}", path.display()), e))?;
    }
    let mut entries = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    for (index, (entry, offset)) in parsed {
        entries.insert(index, entry);
        offsets.insert(index, offset);
    }
    Ok((
        LogMemory { purged, entries },
        LogWriter {
            path,
            file,
            offsets,
            end: valid as u64,
        },
    ))
}

fn encode_record(out: &mut Vec<u8>, record: &LogRecord) -> io::Result<()> {
    let payload =
        serde_json::to_vec(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    encode_file_frame(out, &payload);
    Ok(())
}

impl Inner {
    /// Removes the entries from `index` on: from memory first (readers must not see them once
    /// this returns), then from the file.
    fn truncate_log(&self, writer: &mut LogWriter, index: u64) -> io::Result<()> {
        lock(&self.log).entries.split_off(&index);
        let Some(&offset) = writer.offsets.get(&index) else {
            return Ok(());
        };
        writer
            .file
            .set_len(offset)
            .and_then(|()| writer.file.sync_data())
            .map_err(|e| io_context(format!("truncate {}", writer.path.display()), e))?;
        writer.offsets.split_off(&index);
        writer.end = offset;
        Ok(())
    }

    /// Appends entries durably: written and fsynced before they become visible and before
    /// this returns.
    fn append_log(&self, new: Vec<LogEntry>) -> io::Result<()> {
        let Some(first) = new.first().map(|e| e.log_id.index) else {
            return Ok(());
        };
        let mut writer = lock(&self.writer);
        // Entries are positioned by index: anything at or after the first new one is replaced.
        self.truncate_log(&mut writer, first)?;
        let expected = lock(&self.log).last_log_id().map_or(0, |l| l.index + 1);
        if first != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("append at index {first} would leave a hole after {expected}"),
            ));
        }
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(new.len());
        for entry in &new {
            offsets.push((entry.log_id.index, writer.end + buf.len() as u64));
            encode_record(&mut buf, &LogRecord::Entry(entry.clone()))?;
        }
        writer
            .file
            .write_all_at(&buf, writer.end)
            .and_then(|()| writer.file.sync_data())
            .map_err(|e| io_context(format!("append to {}", writer.path.display()), e))?;
        writer.end += buf.len() as u64;
        writer.offsets.extend(offsets);
        lock(&self.log)
            .entries
            .extend(new.into_iter().map(|entry| (entry.log_id.index, entry)));
        Ok(())
    }

    /// Drops the entries up to `upto` (inclusive), then rewrites the file atomically.
    fn purge_log(&self, upto: LogId) -> io::Result<()> {
        let mut writer = lock(&self.writer);
        let kept: Vec<LogEntry> = {
            let mut log = lock(&self.log);
            if log.purged.is_some_and(|p| p.index >= upto.index) {
                return Ok(());
            }
            log.entries = log.entries.split_off(&(upto.index + 1));
            log.purged = Some(upto);
            log.entries.values().cloned().collect()
        };
        let mut buf = Vec::new();
        let mut offsets = BTreeMap::new();
        encode_record(&mut buf, &LogRecord::Purged(upto))?;
        for entry in kept {
            offsets.insert(entry.log_id.index, buf.len() as u64);
            encode_record(&mut buf, &LogRecord::Entry(entry))?;
        }
        let tmp = writer.path.with_extension("log.tmp");
        {
            let file = File::create(&tmp)
                .map_err(|e| io_context(format!("create {}", tmp.display()), e))?;
            file.write_all_at(&buf, 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_context(format!("write {}", tmp.display()), e))?;
        }
        fs::rename(&tmp, &writer.path)
            .map_err(|e| io_context(format!("rename to {}", writer.path.display()), e))?;
        sync_dir(&self.dir)?;
        writer.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&writer.path)
            .map_err(|e| io_context(format!("reopen {}", writer.path.display()), e))?;
        writer.offsets = offsets;
        writer.end = buf.len() as u64;
        Ok(())
    }

    /// Makes `snapshot` the current one (file, then memory), unless a newer one already is.
    fn save_snapshot(&self, snapshot: StoredSnapshot) -> io::Result<()> {
        let _writing = lock(&self.snapshot_writer);
        if lock(&self.snapshot)
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > snapshot.meta.last_log_id)
        {
            return Ok(());
        }
        let payload = serde_json::to_vec(&snapshot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.dir, SNAPSHOT_FILE, &payload, true)?;
        *lock(&self.snapshot) = Some(snapshot);
        Ok(())
    }
}

impl Store {
    /// Opens (creating if missing) the store in `dir`, restoring `machine` from the snapshot.
    pub(crate) fn open(dir: &Path, mut machine: Box<dyn StateMachine>) -> io::Result<Store> {
        fs::create_dir_all(dir).map_err(|e| io_context(format!("create {}", dir.display()), e))?;
        let lock_file = lock_dir(dir)?;

        let vote: Option<Vote<u64>> = match read_single(dir, VOTE_FILE)? {
            Some(payload) => Some(
                serde_json::from_slice(&payload)
                    .map_err(|e| invalid_data(&dir.join(VOTE_FILE), e))?,
            ),
            None => None,
        };

        let snapshot: Option<StoredSnapshot> = match read_single(dir, SNAPSHOT_FILE)? {
            Some(payload) => Some(
                serde_json::from_slice(&payload)
                    .map_err(|e| invalid_data(&dir.join(SNAPSHOT_FILE), e))?,
            ),
            None => None,
        };
        let (last_applied, last_membership) = match &snapshot {
            Some(snapshot) => {
                machine.restore(&snapshot.data).map_err(|reason| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "restoring the state machine from {}: {reason}",
                            dir.join(SNAPSHOT_FILE).display()
                        ),
                    )
                })?;
                (
                    snapshot.meta.last_log_id,
                    snapshot.meta.last_membership.clone(),
                )
            }
            None => (None, Membership::default()),
        };
        let applied = Applied {
            machine,
            last_applied,
            last_membership,
        };

        let (log, writer) = open_log(dir.join(LOG_FILE))?;

        // The committed-index hint (see the module doc).
        let hint = read_single(dir, COMMITTED_FILE).and_then(|payload| match payload {
            Some(payload) => serde_json::from_slice::<Option<LogId>>(&payload)
                .map_err(|e| invalid_data(&dir.join(COMMITTED_FILE), e)),
            None => Ok(None),
        });
        let committed = hint.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring an unreadable committed-index hint");
            None
        });
        // Entries up to the committed index were fsynced here before anyone was told, so a
        // log that ends below it lost acknowledged data (not a torn append). Raft cannot
        // tolerate a member forgetting what it acknowledged (openraft's leader treats it as a
        // bug), so refuse to start rather than rejoin with it.
        let known = log.last_log_id().max(applied.last_applied);
        if let Some(c) = committed {
            if known.map_or(true, |k| k.index < c.index) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: the raft log ends at index {:?} but index {} was committed on this node: \
                         acknowledged entries were lost; remove this node from the quorum, empty \
                         the directory and add the node back",
                        dir.display(),
                        known.map(|k| k.index),
                        c.index
                    ),
                ));
            }
        }

        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                _lock: lock_file,
                log: Mutex::new(log),
                writer: Mutex::new(writer),
                machine: Mutex::new(applied),
                snapshot: Mutex::new(snapshot),
                snapshot_writer: Mutex::new(()),
                vote: Mutex::new(vote),
                committed: Mutex::new(committed),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    /// Runs a file operation on the blocking pool.
    async fn blocking<T, F>(
        &self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
        op: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || op(&inner)).await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StorageError::from_io_error(subject, verb, e)),
            Err(e) => Err(StorageIOError::new(subject, verb, AnyError::new(&e)).into()),
        }
    }

    /// Reads `raft.log` in `dir` without modifying it: the purged index, the first and last
    /// entry indexes and the file length (for tests).
    #[cfg(test)]
    pub(crate) fn inspect_log(dir: &Path) -> io::Result<LogSummary> {
        let bytes = fs::read(dir.join(LOG_FILE))?;
        let (purged, entries, valid, _) = parse_log(&bytes);
        Ok(LogSummary {
            purged: purged.map(|p| p.index),
            first: entries.keys().next().copied(),
            last: entries.keys().next_back().copied(),
            valid_len: valid as u64,
            file_len: bytes.len() as u64,
        })
    }

    /// Path of `raft.log` in `dir` (for tests).
    #[cfg(test)]
    pub(crate) fn log_path(dir: &Path) -> PathBuf {
        dir.join(LOG_FILE)
    }

    /// Path of the snapshot file in `dir` (for tests).
    #[cfg(test)]
    pub(crate) fn snapshot_path(dir: &Path) -> PathBuf {
        dir.join(SNAPSHOT_FILE)
    }
}

impl RaftLogReader<TypeConfig> for Store {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let log = lock(&self.inner.log);
        Ok(log
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Store {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, last_membership) = {
            let applied = lock(&self.inner.machine);
            (
                applied.machine.snapshot(),
                applied.last_applied,
                applied.last_membership.clone(),
            )
        };
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(log_id) => format!("{}-{}-{seq}", log_id.leader_id, log_id.index),
            None => format!("empty-{seq}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
                snapshot_id,
            },
            data,
        };
        let to_save = stored.clone();
        self.blocking(
            ErrorSubject::Snapshot(Some(stored.meta.signature())),
            ErrorVerb::Write,
            move |inner| inner.save_snapshot(to_save),
        )
        .await?;
        tracing::debug!(meta = %stored.meta, bytes = stored.data.len(), "built a raft snapshot");
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStorage<TypeConfig> for Store {
    type LogReader = Store;
    type SnapshotBuilder = Store;

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(ErrorSubject::Vote, ErrorVerb::Write, move |inner| {
            let payload = serde_json::to_vec(&vote)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            write_atomic(&inner.dir, VOTE_FILE, &payload, true)?;
            *lock(&inner.vote) = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(*lock(&self.inner.vote))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Store, ErrorVerb::Write, move |inner| {
            let payload = serde_json::to_vec(&committed)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            write_atomic(&inner.dir, COMMITTED_FILE, &payload, false)?;
            *lock(&inner.committed) = committed;
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(*lock(&self.inner.committed))
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = lock(&self.inner.log);
        Ok(LogState {
            last_purged_log_id: log.purged,
            last_log_id: log.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Store {
        self.clone()
    }

    async fn append_to_log<I>(&mut self, entries: I) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        self.blocking(ErrorSubject::Logs, ErrorVerb::Write, move |inner| {
            inner.append_log(entries)
        })
        .await
    }

    async fn delete_conflict_logs_since(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |inner| {
            let mut writer = lock(&inner.writer);
            inner.truncate_log(&mut writer, log_id.index)
        })
        .await
    }

    async fn purge_logs_upto(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |inner| {
            inner.purge_log(log_id)
        })
        .await
    }

    async fn last_applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let applied = lock(&self.inner.machine);
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply_to_state_machine(
        &mut self,
        entries: &[LogEntry],
    ) -> Result<Vec<Reply>, StorageError> {
        let mut applied = lock(&self.inner.machine);
        let mut replies = Vec::with_capacity(entries.len());
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let reply = match &entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(command) => {
                    applied.machine.apply(entry.log_id.index, &command.0)
                }
                EntryPayload::Membership(membership) => {
                    applied.last_membership =
                        Membership::new(Some(entry.log_id), membership.clone());
                    Vec::new()
                }
            };
            replies.push(Reply(reply));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Store {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let signature = meta.signature();
        let to_save = stored.clone();
        self.blocking(
            ErrorSubject::Snapshot(Some(signature.clone())),
            ErrorVerb::Write,
            move |inner| inner.save_snapshot(to_save),
        )
        .await?;
        let mut applied = lock(&self.inner.machine);
        applied.machine.restore(&stored.data).map_err(|reason| {
            StorageIOError::new(
                ErrorSubject::Snapshot(Some(signature)),
                ErrorVerb::Read,
                AnyError::error(format!("the state machine rejected the snapshot: {reason}")),
            )
        })?;
        applied.last_applied = stored.meta.last_log_id;
        applied.last_membership = stored.meta.last_membership.clone();
        tracing::info!(meta = %stored.meta, bytes = stored.data.len(), "installed a raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = lock(&self.inner.snapshot);
        Ok(current.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
