//! DescribeStreamSummary: the stream without its shards.

use super::{mode_model, monitoring_model, stream_arn, stream_name_of};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    DescribeStreamSummaryOutput, StreamDescriptionSummary, StreamOnlyInput, Timestamp,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Handles DescribeStreamSummary.
pub async fn handle(
    k: &Kinesis,
    req: StreamOnlyInput,
    caller: &Caller,
) -> Result<DescribeStreamSummaryOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "DescribeStreamSummary",
        crate::auth::Operation::Describe,
        &name,
    )?;
    let stream = k.stream(&name)?;
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_arn: stream_arn(&caller.region, &name),
            stream_name: name,
            stream_status: stream
                .meta
                .status(crate::context::BrokerContext::now_ms())
                .into(),
            stream_mode_details: mode_model(&stream.meta),
            retention_period_hours: k.retention_hours(&stream.topic),
            stream_creation_timestamp: Timestamp(stream.meta.created_ms),
            enhanced_monitoring: monitoring_model(&stream.meta),
            encryption_type: super::encryption_type(&stream.meta).into(),
            key_id: stream.meta.encryption.as_ref().map(|e| e.key_id.clone()),
            open_shard_count: stream.meta.open_shards() as i64,
            consumer_count: stream.meta.consumers.len() as i64,
        },
    })
}
