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

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

/// Payloads shorter than this are copied into the header chunk: one more iovec costs more than
/// copying a few KiB.
pub const MIN_SPLICE: usize = 4096;

/// An encoding buffer that splices the given payloads in by reference.
pub struct ChunkedBuf {
    head: BytesMut,
    chunks: Vec<Bytes>,
    /// Bytes in `chunks` (the logical offset where `head` starts).
    flushed: usize,
    splice: Vec<Bytes>,
    next: usize,
}

impl ChunkedBuf {
    /// A buffer that will reference `splice` (in the order the encoder writes them) instead of
    /// copying them. `header_capacity` sizes the first header chunk.
    pub fn new(splice: Vec<Bytes>, header_capacity: usize) -> ChunkedBuf {
        ChunkedBuf {
            head: BytesMut::with_capacity(header_capacity),
            chunks: Vec::with_capacity(2 * splice.len() + 1),
            flushed: 0,
            splice,
            next: 0,
        }
    }

    /// The encoded chunks, in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.freeze());
        }
        self.chunks
    }

    /// How many of the payloads were spliced in (the others, if any, were copied).
    pub fn spliced(&self) -> usize {
        self.next
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
            if !src.is_empty() && src.as_ptr() == payload.as_ptr() && src.len() == payload.len() {
                let payload = payload.clone();
                self.next += 1;
                if !self.head.is_empty() {
                    let head = self.head.split().freeze();
                    self.flushed += head.len();
                    self.chunks.push(head);
                }
                self.flushed += payload.len();
                self.chunks.push(payload);
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
    splice: Vec<Bytes>,
) -> anyhow::Result<Vec<Bytes>> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let spliced: usize = splice.iter().map(Bytes::len).sum();
    let mut buf = ChunkedBuf::new(splice, (4 + size).saturating_sub(spliced));
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

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
            let chunks = encode_chunked(42, version, &resp, splice.clone()).expect("encode");
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let expected = contiguous(&resp, version);
            assert_eq!(joined.len(), expected.len(), "version {version}");
            assert!(
                joined == expected,
                "version {version}: chunked encoding differs"
            );
            // The three large record sets are referenced, not copied.
            for s in &splice {
                assert!(
                    chunks
                        .iter()
                        .any(|c| c.as_ptr() == s.as_ptr() && c.len() == s.len()),
                    "version {version}: payload of {} bytes copied",
                    s.len()
                );
            }
        }
    }

    #[test]
    fn payloads_out_of_order_are_copied_not_lost() {
        let resp = response(&[Some(records(10_000, 3))]);
        // A payload the body does not contain: nothing matches, everything is copied.
        let chunks = encode_chunked(42, 16, &resp, vec![records(10_000, 3)]).expect("encode");
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
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
