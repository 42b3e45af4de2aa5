//! This node's share of a cluster: keeps the topic catalog and the partition logs on this node
//! in step with the metadata image. Every topic of the image is in the catalog (so handlers
//! know it exists); a partition's log is opened here only when this node is one of its
//! replicas; topics gone from the image lose their local data; the group coordinator serves the
//! `__consumer_offsets` partitions this node leads; and the active controller creates
//! `__consumer_offsets` once `offsets.topic.replication.factor` brokers are registered.
//!
//! Runs on shard 0's runtime: one pass per image change, passes never overlap.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::watch;

use crate::catalog::TopicMeta;
use crate::context::BrokerContext;
use crate::controller::{Controller, ControllerError};
use crate::coordinator::OFFSETS_TOPIC;
use crate::metadata::MetadataImage;
use crate::replication::Replication;
use crate::shard::ShardState;
use crate::txn::TXN_TOPIC;

/// The reconciler's memory between passes.
pub struct Replicas {
    /// Partitions whose logs are open on this node.
    open: HashSet<(String, i32)>,
    /// `__consumer_offsets` partitions loaded by the coordinator.
    loaded: HashSet<i32>,
    /// `__transaction_state` partitions loaded by the transaction coordinator.
    txn_loaded: HashSet<i32>,
    /// Roles of the local replicas and the fetchers.
    replication: Replication,
}

impl Replicas {
    /// Starts from the partitions found on disk at start-up.
    pub fn new(
        open: impl IntoIterator<Item = (String, i32)>,
        replication: Replication,
    ) -> Replicas {
        Replicas {
            open: open.into_iter().collect(),
            loaded: HashSet::new(),
            txn_loaded: HashSet::new(),
            replication,
        }
    }

    /// One pass: brings the catalog, the open logs and the coordinator in line with `image`,
    /// then reports `image.applied_index` on `synced`.
    pub async fn reconcile(
        &mut self,
        ctx: &Arc<BrokerContext>,
        controller: &Controller,
        image: &MetadataImage,
        synced: &watch::Sender<u64>,
    ) {
        let me = controller.node_id();
        // Topics gone from the image (or recreated under a new id) lose their local data.
        for meta in ctx.catalog.all() {
            let keep = image
                .topics
                .get(&*meta.name)
                .is_some_and(|t| t.id == meta.id);
            if !keep {
                ctx.remove_local_topic(&meta.name).await;
                self.open.retain(|(t, _)| *t != *meta.name);
            }
        }
        for t in image.topics.values() {
            let configs: BTreeMap<String, String> = t.configs.clone();
            match ctx.catalog.get(&t.name) {
                None => {
                    ctx.catalog.insert(TopicMeta {
                        name: t.name.as_str().into(),
                        id: t.id,
                        partitions: t.partitions.len() as i32,
                        configs: Arc::new(configs),
                    });
                }
                Some(meta) => {
                    if *meta.configs != configs {
                        ctx.catalog.set_configs(&t.name, configs);
                        ctx.apply_topic_configs(&t.name).await;
                    }
                }
            }
            let log_config = ctx
                .catalog
                .get(&t.name)
                .map(|m| crate::topic_config::log_config(&ctx.config, &m.configs))
                .unwrap_or_else(|| ctx.config.log_config());
            for (p, part) in t.partitions.iter().enumerate() {
                let p = p as i32;
                if !part.replicas.contains(&me) || self.open.contains(&(t.name.clone(), p)) {
                    continue;
                }
                let topic = t.name.clone();
                let id = t.id;
                let lc = log_config.clone();
                let res = ctx
                    .shard(&t.name, p)
                    .call(move |s: &mut ShardState| {
                        s.open_partition_with(&topic, p, Some(id), true, lc)
                    })
                    .await;
                match res {
                    Ok(Ok(())) => {
                        self.open.insert((t.name.clone(), p));
                    }
                    Ok(Err(e)) => {
                        tracing::error!(topic = %t.name, partition = p, error = %e, "cannot create replica")
                    }
                    Err(e) => {
                        tracing::error!(topic = %t.name, partition = p, error = %e, "cannot create replica")
                    }
                }
            }
            // Announce partitions only once their local logs exist.
            ctx.catalog
                .set_partitions(&t.name, t.partitions.len() as i32);
        }
        // Leaders and followers before the coordinator: it serves only what is led here.
        self.replication.apply(image, &self.open).await;
        // Replicas moved away from this node (reassignment) lose their local data.
        let moved: Vec<(String, i32)> = self
            .open
            .iter()
            .filter(|(t, p)| {
                image
                    .partition(t, *p)
                    .is_some_and(|part| !part.replicas.contains(&me))
            })
            .cloned()
            .collect();
        for (topic, p) in moved {
            let t = topic.clone();
            let res = ctx
                .shard(&topic, p)
                .call(move |s: &mut ShardState| s.remove_partition(&t, p))
                .await;
            match res {
                Ok(Ok(())) => tracing::info!(
                    topic,
                    partition = p,
                    "replica moved away; local log deleted"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(topic, partition = p, error = %e, "cannot delete a moved replica")
                }
                Err(e) => {
                    tracing::warn!(topic, partition = p, error = %e, "cannot delete a moved replica")
                }
            }
            self.open.remove(&(topic, p));
        }
        self.coordinate(ctx, me, image).await;
        self.coordinate_transactions(ctx, me, image).await;
        // The local authorizer and credential store follow the image (their files keep the
        // last state for the next start).
        if ctx.security.authorizer.all() != image.acls {
            if let Err(e) = ctx.security.authorizer.replace(image.acls.clone()) {
                tracing::error!(error = %e, "cannot store the cluster's acls");
            }
        }
        if ctx.security.credentials.all() != image.scram {
            if let Err(e) = ctx.security.credentials.replace(image.scram.clone()) {
                tracing::error!(error = %e, "cannot store the cluster's scram credentials");
            }
        }
        if ctx.security.tokens.all() != image.tokens {
            if let Err(e) = ctx.security.tokens.replace(image.tokens.clone()) {
                tracing::error!(error = %e, "cannot store the cluster's delegation tokens");
            }
        }
        ctx.follow_broker_configs(image).await;
        if ctx.quotas.all() != image.quotas {
            if let Err(e) = ctx.quotas.replace(&image.quotas) {
                tracing::error!(error = %e, "cannot store the cluster's client quotas");
            }
        }
        synced.send_replace(image.applied_index);
        if controller.active_controller() == Some(me) {
            self.create_offsets_topic(ctx, controller, image).await;
            self.create_txn_topic(ctx, controller, image).await;
        }
    }

    /// Serve the groups of the `__consumer_offsets` partitions this node leads (loading each
    /// the first time), and answer NOT_COORDINATOR for the rest.
    async fn coordinate(&mut self, ctx: &BrokerContext, me: i32, image: &MetadataImage) {
        let Some(t) = image.topics.get(OFFSETS_TOPIC) else {
            return;
        };
        for (p, part) in t.partitions.iter().enumerate() {
            let p = p as i32;
            let lead = part.leader == me && self.open.contains(&(OFFSETS_TOPIC.to_string(), p));
            if lead && !self.loaded.contains(&p) {
                match ctx.coordinator.load_partition(p).await {
                    Ok(groups) => {
                        self.loaded.insert(p);
                        tracing::info!(partition = p, groups, "coordinator partition loaded");
                    }
                    Err(e) => {
                        tracing::error!(partition = p, error = %e, "coordinator partition not loaded");
                        continue;
                    }
                }
            }
            ctx.coordinator.set_leading(p, lead);
            if !lead && self.loaded.remove(&p) {
                // Another broker coordinates these groups now; they are replayed again if
                // leadership comes back.
                ctx.coordinator.unload_partition(p).await;
                tracing::info!(partition = p, "coordinator partition unloaded");
            }
        }
    }

    /// Coordinate the transactional ids of the `__transaction_state` partitions this node leads
    /// (replaying each when it becomes the leader, with its leader epoch as the coordinator
    /// epoch); forget the others.
    async fn coordinate_transactions(
        &mut self,
        ctx: &Arc<BrokerContext>,
        me: i32,
        image: &MetadataImage,
    ) {
        let Some(t) = image.topics.get(TXN_TOPIC) else {
            return;
        };
        for (p, part) in t.partitions.iter().enumerate() {
            let p = p as i32;
            let lead = part.leader == me && self.open.contains(&(TXN_TOPIC.to_string(), p));
            if lead && !self.txn_loaded.contains(&p) {
                match ctx
                    .transactions
                    .load_partition(ctx, p, part.leader_epoch)
                    .await
                {
                    Ok(ids) => {
                        self.txn_loaded.insert(p);
                        tracing::info!(
                            partition = p,
                            ids,
                            "transaction coordinator partition loaded"
                        );
                    }
                    Err(e) => {
                        tracing::error!(partition = p, error = %e, "transaction coordinator partition not loaded");
                    }
                }
            } else if !lead && self.txn_loaded.remove(&p) {
                ctx.transactions.unload_partition(p);
                tracing::info!(partition = p, "transaction coordinator partition unloaded");
            }
        }
    }

    /// `__transaction_state` waits for `transaction.state.log.replication.factor` brokers.
    async fn create_txn_topic(
        &self,
        ctx: &BrokerContext,
        controller: &Controller,
        image: &MetadataImage,
    ) {
        if image.topics.contains_key(TXN_TOPIC) {
            return;
        }
        let cfg = ctx.transactions.config();
        let rf = cfg.replication_factor.clamp(1, i32::from(i16::MAX)) as i16;
        if image.live_brokers().count() < rf as usize {
            return;
        }
        let res = controller
            .create_topic(
                TXN_TOPIC,
                ctx.transactions.num_partitions(),
                Some(rf),
                None,
                crate::txn::txn_topic_configs(cfg, i32::from(rf)),
                false,
            )
            .await;
        match res {
            Ok(_) | Err(ControllerError::TopicExists(_)) => {
                tracing::info!(replication_factor = rf, "created {TXN_TOPIC}")
            }
            Err(e) => tracing::warn!(error = %e, "cannot create {TXN_TOPIC} yet"),
        }
    }

    /// As in Kafka, `__consumer_offsets` waits for `offsets.topic.replication.factor` brokers.
    async fn create_offsets_topic(
        &self,
        ctx: &BrokerContext,
        controller: &Controller,
        image: &MetadataImage,
    ) {
        if image.topics.contains_key(OFFSETS_TOPIC) {
            return;
        }
        let rf = controller.config().offsets_replication_factor;
        if image.live_brokers().count() < rf as usize {
            return;
        }
        let res = controller
            .create_topic(
                OFFSETS_TOPIC,
                ctx.coordinator.num_partitions(),
                Some(rf),
                None,
                crate::coordinator::offsets_topic_configs(),
                false,
            )
            .await;
        match res {
            Ok(_) | Err(ControllerError::TopicExists(_)) => {
                tracing::info!(replication_factor = rf, "created {OFFSETS_TOPIC}")
            }
            Err(e) => tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC} yet"),
        }
    }
}

/// Runs passes on every image change until `stop`.
pub async fn run(
    ctx: Arc<BrokerContext>,
    controller: Arc<Controller>,
    mut replicas: Replicas,
    synced: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut feed = controller.feed().subscribe();
    loop {
        let image = feed.borrow_and_update().clone();
        replicas.reconcile(&ctx, &controller, &image, &synced).await;
        tokio::select! {
            _ = stop.changed() => return,
            changed = feed.changed() => if changed.is_err() { return },
        }
    }
}
