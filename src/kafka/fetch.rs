//! Fetch (key 1), versions 4..=18. Reads whole batches from the owning shards and returns
//! them untouched. Long polls (`max_wait_ms`/`min_bytes`) are woken by appends, not timers.
//! A read-committed consumer (`isolation_level` 1) reads below the last stable offset and gets
//! the aborted transactions overlapping the batches returned, from the partition's
//! aborted-transaction index (batches are not decoded); every response reports the last
//! stable offset.
//! Byte limits follow KIP-74: the first batch of the first non-empty partition is returned
//! even when it exceeds `max_bytes` or `partition_max_bytes`; later partitions only add
//! whole batches that fit. No fetch sessions are created (session id 0 means "full fetches").
//!
//! With `fetch.sendfile.enable`, on plaintext connections record sets of at least
//! [`FILE_MIN_BYTES`] are not read: they stay
//! in the segment files as regions ([`FileRecords`]), stand in the response as placeholders of
//! their length ([`frame::placeholder`]), and the connection writer sends them with
//! `sendfile(2)`. Smaller ones, and all of them on TLS connections, are read (`pread`) and
//! referenced by the response as before.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};

use super::error::{shard_code, storage_code, Code};
use super::frame::{self, Splice};
use super::Reply;
use crate::context::BrokerContext;
use crate::log::{AbortedTxn, FileRecords, ReadResult, RecordSet};
use crate::shard::{IsolationLevel, PartitionSnapshot, ShardState, StorageError};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (4, 18);

/// Record sets at least this long are sent from the segment files (`sendfile`) on plaintext
/// connections; smaller ones are read into memory (a system call per region costs more than
/// copying a few KiB).
pub const FILE_MIN_BYTES: usize = 64 * 1024;

/// A partition's read (with, for a read-committed consumer, the aborted transactions it
/// overlaps) and its offsets after the read.
type ReadReply = (
    Result<(ReadResult<RecordSet>, Option<Vec<AbortedTxn>>), StorageError>,
    Option<PartitionSnapshot>,
);

/// A fetch response and the file records its placeholders stand for, in encoding order.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The response; record sets left in files are [`frame::placeholder`]s.
    pub response: FetchResponse,
    files: Vec<FileRecords>,
}

/// A replica move's throttle on a follower's fetch of one partition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Throttled {
    /// Not throttled.
    No,
    /// Throttled, within the rate: the bytes sent are charged.
    Charge,
    /// Throttled, over the rate: no records this time (the position is still recorded).
    Hold,
}

enum Slot {
    Queued(oneshot::Receiver<ReadReply>, Throttled),
    Failed(Code),
    /// KIP-392: read from this replica in the consumer's rack instead.
    Preferred(i32),
    /// Another broker leads the partition (cluster).
    NotLeader(crate::context::NotLeader),
}

/// Handles a Fetch request, waiting up to `max_wait_ms` for `min_bytes`. With `sendfile`, large
/// record sets are left in the segment files (see the module documentation).
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: FetchRequest,
    version: i16,
    sendfile: bool,
    listener: &str,
) -> Fetched {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let wake = Arc::new(Notify::new());
    let file_min = if sendfile { FILE_MIN_BYTES } else { usize::MAX };
    // Appends wake a fetch that may wait, until it has `min_bytes`.
    let waker = (!wait.is_zero()).then_some(&wake);
    loop {
        let (resp, bytes, errors) = read_all(&ctx, &req, version, file_min, waker, listener).await;
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes.max(1) || errors || expired || wait.is_zero() {
            return resp;
        }
        if tokio::time::timeout_at(deadline, wake.notified())
            .await
            .is_err()
        {
            // Deadline: answer with what there is now (an append may have raced the timer).
            return read_all(&ctx, &req, version, file_min, None, listener)
                .await
                .0;
        }
    }
}

/// One pass over every requested partition. Returns the response, the record bytes in it and
/// whether any partition answered an error (which ends a long poll at once, as in Kafka).
async fn read_all(
    ctx: &Arc<BrokerContext>,
    req: &FetchRequest,
    version: i16,
    file_min: usize,
    wake: Option<&Arc<Notify>>,
    listener: &str,
) -> (Fetched, usize, bool) {
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    // A follower's fetch (Kafka's replica id; in ReplicaState from v15, KIP-903) reads up to
    // the log end and reports its position to the leader.
    let replica = if version >= 15 {
        (req.replica_state.replica_id.0 >= 0).then_some((
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        ))
    } else {
        (req.replica_id.0 >= 0).then_some((req.replica_id.0, -1))
    };
    let isolation = IsolationLevel::from_kafka(req.isolation_level);
    // Queue every read first so the shards work in parallel, then assemble in request order.
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let meta = if version >= 13 {
            ctx.catalog.get_by_id(&t.topic_id)
        } else {
            ctx.catalog.get(t.topic.as_str())
        };
        let mut slots = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let slot = match &meta {
                None if version >= 13 => Slot::Failed(Code::UnknownTopicId),
                None => Slot::Failed(Code::UnknownTopicOrPartition),
                Some(m) if p.partition < 0 || p.partition >= m.partitions => {
                    Slot::Failed(Code::UnknownTopicOrPartition)
                }
                Some(m) => match (
                    ctx.not_leader(&m.name, p.partition, listener),
                    rack_aware(replica, version)
                        .then(|| ctx.preferred_read_replica(&m.name, p.partition, &req.rack_id))
                        .flatten(),
                ) {
                    // Followers serve consumers that can be sent to them (v11+, KIP-392).
                    (Some(nl), _)
                        if replica.is_none()
                            && !(version >= 11 && ctx.is_replica(&m.name, p.partition)) =>
                    {
                        Slot::NotLeader(nl)
                    }
                    (None, Some(id)) => Slot::Preferred(id),
                    _ => {
                        let throttled = match replica {
                            Some((id, _)) if ctx.leader_throttled(&m.name, p.partition, id) => {
                                if ctx.replication_throttles.leader.permits(&ctx.config) {
                                    Throttled::Charge
                                } else {
                                    Throttled::Hold
                                }
                            }
                            _ => Throttled::No,
                        };
                        let topic = m.name.clone();
                        let (index, offset) = (p.partition, p.fetch_offset);
                        let epoch = p.current_leader_epoch;
                        let limit = (p.partition_max_bytes.max(0) as usize).min(max_bytes);
                        let wake = wake.cloned();
                        let job = move |s: &mut ShardState| -> ReadReply {
                            let r = match (replica, isolation) {
                                (Some((id, broker_epoch)), _) => s
                                    .replica_fetch(
                                        &topic,
                                        index,
                                        id,
                                        broker_epoch,
                                        epoch,
                                        offset,
                                        limit,
                                        file_min,
                                        wake.as_ref(),
                                    )
                                    .map(|r| (r, None)),
                                (None, IsolationLevel::ReadUncommitted) => s
                                    .check_leader_epoch(&topic, index, epoch)
                                    .and_then(|()| {
                                        s.read_records(
                                            &topic,
                                            index,
                                            offset,
                                            limit,
                                            file_min,
                                            wake.as_ref(),
                                        )
                                    })
                                    .map(|r| (r, None)),
                                (None, IsolationLevel::ReadCommitted) => s
                                    .check_leader_epoch(&topic, index, epoch)
                                    .and_then(|()| {
                                        s.read_committed_records(
                                            &topic,
                                            index,
                                            offset,
                                            limit,
                                            file_min,
                                            wake.as_ref(),
                                        )
                                    })
                                    .map(|(r, aborted)| (r, Some(aborted))),
                            };
                            let snap = s.snapshot(&topic, index).ok();
                            (r, snap)
                        };
                        match ctx.shard(&m.name, index).submit(job).await {
                            Ok(rx) => Slot::Queued(rx, throttled),
                            Err(e) => Slot::Failed(shard_code(&e)),
                        }
                    }
                },
            };
            slots.push((p.partition, slot));
        }
        let name = meta
            .as_ref()
            .map(|m| TopicName(StrBytes::from_string(m.name.to_string())))
            .unwrap_or_else(|| t.topic.clone());
        topics.push((name, t.topic_id, slots));
    }

    let mut total = 0usize;
    let mut errors = false;
    let mut files = Vec::new();
    let mut responses = Vec::with_capacity(topics.len());
    let mut leaders = std::collections::BTreeMap::new();
    for (name, topic_id, slots) in topics {
        let mut partitions = Vec::with_capacity(slots.len());
        for (index, slot) in slots {
            let mut pd = PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1));
            let mut throttled = Throttled::No;
            let reply = match slot {
                Slot::Failed(code) => Err(code),
                Slot::NotLeader(nl) => {
                    pd.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(nl.leader_id))
                        .with_leader_epoch(nl.leader_epoch);
                    if let Some(e) = nl.endpoint {
                        leaders.insert(nl.leader_id, e);
                    }
                    Err(Code::NotLeaderOrFollower)
                }
                Slot::Queued(rx, t) => {
                    throttled = t;
                    rx.await.map_err(|_| Code::NotLeaderOrFollower)
                }
                Slot::Preferred(id) => {
                    pd.preferred_read_replica = BrokerId(id);
                    partitions.push(pd);
                    continue;
                }
            };
            match reply {
                Err(code) => {
                    pd.error_code = code.code();
                    errors = true;
                }
                Ok((result, snap)) => {
                    if let Some(s) = &snap {
                        pd.high_watermark = s.high_watermark;
                        pd.last_stable_offset = s.last_stable_offset;
                        pd.log_start_offset = s.log_start_offset;
                    }
                    match result {
                        Ok((mut read, aborted)) => {
                            pd.high_watermark = read.high_watermark;
                            pd.last_stable_offset = snap
                                .as_ref()
                                .map_or(read.high_watermark, |s| s.last_stable_offset);
                            pd.log_start_offset = read.log_start_offset;
                            pd.aborted_transactions = aborted.map(|list| {
                                list.into_iter()
                                    .map(|t| {
                                        AbortedTransaction::default()
                                            .with_producer_id(t.producer_id.into())
                                            .with_first_offset(t.first_offset)
                                    })
                                    .collect()
                            });
                            match throttled {
                                Throttled::Hold => read.records = RecordSet::default(),
                                Throttled::Charge => ctx
                                    .replication_throttles
                                    .leader
                                    .record(&ctx.config, read.records.len()),
                                Throttled::No => {}
                            }
                            let remaining = max_bytes.saturating_sub(total);
                            let trimmed = if total == 0 {
                                Ok(read.records)
                            } else {
                                whole_batches_within(read.records, remaining)
                            };
                            match trimmed.and_then(|r| into_message(r, &mut files)) {
                                Ok(records) => {
                                    total += records.len();
                                    if records.is_empty() {
                                        if let Some(list) = &mut pd.aborted_transactions {
                                            // Trimmed to nothing: no transaction overlaps.
                                            list.clear();
                                        }
                                    }
                                    pd.records = Some(records);
                                }

                                Err(e) => {
                                    pd.error_code = storage_code(&e).code();
                                    errors = true;
                                }
                            }
                        }
                        Err(e) => {
                            pd.error_code = storage_code(&e).code();
                            errors = true;
                        }
                    }
                }
            }
            partitions.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        );
    }
    // KIP-951: where the partitions that moved are led now.
    let node_endpoints = leaders
        .into_iter()
        .map(|(id, (host, port))| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
        })
        .collect();
    let response = FetchResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints);
    (Fetched { response, files }, total, errors)
}

/// Whether a fetch may be sent to another replica (a consumer's, v11+: KIP-392).
fn rack_aware(replica: Option<(i32, i64)>, version: i16) -> bool {
    replica.is_none() && version >= 11
}

/// The bytes a record set puts in the response message: its own, or for file records a
/// placeholder of their length (the records then go to `files`). File records too short to be
/// worth a region, or too long for a placeholder, are read.
fn into_message(records: RecordSet, files: &mut Vec<FileRecords>) -> Result<Bytes, StorageError> {
    match records {
        RecordSet::Bytes(b) => Ok(b),
        RecordSet::File(f) => {
            let placeholder = if f.len() >= frame::MIN_SPLICE {
                frame::placeholder(f.len())
            } else {
                None
            };
            match placeholder {
                Some(p) => {
                    files.push(f);
                    Ok(p)
                }
                None => Ok(f.read_all()?),
            }
        }
    }
}

/// Encodes a fetch response as chunks: the record sets of at least [`frame::MIN_SPLICE`]
/// bytes are referenced (they go from the pread buffer to the socket with one vectored write),
/// file records are spliced in as file chunks (`sendfile`), everything else is encoded as
/// usual, length prefixes included.
pub fn reply(correlation_id: i32, version: i16, fetched: Fetched) -> Reply {
    let Fetched { response, files } = fetched;
    let mut files = files.into_iter();
    let mut splice = Vec::new();
    for records in response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.as_ref())
    {
        if frame::is_placeholder(records) {
            match files.next() {
                Some(f) if f.len() == records.len() => splice.push(Splice::File {
                    placeholder: records.clone(),
                    records: f,
                }),
                _ => {
                    tracing::error!(
                        version,
                        "fetch placeholders and file records disagree; closing the connection"
                    );
                    return Reply::Close;
                }
            }
        } else if records.len() >= frame::MIN_SPLICE {
            splice.push(Splice::Bytes(records.clone()));
        }
    }
    if splice.is_empty() {
        return super::encode(correlation_id, version, &response);
    }
    match frame::encode_chunked(correlation_id, version, &response, splice) {
        Ok(chunks) => Reply::Vectored(chunks),
        Err(e) => {
            tracing::error!(error = %e, version, "cannot encode fetch response; closing the connection");
            Reply::Close
        }
    }
}

/// The longest prefix of `records` made of whole batches and at most `limit` bytes long.
fn whole_batches_within(records: RecordSet, limit: usize) -> Result<RecordSet, StorageError> {
    Ok(match records {
        RecordSet::Bytes(b) => RecordSet::Bytes(whole_batches_within_bytes(b, limit)),
        RecordSet::File(f) => RecordSet::File(f.whole_batches_within(limit)?),
    })
}

/// [`whole_batches_within`] for bytes in memory.
fn whole_batches_within_bytes(records: Bytes, limit: usize) -> Bytes {
    let mut end = 0usize;
    while end + 12 <= records.len() {
        let len = i32::from_be_bytes([
            records[end + 8],
            records[end + 9],
            records[end + 10],
            records[end + 11],
        ]);
        let next = end + 12 + len.max(0) as usize;
        if len < 0 || next > records.len() || next > limit {
            break;
        }
        end = next;
    }
    records.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b
    }

    #[test]
    fn trims_to_whole_batches() {
        let mut all = batch(100);
        all.extend(batch(50));
        let all = Bytes::from(all);
        assert_eq!(whole_batches_within_bytes(all.clone(), 99).len(), 0);
        assert_eq!(whole_batches_within_bytes(all.clone(), 100).len(), 100);
        assert_eq!(whole_batches_within_bytes(all.clone(), 149).len(), 100);
        assert_eq!(whole_batches_within_bytes(all, 1000).len(), 150);
    }
}
