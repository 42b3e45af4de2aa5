//! The wire model: request and response shapes of the Kinesis operations, in AWS's field names.
//! Blobs are base64 strings in JSON and byte strings in CBOR; timestamps are epoch seconds
//! (with a fraction) in JSON and tagged epoch values in CBOR. Both are chosen by the
//! serializer's `is_human_readable`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A binary value (`Data`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Blob, E> {
                STANDARD
                    .decode(v)
                    .map(|b| Blob(Bytes::from(b)))
                    .map_err(|_| E::custom("blob is not valid base64"))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time, held in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            // JSON: epoch seconds with a fraction.
            s.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            // CBOR: tag 1 around epoch milliseconds, as the AWS SDKs for Java write and read
            // them. (`@@TAG@@` / `@@TAGGED@@` is how serde formats such as ciborium are told
            // to emit a tag.)
            use serde::ser::SerializeTupleVariant;
            let mut tagged = s.serialize_tuple_variant("@@TAG@@", 0, "@@TAGGED@@", 2)?;
            tagged.serialize_field(&1u64)?;
            tagged.serialize_field(&self.0)?;
            tagged.end()
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch seconds")
            }
            // Floored to the millisecond: AT_TIMESTAMP then includes every record stamped in
            // that millisecond rather than missing one.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Ok(Timestamp((v * 1000.0).floor() as i64))
            }
            // Integers are epoch seconds, or milliseconds (the Java SDKs' CBOR) when too large
            // to be seconds of this era (10^11 s is in the year 5138).
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(if v.abs() >= 100_000_000_000 {
                    v
                } else {
                    v.saturating_mul(1000)
                }))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            // A CBOR tag reaches serde as an enum (`@@TAGGED@@` with (tag, value), or
            // `@@UNTAGGED@@` with the value).
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<Timestamp, A::Error> {
                use serde::de::VariantAccess;
                let (name, variant): (String, _) = data.variant()?;
                if name == "@@TAGGED@@" {
                    variant.tuple_variant(2, self)
                } else {
                    variant.newtype_variant::<Timestamp>()
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse::<f64>()
                    .map(|s| Timestamp((s * 1000.0).floor() as i64))
                    .map_err(|_| E::custom("timestamp is not a number of epoch seconds"))
            }
            // A CBOR tag (1: epoch seconds) reaches us as a newtype or a (tag, value) sequence.
            fn visit_newtype_struct<D2: Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<Timestamp, D2::Error> {
                Timestamp::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Timestamp, A::Error> {
                let _tag: Option<u64> = seq.next_element()?;
                seq.next_element::<Timestamp>()?
                    .ok_or_else(|| serde::de::Error::custom("empty tagged timestamp"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `2026-01-31T12:00:00.000Z` for messages.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = super::sigv4::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// No output: an operation without output answers an empty body; SubscribeToShard's
/// initial-response event is `{}`.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

/// Operations that name a stream take `StreamName` or `StreamARN`.
pub trait StreamRef {
    /// `StreamName`.
    fn stream_name(&self) -> Option<&str>;
    /// `StreamARN`.
    fn stream_arn(&self) -> Option<&str>;
}

macro_rules! stream_ref {
    ($($t:ty),* $(,)?) => {
        $(impl StreamRef for $t {
            fn stream_name(&self) -> Option<&str> {
                self.stream_name.as_deref()
            }
            fn stream_arn(&self) -> Option<&str> {
                self.stream_arn.as_deref()
            }
        })*
    };
}

stream_ref!(
    DeleteStreamInput,
    DescribeStreamInput,
    StreamOnlyInput,
    PutRecordInput,
    PutRecordsInput,
    GetShardIteratorInput,
    ListShardsInput,
    RetentionInput,
    AddTagsInput,
    ListTagsInput,
    RemoveTagsInput,
    MonitoringInput,
    SplitShardInput,
    MergeShardsInput,
    UpdateShardCountInput,
    StreamEncryptionInput,
);

/// StreamModeDetails.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    /// PROVISIONED or ON_DEMAND.
    pub stream_mode: String,
}

/// CreateStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// ShardCount.
    pub shard_count: Option<i64>,
    /// StreamModeDetails.
    pub stream_mode_details: Option<StreamModeDetails>,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// DeleteStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// EnforceConsumerDeletion.
    pub enforce_consumer_deletion: Option<bool>,
}

/// DescribeStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Limit.
    pub limit: Option<i64>,
    /// ExclusiveStartShardId.
    pub exclusive_start_shard_id: Option<String>,
}

/// Operations whose input is only the stream (DescribeStreamSummary).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamOnlyInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

/// HashKeyRange.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    /// StartingHashKey.
    pub starting_hash_key: String,
    /// EndingHashKey.
    pub ending_hash_key: String,
}

/// SequenceNumberRange.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// StartingSequenceNumber.
    pub starting_sequence_number: String,
    /// EndingSequenceNumber (closed shards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// Shard.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    /// ShardId.
    pub shard_id: String,
    /// ParentShardId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    /// AdjacentParentShardId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    /// HashKeyRange.
    pub hash_key_range: HashKeyRange,
    /// SequenceNumberRange.
    pub sequence_number_range: SequenceNumberRange,
}

/// EnhancedMetrics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    /// ShardLevelMetrics.
    pub shard_level_metrics: Vec<String>,
}

/// StreamDescription.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    /// StreamName.
    pub stream_name: String,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// StreamStatus.
    pub stream_status: String,
    /// StreamModeDetails.
    pub stream_mode_details: StreamModeDetails,
    /// Shards.
    pub shards: Vec<Shard>,
    /// HasMoreShards.
    pub has_more_shards: bool,
    /// RetentionPeriodHours.
    pub retention_period_hours: i64,
    /// StreamCreationTimestamp.
    pub stream_creation_timestamp: Timestamp,
    /// EnhancedMonitoring.
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    /// EncryptionType.
    pub encryption_type: String,
    /// KeyId (encrypted streams).
    #[serde(rename = "KeyId", skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Operations addressed by a resource ARN only (GetResourcePolicy, DeleteResourcePolicy,
/// ListTagsForResource).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceArnInput {
    /// ResourceARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

/// ListTagsForResource.
pub type ListTagsForResourceInput = ResourceArnInput;

/// ListTagsForResource output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    /// Tags.
    pub tags: Vec<Tag>,
}

/// TagResource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    /// ResourceARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// UntagResource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    /// ResourceARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    /// TagKeys.
    pub tag_keys: Option<Vec<String>>,
}

/// PutResourcePolicy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyInput {
    /// ResourceARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    /// Policy.
    pub policy: Option<String>,
}

/// GetResourcePolicy output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    /// Policy.
    pub policy: String,
}

/// UpdateStreamMode.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// StreamModeDetails.
    pub stream_mode_details: Option<StreamModeDetails>,
}

/// StartStreamEncryption and StopStreamEncryption.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamEncryptionInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// EncryptionType.
    pub encryption_type: Option<String>,
    /// KeyId.
    pub key_id: Option<String>,
}

/// MinimumThroughputBillingCommitment of the account settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillingCommitment {
    /// ENABLED, DISABLED or DISABLED_UNTIL_... (answered), ENABLED / DISABLED (asked).
    pub status: Option<String>,
    /// StartedAt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// EndedAt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// EarliestAllowedEndAt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_allowed_end_at: Option<Timestamp>,
}

/// DescribeAccountSettings output, UpdateAccountSettings input and output.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettings {
    /// MinimumThroughputBillingCommitment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_throughput_billing_commitment: Option<BillingCommitment>,
}

/// DescribeStream output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    /// StreamDescription.
    pub stream_description: StreamDescription,
}

/// StreamDescriptionSummary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    /// StreamName.
    pub stream_name: String,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// StreamStatus.
    pub stream_status: String,
    /// StreamModeDetails.
    pub stream_mode_details: StreamModeDetails,
    /// RetentionPeriodHours.
    pub retention_period_hours: i64,
    /// StreamCreationTimestamp.
    pub stream_creation_timestamp: Timestamp,
    /// EnhancedMonitoring.
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    /// EncryptionType.
    pub encryption_type: String,
    /// KeyId (encrypted streams).
    #[serde(rename = "KeyId", skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// OpenShardCount.
    pub open_shard_count: i64,
    /// ConsumerCount.
    pub consumer_count: i64,
}

/// DescribeStreamSummary output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    /// StreamDescriptionSummary.
    pub stream_description_summary: StreamDescriptionSummary,
}

/// ListStreams.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    /// Limit.
    pub limit: Option<i64>,
    /// ExclusiveStartStreamName.
    pub exclusive_start_stream_name: Option<String>,
    /// NextToken.
    pub next_token: Option<String>,
}

/// StreamSummary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    /// StreamName.
    pub stream_name: String,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// StreamStatus.
    pub stream_status: String,
    /// StreamModeDetails.
    pub stream_mode_details: StreamModeDetails,
    /// StreamCreationTimestamp.
    pub stream_creation_timestamp: Timestamp,
}

/// ListStreams output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    /// StreamNames.
    pub stream_names: Vec<String>,
    /// HasMoreStreams.
    pub has_more_streams: bool,
    /// NextToken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// StreamSummaries.
    pub stream_summaries: Vec<StreamSummary>,
}

/// ShardFilter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardFilter {
    /// Type.
    #[serde(rename = "Type")]
    pub kind: String,
    /// ShardId.
    pub shard_id: Option<String>,
    /// Timestamp.
    pub timestamp: Option<Timestamp>,
}

/// ListShards.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// NextToken.
    pub next_token: Option<String>,
    /// ExclusiveStartShardId.
    pub exclusive_start_shard_id: Option<String>,
    /// MaxResults.
    pub max_results: Option<i64>,
    /// StreamCreationTimestamp.
    pub stream_creation_timestamp: Option<Timestamp>,
    /// ShardFilter.
    pub shard_filter: Option<ShardFilter>,
}

/// ListShards output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    /// Shards.
    pub shards: Vec<Shard>,
    /// NextToken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// PutRecord.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Data.
    pub data: Option<Blob>,
    /// PartitionKey.
    pub partition_key: Option<String>,
    /// ExplicitHashKey.
    pub explicit_hash_key: Option<String>,
    /// SequenceNumberForOrdering.
    pub sequence_number_for_ordering: Option<String>,
}

/// PutRecord output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    /// ShardId.
    pub shard_id: String,
    /// SequenceNumber.
    pub sequence_number: String,
    /// EncryptionType.
    pub encryption_type: String,
}

/// One record of PutRecords.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsRequestEntry {
    /// Data.
    pub data: Option<Blob>,
    /// ExplicitHashKey.
    pub explicit_hash_key: Option<String>,
    /// PartitionKey.
    pub partition_key: Option<String>,
}

/// PutRecords.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Records.
    pub records: Option<Vec<PutRecordsRequestEntry>>,
}

/// One result of PutRecords.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    /// SequenceNumber.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// ShardId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// ErrorCode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// ErrorMessage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// PutRecords output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    /// FailedRecordCount.
    pub failed_record_count: i64,
    /// Records.
    pub records: Vec<PutRecordsResultEntry>,
    /// EncryptionType.
    pub encryption_type: String,
}

/// GetShardIterator.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ShardId.
    pub shard_id: Option<String>,
    /// ShardIteratorType.
    pub shard_iterator_type: Option<String>,
    /// StartingSequenceNumber.
    pub starting_sequence_number: Option<String>,
    /// Timestamp.
    pub timestamp: Option<Timestamp>,
}

/// GetShardIterator output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    /// ShardIterator.
    pub shard_iterator: String,
}

/// GetRecords.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    /// ShardIterator.
    pub shard_iterator: Option<String>,
    /// Limit.
    pub limit: Option<i64>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

/// Record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// SequenceNumber.
    pub sequence_number: String,
    /// ApproximateArrivalTimestamp.
    pub approximate_arrival_timestamp: Timestamp,
    /// Data.
    pub data: Blob,
    /// PartitionKey.
    pub partition_key: String,
}

/// ChildShard.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    /// ShardId.
    pub shard_id: String,
    /// ParentShards.
    pub parent_shards: Vec<String>,
    /// HashKeyRange.
    pub hash_key_range: HashKeyRange,
}

/// GetRecords output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    /// Records.
    pub records: Vec<Record>,
    /// NextShardIterator (absent once a closed shard is drained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_shard_iterator: Option<String>,
    /// MillisBehindLatest.
    pub millis_behind_latest: i64,
    /// ChildShards (once a closed shard is drained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

/// Increase/DecreaseStreamRetentionPeriod.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// RetentionPeriodHours.
    pub retention_period_hours: Option<i64>,
}

/// AddTagsToStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// ListTagsForStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ExclusiveStartTagKey.
    pub exclusive_start_tag_key: Option<String>,
    /// Limit.
    pub limit: Option<i64>,
}

/// Tag.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// ListTagsForStream output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    /// Tags.
    pub tags: Vec<Tag>,
    /// HasMoreTags.
    pub has_more_tags: bool,
}

/// RemoveTagsFromStream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// TagKeys.
    pub tag_keys: Option<Vec<String>>,
}

/// Enable/DisableEnhancedMonitoring.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ShardLevelMetrics.
    pub shard_level_metrics: Option<Vec<String>>,
}

/// Enable/DisableEnhancedMonitoring output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringOutput {
    /// StreamName.
    pub stream_name: String,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// CurrentShardLevelMetrics.
    pub current_shard_level_metrics: Vec<String>,
    /// DesiredShardLevelMetrics.
    pub desired_shard_level_metrics: Vec<String>,
}

/// DescribeLimits output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    /// ShardLimit.
    pub shard_limit: i64,
    /// OpenShardCount.
    pub open_shard_count: i64,
    /// OnDemandStreamCount.
    pub on_demand_stream_count: i64,
    /// OnDemandStreamCountLimit.
    pub on_demand_stream_count_limit: i64,
}

/// SplitShard.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ShardToSplit.
    pub shard_to_split: Option<String>,
    /// NewStartingHashKey.
    pub new_starting_hash_key: Option<String>,
}

/// MergeShards.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ShardToMerge.
    pub shard_to_merge: Option<String>,
    /// AdjacentShardToMerge.
    pub adjacent_shard_to_merge: Option<String>,
}

/// UpdateShardCount.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    /// StreamName.
    pub stream_name: Option<String>,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// TargetShardCount.
    pub target_shard_count: Option<i64>,
    /// ScalingType.
    pub scaling_type: Option<String>,
}

/// UpdateShardCount output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    /// StreamName.
    pub stream_name: String,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// CurrentShardCount.
    pub current_shard_count: i64,
    /// TargetShardCount.
    pub target_shard_count: i64,
}

/// RegisterStreamConsumer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterConsumerInput {
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ConsumerName.
    pub consumer_name: Option<String>,
}

/// DescribeStreamConsumer and DeregisterStreamConsumer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerRefInput {
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ConsumerName.
    pub consumer_name: Option<String>,
    /// ConsumerARN.
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: Option<String>,
}

/// ListStreamConsumers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListConsumersInput {
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// NextToken.
    pub next_token: Option<String>,
    /// MaxResults.
    pub max_results: Option<i64>,
    /// StreamCreationTimestamp.
    pub stream_creation_timestamp: Option<Timestamp>,
}

/// Consumer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    /// ConsumerName.
    pub consumer_name: String,
    /// ConsumerARN.
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    /// ConsumerStatus.
    pub consumer_status: String,
    /// ConsumerCreationTimestamp.
    pub consumer_creation_timestamp: Timestamp,
}

/// ConsumerDescription.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    /// ConsumerName.
    pub consumer_name: String,
    /// ConsumerARN.
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    /// ConsumerStatus.
    pub consumer_status: String,
    /// ConsumerCreationTimestamp.
    pub consumer_creation_timestamp: Timestamp,
    /// StreamARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

/// RegisterStreamConsumer output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterConsumerOutput {
    /// Consumer.
    pub consumer: Consumer,
}

/// DescribeStreamConsumer output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeConsumerOutput {
    /// ConsumerDescription.
    pub consumer_description: ConsumerDescription,
}

/// ListStreamConsumers output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListConsumersOutput {
    /// Consumers.
    pub consumers: Vec<Consumer>,
    /// NextToken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// StartingPosition of SubscribeToShard.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    /// Type (an iterator type).
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// SequenceNumber.
    pub sequence_number: Option<String>,
    /// Timestamp.
    pub timestamp: Option<Timestamp>,
}

/// SubscribeToShard.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardInput {
    /// ConsumerARN.
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: Option<String>,
    /// ShardId.
    pub shard_id: Option<String>,
    /// StartingPosition.
    pub starting_position: Option<StartingPosition>,
}

/// SubscribeToShardEvent, one message of the event stream.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardEvent {
    /// Records.
    pub records: Vec<Record>,
    /// ContinuationSequenceNumber.
    pub continuation_sequence_number: String,
    /// MillisBehindLatest.
    pub millis_behind_latest: i64,
    /// ChildShards (once a closed shard is drained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let r: PutRecordInput = serde_json::from_str(
            r#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k","Unknown":1}"#,
        )
        .unwrap();
        assert_eq!(r.data.unwrap().0, Bytes::from_static(b"hello"));
        let ts: GetShardIteratorInput =
            serde_json::from_str(r#"{"Timestamp":1700000000.5}"#).unwrap();
        assert_eq!(ts.timestamp, Some(Timestamp(1_700_000_000_500)));
        let out = serde_json::to_string(&Record {
            sequence_number: "1".into(),
            approximate_arrival_timestamp: Timestamp(1_500),
            data: Blob(Bytes::from_static(b"hi")),
            partition_key: "k".into(),
        })
        .unwrap();
        assert_eq!(
            out,
            r#"{"SequenceNumber":"1","ApproximateArrivalTimestamp":1.5,"Data":"aGk=","PartitionKey":"k"}"#
        );
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    }
}
