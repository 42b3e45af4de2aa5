//! The classic group protocol's state machine (JoinGroup / SyncGroup / Heartbeat / LeaveGroup),
//! as pure code: every method takes the current time and answers parked requests through their
//! oneshot senders; what must be made durable is returned as [`Persist`] effects for the
//! partition actor to write. Nothing here does I/O, so the transitions are unit-tested directly.
//!
//! States (Kafka's): `Empty` (no members) → `PreparingRebalance` (waiting for members to
//! (re)join, bounded by the rebalance timeout, or by `group.initial.rebalance.delay.ms` for the
//! first rebalance of an empty group) → `CompletingRebalance` (join answered, waiting for the
//! leader's SyncGroup) → `Stable` (assignment delivered). `Dead` is a group being deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::records::{GroupValue, MemberValue, OffsetValue};
use super::{
    GroupConfig, GroupError, JoinOutcome, JoinParams, JoinedMember, MemberDescription, SyncOutcome,
    SyncParams,
};

/// How long a new member's JoinGroup may wait for a rebalance to complete before the member
/// is dropped (it has no member id to heartbeat with yet); Kafka's fixed 5 minutes.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The state of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to join the next generation.
    PreparingRebalance,
    /// The join phase is over; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group is being removed.
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The time as seen by one actor step: a monotonic instant for timers and the wall clock for
/// what is stored.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic now.
    pub now: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

/// A committed offset held in memory, with the position of its record in the partition
/// (later records win, whatever order their fsyncs complete in).
#[derive(Debug, Clone)]
pub struct StoredOffset {
    /// The stored value.
    pub value: OffsetValue,
    /// Offset of its record in `__consumer_offsets`.
    pub log_offset: i64,
}

/// What the actor must write for a group, and what to do once it is durable.
pub enum Persist {
    /// Write a snapshot of the group's metadata; then continue with the [`AfterGroupWrite`].
    Group(AfterGroupWrite),
}

/// Continuations of a group metadata write.
pub enum AfterGroupWrite {
    /// The leader's assignment for `generation` is durable: deliver it to the members.
    SyncDone {
        /// The generation the assignment belongs to.
        generation: i32,
    },
    /// A static member replaced its old member id in a stable group: answer its JoinGroup.
    StaticRejoin {
        /// The parked JoinGroup.
        reply: oneshot::Sender<JoinOutcome>,
        /// What to answer once the write succeeded.
        outcome: JoinOutcome,
    },
    /// Nothing waits for this write.
    Nothing,
}

/// A member of a classic group.
pub struct Member {
    /// Member id (client id + UUID, or instance id + UUID for static members).
    pub id: String,
    /// `group.instance.id` (static membership).
    pub instance_id: Option<String>,
    /// Client id of the connection that joined.
    pub client_id: String,
    /// `/ip` of the connection that joined.
    pub client_host: String,
    /// Session timeout in ms.
    pub session_timeout_ms: i32,
    /// Rebalance timeout in ms.
    pub rebalance_timeout_ms: i32,
    /// Supported protocols in preference order, with the member's metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation.
    pub assignment: Bytes,
    awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// When the member is dropped unless it heartbeats (or is parked in a join or sync).
    session_deadline: Instant,
    /// Joined but not yet answered for the first time.
    is_new: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Whether the member must not be expired at `now`.
    fn keep_alive(&self, now: Instant) -> bool {
        if self.awaiting_join.is_some() {
            return !self.is_new || now < self.session_deadline;
        }
        self.awaiting_sync.is_some() || now < self.session_deadline
    }

    fn deadline(&self) -> Option<Instant> {
        if (self.awaiting_join.is_some() && !self.is_new) || self.awaiting_sync.is_some() {
            None
        } else {
            Some(self.session_deadline)
        }
    }

    fn touch(&mut self, now: Instant) {
        self.session_deadline = now + ms(self.session_timeout_ms);
    }
}

/// A classic consumer group: membership, generation, assignments and committed offsets.
pub struct ClassicGroup {
    /// The group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// When the state last changed (ms since the epoch).
    pub state_timestamp: i64,
    /// Protocol type of the members (`consumer`), `None` for a group that only has offsets.
    pub protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    pub protocol: Option<String>,
    /// The generation id.
    pub generation: i32,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Static members: instance id → member id.
    pub static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with the
    /// deadline after which they are forgotten.
    pub pending_members: HashMap<String, Instant>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), StoredOffset>,
    /// Transactional offset commits that are durable but whose transaction has not ended, by
    /// producer id; invisible to OffsetFetch until [`ClassicGroup::complete_txn`] commits them.
    pub pending_txn: HashMap<i64, BTreeMap<(String, i32), StoredOffset>>,
    join_deadline: Option<Instant>,
    /// `Some(remaining)` while the first rebalance of an empty group is being delayed.
    initial_delay_remaining: Option<Duration>,
    new_member_added: bool,
    /// Members that have not sent SyncGroup since the last join phase ended.
    pending_sync: HashSet<String>,
    sync_deadline: Option<Instant>,
    /// The leader's assignment while it is being written.
    pending_assignment: Option<(i32, HashMap<String, Bytes>)>,
    /// The deadline this group has in the actor's timer queue.
    pub armed: Option<Instant>,
}

pub(crate) fn ms(v: i32) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

fn err_join(e: GroupError, member_id: &str) -> JoinOutcome {
    JoinOutcome {
        error: Some(e),
        generation: -1,
        member_id: member_id.to_string(),
        ..JoinOutcome::default()
    }
}

fn send<T>(tx: oneshot::Sender<T>, v: T) {
    // The requester may have gone away (connection closed); nothing to do then.
    let _ = tx.send(v);
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(id: String, clock: Clock) -> ClassicGroup {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            state_timestamp: clock.wall_ms,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
            pending_sync: HashSet::new(),
            sync_deadline: None,
            pending_assignment: None,
            armed: None,
        }
    }

    /// Rebuilds a group from its stored metadata: `Stable` with its members if it had any
    /// (they must heartbeat within their session timeout), `Empty` otherwise.
    pub fn restore(id: String, v: GroupValue, clock: Clock) -> ClassicGroup {
        let mut g = ClassicGroup::new(id, clock);
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.generation = v.generation;
        g.protocol = v.protocol;
        g.leader = v.leader;
        g.state_timestamp = if v.state_timestamp >= 0 {
            v.state_timestamp
        } else {
            clock.wall_ms
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(i) = &m.instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: clock.now + ms(m.session_timeout_ms),
                is_new: false,
            };
            g.members.insert(m.member_id, member);
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.leader
            .as_ref()
            .is_some_and(|l| !g.members.contains_key(l))
        {
            g.leader = g.members.keys().next().cloned();
        }
        g
    }

    /// The group metadata to store: members with their (pending, if being written) assignment.
    pub fn snapshot(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        let pending = self.pending_assignment.as_ref().map(|(_, a)| a);
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: pending
                        .map(|p| p.get(&m.id).cloned().unwrap_or_default())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    /// Whether the group holds nothing worth keeping (no members, pending members, offsets or
    /// pending transactional offsets).
    pub fn is_removable(&self) -> bool {
        self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.pending_txn.is_empty()
    }

    /// Whether an open transaction holds offsets of `(topic, partition)`.
    pub fn has_pending_txn(&self, topic: &str, partition: i32) -> bool {
        self.pending_txn
            .values()
            .any(|m| m.contains_key(&(topic.to_string(), partition)))
    }

    /// Adds a durable transactional offset of `producer_id` (a later one of the same
    /// transaction replaces it).
    pub fn add_pending_txn(
        &mut self,
        producer_id: i64,
        topic: String,
        partition: i32,
        o: StoredOffset,
    ) {
        self.pending_txn
            .entry(producer_id)
            .or_default()
            .insert((topic, partition), o);
    }

    /// Ends `producer_id`'s transaction for this group: on commit its pending offsets become
    /// committed unless the committed one was written later in the log (Kafka's rule: the
    /// record with the higher offset wins); on abort they are dropped.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return;
        };
        if commit {
            for (key, o) in pending {
                self.commit_if_newer(key, o);
            }
        }
    }

    /// Makes `o` the committed offset of `key` unless the committed one has a higher log
    /// offset.
    pub fn commit_if_newer(&mut self, key: (String, i32), o: StoredOffset) {
        if self
            .offsets
            .get(&key)
            .is_some_and(|c| c.log_offset > o.log_offset)
        {
            return;
        }
        self.offsets.insert(key, o);
    }

    fn transition(&mut self, state: GroupState, clock: Clock) {
        self.state = state;
        self.state_timestamp = clock.wall_ms;
    }

    /// Checks that `member_id` (and `instance_id`, for a static member) belong to the group.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(m) if m != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// Whether a member of `protocol_type` offering `protocols` can join: the type must match
    /// and at least one protocol must be supported by every other member.
    fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        joining: &str,
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self.members.values().filter(|m| m.id != joining).collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// The protocol for the next generation: among those every member supports, the one most
    /// members list first (ties go to the name that sorts first).
    fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<HashSet<&str>> = None;
        for m in self.members.values() {
            let names: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            candidates = Some(match candidates {
                None => names,
                Some(c) => c.intersection(&names).copied().collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, n) in votes {
            if best.map_or(true, |(_, b)| n > b) {
                best = Some((name, n));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn max_rebalance_timeout(&self) -> Duration {
        ms(self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0))
    }

    fn max_session_timeout(&self) -> Duration {
        ms(self
            .members
            .values()
            .map(|m| m.session_timeout_ms)
            .max()
            .unwrap_or(0))
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The JoinGroup answer for the current generation (a member re-sending its join, or a
    /// static member coming back). The leader gets every member's metadata.
    fn current_join(&self, member_id: &str, skip_assignment: bool) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.member_list()
            } else {
                Vec::new()
            },
            skip_assignment: is_leader && skip_assignment,
        }
    }

    fn member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    /// JoinGroup. Validation of the group id and session timeout happened before.
    pub fn join(
        &mut self,
        p: JoinParams,
        reply: oneshot::Sender<JoinOutcome>,
        cfg: &GroupConfig,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) {
        if self.state == GroupState::Dead {
            return send(
                reply,
                err_join(GroupError::CoordinatorNotAvailable, &p.member_id),
            );
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols, &p.member_id) {
            return send(
                reply,
                err_join(GroupError::InconsistentGroupProtocol, &p.member_id),
            );
        }
        if p.member_id.is_empty() {
            let prefix = p.instance_id.as_deref().unwrap_or(&p.client_id);
            let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
            match p.instance_id.clone() {
                Some(instance) => match self.static_members.get(&instance).cloned() {
                    Some(old_id) => {
                        self.replace_static_member(&old_id, new_id, p, reply, cfg, clock, fx)
                    }
                    None => self.add_member(new_id, p, reply, cfg, clock, fx),
                },
                None if p.require_known_member_id => {
                    let deadline = clock.now + ms(p.session_timeout_ms);
                    self.pending_members.insert(new_id.clone(), deadline);
                    send(reply, err_join(GroupError::MemberIdRequired, &new_id));
                }
                None => self.add_member(new_id, p, reply, cfg, clock, fx),
            }
            return;
        }
        if self.pending_members.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member(id, p, reply, cfg, clock, fx);
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return send(reply, err_join(e, &p.member_id));
        }
        let id = p.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let same = self
            .members
            .get(&id)
            .is_some_and(|m| m.same_protocols(&p.protocols));
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&id, p, reply);
                self.maybe_complete_join(clock, fx);
            }
            GroupState::CompletingRebalance if same => send(reply, self.current_join(&id, false)),
            GroupState::Stable if same && !is_leader => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.touch(clock.now);
                }
                send(reply, self.current_join(&id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&id, p, reply);
                self.prepare_rebalance(cfg, clock, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                send(reply, err_join(GroupError::UnknownMemberId, &id))
            }
        }
    }

    fn update_member(&mut self, id: &str, p: JoinParams, reply: oneshot::Sender<JoinOutcome>) {
        if let Some(m) = self.members.get_mut(id) {
            if let Some(old) = m.awaiting_join.replace(reply) {
                send(old, err_join(GroupError::RebalanceInProgress, id));
            }
            m.protocols = p.protocols;
            m.session_timeout_ms = p.session_timeout_ms;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.client_id = p.client_id;
            m.client_host = p.client_host;
        }
    }

    fn add_member(
        &mut self,
        id: String,
        p: JoinParams,
        reply: oneshot::Sender<JoinOutcome>,
        cfg: &GroupConfig,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let member = Member {
            id: id.clone(),
            instance_id: p.instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            session_timeout_ms: p.session_timeout_ms,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            session_deadline: clock.now + NEW_MEMBER_JOIN_TIMEOUT,
            is_new: true,
        };
        self.members.insert(id, member);
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(clock, fx),
            _ => self.prepare_rebalance(cfg, clock, fx),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        p: JoinParams,
        reply: oneshot::Sender<JoinOutcome>,
        cfg: &GroupConfig,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) {
        let Some(mut m) = self.members.remove(old_id) else {
            return self.add_member(new_id, p, reply, cfg, clock, fx);
        };
        // A request still parked under the old id belongs to a fenced duplicate.
        if let Some(tx) = m.awaiting_join.take() {
            send(tx, err_join(GroupError::FencedInstanceId, old_id));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            send(tx, SyncOutcome::error(GroupError::FencedInstanceId));
        }
        let old_protocols = std::mem::take(&mut m.protocols);
        m.id = new_id.clone();
        m.client_id = p.client_id.clone();
        m.client_host = p.client_host.clone();
        m.session_timeout_ms = p.session_timeout_ms;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.protocols = p.protocols.clone();
        m.touch(clock.now);
        self.members.insert(new_id.clone(), m);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                // Same selected protocol: no rebalance, the member gets its old assignment
                // through SyncGroup once the new member id is durable.
                let unchanged = self.select_protocol() == self.protocol;
                if unchanged {
                    let outcome = self.current_join(&new_id, true);
                    fx.push(Persist::Group(AfterGroupWrite::StaticRejoin {
                        reply,
                        outcome,
                    }));
                } else {
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.protocols = old_protocols;
                    }
                    self.update_member(&new_id, p, reply);
                    self.prepare_rebalance(cfg, clock, fx);
                }
            }
            GroupState::CompletingRebalance => {
                self.update_member(&new_id, p, reply);
                self.prepare_rebalance(cfg, clock, fx);
            }
            _ => {
                self.update_member(&new_id, p, reply);
                self.maybe_complete_join(clock, fx);
            }
        }
    }

    /// Moves to PreparingRebalance: the join phase lasts until every member rejoined or the
    /// largest rebalance timeout passed (or the initial delay, for an empty group).
    fn prepare_rebalance(&mut self, cfg: &GroupConfig, clock: Clock, fx: &mut Vec<Persist>) {
        if self.state == GroupState::CompletingRebalance {
            self.fail_pending_syncs(GroupError::RebalanceInProgress);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.pending_assignment = None;
        let timeout = self.max_rebalance_timeout();
        let delay = cfg.initial_rebalance_delay;
        if self.state == GroupState::Empty && !delay.is_zero() {
            self.join_deadline = Some(clock.now + delay);
            self.initial_delay_remaining = Some(timeout.saturating_sub(delay));
        } else {
            self.join_deadline = Some(clock.now + timeout);
            self.initial_delay_remaining = None;
        }
        self.transition(GroupState::PreparingRebalance, clock);
        tracing::debug!(group = %self.id, generation = self.generation, "preparing rebalance");
        self.maybe_complete_join(clock, fx);
    }

    /// Clears every assignment and answers parked SyncGroups with `e`.
    fn fail_pending_syncs(&mut self, e: GroupError) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                send(tx, SyncOutcome::error(e));
            }
        }
    }

    fn maybe_complete_join(&mut self, clock: Clock, fx: &mut Vec<Persist>) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_remaining.is_none()
            && self.all_joined()
        {
            self.complete_join(clock, fx);
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, elects a leader,
    /// starts the next generation and answers every parked JoinGroup.
    fn complete_join(&mut self, clock: Clock, fx: &mut Vec<Persist>) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::debug!(group = %self.id, member = %id, "member did not rejoin in time");
            self.drop_member(&id);
        }
        self.join_deadline = None;
        self.initial_delay_remaining = None;
        self.new_member_added = false;
        if self.members.is_empty() {
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, clock);
            fx.push(Persist::Group(AfterGroupWrite::Nothing));
            return;
        }
        if !self.members.values().any(|m| m.awaiting_join.is_some()) {
            // Only static members that have not come back: wait for their sessions to end.
            self.join_deadline = Some(clock.now + self.max_session_timeout());
            return;
        }
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .map(|m| m.id.clone());
        }
        self.generation += 1;
        self.protocol = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, clock);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(clock.now + self.max_rebalance_timeout());
        tracing::debug!(group = %self.id, generation = self.generation, protocol = ?self.protocol,
            members = self.members.len(), "join phase complete");
        let leader = self.leader.clone().unwrap_or_default();
        let list = self.member_list();
        for m in self.members.values_mut() {
            let Some(tx) = m.awaiting_join.take() else {
                continue;
            };
            m.is_new = false;
            m.touch(clock.now);
            send(
                tx,
                JoinOutcome {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        list.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                },
            );
        }
    }

    /// Removes a member without starting a rebalance (the caller decides).
    fn drop_member(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        if let Some(tx) = m.awaiting_join.take() {
            send(tx, err_join(GroupError::UnknownMemberId, id));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            send(tx, SyncOutcome::error(GroupError::UnknownMemberId));
        }
        self.pending_sync.remove(id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.id.clone());
        }
    }

    /// Removes a member (left, expired or fenced) and rebalances the rest.
    fn remove_member(&mut self, id: &str, cfg: &GroupConfig, clock: Clock, fx: &mut Vec<Persist>) {
        self.drop_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(cfg, clock, fx)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(clock, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup: the leader's request carries the assignment, which is written before anyone
    /// gets theirs; the others wait for it (or get it at once in Stable).
    pub fn sync(
        &mut self,
        p: SyncParams,
        reply: oneshot::Sender<SyncOutcome>,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) {
        if self.state == GroupState::Dead {
            return send(
                reply,
                SyncOutcome::error(GroupError::CoordinatorNotAvailable),
            );
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return send(reply, SyncOutcome::error(e));
        }
        if p.generation != self.generation {
            return send(reply, SyncOutcome::error(GroupError::IllegalGeneration));
        }
        if p.protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || p.protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol.as_ref())
        {
            return send(
                reply,
                SyncOutcome::error(GroupError::InconsistentGroupProtocol),
            );
        }
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                send(reply, SyncOutcome::error(GroupError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                send(reply, SyncOutcome::error(GroupError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&p.member_id) {
                    m.touch(clock.now);
                    if let Some(old) = m.awaiting_sync.replace(reply) {
                        send(old, SyncOutcome::error(GroupError::RebalanceInProgress));
                    }
                }
                self.synced(&p.member_id);
                if is_leader && self.pending_assignment.is_none() {
                    let assignment: HashMap<String, Bytes> = p
                        .assignments
                        .into_iter()
                        .filter(|(id, _)| self.members.contains_key(id))
                        .collect();
                    self.pending_assignment = Some((self.generation, assignment));
                    fx.push(Persist::Group(AfterGroupWrite::SyncDone {
                        generation: self.generation,
                    }));
                }
            }
            GroupState::Stable => {
                self.synced(&p.member_id);
                if let Some(m) = self.members.get_mut(&p.member_id) {
                    m.touch(clock.now);
                    send(
                        reply,
                        SyncOutcome {
                            error: None,
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol.clone(),
                            assignment: m.assignment.clone(),
                        },
                    );
                }
            }
        }
    }

    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// The leader's assignment for `generation` was written (or failed to be).
    pub fn sync_persisted(
        &mut self,
        generation: i32,
        result: Result<(), GroupError>,
        cfg: &GroupConfig,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        let Some((_, assignment)) = self.pending_assignment.take() else {
            return;
        };
        match result {
            Ok(()) => {
                for m in self.members.values_mut() {
                    m.assignment = assignment.get(&m.id).cloned().unwrap_or_default();
                    if let Some(tx) = m.awaiting_sync.take() {
                        send(
                            tx,
                            SyncOutcome {
                                error: None,
                                protocol_type: self.protocol_type.clone(),
                                protocol_name: self.protocol.clone(),
                                assignment: m.assignment.clone(),
                            },
                        );
                    }
                }
                self.transition(GroupState::Stable, clock);
                tracing::debug!(group = %self.id, generation, "group stable");
            }
            Err(e) => {
                tracing::warn!(group = %self.id, generation, error = %e, "storing the assignment failed; rebalancing");
                self.fail_pending_syncs(e);
                self.prepare_rebalance(cfg, clock, fx);
            }
        }
    }

    /// Heartbeat: keeps the member's session alive and tells it whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        clock: Clock,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(clock.now);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// LeaveGroup for one member identity (`member_id` may be empty when `instance_id` is given,
    /// as in KIP-345's admin removal).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
        clock: Clock,
        fx: &mut Vec<Persist>,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(m) if !member_id.is_empty() && m != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(m) => m.clone(),
            },
            None => {
                if self.pending_members.remove(member_id).is_some() {
                    self.maybe_complete_join(clock, fx);
                    return Ok(());
                }
                if !self.members.contains_key(member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        tracing::debug!(group = %self.id, member = %id, "member leaves");
        self.remove_member(&id, cfg, clock, fx);
        Ok(())
    }

    /// The next instant at which [`ClassicGroup::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.state == GroupState::PreparingRebalance {
            consider(self.join_deadline);
        }
        if !self.pending_sync.is_empty() {
            consider(self.sync_deadline);
        }
        for d in self.pending_members.values() {
            consider(Some(*d));
        }
        for m in self.members.values() {
            consider(m.deadline());
        }
        next
    }

    /// Runs what is due at `clock.now`: forgets pending members that never joined, ends a join
    /// phase whose deadline passed, removes members whose session expired and members that did
    /// not send SyncGroup within the rebalance timeout.
    pub fn on_timer(&mut self, cfg: &GroupConfig, clock: Clock, fx: &mut Vec<Persist>) {
        let now = clock.now;
        let before = self.pending_members.len();
        self.pending_members.retain(|_, d| *d > now);
        if self.pending_members.len() != before {
            self.maybe_complete_join(clock, fx);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            match self.initial_delay_remaining {
                Some(remaining) if self.new_member_added && !remaining.is_zero() => {
                    self.new_member_added = false;
                    let delay = cfg.initial_rebalance_delay.min(remaining);
                    self.join_deadline = Some(now + delay);
                    self.initial_delay_remaining = Some(remaining - delay);
                }
                _ => {
                    self.initial_delay_remaining = None;
                    self.complete_join(clock, fx);
                }
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.keep_alive(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, cfg, clock, fx);
        }
        if self.sync_deadline.is_some_and(|d| d <= now) {
            self.sync_deadline = None;
            let late: Vec<String> = self.pending_sync.drain().collect();
            for id in late {
                tracing::info!(group = %self.id, member = %id, "member did not sync in time");
                self.remove_member(&id, cfg, clock, fx);
            }
        }
    }

    /// Checks an OffsetCommit's member and generation (Kafka's rules: a commit with generation
    /// -1 and no member id is accepted only while the group is empty). A transactional commit
    /// (TxnOffsetCommit) without member and generation is accepted in any state (before v3 the
    /// request has neither), and is not refused while the group completes a rebalance.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if !transactional && self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Refreshes a member's session (an offset commit counts as a sign of life).
    pub fn touch_member(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now);
        }
    }

    /// Removes the offsets whose retention passed and returns their keys. Offsets of a group
    /// with members are kept; for an empty group that had members the clock starts when it
    /// became empty, for a group that only ever had offsets at each commit.
    /// `empty_since` overrides when the group became empty (a KIP-848 group holding its offsets
    /// here). A partition with pending transactional offsets is kept, and pending offsets
    /// never expire (their transaction decides).
    pub fn expire_offsets(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        empty_since: Option<i64>,
    ) -> Vec<(String, i32)> {
        if !self.members.is_empty() || self.state != GroupState::Empty {
            return Vec::new();
        }
        let empty_since =
            empty_since.or_else(|| self.protocol_type.is_some().then_some(self.state_timestamp));
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|((t, p), o)| {
                let base = empty_since.unwrap_or(o.value.commit_timestamp);
                base.saturating_add(retention_ms) <= now_ms && !self.has_pending_txn(t, *p)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.offsets.remove(k);
        }
        expired
    }

    /// Answers every parked JoinGroup and SyncGroup with `e` (the coordinator stops).
    pub fn release_parked(&mut self, e: GroupError) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_join.take() {
                send(tx, err_join(e, &m.id));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                send(tx, SyncOutcome::error(e));
            }
        }
    }

    /// Marks the group dead (it is being deleted): parked requests are answered.
    pub fn kill(&mut self, clock: Clock) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.drop_member(&id);
        }
        self.pending_members.clear();
        self.transition(GroupState::Dead, clock);
    }

    /// The members as DescribeGroups shows them (metadata and assignment only when Stable).
    pub fn describe_members(&self) -> Vec<MemberDescription> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect()
    }

    /// Topics that members subscribe to (consumer protocol only; `None` if unknown).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(super::consumer_protocol::subscription_topics(
                &m.metadata(&protocol),
            )?);
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delay_ms: u64) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            ..GroupConfig::default()
        }
    }

    fn clock(now: Instant) -> Clock {
        Clock {
            now,
            wall_ms: 1_000,
        }
    }

    fn params(member: &str, protocols: &[&str]) -> JoinParams {
        JoinParams {
            group_id: "g".into(),
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(p.to_string())))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn join(
        g: &mut ClassicGroup,
        p: JoinParams,
        c: &GroupConfig,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let mut fx = Vec::new();
        g.join(p, tx, c, clock(now), &mut fx);
        rx
    }

    /// Joins a new member through the MEMBER_ID_REQUIRED round; returns its receiver.
    fn join_new(
        g: &mut ClassicGroup,
        protocols: &[&str],
        c: &GroupConfig,
        now: Instant,
    ) -> (String, oneshot::Receiver<JoinOutcome>) {
        let mut rx = join(g, params("", protocols), c, now);
        let first = rx.try_recv().expect("answered at once");
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        let id = first.member_id;
        let rx = join(g, params(&id, protocols), c, now);
        (id, rx)
    }

    #[test]
    fn two_members_join_leader_gets_members_and_protocol_is_voted() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (a, mut ra) = join_new(&mut g, &["range", "roundrobin"], &c, now);
        // Alone and everyone joined: the join completes at once.
        let ja = ra.try_recv().expect("complete");
        assert_eq!(ja.generation, 1);
        assert_eq!(ja.leader, a);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let (_b, mut rb) = join_new(&mut g, &["roundrobin", "range"], &c, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(rb.try_recv().is_err(), "waits for a to rejoin");
        let mut ra = join(&mut g, params(&a, &["range", "roundrobin"]), &c, now);
        let ja = ra.try_recv().expect("complete");
        let jb = rb.try_recv().expect("complete");
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.members.len(), 2, "leader gets every member");
        assert!(jb.members.is_empty());
        // One vote each: the tie goes to the name that sorts first.
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
    }

    #[test]
    fn sync_waits_for_the_persisted_leader_assignment() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (a, _ra) = join_new(&mut g, &["range"], &c, now);
        let mut fx = Vec::new();
        let (tx, mut rx) = oneshot::channel();
        g.sync(
            SyncParams {
                group_id: "g".into(),
                member_id: a.clone(),
                instance_id: None,
                generation: 1,
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(a.clone(), Bytes::from_static(b"A"))],
            },
            tx,
            clock(now),
            &mut fx,
        );
        assert_eq!(fx.len(), 1);
        assert!(rx.try_recv().is_err(), "not before the write");
        assert_eq!(g.snapshot().members[0].assignment, Bytes::from_static(b"A"));
        g.sync_persisted(1, Ok(()), &c, clock(now), &mut fx);
        assert_eq!(rx.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&a, None, 1, clock(now)), Ok(()));
        assert_eq!(
            g.heartbeat(&a, None, 0, clock(now)),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 1, clock(now)),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[test]
    fn session_expiry_rebalances_and_empties() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (_a, _ra) = join_new(&mut g, &["range"], &c, now);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let deadline = g.next_deadline().expect("timer");
        assert!(deadline <= now + Duration::from_millis(20_000));
        let later = now + Duration::from_secs(60);
        let mut fx = Vec::new();
        g.on_timer(&c, clock(later), &mut fx);
        assert!(g.members.is_empty());
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, 2);
    }

    #[test]
    fn initial_delay_holds_the_first_join() {
        let c = cfg(100);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (_a, mut ra) = join_new(&mut g, &["range"], &c, now);
        assert!(ra.try_recv().is_err());
        let (_b, mut rb) = join_new(&mut g, &["range"], &c, now);
        let mut fx = Vec::new();
        // b arrived during the delay: one more delay period.
        g.on_timer(&c, clock(now + Duration::from_millis(100)), &mut fx);
        assert!(ra.try_recv().is_err());
        g.on_timer(&c, clock(now + Duration::from_millis(200)), &mut fx);
        assert_eq!(ra.try_recv().unwrap().generation, 1);
        assert_eq!(rb.try_recv().unwrap().generation, 1);
    }

    #[test]
    fn static_member_rejoin_keeps_assignment_and_fences_old_id() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let mut p = params("", &["range"]);
        p.instance_id = Some("i1".into());
        let mut rx = join(&mut g, p.clone(), &c, now);
        let j = rx.try_recv().unwrap();
        let old = j.member_id.clone();
        let (tx, _srx) = oneshot::channel();
        let mut fx = Vec::new();
        g.sync(
            SyncParams {
                group_id: "g".into(),
                member_id: old.clone(),
                instance_id: Some("i1".into()),
                generation: 1,
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(old.clone(), Bytes::from_static(b"A"))],
            },
            tx,
            clock(now),
            &mut fx,
        );
        g.sync_persisted(1, Ok(()), &c, clock(now), &mut fx);
        // Restart: same instance id, no member id.
        let (tx, _rx2) = oneshot::channel();
        let mut fx = Vec::new();
        g.join(p, tx, &c, clock(now), &mut fx);
        assert_eq!(g.state, GroupState::Stable, "no rebalance");
        assert!(matches!(
            fx.as_slice(),
            [Persist::Group(AfterGroupWrite::StaticRejoin { .. })]
        ));
        assert_eq!(
            g.heartbeat(&old, Some("i1"), 1, clock(now)),
            Err(GroupError::FencedInstanceId)
        );
        let new_id = g.static_members["i1"].clone();
        assert_eq!(g.members[&new_id].assignment, Bytes::from_static(b"A"));
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (_a, _ra) = join_new(&mut g, &["range"], &c, now);
        let mut rx = join(&mut g, params("", &["roundrobin"]), &c, now);
        assert_eq!(
            rx.try_recv().unwrap().error,
            Some(GroupError::InconsistentGroupProtocol)
        );
    }

    #[test]
    fn offsets_of_empty_groups_expire() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let v = |ts| StoredOffset {
            value: OffsetValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: ts,
            },
            log_offset: 0,
        };
        g.offsets.insert(("t".into(), 0), v(1_000));
        g.offsets.insert(("t".into(), 1), v(5_000));
        // A group without protocol type: per-commit timestamps.
        assert_eq!(
            g.expire_offsets(4_000, 2_000, None),
            vec![("t".to_string(), 0)]
        );
        assert_eq!(g.offsets.len(), 1);
        // A consumer group that became empty at 10_000: everything after retention.
        g.protocol_type = Some("consumer".into());
        g.state_timestamp = 10_000;
        assert!(g.expire_offsets(11_000, 2_000, None).is_empty());
        assert_eq!(g.expire_offsets(12_000, 2_000, None).len(), 1);
    }

    fn stored(offset: i64, log_offset: i64, ts: i64) -> StoredOffset {
        StoredOffset {
            value: OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: ts,
            },
            log_offset,
        }
    }

    #[test]
    fn pending_transactional_offsets_do_not_expire() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        g.offsets.insert(("t".into(), 0), stored(1, 0, 1_000));
        g.offsets.insert(("t".into(), 1), stored(1, 1, 1_000));
        g.add_pending_txn(7, "t".into(), 0, stored(5, 2, 1_000));
        g.add_pending_txn(7, "t".into(), 2, stored(5, 3, 1_000));
        assert_eq!(
            g.expire_offsets(10_000, 2_000, None),
            vec![("t".to_string(), 1)]
        );
        assert!(!g.is_removable(), "pending offsets keep the group");
        g.complete_txn(7, false);
        assert_eq!(g.offsets.len(), 1, "abort keeps the committed offset");
        assert_eq!(g.offsets[&("t".to_string(), 0)].value.offset, 1);
        assert_eq!(g.expire_offsets(10_000, 2_000, None).len(), 1);
        assert!(g.is_removable());
    }

    #[test]
    fn transactional_commit_checks_member_only_when_given() {
        let c = cfg(0);
        let now = Instant::now();
        let mut g = ClassicGroup::new("g".into(), clock(now));
        let (member, _rx) = join_new(&mut g, &["range"], &c, now);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        // Before v3 there is no member: accepted, also while the group rebalances.
        assert_eq!(g.validate_offset_commit("", None, -1, true), Ok(()));
        assert_eq!(
            g.validate_offset_commit("", None, -1, false),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(g.validate_offset_commit(&member, None, 1, true), Ok(()));
        assert_eq!(
            g.validate_offset_commit(&member, None, 1, false),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(
            g.validate_offset_commit(&member, None, 2, true),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            g.validate_offset_commit("other", None, 1, true),
            Err(GroupError::UnknownMemberId)
        );
    }
}
