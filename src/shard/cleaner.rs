//! The log cleaner's scheduling. Every shard runs one cleaner task on its runtime: it asks its
//! shard for the dirtiest compacted log that is due ([`ShardState::plan_clean`], on the shard
//! thread), runs the pass on a blocking thread ([`crate::log::cleaner::run`]; at most
//! `log.cleaner.threads` passes at once in the broker, all throttled together to
//! `log.cleaner.io.max.bytes.per.second`), and hands the result back to the shard to swap in
//! ([`ShardState::commit_clean`]). When nothing is due it sleeps `log.cleaner.backoff.ms`.
//!
//! The `log.cleaner.*` keys are read at each pass, so their dynamic values apply at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{ShardSelf, ShardState};
use crate::config::Config;
use crate::log::cleaner::{self, BYTES_PER_MAP_ENTRY};

/// Counters of the broker's cleaner (shared by every shard).
#[derive(Debug, Default)]
pub struct CleanerStats {
    /// Passes committed.
    pub passes: AtomicU64,
    /// Bytes read by committed passes.
    pub bytes_read: AtomicU64,
    /// Bytes written by committed passes.
    pub bytes_written: AtomicU64,
    /// Records removed by committed passes.
    pub records_removed: AtomicU64,
    /// Passes that failed.
    pub failures: AtomicU64,
    /// Duration of the last committed pass, in ms.
    pub last_pass_ms: AtomicU64,
}

/// The broker-wide part of the cleaner: settings, the pass slots and the throttle.
#[derive(Debug)]
pub struct Cleaner {
    config: Config,
    running: AtomicUsize,
    throttle: Mutex<ThrottleWindow>,
    /// Counters for the metrics.
    pub stats: CleanerStats,
}

#[derive(Debug)]
struct ThrottleWindow {
    start: Instant,
    bytes: u64,
}

/// Kafka checks the cleaner's rate over windows of this length.
const THROTTLE_WINDOW: Duration = Duration::from_millis(300);

impl Cleaner {
    /// The cleaner of a broker with this configuration (`None` if `log.cleaner.enable=false`).
    pub fn from_config(config: &Config) -> Option<Arc<Cleaner>> {
        let enabled = config
            .values
            .get("log.cleaner.enable")
            .map_or(true, |v| v == "true");
        enabled.then(|| {
            Arc::new(Cleaner {
                config: config.clone(),
                running: AtomicUsize::new(0),
                throttle: Mutex::new(ThrottleWindow {
                    start: Instant::now(),
                    bytes: 0,
                }),
                stats: CleanerStats::default(),
            })
        })
    }

    fn threads(&self) -> usize {
        usize::try_from(self.config.value_i64("log.cleaner.threads", 1).max(1)).unwrap_or(1)
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(
            u64::try_from(self.config.value_i64("log.cleaner.backoff.ms", 15_000)).unwrap_or(0),
        )
        .max(Duration::from_millis(10))
    }

    /// Offset map entries per pass: the dedupe buffer shared by the cleaning threads, at
    /// Kafka's 90% load factor.
    fn map_capacity(&self) -> usize {
        let buffer = self
            .config
            .value_i64("log.cleaner.dedupe.buffer.size", 134_217_728)
            .max(1) as u64;
        let per_thread = buffer / self.threads() as u64;
        usize::try_from(per_thread / BYTES_PER_MAP_ENTRY * 9 / 10)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Takes a pass slot, waiting while `log.cleaner.threads` passes run.
    async fn slot(self: &Arc<Self>) -> Slot {
        loop {
            let n = self.running.load(Ordering::Acquire);
            if n < self.threads()
                && self
                    .running
                    .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Slot(self.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Called by a pass after reading or writing `bytes`: sleeps when the cleaners together go
    /// faster than `log.cleaner.io.max.bytes.per.second`.
    pub fn throttle(&self, bytes: u64) {
        let rate = self
            .config
            .value_i64("log.cleaner.io.max.bytes.per.second", i64::MAX);
        if rate == i64::MAX || rate <= 0 {
            return;
        }
        let mut w = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        w.bytes += bytes;
        let elapsed = w.start.elapsed();
        if elapsed < THROTTLE_WINDOW && w.bytes < rate as u64 {
            return;
        }
        let wanted = Duration::from_secs_f64(w.bytes as f64 / rate as f64);
        if wanted > elapsed {
            // Sleeping with the lock held makes every cleaning thread wait: the rate is shared.
            std::thread::sleep(wanted - elapsed);
        }
        w.start = Instant::now();
        w.bytes = 0;
    }
}

/// A running pass; frees its slot when dropped.
struct Slot(Arc<Cleaner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The cleaner task of one shard (spawned on the shard's runtime by [`ShardState::new`]);
/// ends when the shard stops.
pub(super) async fn run(me: ShardSelf, cleaner: Arc<Cleaner>) {
    loop {
        let capacity = cleaner.map_capacity();
        let (tx, rx) = oneshot::channel();
        let sent = me
            .send(move |s: &mut ShardState| {
                let _ = tx.send(s.plan_clean(capacity));
            })
            .await;
        if !sent {
            return;
        }
        let Ok(planned) = rx.await else { return };
        let Some((topic, partition, plan)) = planned else {
            tokio::time::sleep(cleaner.backoff()).await;
            continue;
        };
        let slot = cleaner.slot().await;
        let started = Instant::now();
        let c = cleaner.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let result = cleaner::run(&plan, &|n| c.throttle(n));
            (plan, result)
        })
        .await;
        drop(slot);
        let done = match outcome {
            Ok((_, Ok(done))) => done,
            Ok((plan, Err(e))) => {
                cleaner.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(dir = %plan.dir().display(), error = %e, "log cleaner pass failed");
                tokio::time::sleep(cleaner.backoff()).await;
                continue;
            }
            Err(e) => {
                cleaner.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "log cleaner pass panicked");
                tokio::time::sleep(cleaner.backoff()).await;
                continue;
            }
        };
        let (tx, rx) = oneshot::channel();
        let (t, p) = (topic.clone(), partition);
        let sent = me
            .send(move |s: &mut ShardState| {
                let _ = tx.send(s.commit_clean(&t, p, done));
            })
            .await;
        if !sent {
            return;
        }
        match rx.await {
            Ok(Some(stats)) => {
                let s = &cleaner.stats;
                s.passes.fetch_add(1, Ordering::Relaxed);
                s.bytes_read.fetch_add(stats.bytes_read, Ordering::Relaxed);
                s.bytes_written
                    .fetch_add(stats.bytes_written, Ordering::Relaxed);
                s.records_removed
                    .fetch_add(stats.records_removed, Ordering::Relaxed);
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                s.last_pass_ms.store(ms, Ordering::Relaxed);
                tracing::info!(
                    topic,
                    partition,
                    read_bytes = stats.bytes_read,
                    written_bytes = stats.bytes_written,
                    removed_records = stats.records_removed,
                    kept_records = stats.records_kept,
                    keys = stats.keys,
                    segments_replaced = stats.segments_replaced,
                    elapsed_ms = ms,
                    "cleaned log"
                );
            }
            Ok(None) => tokio::time::sleep(cleaner.backoff()).await,
            Err(_) => return,
        }
    }
}
