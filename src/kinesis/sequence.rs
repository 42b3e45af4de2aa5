//! Sequence numbers: decimal strings that grow with the offset within a shard and decode back
//! to (partition, offset).
//!
//! The number is a 127-bit integer laid out as
//!
//! ```text
//!  bit 126      bits 40..=102         bits 8..=39        bits 0..=7
//!  marker 1  |  offset (63 bits)  |  partition (32)  |  format version (0)
//! ```
//!
//! so it is always 38 decimal digits long (2^126 ≤ n < 2^127), compares as a big integer (and,
//! having a fixed width, as a string) in offset order within a shard, and carries its shard so
//! that a sequence number of another shard is refused. Offsets are the Kafka offsets of the
//! partition, so a Kafka consumer and a Kinesis reader agree on positions.

/// Bit 126: makes every sequence number 38 digits long.
const MARKER: u128 = 1 << 126;
const OFFSET_SHIFT: u32 = 40;
const PARTITION_SHIFT: u32 = 8;
const VERSION: u128 = 0;

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    /// The partition (Kinesis shard index).
    pub partition: i32,
    /// The Kafka offset.
    pub offset: i64,
}

impl SequenceNumber {
    /// The sequence number of `offset` in `partition`.
    pub fn new(partition: i32, offset: i64) -> SequenceNumber {
        SequenceNumber { partition, offset }
    }

    /// The decimal string form.
    pub fn encode(&self) -> String {
        let n = MARKER
            | (u128::from(self.offset.max(0) as u64) << OFFSET_SHIFT)
            | (u128::from(self.partition as u32) << PARTITION_SHIFT)
            | VERSION;
        n.to_string()
    }

    /// Parses the decimal string form; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<SequenceNumber> {
        if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u128 = s.parse().ok()?;
        if n >> 126 != 1 || n & 0xff != VERSION {
            return None;
        }
        let offset = ((n >> OFFSET_SHIFT) & ((1u128 << 63) - 1)) as i64;
        let partition = ((n >> PARTITION_SHIFT) & 0xffff_ffff) as u32 as i32;
        Some(SequenceNumber { partition, offset })
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
        assert_eq!(SequenceNumber::decode("12"), None);
        assert_eq!(SequenceNumber::decode("abc"), None);
        assert_eq!(
            SequenceNumber::decode("49589238005775633934916144566022322418012108603250442258"),
            None
        );
    }
}
