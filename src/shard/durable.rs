//! Durable internal writes: an append made on a partition's shard, then awaited until it is on
//! disk (fsync) and, for a replicated partition, in every in-sync replica - the acks=all path
//! the coordinators and transaction markers share.

use std::time::Duration;

use tokio::sync::oneshot;

use super::replica::{AckResult, ReplicationError};
use super::{ShardError, ShardHandle, ShardState, StorageError, SyncResult};
use crate::log::AppendInfo;

/// How long a durable write waits for the in-sync replicas before it fails.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a durable write failed.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The append itself was refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The shard stopped (shutdown).
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The fsync failed.
    #[error("fsync failed: {0}")]
    Fsync(String),
    /// The in-sync replicas refused or lost the records (leadership moved).
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// The in-sync replicas did not confirm within [`REPLICATION_TIMEOUT`].
    #[error("the in-sync replicas did not confirm within {0:?}")]
    Timeout(Duration),
}

/// What a queued append answers: its info and the fsync and ISR waits.
type Appended = Result<
    (
        AppendInfo,
        Option<oneshot::Receiver<SyncResult>>,
        Option<oneshot::Receiver<AckResult>>,
    ),
    StorageError,
>;

/// An append queued on its shard by [`submit`]; [`Pending::wait`] awaits its durability.
pub struct Pending(oneshot::Receiver<Appended>);

/// Queues `append` on `shard` (it returns what [`ShardState::append`] returns for
/// `Durability::Fsync`) without waiting for it to run, so appends submitted one after another
/// by one task are made in that order.
pub async fn submit<F>(
    shard: &ShardHandle,
    topic: &str,
    partition: i32,
    append: F,
) -> Result<Pending, DurableError>
where
    F: FnOnce(
            &mut ShardState,
        ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError>
        + Send
        + 'static,
{
    let topic = topic.to_string();
    let rx = shard
        .submit(move |s: &mut ShardState| {
            let (info, synced) = append(s)?;
            let replicated = s.replication_wait(&topic, partition, info.last_offset + 1);
            Ok((info, synced, replicated))
        })
        .await?;
    Ok(Pending(rx))
}

impl Pending {
    /// Waits until the append is on disk and, for a replicated partition, in every in-sync
    /// replica.
    pub async fn wait(self) -> Result<AppendInfo, DurableError> {
        let (info, synced, replicated) = self
            .0
            .await
            .map_err(|_| DurableError::Fsync("shard stopped".into()))??;
        if let Some(synced) = synced {
            match synced.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(DurableError::Fsync(e.to_string())),
                Err(_) => return Err(DurableError::Fsync("shard stopped before fsync".into())),
            }
        }
        if let Some(replicated) = replicated {
            let acked: AckResult = match tokio::time::timeout(REPLICATION_TIMEOUT, replicated).await
            {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(ReplicationError::NotLeader),
                Err(_) => return Err(DurableError::Timeout(REPLICATION_TIMEOUT)),
            };
            acked?;
        }
        Ok(info)
    }
}

/// [`submit`], then [`Pending::wait`].
pub async fn write<F>(
    shard: &ShardHandle,
    topic: &str,
    partition: i32,
    append: F,
) -> Result<AppendInfo, DurableError>
where
    F: FnOnce(
            &mut ShardState,
        ) -> Result<(AppendInfo, Option<oneshot::Receiver<SyncResult>>), StorageError>
        + Send
        + 'static,
{
    submit(shard, topic, partition, append).await?.wait().await
}
