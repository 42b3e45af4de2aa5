//! Metadata (key 3): this broker as the only node and controller, topics with their ids and
//! partitions (all led by this broker), and auto-creation of requested topics when
//! `auto.create.topics.enable` and the request allow it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::broker::{BrokerContext, CreateTopicError};
use crate::catalog::TopicMeta;

/// Supported versions (0..=13).
pub const VERSIONS: (i16, i16) = (0, 13);

/// `topic_authorized_operations` when the client did not ask for them.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Handles a Metadata request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(ctx.config.node_id);
    let (host, port) = ctx.advertised.clone();
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics = Vec::new();
    if all {
        for meta in ctx.catalog.all() {
            topics.push(topic_entry(node, &meta));
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
                Ok(meta) => topics.push(topic_entry(node, &meta)),
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
                                topics.push(topic_entry(node, &meta));
                                continue;
                            }
                            // Created by a concurrent request: answer with it.
                            Err(CreateTopicError::AlreadyExists(_)) => match ctx.catalog.get(&name)
                            {
                                Some(meta) => {
                                    topics.push(topic_entry(node, &meta));
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
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(ctx.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED)
}

fn topic_entry(node: BrokerId, meta: &TopicMeta) -> MetadataResponseTopic {
    let partitions = (0..meta.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            meta.name.to_string(),
        ))))
        .with_topic_id(meta.id)
        .with_is_internal(meta.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}
