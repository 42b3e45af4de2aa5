//! A partition's replication role on this broker (cluster mode), kept by the shard that owns the
//! partition: as leader, every follower's progress, the ISR as the metadata log last said, the
//! high watermark (the smallest log end over the ISR) and the `acks=all` appends waiting for
//! it; as follower, the leader and the high watermark it reported. Pure bookkeeping: the shard
//! feeds it fetch positions and log ends, it answers what moved.

use std::collections::HashMap;

use tokio::sync::oneshot;

/// Why an `acks=all` append was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// Leadership moved before the ISR had the records.
    #[error("leadership moved before the in-sync replicas had the records")]
    NotLeader,
    /// The records reached every ISR member, but the ISR is now smaller than
    /// `min.insync.replicas`.
    #[error("the in-sync replicas shrank below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
}

/// The answer to an `acks=all` append waiting for the ISR.
pub type AckResult = Result<(), ReplicationError>;

/// A follower's progress as its leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Its log end offset (the offset of its last fetch), -1 before its first fetch.
    pub log_end: i64,
    /// Its broker epoch as it last said (-1 unknown).
    pub broker_epoch: i64,
    /// When it last had everything the leader had.
    pub last_caught_up_ms: i64,
    /// The leader's log end and the time when the previous fetch was answered.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

struct Waiter {
    /// The high watermark that acknowledges the append (its last offset + 1).
    required: i64,
    min_isr: usize,
    tx: oneshot::Sender<AckResult>,
}

/// A proposed ISR change: the new members with their broker epochs, for AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    /// The leader epoch the change is made under.
    pub leader_epoch: i32,
    /// The partition epoch it is based on.
    pub partition_epoch: i32,
    /// The new ISR, (broker, broker epoch).
    pub isr: Vec<(i32, i64)>,
    /// Members leaving.
    pub removed: usize,
    /// Members joining.
    pub added: usize,
}

/// This broker leads the partition.
pub struct LeaderState {
    me: i32,
    /// Leader epoch.
    pub epoch: i32,
    /// Partition epoch of the ISR below.
    pub partition_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas (this broker included).
    pub isr: Vec<i32>,
    /// The log end offset when this epoch began (a follower joins the ISR only past it).
    pub epoch_start_offset: i64,
    /// Smallest log end over the ISR; never moves back while this broker leads.
    pub high_watermark: i64,
    followers: HashMap<i32, Progress>,
    waiters: Vec<Waiter>,
    /// An ISR change proposed and not yet seen in the metadata (by partition epoch).
    pub pending_change: Option<i32>,
    /// The topic's `min.insync.replicas`: `acks=all` appends are refused below it.
    pub min_isr: usize,
}

impl LeaderState {
    /// Leadership starting at `log_end` with a high watermark of at least `high_watermark`.
    /// Followers in the ISR count as caught up now, so none is dropped before it had a chance
    /// to fetch.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: i32,
        epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        log_end: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                (
                    *r,
                    Progress {
                        log_end: -1,
                        broker_epoch: -1,
                        last_caught_up_ms: if isr.contains(r) { now_ms } else { 0 },
                        last_fetch_leader_end: -1,
                        last_fetch_ms: now_ms,
                    },
                )
            })
            .collect();
        let mut state = LeaderState {
            me,
            epoch,
            partition_epoch,
            replicas,
            isr,
            epoch_start_offset: log_end,
            high_watermark: high_watermark.min(log_end).max(0),
            followers,
            waiters: Vec::new(),
            pending_change: None,
            min_isr: 1,
        };
        state.advance(log_end);
        state
    }

    /// The metadata changed the ISR or the replicas under the same leader epoch.
    pub fn update(
        &mut self,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        log_end: i64,
        now_ms: i64,
    ) {
        for r in &replicas {
            if *r != self.me {
                self.followers.entry(*r).or_insert(Progress {
                    log_end: -1,
                    broker_epoch: -1,
                    last_caught_up_ms: 0,
                    last_fetch_leader_end: -1,
                    last_fetch_ms: now_ms,
                });
            }
        }
        self.followers.retain(|r, _| replicas.contains(r));
        // A member that left the ISR must fetch again before it can rejoin: its last known
        // position may be that of a dead process (Kafka considers rejoining only on a fetch).
        for (r, p) in self.followers.iter_mut() {
            if self.isr.contains(r) && !isr.contains(r) {
                p.log_end = -1;
                p.broker_epoch = -1;
            }
        }
        self.partition_epoch = partition_epoch;
        if self.pending_change.is_some_and(|e| e <= partition_epoch) {
            self.pending_change = None;
        }
        self.replicas = replicas;
        self.isr = isr;
        self.advance(log_end);
    }

    /// A follower fetched at `fetch_offset`; returns whether the high watermark moved.
    pub fn on_fetch(
        &mut self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        log_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(p) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= log_end {
            p.last_caught_up_ms = now_ms;
        } else if p.last_fetch_leader_end >= 0 && fetch_offset >= p.last_fetch_leader_end {
            // It has what the leader had when it answered the previous fetch.
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end = fetch_offset;
        p.broker_epoch = broker_epoch;
        p.last_fetch_leader_end = log_end;
        p.last_fetch_ms = now_ms;
        self.advance(log_end)
    }

    /// The high watermark for the leader's `log_end`; answers the waiters it acknowledges.
    /// Returns whether it moved.
    pub fn advance(&mut self, log_end: i64) -> bool {
        let mut hw = log_end;
        for r in &self.isr {
            if *r == self.me {
                continue;
            }
            match self.followers.get(r) {
                Some(p) if p.log_end >= 0 => hw = hw.min(p.log_end),
                // Not heard from yet: it holds the high watermark where it is.
                _ => hw = hw.min(self.high_watermark),
            }
        }
        if hw <= self.high_watermark {
            return false;
        }
        self.high_watermark = hw;
        let isr = self.isr.len();
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].required <= hw {
                let w = self.waiters.swap_remove(i);
                let result = if isr < w.min_isr {
                    Err(ReplicationError::NotEnoughReplicasAfterAppend)
                } else {
                    Ok(())
                };
                let _ = w.tx.send(result);
            } else if self.waiters[i].tx.is_closed() {
                self.waiters.swap_remove(i);
            } else {
                i += 1;
            }
        }
        true
    }

    /// An `acks=all` append ending before `required`: answered once the high watermark
    /// reaches it (at once if it has).
    pub fn wait(&mut self, required: i64, min_isr: usize) -> oneshot::Receiver<AckResult> {
        let (tx, rx) = oneshot::channel();
        if self.high_watermark >= required {
            let result = if self.isr.len() < min_isr {
                Err(ReplicationError::NotEnoughReplicasAfterAppend)
            } else {
                Ok(())
            };
            let _ = tx.send(result);
        } else {
            self.waiters.push(Waiter {
                required,
                min_isr,
                tx,
            });
        }
        rx
    }

    /// Answers every waiter with `NotLeader` (leadership ended).
    pub fn abandon(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.tx.send(Err(ReplicationError::NotLeader));
        }
    }

    /// The ISR change due now, if any and none is pending: members that have not caught up for
    /// `lag_ms` leave; followers that reached the high watermark (and this epoch's start) join.
    pub fn isr_change(&self, log_end: i64, now_ms: i64, lag_ms: i64) -> Option<IsrChange> {
        if self.pending_change.is_some() {
            return None;
        }
        let mut isr: Vec<i32> = Vec::with_capacity(self.replicas.len());
        let (mut removed, mut added) = (0, 0);
        for r in &self.replicas {
            if *r == self.me {
                if self.isr.contains(r) {
                    isr.push(*r);
                }
                continue;
            }
            let Some(p) = self.followers.get(r) else {
                continue;
            };
            if self.isr.contains(r) {
                let lagging = p.log_end < log_end && now_ms - p.last_caught_up_ms > lag_ms;
                if lagging {
                    removed += 1;
                } else {
                    isr.push(*r);
                }
            } else if p.broker_epoch >= 0
                && p.log_end >= self.high_watermark
                && p.log_end >= self.epoch_start_offset
            {
                isr.push(*r);
                added += 1;
            }
        }
        if removed + added == 0 {
            return None;
        }
        Some(IsrChange {
            leader_epoch: self.epoch,
            partition_epoch: self.partition_epoch,
            isr: isr
                .into_iter()
                .map(|r| {
                    let epoch = self.followers.get(&r).map_or(-1, |p| p.broker_epoch);
                    (r, epoch)
                })
                .collect(),
            removed,
            added,
        })
    }

    /// Follower progress by broker (metrics, DescribeQuorum-like answers).
    pub fn followers(&self) -> impl Iterator<Item = (i32, &Progress)> {
        self.followers.iter().map(|(r, p)| (*r, p))
    }
}

/// This broker follows the partition.
#[derive(Debug, Clone)]
pub struct FollowerState {
    /// The leader (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub epoch: i32,
    /// The high watermark: the leader's as of the last fetch, at most this log's end.
    pub high_watermark: i64,
}

/// The role of a replicated partition.
pub enum Role {
    /// This broker leads.
    Leader(LeaderState),
    /// This broker follows.
    Follower(FollowerState),
}

impl Role {
    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        match self {
            Role::Leader(l) => l.high_watermark,
            Role::Follower(f) => f.high_watermark,
        }
    }

    /// The leader epoch.
    pub fn epoch(&self) -> i32 {
        match self {
            Role::Leader(l) => l.epoch,
            Role::Follower(f) => f.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(isr: Vec<i32>) -> LeaderState {
        LeaderState::new(1, 3, 0, vec![1, 2, 3], isr, 10, 0, 1_000)
    }

    #[test]
    fn high_watermark_is_the_isr_minimum() {
        let mut l = leader(vec![1, 2, 3]);
        assert_eq!(l.high_watermark, 0);
        let mut ack = l.wait(10, 2);
        assert!(!l.on_fetch(2, 7, 10, 10, 1_001));
        assert!(ack.try_recv().is_err());
        assert!(l.on_fetch(3, 8, 6, 10, 1_002));
        assert_eq!(l.high_watermark, 6);
        assert!(ack.try_recv().is_err());
        assert!(l.on_fetch(3, 8, 10, 10, 1_003));
        assert_eq!(ack.try_recv(), Ok(Ok(())));
        // Never backwards.
        assert!(!l.on_fetch(3, 8, 4, 10, 1_004));
        assert_eq!(l.high_watermark, 10);
    }

    #[test]
    fn lone_leader_acknowledges_at_once_but_not_below_min_isr() {
        let mut l = leader(vec![1]);
        assert_eq!(l.high_watermark, 10);
        let mut ack = l.wait(10, 2);
        assert_eq!(
            ack.try_recv(),
            Ok(Err(ReplicationError::NotEnoughReplicasAfterAppend))
        );
        let mut ack = l.wait(12, 1);
        assert!(l.advance(12));
        assert_eq!(ack.try_recv(), Ok(Ok(())));
    }

    #[test]
    fn shrink_after_lag_and_expand_when_caught_up() {
        let mut l = leader(vec![1, 2, 3]);
        l.on_fetch(2, 7, 10, 10, 1_100);
        assert_eq!(l.isr_change(10, 20_000, 30_000), None);
        // 3 never fetched: out after the lag time.
        let change = l.isr_change(10, 40_000, 30_000).expect("shrink");
        assert_eq!(change.isr, vec![(1, -1), (2, 7)]);
        l.update(1, vec![1, 2, 3], vec![1, 2], 10, 40_000);
        assert_eq!(l.high_watermark, 10);
        // 3 catches up: back in.
        l.on_fetch(3, 9, 10, 10, 41_000);
        let change = l.isr_change(10, 41_000, 30_000).expect("expand");
        assert_eq!(change.isr, vec![(1, -1), (2, 7), (3, 9)]);
        l.pending_change = Some(2);
        assert_eq!(l.isr_change(10, 41_000, 30_000), None);
        l.update(2, vec![1, 2, 3], vec![1, 2, 3], 10, 41_000);
        assert_eq!(l.pending_change, None);
    }

    #[test]
    fn a_member_removed_by_the_controller_rejoins_only_after_fetching() {
        let mut l = leader(vec![1, 2, 3]);
        l.on_fetch(2, 7, 10, 10, 1_100);
        l.on_fetch(3, 9, 10, 10, 1_100);
        // Node 2 died and was fenced: the controller removed it. Its last position looked
        // caught up, which must not bring it back.
        l.update(1, vec![1, 2, 3], vec![1, 3], 10, 5_000);
        assert_eq!(l.isr_change(10, 5_100, 30_000), None);
        // Restarted with a new broker epoch, it fetches again and rejoins.
        l.on_fetch(2, 12, 10, 10, 6_000);
        let change = l.isr_change(10, 6_000, 30_000).expect("expand");
        assert_eq!(change.isr, vec![(1, -1), (2, 12), (3, 9)]);
    }

    #[test]
    fn abandon_answers_not_leader() {
        let mut l = leader(vec![1, 2]);
        let mut ack = l.wait(10, 1);
        l.abandon();
        assert_eq!(ack.try_recv(), Ok(Err(ReplicationError::NotLeader)));
    }
}
