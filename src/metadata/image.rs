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
                self.on_fenced(id);
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
                    }),
                );
                Reply::Ok
            }
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
        }
    }

    /// A fenced broker leaves every ISR it is not the last member of, and leadership moves to
    /// the first live in-sync replica in assignment order (none: the partition is offline).
    fn on_fenced(&mut self, id: i32) {
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
                    .find(|r| p.isr.contains(r) && live.contains(r))
                    .unwrap_or(-1);
                p.leader_epoch += 1;
                changed = true;
            }
            changed
        });
    }

    /// A broker back in service rejoins the ISR of its partitions and leads those that have no
    /// leader. (Without partition replication yet, a returning replica is taken as caught up.)
    fn on_unfenced(&mut self, id: i32) {
        self.change_replicas_of(id, |p| {
            let mut changed = false;
            if !p.isr.contains(&id) {
                p.isr.push(id);
                changed = true;
            }
            if p.leader == -1 {
                p.leader = id;
                p.leader_epoch += 1;
                changed = true;
            }
            changed
        });
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
        assert_eq!(
            img.partition("t", 0).map(|p| p.isr.clone()),
            Some(vec![2, 3, 1])
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
}
