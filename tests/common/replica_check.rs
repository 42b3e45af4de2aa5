//! The replicas of a partition as the nodes left them on disk, and the checks a replicated log
//! must pass (`tests/replication.rs`).
//!
//! [`read_partition`] reads `<data dir>/<topic>-<partition>/*.log` (segments named by their
//! 20-digit base offset, record batches v2 back to back) straight from the files, after the node
//! stopped or while it runs: a torn batch at the end of the last segment (an append under way)
//! ends the log there and is reported, not failed. Every batch's header is parsed and its CRC-32C
//! checked; [`ReplicaLog::records`] decodes the records with kafka-protocol's
//! `RecordBatchDecoder`.
//!
//! The checks, each collecting its findings into [`Findings`] rather than stopping at the first:
//! - [`check_identical`]: the replicas in the ISR hold the same bytes below the high watermark,
//!   which falls between two batches;
//! - [`check_acknowledged`]: every acknowledged value is in the log exactly once, at the offset
//!   its acknowledgement gave, in the order the acknowledgements arrived; no value is in the
//!   log twice;
//! - [`check_consumed`]: every record a consumer received is in the log at the same offset with
//!   the same value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kafka_protocol::records::RecordBatchDecoder;

/// Bytes of a v2 batch header: baseOffset (8) and batchLength (4), then the `batchLength`
/// bytes counted from partitionLeaderEpoch on, of which the header's rest takes 49.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength.
const LOG_OVERHEAD: usize = 12;
/// Where the CRC-32C's coverage starts (attributes).
const CRC_FROM: usize = 21;

/// The fixed fields of a record batch v2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        let b = b.get(..HEADER_LEN)?;
        let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let i32_at = |i: usize| i32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let i16_at = |i: usize| i16::from_be_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        Some(BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: b[16] as i8,
            crc: u32::from_be_bytes(b[17..21].try_into().expect("4 bytes")),
            attributes: i16_at(21),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            records_count: i32_at(57),
        })
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The batch's size in bytes, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
}

/// A batch of a replica's log.
#[derive(Clone, Debug)]
pub struct Batch {
    pub header: BatchHeader,
    /// Where it starts in [`ReplicaLog::bytes`].
    pub position: usize,
    /// The segment file it was read from.
    pub segment: PathBuf,
}

/// A record, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl LogRecord {
    /// The value as text (lossy), for messages.
    pub fn value_str(&self) -> String {
        self.value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "<null>".into())
    }
}

/// An incomplete batch at the end of the last segment.
#[derive(Clone, Debug)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where the torn batch starts in the segment.
    pub position: usize,
    /// Bytes from there to the end of the file.
    pub bytes: usize,
    pub why: String,
}

/// One node's copy of a partition.
#[derive(Clone, Debug)]
pub struct ReplicaLog {
    pub node: i32,
    pub dir: PathBuf,
    /// Whether the partition directory exists on the node.
    pub present: bool,
    /// The segments' base offsets (from their names) and paths, in order.
    pub segments: Vec<Segment>,
    /// Every whole batch of every segment, back to back.
    pub bytes: Vec<u8>,
    pub batches: Vec<Batch>,
    pub torn_tail: Option<TornTail>,
    /// What is wrong with the files themselves (a bad batch inside the log, offsets going
    /// backwards, a misnamed segment).
    pub problems: Vec<String>,
}

impl ReplicaLog {
    /// The offset after the last batch (0 for an empty log).
    pub fn end_offset(&self) -> i64 {
        self.batches
            .last()
            .map_or(0, |b| b.header.last_offset() + 1)
    }

    /// The bytes of `batch`.
    pub fn batch_bytes(&self, batch: &Batch) -> &[u8] {
        &self.bytes[batch.position..batch.position + batch.header.size()]
    }

    /// Every record of every batch (control records left out), in log order.
    pub fn records(&self) -> Result<Vec<LogRecord>, String> {
        let mut out = Vec::new();
        for b in &self.batches {
            let mut buf = bytes::Bytes::copy_from_slice(self.batch_bytes(b));
            let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
                format!(
                    "node {}: batch at offset {} in {}: {e}",
                    self.node,
                    b.header.base_offset,
                    b.segment.display()
                )
            })?;
            out.extend(
                set.records
                    .into_iter()
                    .filter(|r| !r.control)
                    .map(|r| LogRecord {
                        offset: r.offset,
                        key: r.key.map(|k| k.to_vec()),
                        value: r.value.map(|v| v.to_vec()),
                    }),
            );
        }
        Ok(out)
    }

    /// The records below `high_watermark`.
    pub fn records_below(&self, high_watermark: i64) -> Result<Vec<LogRecord>, String> {
        let mut r = self.records()?;
        r.retain(|r| r.offset < high_watermark);
        Ok(r)
    }
}

/// A segment's base offset (from its name) and path.
type Segment = (i64, PathBuf);

/// The segment files of `dir`, by base offset, and the `.log` files misnamed.
fn segment_files(dir: &Path) -> Result<(Vec<Segment>, Vec<String>), String> {
    let mut segments = Vec::new();
    let mut problems = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        match stem.parse::<i64>() {
            Ok(base) if stem.len() == 20 => segments.push((base, path)),
            _ => problems.push(format!("{}: not a 20-digit segment name", path.display())),
        }
    }
    segments.sort();
    Ok((segments, problems))
}

/// Node `node`'s copy of `topic`-`partition` under `data_dir` (see the module doc). A missing
/// partition directory is an empty log with `present == false`.
pub fn read_partition(
    node: i32,
    data_dir: &Path,
    topic: &str,
    partition: i32,
) -> Result<ReplicaLog, String> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut log = ReplicaLog {
        node,
        dir: dir.clone(),
        present: dir.is_dir(),
        segments: Vec::new(),
        bytes: Vec::new(),
        batches: Vec::new(),
        torn_tail: None,
        problems: Vec::new(),
    };
    if !log.present {
        return Ok(log);
    }
    let (segments, problems) = segment_files(&dir)?;
    log.problems = problems;
    let count = segments.len();
    log.segments = segments.clone();
    for (i, (base, path)) in segments.iter().enumerate() {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let last_segment = i + 1 == count;
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let torn = match BatchHeader::parse(rest) {
                None => Some(format!("{} bytes, less than a batch header", rest.len())),
                Some(h) if (h.batch_length as usize) < HEADER_LEN - LOG_OVERHEAD => {
                    Some(format!("batch length {}", h.batch_length))
                }
                Some(h) if h.size() > rest.len() => Some(format!(
                    "batch of {} bytes with {} left in the file",
                    h.size(),
                    rest.len()
                )),
                Some(h) if h.magic != 2 => Some(format!("magic {}", h.magic)),
                Some(h) if crc32c::crc32c(&rest[CRC_FROM..h.size()]) != h.crc => {
                    Some("CRC-32C mismatch".to_string())
                }
                Some(h) => {
                    if let Some(prev) = log.batches.last() {
                        if h.base_offset <= prev.header.last_offset() {
                            log.problems.push(format!(
                                "node {node}: batch at offset {} in {} after a batch ending at {}",
                                h.base_offset,
                                path.display(),
                                prev.header.last_offset()
                            ));
                        }
                    } else if h.base_offset < *base {
                        log.problems.push(format!(
                            "node {node}: batch at offset {} below its segment's base {base}",
                            h.base_offset
                        ));
                    }
                    let size = h.size();
                    log.batches.push(Batch {
                        header: h,
                        position: log.bytes.len(),
                        segment: path.clone(),
                    });
                    log.bytes.extend_from_slice(&rest[..size]);
                    pos += size;
                    None
                }
            };
            if let Some(why) = torn {
                if last_segment {
                    log.torn_tail = Some(TornTail {
                        segment: path.clone(),
                        position: pos,
                        bytes: rest.len(),
                        why,
                    });
                } else {
                    log.problems.push(format!(
                        "node {node}: {} at position {pos} of {} (not the last segment)",
                        why,
                        path.display()
                    ));
                }
                break;
            }
        }
    }
    Ok(log)
}

/// Examples kept per kind of finding.
const EXAMPLES: usize = 8;

/// What the checks found, by kind: a count and the first few examples of each.
#[derive(Debug, Default)]
pub struct Findings {
    kinds: BTreeMap<String, (usize, Vec<String>)>,
}

impl Findings {
    /// Records one finding of `kind`.
    pub fn push(&mut self, kind: &str, detail: String) {
        let e = self.kinds.entry(kind.to_string()).or_default();
        e.0 += 1;
        if e.1.len() < EXAMPLES {
            e.1.push(detail);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Findings of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        self.kinds.get(kind).map_or(0, |e| e.0)
    }

    /// Every finding.
    pub fn total(&self) -> usize {
        self.kinds.values().map(|e| e.0).sum()
    }

    /// Adds `other`'s findings.
    pub fn merge(&mut self, other: Findings) {
        for (kind, (n, examples)) in other.kinds {
            let e = self.kinds.entry(kind).or_default();
            e.0 += n;
            for x in examples {
                if e.1.len() < EXAMPLES {
                    e.1.push(x);
                }
            }
        }
    }
}

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kinds.is_empty() {
            return write!(f, "no findings");
        }
        let mut out = String::new();
        for (kind, (n, examples)) in &self.kinds {
            let _ = writeln!(out, "{kind}: {n}");
            for x in examples {
                let _ = writeln!(out, "    {x}");
            }
            if *n > examples.len() {
                let _ = writeln!(out, "    … {} more", n - examples.len());
            }
        }
        write!(f, "{}", out.trim_end())
    }
}

/// (a) The replicas (those in the ISR) hold identical bytes below `high_watermark`, which ends
/// a batch on each of them; problems of the files themselves are reported too.
pub fn check_identical(label: &str, replicas: &[&ReplicaLog], high_watermark: i64) -> Findings {
    let mut f = Findings::default();
    let mut prefixes: Vec<(i32, &[u8], &[Batch])> = Vec::new();
    for r in replicas {
        for p in &r.problems {
            f.push("damaged log files", format!("{label}: {p}"));
        }
        let below = r
            .batches
            .iter()
            .take_while(|b| b.header.last_offset() < high_watermark)
            .count();
        let batches = &r.batches[..below];
        if let Some(b) = r.batches.get(below) {
            if b.header.base_offset < high_watermark {
                f.push(
                    "high watermark inside a batch",
                    format!(
                        "{label}: node {}: high watermark {high_watermark} inside the batch of \
                         offsets {}..={}",
                        r.node,
                        b.header.base_offset,
                        b.header.last_offset()
                    ),
                );
            }
        }
        let end = batches.last().map_or(0, |b| b.header.last_offset() + 1);
        if end < high_watermark {
            f.push(
                "replica in the ISR short of the high watermark",
                format!(
                    "{label}: node {} holds offsets up to {end} (directory {}), the high \
                     watermark is {high_watermark}",
                    r.node,
                    if r.present { "present" } else { "missing" }
                ),
            );
        }
        let len = batches.last().map_or(0, |b| b.position + b.header.size());
        prefixes.push((r.node, &r.bytes[..len], batches));
    }
    let Some(&(first_node, first_bytes, first_batches)) = prefixes.first() else {
        return f;
    };
    for &(node, bytes, batches) in &prefixes[1..] {
        if bytes == first_bytes {
            continue;
        }
        // Name the first batch that differs.
        let diverge = first_batches
            .iter()
            .zip(batches)
            .find(|(a, b)| {
                a.header != b.header
                    || first_bytes[a.position..a.position + a.header.size()]
                        != bytes[b.position..b.position + b.header.size()]
            })
            .map(|(a, b)| {
                format!(
                    "first difference: node {first_node}'s batch at offset {} (epoch {}, {} \
                     bytes) vs node {node}'s at offset {} (epoch {}, {} bytes)",
                    a.header.base_offset,
                    a.header.partition_leader_epoch,
                    a.header.size(),
                    b.header.base_offset,
                    b.header.partition_leader_epoch,
                    b.header.size()
                )
            })
            .unwrap_or_else(|| {
                format!(
                    "one is a prefix of the other ({} vs {} batches)",
                    first_batches.len(),
                    batches.len()
                )
            });
        f.push(
            "replicas differ below the high watermark",
            format!(
                "{label}: nodes {first_node} and {node} ({} vs {} bytes below {high_watermark}): \
                 {diverge}",
                first_bytes.len(),
                bytes.len()
            ),
        );
    }
    f
}

/// An acknowledged record: where its acknowledgement said it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    pub offset: i64,
    pub value: String,
}

/// (b) Against one replica's records: every acknowledged value (`acked`, in the order the
/// acknowledgements arrived) is in `log` exactly once, at its acknowledged offset, in that
/// order; and no value is in `log` twice.
pub fn check_acknowledged(label: &str, log: &[LogRecord], acked: &[Acked]) -> Findings {
    let mut f = Findings::default();
    let mut at: HashMap<&[u8], Vec<i64>> = HashMap::new();
    for r in log {
        at.entry(r.value.as_deref().unwrap_or_default())
            .or_default()
            .push(r.offset);
    }
    for (value, offsets) in &at {
        if offsets.len() > 1 {
            f.push(
                "value in the log more than once",
                format!(
                    "{label}: {} at offsets {offsets:?}",
                    String::from_utf8_lossy(value)
                ),
            );
        }
    }
    let mut previous: Option<(i64, &str)> = None;
    for a in acked {
        match at.get(a.value.as_bytes()).map(Vec::as_slice) {
            None | Some([]) => f.push(
                "acknowledged value lost",
                format!("{label}: {} (acknowledged at offset {})", a.value, a.offset),
            ),
            Some(&[o]) => {
                if o != a.offset {
                    f.push(
                        "acknowledged value at another offset",
                        format!(
                            "{label}: {} acknowledged at offset {}, in the log at {o}",
                            a.value, a.offset
                        ),
                    );
                }
                if let Some((p, pv)) = previous {
                    if o <= p {
                        f.push(
                            "acknowledged values out of order",
                            format!(
                                "{label}: {} (offset {o}) acknowledged after {pv} (offset {p})",
                                a.value
                            ),
                        );
                    }
                }
                previous = Some((o, a.value.as_str()));
            }
            // Counted above as a value in the log more than once.
            Some(_) => {}
        }
    }
    f
}

/// A record a consumer received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumed {
    pub offset: i64,
    pub value: String,
}

/// (c) Against one replica's records: every record consumed is in `log` at its offset with its
/// value.
pub fn check_consumed(label: &str, log: &[LogRecord], consumed: &[Consumed]) -> Findings {
    let mut f = Findings::default();
    let by_offset: HashMap<i64, &LogRecord> = log.iter().map(|r| (r.offset, r)).collect();
    let end = log.last().map_or(0, |r| r.offset + 1);
    for c in consumed {
        match by_offset.get(&c.offset) {
            None => f.push(
                "consumed record not in the log",
                format!(
                    "{label}: {} consumed at offset {}, the log has no such offset (end {end})",
                    c.value, c.offset
                ),
            ),
            Some(r) if r.value.as_deref() != Some(c.value.as_bytes()) => f.push(
                "consumed record differs from the log",
                format!(
                    "{label}: offset {}: consumed {}, the log has {}",
                    c.offset,
                    c.value,
                    r.value_str()
                ),
            ),
            Some(_) => {}
        }
    }
    f
}
