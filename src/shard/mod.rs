//! Shards: the concurrency model. A shard is one OS thread running its own current-thread tokio
//! runtime; it owns a share of the partitions (see [`shard_for`]) and is the only thread that ever
//! touches their logs, so the produce and fetch paths take no lock. Other threads reach a shard
//! by sending it a job over a bounded channel (load pushes back) and awaiting a reply.
//!
//! Connections are also spread over the shard runtimes, so every core accepts work.

pub mod cleaner;
pub mod durable;
pub mod producer_state;
pub mod replica;
mod state;

pub use state::{
    Durability, FlushPolicy, IsolationLevel, PartitionSnapshot, ProducerInfo, ReplicationStats,
    ShardConfig, ShardState, StorageError, SyncResult, SyncStats, IDLE_FILE_TIMEOUT,
};

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

/// A unit of work executed on a shard's thread with exclusive access to its state.
type Job = Box<dyn FnOnce(&mut ShardState) + Send>;

/// Depth of a shard's job queue; senders wait when it is full.
const QUEUE_DEPTH: usize = 4096;

/// Errors crossing the shard boundary.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard thread has stopped (shutdown in progress).
    #[error("shard {0} is not running")]
    Stopped(usize),
    /// A shard thread could not be started.
    #[error("cannot start shard thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A cheap, cloneable handle to one shard.
#[derive(Clone)]
pub struct ShardHandle {
    id: usize,
    tx: mpsc::Sender<Job>,
    runtime: tokio::runtime::Handle,
}

impl ShardHandle {
    /// The shard's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Jobs queued for the shard and not yet started (for the metrics; racy by nature).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Runs `f` on the shard with its state and returns the result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, ShardError>
    where
        F: FnOnce(&mut ShardState) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(move |s| {
            let _ = tx.send(f(s));
        })
        .await?;
        rx.await.map_err(|_| ShardError::Stopped(self.id))
    }

    /// Queues `f` on the shard and returns the receiver of its result without waiting for it
    /// to run, so a request can queue work on several shards before awaiting any of them.
    pub async fn submit<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, ShardError>
    where
        F: FnOnce(&mut ShardState) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(move |s| {
            let _ = tx.send(f(s));
        })
        .await?;
        Ok(rx)
    }

    /// Queues `f` on the shard without waiting for it to run. Jobs sent from one task run in
    /// the order they were sent, which is what keeps pipelined produces in order.
    pub async fn send<F>(&self, f: F) -> Result<(), ShardError>
    where
        F: FnOnce(&mut ShardState) + Send + 'static,
    {
        self.tx
            .send(Box::new(f))
            .await
            .map_err(|_| ShardError::Stopped(self.id))
    }

    /// Spawns a task on the shard's runtime (used for connections).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(fut)
    }
}

/// All shards of the broker.
pub struct ShardPool {
    handles: Arc<[ShardHandle]>,
    threads: Vec<JoinHandle<()>>,
}

impl ShardPool {
    /// Starts `n` shard threads; `make_state(id, self_sender)` builds each shard's state on its
    /// own thread.
    pub fn start<F>(n: usize, make_state: F) -> Result<ShardPool, ShardError>
    where
        F: Fn(usize, ShardSelf) -> ShardState + Send + Sync + 'static,
    {
        let make_state = Arc::new(make_state);
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for id in 0..n {
            let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
            let (rt_tx, rt_rx) = std::sync::mpsc::channel();
            let make_state = make_state.clone();
            let self_tx = tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("esker-shard-{id}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(shard = id, error = %e, "cannot build shard runtime");
                            return;
                        }
                    };
                    let _ = rt_tx.send(runtime.handle().clone());
                    runtime.block_on(async move {
                        let mut state = make_state(
                            id,
                            ShardSelf {
                                tx: self_tx.downgrade(),
                            },
                        );
                        while let Some(job) = rx.recv().await {
                            job(&mut state);
                            if state.is_stopped() {
                                break;
                            }
                        }
                    });
                    tracing::debug!(shard = id, "shard stopped");
                })?;
            let runtime = rt_rx.recv().map_err(|_| ShardError::Stopped(id))?;
            handles.push(ShardHandle { id, tx, runtime });
            threads.push(thread);
        }
        Ok(ShardPool {
            handles: handles.into(),
            threads,
        })
    }

    /// The shard handles, indexed by shard id.
    pub fn handles(&self) -> Arc<[ShardHandle]> {
        self.handles.clone()
    }

    /// Stops every shard: closes its logs (flush + fsync) and joins its thread.
    /// Must be awaited from a runtime that is not one of the shards'.
    pub async fn stop(self) -> Vec<crate::log::LogError> {
        let mut errors = Vec::new();
        let mut waits = Vec::new();
        for h in self.handles.iter() {
            if let Ok(rx) = h.submit(|s| s.close_all()).await {
                waits.push(rx);
            }
        }
        for rx in waits {
            if let Ok(errs) = rx.await {
                errors.extend(errs);
            }
        }
        drop(self.handles);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        errors
    }
}

/// A shard's way to queue work for itself later (e.g. the group-commit flush).
#[derive(Clone)]
pub struct ShardSelf {
    tx: mpsc::WeakSender<Job>,
}

impl ShardSelf {
    /// Queues `f` on this shard; returns false (dropping `f`) if the shard is stopping.
    pub async fn send<F>(&self, f: F) -> bool
    where
        F: FnOnce(&mut ShardState) + Send + 'static,
    {
        match self.tx.upgrade() {
            Some(tx) => tx.send(Box::new(f)).await.is_ok(),
            None => false,
        }
    }
}

/// The shard that owns a partition: a stable hash of the topic name plus the partition index,
/// so a topic's partitions spread over consecutive shards.
pub fn shard_for(topic: &str, partition: i32, shards: usize) -> usize {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let n = shards.max(1) as u64;
    ((h % n + u64::from(partition.unsigned_abs())) % n) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_shards() {
        let n = 4;
        let mut seen = [0; 4];
        for p in 0..8 {
            seen[shard_for("orders", p, n)] += 1;
        }
        assert_eq!(seen, [2, 2, 2, 2]);
        assert_eq!(shard_for("x", 3, 1), 0);
    }
}
