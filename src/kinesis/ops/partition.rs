//! How handlers reach a partition: this node's shard when it leads the partition (or on a
//! single node, where `Kinesis::remote` is `None` and nothing else is looked at), else the
//! partition's leader through [`crate::kinesis::remote`]. Appends, reads, the log start and
//! high watermark, and the time lookup go through here, so every handler answers the same
//! records, sequence numbers and errors on every broker.
//!
//! A forwarded call that failed before the leader acted (no leader elected yet, a leader that
//! moved, or one that has not applied the topic yet) is retried against the leader of the
//! next metadata image until [`FORWARD_RETRY`] has passed; then its error is answered, as the
//! local path's would be (`InternalFailure`).

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::catalog::TopicMeta;
use crate::kinesis::error::KinesisError;
use crate::kinesis::remote::{Remote, RemoteError, Route, FORWARD_RETRY, LONG_POLL};
use crate::kinesis::Kinesis;
use crate::log::ReadResult;
use crate::shard::ShardState;

/// A batch waiting for its append: its index in the caller's list, partition and records.
type Batch = (usize, i32, Bytes);

impl Kinesis {
    /// Runs `op` against the leader of `partition` when another broker leads it, retrying
    /// what may be retried (see the module doc). `None`: this node leads it; the caller takes
    /// the local path.
    async fn forward<T, F, Fut>(
        remote: &Remote,
        topic: &TopicMeta,
        partition: i32,
        op: F,
    ) -> Option<Result<T, KinesisError>>
    where
        F: Fn(i32) -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        let deadline = Instant::now() + FORWARD_RETRY;
        loop {
            let result = match remote.route(&topic.name, partition) {
                Route::Local => return None,
                Route::Unavailable => Err(RemoteError::NoLeader {
                    topic: topic.name.to_string(),
                    partition,
                }),
                Route::Leader(leader) => op(leader).await,
            };
            match result {
                Ok(v) => return Some(Ok(v)),
                Err(e) if e.retriable() && Instant::now() < deadline => {
                    remote.wait_for_metadata(deadline).await;
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition, error = %e, "kinesis: forwarded partition operation failed");
                    return Some(Err(e.into()));
                }
            }
        }
    }

    /// The partition's log start offset and high watermark.
    pub(crate) async fn offsets(
        &self,
        topic: &TopicMeta,
        partition: i32,
    ) -> Result<(i64, i64), KinesisError> {
        if let Some(remote) = self.remote.as_deref() {
            let forwarded = Self::forward(remote, topic, partition, |leader| async move {
                match remote
                    .list_offsets(leader, topic, partition, &[-2, -1])
                    .await?
                    .as_slice()
                {
                    [start, end] => Ok((*start, *end)),
                    _ => Err(RemoteError::Missing {
                        broker: leader,
                        partition,
                    }),
                }
            })
            .await;
            if let Some(r) = forwarded {
                return r;
            }
        }
        let name = topic.name.clone();
        let snap = self
            .ctx
            .shard(&topic.name, partition)
            .call(move |s: &mut ShardState| s.snapshot(&name, partition))
            .await??;
        Ok((snap.log_start_offset, snap.high_watermark))
    }

    /// The first offset of a record at or after `timestamp` (ms), -1 if there is none.
    pub(crate) async fn offset_at(
        &self,
        topic: &TopicMeta,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, KinesisError> {
        if let Some(remote) = self.remote.as_deref() {
            let forwarded = Self::forward(remote, topic, partition, |leader| async move {
                let found = remote
                    .list_offsets(leader, topic, partition, &[timestamp])
                    .await?;
                found.first().copied().ok_or(RemoteError::Missing {
                    broker: leader,
                    partition,
                })
            })
            .await;
            if let Some(r) = forwarded {
                return r;
            }
        }
        let name = topic.name.clone();
        let (found, _) = self
            .ctx
            .shard(&topic.name, partition)
            .call(move |s: &mut ShardState| s.list_offset(&name, partition, timestamp))
            .await??;
        Ok(found)
    }

    /// Reads whole batches of the partition from `offset`, moved up to the log start if
    /// retention removed data (and down to the high watermark), at most `max_bytes` (the
    /// first batch always). Answers the offset read from and what was read.
    ///
    /// With `wake`, a local read that finds nothing registers it to be notified by the next
    /// append. A forwarded read has no such wake-up: it waits on the leader instead (a Fetch
    /// long poll of up to [`LONG_POLL`]), and when that found nothing it notifies `wake`
    /// itself, so the caller reads again at once (polling the leader, one long poll at a time).
    pub(crate) async fn read_partition(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wake: Option<&Arc<Notify>>,
    ) -> Result<(i64, ReadResult), KinesisError> {
        if let Some(remote) = self.remote.as_deref() {
            let wait = if wake.is_some() {
                LONG_POLL
            } else {
                std::time::Duration::ZERO
            };
            let forwarded = Self::forward(remote, topic, partition, |leader| {
                remote.read(leader, topic, partition, offset, max_bytes, wait)
            })
            .await;
            if let Some(r) = forwarded {
                let read = r?;
                if let (Some(w), true) = (wake, read.records.is_empty()) {
                    w.notify_one();
                }
                return Ok((
                    read.from,
                    ReadResult {
                        records: read.records,
                        log_start_offset: read.log_start_offset,
                        high_watermark: read.high_watermark,
                    },
                ));
            }
        }
        let name = topic.name.clone();
        let wake = wake.cloned();
        let read = self
            .ctx
            .shard(&topic.name, partition)
            .call(move |s: &mut ShardState| {
                let snap = s.snapshot(&name, partition)?;
                // Data below the log start is gone (retention, DeleteRecords): resume at it.
                let from = offset.max(snap.log_start_offset).min(snap.high_watermark);
                s.read(&name, partition, from, max_bytes, wake.as_ref())
                    .map(|r| (from, r))
            })
            .await??;
        Ok(read)
    }

    /// Appends one batch to each of several partitions and waits until each is acknowledged:
    /// those led here through [`Kinesis::append_local`] (fsynced), the others by a Produce
    /// with `acks=-1` to their leaders (all leaders at once). Answers each batch's base offset,
    /// in the order given.
    pub(crate) async fn append(
        &self,
        topic: &TopicMeta,
        batches: Vec<(i32, BytesMut)>,
    ) -> Vec<Result<i64, KinesisError>> {
        let batches: Vec<(i32, Bytes)> =
            batches.into_iter().map(|(p, b)| (p, b.freeze())).collect();
        let Some(remote) = &self.remote else {
            return self.append_local(topic, batches).await;
        };
        let mut out: Vec<Option<Result<i64, KinesisError>>> = vec![None; batches.len()];
        let mut todo: Vec<Batch> = batches
            .into_iter()
            .enumerate()
            .map(|(i, (p, b))| (i, p, b))
            .collect();
        let deadline = Instant::now() + FORWARD_RETRY;
        while !todo.is_empty() {
            let mut local: Vec<Batch> = Vec::new();
            let mut by_leader: std::collections::BTreeMap<i32, Vec<Batch>> = Default::default();
            // Failed batches, whether they may be sent again, and the error if not.
            let mut failed: Vec<(Batch, bool, KinesisError)> = Vec::new();
            for b in todo.drain(..) {
                match remote.route(&topic.name, b.1) {
                    Route::Local => local.push(b),
                    Route::Leader(id) => by_leader.entry(id).or_default().push(b),
                    Route::Unavailable => {
                        let e = RemoteError::NoLeader {
                            topic: topic.name.to_string(),
                            partition: b.1,
                        };
                        failed.push((b, true, e.into()));
                    }
                }
            }
            // Every leader's Produce is sent before any reply is awaited.
            let mut calls = Vec::with_capacity(by_leader.len());
            for (leader, group) in by_leader {
                let remote = remote.clone();
                let topic = topic.clone();
                calls.push(tokio::spawn(async move {
                    let sent: Vec<(i32, Bytes)> =
                        group.iter().map(|(_, p, b)| (*p, b.clone())).collect();
                    let result = remote.append(leader, &topic, &sent).await;
                    (group, result)
                }));
            }
            if !local.is_empty() {
                let sent = local.iter().map(|(_, p, b)| (*p, b.clone())).collect();
                for ((i, _, _), r) in local.iter().zip(self.append_local(topic, sent).await) {
                    out[*i] = Some(r);
                }
            }
            for call in calls {
                match call.await {
                    Ok((group, Ok(results))) => {
                        for (b, r) in group.into_iter().zip(results) {
                            match r {
                                Ok(base) => out[b.0] = Some(Ok(base)),
                                Err(e) => failed.push((b, e.retriable(), e.into())),
                            }
                        }
                    }
                    Ok((group, Err(e))) => {
                        // The whole call failed: each batch gets its own copy of the error.
                        let retriable = e.retriable();
                        let e = KinesisError::from(e);
                        for b in group {
                            failed.push((b, retriable, e.clone()));
                        }
                    }
                    Err(join) => {
                        tracing::error!(error = %join, "kinesis: forwarded append task failed");
                    }
                }
            }
            let again = Instant::now() < deadline;
            for (b, retriable, e) in failed {
                if retriable && again {
                    todo.push(b);
                } else {
                    tracing::warn!(topic = %topic.name, partition = b.1, error = %e, "kinesis: forwarded append failed");
                    out[b.0] = Some(Err(e));
                }
            }
            if !todo.is_empty() {
                remote.wait_for_metadata(deadline).await;
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(KinesisError::Internal("append task failed".into()))))
            .collect()
    }
}
