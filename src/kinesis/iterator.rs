//! Shard iterators: opaque, tamper-evident, expiring tokens.
//!
//! A token is standard base64 of
//!
//! ```text
//! version u8 (=1) | created ms i64 | offset i64 | partition i32 | topic id [16]
//!   | stream name length u8 | stream name | HMAC-SHA256(key, all of the above)[..16]
//! ```
//!
//! The key is per broker, kept in `<log.dirs>/.esker-config/kinesis/iterator.key`, so iterators
//! survive a restart. A token whose MAC does not match is refused with
//! `InvalidArgumentException`; one older than `kinesis.shard.iterator.ttl.ms` (5 minutes, as in
//! AWS) with `ExpiredIteratorException`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::error::KinesisError;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const FIXED: usize = 1 + 8 + 8 + 4 + 16 + 1;

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

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        // HMAC takes keys of any length.
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) {
            m.update(bytes);
            out.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
        }
        out
    }

    /// Encodes a position as a token.
    pub fn encode(&self, p: &ShardPosition) -> String {
        let name = p.stream.as_bytes();
        let name = &name[..name.len().min(255)];
        let mut buf = Vec::with_capacity(FIXED + name.len() + MAC_LEN);
        buf.push(VERSION);
        buf.extend_from_slice(&p.created_ms.to_be_bytes());
        buf.extend_from_slice(&p.offset.to_be_bytes());
        buf.extend_from_slice(&p.partition.to_be_bytes());
        buf.extend_from_slice(p.topic_id.as_bytes());
        buf.push(name.len() as u8);
        buf.extend_from_slice(name);
        let mac = self.mac(&buf);
        buf.extend_from_slice(&mac);
        STANDARD.encode(buf)
    }

    /// Decodes and checks a token: MAC, then age against `ttl_ms` at `now_ms`.
    pub fn decode(
        &self,
        token: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<ShardPosition, KinesisError> {
        let invalid = || KinesisError::InvalidArgument("Invalid ShardIterator.".into());
        let buf = STANDARD.decode(token.trim()).map_err(|_| invalid())?;
        if buf.len() < FIXED + MAC_LEN || buf[0] != VERSION {
            return Err(invalid());
        }
        let (body, mac) = buf.split_at(buf.len() - MAC_LEN);
        let expected = self.mac(body);
        // Constant-time comparison.
        if expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        {
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
        if body.len() != FIXED + len {
            return Err(invalid());
        }
        let stream = String::from_utf8(body[FIXED..].to_vec()).map_err(|_| invalid())?;
        if now_ms.saturating_sub(created_ms) > ttl_ms {
            return Err(KinesisError::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} \
                 which is further in the future than the tolerated delay of {ttl_ms} milliseconds.",
                super::model::format_time(created_ms),
                super::model::format_time(now_ms),
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
    fn key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = IteratorKey::load_or_create(dir.path()).unwrap();
        let b = IteratorKey::load_or_create(dir.path()).unwrap();
        let t = a.encode(&pos());
        assert!(b.decode(&t, 1_000_000, 300_000).is_ok());
    }
}
