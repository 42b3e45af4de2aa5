//! GetRecords: reads whole batches from the iterator's offset through the owning shard (or
//! the partition's leader in a cluster),
//! decodes their records (compressed batches of Kafka producers too) up to Limit (≤ 10 000)
//! records or 10 MiB, and answers them with the next iterator. A shard closed by resharding
//! answers no NextShardIterator once drained, but its ChildShards.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{limit, shard_id, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::iterator::ShardPosition;
use crate::kinesis::model::{
    Blob, ChildShard, GetRecordsInput, GetRecordsOutput, HashKeyRange, Record, Timestamp,
};
use crate::kinesis::records::{decode_records, StoredRecord};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;
use crate::log::ReadResult;

/// Bytes of data one GetRecords returns at most.
pub const MAX_BYTES: usize = 10 << 20;

/// The PartitionKey of a record: its key as UTF-8; a stand-in for keys Kinesis could not
/// have written (`kafka:null` for a null key, `kafka:base64:<key>` for one that is not UTF-8).
fn partition_key(key: Option<&Bytes>) -> String {
    use base64::Engine;
    match key {
        None => "kafka:null".into(),
        Some(k) if k.is_empty() => "kafka:empty".into(),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => s.to_string(),
            Err(_) => format!(
                "kafka:base64:{}",
                base64::engine::general_purpose::STANDARD.encode(k)
            ),
        },
    }
}

/// What a read of a shard found.
pub(crate) struct ShardRead {
    /// The records, in offset order.
    pub records: Vec<StoredRecord>,
    /// The offset to read next.
    pub next_offset: i64,
    /// The partition's log end offset.
    pub high_watermark: i64,
    /// Bytes of keys and data in `records`.
    pub bytes: usize,
}

/// Reads `partition` from `offset` (moved up to the log start if retention removed data) up
/// to `max_records` / `max_bytes`, from this node's shard or the partition's leader. With
/// `wake`, a read that finds nothing registers it to be notified by the next append (a
/// forwarded read long-polls the leader instead, see [`Kinesis::read_partition`]).
pub(crate) async fn read_shard(
    k: &Kinesis,
    stream: &Stream,
    partition: i32,
    mut offset: i64,
    max_records: usize,
    max_bytes: usize,
    wake: Option<&Arc<Notify>>,
) -> Result<ShardRead, KinesisError> {
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut bytes = 0usize;
    let mut high_watermark;
    loop {
        let budget = max_bytes.saturating_sub(bytes).max(1);
        let (from, read): (i64, ReadResult) = k
            .read_partition(&stream.topic, partition, offset, budget, wake)
            .await?;
        offset = from;
        high_watermark = read.high_watermark;
        if read.records.is_empty() {
            break;
        }
        let decoded = decode_records(
            &read.records,
            offset,
            max_records,
            max_bytes,
            &mut bytes,
            &mut out,
        )
        .map_err(KinesisError::Internal)?;
        if decoded.next_offset <= offset {
            break;
        }
        offset = decoded.next_offset;
        if decoded.limited || offset >= high_watermark {
            break;
        }
    }
    Ok(ShardRead {
        records: out,
        next_offset: offset,
        high_watermark,
        bytes,
    })
}

/// The Record models of stored records of `partition`, a shard created at `shard_created_ms`.
pub(crate) fn record_models(
    partition: i32,
    shard_created_ms: i64,
    records: Vec<StoredRecord>,
) -> Vec<Record> {
    records
        .into_iter()
        .map(|r| Record {
            sequence_number: SequenceNumber::record(
                partition,
                r.offset,
                shard_created_ms,
                r.create_time,
            )
            .encode(),
            approximate_arrival_timestamp: Timestamp(r.timestamp),
            partition_key: partition_key(r.key.as_ref()),
            data: Blob(r.value.unwrap_or_default()),
        })
        .collect()
}

/// How far behind the log end a read is: the age of its last record while records remain.
pub(crate) fn millis_behind(read: &ShardRead, now_ms: i64) -> i64 {
    match read.records.last() {
        Some(last) if read.next_offset < read.high_watermark => (now_ms - last.timestamp).max(0),
        _ => 0,
    }
}

/// The ChildShards of a drained closed shard.
pub(crate) fn child_shards(stream: &Stream, partition: i32) -> Vec<ChildShard> {
    stream
        .meta
        .children_of(partition)
        .into_iter()
        .map(|c| ChildShard {
            shard_id: shard_id(c.partition),
            parent_shards: c
                .parent
                .into_iter()
                .chain(c.adjacent_parent)
                .map(shard_id)
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: c.start.clone(),
                ending_hash_key: c.end.clone(),
            },
        })
        .collect()
}

/// Handles GetRecords.
pub async fn handle(
    k: &Kinesis,
    req: GetRecordsInput,
    caller: &Caller,
) -> Result<GetRecordsOutput, KinesisError> {
    let token = super::required(req.shard_iterator, "shardIterator")?;
    let max_records = limit(req.limit, 10_000, 10_000, "limit")?;
    let now = BrokerContext::now_ms();
    let pos = k.iterators.decode(&token, now, k.config.iterator_ttl_ms)?;
    k.authorize(
        caller,
        "GetRecords",
        crate::auth::Operation::Read,
        &pos.stream,
    )?;
    // As AWS: a stream that is gone (or was recreated) is reported as the iterator's shard.
    let partition = pos.partition;
    let missing = || KinesisError::shard_not_found(&pos.stream, &shard_id(partition));
    let stream = k.stream(&pos.stream).map_err(|e| match e {
        KinesisError::ResourceNotFound(_) => missing(),
        e => e,
    })?;
    if stream.topic.id != pos.topic_id {
        return Err(missing());
    }
    let shard = stream.meta.shard(partition).ok_or_else(missing)?.clone();
    if k.config.enforce_limits && !k.limits.try_read(stream.topic.id, partition) {
        k.ctx.metrics.stream(&pos.stream).read_throttled();
        return Err(super::throttled(&pos.stream, partition));
    }
    let read = read_shard(
        k,
        &stream,
        partition,
        pos.offset,
        max_records,
        MAX_BYTES,
        None,
    )
    .await?;
    if k.config.enforce_limits {
        k.limits.charge_read(stream.topic.id, partition, read.bytes);
    }
    let millis_behind_latest = millis_behind(&read, now);
    k.ctx
        .metrics
        .stream(&pos.stream)
        .get(read.records.len(), read.bytes, millis_behind_latest);
    let drained = shard.closed.is_some() && read.next_offset >= read.high_watermark;
    let (next_shard_iterator, child_shards) = if drained {
        (None, Some(child_shards(&stream, partition)))
    } else {
        let next = k.iterators.encode(&ShardPosition {
            offset: read.next_offset,
            created_ms: now,
            ..pos
        });
        (Some(next), None)
    };
    Ok(GetRecordsOutput {
        records: record_models(partition, shard.created_ms, read.records),
        next_shard_iterator,
        millis_behind_latest,
        child_shards,
    })
}

/// GetRecords' answer in JSON, byte for byte what `serde_json` writes for it, with each
/// record's data base64-encoded straight into the answer: no string per record and no scan for
/// characters to escape (base64 has none). The data is most of the answer and this is the read
/// path's hottest loop.
pub(crate) fn encode_json(out: &GetRecordsOutput) -> Result<Bytes, KinesisError> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    /// The members after Records, as the derived serialisation writes them.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Rest<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        next_shard_iterator: Option<&'a str>,
        millis_behind_latest: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        child_shards: Option<&'a [ChildShard]>,
    }
    let failed = |e: &dyn std::fmt::Display| KinesisError::Internal(e.to_string());
    let data: usize = out.records.iter().map(|r| r.data.0.len()).sum();
    let mut buf = Vec::with_capacity(data / 3 * 4 + out.records.len() * 192 + 512);
    buf.extend_from_slice(b"{\"Records\":[");
    for (i, r) in out.records.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"SequenceNumber\":");
        serde_json::to_writer(&mut buf, &r.sequence_number).map_err(|e| failed(&e))?;
        buf.extend_from_slice(b",\"ApproximateArrivalTimestamp\":");
        serde_json::to_writer(&mut buf, &r.approximate_arrival_timestamp)
            .map_err(|e| failed(&e))?;
        buf.extend_from_slice(b",\"Data\":\"");
        let start = buf.len();
        let len = base64::encoded_len(r.data.0.len(), true).ok_or_else(|| failed(&"data size"))?;
        buf.resize(start + len, 0);
        let written = STANDARD
            .encode_slice(&r.data.0, &mut buf[start..])
            .map_err(|e| failed(&e))?;
        buf.truncate(start + written);
        buf.extend_from_slice(b"\",\"PartitionKey\":");
        serde_json::to_writer(&mut buf, &r.partition_key).map_err(|e| failed(&e))?;
        buf.push(b'}');
    }
    buf.push(b']');
    let rest = serde_json::to_vec(&Rest {
        next_shard_iterator: out.next_shard_iterator.as_deref(),
        millis_behind_latest: out.millis_behind_latest,
        child_shards: out.child_shards.as_deref(),
    })
    .map_err(|e| failed(&e))?;
    // `{"NextShardIterator":…,"MillisBehindLatest":…}` continues the object: `,` for its `{`.
    buf.push(b',');
    buf.extend_from_slice(rest.get(1..).unwrap_or_default());
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written JSON answer is what serde_json writes for it, byte for byte.
    #[test]
    fn json_answer_is_what_serde_writes() {
        let record = |seq: &str, ms: i64, data: &[u8], key: &str| Record {
            sequence_number: seq.to_string(),
            approximate_arrival_timestamp: Timestamp(ms),
            data: Blob(Bytes::copy_from_slice(data)),
            partition_key: key.to_string(),
        };
        let outputs = [
            GetRecordsOutput {
                records: Vec::new(),
                next_shard_iterator: Some("AAAA+/==".into()),
                millis_behind_latest: 0,
                child_shards: None,
            },
            GetRecordsOutput {
                records: vec![
                    record(
                        "49680898238223428291291118256736025936030311623725940738",
                        1_796_579_341_663,
                        b"hello",
                        "k",
                    ),
                    record("1", 0, b"", "quote\" back\\ \u{e9} \u{1}"),
                    record("2", 1_000, &[0xff, 0, 1, 2], ""),
                    record("3", -5, &[7; 1000], "kafka:null"),
                ],
                next_shard_iterator: None,
                millis_behind_latest: 12_345,
                child_shards: Some(vec![ChildShard {
                    shard_id: "shardId-000000000002".into(),
                    parent_shards: vec!["shardId-000000000000".into()],
                    hash_key_range: HashKeyRange {
                        starting_hash_key: "0".into(),
                        ending_hash_key: "340282366920938463463374607431768211455".into(),
                    },
                }]),
            },
        ];
        for out in &outputs {
            let ours = encode_json(out).expect("encodable");
            let serde = serde_json::to_vec(out).expect("encodable");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde)
            );
        }
    }

    #[test]
    fn partition_key_stand_ins() {
        assert_eq!(
            partition_key(Some(&Bytes::from_static(b"user-1"))),
            "user-1"
        );
        assert_eq!(partition_key(None), "kafka:null");
        assert_eq!(
            partition_key(Some(&Bytes::from_static(&[0xff]))),
            "kafka:base64:/w=="
        );
    }
}
