//! Kinesis records in the log: how PutRecord(s) writes them and how GetRecords reads any batch
//! back, Kafka producers' compressed batches included.
//!
//! A Kinesis record is stored as a Kafka record: key = the partition key's UTF-8 bytes, value =
//! the data, timestamp = the arrival time, and, when the producer gave an explicit hash key, a
//! header `kinesis.explicit-hash-key` with its decimal value.

use bytes::{Bytes, BytesMut};

use crate::log::batch::{self, BatchBuilder};

/// The header holding a record's ExplicitHashKey.
pub const EXPLICIT_HASH_KEY_HEADER: &[u8] = b"kinesis.explicit-hash-key";

/// A record to append.
pub struct NewRecord<'a> {
    /// PartitionKey.
    pub partition_key: &'a str,
    /// Data.
    pub data: &'a [u8],
    /// ExplicitHashKey as sent.
    pub explicit_hash_key: Option<&'a str>,
}

/// Builds one uncompressed batch of `records`, all stamped `now_ms`.
pub fn build_batch(records: &[NewRecord<'_>], now_ms: i64) -> BytesMut {
    let mut b = BatchBuilder::new(now_ms);
    for r in records {
        match r.explicit_hash_key {
            Some(h) => b.record_with_headers(
                Some(r.partition_key.as_bytes()),
                Some(r.data),
                now_ms,
                &[(EXPLICIT_HASH_KEY_HEADER, Some(h.as_bytes()))],
            ),
            None => b.record(Some(r.partition_key.as_bytes()), Some(r.data), now_ms),
        };
    }
    b.build()
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (CreateTime, or the batch's LogAppendTime).
    pub timestamp: i64,
    /// Its CreateTime (what PutRecord stamped it with, even under LogAppendTime): the time in
    /// its sequence number, so that PutRecord and GetRecords answer the same number.
    pub create_time: i64,
    /// The Kafka key.
    pub key: Option<Bytes>,
    /// The Kafka value.
    pub value: Option<Bytes>,
}

/// How far a decode got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The offset to read next.
    pub next_offset: i64,
    /// Whether a limit stopped the decode before the end of `buf`.
    pub limited: bool,
}

/// Decodes the records of the whole batches in `buf` from offset `from` on, appending to
/// `out` until it holds `max_records` records or `max_bytes` of data and keys (the first
/// record always fits). Control batches (transaction markers) are skipped.
pub fn decode_records(
    buf: &Bytes,
    from: i64,
    max_records: usize,
    max_bytes: usize,
    bytes_so_far: &mut usize,
    out: &mut Vec<StoredRecord>,
) -> Result<Decoded, String> {
    let mut next = from;
    let mut pos = 0usize;
    let full =
        |out: &Vec<StoredRecord>, bytes: usize| out.len() >= max_records || bytes >= max_bytes;
    for item in batch::batches(buf) {
        let (h, _) = item.map_err(|e| e.to_string())?;
        let start = pos;
        pos += h.total_size();
        if h.next_offset() <= from {
            continue;
        }
        if h.is_control() {
            next = next.max(h.next_offset());
            continue;
        }
        let mut push = |r: StoredRecord, out: &mut Vec<StoredRecord>| -> bool {
            if r.offset < from {
                return true;
            }
            let size =
                r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len);
            if !out.is_empty() && *bytes_so_far + size > max_bytes {
                return false;
            }
            *bytes_so_far += size;
            next = r.offset + 1;
            out.push(r);
            !full(out, *bytes_so_far)
        };
        let mut stopped = false;
        if h.compression() == 0 {
            let bytes = buf.slice(start..pos);
            for rec in batch::records(&bytes).map_err(|e| e.to_string())? {
                let rec = rec.map_err(|e| e.to_string())?;
                let create_time = h.base_timestamp.wrapping_add(rec.timestamp_delta);
                let timestamp = if h.is_log_append_time() {
                    h.max_timestamp
                } else {
                    create_time
                };
                let slice = |s: Option<&[u8]>| s.map(|s| bytes.slice_ref(s));
                let r = StoredRecord {
                    offset: h.base_offset + i64::from(rec.offset_delta),
                    timestamp,
                    create_time,
                    key: slice(rec.key),
                    value: slice(rec.value),
                };
                if !push(r, out) {
                    stopped = true;
                    break;
                }
            }
        } else {
            let mut bytes = buf.slice(start..pos);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
                .map_err(|e| format!("cannot decode a compressed batch: {e}"))?;
            for rec in set.records {
                let timestamp = if h.is_log_append_time() {
                    h.max_timestamp
                } else {
                    rec.timestamp
                };
                let r = StoredRecord {
                    offset: rec.offset,
                    timestamp,
                    create_time: rec.timestamp,
                    key: rec.key,
                    value: rec.value,
                };
                if !push(r, out) {
                    stopped = true;
                    break;
                }
            }
        }
        if stopped || full(out, *bytes_so_far) {
            // Stopped by a limit: resume after the last record returned, unless the batch
            // was used up (then after the batch, which skips offsets it does not hold).
            let last = out.last().map_or(next, |r| r.offset + 1);
            let batch_done = last >= h.next_offset();
            return Ok(Decoded {
                next_offset: if batch_done { h.next_offset() } else { last },
                limited: true,
            });
        }
        next = next.max(h.next_offset());
    }
    Ok(Decoded {
        next_offset: next,
        limited: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_base(mut b: BytesMut, base: i64) -> BytesMut {
        batch::set_base_offset(&mut b, base);
        b
    }

    #[test]
    fn build_then_decode_with_limits() {
        let recs: Vec<NewRecord<'_>> = (0..5)
            .map(|_| NewRecord {
                partition_key: "pk",
                data: b"data",
                explicit_hash_key: None,
            })
            .collect();
        let mut all = with_base(build_batch(&recs, 1_000), 10);
        all.extend_from_slice(&with_base(build_batch(&recs[..2], 2_000), 15));
        let buf = all.freeze();
        let mut out = Vec::new();
        let mut bytes = 0;
        let d = decode_records(&buf, 12, 100, usize::MAX, &mut bytes, &mut out).unwrap();
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![12, 13, 14, 15, 16]
        );
        assert_eq!(
            d,
            Decoded {
                next_offset: 17,
                limited: false
            }
        );
        assert_eq!(out[0].key.as_deref(), Some(&b"pk"[..]));
        assert_eq!(out[3].timestamp, 2_000);
        let mut out = Vec::new();
        let mut bytes = 0;
        let d = decode_records(&buf, 10, 3, usize::MAX, &mut bytes, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            d,
            Decoded {
                next_offset: 13,
                limited: true
            }
        );
        // Byte limit: 6 bytes per record, 13 bytes allow two.
        let mut out = Vec::new();
        let mut bytes = 0;
        let d = decode_records(&buf, 10, 100, 13, &mut bytes, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(d.next_offset, 12);
    }
}
