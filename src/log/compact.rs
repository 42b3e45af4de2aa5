//! Record-level work on stored batches for compacted topics: the key check on append (a
//! compacted topic refuses records without a key) and the cleaner's batch filter, which keeps a
//! subset of a batch's records and rewrites the batch around them.
//!
//! A filtered batch keeps its header as Kafka's cleaner does: base offset, `lastOffsetDelta`
//! (so the batch still spans its original offsets and an idempotent producer's sequence range),
//! timestamps, producer fields and codec; only `recordsCount`, `batchLength` and the CRC change,
//! and the kept records are copied byte for byte (recompressed with the batch's codec when it
//! was compressed). Decoding a compressed batch allocates; this runs on the cleaner's thread
//! and on appends to compacted topics only.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{self, BatchHeader, Record};
use super::LogError;

/// The records section of a batch (after its 61-byte header), decompressed if needed.
pub(crate) fn records_section<'b>(
    header: &BatchHeader,
    batch: &'b [u8],
) -> Result<Cow<'b, [u8]>, LogError> {
    let end = header.total_size().min(batch.len());
    let raw = batch
        .get(batch::HEADER_LEN..end)
        .ok_or_else(|| LogError::CorruptRecord("truncated batch".into()))?;
    let codec = header.compression();
    if codec == 0 {
        return Ok(Cow::Borrowed(raw));
    }
    let mut input = Bytes::copy_from_slice(raw);
    let take = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    let out: anyhow::Result<Bytes> = match codec {
        1 => Gzip::decompress(&mut input, take),
        2 => Snappy::decompress(&mut input, take),
        3 => Lz4::decompress(&mut input, take),
        4 => Zstd::decompress(&mut input, take),
        other => {
            return Err(LogError::CorruptRecord(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    out.map(|b| Cow::Owned(b.to_vec()))
        .map_err(|e| LogError::CorruptRecord(format!("cannot decompress batch: {e:#}")))
}

/// Compresses a records section with the batch codec `codec` (0 = none).
fn compress(codec: i16, section: &[u8]) -> Result<Vec<u8>, LogError> {
    if codec == 0 {
        return Ok(section.to_vec());
    }
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| {
        b.extend_from_slice(section);
        Ok(())
    };
    let done: anyhow::Result<()> = match codec {
        1 => Gzip::compress(&mut out, put),
        2 => Snappy::compress(&mut out, put),
        3 => Lz4::compress(&mut out, put),
        4 => Zstd::compress(&mut out, put),
        other => {
            return Err(LogError::CorruptRecord(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    done.map_err(|e| LogError::CorruptRecord(format!("cannot compress batch: {e:#}")))?;
    Ok(out.to_vec())
}

/// Checks that every record of every (non-control) batch in `records` has a key, as a
/// compacted topic requires; the error is Kafka's INVALID_RECORD.
pub fn check_keys(records: &[u8]) -> Result<(), LogError> {
    for item in batch::batches(records) {
        let (header, bytes) = item?;
        if header.is_control() {
            continue;
        }
        let section = records_section(&header, bytes)?;
        for record in batch::raw_records(&section, header.records_count) {
            let (record, _) = record?;
            if record.key.is_none() {
                return Err(LogError::InvalidRecord(
                    "compacted topic cannot accept a record without a key".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The outcome of [`filter_batch`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Every record is kept: copy the batch as it is.
    Unchanged,
    /// Some records are kept (or none, but the batch must stay): the rewritten batch.
    Rewritten(Vec<u8>),
    /// Nothing is kept and the batch may go.
    Removed,
}

/// Keeps the records of one stored batch for which `keep(offset, record)` is true. A batch
/// left without records is removed unless `keep_empty` (then it stays as a header-only batch,
/// as Kafka keeps an idempotent producer's last batch).
pub(crate) fn filter_batch(
    header: &BatchHeader,
    bytes: &[u8],
    keep_empty: bool,
    mut keep: impl FnMut(i64, &Record<'_>) -> bool,
) -> Result<Filtered, LogError> {
    let section = records_section(header, bytes)?;
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut total = 0usize;
    for item in batch::raw_records(&section, header.records_count) {
        let (record, raw) = item?;
        if keep(header.base_offset + i64::from(record.offset_delta), &record) {
            kept.push(raw);
        } else {
            total += 1;
        }
    }
    if total == 0 {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() && !keep_empty {
        return Ok(Filtered::Removed);
    }
    let mut plain = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for raw in &kept {
        plain.extend_from_slice(raw);
    }
    let codec = if kept.is_empty() {
        0
    } else {
        header.compression()
    };
    let body = compress(codec, &plain)?;
    let mut out = Vec::with_capacity(batch::HEADER_LEN + body.len());
    out.extend_from_slice(&bytes[..batch::HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - batch::LOG_OVERHEAD)
        .map_err(|_| LogError::CorruptRecord("filtered batch too large".into()))?;
    out[batch::BATCH_LENGTH_OFFSET..batch::BATCH_LENGTH_OFFSET + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !batch::COMPRESSION_MASK) | codec;
    out[batch::ATTRIBUTES_OFFSET..batch::ATTRIBUTES_OFFSET + 2]
        .copy_from_slice(&attributes.to_be_bytes());
    let count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    out[batch::RECORDS_COUNT_OFFSET..batch::RECORDS_COUNT_OFFSET + 4]
        .copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[batch::ATTRIBUTES_OFFSET..]);
    out[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rewritten(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_batch, validate, validate_stored};

    type Kv = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn keys_of(bytes: &[u8]) -> Vec<Kv> {
        let header = validate_stored(bytes).unwrap();
        let section = records_section(&header, bytes).unwrap();
        batch::raw_records(&section, header.records_count)
            .map(|r| {
                let (r, _) = r.unwrap();
                (
                    header.base_offset + i64::from(r.offset_delta),
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                )
            })
            .collect()
    }

    #[test]
    fn filtering_keeps_offsets_header_and_a_valid_crc() {
        let mut b = build_batch(
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), Some(b"2")),
                (Some(b"a"), None),
            ],
            1_000,
        );
        batch::set_base_offset(&mut b, 10);
        let header = validate(&b).unwrap();
        let out = filter_batch(&header, &b, false, |offset, _| offset != 11).unwrap();
        let Filtered::Rewritten(out) = out else {
            panic!("expected a rewrite")
        };
        let h = validate_stored(&out).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.records_count),
            (10, 2, 2)
        );
        assert!(
            validate(&out).is_err(),
            "a gap fails the produce-side check"
        );
        assert_eq!(
            keys_of(&out),
            vec![
                (10, Some(b"a".to_vec()), Some(b"1".to_vec())),
                (12, Some(b"a".to_vec()), None)
            ]
        );
        assert_eq!(
            filter_batch(&header, &b, false, |_, _| true).unwrap(),
            Filtered::Unchanged
        );
        assert_eq!(
            filter_batch(&header, &b, false, |_, _| false).unwrap(),
            Filtered::Removed
        );
        let Filtered::Rewritten(empty) = filter_batch(&header, &b, true, |_, _| false).unwrap()
        else {
            panic!("expected an empty batch")
        };
        let h = validate_stored(&empty).unwrap();
        assert_eq!(
            (h.records_count, h.last_offset(), h.compression()),
            (0, 12, 0)
        );
    }

    #[test]
    fn compressed_batches_are_filtered_and_recompressed() {
        let records: Vec<kafka_protocol::records::Record> = (0..5)
            .map(|i| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 5,
                key: Some(Bytes::from(format!("k{}", i % 2))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        for compression in [
            kafka_protocol::records::Compression::Gzip,
            kafka_protocol::records::Compression::Snappy,
            kafka_protocol::records::Compression::Lz4,
            kafka_protocol::records::Compression::Zstd,
        ] {
            let mut buf = BytesMut::new();
            kafka_protocol::records::RecordBatchEncoder::encode(
                &mut buf,
                &records,
                &kafka_protocol::records::RecordEncodeOptions {
                    version: 2,
                    compression,
                },
            )
            .unwrap();
            assert!(check_keys(&buf).is_ok());
            let mut kept = Vec::new();
            for item in batch::batches(&buf) {
                let (header, bytes) = item.unwrap();
                assert_ne!(header.compression(), 0);
                match filter_batch(&header, bytes, false, |offset, _| offset >= 3).unwrap() {
                    Filtered::Rewritten(out) => {
                        let h = validate_stored(&out).unwrap();
                        assert_eq!(h.compression(), header.compression());
                        kept.extend(keys_of(&out).into_iter().map(|(o, _, _)| o));
                    }
                    other => panic!("one batch of five: expected a rewrite, got {other:?}"),
                }
            }
            assert_eq!(kept, vec![3, 4], "{compression:?}");
        }
    }

    #[test]
    fn keyless_records_are_refused_and_garbage_is_an_error() {
        let ok = build_batch(&[(Some(b"k"), Some(b"v"))], 0);
        assert!(check_keys(&ok).is_ok());
        let keyless = build_batch(&[(Some(b"k"), Some(b"v")), (None, Some(b"v"))], 0);
        assert!(matches!(
            check_keys(&keyless),
            Err(LogError::InvalidRecord(_))
        ));
        let mut bad = ok.to_vec();
        let n = bad.len();
        bad[n - 3] = 0x7f;
        let header = batch::BatchHeader::parse(&bad).unwrap();
        assert!(filter_batch(&header, &bad, false, |_, _| true).is_err());
    }
}
