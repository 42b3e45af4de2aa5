//! What the controller proposes to the metadata log ([`Command`], one entry each, applied
//! atomically and deterministically by [`super::MetadataImage::apply`]) and what applying it
//! answers ([`Reply`]). Commands are intents checked against the image at apply time (a topic
//! created twice concurrently is refused by the second apply), so no proposer needs a lock.
//! Encoded as JSON: the log is small and snapshots keep it so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::Endpoint;

/// One metadata log entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Sets the cluster id; ignored once one is set (the first leader proposes it).
    InitCluster {
        /// Kafka's base64url cluster id.
        cluster_id: String,
    },
    /// A broker (re)starts: it gets a new epoch (the entry's index) and is unfenced.
    RegisterBroker {
        /// `node.id`.
        id: i32,
        /// Random per process start, so a restart is told apart from a retry.
        incarnation: Uuid,
        /// Its listeners as advertised to clients and to other brokers.
        endpoints: Vec<Endpoint>,
        /// `broker.rack`.
        rack: Option<String>,
    },
    /// The broker's heartbeats stopped: it leads nothing and leaves every ISR it is not the
    /// last member of. Ignored unless `epoch` is the broker's current one.
    FenceBroker {
        /// The broker.
        id: i32,
        /// Its epoch when the controller decided.
        epoch: i64,
    },
    /// A fenced broker heartbeats again.
    UnfenceBroker {
        /// The broker.
        id: i32,
        /// Its current epoch.
        epoch: i64,
    },
    /// Creates a topic with the given replica assignment (the first replica leads).
    CreateTopic {
        /// Name.
        name: String,
        /// Topic id.
        id: Uuid,
        /// Topic config overrides.
        configs: BTreeMap<String, String>,
        /// Replicas of each partition, in partition order.
        assignments: Vec<Vec<i32>>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Adds partitions to a topic (appended after the existing ones).
    CreatePartitions {
        /// Name.
        name: String,
        /// The partition count before the change, so a concurrent change is refused.
        from: i32,
        /// Replicas of each new partition.
        assignments: Vec<Vec<i32>>,
    },
    /// Sets what the Kinesis front end knows about a topic beyond Kafka's view (its stream
    /// metadata: hash-key ranges, parent shards, mode, tags, consumers), as JSON opaque to the
    /// cluster; `None` removes it. Refused (`Stale`) unless the topic exists with id `id`, so a
    /// write meant for a deleted stream never lands on a recreated one.
    SetStreamMetadata {
        /// Topic name.
        name: String,
        /// The topic id the metadata belongs to.
        id: Uuid,
        /// The JSON document, or `None`.
        json: Option<String>,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        /// Name.
        name: String,
        /// The full set of overrides.
        configs: BTreeMap<String, String>,
    },
    /// Adds ACL bindings (existing ones are kept once).
    CreateAcls {
        /// The bindings.
        bindings: Vec<crate::auth::acl::AclBinding>,
    },
    /// Removes the ACL bindings matching each filter.
    DeleteAcls {
        /// The filters.
        filters: Vec<crate::auth::acl::AclFilter>,
    },
    /// Deletes and upserts SCRAM credentials (salted, as AlterUserScramCredentials sends them).
    AlterScram {
        /// (user, mechanism) to delete.
        deletions: Vec<(String, crate::auth::scram::Mechanism)>,
        /// (user, mechanism, credential) to set.
        upsertions: Vec<(
            String,
            crate::auth::scram::Mechanism,
            crate::auth::scram::ScramCredential,
        )>,
    },
    /// Creates, renews / expires or removes delegation tokens (answers `Ok`, or `Stale` when
    /// the token it changes is gone).
    AlterTokens {
        /// The change.
        change: crate::auth::delegation::TokenChange,
    },
    /// Changes one client-quota entity (`None` removes a key).
    AlterQuota {
        /// The (user, client-id) entity.
        entity: crate::quota::Entity,
        /// Key and new value.
        ops: Vec<(String, Option<f64>)>,
    },
    /// Changes dynamic broker configs (`None` value removes a key) of one broker, or the
    /// cluster-wide default (`broker` None).
    SetBrokerConfigs {
        /// The broker, or `None` for the cluster default.
        broker: Option<i32>,
        /// Key and new value.
        changes: Vec<(String, Option<String>)>,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition): applied only if `leader`,
    /// `leader_epoch` and `partition_epoch` are still current, every added member is a live
    /// replica whose broker epoch is `epochs`' (KIP-903), and the leader stays in the ISR.
    AlterPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The proposing leader.
        leader: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The partition epoch it last saw.
        partition_epoch: i32,
        /// The new ISR with each member's broker epoch as the leader knows it (-1: unknown,
        /// accepted only for members already in the ISR).
        isr: Vec<(i32, i64)>,
    },
    /// Moves leadership of a partition (ElectLeaders, unclean election): `preferred` elects
    /// the first assigned replica if it is live and in sync; otherwise (`unclean`) a live
    /// replica outside the ISR may lead when no in-sync one is live, with the ISR reset to it.
    ElectLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Preferred (true) or unclean (false) election.
        preferred: bool,
    },
    /// Starts a replica reassignment (KIP-455) towards `target`, replacing one in progress;
    /// `None` cancels the one in progress.
    Reassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The new replica list (the first is the preferred leader).
        target: Option<Vec<i32>>,
    },
    /// Finishes a reassignment whose added replicas are all in sync (the controller proposes
    /// it; applied only if that still holds).
    CompleteReassignment {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Hands out a block of producer ids.
    AllocateProducerIds {
        /// The broker asking.
        broker: i32,
        /// How many.
        count: i64,
    },
}

/// What applying a command answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "reply", content = "data", rename_all = "snake_case")]
pub enum Reply {
    /// Done.
    Ok,
    /// A broker registration's epoch.
    BrokerEpoch {
        /// The epoch.
        epoch: i64,
    },
    /// First id of an allocated producer-id block.
    ProducerIds {
        /// First id.
        start: i64,
    },
    /// What each DeleteAcls filter removed.
    AclsDeleted {
        /// Per filter, the removed bindings.
        removed: Vec<Vec<crate::auth::acl::AclBinding>>,
    },
    /// Per SCRAM deletion, whether it removed a credential.
    ScramAltered {
        /// Per deletion.
        found: Vec<bool>,
    },
    /// The topic exists already.
    TopicExists,
    /// No such topic.
    UnknownTopic,
    /// A partition's state after AlterPartition or ElectLeader.
    Partition {
        /// Leader (-1: none).
        leader: i32,
        /// Leader epoch.
        leader_epoch: i32,
        /// Partition epoch.
        partition_epoch: i32,
        /// ISR.
        isr: Vec<i32>,
    },
    /// ElectLeader had nothing to do (the leader is already the one that would be elected).
    ElectionNotNeeded,
    /// ElectLeader found no eligible replica.
    NotEligible,
    /// The command no longer applies (epoch or partition count moved on); nothing changed.
    Stale,
    /// Refused, with the reason.
    Error(String),
}

/// A reply with the index of the entry that produced it, so the writer can wait until its own
/// node has caught up to that entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Applied {
    /// The entry's log index.
    pub index: u64,
    /// What applying it answered.
    pub reply: Reply,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_round_trips() {
        let replies = vec![
            Reply::Ok,
            Reply::BrokerEpoch { epoch: 3 },
            Reply::ProducerIds { start: 1000 },
            Reply::AclsDeleted { removed: vec![] },
            Reply::ScramAltered { found: vec![true] },
            Reply::TopicExists,
            Reply::UnknownTopic,
            Reply::Partition {
                leader: 1,
                leader_epoch: 2,
                partition_epoch: 3,
                isr: vec![1, 2],
            },
            Reply::ElectionNotNeeded,
            Reply::NotEligible,
            Reply::Stale,
            // A newtype variant: an internally tagged enum cannot carry it (it used to come
            // out empty, and proposers saw an undecodable reply).
            Reply::Error("broker 99 is not registered".into()),
        ];
        for r in replies {
            let bytes = serde_json::to_vec(&r).expect("encodes");
            let back: Reply = serde_json::from_slice(&bytes).expect("decodes");
            assert_eq!(back, r);
        }
    }
}
