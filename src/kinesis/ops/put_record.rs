//! PutRecord: one record, appended to the open shard whose hash-key range holds
//! MD5(PartitionKey) or the ExplicitHashKey, and answered once fsynced.
//! SequenceNumberForOrdering must be a sequence number (not of the future), as AWS checks;
//! records of one partition key are already in order.

use super::{required, shard_id, stream_name_of};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::hash::{hash_key, parse_hash_key, HashKeyError};
use crate::kinesis::model::{PutRecordInput, PutRecordOutput};
use crate::kinesis::records::{build_batch, NewRecord};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::StreamMeta;
use crate::kinesis::Kinesis;

/// The largest data blob of one record (1 MiB).
pub const MAX_DATA_BYTES: usize = 1 << 20;

/// Checks one record and answers the partition it goes to. `record` is the record's index in
/// a PutRecords request, whose field names in messages it prefixes (`records.3.member.`).
pub(crate) fn route(
    meta: &StreamMeta,
    partition_key: &str,
    data: &[u8],
    explicit_hash_key: Option<&str>,
    record: Option<usize>,
) -> Result<i32, KinesisError> {
    // Built only for a message: this runs for every record.
    let field = || record.map_or_else(String::new, record_field);
    let chars = partition_key.chars().count();
    if chars == 0 || chars > 256 {
        return Err(KinesisError::validation(
            partition_key,
            &format!("{}partitionKey", field()),
            "Member must have length between 1 and 256",
        ));
    }
    if data.len() > MAX_DATA_BYTES {
        return Err(KinesisError::validation(
            "java.nio.HeapByteBuffer",
            &format!("{}data", field()),
            &format!("Member must have length less than or equal to {MAX_DATA_BYTES}"),
        ));
    }
    let hash = match explicit_hash_key {
        Some(h) => parse_hash_key(h).map_err(|e| match e {
            HashKeyError::Pattern => KinesisError::validation(
                h,
                &format!("{}explicitHashKey", field()),
                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
            ),
            HashKeyError::OutOfRange => KinesisError::InvalidArgument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
                 Specified value was {h}"
            )),
        })?,
        None => hash_key(partition_key.as_bytes()),
    };
    meta.open_shard_for(hash)
        .ok_or_else(|| KinesisError::Internal(format!("no open shard owns hash key {hash}")))
}

/// The prefix of a PutRecords record's fields in messages: `records.3.member.` for index 2.
pub(crate) fn record_field(index: usize) -> String {
    format!("records.{}.member.", index + 1)
}

/// Checks a SequenceNumberForOrdering as AWS does: it must be a sequence number, not of the
/// future. (Records of one partition key are in order anyway: they go to one partition.)
fn check_ordering(stream: &str, raw: &str, now_ms: i64) -> Result<(), KinesisError> {
    let in_time = SequenceNumber::decode(raw).map_or(true, |s| {
        s.shard_created_s.is_none() || s.time_s <= now_ms.div_euclid(1000)
    });
    if SequenceNumber::plausible(raw) && in_time {
        return Ok(());
    }
    Err(KinesisError::InvalidArgument(format!(
        "ExclusiveMinimumSequenceNumber {raw} used in PutRecord on stream {stream} under \
         account {} is invalid.",
        crate::kinesis::ACCOUNT_ID
    )))
}

/// Handles PutRecord.
pub async fn handle(
    k: &Kinesis,
    req: PutRecordInput,
    caller: &Caller,
) -> Result<PutRecordOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(caller, "PutRecord", crate::auth::Operation::Write, &name)?;
    let data = required(req.data, "data")?;
    let partition_key = required(req.partition_key, "partitionKey")?;
    let stream = k.stream(&name)?;
    super::require_writable(&stream)?;
    let partition = route(
        &stream.meta,
        &partition_key,
        &data.0,
        req.explicit_hash_key.as_deref(),
        None,
    )?;
    if let Some(raw) = req.sequence_number_for_ordering.as_deref() {
        check_ordering(&name, raw, BrokerContext::now_ms())?;
    }
    if k.config.enforce_limits
        && !k.limits.try_write(
            stream.topic.id,
            partition,
            1,
            data.0.len() + partition_key.len(),
        )
    {
        k.ctx.metrics.stream(&name).write_throttled(1);
        return Err(super::throttled(&name, partition));
    }
    let now = BrokerContext::now_ms();
    let batch = build_batch(
        &[NewRecord {
            partition_key: &partition_key,
            data: &data.0,
            explicit_hash_key: req.explicit_hash_key.as_deref(),
        }],
        now,
    );
    let offset = k
        .append(&stream.topic, vec![(partition, batch)])
        .await
        .pop()
        .unwrap_or_else(|| Err(KinesisError::Internal("no append result".into())))?;
    k.ctx
        .metrics
        .stream(&name)
        .put(1, data.0.len() + partition_key.len());
    Ok(PutRecordOutput {
        shard_id: shard_id(partition),
        sequence_number: SequenceNumber::record(
            partition,
            offset,
            super::shard_created_ms(&stream.meta, partition),
            now,
        )
        .encode(),
        encryption_type: super::encryption_type(&stream.meta).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_number_for_ordering() {
        let now = 1_700_000_000_000;
        let ok = SequenceNumber::record(0, 5, now - 10_000, now - 1_000).encode();
        assert!(check_ordering("s", &ok, now).is_ok());
        let future = SequenceNumber::record(0, 5, now - 10_000, now + 5_000).encode();
        let e = check_ordering("s", &future, now).unwrap_err();
        assert_eq!(e.type_name(), "InvalidArgumentException");
        assert_eq!(
            e.message(),
            format!(
                "ExclusiveMinimumSequenceNumber {future} used in PutRecord on stream s under \
                 account 000000000000 is invalid."
            )
        );
        assert!(check_ordering("s", "123", now).is_ok());
        assert!(check_ordering("s", "12a", now).is_err());
        assert!(check_ordering("s", &"9".repeat(56), now).is_err());
    }
}
