//! Sequence numbers: AWS's 56-digit decimal strings that grow with the offset within a shard
//! and decode back to (partition, offset).
//!
//! The number is a 188-bit integer written in hexadecimal as AWS lays it out (version 2, the
//! layout kinesalite decodes too):
//!
//! ```text
//!  2 | shard creation secs (9) | shard index, last digit (1) | sequence index (16)
//!    | 00 | record time secs (9) | shard index (8) | 2
//! ```
//!
//! so it is always 56 decimal digits long, carries its shard (a number of another shard is
//! refused) and its shard's creation time (one of an older stream of the same name is refused),
//! and compares as a big integer (and, having a fixed width, as a string) in offset order
//! within a shard. The sequence index is `2 × offset + 1` for the record at a Kafka offset and
//! `2 × offset` for the *gap* just before it: the gap sorts after the previous record and
//! before the record at that offset. Gaps are what a shard's StartingSequenceNumber (the gap
//! before offset 0, sequence index 0 as in AWS) and SubscribeToShard's
//! ContinuationSequenceNumber name when no record does, so `AFTER_SEQUENCE_NUMBER` of a gap
//! starts at its offset. Offsets are the Kafka offsets of the partition, so a Kafka consumer
//! and a Kinesis reader agree on positions.
//!
//! Numbers of the earlier 38-digit layout (`2^126 | offset << 40 | partition << 8 | kind`)
//! still decode; they carry no creation time.

/// Bits of the fields, from the least significant.
const VERSION_BITS: u32 = 4;
const SHARD_BITS: u32 = 32;
const TIME_BITS: u32 = 36;
const BYTE1_BITS: u32 = 8;
const INDEX_BITS: u32 = 64;
const NIBBLE_BITS: u32 = 4;
const CREATED_BITS: u32 = 36;

const SHARD_AT: u32 = VERSION_BITS;
const TIME_AT: u32 = SHARD_AT + SHARD_BITS;
const INDEX_AT: u32 = TIME_AT + TIME_BITS + BYTE1_BITS;
const NIBBLE_AT: u32 = INDEX_AT + INDEX_BITS;
const CREATED_AT: u32 = NIBBLE_AT + NIBBLE_BITS;
const LEAD_AT: u32 = CREATED_AT + CREATED_BITS;

/// The largest number of seconds the 36-bit time fields hold.
const MAX_SECS: i64 = (1 << TIME_BITS) - 1;

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNumber {
    /// The partition (Kinesis shard index).
    pub partition: i32,
    /// The Kafka offset.
    pub offset: i64,
    /// `false` for the gap just before `offset` rather than the record at it.
    pub record: bool,
    /// The shard's creation time in seconds since the epoch; `None` for a number of the
    /// earlier layout, which has none.
    pub shard_created_s: Option<i64>,
    /// The record's arrival time (for a gap: when the number was made) in seconds.
    pub time_s: i64,
}

/// A 192-bit unsigned integer as three 64-bit limbs, most significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct U192([u64; 3]);

impl U192 {
    /// Ors `value` (at most 64 bits wide) in at bit `at`.
    fn set(&mut self, at: u32, value: u64) {
        let limb = 2 - (at / 64) as usize;
        let shift = at % 64;
        self.0[limb] |= value << shift;
        if shift != 0 && limb > 0 {
            self.0[limb - 1] |= value >> (64 - shift);
        }
    }

    /// The `bits` bits at bit `at` (`bits` ≤ 64).
    fn get(&self, at: u32, bits: u32) -> u64 {
        let limb = 2 - (at / 64) as usize;
        let shift = at % 64;
        let mut v = self.0[limb] >> shift;
        if shift != 0 && limb > 0 {
            v |= self.0[limb - 1] << (64 - shift);
        }
        if bits == 64 {
            v
        } else {
            v & ((1u64 << bits) - 1)
        }
    }

    fn is_zero(&self) -> bool {
        self.0 == [0; 3]
    }

    /// Divides in place by `d`, answering the remainder.
    fn div_rem(&mut self, d: u64) -> u64 {
        let mut rem: u128 = 0;
        for limb in self.0.iter_mut() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        rem as u64
    }

    /// `self * m + a`, or `None` on overflow.
    fn mul_add(&self, m: u64, a: u64) -> Option<U192> {
        let mut out = [0u64; 3];
        let mut carry = u128::from(a);
        for i in (0..3).rev() {
            let cur = u128::from(self.0[i]) * u128::from(m) + carry;
            out[i] = cur as u64;
            carry = cur >> 64;
        }
        (carry == 0).then_some(U192(out))
    }

    fn to_decimal(mut self) -> String {
        // Chunks of 19 digits, least significant first, written from the end of a buffer that
        // holds four of them (10^76 > 2^192): one allocation per number, no formatting.
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut buf = [b'0'; 76];
        for chunk in buf.rchunks_mut(19) {
            if self.is_zero() {
                break;
            }
            let mut c = self.div_rem(CHUNK);
            for digit in chunk.iter_mut().rev() {
                *digit = b'0' + (c % 10) as u8;
                c /= 10;
            }
        }
        let first = buf.iter().position(|&b| b != b'0').unwrap_or(buf.len() - 1);
        String::from_utf8(buf[first..].to_vec()).unwrap_or_default()
    }

    fn from_decimal(s: &str) -> Option<U192> {
        let mut n = U192::default();
        for b in s.bytes() {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n.mul_add(10, u64::from(b - b'0'))?;
        }
        Some(n)
    }
}

impl SequenceNumber {
    /// The sequence number of the record at `offset` in `partition`, a shard created at
    /// `shard_created_ms`, that arrived at `time_ms`.
    pub fn record(partition: i32, offset: i64, shard_created_ms: i64, time_ms: i64) -> Self {
        SequenceNumber {
            partition,
            offset,
            record: true,
            shard_created_s: Some(shard_created_ms.div_euclid(1000)),
            time_s: time_ms.div_euclid(1000),
        }
    }

    /// The position just before `offset` (after the record before it, if any), named at
    /// `time_ms`.
    pub fn gap(partition: i32, offset: i64, shard_created_ms: i64, time_ms: i64) -> Self {
        SequenceNumber {
            record: false,
            ..Self::record(partition, offset, shard_created_ms, time_ms)
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

    /// The decimal string form (56 digits).
    pub fn encode(&self) -> String {
        let secs = |s: i64| s.clamp(0, MAX_SECS) as u64;
        let index = (self.offset.clamp(0, (1 << 62) - 1) as u64) << 1 | u64::from(self.record);
        let shard = self.partition as u32;
        let mut n = U192::default();
        n.set(0, 2);
        n.set(SHARD_AT, u64::from(shard));
        n.set(TIME_AT, secs(self.time_s));
        n.set(INDEX_AT, index);
        n.set(NIBBLE_AT, u64::from(shard & 0xf));
        n.set(CREATED_AT, secs(self.shard_created_s.unwrap_or(0)));
        n.set(LEAD_AT, 2);
        n.to_decimal()
    }

    /// Parses the decimal string form; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<SequenceNumber> {
        if s.is_empty() || s.len() > 58 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if s.len() <= 39 {
            return Self::decode_legacy(s);
        }
        let n = U192::from_decimal(s)?;
        // The leading 2 and nothing above it, version 2, a 63-bit sequence index, byte 00.
        if n.get(LEAD_AT, 8) != 2
            || n.get(0, VERSION_BITS) != 2
            || n.get(INDEX_AT + 63, 1) != 0
            || n.get(TIME_AT + TIME_BITS, BYTE1_BITS) != 0
        {
            return None;
        }
        let shard = n.get(SHARD_AT, SHARD_BITS) as u32;
        if n.get(NIBBLE_AT, NIBBLE_BITS) != u64::from(shard & 0xf) || shard > i32::MAX as u32 {
            return None;
        }
        let index = n.get(INDEX_AT, INDEX_BITS);
        Some(SequenceNumber {
            partition: shard as i32,
            offset: (index >> 1) as i64,
            record: index & 1 == 1,
            shard_created_s: Some(n.get(CREATED_AT, CREATED_BITS) as i64),
            time_s: n.get(TIME_AT, TIME_BITS) as i64,
        })
    }

    /// The shard a number that is none of ours names in AWS's oldest layout (version 0, what
    /// AWS and kinesalite read a small number as: the low 16 bits of the number plus 2^124
    /// when below it), for AWS's "It encodes shardId-…" answer; `None` for anything else.
    pub fn foreign_shard(s: &str) -> Option<i32> {
        if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut n: u128 = s.parse().ok()?;
        if n < 1 << 124 {
            n += 1 << 124;
        }
        // Hex digits 28..32 of the number (kinesalite's parseSequence, version 0).
        let hex = format!("{n:x}");
        i32::from_str_radix(hex.get(28..32)?, 16).ok()
    }

    /// Whether AWS would read `s` as a sequence number at all (SequenceNumberForOrdering):
    /// one of ours, or a number of AWS's older layouts (below 2^128).
    pub fn plausible(s: &str) -> bool {
        Self::decode(s).is_some()
            || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u128>().is_ok())
    }

    /// The earlier 38-digit layout: `2^126 | offset << 40 | partition << 8 | kind`.
    fn decode_legacy(s: &str) -> Option<SequenceNumber> {
        let n: u128 = s.parse().ok()?;
        let kind = n & 0xff;
        if n >> 126 != 1 || kind > 1 {
            return None;
        }
        Some(SequenceNumber {
            partition: ((n >> 8) & 0xffff_ffff) as u32 as i32,
            offset: ((n >> 40) & ((1u128 << 63) - 1)) as i64,
            record: kind == 1,
            shard_created_s: None,
            time_s: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kinesalite's parseSequence (db/index.js) for version 2, on the hex digits.
    fn kinesalite_fields(s: &str) -> (u64, u64, u64, u64, u64) {
        let mut n = U192::from_decimal(s).unwrap();
        let mut hex = String::new();
        while !n.is_zero() {
            hex.insert(0, char::from_digit(n.div_rem(16) as u32, 16).unwrap());
        }
        assert_eq!(hex.len(), 47, "{hex}");
        assert_eq!(&hex[46..], "2", "version");
        let p = |a: usize, b: usize| u64::from_str_radix(&hex[a..b], 16).unwrap();
        // shardCreateSecs, seqIx, byte1, seqTime, shardIx.
        (p(1, 10), p(11, 27), p(27, 29), p(29, 38), p(38, 46))
    }

    #[test]
    fn decimal_forms_round_trip() {
        let max = "6277101735386680763835789423207666416102355444464034512895"; // 2^192 - 1
        for text in [
            "0",
            "1",
            "9999999999999999999",
            "10000000000000000000",
            "10000000000000000001",
            "340282366920938463463374607431768211455",
            "49680898238223428291291118256736025936030311623725940738",
            max,
        ] {
            let n = U192::from_decimal(text).expect("in range");
            assert_eq!(n.to_decimal(), text);
        }
        for v in [0u128, 7, 1 << 64, u128::MAX / 3, u128::MAX] {
            let n = U192::from_decimal(&v.to_string()).expect("in range");
            assert_eq!(n.to_decimal(), v.to_string());
        }
    }

    #[test]
    fn layout_is_aws_version_2() {
        let created = 1_700_000_000_123;
        let s = SequenceNumber::record(6, 41, created, 1_700_000_500_999).encode();
        assert_eq!(s.len(), 56, "{s}");
        assert_eq!(
            kinesalite_fields(&s),
            (1_700_000_000, 83, 0, 1_700_000_500, 6)
        );
        // A real AWS number decodes with the same fields (shard 1, created 0x5bc5d871).
        let aws = "49589238005775633934916144566022322418012108603250442258";
        let d = SequenceNumber::decode(aws).unwrap();
        assert_eq!(d.partition, 1);
        assert_eq!(d.shard_created_s, Some(0x5bc5d871));
        assert_eq!(d.time_s, 0x5bc60327);
        assert_eq!(d.offset, 0x18 >> 1);
        assert_eq!(kinesalite_fields(aws).0, 0x5bc5d871);
    }

    #[test]
    fn round_trip_and_order() {
        let created = 1_600_000_000_000;
        let mut prev: Option<String> = None;
        for off in [0i64, 1, 2, 255, 256, 1 << 20, 1 << 40, (1 << 62) - 1] {
            let time = created + (off % 1_000_000) * 1000;
            let s = SequenceNumber::record(7, off, created, time).encode();
            assert_eq!(s.len(), 56, "{s}");
            assert_eq!(
                SequenceNumber::decode(&s),
                Some(SequenceNumber::record(7, off, created, time))
            );
            if let Some(prev) = prev {
                assert!(s > prev);
            }
            prev = Some(s);
        }
        let s = SequenceNumber::record(i32::MAX, 5, created, created).encode();
        assert_eq!(SequenceNumber::decode(&s).unwrap().partition, i32::MAX);
        // Gaps sort between records, whatever their times.
        let gap = SequenceNumber::gap(7, 5, created, created + 90_000).encode();
        let r4 = SequenceNumber::record(7, 4, created, created + 99_000).encode();
        let r5 = SequenceNumber::record(7, 5, created, created).encode();
        assert!(r4 < gap && gap < r5);
        let g =
            SequenceNumber::decode(&SequenceNumber::gap(7, 0, created, created).encode()).unwrap();
        assert_eq!((g.at(), g.after(), g.record), (0, 0, false));
        assert_eq!(SequenceNumber::record(7, 0, 0, 0).after(), 1);
        assert_eq!(SequenceNumber::decode("12"), None);
        assert_eq!(SequenceNumber::decode("abc"), None);
        assert_eq!(SequenceNumber::decode(&"9".repeat(56)), None);
        assert_eq!(SequenceNumber::decode(&"9".repeat(70)), None);
    }

    #[test]
    fn foreign_numbers_name_shards_as_aws_reads_them() {
        assert_eq!(SequenceNumber::foreign_shard("12345"), Some(12345));
        assert_eq!(SequenceNumber::foreign_shard("65537"), Some(1));
        assert_eq!(SequenceNumber::foreign_shard("x"), None);
        assert!(SequenceNumber::plausible("42"));
        assert!(!SequenceNumber::plausible("4x2"));
        assert!(!SequenceNumber::plausible(&"9".repeat(56)));
    }

    #[test]
    fn legacy_numbers_still_decode() {
        let n: u128 = (1 << 126) | (42u128 << 40) | (3u128 << 8) | 1;
        let d = SequenceNumber::decode(&n.to_string()).unwrap();
        assert_eq!((d.partition, d.offset, d.record), (3, 42, true));
        assert_eq!(d.shard_created_s, None);
    }
}
