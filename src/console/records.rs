//! A page of a partition's records for the console: read from the owning shard below the high
//! watermark (uncommitted transactional records included, control records left out), batches
//! decoded (and decompressed) here, keys, values and header values as base64 so any bytes
//! survive JSON; the browser renders them as text, JSON or hex.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use serde::Serialize;

use super::ConsoleError;
use crate::context::BrokerContext;
use crate::shard::ShardState;

/// The most records one page may hold.
pub(super) const MAX_LIMIT: usize = 500;

/// Bytes read from the log per round trip to the shard.
const READ_BYTES: usize = 1024 * 1024;

/// Round trips per page at most (a page of small records after many control batches).
const MAX_READS: usize = 32;

/// Where a page starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// At this offset (clamped into the log).
    Offset(i64),
    /// At the first record with a timestamp at or after this one (ms).
    Timestamp(i64),
    /// The last `limit` records.
    Latest,
}

/// One record as the console shows it.
#[derive(Debug, Serialize)]
pub(super) struct RecordView {
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderView>,
    transactional: bool,
}

/// A record header; the value as base64.
#[derive(Debug, Serialize)]
pub(super) struct HeaderView {
    key: String,
    value: Option<String>,
}

/// A page of records and where the next one starts.
#[derive(Debug, Serialize)]
pub(super) struct Page {
    partition: i32,
    /// The offset the page was asked from (after resolving a timestamp and clamping).
    start_offset: i64,
    /// Where the next page starts.
    next_offset: i64,
    log_start_offset: i64,
    high_watermark: i64,
    records: Vec<RecordView>,
}

/// Reads up to `limit` records of `topic`/`partition` from `start`.
pub(super) async fn page(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    start: Start,
    limit: usize,
) -> Result<Page, ConsoleError> {
    let shard = ctx.shard(topic, partition);
    let unavailable = |e: String| ConsoleError::Unavailable(format!("partition {partition}: {e}"));
    let t = topic.to_string();
    let snap = shard
        .call(move |s: &mut ShardState| s.snapshot(&t, partition))
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let (low, high) = (snap.log_start_offset, snap.high_watermark);
    let mut from = match start {
        Start::Offset(o) => o,
        Start::Latest => high.saturating_sub(limit as i64),
        Start::Timestamp(ts) => {
            let t = topic.to_string();
            let (offset, _) = shard
                .call(move |s: &mut ShardState| s.list_offset(&t, partition, ts))
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .map_err(|e| unavailable(e.to_string()))?;
            // No record that late: the page is empty, at the end of the log.
            if offset < 0 {
                high
            } else {
                offset
            }
        }
    }
    .clamp(low, high.max(low));
    let start_offset = from;
    let mut records = Vec::new();
    for _ in 0..MAX_READS {
        if records.len() >= limit || from >= high {
            break;
        }
        let t = topic.to_string();
        let read = shard
            .call(move |s: &mut ShardState| s.read(&t, partition, from, READ_BYTES, None))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if read.records.is_empty() {
            break;
        }
        let mut buf: Bytes = read.records;
        let batches = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
            tracing::warn!(topic, partition, offset = from, error = %e, "console cannot decode a batch");
            unavailable(format!("cannot decode the batch at offset {from}: {e}"))
        })?;
        let mut next = from;
        for r in batches.into_iter().flat_map(|b| b.records) {
            next = next.max(r.offset + 1);
            if r.offset < from || r.control || records.len() >= limit {
                continue;
            }
            records.push(view(r));
        }
        if next <= from {
            break;
        }
        from = next;
    }
    let next_offset = records.last().map_or(from, |r| r.offset + 1);
    Ok(Page {
        partition,
        start_offset,
        next_offset,
        log_start_offset: low,
        high_watermark: high,
        records,
    })
}

fn view(r: kafka_protocol::records::Record) -> RecordView {
    RecordView {
        offset: r.offset,
        timestamp: r.timestamp,
        timestamp_type: match r.timestamp_type {
            kafka_protocol::records::TimestampType::Creation => "CreateTime",
            kafka_protocol::records::TimestampType::LogAppend => "LogAppendTime",
        },
        key: r.key.map(|k| B64.encode(k)),
        value: r.value.map(|v| B64.encode(v)),
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| HeaderView {
                key: k.to_string(),
                value: v.map(|v| B64.encode(v)),
            })
            .collect(),
        transactional: r.transactional,
    }
}
