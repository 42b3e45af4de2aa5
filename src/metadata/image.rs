//! The metadata image: brokers with their registrations, topics with their partitions
//! (replicas, leader, ISR, leader epoch) and the producer-id counter, as of one applied log
//! index. [`MetadataImage::apply`] is the only writer and is deterministic, so every node that
//! applies the same log holds the same image; a snapshot is the image serialized.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{Command, Reply};

/// A listener of a broker as others reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`, `SSL`, ...).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

/// A registered broker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub id: i32,
    /// The epoch of its current registration (the index of the registering entry).
    pub epoch: i64,
    /// The process incarnation that registered.
    pub incarnation: Uuid,
    /// Advertised listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of Metadata.
    pub fenced: bool,
}

/// One partition's replication state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionImage {
    /// Assigned replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The leader, -1 when none is available.
    pub leader: i32,
    /// Bumped whenever the leader changes.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition.
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas being added (they are in `replicas`
    /// already and join the ISR once caught up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas to drop once every added one is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionImage {
    /// The replicas a reassignment in progress leads to (the current ones without it).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A topic.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Partitions in order.
    pub partitions: Vec<PartitionImage>,
    /// The Kinesis stream metadata of the topic (JSON, opaque here), if Kinesis stored any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Arc<str>>,
}

/// The whole image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// The cluster id (set by the first leader).
    pub cluster_id: Option<String>,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Next producer id to hand out.
    pub next_producer_id: i64,
    /// ACL bindings.
    #[serde(default)]
    pub acls: std::collections::BTreeSet<crate::auth::acl::AclBinding>,
    /// SCRAM credentials.
    #[serde(default)]
    pub scram: crate::auth::scram::Users,
    /// Delegation tokens by id (without their HMACs).
    #[serde(default)]
    pub tokens: crate::auth::delegation::Tokens,
    /// Client quotas, by entity (a list: JSON maps need string keys).
    #[serde(default)]
    pub quotas: Vec<(crate::quota::Entity, BTreeMap<String, f64>)>,
    /// Dynamic broker configs by broker id; [`CLUSTER_DEFAULT`] holds the cluster-wide default.
    #[serde(default)]
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
}

/// The key of the cluster-wide default in [`MetadataImage::broker_configs`].
pub const CLUSTER_DEFAULT: i32 = -1;

impl MetadataImage {
    /// Brokers that are registered and not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether a broker is registered and unfenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == *id)
    }

    /// The dynamic broker configs in force on `broker`: the cluster default overlaid with its own.
    pub fn effective_broker_configs(&self, broker: i32) -> BTreeMap<String, String> {
        let mut all = self
            .broker_configs
            .get(&CLUSTER_DEFAULT)
            .cloned()
            .unwrap_or_default();
        if let Some(own) = self.broker_configs.get(&broker) {
            all.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all
    }

    /// A partition's state.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        let t = self.topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?)
    }

    /// Whether replication of `partition` to `replica` is throttled (a replica move): the
    /// topic's `list_key` (`leader.` or `follower.replication.throttled.replicas`) names the
    /// partition on `broker`, and `replica` is not in the ISR (in-sync replicas never are).
    pub fn replica_throttled(
        &self,
        topic: &str,
        partition: i32,
        list_key: &str,
        broker: i32,
        replica: i32,
    ) -> bool {
        let Some(t) = self.topics.get(topic) else {
            return false;
        };
        t.configs
            .get(list_key)
            .is_some_and(|l| crate::topic_config::throttled(l, partition, broker))
            && self
                .partition(topic, partition)
                .is_some_and(|p| !p.isr.contains(&replica))
    }

    /// Total partitions over all topics (placement starts new topics where the last left off).
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Applies one committed command at `index`.
    pub fn apply(&mut self, index: u64, cmd: Command) -> Reply {
        self.applied_index = index;
        match cmd {
            Command::InitCluster { cluster_id } => {
                self.cluster_id.get_or_insert(cluster_id);
                Reply::Ok
            }
            Command::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
            } => {
                let epoch = index as i64;
                let restarted = self.brokers.contains_key(&id);
                self.brokers.insert(
                    id,
                    BrokerRegistration {
                        id,
                        epoch,
                        incarnation,
                        endpoints,
                        rack,
                        fenced: false,
                    },
                );
                if restarted {
                    // The old process is gone: whatever it held in memory is too, so it leaves
                    // the ISRs and what it led gets a new leader epoch.
                    self.step_down(id);
                }
                self.on_unfenced(id);
                Reply::BrokerEpoch { epoch }
            }
            Command::FenceBroker { id, epoch } => {
                let Some(b) = self.brokers.get_mut(&id) else {
                    return Reply::Stale;
                };
                if b.epoch != epoch || b.fenced {
                    return Reply::Stale;
                }
                b.fenced = true;
                self.step_down(id);
                Reply::Ok
            }
            Command::UnfenceBroker { id, epoch } => {
                let Some(b) = self.brokers.get_mut(&id) else {
                    return Reply::Stale;
                };
                if b.epoch != epoch || !b.fenced {
                    return Reply::Stale;
                }
                b.fenced = false;
                self.on_unfenced(id);
                Reply::Ok
            }
            Command::CreateTopic {
                name,
                id,
                configs,
                assignments,
            } => {
                if self.topics.contains_key(&name) {
                    return Reply::TopicExists;
                }
                let partitions = assignments
                    .into_iter()
                    .map(|r| self.new_partition(r))
                    .collect();
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name,
                        id,
                        configs,
                        partitions,
                        stream: None,
                    }),
                );
                Reply::Ok
            }
            Command::SetStreamMetadata { name, id, json } => match self.topics.get_mut(&name) {
                None => Reply::UnknownTopic,
                Some(t) if t.id != id => Reply::Stale,
                Some(t) => {
                    Arc::make_mut(t).stream = json.map(Arc::from);
                    Reply::Ok
                }
            },
            Command::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => Reply::Ok,
                None => Reply::UnknownTopic,
            },
            Command::CreatePartitions {
                name,
                from,
                assignments,
            } => {
                let Some(t) = self.topics.get(&name) else {
                    return Reply::UnknownTopic;
                };
                if t.partitions.len() != from as usize {
                    return Reply::Stale;
                }
                let new: Vec<PartitionImage> = assignments
                    .into_iter()
                    .map(|r| self.new_partition(r))
                    .collect();
                if let Some(t) = self.topics.get_mut(&name) {
                    Arc::make_mut(t).partitions.extend(new);
                }
                Reply::Ok
            }
            Command::SetTopicConfigs { name, configs } => match self.topics.get_mut(&name) {
                Some(t) => {
                    Arc::make_mut(t).configs = configs;
                    Reply::Ok
                }
                None => Reply::UnknownTopic,
            },
            Command::CreateAcls { bindings } => {
                self.acls.extend(bindings);
                Reply::Ok
            }
            Command::DeleteAcls { filters } => {
                let removed = filters
                    .iter()
                    .map(|f| {
                        let gone: Vec<_> =
                            self.acls.iter().filter(|b| f.matches(b)).cloned().collect();
                        for b in &gone {
                            self.acls.remove(b);
                        }
                        gone
                    })
                    .collect();
                Reply::AclsDeleted { removed }
            }
            Command::AlterScram {
                deletions,
                upsertions,
            } => Reply::ScramAltered {
                found: crate::auth::scram::apply_alterations(
                    &mut self.scram,
                    &deletions,
                    upsertions,
                ),
            },
            Command::AlterTokens { change } => {
                if crate::auth::delegation::apply_change(&mut self.tokens, change) {
                    Reply::Ok
                } else {
                    Reply::Stale
                }
            }
            Command::AlterQuota { entity, ops } => {
                let mut all: BTreeMap<_, _> =
                    std::mem::take(&mut self.quotas).into_iter().collect();
                crate::quota::apply_alteration(&mut all, entity, &ops);
                self.quotas = all.into_iter().collect();
                Reply::Ok
            }
            Command::SetBrokerConfigs { broker, changes } => {
                let key = broker.unwrap_or(CLUSTER_DEFAULT);
                let values = self.broker_configs.entry(key).or_default();
                for (k, v) in changes {
                    match v {
                        Some(v) => values.insert(k, v),
                        None => values.remove(&k),
                    };
                }
                if values.is_empty() {
                    self.broker_configs.remove(&key);
                }
                Reply::Ok
            }
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                &topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                &isr,
            ),
            Command::ElectLeader {
                topic,
                partition,
                preferred,
            } => self.elect_leader(&topic, partition, preferred),
            Command::Reassign {
                topic,
                partition,
                target,
            } => self.reassign(&topic, partition, target),
            Command::CompleteReassignment { topic, partition } => {
                self.complete_reassignment(&topic, partition)
            }
            Command::AllocateProducerIds { count, .. } => {
                let start = self.next_producer_id;
                self.next_producer_id = start.saturating_add(count.max(1));
                Reply::ProducerIds { start }
            }
        }
    }

    /// A new partition: every live replica in sync, the first live one leading.
    fn new_partition(&self, replicas: Vec<i32>) -> PartitionImage {
        let isr: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|r| self.is_live(*r))
            .collect();
        let leader = isr.first().copied().unwrap_or(-1);
        PartitionImage {
            isr: if isr.is_empty() {
                replicas.clone()
            } else {
                isr
            },
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// A broker back in service leads the partitions that have no leader and keep it in their
    /// ISR (it was their last in-sync replica). It rejoins other ISRs only when their leaders
    /// see it caught up (AlterPartition).
    fn on_unfenced(&mut self, id: i32) {
        self.change_replicas_of(id, |p| {
            if p.leader == -1 && p.isr.contains(&id) {
                p.leader = id;
                p.leader_epoch += 1;
                return true;
            }
            false
        });
    }

    /// `id` leaves every ISR it is not the last member of, and each partition it led gets the
    /// first other live in-sync replica in assignment order as leader (none: offline) with a
    /// new leader epoch.
    fn step_down(&mut self, id: i32) {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        self.change_replicas_of(id, |p| {
            let mut changed = false;
            if p.isr.len() > 1 && p.isr.contains(&id) {
                p.isr.retain(|r| *r != id);
                changed = true;
            }
            if p.leader == id {
                p.leader = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != id && p.isr.contains(r) && live.contains(r))
                    .unwrap_or(-1);
                p.leader_epoch += 1;
                changed = true;
            }
            changed
        });
    }

    /// [`Command::AlterPartition`].
    fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[(i32, i64)],
    ) -> Reply {
        let live = |id: i32, epoch: i64| {
            self.brokers
                .get(&id)
                .is_some_and(|b| !b.fenced && (epoch < 0 || b.epoch == epoch))
        };
        let Some(current) = self.partition(topic, partition) else {
            return Reply::UnknownTopic;
        };
        if current.leader != leader
            || current.leader_epoch != leader_epoch
            || current.partition_epoch != partition_epoch
        {
            return Reply::Stale;
        }
        if !isr.iter().any(|(r, _)| *r == leader) {
            return Reply::Error("the leader must stay in the ISR".into());
        }
        for (r, epoch) in isr {
            if current.isr.contains(r) {
                continue;
            }
            if !current.replicas.contains(r) {
                return Reply::Error(format!("broker {r} is not a replica"));
            }
            if *epoch < 0 || !live(*r, *epoch) {
                return Reply::Error(format!("broker {r} is fenced or has a newer epoch"));
            }
        }
        let Some(p) = self.partition_mut(topic, partition) else {
            return Reply::UnknownTopic;
        };
        // Assignment order, so equal sets compare equal.
        let members: Vec<i32> = isr.iter().map(|(r, _)| *r).collect();
        p.isr = p
            .replicas
            .iter()
            .copied()
            .filter(|r| members.contains(r))
            .collect();
        p.partition_epoch += 1;
        Reply::Partition {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr.clone(),
        }
    }

    /// [`Command::ElectLeader`].
    fn elect_leader(&mut self, topic: &str, partition: i32, preferred: bool) -> Reply {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        let Some(p) = self.partition_mut(topic, partition) else {
            return Reply::UnknownTopic;
        };
        if preferred {
            let Some(&first) = p.replicas.first() else {
                return Reply::NotEligible;
            };
            if p.leader == first {
                return Reply::ElectionNotNeeded;
            }
            if !live.contains(&first) || !p.isr.contains(&first) {
                return Reply::NotEligible;
            }
            p.leader = first;
        } else {
            if p.leader != -1 {
                return Reply::ElectionNotNeeded;
            }
            if let Some(r) = p
                .replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && live.contains(r))
            {
                p.leader = r;
            } else {
                let Some(r) = p.replicas.iter().copied().find(|r| live.contains(r)) else {
                    return Reply::NotEligible;
                };
                p.leader = r;
                p.isr = vec![r];
            }
        }
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        Reply::Partition {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr.clone(),
        }
    }

    /// [`Command::Reassign`]: starts (or replaces, or with `None` cancels) a reassignment.
    fn reassign(&mut self, topic: &str, partition: i32, target: Option<Vec<i32>>) -> Reply {
        let known: Vec<i32> = self.brokers.keys().copied().collect();
        let Some(p) = self.partition_mut(topic, partition) else {
            return Reply::UnknownTopic;
        };
        // The assignment before any reassignment in progress.
        let original: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !p.adding.contains(r))
            .collect();
        let target = match target {
            None => {
                if !p.reassigning() {
                    return Reply::Error("no reassignment in progress".into());
                }
                original.clone()
            }
            Some(t) => {
                if t.is_empty() {
                    return Reply::Error("the target replica list is empty".into());
                }
                let mut seen = std::collections::BTreeSet::new();
                if !t.iter().all(|r| seen.insert(*r)) {
                    return Reply::Error("the target lists a broker twice".into());
                }
                if let Some(r) = t.iter().find(|r| !known.contains(r)) {
                    return Reply::Error(format!("broker {r} is not registered"));
                }
                t
            }
        };
        // Target first (so the preferred replica is the target's), then the rest.
        let mut replicas = target.clone();
        replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
        p.adding = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        p.removing = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        p.replicas = replicas;
        p.isr.retain(|r| target.contains(r) || original.contains(r));
        p.partition_epoch += 1;
        let done = p.adding.iter().all(|r| p.isr.contains(r));
        if done {
            return self.complete_reassignment(topic, partition);
        }
        Reply::Ok
    }

    /// [`Command::CompleteReassignment`]: once every added replica is in sync, the removed ones
    /// go (leadership moves if the leader is one of them).
    fn complete_reassignment(&mut self, topic: &str, partition: i32) -> Reply {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        let Some(p) = self.partition_mut(topic, partition) else {
            return Reply::UnknownTopic;
        };
        if !p.reassigning() {
            return Reply::Stale;
        }
        if !p.adding.iter().all(|r| p.isr.contains(r)) {
            return Reply::Stale;
        }
        let target = p.target_replicas();
        let isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|r| target.contains(r))
            .collect();
        if isr.is_empty() {
            return Reply::Stale;
        }
        p.replicas = target;
        p.isr = isr;
        p.adding.clear();
        p.removing.clear();
        if !p.replicas.contains(&p.leader) {
            p.leader = p
                .replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && live.contains(r))
                .unwrap_or(-1);
            p.leader_epoch += 1;
        }
        p.partition_epoch += 1;
        Reply::Ok
    }

    /// A partition to change (copying its topic if shared).
    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionImage> {
        let t = self.topics.get_mut(topic)?;
        Arc::make_mut(t)
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    /// Runs `change` on every partition that has `id` among its replicas (copying only the
    /// topics concerned); a partition it reports changed gets a new partition epoch.
    fn change_replicas_of(&mut self, id: i32, mut change: impl FnMut(&mut PartitionImage) -> bool) {
        for t in self.topics.values_mut() {
            if !t.partitions.iter().any(|p| p.replicas.contains(&id)) {
                continue;
            }
            for p in Arc::make_mut(t).partitions.iter_mut() {
                if p.replicas.contains(&id) && change(p) {
                    p.partition_epoch += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(img: &mut MetadataImage, index: u64, id: i32) -> i64 {
        match img.apply(
            index,
            Command::RegisterBroker {
                id,
                incarnation: Uuid::new_v4(),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9090 + id as u16,
                }],
                rack: None,
            },
        ) {
            Reply::BrokerEpoch { epoch } => epoch,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn stream_metadata_follows_its_topic() {
        let mut img = MetadataImage::default();
        register(&mut img, 1, 1);
        let id = Uuid::new_v4();
        let set = |id, json: Option<&str>| Command::SetStreamMetadata {
            name: "s".into(),
            id,
            json: json.map(str::to_string),
        };
        assert_eq!(img.apply(2, set(id, Some("{}"))), Reply::UnknownTopic);
        let create = Command::CreateTopic {
            name: "s".into(),
            id,
            configs: BTreeMap::new(),
            assignments: vec![vec![1]],
        };
        assert_eq!(img.apply(3, create), Reply::Ok);
        assert_eq!(img.apply(4, set(id, Some("{\"a\":1}"))), Reply::Ok);
        assert_eq!(img.topics["s"].stream.as_deref(), Some("{\"a\":1}"));
        // Meant for another incarnation of the topic: refused.
        assert_eq!(img.apply(5, set(Uuid::new_v4(), None)), Reply::Stale);
        assert!(img.topics["s"].stream.is_some());
        // Kept in snapshots.
        let restored: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
        assert_eq!(restored, img);
        // Gone with the topic: a recreated topic starts without.
        img.apply(6, Command::DeleteTopic { name: "s".into() });
        let create = Command::CreateTopic {
            name: "s".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignments: vec![vec![1]],
        };
        assert_eq!(img.apply(7, create), Reply::Ok);
        assert!(img.topics["s"].stream.is_none());
    }

    #[test]
    fn fence_moves_leaders_and_unfence_restores() {
        let mut img = MetadataImage::default();
        let e1 = register(&mut img, 1, 1);
        register(&mut img, 2, 2);
        register(&mut img, 3, 3);
        let create = Command::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
        };
        assert_eq!(img.apply(4, create.clone()), Reply::Ok);
        assert_eq!(img.apply(5, create), Reply::TopicExists);
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(1));
        // A stale epoch changes nothing.
        assert_eq!(
            img.apply(
                6,
                Command::FenceBroker {
                    id: 1,
                    epoch: e1 + 100
                }
            ),
            Reply::Stale
        );
        assert_eq!(
            img.apply(7, Command::FenceBroker { id: 1, epoch: e1 }),
            Reply::Ok
        );
        let p0 = img.partition("t", 0).cloned().expect("p0");
        assert_eq!(p0.leader, 2);
        assert_eq!(p0.leader_epoch, 1);
        assert_eq!(p0.isr, vec![2, 3]);
        assert_eq!(img.partition("t", 1).map(|p| p.leader), Some(2));
        assert!(!img.is_live(1));
        assert_eq!(
            img.apply(8, Command::UnfenceBroker { id: 1, epoch: e1 }),
            Reply::Ok
        );
        // Back in service is not back in sync: the leader adds it with AlterPartition.
        assert_eq!(
            img.partition("t", 0).map(|p| p.isr.clone()),
            Some(vec![2, 3])
        );
        // Epochs are the registering index.
        assert_eq!(img.brokers[&1].epoch, 1);
        // Snapshots round-trip.
        let bytes = serde_json::to_vec(&img).expect("encode");
        let back: MetadataImage = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, img);
    }

    #[test]
    fn last_isr_member_fenced_goes_offline_and_returns() {
        let mut img = MetadataImage::default();
        let e1 = register(&mut img, 1, 1);
        img.apply(
            2,
            Command::CreateTopic {
                name: "solo".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1]],
            },
        );
        img.apply(3, Command::FenceBroker { id: 1, epoch: e1 });
        assert_eq!(img.partition("solo", 0).map(|p| p.leader), Some(-1));
        assert_eq!(
            img.partition("solo", 0).map(|p| p.isr.clone()),
            Some(vec![1])
        );
        img.apply(4, Command::UnfenceBroker { id: 1, epoch: e1 });
        assert_eq!(img.partition("solo", 0).map(|p| p.leader), Some(1));
    }

    #[test]
    fn partitions_and_producer_ids() {
        let mut img = MetadataImage::default();
        register(&mut img, 1, 1);
        img.apply(
            2,
            Command::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1]],
            },
        );
        let add = Command::CreatePartitions {
            name: "t".into(),
            from: 1,
            assignments: vec![vec![1], vec![1]],
        };
        assert_eq!(img.apply(3, add.clone()), Reply::Ok);
        assert_eq!(img.apply(4, add), Reply::Stale);
        assert_eq!(img.topics["t"].partitions.len(), 3);
        let alloc = Command::AllocateProducerIds {
            broker: 1,
            count: 1000,
        };
        assert_eq!(img.apply(5, alloc.clone()), Reply::ProducerIds { start: 0 });
        assert_eq!(img.apply(6, alloc), Reply::ProducerIds { start: 1000 });
        assert_eq!(
            img.apply(7, Command::DeleteTopic { name: "t".into() }),
            Reply::Ok
        );
        assert_eq!(
            img.apply(8, Command::DeleteTopic { name: "t".into() }),
            Reply::UnknownTopic
        );
    }

    #[test]
    fn delegation_tokens_follow_the_log_and_the_snapshot() {
        use crate::auth::delegation::{TokenChange, TokenInfo};
        use crate::auth::Principal;
        let mut img = MetadataImage::default();
        let t = TokenInfo {
            token_id: "tok".into(),
            owner: Principal::user("alice"),
            requester: Principal::user("admin"),
            renewers: vec![Principal::user("bob")],
            issue_timestamp_ms: 1,
            expiry_timestamp_ms: 10,
            max_timestamp_ms: 100,
        };
        let create = Command::AlterTokens {
            change: TokenChange::Create(t.clone()),
        };
        // Commands travel as JSON in the log.
        let create: Command =
            serde_json::from_slice(&serde_json::to_vec(&create).unwrap()).unwrap();
        assert_eq!(img.apply(1, create.clone()), Reply::Ok);
        assert_eq!(img.apply(2, create), Reply::Stale, "ids are unique");
        let renew = Command::AlterTokens {
            change: TokenChange::SetExpiry {
                token_id: "tok".into(),
                expiry_timestamp_ms: 50,
            },
        };
        assert_eq!(img.apply(3, renew.clone()), Reply::Ok);
        assert_eq!(img.tokens["tok"].expiry_timestamp_ms, 50);
        let snapshot: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
        assert_eq!(snapshot.tokens, img.tokens);
        let remove = Command::AlterTokens {
            change: TokenChange::Remove {
                token_ids: vec!["tok".into()],
            },
        };
        assert_eq!(img.apply(4, remove), Reply::Ok);
        assert!(img.tokens.is_empty());
        // A renewal racing the removal changes nothing.
        assert_eq!(img.apply(5, renew), Reply::Stale);
        assert!(img.tokens.is_empty());
    }

    #[test]
    fn acls_scram_and_quotas_follow_the_log() {
        use crate::auth::acl::{AclBinding, AclFilter};
        use crate::auth::scram::{Mechanism, ScramCredential};
        let mut img = MetadataImage::default();
        // Topic (2), LITERAL (3), READ (3), ALLOW (3).
        let b = AclBinding::from_wire(2, "t", 3, "User:alice", "*", 3, 3).expect("binding");
        img.apply(
            1,
            Command::CreateAcls {
                bindings: vec![b.clone(), b.clone()],
            },
        );
        assert_eq!(img.acls.len(), 1);
        let all = AclFilter::from_wire(1, None, 1, None, None, 1, 1).expect("filter");
        assert_eq!(
            img.apply(
                2,
                Command::DeleteAcls {
                    filters: vec![all.clone(), all]
                }
            ),
            Reply::AclsDeleted {
                removed: vec![vec![b], vec![]]
            }
        );
        let cred = ScramCredential::from_password(Mechanism::Sha256, "pw", b"salt", 4096);
        let set = Command::AlterScram {
            deletions: vec![],
            upsertions: vec![("bob".into(), Mechanism::Sha256, cred)],
        };
        img.apply(3, set);
        let del = Command::AlterScram {
            deletions: vec![
                ("bob".into(), Mechanism::Sha256),
                ("bob".into(), Mechanism::Sha512),
            ],
            upsertions: vec![],
        };
        assert_eq!(
            img.apply(4, del),
            Reply::ScramAltered {
                found: vec![true, false]
            }
        );
        assert!(img.scram.is_empty());
        let entity = crate::quota::Entity {
            user: Some(Some("u".into())),
            client_id: None,
        };
        img.apply(
            5,
            Command::AlterQuota {
                entity: entity.clone(),
                ops: vec![("producer_byte_rate".into(), Some(1024.0))],
            },
        );
        assert_eq!(img.quotas.len(), 1);
        img.apply(
            6,
            Command::AlterQuota {
                entity,
                ops: vec![("producer_byte_rate".into(), None)],
            },
        );
        assert!(img.quotas.is_empty());
        // Snapshots carry them.
        let back: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&img).expect("encode")).expect("decode");
        assert_eq!(back, img);
    }

    #[test]
    fn broker_configs_default_and_per_broker() {
        let mut img = MetadataImage::default();
        let set = |broker, k: &str, v: Option<&str>| Command::SetBrokerConfigs {
            broker,
            changes: vec![(k.to_string(), v.map(str::to_string))],
        };
        img.apply(1, set(None, "log.retention.ms", Some("1000")));
        img.apply(2, set(Some(2), "log.retention.ms", Some("2000")));
        img.apply(3, set(Some(2), "message.max.bytes", Some("5000")));
        assert_eq!(img.effective_broker_configs(1)["log.retention.ms"], "1000");
        let two = img.effective_broker_configs(2);
        assert_eq!(two["log.retention.ms"], "2000");
        assert_eq!(two["message.max.bytes"], "5000");
        img.apply(4, set(Some(2), "log.retention.ms", None));
        img.apply(5, set(Some(2), "message.max.bytes", None));
        assert!(!img.broker_configs.contains_key(&2));
        assert_eq!(img.effective_broker_configs(2)["log.retention.ms"], "1000");
    }

    #[test]
    fn alter_partition_checks_epochs_and_members() {
        let mut img = MetadataImage::default();
        let e1 = register(&mut img, 1, 1);
        let e2 = register(&mut img, 2, 2);
        let e3 = register(&mut img, 3, 3);
        img.apply(
            4,
            Command::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1, 2, 3]],
            },
        );
        let alter = |leader_epoch, partition_epoch, isr: Vec<(i32, i64)>| Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch,
            partition_epoch,
            isr,
        };
        // Shrink to {1, 3}.
        assert!(matches!(
            img.apply(5, alter(0, 0, vec![(1, e1), (3, -1)])),
            Reply::Partition {
                partition_epoch: 1,
                ..
            }
        ));
        assert_eq!(
            img.partition("t", 0).map(|p| p.isr.clone()),
            Some(vec![1, 3])
        );
        // A stale partition epoch or leader epoch changes nothing.
        assert_eq!(img.apply(6, alter(0, 0, vec![(1, e1)])), Reply::Stale);
        assert_eq!(img.apply(7, alter(1, 1, vec![(1, e1)])), Reply::Stale);
        // Adding needs the member's current broker epoch (KIP-903).
        assert!(matches!(
            img.apply(8, alter(0, 1, vec![(1, e1), (2, e2 + 1), (3, e3)])),
            Reply::Error(_)
        ));
        assert!(matches!(
            img.apply(9, alter(0, 1, vec![(3, e3), (2, e2), (1, e1)])),
            Reply::Partition {
                partition_epoch: 2,
                ..
            }
        ));
        assert_eq!(
            img.partition("t", 0).map(|p| p.isr.clone()),
            Some(vec![1, 2, 3])
        );
        // The leader cannot leave.
        assert!(matches!(
            img.apply(10, alter(0, 2, vec![(2, e2)])),
            Reply::Error(_)
        ));
    }

    #[test]
    fn restart_leaves_isr_and_bumps_leader_epoch() {
        let mut img = MetadataImage::default();
        register(&mut img, 1, 1);
        register(&mut img, 2, 2);
        img.apply(
            3,
            Command::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1, 2], vec![2, 1]],
            },
        );
        // Broker 1 restarts before anyone fenced it.
        register(&mut img, 4, 1);
        let p0 = img.partition("t", 0).cloned().expect("p0");
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr), (2, 1, vec![2]));
        let p1 = img.partition("t", 1).cloned().expect("p1");
        assert_eq!((p1.leader, p1.leader_epoch, p1.isr), (2, 0, vec![2]));
        // Last in-sync replica restarting leads again, with a new epoch.
        register(&mut img, 5, 2);
        let p0 = img.partition("t", 0).cloned().expect("p0");
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr), (2, 3, vec![2]));
    }

    #[test]
    fn elections_preferred_and_unclean() {
        let mut img = MetadataImage::default();
        let e1 = register(&mut img, 1, 1);
        let e2 = register(&mut img, 2, 2);
        img.apply(
            3,
            Command::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments: vec![vec![1, 2]],
            },
        );
        let elect = |preferred| Command::ElectLeader {
            topic: "t".into(),
            partition: 0,
            preferred,
        };
        assert_eq!(img.apply(4, elect(true)), Reply::ElectionNotNeeded);
        img.apply(5, Command::FenceBroker { id: 1, epoch: e1 });
        img.apply(6, Command::UnfenceBroker { id: 1, epoch: e1 });
        // Not in sync yet: not eligible.
        assert_eq!(img.apply(7, elect(true)), Reply::NotEligible);
        img.apply(
            8,
            Command::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader: 2,
                leader_epoch: 1,
                partition_epoch: 1,
                isr: vec![(2, e2), (1, e1)],
            },
        );
        assert!(matches!(
            img.apply(9, elect(true)),
            Reply::Partition {
                leader: 1,
                leader_epoch: 2,
                ..
            }
        ));
        // Both fenced: offline with ISR {2}; unclean election of 1 once it is back.
        img.apply(10, Command::FenceBroker { id: 1, epoch: e1 });
        img.apply(11, Command::FenceBroker { id: 2, epoch: e2 });
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(-1));
        img.apply(12, Command::UnfenceBroker { id: 1, epoch: e1 });
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(-1));
        assert!(matches!(
            img.apply(13, elect(false)),
            Reply::Partition { leader: 1, .. }
        ));
        assert_eq!(img.partition("t", 0).map(|p| p.isr.clone()), Some(vec![1]));
    }
}
