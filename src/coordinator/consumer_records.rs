//! The records of KIP-848 consumer groups in `__consumer_offsets`, in Kafka's layout (the
//! group-coordinator message schemas `ConsumerGroup*Key` / `ConsumerGroup*Value`):
//!
//! | key version | key                | value (version 0, flexible encoding)                       |
//! |------------:|--------------------|------------------------------------------------------------|
//! | 3           | group              | group epoch                                                 |
//! | 4           | group              | subscription metadata: topics (id, name, partitions)        |
//! | 5           | group, member      | member: instance, rack, client id/host, topic names, regex, rebalance timeout, server assignor |
//! | 6           | group              | target assignment epoch                                     |
//! | 7           | group, member      | the member's target assignment                              |
//! | 8           | group, member      | current assignment: epoch, previous epoch, state, assigned, pending revocation |
//!
//! Keys are non-flexible (i16 version, `string` = i16 length + UTF-8). Values start with an i16
//! version and use the flexible encoding: compact strings and arrays (an unsigned varint of
//! the length plus one, 0 for null), 16-byte uuids, and a tagged-field section after every
//! struct (written empty; read and skipped, so fields Kafka adds as tags do not break
//! replay). A record with no value is a tombstone for its key.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, BytesMut};
use uuid::Uuid;

use super::assignor::TopicPartitions;
use super::records::RecordError;

/// Key version of the group epoch record.
pub const GROUP_EPOCH_KEY: i16 = 3;
/// Key version of the subscription metadata record.
pub const SUBSCRIPTION_KEY: i16 = 4;
/// Key version of the member metadata record.
pub const MEMBER_KEY: i16 = 5;
/// Key version of the target assignment epoch record.
pub const TARGET_EPOCH_KEY: i16 = 6;
/// Key version of a member's target assignment record.
pub const TARGET_MEMBER_KEY: i16 = 7;
/// Key version of a member's current assignment record.
pub const CURRENT_ASSIGNMENT_KEY: i16 = 8;

/// The only value version of these records.
const VALUE_VERSION: i16 = 0;

/// What a member subscribed with (`ConsumerGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host (`/ip`).
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed topic regular expression.
    pub subscribed_topic_regex: Option<String>,
    /// Rebalance timeout in ms.
    pub rebalance_timeout_ms: i32,
    /// The server-side assignor the member asked for.
    pub server_assignor: Option<String>,
}

/// Where a member stands (`ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    /// The epoch the member must heartbeat with.
    pub member_epoch: i32,
    /// The epoch before the last bump (accepted if the bump's answer was lost).
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState`: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    /// Partitions the member owns.
    pub assigned: TopicPartitions,
    /// Partitions the member must revoke.
    pub pending_revocation: TopicPartitions,
}

/// Subscription metadata: a subscribed topic as the target assignment saw it.
pub type SubscribedTopics = BTreeMap<String, (Uuid, i32)>;

/// A KIP-848 record (`None` values are tombstones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// Key 3: the group epoch.
    GroupEpoch {
        /// Group id.
        group: String,
        /// The epoch, or `None` for a tombstone (the group is gone).
        epoch: Option<i32>,
    },
    /// Key 4: the subscribed topics' metadata.
    Subscription {
        /// Group id.
        group: String,
        /// Topics by name, or `None` for a tombstone.
        topics: Option<SubscribedTopics>,
    },
    /// Key 5: a member's subscription.
    Member {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The metadata, or `None` for a tombstone (the member left).
        value: Option<MemberMetadata>,
    },
    /// Key 6: the epoch of the target assignment.
    TargetEpoch {
        /// Group id.
        group: String,
        /// The epoch, or `None` for a tombstone.
        epoch: Option<i32>,
    },
    /// Key 7: a member's target assignment.
    TargetMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The target, or `None` for a tombstone.
        partitions: Option<TopicPartitions>,
    },
    /// Key 8: a member's current assignment.
    Current {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The assignment, or `None` for a tombstone.
        value: Option<CurrentAssignment>,
    },
}

impl ConsumerRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            ConsumerRecord::GroupEpoch { group, .. }
            | ConsumerRecord::Subscription { group, .. }
            | ConsumerRecord::Member { group, .. }
            | ConsumerRecord::TargetEpoch { group, .. }
            | ConsumerRecord::TargetMember { group, .. }
            | ConsumerRecord::Current { group, .. } => group,
        }
    }

    /// Encodes the record as `(key, value)`; a tombstone has no value.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut k = BytesMut::new();
        let value = match self {
            ConsumerRecord::GroupEpoch { group, epoch } => {
                key(&mut k, GROUP_EPOCH_KEY, group, None);
                epoch.map(|e| value(|v| v.put_i32(e)))
            }
            ConsumerRecord::Subscription { group, topics } => {
                key(&mut k, SUBSCRIPTION_KEY, group, None);
                topics.as_ref().map(|ts| {
                    value(|v| {
                        put_len(v, ts.len());
                        for (name, (id, partitions)) in ts {
                            v.put_slice(id.as_bytes());
                            put_compact_str(v, Some(name));
                            v.put_i32(*partitions);
                            put_len(v, 0); // per-partition racks: not used since Kafka 4.0
                            put_uvarint(v, 0);
                        }
                    })
                })
            }
            ConsumerRecord::Member {
                group,
                member,
                value: m,
            } => {
                key(&mut k, MEMBER_KEY, group, Some(member));
                m.as_ref().map(|m| {
                    value(|v| {
                        put_compact_str(v, m.instance_id.as_deref());
                        put_compact_str(v, m.rack_id.as_deref());
                        put_compact_str(v, Some(&m.client_id));
                        put_compact_str(v, Some(&m.client_host));
                        put_len(v, m.subscribed_topic_names.len());
                        for t in &m.subscribed_topic_names {
                            put_compact_str(v, Some(t));
                        }
                        put_compact_str(v, m.subscribed_topic_regex.as_deref());
                        v.put_i32(m.rebalance_timeout_ms);
                        put_compact_str(v, m.server_assignor.as_deref());
                    })
                })
            }
            ConsumerRecord::TargetEpoch { group, epoch } => {
                key(&mut k, TARGET_EPOCH_KEY, group, None);
                epoch.map(|e| value(|v| v.put_i32(e)))
            }
            ConsumerRecord::TargetMember {
                group,
                member,
                partitions,
            } => {
                key(&mut k, TARGET_MEMBER_KEY, group, Some(member));
                partitions
                    .as_ref()
                    .map(|ps| value(|v| put_topic_partitions(v, ps)))
            }
            ConsumerRecord::Current {
                group,
                member,
                value: c,
            } => {
                key(&mut k, CURRENT_ASSIGNMENT_KEY, group, Some(member));
                c.as_ref().map(|c| {
                    value(|v| {
                        v.put_i32(c.member_epoch);
                        v.put_i32(c.previous_member_epoch);
                        v.put_i8(c.state);
                        put_topic_partitions(v, &c.assigned);
                        put_topic_partitions(v, &c.pending_revocation);
                    })
                })
            }
        };
        (k.to_vec(), value)
    }

    /// Decodes a record whose key version (already read) is 3..=8; `k` is the rest of the key.
    pub fn decode(
        version: i16,
        mut k: &[u8],
        value: Option<&[u8]>,
    ) -> Result<ConsumerRecord, RecordError> {
        let group = get_str(&mut k)?;
        let mut member = || get_str(&mut k);
        Ok(match version {
            GROUP_EPOCH_KEY => ConsumerRecord::GroupEpoch {
                group,
                epoch: value.map(|v| read_value(v, get_i32)).transpose()?,
            },
            SUBSCRIPTION_KEY => ConsumerRecord::Subscription {
                group,
                topics: value.map(|v| read_value(v, get_topics)).transpose()?,
            },
            MEMBER_KEY => ConsumerRecord::Member {
                group,
                member: member()?,
                value: value.map(|v| read_value(v, get_member)).transpose()?,
            },
            TARGET_EPOCH_KEY => ConsumerRecord::TargetEpoch {
                group,
                epoch: value.map(|v| read_value(v, get_i32)).transpose()?,
            },
            TARGET_MEMBER_KEY => ConsumerRecord::TargetMember {
                group,
                member: member()?,
                partitions: value
                    .map(|v| read_value(v, get_topic_partitions))
                    .transpose()?,
            },
            CURRENT_ASSIGNMENT_KEY => ConsumerRecord::Current {
                group,
                member: member()?,
                value: value.map(|v| read_value(v, get_current)).transpose()?,
            },
            version => {
                return Err(RecordError::UnknownVersion {
                    what: "key",
                    version,
                })
            }
        })
    }
}

const W: &str = "consumer group record";

fn key(b: &mut BytesMut, version: i16, group: &str, member: Option<&str>) {
    b.put_i16(version);
    put_str(b, group);
    if let Some(m) = member {
        put_str(b, m);
    }
}

/// A value: version, the fields `body` writes, and the (empty) top-level tagged fields.
fn value(body: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    body(&mut v);
    put_uvarint(&mut v, 0);
    v.to_vec()
}

/// Reads a value: checks its version, reads the fields, then skips the tagged fields.
fn read_value<T>(
    mut v: &[u8],
    body: impl FnOnce(&mut &[u8]) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    if v.remaining() < 2 {
        return Err(RecordError::Malformed(W));
    }
    let version = v.get_i16();
    if version != VALUE_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "consumer group value",
            version,
        });
    }
    let out = body(&mut v)?;
    skip_tags(&mut v)?;
    Ok(out)
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Ids are far below i16::MAX bytes (requests carry them as Kafka strings).
    let n = s.len().min(i16::MAX as usize);
    b.put_i16(n as i16);
    b.put_slice(&s.as_bytes()[..n]);
}

fn get_str(b: &mut &[u8]) -> Result<String, RecordError> {
    if b.remaining() < 2 {
        return Err(RecordError::Malformed(W));
    }
    let n = usize::try_from(b.get_i16()).map_err(|_| RecordError::Malformed(W))?;
    take_utf8(b, n)
}

fn take_utf8(b: &mut &[u8], n: usize) -> Result<String, RecordError> {
    if b.remaining() < n {
        return Err(RecordError::Malformed(W));
    }
    let s = std::str::from_utf8(&b[..n])
        .map_err(|_| RecordError::Malformed(W))?
        .to_string();
    b.advance(n);
    Ok(s)
}

fn put_uvarint(b: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        b.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    b.put_u8(n as u8);
}

fn get_uvarint(b: &mut &[u8]) -> Result<u64, RecordError> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return Err(RecordError::Malformed(W));
        }
        let byte = b.get_u8();
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(RecordError::Malformed(W))
}

/// A compact array or string length (stored + 1).
fn put_len(b: &mut BytesMut, n: usize) {
    put_uvarint(b, n as u64 + 1);
}

/// A compact length: `None` for null; checked against the bytes left (each element takes at
/// least `min_size` bytes), so a corrupt count cannot make us allocate.
fn get_len(b: &mut &[u8], min_size: usize) -> Result<Option<usize>, RecordError> {
    let n = get_uvarint(b)?;
    if n == 0 {
        return Ok(None);
    }
    let n = usize::try_from(n - 1).map_err(|_| RecordError::Malformed(W))?;
    if n.saturating_mul(min_size) > b.remaining() {
        return Err(RecordError::Malformed(W));
    }
    Ok(Some(n))
}

fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_len(b, s.len());
            b.put_slice(s.as_bytes());
        }
    }
}

fn get_compact_nullable_str(b: &mut &[u8]) -> Result<Option<String>, RecordError> {
    match get_len(b, 1)? {
        None => Ok(None),
        Some(n) => take_utf8(b, n).map(Some),
    }
}

fn get_compact_str(b: &mut &[u8]) -> Result<String, RecordError> {
    get_compact_nullable_str(b)?.ok_or(RecordError::Malformed(W))
}

fn get_i32(b: &mut &[u8]) -> Result<i32, RecordError> {
    if b.remaining() < 4 {
        return Err(RecordError::Malformed(W));
    }
    Ok(b.get_i32())
}

fn get_uuid(b: &mut &[u8]) -> Result<Uuid, RecordError> {
    if b.remaining() < 16 {
        return Err(RecordError::Malformed(W));
    }
    let mut id = [0u8; 16];
    b.copy_to_slice(&mut id);
    Ok(Uuid::from_bytes(id))
}

fn skip_tags(b: &mut &[u8]) -> Result<(), RecordError> {
    let count = get_uvarint(b)?;
    for _ in 0..count {
        get_uvarint(b)?;
        let size = usize::try_from(get_uvarint(b)?).map_err(|_| RecordError::Malformed(W))?;
        if b.remaining() < size {
            return Err(RecordError::Malformed(W));
        }
        b.advance(size);
    }
    Ok(())
}

fn put_topic_partitions(b: &mut BytesMut, tps: &TopicPartitions) {
    put_len(b, tps.len());
    for (id, ps) in tps {
        b.put_slice(id.as_bytes());
        put_len(b, ps.len());
        for p in ps {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

fn get_topic_partitions(b: &mut &[u8]) -> Result<TopicPartitions, RecordError> {
    let n = get_len(b, 18)?.unwrap_or(0);
    let mut out = TopicPartitions::new();
    for _ in 0..n {
        let id = get_uuid(b)?;
        let count = get_len(b, 4)?.unwrap_or(0);
        let mut ps = BTreeSet::new();
        for _ in 0..count {
            ps.insert(get_i32(b)?);
        }
        skip_tags(b)?;
        if !ps.is_empty() {
            out.entry(id).or_default().extend(ps);
        }
    }
    Ok(out)
}

fn get_topics(b: &mut &[u8]) -> Result<SubscribedTopics, RecordError> {
    let n = get_len(b, 23)?.unwrap_or(0);
    let mut out = SubscribedTopics::new();
    for _ in 0..n {
        let id = get_uuid(b)?;
        let name = get_compact_str(b)?;
        let partitions = get_i32(b)?;
        // Per-partition racks (deprecated): read and dropped.
        let racks = get_len(b, 6)?.unwrap_or(0);
        for _ in 0..racks {
            get_i32(b)?;
            let names = get_len(b, 1)?.unwrap_or(0);
            for _ in 0..names {
                get_compact_str(b)?;
            }
            skip_tags(b)?;
        }
        skip_tags(b)?;
        out.insert(name, (id, partitions));
    }
    Ok(out)
}

fn get_member(b: &mut &[u8]) -> Result<MemberMetadata, RecordError> {
    let instance_id = get_compact_nullable_str(b)?;
    let rack_id = get_compact_nullable_str(b)?;
    let client_id = get_compact_str(b)?;
    let client_host = get_compact_str(b)?;
    let n = get_len(b, 1)?.unwrap_or(0);
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(get_compact_str(b)?);
    }
    let subscribed_topic_regex = get_compact_nullable_str(b)?;
    let rebalance_timeout_ms = get_i32(b)?;
    let server_assignor = get_compact_nullable_str(b)?;
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn get_current(b: &mut &[u8]) -> Result<CurrentAssignment, RecordError> {
    let member_epoch = get_i32(b)?;
    let previous_member_epoch = get_i32(b)?;
    if !b.has_remaining() {
        return Err(RecordError::Malformed(W));
    }
    let state = b.get_i8();
    let assigned = get_topic_partitions(b)?;
    let pending_revocation = get_topic_partitions(b)?;
    Ok(CurrentAssignment {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::records::{decode, Record};

    fn tps(id: Uuid, ps: &[i32]) -> TopicPartitions {
        [(id, ps.iter().copied().collect())].into_iter().collect()
    }

    fn samples() -> Vec<ConsumerRecord> {
        let t = Uuid::new_v4();
        let g = || "grp".to_string();
        let m = || "member-1".to_string();
        vec![
            ConsumerRecord::GroupEpoch {
                group: g(),
                epoch: Some(7),
            },
            ConsumerRecord::Subscription {
                group: g(),
                topics: Some([("orders-1".to_string(), (t, 6))].into_iter().collect()),
            },
            ConsumerRecord::Member {
                group: g(),
                member: m(),
                value: Some(MemberMetadata {
                    instance_id: Some("i-1".into()),
                    rack_id: None,
                    client_id: "rdkafka".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into(), "b".into()],
                    subscribed_topic_regex: Some("(^orders-.*)".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                }),
            },
            ConsumerRecord::TargetEpoch {
                group: g(),
                epoch: Some(7),
            },
            ConsumerRecord::TargetMember {
                group: g(),
                member: m(),
                partitions: Some(tps(t, &[0, 2, 4])),
            },
            ConsumerRecord::Current {
                group: g(),
                member: m(),
                value: Some(CurrentAssignment {
                    member_epoch: 7,
                    previous_member_epoch: 6,
                    state: 1,
                    assigned: tps(t, &[0, 2]),
                    pending_revocation: tps(t, &[5]),
                }),
            },
        ]
    }

    fn tombstone(r: &ConsumerRecord) -> ConsumerRecord {
        let mut r = r.clone();
        match &mut r {
            ConsumerRecord::GroupEpoch { epoch, .. }
            | ConsumerRecord::TargetEpoch { epoch, .. } => *epoch = None,
            ConsumerRecord::Subscription { topics, .. } => *topics = None,
            ConsumerRecord::Member { value, .. } => *value = None,
            ConsumerRecord::TargetMember { partitions, .. } => *partitions = None,
            ConsumerRecord::Current { value, .. } => *value = None,
        }
        r
    }

    #[test]
    fn round_trip_and_tombstones() {
        for r in samples() {
            let (k, v) = r.encode();
            assert!(v.is_some());
            let back = decode(Some(&k), v.as_deref()).expect("decodes");
            assert_eq!(back, Record::Consumer(r.clone()));
            let t = tombstone(&r);
            let (tk, tv) = t.encode();
            assert_eq!(tk, k, "a tombstone has the same key");
            assert!(tv.is_none());
            assert_eq!(
                decode(Some(&tk), None).expect("decodes"),
                Record::Consumer(t)
            );
        }
    }

    #[test]
    fn key_layout_matches_kafka() {
        let (k, v) = ConsumerRecord::GroupEpoch {
            group: "g".into(),
            epoch: Some(5),
        }
        .encode();
        assert_eq!(k, [0, 3, 0, 1, b'g']);
        // version 0, epoch, no tagged fields.
        assert_eq!(v.expect("value"), [0, 0, 0, 0, 0, 5, 0]);
        let (k, _) = ConsumerRecord::Current {
            group: "g".into(),
            member: "m".into(),
            value: None,
        }
        .encode();
        assert_eq!(k, [0, 8, 0, 1, b'g', 0, 1, b'm']);
    }

    #[test]
    fn tagged_fields_are_skipped() {
        // A member value with a tagged field (ClassicMemberMetadata, tag 0) is still read.
        let r = &samples()[2];
        let (k, v) = r.encode();
        let mut v = v.expect("value");
        v.pop(); // the empty tag section
        v.extend_from_slice(&[1, 0, 3, 9, 9, 9]);
        assert_eq!(decode(Some(&k), Some(&v)), Ok(Record::Consumer(r.clone())));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        for r in samples() {
            let (k, v) = r.encode();
            let v = v.expect("value");
            for cut in 0..v.len() {
                assert!(
                    decode(Some(&k), Some(&v[..cut])).is_err(),
                    "{r:?} cut at {cut}"
                );
            }
            for cut in 2..k.len() {
                assert!(decode(Some(&k[..cut]), None).is_err());
            }
            let mut wrong = v.clone();
            wrong[1] = 9;
            assert!(matches!(
                decode(Some(&k), Some(&wrong)),
                Err(RecordError::UnknownVersion { .. })
            ));
        }
        // A huge array count does not allocate or panic.
        let (k, _) = samples()[4].encode();
        let v = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode(Some(&k), Some(&v)).is_err());
    }
}
