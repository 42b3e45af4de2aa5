//! CreateStream: a topic of the same name ([`crate::kinesis::naming`]) with ShardCount partitions (ON_DEMAND: 4), 24-hour
//! retention (`retention.ms` topic config), and metadata with even hash-key ranges.

use std::collections::BTreeMap;

use super::{required, validate_stream_name, ON_DEMAND_SHARDS};
use crate::context::{BrokerContext, CreateTopicError};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{CreateStreamInput, Empty};
use crate::kinesis::naming::topic_of;
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::StreamMeta;
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// Handles CreateStream.
pub async fn handle(
    k: &Kinesis,
    req: CreateStreamInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = required(req.stream_name, "streamName")?;
    validate_stream_name(&name)?;
    // As CreateTopics: CREATE on the cluster, else CREATE on the topic.
    let authorizer = &k.ctx.security.authorizer;
    if !authorizer.allowed(
        &caller.principal,
        &caller.ip,
        crate::auth::Operation::Create,
        crate::auth::ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    ) {
        k.authorize(
            caller,
            "CreateStream",
            crate::auth::Operation::Create,
            &name,
        )?;
    }
    let mode = req
        .stream_mode_details
        .map(|m| m.stream_mode)
        .unwrap_or_else(|| "PROVISIONED".to_string());
    let shards = match (mode.as_str(), req.shard_count) {
        ("ON_DEMAND", None) => ON_DEMAND_SHARDS,
        ("ON_DEMAND", Some(n)) | ("PROVISIONED", Some(n)) => {
            if n < 1 {
                return Err(KinesisError::validation(
                    n,
                    "shardCount",
                    "Member must have value greater than or equal to 1",
                ));
            }
            i32::try_from(n).unwrap_or(i32::MAX)
        }
        ("PROVISIONED", None) => {
            return Err(KinesisError::InvalidArgument(
                "ShardCount is required for a PROVISIONED stream.".into(),
            ))
        }
        (other, _) => {
            return Err(KinesisError::validation(
                other,
                "streamModeDetails.streamMode",
                "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]",
            ))
        }
    };
    let tags = req.tags.unwrap_or_default();
    if tags.len() > 50 {
        return Err(KinesisError::validation(
            tags.len(),
            "tags",
            "Member must have length less than or equal to 50",
        ));
    }
    super::tags::check_lengths(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    super::tags::check_characters(
        tags.keys().chain(tags.values()).map(String::as_str),
        "add tags to",
        &format!("stream {name}"),
    )?;
    // Streams named like the broker's internal topics live in an escaped topic.
    let topic_name = topic_of(&name).into_owned();
    let _admin = k.streams.admin.lock().await;
    if let Some(existing) = k.ctx.catalog.get(&topic_name) {
        let now = BrokerContext::now_ms();
        let old = k.streams.get(&existing, now);
        if old.deleting_until_ms > 0 && now >= old.deleting_until_ms {
            // A stream whose DELETING time is over: finish its deletion first.
            k.ctx.delete_topic(&topic_name).await;
        } else {
            return Err(KinesisError::ResourceInUse(format!(
                "Stream {name} under account {ACCOUNT_ID} already exists."
            )));
        }
    }
    let open: i64 = k
        .all_streams()
        .iter()
        .map(|s| s.meta.open_shards() as i64)
        .sum();
    if open + i64::from(shards) > k.config.shard_limit {
        return Err(KinesisError::LimitExceeded(format!(
            "This request would exceed the shard limit for the account {ACCOUNT_ID} in this \
             region. Current shard count for the account: {open}. Limit: {}. Number of \
             additional shards that would have resulted from this request: {shards}.",
            k.config.shard_limit
        )));
    }
    let configs = BTreeMap::from([(
        "retention.ms".to_string(),
        (super::MIN_RETENTION_HOURS * 3_600_000).to_string(),
    )]);
    let topic = k
        .ctx
        .create_topic(&topic_name, shards, configs)
        .await
        .map_err(|e| match e {
            CreateTopicError::AlreadyExists(_) => KinesisError::ResourceInUse(format!(
                "Stream {name} under account {ACCOUNT_ID} already exists."
            )),
            CreateTopicError::InvalidName(e) => {
                KinesisError::validation(&name, "streamName", &e.to_string())
            }
            CreateTopicError::InvalidPartitions => {
                KinesisError::validation(shards, "shardCount", "Member must be positive")
            }
            CreateTopicError::Storage(e) | CreateTopicError::Unavailable(e) => {
                KinesisError::Internal(e)
            }
            e @ (CreateTopicError::InvalidReplicationFactor(_)
            | CreateTopicError::InvalidReplicaAssignment(_)) => {
                KinesisError::Internal(e.to_string())
            }
        })?;
    let now = BrokerContext::now_ms();
    let mut meta = StreamMeta::new(topic.id, shards, &mode, now);
    meta.tags = tags;
    meta.active_from_ms = now + k.config.create_stream_ms;
    if let Err(e) = k.streams.put(&topic_name, meta).await {
        k.ctx.delete_topic(&topic_name).await;
        return Err(KinesisError::Internal(format!(
            "cannot store stream metadata: {e}"
        )));
    }
    tracing::info!(stream = %name, topic = %topic_name, shards, mode, "kinesis stream created");
    Ok(Empty {})
}
