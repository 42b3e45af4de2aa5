//! Sequence numbers: decimal strings that grow with the offset within a shard and decode back
//! to (partition, offset).
//!
//! The number is a 127-bit integer laid out as
//!
//! ```text
//!  bit 126      bits 40..=102         bits 8..=39        bits 0..=7
//!  marker 1  |  offset (63 bits)  |  partition (32)  |  kind: 1 record, 0 gap
//! ```
//!
//! so it is always 38 decimal digits long (2^126 ≤ n < 2^127), compares as a big integer (and,
//! having a fixed width, as a string) in offset order within a shard, and carries its shard so
//! that a sequence number of another shard is refused. Offsets are the Kafka offsets of the
//! partition, so a Kafka consumer and a Kinesis reader agree on positions.
//!
//! A record's sequence number has kind 1. Kind 0 names the gap just before an offset: it sorts
//! after the previous record and before the record at that offset. Gaps are what a shard's
//! StartingSequenceNumber and SubscribeToShard's ContinuationSequenceNumber name when no
//! record does (an empty shard), so `AFTER_SEQUENCE_NUMBER` of a gap starts at its offset.

/// Bit 126: makes every sequence number 38 digits long.
const MARKER: u128 = 1 << 126;
const OFFSET_SHIFT: u32 = 40;
const PARTITION_SHIFT: u32 = 8;
const KIND_RECORD: u128 = 1;
const KIND_GAP: u128 = 0;

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    /// The partition (Kinesis shard index).
    pub partition: i32,
    /// The Kafka offset.
    pub offset: i64,
    /// `false` for the gap just before `offset` rather than the record at it.
    pub record: bool,
}

impl SequenceNumber {
    /// The sequence number of the record at `offset` in `partition`.
    pub fn new(partition: i32, offset: i64) -> SequenceNumber {
        SequenceNumber {
            partition,
            offset,
            record: true,
        }
    }

    /// The position just before `offset` (after the record before it, if any).
    pub fn gap(partition: i32, offset: i64) -> SequenceNumber {
        SequenceNumber {
            partition,
            offset,
            record: false,
        }
    }

    /// The offset an iterator `AT_SEQUENCE_NUMBER` of this starts at.
    pub fn at(&self) -> i64 {
        self.offset
    }

    /// The offset an iterator `AFTER_SEQUENCE_NUMBER` of this starts at.
    pub fn after(&self) -> i64 {
        if self.record {
            self.offset.saturating_add(1)
        } else {
            self.offset
        }
    }

    /// The decimal string form.
    pub fn encode(&self) -> String {
        let n = MARKER
            | (u128::from(self.offset.max(0) as u64) << OFFSET_SHIFT)
            | (u128::from(self.partition as u32) << PARTITION_SHIFT)
            | if self.record { KIND_RECORD } else { KIND_GAP };
        n.to_string()
    }

    /// Parses the decimal string form; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<SequenceNumber> {
        if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u128 = s.parse().ok()?;
        let kind = n & 0xff;
        if n >> 126 != 1 || (kind != KIND_RECORD && kind != KIND_GAP) {
            return None;
        }
        let offset = ((n >> OFFSET_SHIFT) & ((1u128 << 63) - 1)) as i64;
        let partition = ((n >> PARTITION_SHIFT) & 0xffff_ffff) as u32 as i32;
        Some(SequenceNumber {
            partition,
            offset,
            record: kind == KIND_RECORD,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let mut prev = String::new();
        for off in [0i64, 1, 2, 255, 256, 1 << 20, 1 << 40, i64::MAX] {
            let s = SequenceNumber::new(7, off).encode();
            assert_eq!(s.len(), 38, "{s}");
            assert_eq!(
                SequenceNumber::decode(&s),
                Some(SequenceNumber::new(7, off))
            );
            if !prev.is_empty() {
                assert!(s.parse::<u128>().unwrap() > prev.parse::<u128>().unwrap());
                assert!(s > prev);
            }
            prev = s;
        }
        let s = SequenceNumber::new(i32::MAX, 5).encode();
        assert_eq!(
            SequenceNumber::decode(&s),
            Some(SequenceNumber::new(i32::MAX, 5))
        );
        // Gaps sort between records.
        let gap = SequenceNumber::gap(7, 5).encode().parse::<u128>().unwrap();
        let r4 = SequenceNumber::new(7, 4).encode().parse::<u128>().unwrap();
        let r5 = SequenceNumber::new(7, 5).encode().parse::<u128>().unwrap();
        assert!(r4 < gap && gap < r5);
        let g = SequenceNumber::decode(&SequenceNumber::gap(7, 0).encode()).unwrap();
        assert_eq!((g.at(), g.after(), g.record), (0, 0, false));
        assert_eq!(SequenceNumber::new(7, 0).after(), 1);
        assert_eq!(SequenceNumber::decode("12"), None);
        assert_eq!(SequenceNumber::decode("abc"), None);
        assert_eq!(
            SequenceNumber::decode("49589238005775633934916144566022322418012108603250442258"),
            None
        );
    }
}
