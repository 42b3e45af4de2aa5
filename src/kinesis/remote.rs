//! Forwarding of Kinesis partition operations to the partition's leader in a cluster.
//!
//! Any broker's Kinesis endpoint serves any stream: an operation on a partition led here goes
//! to the local shard as on a single node; one on a partition led by another broker is sent to
//! that leader over the Kafka protocol on the inter-broker listener, as a Kafka client would:
//!
//! | Kinesis need | Kafka request |
//! |---|---|
//! | append a batch (PutRecord/PutRecords) | Produce v13, `acks=-1` (fsynced, and every in-sync replica has it) |
//! | read from an offset (GetRecords, SubscribeToShard) | Fetch v16, replica id -1, read-uncommitted |
//! | log start offset and high watermark | ListOffsets v7, `-2` and `-1` in one request |
//! | first offset at a time (AT_TIMESTAMP) | ListOffsets v7 |
//!
//! [`Remote`] holds a small pool of [`BrokerClient`] connections per broker (one request in
//! flight each; a connection that failed is dropped and the next call connects afresh) and
//! answers [`RemoteError`]s, which [`KinesisError`](super::KinesisError) turns into what the
//! local path answers for the same failure. [`Route`] says where an operation goes; the
//! handlers' helpers in `ops` retry a forwarded call that failed before the leader did anything
//! (no leader yet, a leader that moved or has not applied the topic yet) against the leader of
//! the next metadata image, within [`FORWARD_RETRY`].
//!
//! Everything here runs on the runtime of the shard that accepted the Kinesis connection. The
//! module is only built into a cluster node's front end (`Kinesis::remote` is `None` on a
//! single node, so the local path costs nothing more there).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::catalog::TopicMeta;
use crate::controller::Controller;
use crate::kafka::error::Code;
use crate::replication::client::{BrokerClient, ClientError};

/// Produce version sent (topic ids, so a recreated stream is never written by mistake).
pub const PRODUCE_VERSION: i16 = 13;
/// Fetch version sent (topic ids).
pub const FETCH_VERSION: i16 = 16;
/// ListOffsets version sent.
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// How long connecting to a broker may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a Produce waits on the leader for the in-sync replicas (`timeout_ms`).
pub const PRODUCE_TIMEOUT: Duration = Duration::from_secs(10);
/// What a call may take beyond the time the leader is allowed to wait.
const CALL_MARGIN: Duration = Duration::from_secs(5);
/// How long the handlers keep retrying a forwarded call that failed before the leader acted.
pub const FORWARD_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts (a new metadata image ends it sooner).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// How long a forwarded read that may wait (SubscribeToShard, caught up) waits on the leader
/// for new records: the remote counterpart of the local append wake-up.
pub const LONG_POLL: Duration = Duration::from_secs(1);
/// Idle connections kept per broker.
const IDLE_PER_BROKER: usize = 8;

/// Where an operation on a partition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node leads it (or the image does not know it: the local path answers as before).
    Local,
    /// The broker with this id leads it.
    Leader(i32),
    /// No broker leads it right now (an election is under way, or every replica is down).
    Unavailable,
}

/// Why a forwarded operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No broker leads the partition.
    #[error("no leader for partition {partition} of topic {topic} (a leader election is under way or every replica is down)")]
    NoLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The leader's registration has no endpoint for the inter-broker listener.
    #[error("broker {0} has no inter-broker endpoint")]
    NoEndpoint(i32),
    /// Connecting to the leader failed: nothing was sent.
    #[error("cannot reach broker {broker}: {source}")]
    Connect {
        /// The leader.
        broker: i32,
        /// What failed.
        #[source]
        source: ClientError,
    },
    /// The call failed after the request was sent (its effect is unknown).
    #[error("call to broker {broker} failed: {source}")]
    Call {
        /// The leader.
        broker: i32,
        /// What failed.
        #[source]
        source: ClientError,
    },
    /// The leader answered a Kafka error code for the partition.
    #[error("{}", kafka_message(*code, message.as_deref()))]
    Kafka {
        /// The code.
        code: Code,
        /// The leader's error message, if it sent one.
        message: Option<String>,
    },
    /// The leader's response lacks the partition asked about.
    #[error("broker {broker} answered without partition {partition}")]
    Missing {
        /// The leader.
        broker: i32,
        /// The partition.
        partition: i32,
    },
}

impl RemoteError {
    /// Whether the leader certainly did nothing, so the call may be sent again (to the leader
    /// of a newer image): no leader, a connection that could not be made, or a leader that
    /// does not (yet) lead the partition or know the topic.
    pub fn retriable(&self) -> bool {
        match self {
            RemoteError::NoLeader { .. }
            | RemoteError::NoEndpoint(_)
            | RemoteError::Connect { .. } => true,
            RemoteError::Kafka { code, .. } => matches!(
                code,
                Code::NotLeaderOrFollower
                    | Code::LeaderNotAvailable
                    | Code::UnknownTopicOrPartition
                    | Code::UnknownTopicId
                    | Code::FencedLeaderEpoch
                    | Code::UnknownLeaderEpoch
            ),
            RemoteError::Call { .. } | RemoteError::Missing { .. } => false,
        }
    }

    /// The error of a partition's `error_code` (`None` for 0).
    fn from_code(code: i16, message: Option<&StrBytes>) -> Option<RemoteError> {
        Code::try_from_code(code).map(|code| RemoteError::Kafka {
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        })
    }
}

/// The text of a Kafka error as the local path words the same failure: the leader's own
/// message when it sent one (the produce path sends the storage error's text, which is what a
/// local append answers), else the storage error's text for the codes a local call can give,
/// else the code's name.
pub fn kafka_message(code: Code, message: Option<&str>) -> String {
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    match code {
        Code::UnknownTopicOrPartition | Code::UnknownTopicId => {
            crate::shard::StorageError::UnknownPartition.to_string()
        }
        Code::NotLeaderOrFollower | Code::LeaderNotAvailable => {
            crate::shard::StorageError::NotLeader.to_string()
        }
        other => format!(
            "the partition's leader answered {other} (error code {})",
            other.code()
        ),
    }
}

/// What a forwarded read got: as [`crate::log::ReadResult`], from the offset actually read.
#[derive(Debug, Clone)]
pub struct RemoteRead {
    /// The offset read from: the one asked for, moved into [log start, high watermark].
    pub from: i64,
    /// Whole batches, verbatim as the leader stores them.
    pub records: Bytes,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// The leader's high watermark.
    pub high_watermark: i64,
}

/// The connections of one broker-to-broker peer, keyed by the address they were made to (a
/// broker that restarts elsewhere gets fresh ones).
type Idle = HashMap<i32, Vec<(String, BrokerClient)>>;

/// The forwarding side of a cluster node's Kinesis front end.
pub struct Remote {
    controller: Arc<Controller>,
    client_id: String,
    idle: Mutex<Idle>,
}

impl Remote {
    /// Forwarding for the node `controller` runs.
    pub fn new(controller: Arc<Controller>) -> Remote {
        let client_id = format!("esker-kinesis-{}", controller.node_id());
        Remote {
            controller,
            client_id,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Where an operation on `partition` of `topic` goes, by the current metadata image.
    pub fn route(&self, topic: &str, partition: i32) -> Route {
        let image = self.controller.image();
        match image.partition(topic, partition) {
            None => Route::Local,
            Some(p) if p.leader == self.controller.node_id() => Route::Local,
            Some(p) if p.leader < 0 => Route::Unavailable,
            Some(p) => Route::Leader(p.leader),
        }
    }

    /// Waits for the next metadata image, at most [`RETRY_INTERVAL`] and never past
    /// `deadline`.
    pub async fn wait_for_metadata(&self, deadline: tokio::time::Instant) {
        let mut rx = self.controller.feed().subscribe();
        rx.mark_unchanged();
        let until = deadline.min(tokio::time::Instant::now() + RETRY_INTERVAL);
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
    }

    /// Sends one request to broker `broker` on a pooled or new connection.
    async fn call<Req, Resp>(
        &self,
        broker: i32,
        key: ApiKey,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RemoteError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let image = self.controller.image();
        let listener = &self.controller.config().inter_broker_listener;
        let (host, port) = crate::context::broker_endpoint(&image, broker, listener)
            .ok_or(RemoteError::NoEndpoint(broker))?;
        let addr = format!("{host}:{port}");
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let conns = idle.entry(broker).or_default();
            // Connections to an old address, or that the peer closed (it restarted), go.
            conns.retain(|(a, c)| *a == addr && c.is_open());
            conns.pop().map(|(_, c)| c)
        };
        let mut client = match pooled {
            Some(c) => c,
            None => BrokerClient::connect(&addr, &self.client_id, CONNECT_TIMEOUT)
                .await
                .map_err(|source| RemoteError::Connect { broker, source })?,
        };
        let resp = client
            .call(key, version, req, timeout)
            .await
            .map_err(|source| RemoteError::Call { broker, source })?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry(broker).or_default();
        if conns.len() < IDLE_PER_BROKER {
            conns.push((addr, client));
        }
        Ok(resp)
    }

    /// Appends one batch to each of `batches`' partitions of `topic`, all led by `broker`, with
    /// `acks=-1`; answers each batch's base offset in the order given, or the failure of the
    /// whole call.
    pub async fn append(
        &self,
        broker: i32,
        topic: &TopicMeta,
        batches: &[(i32, Bytes)],
    ) -> Result<Vec<Result<i64, RemoteError>>, RemoteError> {
        let partition_data = batches
            .iter()
            .map(|(p, b)| {
                PartitionProduceData::default()
                    .with_index(*p)
                    .with_records(Some(b.clone()))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PRODUCE_TIMEOUT.as_millis() as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_topic_id(topic.id)
                .with_partition_data(partition_data)]);
        let resp: ProduceResponse = self
            .call(
                broker,
                ApiKey::Produce,
                PRODUCE_VERSION,
                &req,
                PRODUCE_TIMEOUT + CALL_MARGIN,
            )
            .await?;
        let answered: Vec<_> = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .collect();
        Ok(batches
            .iter()
            .map(|(p, _)| {
                let pr = answered
                    .iter()
                    .find(|r| r.index == *p)
                    .ok_or(RemoteError::Missing {
                        broker,
                        partition: *p,
                    })?;
                match RemoteError::from_code(pr.error_code, pr.error_message.as_ref()) {
                    Some(e) => Err(e),
                    None => Ok(pr.base_offset),
                }
            })
            .collect())
    }

    /// Reads `partition` of `topic` on its leader `broker` from `offset` (moved into the
    /// leader's [log start, high watermark] as the local read does), at most `max_bytes` (the
    /// first batch always), waiting up to `wait` for records when there are none.
    pub async fn read(
        &self,
        broker: i32,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<RemoteRead, RemoteError> {
        let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX);
        let mut from = offset;
        // A second pass only after an out-of-range offset was moved into the log.
        for _ in 0..2 {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(-1)))
                .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
                .with_min_bytes(1)
                .with_max_bytes(max_bytes)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(topic.id)
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(from)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(max_bytes)])]);
            let resp: FetchResponse = self
                .call(
                    broker,
                    ApiKey::Fetch,
                    FETCH_VERSION,
                    &req,
                    wait + CALL_MARGIN,
                )
                .await?;
            if let Some(e) = RemoteError::from_code(resp.error_code, None) {
                return Err(e);
            }
            let pd = resp
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .ok_or(RemoteError::Missing { broker, partition })?;
            let (start, hw) = (pd.log_start_offset, pd.high_watermark);
            match RemoteError::from_code(pd.error_code, None) {
                None => {
                    return Ok(RemoteRead {
                        from: clamp(from, start, hw),
                        records: pd.records.clone().unwrap_or_default(),
                        log_start_offset: start,
                        high_watermark: hw,
                    })
                }
                Some(RemoteError::Kafka {
                    code: Code::OffsetOutOfRange,
                    ..
                }) if start >= 0 && hw >= start && clamp(from, start, hw) != from => {
                    from = clamp(from, start, hw);
                }
                Some(e) => return Err(e),
            }
        }
        Err(RemoteError::Kafka {
            code: Code::OffsetOutOfRange,
            message: Some(format!(
                "offset {offset} of partition {partition} stayed out of the leader's range"
            )),
        })
    }

    /// ListOffsets on the leader `broker` for each of `timestamps` (`-2` log start, `-1` high
    /// watermark, else the first record at or after the time): the offsets, -1 for none.
    pub async fn list_offsets(
        &self,
        broker: i32,
        topic: &TopicMeta,
        partition: i32,
        timestamps: &[i64],
    ) -> Result<Vec<i64>, RemoteError> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.to_string())))
                .with_partitions(
                    timestamps
                        .iter()
                        .map(|ts| {
                            ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(*ts)
                        })
                        .collect(),
                )]);
        let resp: ListOffsetsResponse = self
            .call(
                broker,
                ApiKey::ListOffsets,
                LIST_OFFSETS_VERSION,
                &req,
                CALL_MARGIN,
            )
            .await?;
        let answered: Vec<_> = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.partition_index == partition)
            .collect();
        if answered.len() != timestamps.len() {
            return Err(RemoteError::Missing { broker, partition });
        }
        answered
            .into_iter()
            .map(|p| match RemoteError::from_code(p.error_code, None) {
                Some(e) => Err(e),
                None => Ok(p.offset),
            })
            .collect()
    }
}

/// `offset` moved into `[start, end]` (as the local read does: the log start first, then the
/// end wins), or `offset` itself when the bounds are unknown.
fn clamp(offset: i64, start: i64, end: i64) -> i64 {
    if start < 0 || end < 0 {
        return offset;
    }
    offset.max(start).min(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_read_as_the_local_path_words_them() {
        // What a local append or read of the same partition answers.
        assert_eq!(
            kafka_message(Code::UnknownTopicOrPartition, None),
            "unknown topic or partition"
        );
        assert_eq!(
            kafka_message(Code::UnknownTopicId, Some("")),
            "unknown topic or partition"
        );
        assert_eq!(
            kafka_message(Code::NotLeaderOrFollower, None),
            "this broker is not the partition's leader"
        );
        // The leader's own text (the storage error's) wins.
        assert_eq!(
            kafka_message(
                Code::NotEnoughReplicas,
                Some("min.insync.replicas is 2 but 1 replicas are in sync")
            ),
            "min.insync.replicas is 2 but 1 replicas are in sync"
        );
        assert_eq!(
            kafka_message(Code::KafkaStorageError, None),
            "the partition's leader answered KafkaStorageError (error code 56)"
        );
    }

    #[test]
    fn only_failures_before_the_leader_acted_are_retried() {
        let kafka = |code| RemoteError::Kafka {
            code,
            message: None,
        };
        assert!(kafka(Code::NotLeaderOrFollower).retriable());
        assert!(kafka(Code::UnknownTopicId).retriable());
        assert!(RemoteError::NoEndpoint(2).retriable());
        assert!(RemoteError::Connect {
            broker: 2,
            source: ClientError::Timeout(CONNECT_TIMEOUT)
        }
        .retriable());
        // Sent: the records may be in the log, so a retry could write them twice.
        assert!(!RemoteError::Call {
            broker: 2,
            source: ClientError::Timeout(CONNECT_TIMEOUT)
        }
        .retriable());
        assert!(!kafka(Code::RequestTimedOut).retriable());
        assert!(!kafka(Code::MessageTooLarge).retriable());
        assert!(!kafka(Code::KafkaStorageError).retriable());
    }

    #[test]
    fn codes_become_errors() {
        assert!(RemoteError::from_code(0, None).is_none());
        let msg = StrBytes::from_static_str("boom");
        match RemoteError::from_code(6, Some(&msg)) {
            Some(RemoteError::Kafka { code, message }) => {
                assert_eq!(code, Code::NotLeaderOrFollower);
                assert_eq!(message.as_deref(), Some("boom"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            RemoteError::from_code(6, None).map(|e| e.to_string()),
            Some("this broker is not the partition's leader".to_string())
        );
    }

    #[test]
    fn offsets_are_moved_into_the_log() {
        assert_eq!(clamp(3, 5, 9), 5);
        assert_eq!(clamp(12, 5, 9), 9);
        assert_eq!(clamp(7, 5, 9), 7);
        assert_eq!(clamp(7, -1, -1), 7);
    }
}
