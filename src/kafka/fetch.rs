//! Fetch (key 1), versions 4..=18. Reads whole batches from the owning shards and returns
//! them untouched. Long polls (`max_wait_ms`/`min_bytes`) are woken by appends, not timers.
//! Byte limits follow KIP-74: the first batch of the first non-empty partition is returned
//! even when it exceeds `max_bytes` or `partition_max_bytes`; later partitions only add
//! whole batches that fit. No fetch sessions are created (session id 0 means "full fetches").

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};

use super::error::{shard_code, storage_code, Code};
use super::{frame, Reply};
use crate::broker::BrokerContext;
use crate::log::ReadResult;
use crate::shard::{PartitionSnapshot, ShardState, StorageError};

/// Supported versions.
pub const VERSIONS: (i16, i16) = (4, 18);

type ReadReply = (Result<ReadResult, StorageError>, Option<PartitionSnapshot>);

enum Slot {
    Queued(oneshot::Receiver<ReadReply>),
    Failed(Code),
}

/// Handles a Fetch request, waiting up to `max_wait_ms` for `min_bytes`.
pub async fn handle(ctx: Arc<BrokerContext>, req: FetchRequest, version: i16) -> FetchResponse {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let wake = Arc::new(Notify::new());
    loop {
        let (resp, bytes, errors) = read_all(&ctx, &req, version, Some(&wake)).await;
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes.max(1) || errors || expired || wait.is_zero() {
            return resp;
        }
        if tokio::time::timeout_at(deadline, wake.notified())
            .await
            .is_err()
        {
            // Deadline: answer with what there is now (an append may have raced the timer).
            return read_all(&ctx, &req, version, None).await.0;
        }
    }
}

/// One pass over every requested partition. Returns the response, the record bytes in it and
/// whether any partition answered an error (which ends a long poll at once, as in Kafka).
async fn read_all(
    ctx: &Arc<BrokerContext>,
    req: &FetchRequest,
    version: i16,
    wake: Option<&Arc<Notify>>,
) -> (FetchResponse, usize, bool) {
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
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
                Some(m) => {
                    let topic = m.name.clone();
                    let (index, offset) = (p.partition, p.fetch_offset);
                    let limit = (p.partition_max_bytes.max(0) as usize).min(max_bytes);
                    let wake = wake.cloned();
                    let job = move |s: &mut ShardState| -> ReadReply {
                        let r = s.read(&topic, index, offset, limit, wake.as_ref());
                        let snap = s.snapshot(&topic, index).ok();
                        (r, snap)
                    };
                    match ctx.shard(&m.name, index).submit(job).await {
                        Ok(rx) => Slot::Queued(rx),
                        Err(e) => Slot::Failed(shard_code(&e)),
                    }
                }
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
    let mut responses = Vec::with_capacity(topics.len());
    for (name, topic_id, slots) in topics {
        let mut partitions = Vec::with_capacity(slots.len());
        for (index, slot) in slots {
            let mut pd = PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1));
            let reply = match slot {
                Slot::Failed(code) => Err(code),
                Slot::Queued(rx) => rx.await.map_err(|_| Code::NotLeaderOrFollower),
            };
            match reply {
                Err(code) => {
                    pd.error_code = code.code();
                    errors = true;
                }
                Ok((result, snap)) => {
                    if let Some(s) = &snap {
                        pd.high_watermark = s.high_watermark;
                        pd.last_stable_offset = s.high_watermark;
                        pd.log_start_offset = s.log_start_offset;
                    }
                    match result {
                        Ok(read) => {
                            pd.high_watermark = read.high_watermark;
                            pd.last_stable_offset = read.high_watermark;
                            pd.log_start_offset = read.log_start_offset;
                            let remaining = max_bytes.saturating_sub(total);
                            let records = if total == 0 {
                                read.records
                            } else {
                                whole_batches_within(read.records, remaining)
                            };
                            total += records.len();
                            pd.records = Some(records);
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
    let resp = FetchResponse::default().with_responses(responses);
    (resp, total, errors)
}

/// Encodes a fetch response as chunks: the record sets of at least [`frame::MIN_SPLICE`]
/// bytes are referenced (they go from the pread buffer to the socket with one vectored write),
/// everything else is encoded as usual, length prefixes included.
pub fn reply(correlation_id: i32, version: i16, resp: &FetchResponse) -> Reply {
    let splice: Vec<Bytes> = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.as_ref())
        .filter(|r| r.len() >= frame::MIN_SPLICE)
        .cloned()
        .collect();
    if splice.is_empty() {
        return super::encode(correlation_id, version, resp);
    }
    match frame::encode_chunked(correlation_id, version, resp, splice) {
        Ok(chunks) => Reply::Vectored(chunks),
        Err(e) => {
            tracing::error!(error = %e, version, "cannot encode fetch response; closing the connection");
            Reply::Close
        }
    }
}

/// The longest prefix of `records` made of whole batches and at most `limit` bytes long.
fn whole_batches_within(records: Bytes, limit: usize) -> Bytes {
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
        assert_eq!(whole_batches_within(all.clone(), 99).len(), 0);
        assert_eq!(whole_batches_within(all.clone(), 100).len(), 100);
        assert_eq!(whole_batches_within(all.clone(), 149).len(), 100);
        assert_eq!(whole_batches_within(all, 1000).len(), 150);
    }
}
