//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat), as pure code like
//! [`super::group`]: members heartbeat with their epoch and owned partitions; the coordinator
//! keeps a group epoch (bumped when membership, subscriptions or subscribed topics change), a
//! target assignment computed by a server-side [`super::assignor`] for each new group epoch, and
//! moves every member towards its target one heartbeat at a time:
//!
//! 1. partitions the member owns but is no longer targeted for are revoked first (its epoch
//!    stays; it must confirm by reporting owned partitions without them, within its rebalance
//!    timeout, or it is fenced);
//! 2. then it gets the new epoch and those of its target partitions that no other member still
//!    owns; partitions not yet released follow on later heartbeats.
//!
//! A member that stops heartbeating is removed after `group.consumer.session.timeout.ms`.
//! Membership is held in memory only: after a broker restart members get UNKNOWN_MEMBER_ID and
//! rejoin with epoch 0 (committed offsets are durable as for classic groups).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{self, AssignorMember, TopicPartitions};
use super::group::{ms, Clock};
use super::{ConsumerHeartbeat, ConsumerHeartbeatOutcome, GroupConfig, GroupError};

/// Where a member stands in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconcile {
    /// At the assignment epoch with its whole target.
    Stable,
    /// Waiting for the member to confirm it revoked partitions.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for other members to release some target partitions.
    UnreleasedPartitions,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Member epoch (-2: a static member that left temporarily).
    pub epoch: i32,
    previous_epoch: i32,
    /// Rebalance timeout in ms (how long a revocation may take).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names, sorted.
    pub subscribed: Vec<String>,
    /// The assignor the member asked for.
    pub server_assignor: Option<String>,
    /// Partitions the member owns now.
    pub assigned: TopicPartitions,
    /// Partitions the member must give up.
    pub revoking: TopicPartitions,
    state: Reconcile,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
    last_sent: Option<TopicPartitions>,
}

/// A consumer group (KIP-848).
pub struct ConsumerGroup {
    /// Group id.
    pub id: String,
    /// Bumped whenever the target assignment must be recomputed.
    pub group_epoch: i32,
    /// The group epoch the current target assignment was computed for.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment by member id.
    pub target: BTreeMap<String, TopicPartitions>,
    /// The assignor that computed the target.
    pub assignor: String,
    /// Subscribed topics as the target saw them: name → (id, partitions).
    subscribed_metadata: BTreeMap<String, (Uuid, i32)>,
    static_members: HashMap<String, String>,
    /// When the group last changed state between empty and not (ms since the epoch).
    pub state_timestamp: i64,
    /// The deadline this group has in the actor's timer queue.
    pub armed: Option<Instant>,
}

fn subtract(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(q) => ps.difference(q).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, ps) in a {
        if let Some(q) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(q).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn union(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(*t).or_default().extend(ps.iter().copied());
    }
    out
}

fn normalize(t: TopicPartitions) -> TopicPartitions {
    t.into_iter().filter(|(_, ps)| !ps.is_empty()).collect()
}

impl ConsumerGroup {
    /// A new, empty group.
    pub fn new(id: String, cfg: &GroupConfig, clock: Clock) -> ConsumerGroup {
        ConsumerGroup {
            id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            assignor: cfg.consumer_assignors.first().cloned().unwrap_or_default(),
            subscribed_metadata: BTreeMap::new(),
            static_members: HashMap::new(),
            state_timestamp: clock.wall_ms,
            armed: None,
        }
    }

    /// The state name Kafka reports (ConsumerGroupDescribe, ListGroups).
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != Reconcile::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
    }

    /// Validates a member commit or fetch: the member must exist and be at `epoch`. A negative
    /// epoch without member is an admin operation, allowed while the group has no members.
    pub fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        if epoch < 0 && member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat. `resolve` maps a topic name to its id and partition count.
    pub fn heartbeat(
        &mut self,
        p: ConsumerHeartbeat,
        cfg: &GroupConfig,
        clock: Clock,
        resolve: &dyn Fn(&str) -> Option<(Uuid, i32)>,
    ) -> ConsumerHeartbeatOutcome {
        let fail =
            |e: GroupError, msg: Option<&str>, p: &ConsumerHeartbeat| ConsumerHeartbeatOutcome {
                error: Some(e),
                error_message: msg.map(str::to_string),
                member_id: p.member_id.clone(),
                member_epoch: p.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
        // librdkafka sends an empty regex along with topic names.
        if p.subscribed_topic_regex
            .as_deref()
            .is_some_and(|r| !r.is_empty())
        {
            return fail(
                GroupError::InvalidRequest,
                Some("regular expression subscriptions are not supported"),
                &p,
            );
        }
        if let Some(a) = &p.server_assignor {
            if !cfg.consumer_assignors.iter().any(|n| n == a) {
                return fail(GroupError::UnsupportedAssignor, None, &p);
            }
        }
        let member_id = match p.member_epoch {
            -1 | -2 => return self.leave(p, cfg, clock),
            0 => {
                if p.subscribed_topic_names.is_none() {
                    return fail(
                        GroupError::InvalidRequest,
                        Some("SubscribedTopicNames must be set when joining"),
                        &p,
                    );
                }
                if p.rebalance_timeout_ms < 0 {
                    return fail(
                        GroupError::InvalidRequest,
                        Some("RebalanceTimeoutMs must be set when joining"),
                        &p,
                    );
                }
                match self.join(&p, clock) {
                    Ok(id) => id,
                    Err(e) => return fail(e, None, &p),
                }
            }
            epoch => {
                let Some(m) = self.members.get(&p.member_id) else {
                    return fail(GroupError::UnknownMemberId, None, &p);
                };
                let owned_ok = p
                    .owned
                    .as_ref()
                    .is_none_or_subset(&union(&m.assigned, &m.revoking));
                if epoch != m.epoch && !(epoch == m.previous_epoch && owned_ok) {
                    return fail(GroupError::FencedMemberEpoch, None, &p);
                }
                p.member_id.clone()
            }
        };
        let Some(m) = self.members.get_mut(&member_id) else {
            return fail(GroupError::UnknownMemberId, None, &p);
        };
        let mut changed = false;
        if let Some(topics) = &p.subscribed_topic_names {
            let mut topics = topics.clone();
            topics.sort();
            topics.dedup();
            if topics != m.subscribed {
                m.subscribed = topics;
                changed = true;
            }
        }
        if p.server_assignor.is_some() && p.server_assignor != m.server_assignor {
            m.server_assignor = p.server_assignor.clone();
            changed = true;
        }
        if p.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        }
        if p.instance_id.is_some() {
            m.instance_id = p.instance_id.clone();
        }
        if p.rack_id.is_some() {
            m.rack_id = p.rack_id.clone();
        }
        m.session_deadline = clock.now + ms(cfg.consumer_session_timeout_ms);
        if changed {
            self.bump();
        }
        // Topics created, deleted or grown since the target was computed.
        let metadata = self.subscription_metadata(resolve);
        if metadata != self.subscribed_metadata {
            self.subscribed_metadata = metadata;
            self.bump();
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(cfg);
        }
        self.reconcile(&member_id, p.owned.as_ref(), clock);
        let Some(m) = self.members.get_mut(&member_id) else {
            return fail(GroupError::UnknownMemberId, None, &p);
        };
        let send = p.member_epoch == 0
            || m.last_sent.as_ref() != Some(&m.assigned)
            || p.owned
                .as_ref()
                .is_some_and(|o| normalize(o.clone()) != m.assigned);
        let assignment = send.then(|| m.assigned.clone());
        if send {
            m.last_sent = Some(m.assigned.clone());
        }
        ConsumerHeartbeatOutcome {
            error: None,
            error_message: None,
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
            assignment,
        }
    }

    /// A member joins (epoch 0): new, rejoining after being fenced, or a static member taking
    /// over from its previous incarnation.
    fn join(&mut self, p: &ConsumerHeartbeat, clock: Clock) -> Result<String, GroupError> {
        let id = if p.member_id.is_empty() {
            crate::catalog::uuid_to_base64(Uuid::new_v4())
        } else {
            p.member_id.clone()
        };
        let fresh = ConsumerMember {
            id: id.clone(),
            instance_id: p.instance_id.clone(),
            rack_id: p.rack_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            epoch: 0,
            previous_epoch: -1,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            subscribed: Vec::new(),
            server_assignor: None,
            assigned: TopicPartitions::new(),
            revoking: TopicPartitions::new(),
            state: Reconcile::Stable,
            session_deadline: clock.now,
            revoke_deadline: None,
            last_sent: None,
        };
        if let Some(instance) = &p.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                let old_epoch = self.members.get(&old_id).map_or(-2, |m| m.epoch);
                if old_id != id && old_epoch != -2 {
                    return Err(GroupError::UnreleasedInstanceId);
                }
                // The new incarnation inherits the old one's partitions and target.
                if let Some(mut old) = self.members.remove(&old_id) {
                    old.id = id.clone();
                    old.client_id = fresh.client_id.clone();
                    old.client_host = fresh.client_host.clone();
                    old.epoch = self.assignment_epoch.max(1);
                    old.previous_epoch = -1;
                    old.last_sent = None;
                    if let Some(t) = self.target.remove(&old_id) {
                        self.target.insert(id.clone(), t);
                    }
                    self.members.insert(id.clone(), old);
                    self.static_members.insert(instance.clone(), id.clone());
                    return Ok(id);
                }
            }
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.state_timestamp = clock.wall_ms;
        }
        // A member rejoining with epoch 0 has given up its partitions.
        self.members.insert(id.clone(), fresh);
        self.bump();
        Ok(id)
    }

    fn leave(
        &mut self,
        p: ConsumerHeartbeat,
        cfg: &GroupConfig,
        clock: Clock,
    ) -> ConsumerHeartbeatOutcome {
        let out = |error| ConsumerHeartbeatOutcome {
            error,
            error_message: None,
            member_id: p.member_id.clone(),
            member_epoch: p.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        let Some(m) = self.members.get_mut(&p.member_id) else {
            return out(Some(GroupError::UnknownMemberId));
        };
        if p.member_epoch == -2 && m.instance_id.is_some() {
            // A static member leaving temporarily keeps its partitions until its session ends.
            m.epoch = -2;
            m.session_deadline = clock.now + ms(cfg.consumer_session_timeout_ms);
            return out(None);
        }
        self.remove_member(&p.member_id, clock);
        out(None)
    }

    /// Removes a member; its partitions become free for the others.
    pub fn remove_member(&mut self, id: &str, clock: Clock) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        self.target.remove(id);
        self.bump();
        if self.members.is_empty() {
            self.state_timestamp = clock.wall_ms;
        }
    }

    fn subscription_metadata(
        &self,
        resolve: &dyn Fn(&str) -> Option<(Uuid, i32)>,
    ) -> BTreeMap<String, (Uuid, i32)> {
        let names: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        names
            .into_iter()
            .filter_map(|n| resolve(n).map(|v| (n.clone(), v)))
            .collect()
    }

    /// The assignor most members asked for (ties: configuration order), else the default.
    fn choose_assignor(&self, cfg: &GroupConfig) -> String {
        let mut best: Option<(&String, usize)> = None;
        for name in &cfg.consumer_assignors {
            let votes = self
                .members
                .values()
                .filter(|m| m.server_assignor.as_ref() == Some(name))
                .count();
            if votes > 0 && best.map_or(true, |(_, b)| votes > b) {
                best = Some((name, votes));
            }
        }
        best.map(|(n, _)| n.clone())
            .or_else(|| cfg.consumer_assignors.first().cloned())
            .unwrap_or_default()
    }

    fn compute_target(&mut self, cfg: &GroupConfig) {
        let name = self.choose_assignor(cfg);
        let topics: BTreeMap<Uuid, i32> = self.subscribed_metadata.values().copied().collect();
        let empty = TopicPartitions::new();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                topics: m
                    .subscribed
                    .iter()
                    .filter_map(|t| self.subscribed_metadata.get(t).map(|(id, _)| *id))
                    .collect(),
                previous: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        let target = assignor::assign(&name, &members, &topics).unwrap_or_default();
        self.target = target;
        self.assignor = name;
        self.assignment_epoch = self.group_epoch;
        tracing::debug!(group = %self.id, epoch = self.group_epoch, assignor = %self.assignor,
            members = self.members.len(), "target assignment computed");
    }

    fn owned_by_other(&self, me: &str, topic: &Uuid, p: i32) -> bool {
        self.members.values().any(|m| {
            m.id != me
                && (m.assigned.get(topic).is_some_and(|s| s.contains(&p))
                    || m.revoking.get(topic).is_some_and(|s| s.contains(&p)))
        })
    }

    /// Moves a member one step towards its target (see the module documentation).
    fn reconcile(&mut self, id: &str, owned: Option<&TopicPartitions>, clock: Clock) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get(id) else {
            return;
        };
        if m.epoch == -2 {
            return;
        }
        if m.state == Reconcile::UnrevokedPartitions {
            let revoked = owned.is_some_and(|o| intersect(o, &m.revoking).is_empty());
            if !revoked {
                return;
            }
        } else if m.epoch == assignment_epoch && m.state == Reconcile::Stable {
            return;
        }
        let current = m.assigned.clone();
        let keep = intersect(&current, &target);
        let revoke = subtract(&current, &target);
        let rebalance_timeout = m.rebalance_timeout_ms;
        if !revoke.is_empty() {
            if let Some(m) = self.members.get_mut(id) {
                m.assigned = keep;
                m.revoking = revoke;
                m.state = Reconcile::UnrevokedPartitions;
                m.revoke_deadline = Some(clock.now + ms(rebalance_timeout));
            }
            return;
        }
        let wanted = subtract(&target, &current);
        let mut free = TopicPartitions::new();
        let mut missing = false;
        for (t, ps) in &wanted {
            for &p in ps {
                if self.owned_by_other(id, t, p) {
                    missing = true;
                } else {
                    free.entry(*t).or_default().insert(p);
                }
            }
        }
        if let Some(m) = self.members.get_mut(id) {
            m.revoking.clear();
            m.revoke_deadline = None;
            m.assigned = union(&keep, &free);
            if m.epoch != assignment_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = assignment_epoch;
            }
            m.state = if missing {
                Reconcile::UnreleasedPartitions
            } else {
                Reconcile::Stable
            };
        }
    }

    /// The next instant at which [`ConsumerGroup::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// Removes members whose session expired or that did not revoke in time.
    pub fn on_timer(&mut self, clock: Clock) {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= clock.now {
                    Some((m.id.clone(), "session expired"))
                } else if m.revoke_deadline.is_some_and(|d| d <= clock.now) {
                    Some((m.id.clone(), "did not revoke in time"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in expired {
            tracing::info!(group = %self.id, member = %id, "{why}; member removed");
            self.remove_member(&id, clock);
        }
    }
}

trait SubsetExt {
    fn is_none_or_subset(&self, of: &TopicPartitions) -> bool;
}

impl SubsetExt for Option<&TopicPartitions> {
    /// Not reported, or every reported partition is in `of`.
    fn is_none_or_subset(&self, of: &TopicPartitions) -> bool {
        match self {
            None => true,
            Some(o) => subtract(o, of).is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GroupConfig {
        GroupConfig::default()
    }

    fn clock() -> Clock {
        Clock {
            now: Instant::now(),
            wall_ms: 1,
        }
    }

    fn hb(member: &str, epoch: i32, owned: Option<TopicPartitions>) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn count(t: &Option<TopicPartitions>) -> usize {
        t.as_ref()
            .map_or(0, |t| t.values().map(BTreeSet::len).sum())
    }

    #[test]
    fn partitions_move_only_after_revocation() {
        let topic = Uuid::new_v4();
        let resolve = move |n: &str| (n == "t").then_some((topic, 6));
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        let mut beat = |p| g.heartbeat(p, &c, clock(), &resolve);
        let a = beat(hb("a", 0, Some(TopicPartitions::new())));
        assert_eq!(a.error, None);
        let e1 = a.member_epoch;
        assert!(e1 > 0);
        assert_eq!(count(&a.assignment), 6);
        let owned_a = a.assignment.clone();
        let b = beat(hb("b", 0, Some(TopicPartitions::new())));
        let e2 = b.member_epoch;
        assert!(e2 > e1);
        assert_eq!(count(&b.assignment), 0, "a still owns everything");
        // a is told to give up three partitions; its epoch stays.
        let a = beat(hb("a", e1, owned_a));
        assert_eq!((a.member_epoch, count(&a.assignment)), (e1, 3));
        // b still gets nothing until a confirms.
        let b2 = beat(hb("b", e2, Some(TopicPartitions::new())));
        assert_eq!(count(&b2.assignment), 0);
        let a = beat(hb("a", e1, a.assignment.clone()));
        assert_eq!(a.member_epoch, e2);
        let b3 = beat(hb("b", e2, Some(TopicPartitions::new())));
        assert_eq!(count(&b3.assignment), 3);
        let b4 = beat(hb("b", e2, b3.assignment.clone()));
        assert!(
            b4.assignment.is_none(),
            "unchanged assignments are not resent"
        );
        // Stale epochs are fenced; unknown members refused.
        let f = beat(hb("b", e2 + 5, None));
        assert_eq!(f.error, Some(GroupError::FencedMemberEpoch));
        let u = beat(hb("zz", 3, None));
        assert_eq!(u.error, Some(GroupError::UnknownMemberId));
        // a leaves: b gets everything.
        let l = beat(hb("a", -1, None));
        assert_eq!((l.error, l.member_epoch), (None, -1));
        let b5 = beat(hb("b", e2, b3.assignment.clone()));
        assert!(b5.member_epoch > e2);
        assert_eq!(count(&b5.assignment), 6);
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn bad_requests_are_refused() {
        let resolve = |_: &str| None;
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        let mut p = hb("a", 0, None);
        p.server_assignor = Some("nope".into());
        let r = g.heartbeat(p, &c, clock(), &resolve);
        assert_eq!(r.error, Some(GroupError::UnsupportedAssignor));
        let mut p = hb("a", 0, None);
        p.subscribed_topic_names = None;
        let r = g.heartbeat(p, &c, clock(), &resolve);
        assert_eq!(r.error, Some(GroupError::InvalidRequest));
        assert!(g.members.is_empty());
    }

    #[test]
    fn silent_members_are_removed() {
        let topic = Uuid::new_v4();
        let resolve = move |n: &str| (n == "t").then_some((topic, 2));
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        g.heartbeat(hb("a", 0, None), &c, clock(), &resolve);
        let d = g.next_deadline().unwrap();
        g.on_timer(Clock { now: d, wall_ms: 2 });
        assert!(g.members.is_empty());
        assert_eq!(g.state(), "Empty");
    }
}
