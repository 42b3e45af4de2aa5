//! The records the coordinator writes to `__consumer_offsets`, in Kafka's key/value layout
//! (non-flexible encodings: `string` = i16 length + UTF-8, nullable string length -1 for null,
//! `bytes` = i32 length, arrays = i32 count). Every key and value starts with an i16 version,
//! so the format can evolve; a record with a null value is a tombstone for its key.
//!
//! | key version | key fields                    | value (version written)                                 |
//! |------------:|-------------------------------|---------------------------------------------------------|
//! | 0, 1        | group, topic, partition (i32) | offset commit v3: offset i64, leader epoch i32, metadata string, commit timestamp i64 |
//! | 2           | group                         | group metadata v3: protocol type, generation i32, protocol (nullable), leader (nullable), state timestamp i64, members[] |
//! | 3 ..= 8     | group (and member)            | KIP-848 consumer groups, see [`super::consumer_records`]  |
//!
//! A member of group metadata v3 is: member id, group instance id (nullable), client id, client
//! host, rebalance timeout i32, session timeout i32, subscription bytes, assignment bytes.
//! Offset commit values v1 (offset, metadata, commit timestamp, expire timestamp) and v0 are
//! read too. See `docs/architecture.md` for how the records are replayed.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::consumer_records::ConsumerRecord;

/// Key version of an offset commit written by this broker.
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_KEY_VERSION: i16 = 2;
/// Value version of offset commits written by this broker.
const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version of group metadata written by this broker.
const GROUP_VALUE_VERSION: i16 = 3;

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset (the next record the group will read).
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Client-supplied metadata.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp: i64,
}

/// One member inside stored group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id of the member's connection.
    pub client_id: String,
    /// Client host (`/ip`).
    pub client_host: String,
    /// Rebalance timeout in ms.
    pub rebalance_timeout_ms: i32,
    /// Session timeout in ms.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// Group metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer` for consumers), empty if none.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch).
    pub state_timestamp: i64,
    /// Members with their assignments.
    pub members: Vec<MemberValue>,
}

/// A decoded record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A committed offset (`None` = tombstone: the offset was deleted or expired).
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The value, or `None` for a tombstone.
        value: Option<OffsetValue>,
    },
    /// Group metadata (`None` = tombstone: the group was deleted).
    Group {
        /// Group id.
        group: String,
        /// The value, or `None` for a tombstone.
        value: Option<GroupValue>,
    },
    /// A record of a KIP-848 consumer group (key versions 3 to 8).
    Consumer(ConsumerRecord),
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The key is missing (records of this topic always have keys).
    #[error("record without key")]
    NoKey,
    /// A key or value version this broker does not know (written by a newer one).
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// `key` or `value`.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// The bytes end early or hold an invalid length or UTF-8.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Encodes an offset commit key.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.to_vec()
}

/// Encodes an offset commit value.
pub fn offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_VALUE_VERSION);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.to_vec()
}

/// Encodes a group metadata key.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b.to_vec()
}

/// Encodes a group metadata value.
pub fn group_value(v: &GroupValue) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.to_vec()
}

/// Decodes a record from its key and value.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Record, RecordError> {
    let mut k = key.ok_or(RecordError::NoKey)?;
    let version = get_i16(&mut k, "key")?;
    match version {
        0 | 1 => {
            let group = get_str(&mut k, "key")?;
            let topic = get_str(&mut k, "key")?;
            let partition = get_i32(&mut k, "key")?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Record::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = get_str(&mut k, "key")?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Record::Group { group, value })
        }
        3..=8 => ConsumerRecord::decode(version, k, value).map(Record::Consumer),
        version => Err(RecordError::UnknownVersion {
            what: "key",
            version,
        }),
    }
}

fn decode_offset_value(mut v: &[u8]) -> Result<OffsetValue, RecordError> {
    const W: &str = "offset value";
    let version = get_i16(&mut v, W)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "offset value",
            version,
        });
    }
    let offset = get_i64(&mut v, W)?;
    let leader_epoch = if version >= 3 {
        get_i32(&mut v, W)?
    } else {
        -1
    };
    let metadata = get_str(&mut v, W)?;
    let commit_timestamp = get_i64(&mut v, W)?;
    // v1 carries an expire timestamp after the commit timestamp; it is ignored (expiry follows
    // offsets.retention.minutes, as in Kafka 2.1+).
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_value(mut v: &[u8]) -> Result<GroupValue, RecordError> {
    const W: &str = "group value";
    let version = get_i16(&mut v, W)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let protocol_type = get_str(&mut v, W)?;
    let generation = get_i32(&mut v, W)?;
    let protocol = get_nullable_str(&mut v, W)?;
    let leader = get_nullable_str(&mut v, W)?;
    let state_timestamp = if version >= 2 {
        get_i64(&mut v, W)?
    } else {
        -1
    };
    let count = get_i32(&mut v, W)?;
    if count < 0 {
        return Err(RecordError::Malformed(W));
    }
    let mut members = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let member_id = get_str(&mut v, W)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut v, W)?
        } else {
            None
        };
        let client_id = get_str(&mut v, W)?;
        let client_host = get_str(&mut v, W)?;
        let rebalance_timeout_ms = if version >= 1 {
            get_i32(&mut v, W)?
        } else {
            -1
        };
        let session_timeout_ms = get_i32(&mut v, W)?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        let subscription = get_bytes(&mut v, W)?;
        let assignment = get_bytes(&mut v, W)?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Group ids, topics and member ids are far below i16::MAX bytes (requests carry them as
    // Kafka strings, which have the same limit).
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_i16(-1),
        Some(s) => put_str(b, s),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn get_i16(b: &mut &[u8], what: &'static str) -> Result<i16, RecordError> {
    if b.remaining() < 2 {
        return Err(RecordError::Malformed(what));
    }
    Ok(b.get_i16())
}

fn get_i32(b: &mut &[u8], what: &'static str) -> Result<i32, RecordError> {
    if b.remaining() < 4 {
        return Err(RecordError::Malformed(what));
    }
    Ok(b.get_i32())
}

fn get_i64(b: &mut &[u8], what: &'static str) -> Result<i64, RecordError> {
    if b.remaining() < 8 {
        return Err(RecordError::Malformed(what));
    }
    Ok(b.get_i64())
}

fn get_nullable_str(b: &mut &[u8], what: &'static str) -> Result<Option<String>, RecordError> {
    let len = get_i16(b, what)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if b.remaining() < len {
        return Err(RecordError::Malformed(what));
    }
    let s = std::str::from_utf8(&b[..len])
        .map_err(|_| RecordError::Malformed(what))?
        .to_string();
    b.advance(len);
    Ok(Some(s))
}

fn get_str(b: &mut &[u8], what: &'static str) -> Result<String, RecordError> {
    get_nullable_str(b, what)?.ok_or(RecordError::Malformed(what))
}

fn get_bytes(b: &mut &[u8], what: &'static str) -> Result<Bytes, RecordError> {
    let len = get_i32(b, what)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    if b.remaining() < len {
        return Err(RecordError::Malformed(what));
    }
    let v = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_round_trip_and_tombstone() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        let key = offset_key("g", "t", 5);
        let rec = decode(Some(&key), Some(&offset_value(&v))).unwrap();
        assert_eq!(
            rec,
            Record::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(v)
            }
        );
        let rec = decode(Some(&key), None).unwrap();
        assert!(matches!(rec, Record::Offset { value: None, .. }));
    }

    #[test]
    fn group_round_trip() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("a-1".into()),
            state_timestamp: 12,
            members: vec![MemberValue {
                member_id: "a-1".into(),
                instance_id: Some("i".into()),
                client_id: "a".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode(Some(&group_key("grp")), Some(&group_value(&v))).unwrap();
        assert_eq!(
            rec,
            Record::Group {
                group: "grp".into(),
                value: Some(v)
            }
        );
    }

    #[test]
    fn malformed_and_unknown_versions_are_errors() {
        assert_eq!(decode(None, None), Err(RecordError::NoKey));
        assert!(matches!(
            decode(Some(&[0, 9, 0, 0]), None),
            Err(RecordError::UnknownVersion { what: "key", .. })
        ));
        let mut key = group_key("g");
        key.truncate(key.len() - 1);
        assert!(decode(Some(&key), None).is_err());
        let v = offset_value(&OffsetValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        });
        assert!(decode(Some(&offset_key("g", "t", 0)), Some(&v[..v.len() - 3])).is_err());
    }
}
