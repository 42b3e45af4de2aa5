//! DescribeStream: the stream and a page of its shards (Limit, ExclusiveStartShardId,
//! HasMoreShards).

use super::{
    limit, mode_model, monitoring_model, parse_shard_id, shard_model, stream_arn, stream_name_of,
};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    DescribeStreamInput, DescribeStreamOutput, StreamDescription, Timestamp,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Handles DescribeStream.
pub async fn handle(
    k: &Kinesis,
    req: DescribeStreamInput,
    caller: &Caller,
) -> Result<DescribeStreamOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "DescribeStream",
        crate::auth::Operation::Describe,
        &name,
    )?;
    let max = limit(req.limit, 100, 10_000, "limit")?;
    let stream = k.stream(&name)?;
    let after = match &req.exclusive_start_shard_id {
        Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
            KinesisError::validation(id, "exclusiveStartShardId", "Member must be a shard id")
        })?),
        None => None,
    };
    let mut eligible = stream
        .meta
        .shards
        .iter()
        .filter(|s| after.map_or(true, |a| s.partition > a));
    let now = crate::context::BrokerContext::now_ms();
    let status = stream.meta.status(now);
    // As AWS: a stream being created has no shards yet.
    let (shards, has_more): (Vec<_>, bool) = if status == "CREATING" {
        (Vec::new(), false)
    } else {
        let shards = eligible.by_ref().take(max).map(shard_model).collect();
        (shards, eligible.next().is_some())
    };
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_arn: stream_arn(&caller.region, &name),
            stream_name: name,
            stream_status: status.into(),
            stream_mode_details: mode_model(&stream.meta),
            shards,
            has_more_shards: has_more,
            retention_period_hours: k.retention_hours(&stream.topic),
            stream_creation_timestamp: Timestamp(stream.meta.created_ms),
            enhanced_monitoring: monitoring_model(&stream.meta),
            encryption_type: super::encryption_type(&stream.meta).into(),
            key_id: stream.meta.encryption.as_ref().map(|e| e.key_id.clone()),
        },
    })
}
