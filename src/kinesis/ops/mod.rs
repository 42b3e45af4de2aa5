//! One handler per Kinesis operation, and the dispatch table from operation name to handler.
//! A handler takes the decoded request and answers the response model or a [`KinesisError`];
//! it reaches storage only through [`crate::context::BrokerContext`] and shard calls.

mod consumers;
mod create_stream;
mod delete_stream;
mod describe_limits;
mod describe_stream;
mod describe_stream_summary;
mod get_records;
mod get_shard_iterator;
mod lifecycle;
mod list_shards;
mod list_streams;
mod monitoring;
mod partition;
mod put_record;
mod put_records;
mod reshard;
mod resource;
mod retention;
mod subscribe_to_shard;
mod tags;

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::KinesisError;
use super::model::{self, StreamRef};
use super::naming::{stream_of, topic_of};
use super::sequence::SequenceNumber;
use super::server::{Encoding, Reply};
use super::sigv4::Caller;
use super::store::{ShardMeta, StreamMeta};
use super::Kinesis;
use crate::catalog::TopicMeta;
use crate::context::BrokerContext;
use crate::shard::{Durability, ShardState};

/// Operations of the Kinesis API that this broker does not offer.
const NOT_OFFERED: &[&str] = &["UpdateMaxRecordSize", "UpdateStreamWarmThroughput"];

/// Parses the body, checks it as AWS's front end does ([`super::validate`]) and decodes it.
fn decode<T: DeserializeOwned>(
    operation: &str,
    body: &[u8],
    encoding: Encoding,
) -> Result<T, KinesisError> {
    super::validate::decode(operation, body, encoding)
}

pub(crate) fn encode<T: Serialize>(value: &T, encoding: Encoding) -> Result<Bytes, KinesisError> {
    match encoding {
        Encoding::Json => serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| KinesisError::Internal(e.to_string())),
        Encoding::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(value, &mut out)
                .map(|()| Bytes::from(out))
                .map_err(|e| KinesisError::Internal(e.to_string()))
        }
    }
}

/// Decodes the body, runs the operation's handler and encodes its answer.
pub async fn dispatch(
    k: &Arc<Kinesis>,
    operation: &str,
    body: &[u8],
    encoding: Encoding,
    caller: &Caller,
) -> Result<Reply, KinesisError> {
    macro_rules! run {
        ($handler:path) => {{
            let req = decode(operation, body, encoding)?;
            let resp = $handler(k, req, caller).await?;
            encode(&resp, encoding).map(Reply::Body)
        }};
        // Operations without an output shape in AWS's model answer an empty body.
        (no_output $handler:path) => {{
            let req = decode(operation, body, encoding)?;
            let model::Empty {} = $handler(k, req, caller).await?;
            Ok(Reply::Body(Bytes::new()))
        }};
    }
    match operation {
        "AddTagsToStream" => run!(no_output tags::add),
        "CreateStream" => run!(no_output create_stream::handle),
        "DecreaseStreamRetentionPeriod" => run!(no_output retention::decrease),
        "DeleteStream" => run!(no_output delete_stream::handle),
        "DescribeLimits" => run!(describe_limits::handle),
        "DescribeStream" => run!(describe_stream::handle),
        "DescribeStreamSummary" => run!(describe_stream_summary::handle),
        "DisableEnhancedMonitoring" => run!(monitoring::disable),
        "EnableEnhancedMonitoring" => run!(monitoring::enable),
        "GetRecords" => {
            let req = decode(operation, body, encoding)?;
            let resp = get_records::handle(k, req, caller).await?;
            match encoding {
                Encoding::Json => get_records::encode_json(&resp).map(Reply::Body),
                Encoding::Cbor => encode(&resp, encoding).map(Reply::Body),
            }
        }
        "GetShardIterator" => run!(get_shard_iterator::handle),
        "IncreaseStreamRetentionPeriod" => run!(no_output retention::increase),
        "ListShards" => run!(list_shards::handle),
        "ListStreams" => run!(list_streams::handle),
        "ListTagsForStream" => run!(tags::list),
        "PutRecord" => run!(put_record::handle),
        "PutRecords" => run!(put_records::handle),
        "RemoveTagsFromStream" => run!(no_output tags::remove),
        "MergeShards" => run!(no_output reshard::merge),
        "SplitShard" => run!(no_output reshard::split),
        "UpdateShardCount" => run!(reshard::update_shard_count),
        "RegisterStreamConsumer" => run!(consumers::register),
        "DescribeStreamConsumer" => run!(consumers::describe),
        "ListStreamConsumers" => run!(consumers::list),
        "DeregisterStreamConsumer" => run!(no_output consumers::deregister),
        "TagResource" => run!(no_output tags::tag_resource),
        "UntagResource" => run!(no_output tags::untag_resource),
        "ListTagsForResource" => run!(tags::list_for_resource),
        "PutResourcePolicy" => run!(no_output resource::put_policy),
        "GetResourcePolicy" => run!(resource::get_policy),
        "DeleteResourcePolicy" => run!(no_output resource::delete_policy),
        "UpdateStreamMode" => run!(no_output lifecycle::update_stream_mode),
        "StartStreamEncryption" => run!(no_output lifecycle::start_encryption),
        "StopStreamEncryption" => run!(no_output lifecycle::stop_encryption),
        "DescribeAccountSettings" => run!(lifecycle::describe_account_settings),
        "UpdateAccountSettings" => run!(lifecycle::update_account_settings),
        "SubscribeToShard" => {
            let req = decode(operation, body, encoding)?;
            subscribe_to_shard::handle(k, req, caller, encoding).await
        }
        other if NOT_OFFERED.contains(&other) => Err(KinesisError::NotImplemented(format!(
            "{other} is not supported by this broker yet"
        ))),
        other => Err(KinesisError::UnknownOperation(format!(
            "Operation {other} is not a Kinesis_20131202 operation"
        ))),
    }
}

/// A required field, or AWS's "must not be null" validation error.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, KinesisError> {
    value.ok_or_else(|| KinesisError::validation("null", field, "Member must not be null"))
}

/// Checks a stream name against the API's constraints.
pub(crate) fn validate_stream_name(name: &str) -> Result<(), KinesisError> {
    if name.is_empty() || name.len() > 128 {
        return Err(KinesisError::validation(
            name,
            "streamName",
            "Member must have length between 1 and 128",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err(KinesisError::validation(
            name,
            "streamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// The stream an operation names, by `StreamName` or `StreamARN`.
pub(crate) fn stream_name_of(req: &impl StreamRef) -> Result<String, KinesisError> {
    let name = match (req.stream_name(), req.stream_arn()) {
        (Some(n), _) => n.to_string(),
        (None, Some(arn)) => arn
            .split_once(":stream/")
            .map(|(_, n)| n.to_string())
            .filter(|_| arn.starts_with("arn:"))
            .ok_or_else(|| {
                KinesisError::validation(arn, "streamARN", "Member must be a Kinesis stream ARN")
            })?,
        (None, None) => {
            return Err(KinesisError::InvalidArgument(
                "Either StreamName or StreamARN should be provided.".into(),
            ))
        }
    };
    validate_stream_name(&name)?;
    Ok(name)
}

/// A stream as handlers see it.
pub(crate) struct Stream {
    /// Its name.
    pub name: String,
    /// Its topic (named [`topic_of`] the stream: use `topic.name` for storage calls).
    pub topic: TopicMeta,
    /// Its Kinesis metadata.
    pub meta: std::sync::Arc<StreamMeta>,
}

impl Kinesis {
    /// Asks the broker's ACL authorizer (the one Kafka requests go through) whether the
    /// caller may perform `op` on the topic of a stream; AccessDeniedException when not. The
    /// denial is audit-logged by the authorizer.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        op: crate::auth::Operation,
        stream: &str,
    ) -> Result<(), KinesisError> {
        let topic = topic_of(stream);
        self.authorize_resource(caller, action, op, crate::auth::ResourceType::Topic, &topic)
            .map_err(|e| match e {
                // The ARN in the message names the stream, not its topic.
                KinesisError::AccessDenied(_) => KinesisError::AccessDenied(format!(
                    "User: {} is not authorized to perform: kinesis:{action} on resource: {} \
                     ({op} on Topic {topic} is not allowed by the broker's ACLs)",
                    caller.principal,
                    stream_arn(&caller.region, stream),
                )),
                other => other,
            })
    }

    /// [`Kinesis::authorize`] for any ACL resource.
    pub(crate) fn authorize_resource(
        &self,
        caller: &Caller,
        action: &str,
        op: crate::auth::Operation,
        resource_type: crate::auth::ResourceType,
        name: &str,
    ) -> Result<(), KinesisError> {
        let authorizer = &self.ctx.security.authorizer;
        if authorizer.authorize(&caller.principal, &caller.ip, op, resource_type, name) {
            return Ok(());
        }
        Err(KinesisError::AccessDenied(format!(
            "User: {} is not authorized to perform: kinesis:{action} on resource: {} \
             ({op} on {resource_type} {name} is not allowed by the broker's ACLs)",
            caller.principal,
            stream_arn(&caller.region, name),
        )))
    }

    /// Whether the caller may see a stream in listings (DESCRIBE on its topic; no audit line).
    pub(crate) fn may_describe(&self, caller: &Caller, stream: &str) -> bool {
        self.ctx.security.authorizer.allowed(
            &caller.principal,
            &caller.ip,
            crate::auth::Operation::Describe,
            crate::auth::ResourceType::Topic,
            &topic_of(stream),
        )
    }

    /// Looks an existing stream up in its topic ([`topic_of`]); internal topics are no
    /// streams.
    pub(crate) fn stream(&self, name: &str) -> Result<Stream, KinesisError> {
        let topic = self
            .ctx
            .catalog
            .get(&topic_of(name))
            .ok_or_else(|| KinesisError::stream_not_found(name))?;
        let now = BrokerContext::now_ms();
        let meta = self.streams.get(&topic, now);
        if meta.deleting_until_ms > 0 && now >= meta.deleting_until_ms {
            // DELETING is over: the deletion is due (again, should its task have been lost
            // to a restart).
            finish_delete(self.ctx.clone(), topic.name.to_string(), topic.id, 0);
            return Err(KinesisError::stream_not_found(name));
        }
        Ok(Stream {
            name: name.to_string(),
            topic,
            meta,
        })
    }

    /// Every stream, sorted by name.
    pub(crate) fn all_streams(&self) -> Vec<Stream> {
        let now = BrokerContext::now_ms();
        let mut streams = self
            .ctx
            .catalog
            .all()
            .into_iter()
            .filter_map(|topic| {
                let name = stream_of(&topic.name)?.to_string();
                Some(Stream {
                    name,
                    meta: self.streams.get(&topic, now),
                    topic,
                })
            })
            .collect::<Vec<_>>();
        // Sorted by stream name (an escaped topic sorts elsewhere than its stream).
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        streams
    }

    /// The stream's retention in hours, from the topic's effective `retention.ms` (-1, keep
    /// forever, is reported as the Kinesis maximum of 8760 hours).
    pub(crate) fn retention_hours(&self, topic: &TopicMeta) -> i64 {
        let ms =
            crate::topic_config::effective_i64("retention.ms", &topic.configs, &self.ctx.config);
        if ms < 0 {
            MAX_RETENTION_HOURS
        } else {
            (ms + 3_599_999) / 3_600_000
        }
    }

    /// Appends one batch to each of several partitions of this node's shards (queued on
    /// their shards first, so they share group-committed fsyncs) and waits until each is
    /// fsynced and, in a cluster, held by every in-sync replica (acks=-1 durability, bounded by
    /// [`REPLICATION_TIMEOUT`]). Answers each batch's base offset, in the order given.
    pub(crate) async fn append_local(
        &self,
        topic: &TopicMeta,
        batches: Vec<(i32, Bytes)>,
    ) -> Vec<Result<i64, KinesisError>> {
        type Reply = Result<
            (
                crate::log::AppendInfo,
                Option<tokio::sync::oneshot::Receiver<crate::shard::SyncResult>>,
                Option<tokio::sync::oneshot::Receiver<crate::shard::replica::AckResult>>,
            ),
            crate::shard::StorageError,
        >;
        let log_append_time = crate::topic_config::def("message.timestamp.type")
            .map(|d| crate::topic_config::effective(d, &topic.configs, &self.ctx.config).0)
            .is_some_and(|t| t == "LogAppendTime")
            .then(BrokerContext::now_ms);
        let mut pending = Vec::with_capacity(batches.len());
        for (partition, batch) in batches {
            let name = topic.name.clone();
            let job = move |s: &mut ShardState| -> Reply {
                let (info, wait) =
                    s.append(&name, partition, batch, log_append_time, Durability::Fsync)?;
                let replicated = s.replication_wait(&name, partition, info.last_offset + 1);
                Ok((info, wait, replicated))
            };
            pending.push(self.ctx.shard(&topic.name, partition).submit(job).await);
        }
        let mut out = Vec::with_capacity(pending.len());
        for rx in pending {
            let result = async {
                let (info, wait, replicated) = rx?
                    .await
                    .map_err(|_| KinesisError::Internal("shard stopped".into()))??;
                if let Some(wait) = wait {
                    match wait.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            return Err(KinesisError::Internal(format!("fsync failed: {e}")))
                        }
                        Err(_) => {
                            return Err(KinesisError::Internal("shard stopped before fsync".into()))
                        }
                    }
                }
                if let Some(replicated) = replicated {
                    match tokio::time::timeout(REPLICATION_TIMEOUT, replicated).await {
                        Ok(Ok(Ok(()))) => {}
                        Ok(Ok(Err(e))) => return Err(KinesisError::Internal(e.to_string())),
                        Ok(Err(_)) => {
                            return Err(KinesisError::Internal("partition closed".into()))
                        }
                        Err(_) => {
                            return Err(KinesisError::Internal(
                                "the in-sync replicas did not confirm the records in time".into(),
                            ))
                        }
                    }
                }
                Ok(info.base_offset)
            }
            .await;
            out.push(result);
        }
        out
    }
}

/// Deletes the topic `topic` (if it still has id `id`) after `delay_ms`: the end of a stream's
/// DELETING time.
pub(crate) fn finish_delete(ctx: Arc<BrokerContext>, topic: String, id: uuid::Uuid, delay_ms: i64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms.max(0) as u64)).await;
        if ctx.catalog.get(&topic).is_some_and(|t| t.id == id) {
            ctx.delete_topic(&topic).await;
            tracing::info!(topic = %topic, "kinesis stream deleted after DELETING");
        }
    });
}

/// ResourceInUseException unless the stream is ACTIVE (what changes to a stream need).
pub(crate) fn require_active(stream: &Stream) -> Result<(), KinesisError> {
    match stream.meta.status(BrokerContext::now_ms()) {
        "ACTIVE" => Ok(()),
        status => Err(KinesisError::ResourceInUse(format!(
            "Stream {} under account {} not ACTIVE, instead in state {status}",
            stream.name,
            super::ACCOUNT_ID
        ))),
    }
}

/// ResourceNotFoundException unless the stream takes records (ACTIVE or UPDATING), as AWS.
pub(crate) fn require_writable(stream: &Stream) -> Result<(), KinesisError> {
    match stream.meta.status(BrokerContext::now_ms()) {
        "ACTIVE" | "UPDATING" => Ok(()),
        _ => Err(KinesisError::stream_not_found(&stream.name)),
    }
}

/// EncryptionType of a stream.
pub(crate) fn encryption_type(meta: &StreamMeta) -> &str {
    meta.encryption.as_ref().map_or("NONE", |e| e.kind.as_str())
}

/// How long a put waits for the in-sync replicas of a cluster before it fails.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// ProvisionedThroughputExceededException for a shard, in AWS's words.
pub(crate) fn throttled(stream: &str, partition: i32) -> KinesisError {
    KinesisError::ProvisionedThroughputExceeded(format!(
        "Rate exceeded for shard {} in stream {stream} under account {}.",
        shard_id(partition),
        super::ACCOUNT_ID
    ))
}

/// The longest retention Kinesis allows (365 days).
pub(crate) const MAX_RETENTION_HOURS: i64 = 8760;
/// The shortest retention Kinesis allows, and that of new streams.
pub(crate) const MIN_RETENTION_HOURS: i64 = 24;
/// Shards of an ON_DEMAND stream.
pub(crate) const ON_DEMAND_SHARDS: i32 = 4;

/// `shardId-000000000007`.
pub(crate) fn shard_id(partition: i32) -> String {
    format!("shardId-{partition:012}")
}

/// The partition of a shard id, read as AWS (and kinesalite's resolveShardId) reads it: the
/// part after the first `-` when there is one and it is not empty (`shardId-000000000007`,
/// `shard-7`, `anything-7`), else the whole id (`7`), must be decimal digits naming a shard
/// index in `[0, 2^31 - 1]`.
pub(crate) fn parse_shard_id(id: &str) -> Option<i32> {
    let digits = match id.split('-').nth(1) {
        Some(part) if !part.is_empty() => part,
        _ => id,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 10 {
        return None;
    }
    significant
        .parse::<i64>()
        .map_or(Some(0), |n| i32::try_from(n).ok())
}

/// The stream's ARN.
pub(crate) fn stream_arn(region: &str, name: &str) -> String {
    format!(
        "arn:aws:kinesis:{region}:{}:stream/{name}",
        super::ACCOUNT_ID
    )
}

/// The Shard model of a shard.
pub(crate) fn shard_model(s: &ShardMeta) -> model::Shard {
    model::Shard {
        shard_id: shard_id(s.partition),
        parent_shard_id: s.parent.map(shard_id),
        adjacent_parent_shard_id: s.adjacent_parent.map(shard_id),
        hash_key_range: model::HashKeyRange {
            starting_hash_key: s.start.clone(),
            ending_hash_key: s.end.clone(),
        },
        sequence_number_range: model::SequenceNumberRange {
            starting_sequence_number: SequenceNumber::gap(
                s.partition,
                0,
                s.created_ms,
                s.created_ms,
            )
            .encode(),
            ending_sequence_number: s.closed.map(|c| {
                SequenceNumber::record(
                    s.partition,
                    (c.end_offset - 1).max(0),
                    s.created_ms,
                    c.at_ms,
                )
                .encode()
            }),
        },
    }
}

/// The StreamModeDetails model.
pub(crate) fn mode_model(meta: &StreamMeta) -> model::StreamModeDetails {
    model::StreamModeDetails {
        stream_mode: meta.mode.clone(),
    }
}

/// When the shard of `partition` was created (what its sequence numbers carry).
pub(crate) fn shard_created_ms(meta: &StreamMeta, partition: i32) -> i64 {
    meta.shard(partition)
        .map_or(meta.created_ms, |s| s.created_ms)
}

/// The EnhancedMonitoring model.
pub(crate) fn monitoring_model(meta: &StreamMeta) -> Vec<model::EnhancedMetrics> {
    vec![model::EnhancedMetrics {
        shard_level_metrics: meta.shard_level_metrics.clone(),
    }]
}

/// The shard of a stream named by a request, or ResourceNotFoundException in AWS's words for
/// a shard id that names no shard (the id as given) or a shard the stream lacks (its canonical
/// id).
pub(crate) fn find_shard<'a>(stream: &'a Stream, id: &str) -> Result<&'a ShardMeta, KinesisError> {
    let partition =
        parse_shard_id(id).ok_or_else(|| KinesisError::could_not_find_shard(&stream.name, id))?;
    stream
        .meta
        .shard(partition)
        .ok_or_else(|| KinesisError::shard_not_found(&stream.name, &shard_id(partition)))
}

/// A limit parameter within `[1, max]`, or its default.
pub(crate) fn limit(
    value: Option<i64>,
    default: i64,
    max: i64,
    field: &str,
) -> Result<usize, KinesisError> {
    match value {
        None => Ok(default as usize),
        Some(v) if (1..=max).contains(&v) => Ok(v as usize),
        Some(v) => Err(KinesisError::validation(
            v,
            field,
            &format!("Member must have value between 1 and {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("shardId-x"), None);
        assert_eq!(parse_shard_id(""), None);
        // The forms AWS accepts.
        assert_eq!(parse_shard_id("shard-1"), Some(1));
        assert_eq!(parse_shard_id("shardId-1"), Some(1));
        assert_eq!(parse_shard_id("x-0000000000000000002"), Some(2));
        assert_eq!(parse_shard_id("shardId-000000000000"), Some(0));
        assert_eq!(parse_shard_id("0"), Some(0));
        assert_eq!(parse_shard_id("shardId-2147483647"), Some(i32::MAX));
        assert_eq!(parse_shard_id("shardId-2147483648"), None);
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("-1"), Some(1));
        assert_eq!(parse_shard_id("shardId--1"), None);
    }

    #[test]
    fn names_and_arns() {
        assert!(validate_stream_name("orders.v1_x-2").is_ok());
        assert!(validate_stream_name("a b").is_err());
        assert!(validate_stream_name(&"a".repeat(129)).is_err());
        let req = model::StreamOnlyInput {
            stream_name: None,
            stream_arn: Some(stream_arn("eu-west-1", "orders")),
        };
        assert_eq!(stream_name_of(&req).unwrap(), "orders");
    }
}
