//! Partition replication in a cluster (Kafka's ISR model): this module turns the metadata
//! image into each local replica's role on its shard (leader or follower, with epochs, ISR and
//! `min.insync.replicas`), runs one fetcher per leader broker for the partitions this node
//! follows ([`fetcher`]), and proposes the ISR changes the shards' leaders ask for
//! (AlterPartition) to the controller.
//!
//! The shard keeps the per-partition state ([`crate::shard::replica`]); the leader side of a
//! follower's fetch is the ordinary Fetch handler with a replica id.

pub mod client;
mod fetcher;
pub mod throttle;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::context::BrokerContext;
use crate::controller::Controller;
use crate::metadata::records::{Command, Reply};
use crate::metadata::MetadataImage;
use crate::shard::ShardState;

use self::fetcher::{FetchTarget, Fetcher};

/// The shortest period of the ISR check (expansions are found this quickly).
const ISR_CHECK_MAX_INTERVAL: Duration = Duration::from_millis(200);

/// How long a refused ISR change waits before it may be proposed again.
const REFUSED_RETRY: Duration = Duration::from_secs(1);

/// What this node last told a shard about a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applied {
    Leader {
        epoch: i32,
        partition_epoch: i32,
        min_isr: usize,
    },
    Follower {
        leader: i32,
        epoch: i32,
    },
}

/// The replication side of one broker.
pub struct Replication {
    ctx: Arc<BrokerContext>,
    controller: Arc<Controller>,
    applied: HashMap<(String, i32), Applied>,
    fetchers: BTreeMap<i32, Fetcher>,
    stop: watch::Receiver<bool>,
}

impl Replication {
    /// A replication manager that has applied nothing yet; `stop` ends its fetchers.
    pub fn new(
        ctx: Arc<BrokerContext>,
        controller: Arc<Controller>,
        stop: watch::Receiver<bool>,
    ) -> Replication {
        Replication {
            ctx,
            controller,
            applied: HashMap::new(),
            fetchers: BTreeMap::new(),
            stop,
        }
    }

    /// Brings every local replica's role in line with `image`; `open` says which partitions
    /// have their logs open here.
    pub async fn apply(&mut self, image: &MetadataImage, open: &HashSet<(String, i32)>) {
        let me = self.controller.node_id();
        let mut seen = HashSet::new();
        for t in image.topics.values() {
            let min_isr = self
                .ctx
                .catalog
                .get(&t.name)
                .map(|m| {
                    crate::topic_config::effective_i64(
                        "min.insync.replicas",
                        &m.configs,
                        &self.ctx.config,
                    )
                })
                .unwrap_or(1)
                .max(1) as usize;
            for (p, part) in t.partitions.iter().enumerate() {
                let p = p as i32;
                let key = (t.name.clone(), p);
                if !part.replicas.contains(&me) || !open.contains(&key) {
                    continue;
                }
                seen.insert(key.clone());
                let want = if part.leader == me {
                    Applied::Leader {
                        epoch: part.leader_epoch,
                        partition_epoch: part.partition_epoch,
                        min_isr,
                    }
                } else {
                    Applied::Follower {
                        leader: part.leader,
                        epoch: part.leader_epoch,
                    }
                };
                if self.applied.get(&key) == Some(&want) {
                    continue;
                }
                let topic = t.name.clone();
                let ok = match &want {
                    Applied::Leader {
                        epoch,
                        partition_epoch,
                        min_isr,
                    } => {
                        self.unfollow(&key);
                        let (epoch, pe, min_isr) = (*epoch, *partition_epoch, *min_isr);
                        let (replicas, isr) = (part.replicas.clone(), part.isr.clone());
                        let r = self
                            .ctx
                            .shard(&topic, p)
                            .call(move |s: &mut ShardState| {
                                s.become_leader(&topic, p, me, epoch, pe, replicas, isr, min_isr)
                            })
                            .await;
                        log_role_error(&key, r)
                    }
                    Applied::Follower { leader, epoch } => {
                        let (leader, epoch) = (*leader, *epoch);
                        let r = self
                            .ctx
                            .shard(&topic, p)
                            .call(move |s: &mut ShardState| {
                                s.become_follower(&topic, p, leader, epoch)
                            })
                            .await;
                        let ok = log_role_error(&key, r);
                        if ok {
                            self.unfollow(&key);
                            if leader >= 0 {
                                self.follow(
                                    leader,
                                    key.clone(),
                                    FetchTarget {
                                        topic_id: t.id,
                                        epoch,
                                    },
                                );
                            }
                        }
                        ok
                    }
                };
                if ok {
                    self.applied.insert(key, want);
                }
            }
        }
        // Partitions no longer here (topic deleted, replica moved away).
        let gone: Vec<(String, i32)> = self
            .applied
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.unfollow(&key);
            self.applied.remove(&key);
        }
        self.fetchers.retain(|_, f| !f.is_idle());
    }

    fn follow(&mut self, leader: i32, key: (String, i32), target: FetchTarget) {
        let fetcher = self.fetchers.entry(leader).or_insert_with(|| {
            Fetcher::start(
                self.ctx.clone(),
                self.controller.clone(),
                leader,
                self.stop.clone(),
            )
        });
        fetcher.add(key, target);
    }

    fn unfollow(&mut self, key: &(String, i32)) {
        for f in self.fetchers.values() {
            f.remove(key);
        }
    }
}

fn log_role_error(
    key: &(String, i32),
    r: Result<Result<(), crate::shard::StorageError>, crate::shard::ShardError>,
) -> bool {
    match r {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot change the replica's role");
            false
        }
        Err(e) => {
            tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot change the replica's role");
            false
        }
    }
}

/// Proposes the ISR changes the shards' leaders ask for, every `replica.lag.time.max.ms / 2`
/// (at most [`ISR_CHECK_MAX_INTERVAL`]), until `stop`.
pub async fn run_isr_changes(
    ctx: Arc<BrokerContext>,
    controller: Arc<Controller>,
    mut stop: watch::Receiver<bool>,
) {
    let lag = controller.config().replica_lag_time_max;
    let period = (lag / 2)
        .min(ISR_CHECK_MAX_INTERVAL)
        .max(Duration::from_millis(10));
    let lag_ms = lag.as_millis() as i64;
    let me = controller.node_id();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let mut changes = Vec::new();
        for shard in ctx.shards.iter() {
            if let Ok(c) = shard
                .call(move |s: &mut ShardState| s.isr_changes(lag_ms))
                .await
            {
                changes.extend(c);
            }
        }
        for (topic, partition, change) in changes {
            let members: Vec<i32> = change.isr.iter().map(|(r, _)| *r).collect();
            let cmd = Command::AlterPartition {
                topic: topic.clone(),
                partition,
                leader: me,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr,
            };
            let outcome = controller.propose(cmd).await;
            let accepted = match &outcome {
                Ok(a) => matches!(a.reply, Reply::Partition { .. }),
                Err(_) => false,
            };
            match &outcome {
                Ok(a) if accepted => {
                    tracing::info!(topic, partition, isr = ?members, index = a.index, "ISR changed");
                    ctx.metrics.isr_changed(change.removed, change.added);
                }
                Ok(a) => {
                    tracing::info!(topic, partition, isr = ?members, reply = ?a.reply, "ISR change refused")
                }
                Err(e) => tracing::warn!(topic, partition, error = %e, "ISR change not proposed"),
            }
            if !accepted {
                // Proposed again after a pause (a refusal usually waits for the metadata: a
                // broker to be unfenced, this node to apply a newer image).
                let shard = ctx.shard(&topic, partition).clone();
                tokio::spawn(async move {
                    tokio::time::sleep(REFUSED_RETRY).await;
                    let _ = shard
                        .call(move |s: &mut ShardState| {
                            s.clear_pending_isr_change(&topic, partition)
                        })
                        .await;
                });
            }
        }
    }
}
