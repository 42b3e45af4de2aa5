//! The 128-bit hash-key space of a stream: MD5 of a partition key, explicit hash keys, and the
//! even split of the space over n shards.

use md5::{Digest, Md5};

/// An inclusive range of the hash-key space owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRange {
    /// StartingHashKey.
    pub start: u128,
    /// EndingHashKey (inclusive).
    pub end: u128,
}

impl HashRange {
    /// The whole space, [0, 2^128 - 1].
    pub const ALL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    /// Whether `key` falls in the range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }
}

/// The hash key of a partition key: its MD5 digest read as a big-endian unsigned integer.
pub fn hash_key(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key).into())
}

/// Splits [0, 2^128) evenly over `n` shards: step = floor(2^128 / n), shard i owns
/// [i·step, (i+1)·step − 1], the last one ending at 2^128 − 1 (as Kinesis does).
pub fn even_ranges(n: u32) -> Vec<HashRange> {
    let n = n.max(1);
    if n == 1 {
        return vec![HashRange::ALL];
    }
    let n128 = u128::from(n);
    // floor(2^128 / n) from floor((2^128 - 1) / n): one more when n divides 2^128.
    let step = u128::MAX / n128 + u128::from(u128::MAX % n128 == n128 - 1);
    (0..n128)
        .map(|i| HashRange {
            start: i * step,
            end: if i == n128 - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            },
        })
        .collect()
}

/// Why a decimal hash key is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKeyError {
    /// Not `0|([1-9]\d{0,38})`.
    Pattern,
    /// Larger than 2^128 − 1.
    OutOfRange,
}

/// Parses a decimal hash key (ExplicitHashKey, NewStartingHashKey).
pub fn parse_hash_key(s: &str) -> Result<u128, HashKeyError> {
    let pattern_ok = !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !pattern_ok {
        return Err(HashKeyError::Pattern);
    }
    s.parse::<u128>().map_err(|_| HashKeyError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_matches_kinesis() {
        let r = even_ranges(1);
        assert_eq!(r, vec![HashRange::ALL]);
        let r = even_ranges(2);
        assert_eq!(r[0].start, 0);
        assert_eq!(r[0].end, (1u128 << 127) - 1);
        assert_eq!(r[1].start, 1u128 << 127);
        assert_eq!(r[1].end, u128::MAX);
        // 3 shards: the figures AWS shows for a 3-shard stream.
        let r = even_ranges(3);
        assert_eq!(
            r[0].end.to_string(),
            "113427455640312821154458202477256070484"
        );
        assert_eq!(
            r[1].start.to_string(),
            "113427455640312821154458202477256070485"
        );
        assert_eq!(r[2].end, u128::MAX);
        for n in 1..40u32 {
            let r = even_ranges(n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().map(|x| x.end), Some(u128::MAX));
            for w in r.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start);
            }
        }
    }

    #[test]
    fn md5_and_parse() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(parse_hash_key("0"), Ok(0));
        assert_eq!(parse_hash_key(&u128::MAX.to_string()), Ok(u128::MAX));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            Err(HashKeyError::OutOfRange)
        );
        assert_eq!(parse_hash_key("01"), Err(HashKeyError::Pattern));
        assert_eq!(parse_hash_key("-1"), Err(HashKeyError::Pattern));
        assert_eq!(parse_hash_key(""), Err(HashKeyError::Pattern));
    }
}
