//! Delivery of a completing transaction's markers: one commit or abort control batch per
//! partition of the transaction, written by the partition's leader - this broker's shards
//! directly, another broker with a WriteTxnMarkers request. Each partition is retried with
//! backoff until its marker is durable, its topic is gone, or this broker stops coordinating the
//! transaction.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::state::TxnRecord;
use crate::context::BrokerContext;
use crate::kafka::error::Code;
use crate::replication::client::BrokerClient;

/// Deadline of one WriteTxnMarkers call to another broker (it waits for that partition's ISR).
const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// Connection deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a partition's marker goes.
enum Route {
    Local,
    Broker(i32),
    Unavailable,
}

fn route(ctx: &BrokerContext, topic: &str, partition: i32) -> Route {
    let Some(cluster) = &ctx.cluster else {
        return Route::Local;
    };
    match cluster.image().partition(topic, partition) {
        None => Route::Local,
        Some(p) if p.leader == ctx.config.node_id => Route::Local,
        Some(p) if p.leader < 0 => Route::Unavailable,
        Some(p) => Route::Broker(p.leader),
    }
}

/// Writes the marker of `txn` (commit or abort) in every one of its partitions. Returns false if
/// it gave up because `serving()` turned false.
pub async fn deliver(
    ctx: &Arc<BrokerContext>,
    txn: &TxnRecord,
    commit: bool,
    coordinator_epoch: i32,
    serving: &(dyn Fn() -> bool + Sync),
) -> bool {
    let mut pending: Vec<(String, i32)> = txn.partitions.iter().cloned().collect();
    let mut backoff = Duration::from_millis(20);
    while !pending.is_empty() {
        if !serving() {
            return false;
        }
        let mut set = tokio::task::JoinSet::new();
        for (topic, partition) in pending.drain(..) {
            let ctx = ctx.clone();
            let (pid, epoch) = (txn.producer_id, txn.producer_epoch);
            set.spawn(async move {
                let code = write_one(
                    &ctx,
                    &topic,
                    partition,
                    pid,
                    epoch,
                    commit,
                    coordinator_epoch,
                )
                .await;
                (topic, partition, code)
            });
        }
        while let Some(done) = set.join_next().await {
            let Ok((topic, partition, code)) = done else {
                continue;
            };
            match code {
                Ok(()) => {}
                Err(Code::UnknownTopicOrPartition) => {
                    tracing::info!(topic, partition, "partition gone; its marker is dropped");
                }
                Err(Code::InvalidProducerEpoch | Code::ProducerFenced) => {
                    // The partition saw a newer epoch of this producer: a later transaction
                    // already superseded this one there.
                    tracing::warn!(
                        topic,
                        partition,
                        transactional_id = %txn.transactional_id,
                        "marker refused for a stale epoch"
                    );
                }
                Err(Code::TransactionCoordinatorFenced) => {
                    // A newer coordinator has written this producer's markers there: it owns
                    // the transaction now.
                    tracing::warn!(
                        topic,
                        partition,
                        transactional_id = %txn.transactional_id,
                        coordinator_epoch,
                        "marker refused: a newer coordinator wrote there"
                    );
                }
                Err(other) => {
                    tracing::debug!(topic, partition, code = ?other, "marker not written yet; retrying");
                    pending.push((topic, partition));
                }
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
    true
}

async fn write_one(
    ctx: &Arc<BrokerContext>,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<(), Code> {
    match route(ctx, topic, partition) {
        Route::Local => {
            crate::kafka::write_txn_markers::write_marker(
                ctx,
                topic,
                partition,
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
            )
            .await
        }
        Route::Unavailable => Err(Code::LeaderNotAvailable),
        Route::Broker(broker) => {
            match remote(
                ctx,
                broker,
                topic,
                partition,
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
            )
            .await
            {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(broker, topic, partition, error = %e, "WriteTxnMarkers call failed");
                    Err(Code::NetworkException)
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn remote(
    ctx: &BrokerContext,
    broker: i32,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<Result<(), Code>, String> {
    let cluster = ctx.cluster.as_ref().ok_or("not a cluster")?;
    let image = cluster.image();
    let listener = &cluster.config().inter_broker_listener;
    let (host, port) = crate::context::broker_endpoint(&image, broker, listener)
        .ok_or_else(|| format!("no endpoint for broker {broker}"))?;
    let client_id = format!("esker-txn-{}", ctx.config.node_id);
    let mut client = BrokerClient::connect(&format!("{host}:{port}"), &client_id, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![partition])])]);
    let resp: WriteTxnMarkersResponse = client
        .call(ApiKey::WriteTxnMarkers, 1, &req, CALL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let code = resp
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.error_code)
        .ok_or("no answer for the partition")?;
    Ok(match Code::try_from_code(code) {
        None => Ok(()),
        Some(e) => Err(e),
    })
}
