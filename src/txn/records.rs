//! The records of `__transaction_state`, in Kafka's transaction-log format: the key is
//! `[version i16 = 0][transactional id: string]`, the value (version 0)
//! `[version i16][producer id i64][producer epoch i16][timeout ms i32][state i8]
//! [partitions: nullable array of (topic string, array of i32)][last update ms i64]
//! [start ms i64]`; a tombstone (no value) removes an expired transactional id.

use bytes::{Buf, BufMut};

use super::state::{TxnRecord, TxnState};

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The state of a transactional id after a transition.
    Txn(TxnRecord),
    /// The transactional id expired.
    Tombstone(String),
}

/// A record that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The key is missing.
    #[error("record without a key")]
    NoKey,
    /// A key or value version this broker does not know.
    #[error("unknown {0} version {1}")]
    Version(&'static str, i16),
    /// Bytes missing or invalid.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_i16(s.len().min(i16::MAX as usize) as i16);
    out.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn get_str(buf: &mut &[u8], what: &'static str) -> Result<String, RecordError> {
    if buf.remaining() < 2 {
        return Err(RecordError::Malformed(what));
    }
    let len = buf.get_i16();
    let len = usize::try_from(len).map_err(|_| RecordError::Malformed(what))?;
    if buf.remaining() < len {
        return Err(RecordError::Malformed(what));
    }
    let s = std::str::from_utf8(&buf[..len]).map_err(|_| RecordError::Malformed(what))?;
    let s = s.to_string();
    buf.advance(len);
    Ok(s)
}

/// The key of a transactional id.
pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.put_i16(0);
    put_str(&mut out, transactional_id);
    out
}

/// The value of a transactional id's state.
pub fn value(r: &TxnRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_i16(0);
    out.put_i64(r.producer_id);
    out.put_i16(r.producer_epoch);
    out.put_i32(r.timeout_ms);
    out.put_i8(r.state.code());
    // Partitions grouped by topic (the set is sorted by topic, then partition).
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &r.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    out.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut out, t);
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(p);
        }
    }
    out.put_i64(r.last_update_ms);
    out.put_i64(r.start_ms);
    out
}

/// Decodes one record of `__transaction_state`.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Record, RecordError> {
    let mut k = key.ok_or(RecordError::NoKey)?;
    if k.remaining() < 2 {
        return Err(RecordError::Malformed("key"));
    }
    let version = k.get_i16();
    if version != 0 {
        return Err(RecordError::Version("key", version));
    }
    let transactional_id = get_str(&mut k, "key")?;
    let Some(mut v) = value else {
        return Ok(Record::Tombstone(transactional_id));
    };
    let short = RecordError::Malformed("value");
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return Err(short);
    }
    let version = v.get_i16();
    if version != 0 {
        return Err(RecordError::Version("value", version));
    }
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8()).ok_or(RecordError::Malformed("state"))?;
    let mut partitions = std::collections::BTreeSet::new();
    let topics = v.get_i32();
    for _ in 0..topics.max(0) {
        let topic = get_str(&mut v, "value")?;
        if v.remaining() < 4 {
            return Err(RecordError::Malformed("value"));
        }
        let n = v.get_i32();
        if n < 0 || v.remaining() < n as usize * 4 {
            return Err(RecordError::Malformed("value"));
        }
        for _ in 0..n {
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return Err(RecordError::Malformed("value"));
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Ok(Record::Txn(TxnRecord {
        transactional_id,
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tombstone() {
        let r = TxnRecord {
            transactional_id: "tx-1".into(),
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1000,
            start_ms: 900,
        };
        let k = key("tx-1");
        let v = value(&r);
        assert_eq!(decode(Some(&k), Some(&v)).unwrap(), Record::Txn(r));
        assert_eq!(
            decode(Some(&k), None).unwrap(),
            Record::Tombstone("tx-1".into())
        );
        assert!(decode(Some(&k), Some(&v[..10])).is_err());
        assert!(decode(None, Some(&v)).is_err());
    }
}
