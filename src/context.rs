//! The shared context of the request handlers: [`BrokerContext`] holds the configuration, the
//! topic catalog, the shard handles, the coordinator, security, quotas, metrics and, in a
//! cluster, the controller; its methods are the operations that span them (creating and
//! deleting topics, configs, ACLs, SCRAM users, quotas, producer ids, leadership checks), each
//! done locally on a single node or through the metadata log in a cluster. Front ends
//! (`kafka`, `kinesis`, `coordinator`, `metrics`) take it from here; `broker.rs` only builds it
//! at start-up and takes it apart at shutdown.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::acl::{AclBinding, AclFilter};
use crate::auth::scram::{Mechanism, ScramCredential};
use crate::catalog::{self, Catalog, TopicMeta, TopicNameError};
use crate::config::Config;
use crate::dynamic_config::{DynamicConfigError, DynamicConfigs, Layer};
use crate::metadata::{Command, Reply};
use crate::shard::{shard_for, ShardHandle, ShardState, StorageError};

/// Why a topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    /// The name breaks Kafka's rules.
    #[error(transparent)]
    InvalidName(#[from] TopicNameError),
    /// A topic of that name exists.
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// The partition count is not positive.
    #[error("number of partitions must be larger than 0")]
    InvalidPartitions,
    /// Storage failed while creating the partitions.
    #[error("cannot create partition: {0}")]
    Storage(String),
    /// More replicas than brokers, or a replication factor below 1.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// An explicit replica assignment that cannot be used.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// The metadata quorum could not take the change.
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::controller::ControllerError> for CreateTopicError {
    fn from(e: crate::controller::ControllerError) -> Self {
        use crate::controller::{ControllerError as C, PlacementError as P};
        match e {
            C::TopicExists(n) => CreateTopicError::AlreadyExists(n),
            C::Placement(p @ P::ReplicationFactor { .. }) => {
                CreateTopicError::InvalidReplicationFactor(p.to_string())
            }
            C::Placement(p @ P::Assignment(_)) => {
                CreateTopicError::InvalidReplicaAssignment(p.to_string())
            }
            other => CreateTopicError::Unavailable(other.to_string()),
        }
    }
}

/// A partition this node does not lead: who does, as far as the metadata image knows.
#[derive(Debug, Clone)]
pub struct NotLeader {
    /// The leader's id, -1 if none.
    pub leader_id: i32,
    /// The leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// The leader's endpoint on the listener of the request, if known.
    pub endpoint: Option<(String, i32)>,
}

/// State shared by every connection and handler.
pub struct BrokerContext {
    /// The configuration the broker started with.
    pub config: Config,
    /// The topics.
    pub catalog: Arc<Catalog>,
    /// The shards, indexed by id.
    pub shards: Arc<[ShardHandle]>,
    /// Cluster id from `meta.properties`.
    pub cluster_id: String,
    /// Host and port advertised to clients in Metadata.
    pub advertised: (String, i32),
    /// Producer id allocation (InitProducerId).
    pub producer_ids: crate::producer_ids::ProducerIds,
    /// Client quotas (DescribeClientQuotas / AlterClientQuotas) and their rate meters.
    pub quotas: crate::quota::Quotas,
    /// Client telemetry (KIP-714): client metrics resources and pushed client metrics.
    pub telemetry: crate::telemetry::ClientTelemetry,
    /// The group coordinator (consumer groups and committed offsets).
    pub coordinator: crate::coordinator::Coordinator,
    /// The transaction coordinator (transactional ids, `__transaction_state`).
    pub transactions: crate::txn::TxnCoordinator,
    /// SASL settings, SCRAM credentials and the ACL authorizer.
    pub security: crate::auth::Security,
    /// Every exported metric (see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Connection limits, the request queue bound and the request memory pool.
    pub net: crate::net::limits::NetLimits,
    /// The controller of a cluster node; `None` for the single-node broker.
    pub cluster: Option<Arc<crate::controller::Controller>>,
    /// The metadata index this node's catalog and logs have caught up with (cluster only).
    pub synced: watch::Receiver<u64>,
    /// The producer-id block handed to this node by the controller: (next, end).
    pub(crate) cluster_producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Replication throttles of replica moves (cluster).
    pub replication_throttles: crate::replication::throttle::Throttles,
}

impl BrokerContext {
    /// The shard that owns a partition.
    pub fn shard(&self, topic: &str, partition: i32) -> &ShardHandle {
        &self.shards[shard_for(topic, partition, self.shards.len())]
    }

    /// Creates a topic with the default replication factor (see [`Self::create_topic_with`]).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, CreateTopicError> {
        self.create_topic_with(name, partitions, None, None, configs, false)
            .await?
            .ok_or_else(|| CreateTopicError::Unavailable("topic not visible after creation".into()))
    }

    /// Creates a topic (`None` when `validate_only`). On a single node the replication factor
    /// must be 1 and the topic is created here; in a cluster the controller places the
    /// replicas (`rf` None: `default.replication.factor`; or the explicit `assignments`) and
    /// this returns once this node has applied the change.
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        rf: Option<i16>,
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<TopicMeta>, CreateTopicError> {
        catalog::validate_topic_name(name)?;
        let partitions = assignments.as_ref().map_or(partitions, |a| a.len() as i32);
        if partitions < 1 {
            return Err(CreateTopicError::InvalidPartitions);
        }
        let Some(cluster) = &self.cluster else {
            let node = self.config.node_id;
            if let Some(rf) = rf.filter(|rf| *rf != 1) {
                return Err(CreateTopicError::InvalidReplicationFactor(format!(
                    "replication factor {rf} is larger than the number of brokers (1)"
                )));
            }
            if let Some(bad) = assignments
                .iter()
                .flatten()
                .find(|r| r.as_slice() != [node])
            {
                return Err(CreateTopicError::InvalidReplicaAssignment(format!(
                    "replica assignment {bad:?} names brokers other than {node}"
                )));
            }
            if validate_only {
                return Ok(None);
            }
            return self
                .create_topic_local(name, partitions, configs)
                .await
                .map(Some);
        };
        let (_, index) = cluster
            .create_topic(name, partitions, rf, assignments, configs, validate_only)
            .await?;
        if validate_only {
            return Ok(None);
        }
        self.wait_synced(index).await;
        Ok(self.catalog.get(name))
    }

    /// Waits (bounded) until this node has reconciled the metadata up to `index`.
    pub async fn wait_synced(&self, index: u64) {
        let mut rx = self.synced.clone();
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            rx.wait_for(|i| *i >= index),
        )
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            tracing::warn!(
                index,
                "this node has not caught up with a metadata change yet"
            );
        }
    }

    /// Who leads a partition, if not this node. A single node leads everything; unknown
    /// partitions are left to the handlers (UNKNOWN_TOPIC_OR_PARTITION).
    pub fn not_leader(&self, topic: &str, partition: i32, listener: &str) -> Option<NotLeader> {
        let cluster = self.cluster.as_ref()?;
        let image = cluster.image();
        let p = image.partition(topic, partition)?;
        if p.leader == cluster.node_id() {
            return None;
        }
        Some(NotLeader {
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            endpoint: broker_endpoint(&image, p.leader, listener),
        })
    }

    /// Whether `replica`'s fetches of a partition led here are throttled (a replica move): the
    /// topic names it in `leader.replication.throttled.replicas` and it is not in the ISR.
    pub fn leader_throttled(&self, topic: &str, partition: i32, replica: i32) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.image().replica_throttled(
                topic,
                partition,
                "leader.replication.throttled.replicas",
                c.node_id(),
                replica,
            )
        })
    }

    /// Whether this node holds a replica of the partition (cluster; a single node holds all).
    pub fn is_replica(&self, topic: &str, partition: i32) -> bool {
        match &self.cluster {
            None => true,
            Some(c) => c
                .image()
                .partition(topic, partition)
                .is_some_and(|p| p.replicas.contains(&c.node_id())),
        }
    }

    /// KIP-392: the in-sync replica a consumer in `rack` should read from, when
    /// `replica.selector.class` is set and it is not this (leading) broker.
    pub fn preferred_read_replica(&self, topic: &str, partition: i32, rack: &str) -> Option<i32> {
        let c = self.cluster.as_ref()?;
        if rack.is_empty() || !c.config().rack_aware_selector {
            return None;
        }
        let image = c.image();
        let p = image.partition(topic, partition)?;
        if p.leader != c.node_id() {
            return None;
        }
        let in_rack = |id: i32| {
            image
                .brokers
                .get(&id)
                .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
        };
        if in_rack(c.node_id()) {
            return None;
        }
        p.isr.iter().copied().find(|r| in_rack(*r))
    }

    /// Replaces a topic's config overrides (validated by the caller): stored with the topic
    /// (the metadata log in a cluster, `.esker-config` on a single node) and applied.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), String> {
        if let Some(cluster) = &self.cluster {
            let index = cluster
                .set_topic_configs(name, configs)
                .await
                .map_err(|e| e.to_string())?;
            self.wait_synced(index).await;
            return Ok(());
        }
        crate::topic_config::store(&self.config.log_dir, name, &configs)
            .map_err(|e| format!("cannot store topic configs: {e}"))?;
        self.catalog.set_configs(name, configs);
        self.apply_topic_configs(name).await;
        Ok(())
    }

    /// Adds ACL bindings: in a cluster through the metadata log (every node's authorizer
    /// follows it), on a single node to the local store.
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<(), String> {
        match &self.cluster {
            None => self
                .security
                .authorizer
                .create(bindings)
                .map_err(|e| e.to_string()),
            Some(_) => self
                .propose(Command::CreateAcls { bindings })
                .await
                .map(drop),
        }
    }

    /// Removes the ACL bindings matching each filter; returns what each removed.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, String> {
        if self.cluster.is_none() {
            return self
                .security
                .authorizer
                .delete(&filters)
                .map_err(|e| e.to_string());
        }
        match self.propose(Command::DeleteAcls { filters }).await? {
            Reply::AclsDeleted { removed } => Ok(removed),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Deletes and upserts SCRAM credentials; returns per deletion whether it found one.
    pub async fn alter_scram(
        &self,
        deletions: Vec<(String, Mechanism)>,
        upsertions: Vec<(String, Mechanism, ScramCredential)>,
    ) -> Result<Vec<bool>, String> {
        if self.cluster.is_none() {
            return self
                .security
                .credentials
                .alter(&deletions, upsertions)
                .map_err(|e| e.to_string());
        }
        match self
            .propose(Command::AlterScram {
                deletions,
                upsertions,
            })
            .await?
        {
            Reply::ScramAltered { found } => Ok(found),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Applies a delegation-token change (through the metadata log in a cluster); `false`
    /// when the token it changes is gone.
    pub async fn alter_tokens(
        &self,
        change: crate::auth::delegation::TokenChange,
    ) -> Result<bool, String> {
        if self.cluster.is_none() {
            return self
                .security
                .tokens
                .apply(change)
                .map_err(|e| e.to_string());
        }
        match self.propose(Command::AlterTokens { change }).await? {
            Reply::Ok => Ok(true),
            Reply::Stale => Ok(false),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Removes the delegation tokens expired by now (the periodic check). In a cluster only
    /// the active controller proposes the removal; the others follow the log.
    pub async fn remove_expired_tokens(&self) {
        if let Some(c) = &self.cluster {
            if c.active_controller() != Some(self.config.node_id) {
                return;
            }
        }
        let expired = self.security.tokens.expired(Self::now_ms());
        if expired.is_empty() {
            return;
        }
        let count = expired.len();
        let change = crate::auth::delegation::TokenChange::Remove {
            token_ids: expired.clone(),
        };
        match self.alter_tokens(change).await {
            Ok(_) => tracing::info!(count, tokens = ?expired, "expired delegation tokens removed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired delegation tokens"),
        }
    }

    /// Changes one client-quota entity (through the metadata log in a cluster).
    pub async fn alter_quota(
        &self,
        entity: crate::quota::Entity,
        ops: Vec<(String, Option<f64>)>,
    ) -> Result<(), String> {
        match &self.cluster {
            None => self.quotas.alter(entity, &ops).map_err(|e| e.to_string()),
            Some(_) => self
                .propose(Command::AlterQuota { entity, ops })
                .await
                .map(drop),
        }
    }

    /// Writes a command to the metadata log and waits until this node has applied it.
    async fn propose(&self, cmd: Command) -> Result<Reply, String> {
        let cluster = self.cluster.as_ref().ok_or("not a cluster node")?;
        let applied = cluster.propose(cmd).await.map_err(|e| e.to_string())?;
        self.wait_synced(applied.index).await;
        Ok(applied.reply)
    }

    /// A producer id unique in the cluster (InitProducerId).
    pub async fn allocate_producer_id(&self) -> Result<i64, String> {
        let Some(cluster) = &self.cluster else {
            return self.producer_ids.allocate().map_err(|e| e.to_string());
        };
        let mut block = self.cluster_producer_ids.lock().await;
        if block.0 >= block.1 {
            const BLOCK: i64 = 1000;
            let start = cluster
                .allocate_producer_ids(BLOCK)
                .await
                .map_err(|e| e.to_string())?;
            *block = (start, start + BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Creates a topic on this node only: catalog entry, then every partition's directory and
    /// log on its shard.
    async fn create_topic_local(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, CreateTopicError> {
        if !configs.is_empty() {
            crate::topic_config::store(&self.config.log_dir, name, &configs)
                .map_err(|e| CreateTopicError::Storage(e.to_string()))?;
        }
        let meta = TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            configs: Arc::new(configs),
        };
        if !self.catalog.insert(meta.clone()) {
            return Err(CreateTopicError::AlreadyExists(name.to_string()));
        }
        let mut pending = Vec::with_capacity(partitions as usize);
        let log_config = crate::topic_config::log_config(&self.config, &meta.configs);
        for p in 0..partitions {
            let topic = meta.name.clone();
            let id = meta.id;
            let log_config = log_config.clone();
            let rx = self
                .shard(name, p)
                .submit(move |s: &mut ShardState| {
                    s.open_partition_with(&topic, p, Some(id), true, log_config)
                })
                .await;
            pending.push(rx);
        }
        let mut failure = None;
        for rx in pending {
            let res = match rx {
                Ok(rx) => rx
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = res {
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            tracing::error!(topic = name, error = %e, "topic creation failed");
            self.delete_topic(name).await;
            return Err(CreateTopicError::Storage(e));
        }
        tracing::info!(topic = name, partitions, id = %meta.id, "topic created");
        Ok(meta)
    }

    /// Raises a topic's partition count to `count`, creating the new partitions on their
    /// shards before the catalog announces them (in a cluster: on their replicas, through the
    /// controller).
    pub async fn add_partitions(&self, name: &str, count: i32) -> Result<(), String> {
        if let Some(cluster) = &self.cluster {
            let index = cluster
                .create_partitions(name, count, None, false)
                .await
                .map_err(|e| e.to_string())?;
            self.wait_synced(index).await;
            return Ok(());
        }
        let meta = self
            .catalog
            .get(name)
            .ok_or_else(|| format!("topic '{name}' does not exist"))?;
        let log_config = crate::topic_config::log_config(&self.config, &meta.configs);
        for p in meta.partitions..count {
            let topic = meta.name.clone();
            let id = meta.id;
            let log_config = log_config.clone();
            self.shard(name, p)
                .call(move |s: &mut ShardState| {
                    s.open_partition_with(&topic, p, Some(id), true, log_config)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        self.catalog.set_partitions(name, count);
        tracing::info!(
            topic = name,
            from = meta.partitions,
            to = count,
            "partitions added"
        );
        Ok(())
    }

    /// Deletes a topic and its data (in a cluster: on every node, through the controller);
    /// `None` if it does not exist.
    pub async fn delete_topic(&self, name: &str) -> Option<TopicMeta> {
        let Some(cluster) = &self.cluster else {
            return self.remove_local_topic(name).await;
        };
        let meta = self.catalog.get(name)?;
        match cluster.delete_topic(name).await {
            Ok(index) => {
                self.wait_synced(index).await;
                Some(meta)
            }
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "topic deletion failed");
                None
            }
        }
    }

    /// Removes a topic and its data from this node only.
    pub async fn remove_local_topic(&self, name: &str) -> Option<TopicMeta> {
        let meta = self.catalog.remove(name)?;
        self.metrics.remove_topic(name);
        if let Err(e) = crate::topic_config::store(&self.config.log_dir, name, &BTreeMap::new()) {
            tracing::warn!(topic = name, error = %e, "removing topic configs failed");
        }
        for p in 0..meta.partitions {
            let topic = meta.name.clone();
            let res = self
                .shard(name, p)
                .call(move |s: &mut ShardState| s.remove_partition(&topic, p))
                .await;
            match res {
                Ok(Ok(())) | Ok(Err(StorageError::UnknownPartition)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(topic = name, partition = p, error = %e, "removing partition data failed")
                }
                Err(e) => {
                    tracing::warn!(topic = name, partition = p, error = %e, "removing partition failed")
                }
            }
        }
        tracing::info!(topic = name, "topic deleted");
        Some(meta)
    }

    /// Applies a topic's changed configs. Limits enforced by the request handlers
    /// (max.message.bytes, message.timestamp.type, min.insync.replicas) read the catalog and
    /// take effect at once. Log-level settings (segment.bytes, segment.ms, retention, flush)
    /// are pushed to every partition's log, effective from its next append or retention pass.
    pub async fn apply_topic_configs(&self, name: &str) {
        if let Some(meta) = self.catalog.get(name) {
            let log_config = crate::topic_config::log_config(&self.config, &meta.configs);
            for p in 0..meta.partitions {
                let topic = meta.name.clone();
                let log_config = log_config.clone();
                let res = self
                    .shard(name, p)
                    .call(move |s: &mut ShardState| s.set_log_config(&topic, p, log_config))
                    .await;
                if !matches!(res, Ok(Ok(()))) {
                    tracing::warn!(topic = name, partition = p, "cannot apply log configs");
                }
            }
            tracing::debug!(
                topic = name,
                overrides = meta.configs.len(),
                "topic configs applied"
            );
        }
    }

    /// Sets (`Some`) or removes (`None`) dynamic broker configs of this broker (`Some(id)`) or
    /// of the cluster default (`None`): validated, then stored durably (a single node in
    /// `<log.dirs>/.esker-config/`, a cluster through the metadata log) and applied to every
    /// topic's partitions.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), DynamicConfigError> {
        for (k, v) in changes {
            match v {
                Some(v) => crate::dynamic_config::validate(k, v)?,
                None => crate::dynamic_config::check_key(k)?,
            }
        }
        if validate_only {
            return Ok(());
        }
        if self.cluster.is_some() {
            // Every node follows the log (replicas.rs applies its layers).
            return self
                .propose(Command::SetBrokerConfigs {
                    broker,
                    changes: changes.to_vec(),
                })
                .await
                .map(drop)
                .map_err(DynamicConfigError::Failed);
        }
        let layer = if broker.is_some() {
            Layer::PerBroker
        } else {
            Layer::ClusterDefault
        };
        let mut next = self.config.dynamic_configs();
        let values = next.layer_mut(layer);
        for (k, v) in changes {
            match v {
                Some(v) => values.insert(k.clone(), v.trim().to_string()),
                None => values.remove(k),
            };
        }
        next.store(&self.config.log_dir)
            .map_err(|e| DynamicConfigError::Failed(format!("cannot store broker configs: {e}")))?;
        self.install_dynamic(next).await;
        tracing::info!(
            changes = changes.len(),
            ?layer,
            "dynamic broker configs changed"
        );
        Ok(())
    }

    /// Puts a set of dynamic broker configs in force and pushes it to every topic's partitions.
    async fn install_dynamic(&self, next: DynamicConfigs) {
        *self
            .config
            .dynamic
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next;
        for t in self.catalog.all() {
            self.apply_topic_configs(&t.name).await;
        }
    }

    /// The stored dynamic broker configs of a scope: this broker's own (`Some(id)`) or the
    /// cluster default (`None`).
    pub fn dynamic_broker_configs(&self, broker: Option<i32>) -> BTreeMap<String, String> {
        match &self.cluster {
            None => {
                let layer = if broker.is_some() {
                    Layer::PerBroker
                } else {
                    Layer::ClusterDefault
                };
                self.config.dynamic_configs().layer(layer).clone()
            }
            Some(c) => c
                .image()
                .broker_configs
                .get(&broker.unwrap_or(crate::metadata::image::CLUSTER_DEFAULT))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// A cluster node takes its own and the cluster-default dynamic broker configs from the
    /// image (stored locally too, for the next start) and pushes them to its partitions when
    /// they changed.
    pub(crate) async fn follow_broker_configs(&self, image: &crate::metadata::MetadataImage) {
        let layer = |id: i32| image.broker_configs.get(&id).cloned().unwrap_or_default();
        let next = DynamicConfigs {
            per_broker: layer(self.config.node_id),
            cluster_default: layer(crate::metadata::image::CLUSTER_DEFAULT),
        };
        if next == self.config.dynamic_configs() {
            return;
        }
        if let Err(e) = next.store(&self.config.log_dir) {
            tracing::error!(error = %e, "cannot store the cluster's broker configs");
        }
        self.install_dynamic(next).await;
        tracing::info!("dynamic broker configs changed");
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A broker's advertised endpoint on `listener` (else its first one), from the image.
pub fn broker_endpoint(
    image: &crate::metadata::MetadataImage,
    id: i32,
    listener: &str,
) -> Option<(String, i32)> {
    let b = image.brokers.get(&id)?;
    let e = b
        .endpoints
        .iter()
        .find(|e| e.name == listener)
        .or_else(|| b.endpoints.first())?;
    Some((e.host.clone(), i32::from(e.port)))
}

/// fsyncs a directory (after creating or renaming a file in it).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
