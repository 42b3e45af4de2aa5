//! Shard iterators: opaque, tamper-evident, expiring tokens of AWS's form.
//!
//! A token is standard base64 of the 8 bytes `00 00 00 00 00 00 00 01` that open AWS's (and
//! kinesalite's) iterators, then a body of AWS's length for the stream name (`144 + 16 ×
//! ⌊(name length + 2) / 16⌋` bytes, so 152 to 280 bytes in all, as kinesalite computes it):
//!
//! ```text
//! SIV (16) | encrypted: version u8 (=2) | created ms i64 | offset i64 | partition i32
//!   | topic id [16] | stream name length u8 | stream name | zero padding
//! ```
//!
//! The SIV is HMAC-SHA256(key, plaintext)[..16]; the plaintext is encrypted by XOR with an
//! HMAC-SHA256 keystream seeded by the SIV (a deterministic authenticated encryption: the
//! token reveals nothing and any change to it is detected). The key is per broker, kept in
//! `<log.dirs>/.esker-config/kinesis/iterator.key`, so iterators survive a restart. A token
//! that does not decrypt to a valid position is refused with `InvalidArgumentException`
//! ("Invalid ShardIterator."); one older than `kinesis.shard.iterator.ttl.ms` (5 minutes, as in
//! AWS) with `ExpiredIteratorException` in AWS's words. Tokens of the earlier layout (version 1:
//! plain fields and a MAC) are still read until they expire.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::error::KinesisError;

/// The earlier layout (read only).
const VERSION_1: u8 = 1;
/// The current layout.
const VERSION: u8 = 2;
const MAC_LEN: usize = 16;
const FIXED: usize = 1 + 8 + 8 + 4 + 16 + 1;
/// What opens every token.
const HEADER: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];

/// The body length of a token for a stream name of `name_len` bytes (kinesalite's formula).
fn body_len(name_len: usize) -> usize {
    144 + 16 * ((name_len + 2) / 16)
}

/// A position in a shard, as carried by an iterator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPosition {
    /// The stream (topic) name.
    pub stream: String,
    /// The topic id, so an iterator of a deleted and recreated stream is refused.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
    /// The next offset to read.
    pub offset: i64,
    /// When the iterator was issued (ms since the epoch).
    pub created_ms: i64,
}

/// The broker's iterator key.
pub struct IteratorKey {
    key: [u8; 32],
}

impl IteratorKey {
    /// Loads the key from `dir/iterator.key`, creating it (durably) on first use.
    pub fn load_or_create(dir: &Path) -> std::io::Result<IteratorKey> {
        let path = dir.join("iterator.key");
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(IteratorKey { key });
            }
        }
        let key = Self::random();
        std::fs::create_dir_all(dir)?;
        super::store::write_atomically(&path, &key.key)?;
        Ok(key)
    }

    /// A fresh random key (not stored).
    pub fn random() -> IteratorKey {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        IteratorKey { key }
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // HMAC takes keys of any length.
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) {
            for p in parts {
                m.update(p);
            }
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        out
    }

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&self.hmac(&[b"mac", bytes])[..MAC_LEN]);
        out
    }

    /// XORs `buf` with the keystream of `siv`.
    fn crypt(&self, siv: &[u8], buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_mut(32).enumerate() {
            let block = self.hmac(&[b"enc", siv, &(i as u32).to_be_bytes()]);
            for (b, k) in chunk.iter_mut().zip(block) {
                *b ^= k;
            }
        }
    }

    /// Encodes a position as a token.
    pub fn encode(&self, p: &ShardPosition) -> String {
        let name = p.stream.as_bytes();
        let name = &name[..name.len().min(255)];
        let mut plain = Vec::with_capacity(body_len(name.len()));
        plain.push(VERSION);
        plain.extend_from_slice(&p.created_ms.to_be_bytes());
        plain.extend_from_slice(&p.offset.to_be_bytes());
        plain.extend_from_slice(&p.partition.to_be_bytes());
        plain.extend_from_slice(p.topic_id.as_bytes());
        plain.push(name.len() as u8);
        plain.extend_from_slice(name);
        plain.resize(body_len(name.len()).max(plain.len()) - MAC_LEN, 0);
        let siv = self.mac(&plain);
        self.crypt(&siv, &mut plain);
        let mut buf = Vec::with_capacity(HEADER.len() + MAC_LEN + plain.len());
        buf.extend_from_slice(&HEADER);
        buf.extend_from_slice(&siv);
        buf.extend_from_slice(&plain);
        STANDARD.encode(buf)
    }

    /// Decodes and checks a token: integrity, then age against `ttl_ms` at `now_ms`.
    pub fn decode(
        &self,
        token: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<ShardPosition, KinesisError> {
        let invalid = || KinesisError::InvalidArgument("Invalid ShardIterator.".into());
        let buf = STANDARD.decode(token.trim()).map_err(|_| invalid())?;
        let body = match buf.strip_prefix(&HEADER[..]) {
            Some(sealed) if sealed.len() > MAC_LEN => {
                let (siv, cipher) = sealed.split_at(MAC_LEN);
                let mut plain = cipher.to_vec();
                self.crypt(siv, &mut plain);
                if !constant_time_eq(&self.mac(&plain), siv) || plain.first() != Some(&VERSION) {
                    return Err(invalid());
                }
                plain
            }
            _ => self.open_v1(&buf).ok_or_else(invalid)?,
        };
        if body.len() < FIXED {
            return Err(invalid());
        }
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let created_ms = i64_at(1);
        let offset = i64_at(9);
        let partition = i32::from_be_bytes([body[17], body[18], body[19], body[20]]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&body[21..37]);
        let len = body[37] as usize;
        let name = body.get(FIXED..FIXED + len).ok_or_else(invalid)?;
        let stream = String::from_utf8(name.to_vec()).map_err(|_| invalid())?;
        // Issued in the future (another broker's clock, or forged): as kinesalite.
        if created_ms <= 0 || created_ms > now_ms.saturating_add(CLOCK_SLACK_MS) {
            return Err(invalid());
        }
        if now_ms.saturating_sub(created_ms) > ttl_ms {
            return Err(KinesisError::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} \
                 which is further in the future than the tolerated delay of {ttl_ms} milliseconds.",
                amz_utc(created_ms),
                amz_utc(now_ms),
            )));
        }
        Ok(ShardPosition {
            stream,
            topic_id: Uuid::from_bytes(id),
            partition,
            offset,
            created_ms,
        })
    }

    /// The fields of a version-1 token (plain fields, then a MAC over them), if it is one.
    fn open_v1(&self, buf: &[u8]) -> Option<Vec<u8>> {
        if buf.len() < FIXED + MAC_LEN || buf[0] != VERSION_1 {
            return None;
        }
        let (body, mac) = buf.split_at(buf.len() - MAC_LEN);
        let mut expected = [0u8; MAC_LEN];
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) {
            m.update(body);
            expected.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
        }
        if !constant_time_eq(&expected, mac) || body.len() != FIXED + body[37] as usize {
            return None;
        }
        Some(body.to_vec())
    }
}

/// How far in the future an iterator's creation time may be (clocks of a cluster's nodes).
const CLOCK_SLACK_MS: i64 = 5_000;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A time as Java's `Date.toString()` in UTC, which AWS's messages use:
/// `Thu Jan 22 01:22:02 UTC 2015`.
pub fn amz_utc(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = super::sigv4::civil_from_days(days);
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m.clamp(1, 12) - 1) as usize],
        s / 3600,
        (s / 60) % 60,
        s % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> ShardPosition {
        ShardPosition {
            stream: "orders".into(),
            topic_id: Uuid::new_v4(),
            partition: 3,
            offset: 42,
            created_ms: 1_000_000,
        }
    }

    #[test]
    fn round_trip_tamper_and_expiry() {
        let key = IteratorKey::random();
        let p = pos();
        let t = key.encode(&p);
        assert_eq!(key.decode(&t, 1_000_100, 300_000), Ok(p.clone()));
        // Another broker's key.
        let other = IteratorKey::random();
        assert!(matches!(
            other.decode(&t, 1_000_100, 300_000),
            Err(KinesisError::InvalidArgument(_))
        ));
        // A flipped byte.
        let mut raw = STANDARD.decode(&t).unwrap();
        raw[10] ^= 1;
        let bad = STANDARD.encode(raw);
        assert!(matches!(
            key.decode(&bad, 1_000_100, 300_000),
            Err(KinesisError::InvalidArgument(_))
        ));
        assert!(matches!(
            key.decode("not base64!", 0, 300_000),
            Err(KinesisError::InvalidArgument(_))
        ));
        assert!(matches!(
            key.decode(&t, 1_000_000 + 300_001, 300_000),
            Err(KinesisError::ExpiredIterator(_))
        ));
    }

    #[test]
    fn aws_form_and_length() {
        let key = IteratorKey::random();
        for n in [1usize, 6, 13, 14, 30, 128] {
            let p = ShardPosition {
                stream: "s".repeat(n),
                ..pos()
            };
            let t = key.encode(&p);
            let raw = STANDARD.decode(&t).unwrap();
            // kinesalite: 152 + 16 * floor((name length + 2) / 16) bytes.
            assert_eq!(raw.len(), 152 + 16 * ((n + 2) / 16), "name length {n}");
            assert_eq!(raw[..8], HEADER, "{t}");
            assert!(t.starts_with("AAAAAAAAAA"), "{t}");
            assert!(!raw.windows(n).any(|w| w == p.stream.as_bytes()) || n < 3);
            assert_eq!(key.decode(&t, 1_000_100, 300_000), Ok(p));
        }
    }

    #[test]
    fn expiry_message_and_future_tokens() {
        let key = IteratorKey::random();
        let p = ShardPosition {
            created_ms: 1_421_889_722_000,
            ..pos()
        };
        let t = key.encode(&p);
        let Err(KinesisError::ExpiredIterator(m)) = key.decode(&t, 1_421_890_022_001, 300_000)
        else {
            panic!("not expired")
        };
        assert_eq!(
            m,
            "Iterator expired. The iterator was created at time Thu Jan 22 01:22:02 UTC 2015 \
             while right now it is Thu Jan 22 01:27:02 UTC 2015 which is further in the future \
             than the tolerated delay of 300000 milliseconds."
        );
        assert!(matches!(
            key.decode(&t, 1_421_889_000_000, 300_000),
            Err(KinesisError::InvalidArgument(_))
        ));
    }

    #[test]
    fn version_1_tokens_still_read() {
        let key = IteratorKey::random();
        let p = pos();
        let mut buf = vec![VERSION_1];
        buf.extend_from_slice(&p.created_ms.to_be_bytes());
        buf.extend_from_slice(&p.offset.to_be_bytes());
        buf.extend_from_slice(&p.partition.to_be_bytes());
        buf.extend_from_slice(p.topic_id.as_bytes());
        buf.push(p.stream.len() as u8);
        buf.extend_from_slice(p.stream.as_bytes());
        let mut m = Hmac::<Sha256>::new_from_slice(&key.key).unwrap();
        m.update(&buf);
        buf.extend_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
        assert_eq!(key.decode(&STANDARD.encode(buf), 1_000_100, 300_000), Ok(p));
    }

    #[test]
    fn key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = IteratorKey::load_or_create(dir.path()).unwrap();
        let b = IteratorKey::load_or_create(dir.path()).unwrap();
        let t = a.encode(&pos());
        assert!(b.decode(&t, 1_000_000, 300_000).is_ok());
    }
}
