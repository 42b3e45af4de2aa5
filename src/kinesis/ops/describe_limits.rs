//! DescribeLimits: the shard limit (`kinesis.shard.limit`) and the open shards of all streams.

use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{DescribeLimitsOutput, StreamOnlyInput};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Handles DescribeLimits.
pub async fn handle(
    k: &Kinesis,
    _req: StreamOnlyInput,
    _caller: &Caller,
) -> Result<DescribeLimitsOutput, KinesisError> {
    let streams = k.all_streams();
    Ok(DescribeLimitsOutput {
        shard_limit: k.config.shard_limit,
        open_shard_count: streams.iter().map(|s| s.meta.open_shards() as i64).sum(),
        on_demand_stream_count: streams
            .iter()
            .filter(|s| s.meta.mode == "ON_DEMAND")
            .count() as i64,
        on_demand_stream_count_limit: 50,
    })
}
