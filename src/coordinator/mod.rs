//! The group coordinator: consumer-group membership (the classic JoinGroup / SyncGroup /
//! Heartbeat protocol) and committed offsets, durable in the internal topic
//! `__consumer_offsets`.
//!
//! **Ownership.** Groups are partitioned as in Kafka: group `g` belongs to partition
//! `abs(javaHashCode(g)) % offsets.topic.num.partitions` of `__consumer_offsets`. Each partition
//! has one actor task ([`partition`]) that owns its groups and nothing else, so there is no lock
//! and no global bottleneck. The actor runs on the runtime of the shard that owns the same
//! `__consumer_offsets` partition (one OS thread); it appends its records through that shard's
//! job queue. Handlers on any shard reach it with a message on a bounded channel and await a
//! oneshot reply; JoinGroup and SyncGroup replies are parked in the group until the rebalance
//! step completes. Timers (session, rebalance and initial-delay deadlines) are a per-actor
//! deadline queue driven by `tokio::time`.
//!
//! **Durability.** Offset commits, the leader's assignment, static-member replacements, groups
//! becoming empty and deletions are appended with fsync (acks=-1 semantics) before they are
//! answered or take effect; the record format is in [`records`]. KIP-848 groups write Kafka's
//! consumer-group records ([`consumer_records`]) for every change of membership, epochs and
//! assignments, and a heartbeat is answered once its group's records are durable. On start-up every partition is
//! replayed ([`Coordinator::load`]) before the listeners accept connections.
//!
//! **Transactions.** TxnOffsetCommit ([`Coordinator::txn_commit`]) writes its offsets as one
//! transactional batch of the producer; once durable they are *pending* for that producer
//! (OffsetFetch does not show them; with `require_stable` it answers UNSTABLE_OFFSET_COMMIT).
//! The producer's commit or abort marker on the same partition completes them
//! ([`Coordinator::complete_transaction`] live, the control batch on replay): committed
//! offsets replace the visible ones unless those were written later in the log.

pub mod assignor;
pub mod consumer;
mod consumer_protocol;
pub mod consumer_records;
pub mod group;
mod partition;
pub mod records;
#[cfg(test)]
mod txn_tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::context::{BrokerContext, CreateTopicError};
use crate::shard::{shard_for, ShardHandle};

use self::partition::{Command, PartitionActor};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Depth of a coordinator partition's request queue.
const QUEUE_DEPTH: usize = 1024;

/// The coordinator's settings (from the broker configuration).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.assignors`, the default first.
    pub consumer_assignors: Vec<String>,
}

impl Default for GroupConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 10080 * 60_000,
            retention_check_interval: Duration::from_millis(600_000),
            offset_metadata_max_bytes: 4096,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
            consumer_assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl From<&Config> for GroupConfig {
    fn from(c: &Config) -> Self {
        GroupConfig {
            initial_rebalance_delay: c.group_initial_rebalance_delay,
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            offsets_retention_ms: c.offsets_retention.as_millis() as i64,
            retention_check_interval: c.offsets_retention_check_interval,
            offset_metadata_max_bytes: c.offset_metadata_max_bytes,
            consumer_heartbeat_interval_ms: c.group_consumer_heartbeat_interval_ms,
            consumer_session_timeout_ms: c.group_consumer_session_timeout_ms,
            consumer_assignors: c.group_consumer_assignors.clone(),
        }
    }
}

/// The outcomes of group operations that are not success, as Kafka names them; mapped to
/// protocol error codes in `kafka::error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Empty (or otherwise invalid) group id.
    #[error("invalid group id")]
    InvalidGroupId,
    /// The coordinator is still replaying its partition.
    #[error("coordinator is loading")]
    CoordinatorLoadInProgress,
    /// The coordinator cannot serve the request now (shutting down, storage failure, group
    /// being deleted).
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// This broker no longer coordinates the group (it is shutting down).
    #[error("not coordinator")]
    NotCoordinator,
    /// The member id is not (or no longer) in the group.
    #[error("unknown member id")]
    UnknownMemberId,
    /// The request is for another generation of the group.
    #[error("illegal generation")]
    IllegalGeneration,
    /// The group is rebalancing; the member must rejoin.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// KIP-394: a new member must rejoin with the member id it was given.
    #[error("member id required")]
    MemberIdRequired,
    /// Another member with the same `group.instance.id` took over.
    #[error("fenced instance id")]
    FencedInstanceId,
    /// The member's protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's bounds.
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    /// The group does not exist.
    #[error("group id not found")]
    GroupIdNotFound,
    /// The group still has members.
    #[error("group is not empty")]
    NonEmptyGroup,
    /// The group's members still subscribe to the topic.
    #[error("group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// The commit metadata is longer than `offset.metadata.max.bytes`.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// The topic or partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// KIP-848: the member's epoch is not the current one; it must rejoin with epoch 0.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// KIP-848: a commit or fetch with an outdated member epoch.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// KIP-848: the requested server-side assignor does not exist.
    #[error("unsupported assignor")]
    UnsupportedAssignor,
    /// KIP-848: another member still holds this static instance id.
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    /// A request that misses required fields or asks for something unsupported.
    #[error("invalid request")]
    InvalidRequest,
    /// A transactional offset commit carried an older epoch than its producer's current one.
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    /// OffsetFetch with `require_stable`: a transaction holds uncommitted offsets for the
    /// partition.
    #[error("unstable offset commit")]
    UnstableOffsetCommit,
    /// KIP-848: the subscription regex does not compile.
    #[error("invalid regular expression")]
    InvalidRegularExpression,
}

/// A JoinGroup request, in plain terms.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Group id.
    pub group_id: String,
    /// Member id, empty for a new member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// `/ip` of the client.
    pub client_host: String,
    /// Session timeout in ms.
    pub session_timeout_ms: i32,
    /// Rebalance timeout in ms (the session timeout for v0).
    pub rebalance_timeout_ms: i32,
    /// Protocol type (`consumer`, `connect`, …).
    pub protocol_type: String,
    /// Protocols in preference order with the member's metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (JoinGroup v4+): a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// The error, if any.
    pub error: Option<GroupError>,
    /// Generation id (-1 on error).
    pub generation: i32,
    /// Protocol type of the group.
    pub protocol_type: Option<String>,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// The member's id (the newly assigned one for MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata; only for the leader.
    pub members: Vec<JoinedMember>,
    /// KIP-814: the leader must not compute a new assignment (static leader rejoining).
    pub skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncParams {
    /// Group id.
    pub group_id: String,
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Generation the member belongs to.
    pub generation: i32,
    /// v5: the protocol type the member expects.
    pub protocol_type: Option<String>,
    /// v5: the protocol the member expects.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member (empty for followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// The SyncGroup answer.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// The error, if any.
    pub error: Option<GroupError>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// An error answer.
    pub fn error(e: GroupError) -> SyncOutcome {
        SyncOutcome {
            error: Some(e),
            ..SyncOutcome::default()
        }
    }
}

/// One offset of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset of the next record to consume.
    pub offset: i64,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// An OffsetCommit request (topics already checked against the catalog).
#[derive(Debug, Clone)]
pub struct CommitParams {
    /// Group id.
    pub group_id: String,
    /// Member id, empty for admin/standalone commits.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Generation, -1 for admin/standalone commits.
    pub generation: i32,
    /// The offsets.
    pub offsets: Vec<CommitOffset>,
}

/// A TxnOffsetCommit request (topics already checked against the catalog): offsets that
/// stay pending until the producer's transaction marker reaches `__consumer_offsets`.
#[derive(Debug, Clone)]
pub struct TxnCommitParams {
    /// Group id.
    pub group_id: String,
    /// The producer's transactional id.
    pub transactional_id: String,
    /// Producer id of the transaction.
    pub producer_id: i64,
    /// Producer epoch of the transaction.
    pub producer_epoch: i16,
    /// Generation (v3+), -1 when absent.
    pub generation_id: i32,
    /// Member id (v3+), empty when absent.
    pub member_id: String,
    /// Static instance id (v3+).
    pub group_instance_id: Option<String>,
    /// The offsets.
    pub offsets: Vec<CommitOffset>,
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset, -1 if none.
    pub offset: i64,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Commit metadata.
    pub metadata: Option<String>,
    /// The partition's error: UNSTABLE_OFFSET_COMMIT when `require_stable` was asked and a
    /// transaction holds pending offsets for it (the offset is then -1).
    pub error: Option<GroupError>,
}

/// One group as the metrics endpoint sees it (read-only, at scrape time).
#[derive(Debug, Clone, Default)]
pub struct GroupMetrics {
    /// Group id.
    pub group_id: String,
    /// Current members (classic or KIP-848).
    pub members: usize,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// What [`Coordinator::metrics`] reports: every group with committed offsets or members, and
/// how many rebalances (generation or group-epoch bumps) the coordinator has run since start.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorMetrics {
    /// Groups, in no particular order.
    pub groups: Vec<GroupMetrics>,
    /// Rebalances completed since the broker started.
    pub rebalances: u64,
}

/// A group in a ListGroups answer.
#[derive(Debug, Clone)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (empty for groups that only hold offsets).
    pub protocol_type: String,
    /// State name.
    pub state: &'static str,
    /// `classic` or `consumer`.
    pub group_type: &'static str,
}

/// A member in a DescribeGroups answer.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (Stable only).
    pub metadata: Bytes,
    /// Assignment (Stable only).
    pub assignment: Bytes,
}

/// A DescribeGroups answer for one group; `None` from the coordinator means it does not exist.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable only).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A ConsumerGroupHeartbeat (KIP-848), in plain terms. `None` fields did not change since the
/// member's previous heartbeat.
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    /// Group id.
    pub group_id: String,
    /// Member id (chosen by the client; empty means the coordinator picks one).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving temporarily, else the current epoch.
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Rebalance timeout in ms, -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed topic regex; `Some("")` clears it.
    pub subscribed_topic_regex: Option<String>,
    /// Server-side assignor the member asks for.
    pub server_assignor: Option<String>,
    /// The partitions the member owns.
    pub owned: Option<assignor::TopicPartitions>,
    /// Client id from the request header.
    pub client_id: String,
    /// `/ip` of the client.
    pub client_host: String,
    /// With ACLs: the topics the member may DESCRIBE (its regex matches only those).
    pub describable: Option<TopicFilter>,
}

/// Which topics a caller may see, as a predicate on topic names (built by the protocol layer
/// from the caller's principal, so the coordinator needs no authorizer).
#[derive(Clone)]
pub struct TopicFilter(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl TopicFilter {
    /// A filter from a predicate.
    pub fn new(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> TopicFilter {
        TopicFilter(Arc::new(f))
    }

    /// Whether the topic passes.
    pub fn allows(&self, topic: &str) -> bool {
        (self.0)(topic)
    }
}

impl std::fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopicFilter")
    }
}

/// The ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeatOutcome {
    /// The error, if any.
    pub error: Option<GroupError>,
    /// A message for the error.
    pub error_message: Option<String>,
    /// The member id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// How often the member should heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed.
    pub assignment: Option<assignor::TopicPartitions>,
}

/// A member in a ConsumerGroupDescribe answer.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Subscribed topic regex.
    pub subscribed_regex: Option<String>,
    /// Current assignment.
    pub assignment: assignor::TopicPartitions,
    /// Target assignment.
    pub target: assignor::TopicPartitions,
}

/// A ConsumerGroupDescribe answer for one group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// State name.
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Assignor of the target assignment.
    pub assignor: String,
    /// Members.
    pub members: Vec<ConsumerMemberDescription>,
}

/// Per-item results of a request that can also fail as a whole.
pub type Results = Result<Vec<Result<(), GroupError>>, GroupError>;

/// Handle to every coordinator partition; cheap to share through [`BrokerContext`].
pub struct Coordinator {
    partitions: Vec<mpsc::Sender<Command>>,
    config: GroupConfig,
    /// Which partitions this node coordinates: all of them on a single node; in a cluster,
    /// those whose `__consumer_offsets` partition this node leads and has loaded. Requests for
    /// the others answer NOT_COORDINATOR.
    leading: Arc<[std::sync::atomic::AtomicBool]>,
}

/// Errors of coordinator start-up.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// `__consumer_offsets` could not be created.
    #[error("cannot create {OFFSETS_TOPIC}: {0}")]
    CreateTopic(#[from] CreateTopicError),
    /// A partition could not be replayed.
    #[error("cannot load {OFFSETS_TOPIC}-{partition}: {reason}")]
    Load {
        /// The partition.
        partition: i32,
        /// What failed.
        reason: String,
    },
}

/// Kafka's `String.hashCode` of a group id (UTF-16 code units, wrapping arithmetic).
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

impl Coordinator {
    /// Starts one actor per `__consumer_offsets` partition on the shard that owns it. The actors
    /// answer nothing until [`Coordinator::load`] has replayed their partitions.
    pub fn start(
        shards: &Arc<[ShardHandle]>,
        catalog: Arc<Catalog>,
        config: GroupConfig,
        partitions: i32,
        lead_all: bool,
    ) -> Self {
        let partitions = partitions.max(1);
        let mut senders = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let shard = shards[shard_for(OFFSETS_TOPIC, p, shards.len())].clone();
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let actor = PartitionActor::new(
                p,
                shard.clone(),
                catalog.clone(),
                config.clone(),
                tx.downgrade(),
            );
            shard.spawn(actor.run(rx));
            senders.push(tx);
        }
        Coordinator {
            partitions: senders,
            config,
            leading: (0..partitions)
                .map(|_| std::sync::atomic::AtomicBool::new(lead_all))
                .collect(),
        }
    }

    /// Whether this node coordinates the groups of `partition`.
    pub fn is_leading(&self, partition: i32) -> bool {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.leading.get(p))
            .is_some_and(|l| l.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Starts or stops coordinating the groups of `partition` (cluster mode).
    pub fn set_leading(&self, partition: i32, leading: bool) {
        if let Some(l) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.leading.get(p))
        {
            l.store(leading, std::sync::atomic::Ordering::Release);
        }
    }

    /// Replays one partition; returns the number of groups loaded. A partition loads once:
    /// a second call answers at once.
    pub async fn load_partition(&self, partition: i32) -> Result<usize, CoordinatorError> {
        let tx = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
            .ok_or_else(|| CoordinatorError::Load {
                partition,
                reason: "no such partition".into(),
            })?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Load(reply))
            .await
            .map_err(|_| CoordinatorError::Load {
                partition,
                reason: "actor stopped".into(),
            })?;
        rx.await
            .unwrap_or_else(|_| Err("actor stopped".into()))
            .map_err(|reason| CoordinatorError::Load { partition, reason })
    }

    /// Forgets one partition's groups (leadership moved to another broker); a later
    /// [`Coordinator::load_partition`] replays it again.
    pub async fn unload_partition(&self, partition: i32) {
        let Some(tx) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
        else {
            return;
        };
        let (reply, rx) = oneshot::channel();
        if tx.send(Command::Unload(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The coordinator's settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Number of `__consumer_offsets` partitions.
    pub fn num_partitions(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// The `__consumer_offsets` partition of a group (Kafka's mapping).
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let h = java_hash(group_id);
        let abs = if h == i32::MIN { 0 } else { h.abs() };
        abs % self.num_partitions()
    }

    /// Shutdown: every coordinator partition answers its parked JoinGroup and SyncGroup
    /// requests with NOT_COORDINATOR (clients look for the coordinator again and retry) and
    /// stops serving, so in-flight requests do not hold the shutdown up.
    pub async fn shutdown(&self) {
        let mut pending = Vec::with_capacity(self.partitions.len());
        for tx in &self.partitions {
            let (reply, rx) = oneshot::channel();
            if tx.send(Command::Shutdown(reply)).await.is_ok() {
                pending.push(rx);
            }
        }
        for rx in pending {
            let _ = rx.await;
        }
    }

    /// Replays every partition (in parallel); returns the number of groups loaded.
    pub async fn load(&self) -> Result<usize, CoordinatorError> {
        let mut pending = Vec::with_capacity(self.partitions.len());
        for (p, tx) in self.partitions.iter().enumerate() {
            let (reply, rx) = oneshot::channel();
            let sent = tx.send(Command::Load(reply)).await;
            pending.push((p as i32, sent.map(|_| rx)));
        }
        let mut groups = 0;
        for (partition, rx) in pending {
            let loaded = match rx {
                Ok(rx) => rx.await.unwrap_or_else(|_| Err("actor stopped".into())),
                Err(_) => Err("actor stopped".into()),
            };
            groups += loaded.map_err(|reason| CoordinatorError::Load { partition, reason })?;
        }
        Ok(groups)
    }

    async fn ask<T>(
        &self,
        group_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, GroupError> {
        let partition = self.partition_for(group_id);
        if !self.is_leading(partition) {
            return Err(GroupError::NotCoordinator);
        }
        let tx = &self.partitions[partition as usize];
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        rx.await.map_err(|_| GroupError::CoordinatorNotAvailable)
    }

    fn check_group_id(group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            Err(GroupError::InvalidGroupId)
        } else {
            Ok(())
        }
    }

    /// JoinGroup; resolves when the join phase completes (or at once for errors and the
    /// MEMBER_ID_REQUIRED round).
    pub async fn join(&self, p: JoinParams) -> JoinOutcome {
        let fail = |e, member_id: &str| JoinOutcome {
            error: Some(e),
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinOutcome::default()
        };
        if let Err(e) = Self::check_group_id(&p.group_id) {
            return fail(e, &p.member_id);
        }
        if p.session_timeout_ms < self.config.min_session_timeout_ms
            || p.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout, &p.member_id);
        }
        let member_id = p.member_id.clone();
        let group_id = p.group_id.clone();
        self.ask(&group_id, |r| Command::Join(p, r))
            .await
            .unwrap_or_else(|e| fail(e, &member_id))
    }

    /// SyncGroup; resolves when the leader's assignment is durable.
    pub async fn sync(&self, p: SyncParams) -> SyncOutcome {
        if let Err(e) = Self::check_group_id(&p.group_id) {
            return SyncOutcome::error(e);
        }
        let group_id = p.group_id.clone();
        self.ask(&group_id, |r| Command::Sync(p, r))
            .await
            .unwrap_or_else(SyncOutcome::error)
    }

    /// Heartbeat.
    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<String>,
        generation: i32,
    ) -> Result<(), GroupError> {
        Self::check_group_id(group_id)?;
        let (g, m) = (group_id.to_string(), member_id.to_string());
        self.ask(group_id, |r| Command::Heartbeat {
            group_id: g,
            member_id: m,
            instance_id,
            generation,
            reply: r,
        })
        .await?
    }

    /// LeaveGroup for several members `(member id, instance id)`.
    pub async fn leave(&self, group_id: &str, members: Vec<(String, Option<String>)>) -> Results {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::Leave {
            group_id: g,
            members,
            reply: r,
        })
        .await?
    }

    /// OffsetCommit; resolves once the offsets are durable. One result per offset, in order.
    pub async fn commit(&self, p: CommitParams) -> Results {
        Self::check_group_id(&p.group_id)?;
        let group_id = p.group_id.clone();
        self.ask(&group_id, |r| Command::Commit(p, r)).await?
    }

    /// TxnOffsetCommit; resolves once the offsets are durable, as one transactional batch of
    /// the producer. They stay pending (OffsetFetch does not show them) until
    /// [`Coordinator::complete_transaction`] commits or aborts the producer's transaction.
    /// One result per offset, in order.
    pub async fn txn_commit(&self, p: TxnCommitParams) -> Results {
        Self::check_group_id(&p.group_id)?;
        let group_id = p.group_id.clone();
        self.ask(&group_id, |r| Command::TxnCommit(p, r)).await?
    }

    /// OffsetFetch: the requested partitions (every committed one for `None`). `member` (v9:
    /// member id and epoch) is checked against a KIP-848 group. With `require_stable` (v7+)
    /// a partition with pending transactional offsets answers UNSTABLE_OFFSET_COMMIT.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        member: Option<(String, i32)>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, GroupError> {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::Fetch {
            group_id: g,
            partitions,
            member,
            require_stable,
            reply: r,
        })
        .await?
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_heartbeat(&self, p: ConsumerHeartbeat) -> ConsumerHeartbeatOutcome {
        let fail = |e, p: &ConsumerHeartbeat| ConsumerHeartbeatOutcome {
            error: Some(e),
            member_id: p.member_id.clone(),
            member_epoch: p.member_epoch,
            ..ConsumerHeartbeatOutcome::default()
        };
        if let Err(e) = Self::check_group_id(&p.group_id) {
            return fail(e, &p);
        }
        let group_id = p.group_id.clone();
        let for_error = p.clone();
        self.ask(&group_id, |r| Command::ConsumerHeartbeat(p, r))
            .await
            .unwrap_or_else(|e| fail(e, &for_error))
    }

    /// ConsumerGroupDescribe for one group; GROUP_ID_NOT_FOUND unless it is a consumer group.
    pub async fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::ConsumerDescribe {
            group_id: g,
            reply: r,
        })
        .await?
    }

    /// Every group of every partition.
    pub async fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        let mut pending = Vec::with_capacity(self.partitions.len());
        for (p, tx) in self.partitions.iter().enumerate() {
            if !self.is_leading(p as i32) {
                continue;
            }
            let (reply, rx) = oneshot::channel();
            tx.send(Command::List(reply))
                .await
                .map_err(|_| GroupError::CoordinatorNotAvailable)?;
            pending.push(rx);
        }
        let mut all = Vec::new();
        for rx in pending {
            all.extend(
                rx.await
                    .map_err(|_| GroupError::CoordinatorNotAvailable)??,
            );
        }
        all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(all)
    }

    /// A read-only snapshot for the metrics endpoint: members and committed offsets of every
    /// group, and the rebalance count. Partitions still loading or stopped are left out.
    pub async fn metrics(&self) -> CoordinatorMetrics {
        let mut pending = Vec::with_capacity(self.partitions.len());
        for tx in &self.partitions {
            let (reply, rx) = oneshot::channel();
            if tx.send(Command::Metrics(reply)).await.is_ok() {
                pending.push(rx);
            }
        }
        let mut all = CoordinatorMetrics::default();
        for rx in pending {
            if let Ok(Ok(part)) = rx.await {
                all.groups.extend(part.groups);
                all.rebalances += part.rebalances;
            }
        }
        all
    }

    /// DescribeGroups for one group; `Ok(None)` if it does not exist.
    pub async fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, GroupError> {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::Describe {
            group_id: g,
            reply: r,
        })
        .await?
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets go with it.
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::Delete {
            group_id: g,
            reply: r,
        })
        .await?
    }

    /// A transaction marker (commit or abort of `producer_id`'s transaction) is durable on
    /// `__consumer_offsets` partition `partition`: the producer's pending transactional offset
    /// commits there become visible (commit) or are dropped (abort).
    /// A partition that is not loaded here (or not led by this node) ignores the call: its
    /// replay sees the marker. Resolves once the actor has applied it.
    pub async fn complete_transaction(&self, partition: i32, producer_id: i64, commit: bool) {
        if !self.is_leading(partition) {
            return;
        }
        let Some(tx) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
        else {
            return;
        };
        let (reply, rx) = oneshot::channel();
        let cmd = Command::CompleteTxn {
            producer_id,
            commit,
            reply,
        };
        if tx.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// OffsetDelete: one result per partition, in order.
    pub async fn delete_offsets(&self, group_id: &str, partitions: Vec<(String, i32)>) -> Results {
        Self::check_group_id(group_id)?;
        let g = group_id.to_string();
        self.ask(group_id, |r| Command::DeleteOffsets {
            group_id: g,
            partitions,
            reply: r,
        })
        .await?
    }
}

/// The configs of `__consumer_offsets`: Kafka's topic is compacted; until compaction exists
/// the records are kept forever rather than being deleted by time-based retention.
pub fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    [("cleanup.policy", "compact"), ("retention.ms", "-1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Start-up: creates `__consumer_offsets` if it does not exist and replays it. Runs before the
/// listeners accept connections.
pub async fn start_up(ctx: &BrokerContext) -> Result<(), CoordinatorError> {
    if ctx.catalog.get(OFFSETS_TOPIC).is_none() {
        let n = ctx.coordinator.num_partitions();
        match ctx
            .create_topic(OFFSETS_TOPIC, n, offsets_topic_configs())
            .await
        {
            Ok(_) | Err(CreateTopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let started = std::time::Instant::now();
    let groups = ctx.coordinator.load().await?;
    tracing::info!(
        groups,
        partitions = ctx.coordinator.num_partitions(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "group coordinator loaded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_kafka() {
        // Values of java.lang.String#hashCode.
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99_162_322);
        // Kafka's Utils.abs maps i32::MIN to 0; "polygenelubricants" hashes to i32::MIN.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    }
}
