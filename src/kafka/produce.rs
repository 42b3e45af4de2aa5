//! Produce (key 0), versions 3..=13 (message format v2 only, as Kafka 4). Batches are handed
//! to the owning shard as the bytes the producer sent (a slice of the request frame, never
//! copied); the log validates them and assigns offsets in patched copies of the headers. `acks=-1` waits for the shard's group-committed fsync; `acks=0` gets no
//! response at all (the connection keeps its response order regardless).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::error::{shard_code, storage_code, Code};
use crate::catalog::TopicMeta;
use crate::context::BrokerContext;
use crate::log::disk_full::RateLimited;
use crate::log::AppendInfo;
use crate::metrics::{Metrics, TopicMetrics};
use crate::shard::replica::{AckResult, ReplicationError};
use crate::shard::SyncResult;
use crate::shard::{Durability, ShardState, StorageError};
use crate::topic_config;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (3, 13);

/// The append, the log start offset, and what acknowledging it waits for: the local fsync
/// and (replicated partitions, `acks=all`) every in-sync replica.
type AppendReply = Result<
    (
        AppendInfo,
        i64,
        Option<oneshot::Receiver<SyncResult>>,
        Option<oneshot::Receiver<AckResult>>,
    ),
    StorageError,
>;

enum Slot {
    /// Queued on the shard; with the LogAppendTime stamped, if the topic uses it.
    Queued(oneshot::Receiver<AppendReply>, Option<i64>),
    Failed(Code, Option<String>),
    /// Another broker leads the partition (cluster).
    NotLeader(crate::context::NotLeader),
}

/// A topic's response in the making, its partitions' appends and its counters.
type PendingTopic = (
    TopicProduceResponse,
    Vec<(i32, Slot)>,
    Option<Arc<TopicMetrics>>,
);

/// A produce whose appends are queued on the shards, waiting to be completed.
pub struct PendingProduce {
    topics: Vec<PendingTopic>,
    metrics: Arc<Metrics>,
    /// How long `acks=all` waits for the in-sync replicas (the request's `timeout_ms`).
    timeout: Duration,
}

/// Phase one (in the connection's read loop): queue every partition's append on its shard, in
/// request order.
pub async fn dispatch(
    ctx: &Arc<BrokerContext>,
    req: ProduceRequest,
    version: i16,
    listener: &str,
) -> PendingProduce {
    let durability = match req.acks {
        -1 => Some(Durability::Fsync),
        0 | 1 => Some(Durability::PageCache),
        _ => None,
    };
    let now = BrokerContext::now_ms();
    let timeout_ms = req.timeout_ms;
    let transactional_id = req.transactional_id.clone();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let meta = if version >= 13 {
            ctx.catalog.get_by_id(&t.topic_id)
        } else {
            ctx.catalog.get(t.name.as_str())
        };
        let mut resp = TopicProduceResponse::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id);
        let unknown = if version >= 13 {
            Code::UnknownTopicId
        } else {
            Code::UnknownTopicOrPartition
        };
        let mut slots = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let not_leader = meta
                .as_ref()
                .and_then(|m| ctx.not_leader(&m.name, p.index, listener));
            let unverified = match (&transactional_id, &meta, &p.records) {
                (Some(id), Some(m), Some(records)) => {
                    unverified_transaction(ctx, id.as_str(), &m.name, p.index, records)
                }
                _ => None,
            };
            let slot = match (&meta, durability, p.records) {
                (_, None, _) => Slot::Failed(Code::InvalidRequiredAcks, None),
                (None, _, _) => Slot::Failed(unknown, None),
                (Some(m), _, _) if p.index < 0 || p.index >= m.partitions => {
                    Slot::Failed(Code::UnknownTopicOrPartition, None)
                }
                // Only the coordinators write their internal topics (as in Kafka).
                (Some(m), _, _)
                    if &*m.name == crate::coordinator::OFFSETS_TOPIC
                        || &*m.name == crate::txn::TXN_TOPIC =>
                {
                    Slot::Failed(
                        Code::InvalidTopicException,
                        Some("cannot append to internal topic".into()),
                    )
                }
                (Some(_), _, _) if not_leader.is_some() => match not_leader {
                    Some(nl) => Slot::NotLeader(nl),
                    None => Slot::Failed(Code::NotLeaderOrFollower, None),
                },
                (Some(_), _, _) if unverified.is_some() => match unverified {
                    Some((code, why)) => Slot::Failed(code, Some(why.into())),
                    None => Slot::Failed(Code::InvalidTxnState, None),
                },
                (_, _, None) => Slot::Failed(Code::CorruptMessage, Some("no records".into())),
                (Some(m), Some(durability), Some(records)) => {
                    let limits = TopicLimits::of(ctx, m);
                    if records.is_empty() {
                        Slot::Failed(Code::CorruptMessage, Some("empty record set".into()))
                    } else if let Some(size) = oversized_batch(&records, limits.max_message_bytes) {
                        tracing::info!(topic = %m.name, partition = p.index, size, max = limits.max_message_bytes, "batch larger than max.message.bytes refused");
                        Slot::Failed(
                            Code::MessageTooLarge,
                            Some(format!(
                                "batch of {size} bytes exceeds max.message.bytes {}",
                                limits.max_message_bytes
                            )),
                        )
                    } else if durability == Durability::Fsync
                        && ctx.cluster.is_none()
                        && limits.min_insync_replicas > 1
                    {
                        Slot::Failed(
                            Code::NotEnoughReplicas,
                            Some(format!(
                                "min.insync.replicas is {} but one replica is in sync",
                                limits.min_insync_replicas
                            )),
                        )
                    } else {
                        let log_append_time = limits.log_append_time.then_some(now);
                        let topic = m.name.clone();
                        let index = p.index;
                        let job = move |s: &mut ShardState| -> AppendReply {
                            // The request's bytes as they are: the log patches copies of
                            // the batch headers, never the records.
                            let (info, wait) =
                                s.append(&topic, index, records, log_append_time, durability)?;
                            let replicated = if durability == Durability::Fsync {
                                s.replication_wait(&topic, index, info.last_offset + 1)
                            } else {
                                None
                            };
                            let start = s.snapshot(&topic, index)?.log_start_offset;
                            Ok((info, start, wait, replicated))
                        };
                        match ctx.shard(&m.name, index).submit(job).await {
                            Ok(rx) => Slot::Queued(rx, log_append_time),
                            Err(e) => Slot::Failed(shard_code(&e), None),
                        }
                    }
                }
            };
            slots.push((p.index, slot));
        }
        if let Some(m) = &meta {
            if version >= 13 {
                resp.name =
                    kafka_protocol::messages::TopicName(StrBytes::from_string(m.name.to_string()));
            }
        }
        let counters = meta.as_ref().and_then(|m| ctx.metrics.topic(ctx, &m.name));
        topics.push((resp, slots, counters));
    }
    PendingProduce {
        topics,
        metrics: ctx.metrics.clone(),
        timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1)),
    }
}

impl PendingProduce {
    /// Phase two: wait for the appends (and fsyncs) and build the response.
    pub async fn complete(self) -> ProduceResponse {
        let mut responses = Vec::with_capacity(self.topics.len());
        let api = self
            .metrics
            .api(kafka_protocol::messages::ApiKey::Produce as i16);
        let mut leaders = std::collections::BTreeMap::new();
        for (mut topic, slots, counters) in self.topics {
            for (index, slot) in slots {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let mut append_time = None;
                let outcome: Result<(AppendInfo, i64), (Code, Option<String>)> = match slot {
                    Slot::Failed(code, msg) => Err((code, msg)),
                    Slot::NotLeader(nl) => {
                        pr.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(nl.leader_id))
                            .with_leader_epoch(nl.leader_epoch);
                        if let Some(e) = nl.endpoint {
                            leaders.insert(nl.leader_id, e);
                        }
                        Err((Code::NotLeaderOrFollower, None))
                    }
                    Slot::Queued(rx, t) => match rx.await {
                        Err(_) => Err((Code::NotLeaderOrFollower, None)),
                        Ok(Err(e)) => {
                            let code = storage_code(&e);
                            if code == Code::KafkaStorageError {
                                // A full disk fails every produce: one line per interval.
                                log_storage_failure(topic.name.as_str(), index, &e);
                            } else if !matches!(e, StorageError::UnknownPartition) {
                                tracing::warn!(topic = ?topic.name, partition = index, error = %e, "produce rejected");
                            }
                            Err((code, Some(e.to_string())))
                        }
                        Ok(Ok((info, start, sync, replicated))) => {
                            match acknowledged(sync, replicated, self.timeout).await {
                                Ok(()) => {
                                    append_time = t;
                                    Ok((info, start))
                                }
                                Err(e) => Err(e),
                            }
                        }
                    },
                };
                if let Some(m) = &counters {
                    m.produce_requests.inc();
                    match &outcome {
                        Ok((info, _)) => {
                            m.messages_in.inc_by(u64::from(info.record_count));
                            m.bytes_in.inc_by(info.bytes as u64);
                        }
                        Err(_) => m.failed_produce.inc(),
                    }
                }
                if let (Some(api), Err((code, _))) = (api, &outcome) {
                    self.metrics.error(api, code.code());
                }
                match outcome {
                    Ok((info, start)) => {
                        pr.base_offset = info.base_offset;
                        pr.log_start_offset = start;
                        if let Some(t) = append_time {
                            pr.log_append_time_ms = t;
                        }
                    }
                    Err((code, msg)) => {
                        pr.error_code = code.code();
                        pr.error_message = msg.map(StrBytes::from_string);
                    }
                }
                topic.partition_responses.push(pr);
            }
            responses.push(topic);
        }
        // KIP-951: where the partitions that moved are led now.
        let node_endpoints = leaders
            .into_iter()
            .map(|(id, (host, port))| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port)
            })
            .collect();
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(node_endpoints)
    }
}

/// Produce appends that failed in the storage layer (KAFKA_STORAGE_ERROR): one log line per
/// ten seconds, with the number held back since the previous one.
static STORAGE_FAILURES: RateLimited = RateLimited::new(Duration::from_secs(10));

fn log_storage_failure(topic: &str, partition: i32, e: &StorageError) {
    let Some(held_back) = STORAGE_FAILURES.permit() else {
        return;
    };
    if e.is_out_of_space() {
        tracing::error!(
            topic,
            partition,
            error = %e,
            similar_failures_not_logged = held_back,
            "produce failed: the data directory's file system is full; answering \
             KAFKA_STORAGE_ERROR until space is freed (reads continue, nothing acknowledged is lost)"
        );
    } else {
        tracing::error!(
            topic,
            partition,
            error = %e,
            similar_failures_not_logged = held_back,
            "produce failed in the storage layer; answering KAFKA_STORAGE_ERROR"
        );
    }
}

/// Waits for what an append's acknowledgement needs: the local fsync, then every in-sync
/// replica (bounded by the request's timeout: REQUEST_TIMED_OUT, as Kafka answers).
async fn acknowledged(
    sync: Option<oneshot::Receiver<SyncResult>>,
    replicated: Option<oneshot::Receiver<AckResult>>,
    timeout: Duration,
) -> Result<(), (Code, Option<String>)> {
    if let Some(sync) = sync {
        match sync.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((Code::KafkaStorageError, Some(e.to_string()))),
            Err(_) => {
                return Err((
                    Code::KafkaStorageError,
                    Some("shard stopped before fsync".into()),
                ))
            }
        }
    }
    let Some(replicated) = replicated else {
        return Ok(());
    };
    match tokio::time::timeout(timeout, replicated).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(ReplicationError::NotLeader))) | Ok(Err(_)) => Err((
            Code::NotLeaderOrFollower,
            Some(ReplicationError::NotLeader.to_string()),
        )),
        Ok(Ok(Err(e @ ReplicationError::NotEnoughReplicasAfterAppend))) => {
            Err((Code::NotEnoughReplicasAfterAppend, Some(e.to_string())))
        }
        Err(_) => Err((
            Code::RequestTimedOut,
            Some("the in-sync replicas did not confirm the records in time".into()),
        )),
    }
}

/// The per-topic settings the produce path enforces.
struct TopicLimits {
    max_message_bytes: usize,
    min_insync_replicas: i64,
    log_append_time: bool,
}

impl TopicLimits {
    fn of(ctx: &BrokerContext, meta: &TopicMeta) -> TopicLimits {
        let o = &meta.configs;
        let ts = topic_config::def("message.timestamp.type")
            .map(|d| topic_config::effective(d, o, &ctx.config).0)
            .unwrap_or_default();
        TopicLimits {
            max_message_bytes: topic_config::effective_i64("max.message.bytes", o, &ctx.config)
                .max(0) as usize,
            min_insync_replicas: topic_config::effective_i64("min.insync.replicas", o, &ctx.config),
            log_append_time: ts == "LogAppendTime",
        }
    }
}

/// The size of the first batch larger than `max` (including its 12-byte offset/length prefix),
/// read from the batch headers only.
/// KIP-890 part 1 on a single coordinator: a transactional batch is refused unless its
/// transaction is open at its epoch and holds the partition (a late or stray batch would
/// otherwise open a transaction nobody ends, holding the last stable offset back). Checked only
/// when this broker coordinates the transactional id.
fn unverified_transaction(
    ctx: &BrokerContext,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Option<(Code, &'static str)> {
    use crate::txn::state::TxnError;
    let header = crate::log::batch::BatchHeader::parse(records).ok()?;
    if !header.is_transactional() {
        return None;
    }
    let key = (topic.to_string(), partition);
    match ctx.transactions.verify(
        transactional_id,
        header.producer_id,
        header.producer_epoch,
        &key,
    ) {
        Ok(()) => None,
        Err(TxnError::ProducerFenced) => Some((
            Code::InvalidProducerEpoch,
            "the producer's epoch is not the transaction's",
        )),
        Err(TxnError::InvalidTxnState | TxnError::InvalidProducerIdMapping) => Some((
            Code::InvalidTxnState,
            "the partition is not part of an open transaction of this producer",
        )),
        Err(_) => None,
    }
}

fn oversized_batch(records: &[u8], max: usize) -> Option<usize> {
    let mut pos = 0usize;
    while pos + 12 <= records.len() {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        let size = 12 + len.max(0) as usize;
        if size > max {
            return Some(size);
        }
        pos += size;
    }
    None
}
