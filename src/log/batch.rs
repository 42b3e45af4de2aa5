//! RecordBatch v2 framing: header parsing and validation, iteration over concatenated batches,
//! record walking for uncompressed batches, a builder of valid batches for tests and benches,
//! and transaction markers (control batches: [`txn_marker_batch`], [`txn_marker`]).

//!
//! The header is 61 bytes, all integers big-endian:
//!
//! | offset | field                | type |
//! |-------:|----------------------|------|
//! |      0 | baseOffset           | i64  |
//! |      8 | batchLength          | i32 (bytes after this field) |
//! |     12 | partitionLeaderEpoch | i32  |
//! |     16 | magic                | i8 (= 2) |
//! |     17 | crc                  | u32, CRC-32C of bytes 21..end |
//! |     21 | attributes           | i16  |
//! |     23 | lastOffsetDelta      | i32  |
//! |     27 | baseTimestamp        | i64  |
//! |     35 | maxTimestamp         | i64  |
//! |     43 | producerId           | i64  |
//! |     51 | producerEpoch        | i16  |
//! |     53 | baseSequence         | i32  |
//! |     57 | recordsCount         | i32  |
//! |     61 | records              |      |
//!
//! Attributes: bits 0-2 compression codec, bit 3 timestamp type (1 = LogAppendTime),
//! bit 4 transactional, bit 5 control batch.
//!
//! A record is `length varint` followed by `length` bytes: attributes i8, timestampDelta varlong,
//! offsetDelta varint, keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
//! header count varint, then per header keyLength varint, key, valueLength varint, value.
//! Varints are zig-zag encoded (protobuf style).

use bytes::{BufMut, BytesMut};

use super::LogError;

/// Byte offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength`.
pub const BATCH_LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch`.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic`.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc`.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes`; the CRC covers the batch from here to its end.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp`.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordsCount`.
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// Length of the v2 batch header; the records start here.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: `baseOffset` and `batchLength` themselves.
pub const LOG_OVERHEAD: usize = 12;
/// The smallest legal `batchLength`: a header without records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only message format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// Attribute bits 0-2: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime (set by the broker) rather than CreateTime.
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_MASK: i16 = 0x10;
/// Attribute bit 5: the batch is a control batch (transaction markers).
pub const CONTROL_MASK: i16 = 0x20;
/// The timestamp value meaning "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

/// The parsed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker (not covered by the CRC).
    pub partition_leader_epoch: i32,
    /// Message format version; always 2 once parsed.
    pub magic: i8,
    /// CRC-32C of the bytes from `attributes` to the end of the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (CreateTime batches).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the append time for LogAppendTime batches.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` and checks what can be checked without the rest of
    /// the batch: at least 61 bytes present, magic 2, and a `batchLength` no smaller than a header.
    /// Does not require the whole batch to be present and does not check the CRC (see [`validate`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                LogError::CorruptRecord(format!(
                    "truncated batch header: {} bytes, need {HEADER_LEN}",
                    buf.len()
                ))
            })?;
        let magic = h[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
        let header = BatchHeader {
            base_offset: be_i64(h, BASE_OFFSET_OFFSET),
            batch_length: be_i32(h, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: be_i32(h, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(h, CRC_OFFSET) as u32,
            attributes: be_i16(h, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(h, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(h, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(h, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(h, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(h, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(h, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(h, RECORDS_COUNT_OFFSET),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(LogError::CorruptRecord(format!(
                "batch length {} is smaller than the header ({MIN_BATCH_LENGTH})",
                header.batch_length
            )));
        }
        Ok(header)
    }

    /// The size of the whole batch in bytes, `batchLength + 12`.
    pub fn total_size(&self) -> usize {
        // batch_length >= MIN_BATCH_LENGTH > 0 once parsed.
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the last record, `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (attributes bits 0-2); 0 means uncompressed.
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// Whether the timestamps are LogAppendTime (attributes bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    /// Whether the batch is part of a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    /// Whether the batch is a control batch (attributes bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }
}

/// Validates the batch at the start of `buf` completely, as a produce request must be: the
/// checks of [`validate_stored`] (header, whole batch present, CRC-32C over attributes..end)
/// and `recordsCount == lastOffsetDelta + 1 > 0`. Bytes after the batch are ignored (they are the
/// next batch); use [`BatchHeader::total_size`] to step over it.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, LogError> {
    let header = validate_stored(buf)?;
    if header.records_count <= 0 {
        return Err(LogError::CorruptRecord(format!(
            "record count {} is not positive",
            header.records_count
        )));
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(LogError::CorruptRecord(format!(
            "record count {} does not match last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Validates a batch as stored in a log, where compaction may have removed records: as
/// [`validate`], except that `recordsCount` may be anything from 0 to `lastOffsetDelta + 1`
/// (the header keeps the batch's offset range; Kafka's cleaner keeps an emptied batch of an
/// idempotent producer for its sequence numbers). Used by recovery and follower appends.
pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(buf)?;
    let size = header.total_size();
    let Some(batch) = buf.get(..size) else {
        return Err(LogError::CorruptRecord(format!(
            "batch length {} needs {size} bytes but only {} are present",
            header.batch_length,
            buf.len()
        )));
    };
    if header.records_count < 0
        || header.last_offset_delta < 0
        || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(LogError::CorruptRecord(format!(
            "record count {} does not fit last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if crc != header.crc {
        return Err(LogError::CorruptRecord(format!(
            "crc mismatch: header says {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Iterates over the batches of a buffer of concatenated batches, checking framing only
/// (see [`BatchHeader::parse`] and that each batch is complete), not CRCs.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        rest: buf,
        failed: false,
    }
}

/// Iterator returned by [`batches`]: yields each batch's header and its bytes. After an error
/// it yields nothing more.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let header = match BatchHeader::parse(self.rest) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let size = header.total_size();
        if size > self.rest.len() {
            self.failed = true;
            return Some(Err(LogError::CorruptRecord(format!(
                "truncated batch: needs {size} bytes, {} present",
                self.rest.len()
            ))));
        }
        let (batch, rest) = self.rest.split_at(size);
        self.rest = rest;
        Some(Ok((header, batch)))
    }
}

/// Overwrites the `baseOffset` of the batch at the start of `batch` (not covered by the CRC).
/// `batch` must hold at least 8 bytes; shorter slices are left untouched.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(field) = batch.get_mut(BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Overwrites the `partitionLeaderEpoch` of the batch at the start of `batch` (not covered by
/// the CRC). `batch` must hold at least 16 bytes; shorter slices are left untouched.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if let Some(field) =
        batch.get_mut(PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4)
    {
        field.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Marks the batch at the start of `batch` (exactly one whole batch) as LogAppendTime: sets
/// attribute bit 3, sets `maxTimestamp` to `append_time`, and recomputes the CRC since it covers
/// both. Does nothing if `batch` is shorter than a header.
pub fn set_log_append_time(batch: &mut [u8], append_time: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]])
        | TIMESTAMP_TYPE_MASK;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&append_time.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of the header of `batch` (one whole, validated batch) with `baseOffset` set and, for
/// LogAppendTime topics, the timestamp-type bit and `maxTimestamp = append_time` set and the CRC
/// recomputed over the patched header tail and the untouched records. The records themselves
/// are neither copied nor changed, so an append can write this header and then the producer's
/// bytes as they arrived. `None` if `batch` is shorter than a header.
pub fn patched_header(
    batch: &[u8],
    base_offset: i64,
    append_time: Option<i64>,
) -> Option<[u8; HEADER_LEN]> {
    let mut h: [u8; HEADER_LEN] = batch.get(..HEADER_LEN)?.try_into().ok()?;
    set_base_offset(&mut h, base_offset);
    if let Some(time) = append_time {
        let attributes = be_i16(&h, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
        h[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        h[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&time.to_be_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&h[ATTRIBUTES_OFFSET..]),
            &batch[HEADER_LEN..],
        );
        h[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Some(h)
}

fn be_i16(h: &[u8; HEADER_LEN], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

fn be_i32(h: &[u8; HEADER_LEN], at: usize) -> i32 {
    i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

fn be_i64(h: &[u8; HEADER_LEN], at: usize) -> i64 {
    i64::from_be_bytes([
        h[at],
        h[at + 1],
        h[at + 2],
        h[at + 3],
        h[at + 4],
        h[at + 5],
        h[at + 6],
        h[at + 7],
    ])
}

// ---------------------------------------------------------------------------------------------
// Records (uncompressed batches only)
// ---------------------------------------------------------------------------------------------

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by the format, 0).
    pub attributes: i8,
    /// Timestamp relative to the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// The key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The record headers; iterate with [`Record::headers`].
    headers: &'a [u8],
    header_count: i32,
}

impl<'a> Record<'a> {
    /// The record headers as `(key, value)` pairs.
    pub fn headers(&self) -> RecordHeaders<'a> {
        RecordHeaders {
            rest: self.headers,
            remaining: self.header_count,
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count.max(0) as usize
    }
}

/// Iterator over the headers of a [`Record`]. The bytes were checked when the record was
/// decoded, so it simply stops on anything malformed.
#[derive(Debug, Clone)]
pub struct RecordHeaders<'a> {
    rest: &'a [u8],
    remaining: i32,
}

impl<'a> Iterator for RecordHeaders<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let mut cursor = Cursor {
            buf: self.rest,
            pos: 0,
        };
        let key = cursor.nullable_bytes().ok()?.unwrap_or_default();
        let value = cursor.nullable_bytes().ok()?;
        self.rest = &self.rest[cursor.pos..];
        Some((key, value))
    }
}

/// Walks the records of one whole uncompressed batch (`batch` is the batch from its first byte).
/// Errors if the batch is compressed (`attributes & 7 != 0`) or too short for its header.
pub fn records(batch: &[u8]) -> Result<RecordIter<'_>, LogError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != 0 {
        return Err(LogError::CorruptRecord(format!(
            "cannot walk the records of a batch compressed with codec {}",
            header.compression()
        )));
    }
    let end = header.total_size().min(batch.len());
    Ok(RecordIter {
        rest: &batch[HEADER_LEN..end],
        remaining: header.records_count,
        failed: false,
    })
}

/// Iterator returned by [`records`]. Yields `recordsCount` records, or an error (then nothing
/// more) if the bytes do not decode.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: i32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let result = decode_record(self.rest);
        match result {
            Ok((record, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(record))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Walks `count` records of an (uncompressed or decompressed) records section, yielding each
/// record with its own encoded bytes (length prefix included), so that a filter can copy the
/// records it keeps verbatim.
pub fn raw_records(section: &[u8], count: i32) -> RawRecordIter<'_> {
    RawRecordIter {
        rest: section,
        remaining: count,
        failed: false,
    }
}

/// Iterator returned by [`raw_records`].
#[derive(Debug, Clone)]
pub struct RawRecordIter<'a> {
    rest: &'a [u8],
    remaining: i32,
    failed: bool,
}

impl<'a> Iterator for RawRecordIter<'a> {
    type Item = Result<(Record<'a>, &'a [u8]), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        match decode_record(self.rest) {
            Ok((record, used)) => {
                let (raw, rest) = self.rest.split_at(used);
                self.rest = rest;
                Some(Ok((record, raw)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn decode_record(buf: &[u8]) -> Result<(Record<'_>, usize), LogError> {
    let mut outer = Cursor { buf, pos: 0 };
    let len = outer.varint()?;
    let len = usize::try_from(len)
        .map_err(|_| LogError::CorruptRecord(format!("negative record length {len}")))?;
    let body = outer.take(len)?;
    let mut c = Cursor { buf: body, pos: 0 };
    let attributes = c.take(1)?[0] as i8;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes()?;
    let value = c.nullable_bytes()?;
    let header_count = c.varint()?;
    if header_count < 0 {
        return Err(LogError::CorruptRecord(format!(
            "negative header count {header_count}"
        )));
    }
    let headers_start = c.pos;
    for _ in 0..header_count {
        c.nullable_bytes()?;
        c.nullable_bytes()?;
    }
    if c.pos != body.len() {
        return Err(LogError::CorruptRecord(format!(
            "record length {len} does not match its {} bytes of fields",
            c.pos
        )));
    }
    let record = Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: &body[headers_start..],
        header_count,
    };
    Ok((record, outer.pos))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(LogError::CorruptRecord(format!(
                "record field of {n} bytes runs past the end of the batch"
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn unsigned(&mut self, max_bytes: u32) -> Result<u64, LogError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(LogError::CorruptRecord("truncated varint".into()));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(LogError::CorruptRecord("varint is too long".into()))
    }

    fn varint(&mut self) -> Result<i32, LogError> {
        let raw = self.unsigned(5)?;
        let raw = u32::try_from(raw)
            .map_err(|_| LogError::CorruptRecord("varint overflows 32 bits".into()))?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, LogError> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, LogError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

// ---------------------------------------------------------------------------------------------
// Building batches (tests, benches, internal producers)
// ---------------------------------------------------------------------------------------------

/// Builds one valid, uncompressed v2 batch with base offset 0. Records are added in order; the
/// batch's `baseTimestamp` is the one given to [`BatchBuilder::new`], `maxTimestamp` the largest
/// record timestamp.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchBuilder {
    /// Starts a CreateTime batch whose records' timestamps are relative to `base_timestamp`.
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + 64);
        buf.put_bytes(0, HEADER_LEN);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp,
            max_timestamp: NO_TIMESTAMP,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// Sets the idempotent producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets or clears the transactional attribute bit.
    pub fn transactional(mut self, transactional: bool) -> Self {
        if transactional {
            self.attributes |= TRANSACTIONAL_MASK;
        } else {
            self.attributes &= !TRANSACTIONAL_MASK;
        }
        self
    }

    /// Sets or clears the control attribute bit (transaction markers; see [`txn_marker_batch`]).
    pub fn control(mut self, control: bool) -> Self {
        if control {
            self.attributes |= CONTROL_MASK;
        } else {
            self.attributes &= !CONTROL_MASK;
        }
        self
    }

    /// Appends a record without headers.
    pub fn record(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> &mut Self {
        self.record_with_headers(key, value, timestamp, &[])
    }

    /// Appends a record with headers (`(key, value)` pairs, `None` for a null header value).
    pub fn record_with_headers(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> &mut Self {
        let timestamp_delta = zigzag64(timestamp.wrapping_sub(self.base_timestamp));
        let offset_delta = zigzag32(self.count);
        let bytes_len = |b: Option<&[u8]>| match b {
            None => uvarint_len(zigzag32(-1)),
            Some(b) => uvarint_len(zigzag32(b.len() as i32)) + b.len(),
        };
        let mut body_len = 1
            + uvarint_len(timestamp_delta)
            + uvarint_len(offset_delta)
            + bytes_len(key)
            + bytes_len(value)
            + uvarint_len(zigzag32(headers.len() as i32));
        for (k, v) in headers {
            body_len += bytes_len(Some(k)) + bytes_len(*v);
        }
        let body_len_varint = zigzag32(body_len as i32);
        self.buf.reserve(uvarint_len(body_len_varint) + body_len);
        put_uvarint(&mut self.buf, body_len_varint);
        self.buf.put_i8(0);
        put_uvarint(&mut self.buf, timestamp_delta);
        put_uvarint(&mut self.buf, offset_delta);
        let put_bytes = |buf: &mut BytesMut, b: Option<&[u8]>| match b {
            None => put_uvarint(buf, zigzag32(-1)),
            Some(b) => {
                put_uvarint(buf, zigzag32(b.len() as i32));
                buf.put_slice(b);
            }
        };
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        put_uvarint(&mut self.buf, zigzag32(headers.len() as i32));
        for (k, v) in headers {
            put_bytes(&mut self.buf, Some(k));
            put_bytes(&mut self.buf, *v);
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added (such a batch is not valid to append).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fills in the header and the CRC and returns the batch bytes.
    pub fn build(mut self) -> BytesMut {
        let batch_length = (self.buf.len() - LOG_OVERHEAD) as i32;
        let mut header = [0u8; HEADER_LEN];
        header[BASE_OFFSET_OFFSET..][..8].copy_from_slice(&0i64.to_be_bytes());
        header[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&batch_length.to_be_bytes());
        header[PARTITION_LEADER_EPOCH_OFFSET..][..4].copy_from_slice(&(-1i32).to_be_bytes());
        header[MAGIC_OFFSET] = MAGIC_V2 as u8;
        header[ATTRIBUTES_OFFSET..][..2].copy_from_slice(&self.attributes.to_be_bytes());
        header[LAST_OFFSET_DELTA_OFFSET..][..4].copy_from_slice(&(self.count - 1).to_be_bytes());
        header[BASE_TIMESTAMP_OFFSET..][..8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        header[MAX_TIMESTAMP_OFFSET..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        header[PRODUCER_ID_OFFSET..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        header[PRODUCER_EPOCH_OFFSET..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        header[BASE_SEQUENCE_OFFSET..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        header[RECORDS_COUNT_OFFSET..][..4].copy_from_slice(&self.count.to_be_bytes());
        self.buf[..HEADER_LEN].copy_from_slice(&header);
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES_OFFSET..]);
        self.buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

// ---------------------------------------------------------------------------------------------
// Transaction markers (control batches)
// ---------------------------------------------------------------------------------------------

/// Control record type of an aborted transaction's marker.
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a committed transaction's marker.
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// What a transaction marker says: the record of a control batch, whose key is
/// `[version i16 = 0][type i16]` and whose value (Kafka's `EndTxnMarker`) is
/// `[version i16 = 0][coordinator epoch i32]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// Commit (true) or abort (false).
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// Builds the control batch closing a transaction (base offset 0): attributes transactional
/// and control, the producer's id and epoch, base sequence -1, one marker record.
pub fn txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    timestamp: i64,
) -> BytesMut {
    let kind = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(timestamp)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true);
    builder.record(Some(&key), Some(&value), timestamp);
    builder.build()
}

/// The marker of a whole control batch (`batch` from its first byte), read from its first
/// record; `None` if it is not a control batch or its record is not a transaction marker of a
/// version this broker knows.
pub fn txn_marker(batch: &[u8]) -> Option<TxnMarker> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() {
        return None;
    }
    let record = records(batch).ok()?.next()?.ok()?;
    let key = record.key?;
    let (version, kind) = match key {
        [v0, v1, t0, t1, ..] => (
            i16::from_be_bytes([*v0, *v1]),
            i16::from_be_bytes([*t0, *t1]),
        ),
        _ => return None,
    };
    if version != 0 {
        return None;
    }
    let commit = match kind {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    let coordinator_epoch = match record.value? {
        [_, _, e0, e1, e2, e3, ..] => i32::from_be_bytes([*e0, *e1, *e2, *e3]),
        _ => return None,
    };
    Some(TxnMarker {
        commit,
        coordinator_epoch,
    })
}

/// A record for [`build_batch`]: `(key, value)`, `None` meaning null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A record for [`build_batch_with_timestamps`]: `(key, value, timestamp)`.
pub type TimestampedRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Builds a valid uncompressed batch (base offset 0) whose records all have the timestamp
/// `base_timestamp`. Records are `(key, value)`, `None` meaning null.
pub fn build_batch(records: &[KeyValue<'_>], base_timestamp: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(base_timestamp);
    for (key, value) in records {
        builder.record(*key, *value, base_timestamp);
    }
    builder.build()
}

/// Builds a valid uncompressed batch (base offset 0) from `(key, value, timestamp)` records; the
/// base timestamp is the first record's (0 if there are none).
pub fn build_batch_with_timestamps(records: &[TimestampedRecord<'_>]) -> BytesMut {
    let base_timestamp = records.first().map_or(0, |r| r.2);
    let mut builder = BatchBuilder::new(base_timestamp);
    for (key, value, timestamp) in records {
        builder.record(*key, *value, *timestamp);
    }
    builder.build()
}

#[cfg(test)]
mod tests {

    #[test]
    fn patched_header_matches_patching_in_place() {
        let mut builder = BatchBuilder::new(1_000);
        for i in 0..5u8 {
            builder.record(Some(&[i]), Some(&[i; 100]), 1_000 + i64::from(i));
        }
        let batch = builder.build();
        for append_time in [None, Some(1_800_000_000_000)] {
            let mut in_place = batch.to_vec();
            set_base_offset(&mut in_place, 77);
            if let Some(t) = append_time {
                set_log_append_time(&mut in_place, t);
            }
            let h = patched_header(&batch, 77, append_time).expect("header");
            assert_eq!(&h[..], &in_place[..HEADER_LEN]);
            let mut joined = h.to_vec();
            joined.extend_from_slice(&batch[HEADER_LEN..]);
            assert!(validate(&joined).is_ok());
        }
        assert!(patched_header(&batch[..HEADER_LEN - 1], 0, None).is_none());
    }

    #[test]
    fn txn_markers_round_trip() {
        for commit in [true, false] {
            let marker = TxnMarker {
                commit,
                coordinator_epoch: 7,
            };
            let batch = txn_marker_batch(42, 3, marker, 1_000);
            let header = validate(&batch).expect("valid");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!(header.records_count, 1);
            assert_eq!(txn_marker(&batch), Some(marker));
        }
        let data = build_batch(&[(Some(&b"k"[..]), Some(&b"v"[..]))], 5);
        assert_eq!(txn_marker(&data), None, "not a control batch");
    }

    #[test]
    fn leader_epoch_is_outside_the_crc() {
        let mut batch = build_batch(&[(Some(&b"k"[..]), Some(&b"v"[..]))], 5);
        set_partition_leader_epoch(&mut batch, 0x0102_0304);
        let header = validate(&batch).expect("still valid");
        assert_eq!(header.partition_leader_epoch, 0x0102_0304);
        assert_eq!(&batch[12..16], &[1, 2, 3, 4]);
        let mut short = [0u8; 15];
        set_partition_leader_epoch(&mut short, 7);
        assert_eq!(short, [0u8; 15]);
    }

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn built_batch_validates_and_walks() -> TestResult {
        let batch = build_batch_with_timestamps(&[
            (Some(b"k1"), Some(b"v1"), 1_000),
            (None, Some(b"v2"), 990),
            (Some(b"k3"), None, 1_500),
        ]);
        let h = validate(&batch)?;
        assert_eq!(h.total_size(), batch.len());
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_500);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.compression(), 0);
        let recs = records(&batch)?.collect::<Result<Vec<_>, _>>()?;
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key, Some(&b"k1"[..]));
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[1].timestamp_delta, -10);
        assert_eq!(recs[2].value, None);
        assert_eq!(recs[2].offset_delta, 2);
        Ok(())
    }

    #[test]
    fn headers_round_trip() -> TestResult {
        let mut b = BatchBuilder::new(5);
        b.record_with_headers(
            Some(b"k"),
            Some(b"v"),
            5,
            &[(b"h1", Some(b"x")), (b"h2", None)],
        );
        let batch = b.build();
        validate(&batch)?;
        let rec = records(&batch)?.next().ok_or("no record")??;
        let hs: Vec<_> = rec.headers().collect();
        assert_eq!(hs, vec![(&b"h1"[..], Some(&b"x"[..])), (&b"h2"[..], None)]);
        Ok(())
    }

    #[test]
    fn varints_round_trip() -> TestResult {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_uvarint(&mut buf, zigzag64(v));
            assert_eq!(buf.len(), uvarint_len(zigzag64(v)));
            let mut c = Cursor { buf: &buf, pos: 0 };
            assert_eq!(c.varlong()?, v);
        }
        for v in [0i32, 1, -1, i32::MAX, i32::MIN] {
            let mut buf = BytesMut::new();
            put_uvarint(&mut buf, zigzag32(v));
            let mut c = Cursor { buf: &buf, pos: 0 };
            assert_eq!(c.varint()?, v);
        }
        Ok(())
    }

    #[test]
    fn validation_errors() {
        let good = build_batch(&[(None, Some(b"value"))], 7);

        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(validate(&bad_crc), Err(LogError::CorruptRecord(m)) if m.contains("crc")));

        let mut bad_magic = good.clone();
        bad_magic[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate(&bad_magic),
            Err(LogError::UnsupportedMagic(1))
        ));

        assert!(matches!(
            validate(&good[..40]),
            Err(LogError::CorruptRecord(_))
        ));
        assert!(matches!(
            validate(&good[..good.len() - 1]),
            Err(LogError::CorruptRecord(_))
        ));

        let mut short_len = good.clone();
        short_len[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            validate(&short_len),
            Err(LogError::CorruptRecord(_))
        ));

        // Count mismatch with a recomputed CRC, so only the count check can fail.
        let mut bad_count = good.clone();
        bad_count[RECORDS_COUNT_OFFSET..][..4].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&bad_count[ATTRIBUTES_OFFSET..]);
        bad_count[CRC_OFFSET..][..4].copy_from_slice(&crc.to_be_bytes());
        assert!(
            matches!(validate(&bad_count), Err(LogError::CorruptRecord(m)) if m.contains("count"))
        );
    }

    #[test]
    fn log_append_time_keeps_crc_valid() -> TestResult {
        let mut batch = build_batch(&[(None, Some(b"a")), (None, Some(b"b"))], 100);
        set_base_offset(&mut batch, 42);
        set_log_append_time(&mut batch, 9_999);
        let h = validate(&batch)?;
        assert_eq!(h.base_offset, 42);
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 9_999);
        assert_eq!(h.base_timestamp, 100);
        Ok(())
    }

    #[test]
    fn iterates_concatenated_batches() -> TestResult {
        let mut buf = build_batch(&[(None, Some(b"a"))], 1);
        buf.extend_from_slice(&build_batch(&[(None, Some(b"b")), (None, Some(b"c"))], 2));
        let all = batches(&buf).collect::<Result<Vec<_>, _>>()?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].0.records_count, 2);
        let truncated = &buf[..buf.len() - 3];
        let results: Vec<_> = batches(truncated).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok() && results[1].is_err());
        Ok(())
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u64;
        for len in 0..400 {
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 33) as u8
                })
                .collect();
            if len > MAGIC_OFFSET && len % 2 == 0 {
                buf[MAGIC_OFFSET] = 2;
            }
            let _ = validate(&buf);
            let _ = batches(&buf).count();
            if let Ok(it) = records(&buf) {
                let _ = it.count();
            }
        }
    }
}
