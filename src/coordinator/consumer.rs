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
//!
//! **Subscriptions** are topic names and/or a regular expression (Kafka's RE2J syntax; here
//! the `regex` crate, which shares its syntax for everything but a few escapes), matched
//! against whole topic names, internal topics excluded and, with ACLs, only topics the member
//! may DESCRIBE. A member's regex is resolved again on its heartbeat when the set of topics
//! changed (or, with ACLs, every [`REGEX_REFRESH`]), so a new matching topic is assigned.
//!
//! **Durability.** The group's durable state is a [`ConsumerGroupImage`] (Kafka's records,
//! see [`super::consumer_records`]); after every change the coordinator writes the records
//! that differ from the last image it wrote ([`records_between`]) and answers once they are
//! durable. Replay rebuilds images ([`ConsumerGroupImage::apply`]) and groups from them
//! ([`ConsumerGroup::restore`]); restored members get a fresh session, so a consumer that
//! heartbeats again with its member id and epoch after a restart continues where it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::{Regex, RegexBuilder};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};
use uuid::Uuid;

use super::assignor::{self, AssignorMember, TopicPartitions};
use super::consumer_records::{
    ConsumerRecord, CurrentAssignment, MemberMetadata, SubscribedTopics,
};
use super::group::{ms, Clock};
use super::{ConsumerHeartbeat, ConsumerHeartbeatOutcome, GroupConfig, GroupError, TopicFilter};

/// With ACLs, how often a member's regex is resolved again even if no topic changed (its
/// permissions may have).
pub const REGEX_REFRESH: Duration = Duration::from_secs(10);

/// Largest compiled size of a subscription regex (the `regex` crate's bound on its program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The topics a group can subscribe to.
pub trait TopicSource {
    /// A topic's id and partition count.
    fn resolve(&self, name: &str) -> Option<(Uuid, i32)>;
    /// A number that changes whenever topics are created, deleted or grow.
    fn version(&self) -> u64 {
        0
    }
    /// Every topic name (for regex subscriptions).
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> Option<(Uuid, i32)>> TopicSource for F {
    fn resolve(&self, name: &str) -> Option<(Uuid, i32)> {
        self(name)
    }
}

/// Internal topics never match a regex subscription.
fn is_internal(topic: &str) -> bool {
    topic == super::OFFSETS_TOPIC || topic == crate::txn::TXN_TOPIC
}

/// Compiles a subscription regex to match whole topic names.
pub fn compile_regex(r: &str) -> Result<Regex, regex::Error> {
    // Validated alone first, so that `a)|(b` is not accepted through the wrapping group.
    RegexBuilder::new(r).size_limit(REGEX_SIZE_LIMIT).build()?;
    RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A heartbeat answer waiting for the group's records to be durable.
pub type ParkedReply = (
    oneshot::Sender<ConsumerHeartbeatOutcome>,
    ConsumerHeartbeatOutcome,
);

/// Where a member stands in its reconciliation (Kafka's `MemberState`).
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
    /// Subscribed topic regex, as the member sent it.
    pub subscribed_regex: Option<String>,
    regex: Option<Regex>,
    /// Topics the regex matched when last resolved.
    pub regex_topics: BTreeSet<String>,
    /// When the regex was last resolved: topic-set version and instant.
    regex_resolved: Option<(u64, Instant)>,
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
    /// The durable state as last written (or replayed); `None` before the first write or
    /// after a failed one (the next write then rewrites every record).
    pub persisted: Option<ConsumerGroupImage>,
    /// Writes of this group's records not yet durable.
    pub writes_in_flight: u32,
    /// Heartbeat answers waiting for those writes.
    pub parked: Vec<ParkedReply>,
    /// A write failed since the parked answers were last released.
    pub write_failed: bool,
}

impl ConsumerMember {
    /// Every topic the member subscribes to: by name and through its regex.
    pub fn topics(&self) -> impl Iterator<Item = &String> {
        self.subscribed.iter().chain(
            self.regex_topics
                .iter()
                .filter(|t| self.subscribed.binary_search(t).is_err()),
        )
    }

    fn state_code(&self) -> i8 {
        match self.state {
            Reconcile::Stable => 0,
            Reconcile::UnrevokedPartitions => 1,
            Reconcile::UnreleasedPartitions => 2,
        }
    }

    /// Resolves the regex against `topics` if it is due: the regex changed, topics changed,
    /// or (with ACLs) [`REGEX_REFRESH`] passed. True if the matched set changed.
    fn refresh_regex(
        &mut self,
        topics: &dyn TopicSource,
        describable: Option<&TopicFilter>,
        now: Instant,
    ) -> bool {
        let Some(re) = &self.regex else {
            let changed = !self.regex_topics.is_empty();
            self.regex_topics.clear();
            self.regex_resolved = None;
            return changed;
        };
        let version = topics.version();
        let due = match self.regex_resolved {
            None => true,
            Some((v, at)) => v != version || (describable.is_some() && now >= at + REGEX_REFRESH),
        };
        if !due {
            return false;
        }
        let matched: BTreeSet<String> = topics
            .names()
            .into_iter()
            .filter(|t| !is_internal(t) && re.is_match(t))
            .filter(|t| describable.map_or(true, |f| f.allows(t)))
            .collect();
        self.regex_resolved = Some((version, now));
        if matched == self.regex_topics {
            return false;
        }
        self.regex_topics = matched;
        true
    }
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
            persisted: None,
            writes_in_flight: 0,
            parked: Vec::new(),
            write_failed: false,
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

    /// ConsumerGroupHeartbeat against the topics of `topics`.
    pub fn heartbeat(
        &mut self,
        p: ConsumerHeartbeat,
        cfg: &GroupConfig,
        clock: Clock,
        topics: &dyn TopicSource,
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
        // `None`: unchanged; `Some(None)`: cleared (librdkafka sends an empty regex along
        // with topic names when it has none).
        let new_regex = match p.subscribed_topic_regex.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(r) => match compile_regex(r) {
                Ok(re) => Some(Some((r.to_string(), re))),
                Err(e) => {
                    tracing::debug!(group = %self.id, regex = r, error = %e,
                        "invalid subscription regex");
                    let msg = format!("invalid regular expression {r:?}: {e}");
                    return fail(GroupError::InvalidRegularExpression, Some(&msg), &p);
                }
            },
        };
        if let Some(a) = &p.server_assignor {
            if !cfg.consumer_assignors.iter().any(|n| n == a) {
                return fail(GroupError::UnsupportedAssignor, None, &p);
            }
        }
        let member_id = match p.member_epoch {
            -1 | -2 => return self.leave(p, cfg, clock),
            0 => {
                if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
                    return fail(
                        GroupError::InvalidRequest,
                        Some(
                            "SubscribedTopicNames or SubscribedTopicRegex must be set when joining",
                        ),
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
        if let Some(r) = new_regex {
            let (text, re) = match r {
                Some((text, re)) => (Some(text), Some(re)),
                None => (None, None),
            };
            if text != m.subscribed_regex {
                m.subscribed_regex = text;
                m.regex = re;
                m.regex_resolved = None;
                changed = true;
            }
        }
        if m.refresh_regex(topics, p.describable.as_ref(), clock.now) {
            changed = true;
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
        let metadata = self.subscription_metadata(topics);
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
            subscribed_regex: None,
            regex: None,
            regex_topics: BTreeSet::new(),
            regex_resolved: None,
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

    fn subscription_metadata(&self, topics: &dyn TopicSource) -> BTreeMap<String, (Uuid, i32)> {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.topics()).collect();
        names
            .into_iter()
            .filter_map(|n| topics.resolve(n).map(|v| (n.clone(), v)))
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
                    .topics()
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

/// The durable state of a consumer group: what its records say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupImage {
    /// Group epoch.
    pub epoch: i32,
    /// Subscribed topics as the target saw them.
    pub subscription: SubscribedTopics,
    /// Members' subscriptions by member id.
    pub members: BTreeMap<String, MemberMetadata>,
    /// Epoch of the target assignment.
    pub target_epoch: i32,
    /// Target assignment by member id.
    pub targets: BTreeMap<String, TopicPartitions>,
    /// Current assignments by member id.
    pub current: BTreeMap<String, CurrentAssignment>,
}

impl ConsumerGroupImage {
    /// Applies one replayed record to the images of a partition. Member records create the
    /// group if needed (as Kafka's replay does); a group-epoch tombstone removes it.
    pub fn apply(images: &mut HashMap<String, ConsumerGroupImage>, rec: ConsumerRecord) {
        if let ConsumerRecord::GroupEpoch { group, epoch: None } = &rec {
            images.remove(group);
            return;
        }
        let g = images.entry(rec.group().to_string()).or_default();
        match rec {
            ConsumerRecord::GroupEpoch { epoch, .. } => g.epoch = epoch.unwrap_or_default(),
            ConsumerRecord::Subscription { topics, .. } => {
                g.subscription = topics.unwrap_or_default()
            }
            ConsumerRecord::Member { member, value, .. } => match value {
                Some(v) => {
                    g.members.insert(member, v);
                }
                None => {
                    g.members.remove(&member);
                }
            },
            ConsumerRecord::TargetEpoch { epoch, .. } => g.target_epoch = epoch.unwrap_or_default(),
            ConsumerRecord::TargetMember {
                member, partitions, ..
            } => match partitions {
                Some(t) => {
                    g.targets.insert(member, t);
                }
                None => {
                    g.targets.remove(&member);
                }
            },
            ConsumerRecord::Current { member, value, .. } => match value {
                Some(c) => {
                    g.current.insert(member, c);
                }
                None => {
                    g.current.remove(&member);
                }
            },
        }
    }
}

/// The records that turn `old` into `new` for `group` (`None`: the group does not exist), in
/// Kafka's order: members' subscriptions, subscription metadata, group epoch, targets, target
/// epoch, current assignments; a member that left loses its current assignment, target and
/// subscription; a group that is gone ends with its epoch tombstone.
pub fn records_between(
    group: &str,
    old: Option<&ConsumerGroupImage>,
    new: Option<&ConsumerGroupImage>,
) -> Vec<ConsumerRecord> {
    let empty = ConsumerGroupImage::default();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let g = || group.to_string();
    let mut out = Vec::new();
    for id in o.members.keys().filter(|id| !n.members.contains_key(*id)) {
        if o.current.contains_key(id) {
            out.push(ConsumerRecord::Current {
                group: g(),
                member: id.clone(),
                value: None,
            });
        }
        if o.targets.contains_key(id) {
            out.push(ConsumerRecord::TargetMember {
                group: g(),
                member: id.clone(),
                partitions: None,
            });
        }
        out.push(ConsumerRecord::Member {
            group: g(),
            member: id.clone(),
            value: None,
        });
    }
    let Some(n) = new else {
        if old.is_some() {
            out.push(ConsumerRecord::TargetEpoch {
                group: g(),
                epoch: None,
            });
            out.push(ConsumerRecord::Subscription {
                group: g(),
                topics: None,
            });
            out.push(ConsumerRecord::GroupEpoch {
                group: g(),
                epoch: None,
            });
        }
        return out;
    };
    let first = old.is_none();
    for (id, m) in &n.members {
        if o.members.get(id) != Some(m) {
            out.push(ConsumerRecord::Member {
                group: g(),
                member: id.clone(),
                value: Some(m.clone()),
            });
        }
    }
    if first || o.subscription != n.subscription {
        out.push(ConsumerRecord::Subscription {
            group: g(),
            topics: Some(n.subscription.clone()),
        });
    }
    if first || o.epoch != n.epoch {
        out.push(ConsumerRecord::GroupEpoch {
            group: g(),
            epoch: Some(n.epoch),
        });
    }
    for id in o.targets.keys().filter(|id| !n.targets.contains_key(*id)) {
        if n.members.contains_key(id) {
            out.push(ConsumerRecord::TargetMember {
                group: g(),
                member: id.clone(),
                partitions: None,
            });
        }
    }
    for (id, t) in &n.targets {
        if o.targets.get(id) != Some(t) {
            out.push(ConsumerRecord::TargetMember {
                group: g(),
                member: id.clone(),
                partitions: Some(t.clone()),
            });
        }
    }
    if first || o.target_epoch != n.target_epoch {
        out.push(ConsumerRecord::TargetEpoch {
            group: g(),
            epoch: Some(n.target_epoch),
        });
    }
    for (id, c) in &n.current {
        if o.current.get(id) != Some(c) {
            out.push(ConsumerRecord::Current {
                group: g(),
                member: id.clone(),
                value: Some(c.clone()),
            });
        }
    }
    out
}

impl ConsumerGroup {
    /// The group's durable state now.
    pub fn image(&self) -> ConsumerGroupImage {
        ConsumerGroupImage {
            epoch: self.group_epoch,
            subscription: self.subscribed_metadata.clone(),
            members: self
                .members
                .values()
                .map(|m| {
                    let meta = MemberMetadata {
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        subscribed_topic_names: m.subscribed.clone(),
                        subscribed_topic_regex: m.subscribed_regex.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        server_assignor: m.server_assignor.clone(),
                    };
                    (m.id.clone(), meta)
                })
                .collect(),
            target_epoch: self.assignment_epoch,
            targets: self
                .target
                .iter()
                .filter(|(id, _)| self.members.contains_key(*id))
                .map(|(id, t)| (id.clone(), t.clone()))
                .collect(),
            current: self
                .members
                .values()
                .map(|m| {
                    let c = CurrentAssignment {
                        member_epoch: m.epoch,
                        previous_member_epoch: m.previous_epoch,
                        state: m.state_code(),
                        assigned: m.assigned.clone(),
                        pending_revocation: m.revoking.clone(),
                    };
                    (m.id.clone(), c)
                })
                .collect(),
        }
    }

    /// The records to write for the changes since the last write; the image they produce
    /// becomes the persisted one.
    pub fn take_records(&mut self) -> Vec<ConsumerRecord> {
        let now = self.image();
        let records = records_between(&self.id, self.persisted.as_ref(), Some(&now));
        self.persisted = Some(now);
        records
    }

    /// A group rebuilt from its replayed image. Every member gets a fresh session (and, if
    /// it was revoking, a fresh rebalance timeout), so a member that resumes heartbeating
    /// with its id and epoch continues; one that does not is removed when its session ends.
    pub fn restore(
        id: String,
        image: ConsumerGroupImage,
        cfg: &GroupConfig,
        clock: Clock,
    ) -> ConsumerGroup {
        let mut g = ConsumerGroup::new(id, cfg, clock);
        g.group_epoch = image.epoch;
        g.assignment_epoch = image.target_epoch;
        g.subscribed_metadata = image.subscription.clone();
        g.target = image.targets.clone();
        for (member_id, meta) in &image.members {
            let current = image.current.get(member_id).cloned().unwrap_or_default();
            let state = match current.state {
                1 => Reconcile::UnrevokedPartitions,
                2 => Reconcile::UnreleasedPartitions,
                _ => Reconcile::Stable,
            };
            let regex = meta.subscribed_topic_regex.as_deref().and_then(|r| {
                compile_regex(r)
                    .map_err(|e| {
                        tracing::warn!(group = %g.id, member = %member_id, regex = r,
                            error = %e, "stored subscription regex does not compile");
                    })
                    .ok()
            });
            // Until the member's next heartbeat resolves it again, its regex matches the
            // subscribed topics it matched before.
            let regex_topics = match &regex {
                Some(re) => image
                    .subscription
                    .keys()
                    .filter(|t| re.is_match(t))
                    .cloned()
                    .collect(),
                None => BTreeSet::new(),
            };
            let revoke_deadline = (state == Reconcile::UnrevokedPartitions)
                .then(|| clock.now + ms(meta.rebalance_timeout_ms.max(0)));
            if let Some(i) = &meta.instance_id {
                g.static_members.insert(i.clone(), member_id.clone());
            }
            let mut subscribed = meta.subscribed_topic_names.clone();
            subscribed.sort();
            subscribed.dedup();
            g.members.insert(
                member_id.clone(),
                ConsumerMember {
                    id: member_id.clone(),
                    instance_id: meta.instance_id.clone(),
                    rack_id: meta.rack_id.clone(),
                    client_id: meta.client_id.clone(),
                    client_host: meta.client_host.clone(),
                    epoch: current.member_epoch,
                    previous_epoch: current.previous_member_epoch,
                    rebalance_timeout_ms: meta.rebalance_timeout_ms,
                    subscribed,
                    subscribed_regex: meta.subscribed_topic_regex.clone(),
                    regex,
                    regex_topics,
                    regex_resolved: None,
                    server_assignor: meta.server_assignor.clone(),
                    last_sent: Some(current.assigned.clone()),
                    assigned: current.assigned,
                    revoking: current.pending_revocation,
                    state,
                    session_deadline: clock.now + ms(cfg.consumer_session_timeout_ms),
                    revoke_deadline,
                },
            );
        }
        g.assignor = g.choose_assignor(cfg);
        g.persisted = Some(image);
        g
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
            describable: None,
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

    /// Topics for regex tests: name → (id, partitions), with a version.
    struct Topics {
        topics: BTreeMap<String, (Uuid, i32)>,
        version: u64,
    }

    impl Topics {
        fn new(names: &[&str]) -> Topics {
            let mut t = Topics {
                topics: BTreeMap::new(),
                version: 0,
            };
            for n in names {
                t.add(n);
            }
            t
        }

        fn add(&mut self, name: &str) {
            self.topics.insert(name.to_string(), (Uuid::new_v4(), 2));
            self.version += 1;
        }

        fn id(&self, name: &str) -> Uuid {
            self.topics[name].0
        }
    }

    impl TopicSource for Topics {
        fn resolve(&self, name: &str) -> Option<(Uuid, i32)> {
            self.topics.get(name).copied()
        }
        fn version(&self) -> u64 {
            self.version
        }
        fn names(&self) -> Vec<String> {
            self.topics.keys().cloned().collect()
        }
    }

    fn regex_hb(member: &str, epoch: i32, regex: Option<&str>) -> ConsumerHeartbeat {
        let mut p = hb(member, epoch, Some(TopicPartitions::new()));
        p.subscribed_topic_names = None;
        p.subscribed_topic_regex = regex.map(str::to_string);
        p
    }

    #[test]
    fn regex_subscriptions_follow_new_topics() {
        let mut topics = Topics::new(&["orders-1", "payments", "__consumer_offsets"]);
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        let bad = g.heartbeat(regex_hb("a", 0, Some("orders-[")), &c, clock(), &topics);
        assert_eq!(bad.error, Some(GroupError::InvalidRegularExpression));
        assert!(g.members.is_empty(), "an invalid regex does not join");
        // librdkafka's combined form; only whole names match, internal topics never.
        let a = g.heartbeat(
            regex_hb("a", 0, Some("(^orders-.*)|(__.*)")),
            &c,
            clock(),
            &topics,
        );
        assert_eq!(a.error, None);
        let got = a.assignment.clone().expect("assignment");
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            [topics.id("orders-1")]
        );
        let epoch = a.member_epoch;
        // Nothing changed: no new epoch, no resend.
        let mut p = regex_hb("a", epoch, None);
        p.owned = Some(got.clone());
        let same = g.heartbeat(p.clone(), &c, clock(), &topics);
        assert_eq!(
            (same.member_epoch, same.assignment.is_none()),
            (epoch, true)
        );
        // A new matching topic is assigned on the next heartbeat; others are not.
        topics.add("orders-2");
        topics.add("refunds");
        let grown = g.heartbeat(p, &c, clock(), &topics);
        assert!(grown.member_epoch > epoch);
        let got = grown.assignment.expect("new assignment");
        assert_eq!(got.len(), 2);
        assert!(got.contains_key(&topics.id("orders-2")));
        assert_eq!(
            g.members["a"].regex_topics,
            ["orders-1", "orders-2"].map(String::from).into()
        );
    }

    #[test]
    fn regex_matches_only_describable_topics() {
        let topics = Topics::new(&["orders-1", "orders-secret"]);
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        let mut p = regex_hb("a", 0, Some("orders-.*"));
        p.describable = Some(TopicFilter::new(|t| t != "orders-secret"));
        let a = g.heartbeat(p, &c, clock(), &topics);
        let got = a.assignment.expect("assignment");
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            [topics.id("orders-1")]
        );
    }

    /// Replays `log` (encoded, decoded again) into images.
    fn replay(log: &[ConsumerRecord]) -> HashMap<String, ConsumerGroupImage> {
        let mut images = HashMap::new();
        for r in log {
            let (k, v) = r.encode();
            match crate::coordinator::records::decode(Some(&k), v.as_deref()) {
                Ok(crate::coordinator::records::Record::Consumer(r)) => {
                    ConsumerGroupImage::apply(&mut images, r)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        images
    }

    #[test]
    fn replay_restores_members_with_their_epochs() {
        let topic = Uuid::new_v4();
        let resolve = move |n: &str| (n == "t").then_some((topic, 4));
        let c = cfg();
        let mut g = ConsumerGroup::new("g".into(), &c, clock());
        let mut log = Vec::new();
        let mut beat = |g: &mut ConsumerGroup, p| {
            let out = g.heartbeat(p, &c, clock(), &resolve);
            log.extend(g.take_records());
            out
        };
        let a = beat(&mut g, hb("a", 0, Some(TopicPartitions::new())));
        let mut p = hb("b", 0, Some(TopicPartitions::new()));
        p.subscribed_topic_regex = Some("t|u".into());
        p.instance_id = Some("static-b".into());
        let b = beat(&mut g, p);
        // a is asked to revoke half: the log holds a member in UNREVOKED_PARTITIONS.
        let a2 = beat(&mut g, hb("a", a.member_epoch, a.assignment.clone()));
        assert_eq!(g.members["a"].state, Reconcile::UnrevokedPartitions);
        assert!(!log.is_empty());

        let images = replay(&log);
        assert_eq!(images.len(), 1);
        let image = images["g"].clone();
        assert_eq!(image, g.image(), "the log holds the whole state");
        let mut r = ConsumerGroup::restore("g".into(), image, &c, clock());
        assert_eq!(r.image(), g.image());
        assert_eq!(r.members["b"].subscribed_regex.as_deref(), Some("t|u"));
        assert_eq!(r.members["b"].regex_topics, ["t".to_string()].into());
        assert_eq!(
            r.static_members.get("static-b").map(String::as_str),
            Some("b")
        );
        assert!(
            r.next_deadline().is_some(),
            "restored members have sessions"
        );
        assert!(
            r.take_records().is_empty(),
            "a restored group has nothing to write"
        );
        // a confirms the revocation to the restored group and moves on, no rejoin.
        let a3 = r.heartbeat(
            hb("a", a.member_epoch, a2.assignment.clone()),
            &c,
            clock(),
            &resolve,
        );
        assert_eq!(a3.error, None);
        assert_eq!(a3.member_epoch, b.member_epoch);
        let b2 = r.heartbeat(
            hb("b", b.member_epoch, Some(TopicPartitions::new())),
            &c,
            clock(),
            &resolve,
        );
        assert_eq!((b2.error, count(&b2.assignment)), (None, 2));

        // b leaves: its three records go; deleting the group leaves nothing.
        log.extend(r.take_records());
        r.heartbeat(hb("b", -1, None), &c, clock(), &resolve);
        let leave = r.take_records();
        for kind in [8, 7, 5] {
            assert!(
                leave
                    .iter()
                    .any(|rec| rec.encode().1.is_none() && rec.encode().0[..2] == [0, kind]),
                "tombstone of key {kind}"
            );
        }
        log.extend(leave);
        let images = replay(&log);
        assert_eq!(images["g"].members.keys().collect::<Vec<_>>(), ["a"]);
        assert!(!images["g"].current.contains_key("b"));
        log.extend(records_between("g", r.persisted.as_ref(), None));
        assert!(replay(&log).is_empty(), "tombstones remove the group");
    }
}
