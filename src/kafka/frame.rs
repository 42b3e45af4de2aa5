//! Response frames as a list of [`Bytes`] chunks, so large payloads already held as `Bytes`
//! (a fetch's record sets, read from the segment files) go to the socket by reference with
//! vectored I/O instead of being copied into the frame.
//!
//! The protocol encoder (kafka-protocol) writes a `Bytes` field with one `put_slice` of the
//! whole value. [`ChunkedBuf`] is a buffer that recognises those calls for the payloads it was
//! given (same pointer, same length, in encoding order): it closes the current header chunk,
//! appends a clone of the payload (a reference count, no copy) and carries on. Everything else,
//! including the payloads' length prefixes, is encoded into small header chunks as usual, so the
//! chunks concatenated are byte for byte the contiguous encoding.
//!
//! Record sets left in the segment files ([`FileRecords`], sent with `sendfile(2)` on plaintext
//! connections) take part the same way: the response carries a [`placeholder`] of the right
//! length in their place (so the encoder computes every size as usual), and the buffer replaces
//! it with [`Chunk::File`] chunks. A placeholder is a view of one read-only mapping of zero
//! pages, so it costs no memory and can never be confused with a real payload; an encoding that
//! failed to splice one is an error, never zeros on the wire.

use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::log::{FileRecords, FileRegion};

/// Payloads shorter than this are copied into the header chunk: one more iovec costs more than
/// copying a few KiB.
pub const MIN_SPLICE: usize = 4096;

/// One piece of a response frame, written back to back with the others.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes in memory.
    Bytes(Bytes),
    /// Whole batches in a segment file (`sendfile` on plaintext TCP, read and written
    /// otherwise).
    File(FileRegion),
}

impl Chunk {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len(),
        }
    }

    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A payload the encoder writes that goes into the frame by reference.
#[derive(Debug, Clone)]
pub enum Splice {
    /// These bytes (recognised by pointer and length).
    Bytes(Bytes),
    /// File records, standing in the message as a [`placeholder`] of the same length.
    File {
        /// What the message holds in their place.
        placeholder: Bytes,
        /// The records.
        records: FileRecords,
    },
}

impl Splice {
    /// The bytes the encoder will `put_slice`.
    fn key(&self) -> &Bytes {
        match self {
            Splice::Bytes(b) | Splice::File { placeholder: b, .. } => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.key().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.key().is_empty()
    }
}

/// Bytes of the zero mapping placeholders are cut from: the largest record set that can be
/// left in files.
pub const PLACEHOLDER_MAX: usize = 1 << 30;

/// The zero mapping placeholders are cut from, mapped on first use.
static ZEROS: OnceLock<Option<&'static [u8]>> = OnceLock::new();

fn zero_pages() -> Option<&'static [u8]> {
    *ZEROS.get_or_init(|| {
        // SAFETY: a fresh anonymous private mapping, read-only; nothing else refers to it. The
        // kernel backs every page with the shared zero page on first read, so it costs neither
        // memory nor commit charge (MAP_NORESERVE), and it is never unmapped.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PLACEHOLDER_MAX,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            tracing::warn!(error = %std::io::Error::last_os_error(), "no placeholder mapping; fetches read record sets into memory");
            return None;
        }
        // SAFETY: the mapping is readable, `PLACEHOLDER_MAX` bytes long, zero-filled, immutable
        // and lives for the rest of the process.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), PLACEHOLDER_MAX) })
    })
}

/// A `len`-byte stand-in for file records in a message being encoded; `None` if `len` is larger
/// than [`PLACEHOLDER_MAX`] or the mapping is unavailable (read the records instead).
pub fn placeholder(len: usize) -> Option<Bytes> {
    let zeros = zero_pages()?;
    zeros.get(..len).map(Bytes::from_static)
}

/// Whether `bytes` is a [`placeholder`] (a non-empty view of the zero mapping).
pub fn is_placeholder(bytes: &Bytes) -> bool {
    // Never maps it: without a mapping there are no placeholders.
    match ZEROS.get().copied().flatten() {
        Some(z) => {
            let start = z.as_ptr() as usize;
            let p = bytes.as_ptr() as usize;
            !bytes.is_empty() && p >= start && p < start + z.len()
        }
        None => false,
    }
}

/// An encoding buffer that splices the given payloads in by reference.
pub struct ChunkedBuf {
    head: BytesMut,
    chunks: Vec<Chunk>,
    /// Bytes in `chunks` (the logical offset where `head` starts).
    flushed: usize,
    splice: Vec<Splice>,
    next: usize,
}

impl ChunkedBuf {
    /// A buffer that will reference `splice` (in the order the encoder writes them) instead of
    /// copying them. `header_capacity` sizes the first header chunk.
    pub fn new(splice: Vec<Splice>, header_capacity: usize) -> ChunkedBuf {
        ChunkedBuf {
            head: BytesMut::with_capacity(header_capacity),
            chunks: Vec::with_capacity(2 * splice.len() + 1),
            flushed: 0,
            splice,
            next: 0,
        }
    }

    /// The encoded chunks, in order.
    pub fn finish(mut self) -> Vec<Chunk> {
        if !self.head.is_empty() {
            self.chunks.push(Chunk::Bytes(self.head.freeze()));
        }
        self.chunks
    }

    /// How many of the payloads were spliced in (the others, if any, were copied).
    pub fn spliced(&self) -> usize {
        self.next
    }

    /// Whether a file payload was missed (its placeholder would have been copied).
    fn missed_file(&self) -> bool {
        self.splice
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .any(|s| matches!(s, Splice::File { .. }))
    }
}

// SAFETY: every method delegates to the `BytesMut` holding the current header chunk, which
// upholds `BufMut`'s contract; `put_slice` only adds whole `Bytes` chunks besides.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller initialised `cnt` bytes of `chunk_mut()`,
        // which is the head's.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(payload) = self.splice.get(self.next) {
            let key = payload.key();
            if !src.is_empty() && src.as_ptr() == key.as_ptr() && src.len() == key.len() {
                let payload = payload.clone();
                self.next += 1;
                if !self.head.is_empty() {
                    let head = self.head.split().freeze();
                    self.flushed += head.len();
                    self.chunks.push(Chunk::Bytes(head));
                }
                self.flushed += payload.len();
                match payload {
                    Splice::Bytes(b) => self.chunks.push(Chunk::Bytes(b)),
                    Splice::File { records, .. } => self
                        .chunks
                        .extend(records.into_regions().into_iter().map(Chunk::File)),
                }
                return;
            }
        }
        self.head.extend_from_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.flushed + self.head.len()
    }

    // Gaps (used by the record-batch encoder, never by message encoders) are only supported
    // within the current header chunk.
    fn seek(&mut self, offset: usize) {
        self.head.seek(offset.saturating_sub(self.flushed));
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.flushed);
        let end = r.end.saturating_sub(self.flushed);
        self.head.range(start..end)
    }
}

/// Encodes a size-prefixed response frame (length, response header, body) as chunks, the
/// `splice` payloads (which the body must contain, in encoding order) referenced rather than
/// copied. Concatenated, the chunks equal `kafka::encode`'s frame.
pub fn encode_chunked<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
    splice: Vec<Splice>,
) -> anyhow::Result<Vec<Chunk>> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let spliced: usize = splice.iter().map(Splice::len).sum();
    let mut buf = ChunkedBuf::new(splice, (4 + size).saturating_sub(spliced));
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    if buf.missed_file() {
        anyhow::bail!("a file record set was not spliced into the encoding");
    }
    Ok(buf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;
    use std::sync::Arc;

    fn records(len: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>(),
        )
    }

    fn response(parts: &[Option<Bytes>]) -> FetchResponse {
        let partitions = parts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_records(r.clone())
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions),
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("u")))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_records(Some(records(70_000, 7)))]),
        ])
    }

    fn contiguous(resp: &FetchResponse, version: i16) -> Bytes {
        match crate::kafka::encode(42, version, resp) {
            crate::kafka::Reply::Frame(b) => b,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The bytes the writer puts on the wire for these chunks (file regions read back).
    fn wire(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for c in chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(f) => f.read_into(&mut out).expect("read region"),
            }
        }
        out.to_vec()
    }

    #[test]
    fn chunked_equals_contiguous_for_every_fetch_version() {
        let parts = [
            Some(records(10_000, 3)),
            None,
            Some(Bytes::new()),
            Some(records(100, 5)),
            Some(records(1 << 20, 11)),
        ];
        let resp = response(&parts);
        let splice: Vec<Bytes> = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.records.clone())
            .filter(|r| r.len() >= MIN_SPLICE)
            .collect();
        for version in 4..=18 {
            let chunks = encode_chunked(
                42,
                version,
                &resp,
                splice.iter().cloned().map(Splice::Bytes).collect(),
            )
            .expect("encode");
            let joined = wire(&chunks);
            let expected = contiguous(&resp, version);
            assert_eq!(joined.len(), expected.len(), "version {version}");
            assert!(
                joined == expected,
                "version {version}: chunked encoding differs"
            );
            // The three large record sets are referenced, not copied.
            for s in &splice {
                assert!(
                    chunks.iter().any(|c| matches!(c, Chunk::Bytes(b)
                        if b.as_ptr() == s.as_ptr() && b.len() == s.len())),
                    "version {version}: payload of {} bytes copied",
                    s.len()
                );
            }
        }
    }

    /// Record sets left in files (one of them spanning two "segment" files) encode, once the
    /// regions are read back, to exactly the contiguous encoding of the same bytes.
    #[test]
    fn file_chunks_resolve_to_the_contiguous_encoding_for_every_fetch_version() {
        fn file_of(bytes: &[u8]) -> Arc<std::fs::File> {
            let mut f = tempfile::tempfile().expect("tempfile");
            f.write_all(b"prefix that is not sent").expect("write");
            f.write_all(bytes).expect("write");
            f.write_all(b"suffix").expect("write");
            Arc::new(f)
        }
        let offset = b"prefix that is not sent".len() as u64;
        let a = records(200_000, 3);
        let b1 = records(70_000, 13);
        let b2 = records(90_000, 17);
        let small = records(5_000, 19);
        let mut b = BytesMut::new();
        b.extend_from_slice(&b1);
        b.extend_from_slice(&b2);
        let b = b.freeze();

        let mut fa = FileRecords::default();
        fa.push(FileRegion::new(file_of(&a), offset, a.len()));
        let mut fb = FileRecords::default();
        fb.push(FileRegion::new(file_of(&b1), offset, b1.len()));
        fb.push(FileRegion::new(file_of(&b2), offset, b2.len()));

        // What the broker encodes: placeholders where file records go.
        let pa = placeholder(a.len()).expect("placeholder");
        let pb = placeholder(b.len()).expect("placeholder");
        assert!(is_placeholder(&pa) && is_placeholder(&pb));
        assert!(!is_placeholder(&a) && !is_placeholder(&Bytes::new()));
        let sent = response(&[
            Some(pa.clone()),
            None,
            Some(small.clone()),
            Some(pb.clone()),
        ]);
        // What it means: the real bytes, encoded contiguously.
        let real = response(&[Some(a.clone()), None, Some(small), Some(b.clone())]);
        for version in 4..=18 {
            // In encoding order; the "u" partition's bytes are not listed, so they are copied.
            let splice = vec![
                Splice::File {
                    placeholder: pa.clone(),
                    records: fa.clone(),
                },
                Splice::File {
                    placeholder: pb.clone(),
                    records: fb.clone(),
                },
            ];
            let chunks = encode_chunked(42, version, &sent, splice).expect("encode");
            let files = chunks
                .iter()
                .filter(|c| matches!(c, Chunk::File(_)))
                .count();
            assert_eq!(files, 3, "version {version}: three file regions");
            let joined = wire(&chunks);
            let expected = contiguous(&real, version);
            assert_eq!(joined.len(), expected.len(), "version {version}");
            assert!(joined == expected, "version {version}: wire bytes differ");
        }
    }

    #[test]
    fn a_file_record_set_that_is_not_spliced_is_an_error_not_zeros() {
        let p = placeholder(10_000).expect("placeholder");
        let resp = response(&[Some(p.clone())]);
        let mut f = FileRecords::default();
        let file = Arc::new(tempfile::tempfile().expect("tempfile"));
        f.push(FileRegion::new(file, 0, 10_000));
        // Announced with another length: the encoder's put_slice does not match it.
        let splice = vec![Splice::File {
            placeholder: p.slice(..9_999),
            records: f,
        }];
        assert!(encode_chunked(42, 16, &resp, splice).is_err());
    }

    #[test]
    fn payloads_out_of_order_are_copied_not_lost() {
        let resp = response(&[Some(records(10_000, 3))]);
        // A payload the body does not contain: nothing matches, everything is copied.
        let chunks =
            encode_chunked(42, 16, &resp, vec![Splice::Bytes(records(10_000, 3))]).expect("encode");
        let joined = wire(&chunks);
        let expected = contiguous(&resp, 16);
        assert_eq!(joined.len(), expected.len());
        let first = joined.iter().zip(expected.iter()).position(|(a, b)| a != b);
        assert!(
            joined == expected,
            "chunked encoding differs at {first:?} of {}",
            joined.len()
        );
        assert_eq!(chunks.len(), 1);
    }
}
