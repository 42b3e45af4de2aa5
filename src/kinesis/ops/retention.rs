//! Increase/DecreaseStreamRetentionPeriod: set the topic's `retention.ms` (stored with the
//! other topic configs and pushed to every partition log, as AlterConfigs does).

use super::{required, stream_name_of, MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{Empty, RetentionInput};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

async fn set(
    k: &Kinesis,
    req: RetentionInput,
    caller: &Caller,
    increase: bool,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    let action = if increase {
        "IncreaseStreamRetentionPeriod"
    } else {
        "DecreaseStreamRetentionPeriod"
    };
    // Retention is a topic config: ALTER_CONFIGS, as AlterConfigs needs.
    k.authorize(caller, action, crate::auth::Operation::AlterConfigs, &name)?;
    let hours = required(req.retention_period_hours, "retentionPeriodHours")?;
    if hours < 1 {
        return Err(KinesisError::validation(
            hours,
            "retentionPeriodHours",
            "Member must have value greater than or equal to 1",
        ));
    }
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    let current = k.retention_hours(&stream.topic);
    if hours < MIN_RETENTION_HOURS {
        return Err(KinesisError::InvalidArgument(format!(
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention \
             period ({hours} hours) is too short."
        )));
    }
    if hours > MAX_RETENTION_HOURS {
        return Err(KinesisError::InvalidArgument(format!(
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested \
             retention period ({hours} hours) is too long."
        )));
    }
    if increase && hours < current {
        return Err(KinesisError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be shorter \
             than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
        )));
    }
    if !increase && hours > current {
        return Err(KinesisError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be longer \
             than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
        )));
    }
    let mut configs = (*stream.topic.configs).clone();
    configs.insert("retention.ms".into(), (hours * 3_600_000).to_string());
    k.ctx
        .set_topic_configs(&stream.topic.name, configs)
        .await
        .map_err(KinesisError::Internal)?;
    tracing::info!(stream = %name, hours, "kinesis retention changed");
    Ok(Empty {})
}

/// Handles IncreaseStreamRetentionPeriod.
pub async fn increase(
    k: &Kinesis,
    req: RetentionInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    set(k, req, caller, true).await
}

/// Handles DecreaseStreamRetentionPeriod.
pub async fn decrease(
    k: &Kinesis,
    req: RetentionInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    set(k, req, caller, false).await
}
