//! SubscribeToShard (enhanced fan-out): an `application/vnd.amazon.eventstream` response that
//! pushes the shard's records as they are appended, for up to 5 minutes.
//!
//! The first message is the `initial-response` event; then each `SubscribeToShardEvent` holds
//! the records read since the previous one (at most 10 000 records or 2 MiB), the
//! ContinuationSequenceNumber to resubscribe from with AFTER_SEQUENCE_NUMBER (the gap after
//! the last record delivered, see [`crate::kinesis::sequence`]) and MillisBehindLatest. A
//! caught-up subscription waits for the next append to the partition (the same wake-up as a
//! Kafka fetch long poll) and sends an empty event every 5 seconds meanwhile. In a cluster, a
//! subscription to a partition led by another broker has no local wake-up: it polls the
//! leader with Fetch long polls of up to a second each ([`crate::kinesis::remote::LONG_POLL`]),
//! so new records still arrive within a round trip and empty events still go out every 5
//! seconds; the end of the subscription, shutdown or a client that left are then noticed once
//! the poll under way returns (within that second). A closed shard,
//! once drained, gets a last event with its ChildShards and the stream ends. One subscription
//! per consumer and shard at a time (ResourceInUseException otherwise), as in AWS.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::consumers::find_consumer;
use super::get_records::{child_shards, millis_behind, read_shard, record_models};
use super::get_shard_iterator::resolve;
use super::{encode, find_shard, required};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::eventstream;
use crate::kinesis::model::{Empty, SubscribeToShardEvent, SubscribeToShardInput};
use crate::kinesis::sequence::SequenceNumber;
use crate::kinesis::server::{Encoding, Reply};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// How long a subscription lasts.
pub const SUBSCRIPTION: Duration = Duration::from_secs(300);
/// An event is sent at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Data per event.
const EVENT_BYTES: usize = 2 << 20;
/// Messages buffered ahead of the client.
const QUEUE: usize = 4;

/// Removes a subscription from the active set when it ends.
struct Active {
    k: Arc<Kinesis>,
    key: (uuid::Uuid, String, i32),
}

impl Drop for Active {
    fn drop(&mut self) {
        self.k
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Handles SubscribeToShard.
pub async fn handle(
    k: &Arc<Kinesis>,
    req: SubscribeToShardInput,
    caller: &Caller,
    encoding: Encoding,
) -> Result<Reply, KinesisError> {
    let arn = required(req.consumer_arn, "consumerARN")?;
    let shard = required(req.shard_id, "shardId")?;
    let start = required(req.starting_position, "startingPosition")?;
    let kind = required(start.kind, "startingPosition.type")?;
    let (stream, consumer) = find_consumer(k, Some(&arn), None, None)?;
    k.authorize(
        caller,
        "SubscribeToShard",
        crate::auth::Operation::Read,
        &stream.name,
    )?;
    let partition = find_shard(&stream, &shard)?.partition;
    let offset = resolve(
        k,
        &stream,
        partition,
        &kind,
        start.sequence_number.as_deref(),
        start.timestamp,
        "SubscribeToShard",
    )
    .await?;
    let key = (stream.topic.id, consumer.name.clone(), partition);
    if !k
        .subscriptions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.clone())
    {
        return Err(KinesisError::ResourceInUse(format!(
            "Another active subscription exists for consumer {} on shard {shard} of stream {} \
             under account {ACCOUNT_ID}.",
            consumer.name, stream.name
        )));
    }
    let active = Active { k: k.clone(), key };
    let (tx, rx) = mpsc::channel(QUEUE);
    let initial = encode(&Empty {}, encoding)?;
    let content_type = encoding.content_type();
    let _ = tx
        .send(eventstream::event(
            "initial-response",
            content_type,
            &initial,
        ))
        .await;
    let name = stream.name.clone();
    tokio::spawn(async move {
        let _active = active;
        pump(&_active.k, &name, partition, offset, encoding, tx).await;
    });
    Ok(Reply::Events(rx))
}

/// Sends events until the subscription expires, the client goes away, the shard is drained
/// after closing, or the stream disappears.
async fn pump(
    k: &Kinesis,
    name: &str,
    partition: i32,
    mut offset: i64,
    encoding: Encoding,
    tx: mpsc::Sender<Bytes>,
) {
    let content_type = encoding.content_type();
    let deadline = tokio::time::Instant::now() + SUBSCRIPTION;
    let wake = Arc::new(Notify::new());
    let mut stop = k.stop.clone();
    // When the last event went out (`None`: none yet).
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        let step = async {
            let stream = k.stream(name)?;
            let closed = stream
                .meta
                .shard(partition)
                .is_some_and(|s| s.closed.is_some());
            let created = stream.meta.shard(partition).map_or(0, |s| s.created_ms);
            let read = read_shard(
                k,
                &stream,
                partition,
                offset,
                10_000,
                EVENT_BYTES,
                Some(&wake),
            )
            .await?;
            let drained = closed && read.next_offset >= read.high_watermark;
            let caught_up = read.records.is_empty();
            let event = SubscribeToShardEvent {
                continuation_sequence_number: SequenceNumber::gap(
                    partition,
                    read.next_offset,
                    created,
                    BrokerContext::now_ms(),
                )
                .encode(),
                millis_behind_latest: millis_behind(&read, BrokerContext::now_ms()),
                child_shards: drained.then(|| child_shards(&stream, partition)),
                records: record_models(partition, created, read.records),
            };
            let payload = encode(&event, encoding)?;
            Ok::<_, KinesisError>((payload, read.next_offset, drained, caught_up))
        };
        let (payload, next, drained, caught_up) = match step.await {
            Ok(x) => x,
            Err(e) => {
                let body = serde_json::json!({"message": e.message()});
                let payload = match encoding {
                    Encoding::Json => Bytes::from(body.to_string()),
                    Encoding::Cbor => encode(&body, encoding).unwrap_or_default(),
                };
                let _ = tx
                    .send(eventstream::exception(
                        e.type_name(),
                        content_type,
                        &payload,
                    ))
                    .await;
                return;
            }
        };
        offset = next;
        // An empty event only as a heartbeat: a wake-up that found nothing (or a forwarded
        // read's long poll that ended empty) sends none before HEARTBEAT has passed.
        let due = !matches!(last_sent, Some(t) if t.elapsed() < HEARTBEAT);
        if !caught_up || drained || due {
            if tx
                .send(eventstream::event(
                    "SubscribeToShardEvent",
                    content_type,
                    &payload,
                ))
                .await
                .is_err()
                || drained
            {
                return;
            }
            last_sent = Some(tokio::time::Instant::now());
        }
        if caught_up {
            let wait = last_sent.unwrap_or_else(tokio::time::Instant::now) + HEARTBEAT;
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(wait.min(deadline)) => {}
                _ = tx.closed() => return,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        if tokio::time::Instant::now() >= deadline || *stop.borrow() {
            return;
        }
    }
}
