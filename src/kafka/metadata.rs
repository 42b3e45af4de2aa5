//! Metadata (key 3): the brokers (a single node: this one, leading everything; a cluster: every
//! live broker of the metadata image at the address of the listener the client came through,
//! and the active controller), topics with their ids and partitions (leader, leader epoch,
//! replicas, ISR, offline replicas), and auto-creation of requested topics when
//! `auto.create.topics.enable` and the request allow it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::catalog::TopicMeta;
use crate::context::{BrokerContext, CreateTopicError};

/// Supported versions (0..=13).
pub const VERSIONS: (i16, i16) = (0, 13);

/// `topic_authorized_operations` when the client did not ask for them.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Handles a Metadata request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let node = BrokerId(ctx.config.node_id);
    let (host, port) = ctx.advertised.clone();
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    let view = View::of(&ctx);
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics = Vec::new();
    if all {
        for meta in ctx.catalog.all() {
            topics.extend(view.topic_entry(node, &meta));
        }
    } else {
        // v4+ carries the client's wish; earlier versions always allow auto-creation.
        let allow_create =
            ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
        for t in req.topics.unwrap_or_default() {
            let meta = match (&t.name, t.topic_id.is_nil()) {
                (Some(name), _) => ctx
                    .catalog
                    .get(name.as_str())
                    .map(Ok)
                    .unwrap_or_else(|| Err(name.to_string())),
                (None, false) => match ctx.catalog.get_by_id(&t.topic_id) {
                    Some(m) => Ok(m),
                    None => {
                        topics.push(
                            MetadataResponseTopic::default()
                                .with_error_code(Code::UnknownTopicId.code())
                                .with_topic_id(t.topic_id)
                                .with_topic_authorized_operations(OPS_NOT_REQUESTED),
                        );
                        continue;
                    }
                },
                (None, true) => continue,
            };
            match meta {
                Ok(meta) => topics.extend(view.topic_entry(node, &meta)),
                Err(name) => {
                    let code = if let Err(e) = crate::catalog::validate_topic_name(&name) {
                        tracing::debug!(topic = %name, error = %e, "metadata for invalid topic name");
                        Code::InvalidTopicException
                    } else if allow_create {
                        match ctx
                            .create_topic(&name, ctx.config.num_partitions, Default::default())
                            .await
                        {
                            Ok(meta) => {
                                let view = View::of(&ctx);
                                topics.extend(view.topic_entry(node, &meta));
                                continue;
                            }
                            // Created by a concurrent request: answer with it.
                            Err(CreateTopicError::AlreadyExists(_)) => match ctx.catalog.get(&name)
                            {
                                Some(meta) => {
                                    let view = View::of(&ctx);
                                    topics.extend(view.topic_entry(node, &meta));
                                    continue;
                                }
                                None => Code::LeaderNotAvailable,
                            },
                            Err(e) => {
                                tracing::warn!(topic = %name, error = %e, "auto-creation failed");
                                Code::UnknownTopicOrPartition
                            }
                        }
                    } else {
                        Code::UnknownTopicOrPartition
                    };
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code.code())
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                            .with_topic_authorized_operations(OPS_NOT_REQUESTED),
                    );
                }
            }
        }
    }
    let (brokers, controller, cluster_id) = match (&ctx.cluster, &view.0) {
        (Some(_), Some(image)) => (
            image
                .live_brokers()
                .filter_map(|b| {
                    let (host, port) = crate::context::broker_endpoint(image, b.id, listener)?;
                    Some(
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b.id))
                            .with_host(StrBytes::from_string(host))
                            .with_port(port)
                            .with_rack(b.rack.clone().map(StrBytes::from_string)),
                    )
                })
                .collect(),
            // As KRaft brokers do, name a live broker (this one) as the controller: any broker
            // takes admin requests and forwards them to the quorum, and a client that cached a
            // dead controller would wait for it. The quorum's leader is in DescribeQuorum.
            node,
            image
                .cluster_id
                .clone()
                .unwrap_or_else(|| ctx.cluster_id.clone()),
        ),
        _ => (vec![broker], node, ctx.cluster_id.clone()),
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(cluster_id)))
        .with_controller_id(controller)
        .with_topics(topics)
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED)
}

/// The metadata image a response is built from (`None` on a single node).
pub(super) struct View(pub(super) Option<Arc<crate::metadata::MetadataImage>>);

/// One partition's replication state as clients see it.
pub(super) struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

impl View {
    pub(super) fn of(ctx: &BrokerContext) -> View {
        View(ctx.cluster.as_ref().map(|c| c.image()))
    }

    /// Every partition's state; `None` for a topic the image does not hold (yet or any more).
    /// A single node leads every partition of its catalog.
    pub(super) fn partitions(
        &self,
        node: BrokerId,
        meta: &TopicMeta,
    ) -> Option<Vec<PartitionState>> {
        let Some(image) = &self.0 else {
            return Some(
                (0..meta.partitions)
                    .map(|_| PartitionState {
                        leader: node.0,
                        leader_epoch: 0,
                        replicas: vec![node],
                        isr: vec![node],
                        offline: Vec::new(),
                    })
                    .collect(),
            );
        };
        let t = image.topics.get(&*meta.name)?;
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        Some(
            t.partitions
                .iter()
                .map(|p| PartitionState {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(&p.replicas),
                    isr: ids(&p.isr),
                    offline: p
                        .replicas
                        .iter()
                        .filter(|r| !image.is_live(**r))
                        .map(|r| BrokerId(*r))
                        .collect(),
                })
                .collect(),
        )
    }

    /// A topic's Metadata entry; no live leader answers LEADER_NOT_AVAILABLE.
    fn topic_entry(&self, node: BrokerId, meta: &TopicMeta) -> Option<MetadataResponseTopic> {
        let partitions = self
            .partitions(node, meta)?
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                MetadataResponsePartition::default()
                    .with_error_code(if p.leader < 0 {
                        Code::LeaderNotAvailable.code()
                    } else {
                        0
                    })
                    .with_partition_index(i as i32)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas)
                    .with_isr_nodes(p.isr)
                    .with_offline_replicas(p.offline)
            })
            .collect();
        Some(topic_with(meta, partitions))
    }
}

fn topic_with(
    meta: &TopicMeta,
    partitions: Vec<MetadataResponsePartition>,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            meta.name.to_string(),
        ))))
        .with_topic_id(meta.id)
        .with_is_internal(meta.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}
