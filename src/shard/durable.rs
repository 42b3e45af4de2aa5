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

/// Runs `append` on `shard` (it returns what [`ShardState::append`] returns for
/// `Durability::Fsync`), then waits for the fsync and the ISR of `topic`/`partition`.
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
    let topic = topic.to_string();
    let (info, synced, replicated) = shard
        .call(move |s: &mut ShardState| {
            let (info, synced) = append(s)?;
            let replicated = s.replication_wait(&topic, partition, info.last_offset + 1);
            Ok::<_, StorageError>((info, synced, replicated))
        })
        .await??;
    if let Some(synced) = synced {
        match synced.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DurableError::Fsync(e.to_string())),
            Err(_) => return Err(DurableError::Fsync("shard stopped before fsync".into())),
        }
    }
    if let Some(replicated) = replicated {
        let acked: AckResult = match tokio::time::timeout(REPLICATION_TIMEOUT, replicated).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ReplicationError::NotLeader),
            Err(_) => return Err(DurableError::Timeout(REPLICATION_TIMEOUT)),
        };
        acked?;
    }
    Ok(info)
}
