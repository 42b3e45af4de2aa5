//! GetShardIterator: resolves the iterator type to an offset of the shard's partition —
//! TRIM_HORIZON the log start, LATEST the log end, AT/AFTER_SEQUENCE_NUMBER the sequence
//! number's offset (or the next), AT_TIMESTAMP the first record at or after the time (the
//! ListOffsets lookup of the time index) — and issues a signed iterator for it.

use super::{find_shard, required, shard_id, stream_name_of, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::iterator::ShardPosition;
use crate::kinesis::model::{GetShardIteratorInput, GetShardIteratorOutput, Timestamp};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// The offset a starting position of `kind` (an iterator type) names in `partition`.
pub(crate) async fn resolve(
    k: &Kinesis,
    stream: &Stream,
    partition: i32,
    kind: &str,
    sequence_number: Option<&str>,
    timestamp: Option<Timestamp>,
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
    let (start, end) = k.offsets(&stream.topic, partition).await?;
    Ok(match kind {
        "TRIM_HORIZON" => start,
        "LATEST" => end,
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
            let raw = sequence_number.ok_or_else(|| {
                KinesisError::InvalidArgument(format!(
                    "StartingSequenceNumber must be provided for ShardIteratorType {kind}."
                ))
            })?;
            let seq = SequenceNumber::decode(raw)
                .filter(|s| s.partition == partition)
                .ok_or_else(|| {
                    KinesisError::InvalidArgument(format!(
                        "StartingSequenceNumber {raw} used in GetShardIterator on shard {} in \
                         stream {name} under account {} is invalid.",
                        shard_id(partition),
                        crate::kinesis::ACCOUNT_ID
                    ))
                })?;
            let at = if kind == "AFTER_SEQUENCE_NUMBER" {
                seq.after()
            } else {
                seq.at()
            };
            if at > end + i64::from(kind == "AFTER_SEQUENCE_NUMBER" && seq.record) {
                return Err(KinesisError::InvalidArgument(format!(
                    "StartingSequenceNumber {raw} used in GetShardIterator on shard {} in \
                     stream {name} under account {} is beyond the last record of the shard.",
                    shard_id(partition),
                    crate::kinesis::ACCOUNT_ID
                )));
            }
            // Records that retention already removed: read from the oldest one left.
            at.clamp(start, end)
        }
        _ => {
            let ts = timestamp.ok_or_else(|| {
                KinesisError::InvalidArgument(
                    "Timestamp must be provided for ShardIteratorType AT_TIMESTAMP.".into(),
                )
            })?;
            let found = k.offset_at(&stream.topic, partition, ts.0.max(0)).await?;
            if found < 0 {
                end
            } else {
                found.max(start)
            }
        }
    })
}

/// Handles GetShardIterator.
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
    let stream = k.stream(&name)?;
    let partition = find_shard(&stream, &shard)?.partition;
    let offset = resolve(
        k,
        &stream,
        partition,
        &kind,
        req.starting_sequence_number.as_deref(),
        req.timestamp,
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
