//! GetShardIterator: resolves the iterator type to an offset of the shard's partition —
//! TRIM_HORIZON the log start, LATEST the log end, AT/AFTER_SEQUENCE_NUMBER the sequence
//! number's offset (or the next), AT_TIMESTAMP the first record at or after the time (the
//! ListOffsets lookup of the time index) — and issues a signed iterator for it.

use super::{parse_shard_id, required, shard_id, stream_name_of, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::iterator::ShardPosition;
use crate::kinesis::model::{GetShardIteratorInput, GetShardIteratorOutput, Timestamp};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// AWS's message for an iterator type and StartingSequenceNumber that do not go together.
fn type_and_sequence_mismatch(kind: &str, has_sequence: bool) -> KinesisError {
    KinesisError::InvalidArgument(format!(
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
         StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
         Request specified {kind} and {} StartingSequenceNumber.",
        if has_sequence { "also a" } else { "no" }
    ))
}

/// The offset a starting position of `kind` (an iterator type) names in `partition`, with
/// AWS's checks and messages (`operation` names the call in them), in AWS's order: the
/// sequence number's presence for the type, its form, its shard, its stream; the timestamp's
/// presence and that it is not in the future.
pub(crate) async fn resolve(
    k: &Kinesis,
    stream: &Stream,
    partition: i32,
    kind: &str,
    sequence_number: Option<&str>,
    timestamp: Option<Timestamp>,
    operation: &str,
) -> Result<i64, KinesisError> {
    let kinds = [
        "AT_SEQUENCE_NUMBER",
        "AFTER_SEQUENCE_NUMBER",
        "TRIM_HORIZON",
        "LATEST",
        "AT_TIMESTAMP",
    ];
    if !kinds.contains(&kind) {
        return Err(KinesisError::validation(
            kind,
            "shardIteratorType",
            &format!("Member must satisfy enum value set: [{}]", kinds.join(", ")),
        ));
    }
    let name = &stream.name;
    let shard = shard_id(partition);
    let account = crate::kinesis::ACCOUNT_ID;
    let sequence = match (kind, sequence_number) {
        ("TRIM_HORIZON" | "LATEST", Some(_)) => return Err(type_and_sequence_mismatch(kind, true)),
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
            return Err(type_and_sequence_mismatch(kind, false))
        }
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", Some(raw)) => {
            let invalid = |why: &str| {
                KinesisError::InvalidArgument(format!(
                    "StartingSequenceNumber {raw} used in {operation} on shard {shard} in stream \
                     {name} under account {account} is invalid{why}."
                ))
            };
            let seq = match SequenceNumber::decode(raw) {
                Some(seq) => seq,
                // A number of AWS's oldest layout names a shard: AWS answers for it.
                None => match SequenceNumber::foreign_shard(raw) {
                    Some(other) if other != partition => {
                        return Err(KinesisError::InvalidArgument(format!(
                            "Invalid StartingSequenceNumber. It encodes {}, while it was used \
                             in a call to a shard with {shard}",
                            shard_id(other)
                        )))
                    }
                    _ => return Err(invalid("")),
                },
            };
            if seq.partition != partition {
                return Err(KinesisError::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call \
                     to a shard with {shard}",
                    shard_id(seq.partition)
                )));
            }
            // A number of an earlier stream of the same name (or of a shard created
            // otherwise). Derived metadata has no lasting creation time to compare.
            let created = stream
                .meta
                .shard(partition)
                .map_or(stream.meta.created_ms, |s| s.created_ms)
                .div_euclid(1000);
            if !stream.meta.derived && seq.shard_created_s.is_some_and(|c| c != created) {
                return Err(invalid(" because it did not come from this stream"));
            }
            Some((raw, seq))
        }
        _ => None,
    };
    let (start, end) = k.offsets(&stream.topic, partition).await?;
    Ok(match (kind, sequence) {
        ("TRIM_HORIZON", _) => start,
        ("LATEST", _) => end,
        (_, Some((raw, seq))) => {
            let at = if kind == "AFTER_SEQUENCE_NUMBER" {
                seq.after()
            } else {
                seq.at()
            };
            if at > end + i64::from(kind == "AFTER_SEQUENCE_NUMBER" && seq.record) {
                return Err(KinesisError::InvalidArgument(format!(
                    "StartingSequenceNumber {raw} used in {operation} on shard {shard} in \
                     stream {name} under account {account} is beyond the last record of the \
                     shard."
                )));
            }
            // Records that retention already removed: read from the oldest one left.
            at.clamp(start, end)
        }
        _ => {
            let ts = timestamp.ok_or_else(|| {
                KinesisError::InvalidArgument(
                    "Must specify timestampInMillis parameter for iterator of type \
                     AT_TIMESTAMP. Current request has no timestamp parameter."
                        .into(),
                )
            })?;
            let now = BrokerContext::now_ms();
            if ts.0 > now {
                return Err(KinesisError::InvalidArgument(format!(
                    "The timestampInMillis parameter cannot be greater than the \
                     currentTimestampInMillis. timestampInMillis: {}, \
                     currentTimestampInMillis: {now}",
                    ts.0
                )));
            }
            let found = k.offset_at(&stream.topic, partition, ts.0.max(0)).await?;
            if found < 0 {
                end
            } else {
                found.max(start)
            }
        }
    })
}

/// Handles GetShardIterator. As AWS: a shard id that names no shard is refused before the
/// stream is looked up, and a missing stream is reported as its missing shard.
pub async fn handle(
    k: &Kinesis,
    req: GetShardIteratorInput,
    caller: &Caller,
) -> Result<GetShardIteratorOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "GetShardIterator",
        crate::auth::Operation::Read,
        &name,
    )?;
    let shard = required(req.shard_id.clone(), "shardId")?;
    let kind = required(req.shard_iterator_type.clone(), "shardIteratorType")?;
    let partition =
        parse_shard_id(&shard).ok_or_else(|| KinesisError::could_not_find_shard(&name, &shard))?;
    let missing = || KinesisError::shard_not_found(&name, &shard_id(partition));
    let stream = k.stream(&name).map_err(|e| match e {
        KinesisError::ResourceNotFound(_) => missing(),
        e => e,
    })?;
    if stream.meta.shard(partition).is_none()
        || stream.meta.status(BrokerContext::now_ms()) == "CREATING"
    {
        return Err(missing());
    }
    let offset = resolve(
        k,
        &stream,
        partition,
        &kind,
        req.starting_sequence_number.as_deref(),
        req.timestamp,
        "GetShardIterator",
    )
    .await?;
    let token = k.iterators.encode(&ShardPosition {
        stream: name,
        topic_id: stream.topic.id,
        partition,
        offset,
        created_ms: BrokerContext::now_ms(),
    });
    Ok(GetShardIteratorOutput {
        shard_iterator: token,
    })
}
