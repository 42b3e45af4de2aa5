//! PutRecords: up to 500 records and 5 MiB, grouped into one batch per shard (in request
//! order within each), appended to all shards at once and answered once fsynced. A shard whose
//! append fails fails only its own records (ErrorCode InternalFailure); FailedRecordCount
//! counts them.

use std::collections::BTreeMap;

use super::put_record::{record_field, route};
use super::{required, shard_id, stream_name_of};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{PutRecordsInput, PutRecordsOutput, PutRecordsResultEntry};
use crate::kinesis::records::{build_batch, NewRecord};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Records per request.
pub const MAX_RECORDS: usize = 500;
/// Data and partition keys per request (5 MiB).
pub const MAX_REQUEST_BYTES: usize = 5 << 20;

/// Data and partition-key bytes of one record (what Kinesis meters).
fn record_bytes(r: &crate::kinesis::model::PutRecordsRequestEntry) -> usize {
    r.data.as_ref().map_or(0, |d| d.0.len()) + r.partition_key.as_deref().map_or(0, str::len)
}

/// Handles PutRecords.
pub async fn handle(
    k: &Kinesis,
    req: PutRecordsInput,
    caller: &Caller,
) -> Result<PutRecordsOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(caller, "PutRecords", crate::auth::Operation::Write, &name)?;
    let records = required(req.records, "records")?;
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(KinesisError::validation(
            format!("{} records", records.len()),
            "records",
            &format!("Member must have length between 1 and {MAX_RECORDS}"),
        ));
    }
    let stream = k.stream(&name)?;
    super::require_writable(&stream)?;
    let mut size = 0usize;
    let mut routed = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let data = r.data.as_ref().ok_or_else(|| {
            KinesisError::validation(
                "null",
                &format!("{}data", record_field(i)),
                "Member must not be null",
            )
        })?;
        let key = r.partition_key.as_deref().ok_or_else(|| {
            KinesisError::validation(
                "null",
                &format!("{}partitionKey", record_field(i)),
                "Member must not be null",
            )
        })?;
        size += data.0.len() + key.len();
        routed.push(route(
            &stream.meta,
            key,
            &data.0,
            r.explicit_hash_key.as_deref(),
            Some(i),
        )?);
    }
    if size > MAX_REQUEST_BYTES {
        return Err(KinesisError::InvalidArgument(format!(
            "Records size exceeds 5 MB limit: the request holds {size} bytes of data and partition keys."
        )));
    }
    // partition → indexes of its records, in request order.
    let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, p) in routed.iter().enumerate() {
        by_partition.entry(*p).or_default().push(i);
    }
    let mut out: Vec<PutRecordsResultEntry> = (0..records.len())
        .map(|_| PutRecordsResultEntry::default())
        .collect();
    let mut failed = 0i64;
    if k.config.enforce_limits {
        // A shard over its write rate fails its records; the others go ahead.
        by_partition.retain(|p, idx| {
            let bytes: usize = idx
                .iter()
                .map(|&i| {
                    records[i].data.as_ref().map_or(0, |d| d.0.len())
                        + records[i].partition_key.as_deref().map_or(0, str::len)
                })
                .sum();
            if k.limits.try_write(stream.topic.id, *p, idx.len(), bytes) {
                return true;
            }
            k.ctx.metrics.stream(&name).write_throttled(idx.len());
            let e = super::throttled(&name, *p);
            for &i in idx.iter() {
                failed += 1;
                out[i].error_code = Some(e.type_name().to_string());
                out[i].error_message = Some(e.message().to_string());
            }
            false
        });
    }
    let now = BrokerContext::now_ms();
    let mut batches = Vec::with_capacity(by_partition.len());
    for (p, idx) in &by_partition {
        let recs: Vec<NewRecord<'_>> = idx
            .iter()
            .map(|&i| NewRecord {
                partition_key: records[i].partition_key.as_deref().unwrap_or_default(),
                data: records[i]
                    .data
                    .as_ref()
                    .map(|d| &d.0[..])
                    .unwrap_or_default(),
                explicit_hash_key: records[i].explicit_hash_key.as_deref(),
            })
            .collect();
        batches.push((*p, build_batch(&recs, now)));
    }
    let results = k.append(&stream.topic, batches).await;
    for ((p, idx), result) in by_partition.iter().zip(results) {
        match result {
            Ok(base) => {
                let created = super::shard_created_ms(&stream.meta, *p);
                let bytes: usize = idx.iter().map(|&i| record_bytes(&records[i])).sum();
                k.ctx.metrics.stream(&name).put(idx.len(), bytes);
                for (n, &i) in idx.iter().enumerate() {
                    out[i].shard_id = Some(shard_id(*p));
                    out[i].sequence_number =
                        Some(SequenceNumber::record(*p, base + n as i64, created, now).encode());
                }
            }
            Err(e) => {
                tracing::warn!(stream = %name, partition = p, error = %e, "PutRecords append failed");
                for &i in idx {
                    failed += 1;
                    out[i].error_code = Some(e.type_name().to_string());
                    out[i].error_message = Some(e.message().to_string());
                }
            }
        }
    }
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records: out,
        encryption_type: super::encryption_type(&stream.meta).into(),
    })
}
