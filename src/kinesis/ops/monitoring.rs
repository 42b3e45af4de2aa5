//! Enable/DisableEnhancedMonitoring: the shard-level metrics are accepted, stored and echoed
//! (the broker's own metrics are not split per shard level yet).

use super::{required, stream_arn, stream_name_of};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{MonitoringInput, MonitoringOutput};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

const METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

async fn change(
    k: &Kinesis,
    req: MonitoringInput,
    caller: &Caller,
    enable: bool,
) -> Result<MonitoringOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    let action = if enable {
        "EnableEnhancedMonitoring"
    } else {
        "DisableEnhancedMonitoring"
    };
    k.authorize(caller, action, crate::auth::Operation::Alter, &name)?;
    let asked = required(req.shard_level_metrics, "shardLevelMetrics")?;
    if asked.is_empty() {
        return Err(KinesisError::validation(
            "[]",
            "shardLevelMetrics",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut metrics: Vec<String> = Vec::new();
    for m in &asked {
        if m == "ALL" {
            metrics.extend(METRICS.iter().map(|s| s.to_string()));
        } else if METRICS.contains(&m.as_str()) {
            metrics.push(m.clone());
        } else {
            return Err(KinesisError::validation(
                m,
                "shardLevelMetrics",
                &format!(
                    "Member must satisfy enum value set: [ALL, {}]",
                    METRICS.join(", ")
                ),
            ));
        }
    }
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    let current = stream.meta.shard_level_metrics.clone();
    let mut desired: Vec<String> = if enable {
        current.iter().cloned().chain(metrics).collect()
    } else {
        current
            .iter()
            .filter(|m| !metrics.contains(m))
            .cloned()
            .collect()
    };
    desired.sort_by_key(|m| METRICS.iter().position(|x| x == m));
    desired.dedup();
    let mut meta = (*stream.meta).clone();
    meta.shard_level_metrics = desired.clone();
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    Ok(MonitoringOutput {
        stream_arn: stream_arn(&caller.region, &name),
        stream_name: name,
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
    })
}

/// Handles EnableEnhancedMonitoring.
pub async fn enable(
    k: &Kinesis,
    req: MonitoringInput,
    caller: &Caller,
) -> Result<MonitoringOutput, KinesisError> {
    change(k, req, caller, true).await
}

/// Handles DisableEnhancedMonitoring.
pub async fn disable(
    k: &Kinesis,
    req: MonitoringInput,
    caller: &Caller,
) -> Result<MonitoringOutput, KinesisError> {
    change(k, req, caller, false).await
}
