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
    let shards: Vec<_> = eligible.by_ref().take(max).map(shard_model).collect();
    let has_more = eligible.next().is_some();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_arn: stream_arn(&caller.region, &name),
            stream_name: name,
            stream_status: "ACTIVE".into(),
            stream_mode_details: mode_model(&stream.meta),
            shards,
            has_more_shards: has_more,
            retention_period_hours: k.retention_hours(&stream.topic),
            stream_creation_timestamp: Timestamp(stream.meta.created_ms),
            enhanced_monitoring: monitoring_model(&stream.meta),
            encryption_type: "NONE".into(),
        },
    })
}
