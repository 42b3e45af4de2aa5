//! Authorization of Kafka requests: the connection's identity ([`Access`]) and the per-API
//! checks that run around the handlers, so handlers stay unaware of ACLs. Denied topics are
//! taken out of a request before its handler runs and answered with TOPIC_AUTHORIZATION_FAILED
//! (29); whole-request denials answer GROUP (30) or CLUSTER (31) AUTHORIZATION_FAILED. With the
//! authorizer off every check is a single branch.

use std::sync::Arc;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{ListenerInfo, Operation, Principal, ResourceType};
use crate::broker::BrokerContext;

/// Who is asking, for authorization: the connection's principal, peer IP and listener.
#[derive(Debug, Clone)]
pub struct Access {
    /// The authenticated principal.
    pub principal: Arc<Principal>,
    /// Peer IP (ACL host).
    pub ip: Arc<str>,
    /// The listener the connection came through.
    pub listener: Arc<ListenerInfo>,
}

impl Access {
    /// Whether the operation is allowed (audit-logged when not).
    pub fn allowed(
        &self,
        ctx: &BrokerContext,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        ctx.security
            .authorizer
            .authorize(&self.principal, &self.ip, op, rt, name)
    }

    /// An operation on the cluster.
    pub fn cluster(&self, ctx: &BrokerContext, op: Operation) -> bool {
        self.allowed(ctx, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// An operation on a topic.
    pub fn topic(&self, ctx: &BrokerContext, op: Operation, name: &str) -> bool {
        self.allowed(ctx, op, ResourceType::Topic, name)
    }

    /// An operation on a group.
    pub fn group(&self, ctx: &BrokerContext, op: Operation, name: &str) -> bool {
        self.allowed(ctx, op, ResourceType::Group, name)
    }

    fn enforcing(&self, ctx: &BrokerContext) -> bool {
        ctx.security.authorizer.enabled()
    }
}

/// Takes the topics the caller may not WRITE out of a produce; returns their answers.
pub fn produce(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut ProduceRequest,
    version: i16,
) -> Vec<TopicProduceResponse> {
    if !access.enforcing(ctx) {
        return Vec::new();
    }
    let mut denied = Vec::new();
    req.topic_data.retain(|t| {
        let name = if version >= 13 {
            ctx.catalog
                .get_by_id(&t.topic_id)
                .map(|m| m.name.to_string())
                .unwrap_or_default()
        } else {
            t.name.to_string()
        };
        if access.topic(ctx, Operation::Write, &name) {
            return true;
        }
        denied.push(
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(Code::TopicAuthorizationFailed.code())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                        })
                        .collect(),
                ),
        );
        false
    });
    denied
}

/// Takes the topics the caller may not READ out of a fetch; returns their answers.
pub fn fetch(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut FetchRequest,
    version: i16,
) -> Vec<FetchableTopicResponse> {
    if !access.enforcing(ctx) {
        return Vec::new();
    }
    let mut denied = Vec::new();
    req.topics.retain(|t| {
        let name = if version >= 13 {
            ctx.catalog
                .get_by_id(&t.topic_id)
                .map(|m| m.name.to_string())
                .unwrap_or_default()
        } else {
            t.topic.to_string()
        };
        if access.topic(ctx, Operation::Read, &name) {
            return true;
        }
        denied.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(Code::TopicAuthorizationFailed.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                ),
        );
        false
    });
    denied
}

/// What Metadata must change after its handler: denied named topics, and whether the
/// handler's topics must all be dropped (every named topic was denied).
pub struct MetadataDenials {
    denied: Vec<MetadataResponseTopic>,
    all_named_denied: bool,
    list_all: bool,
}

/// Takes named topics the caller may not DESCRIBE (29) or not auto-create (3) out of a
/// Metadata request.
pub fn metadata_before(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut MetadataRequest,
    version: i16,
) -> MetadataDenials {
    let list_all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut out = MetadataDenials {
        denied: Vec::new(),
        all_named_denied: false,
        list_all,
    };
    if !access.enforcing(ctx) || list_all {
        return out;
    }
    let Some(topics) = req.topics.as_mut() else {
        return out;
    };
    let before = topics.len();
    topics.retain(|t| {
        let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
            return true;
        };
        let entry = |code: Code| {
            MetadataResponseTopic::default()
                .with_error_code(code.code())
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                .with_topic_authorized_operations(i32::MIN)
        };
        if !access.topic(ctx, Operation::Describe, &name) {
            out.denied.push(entry(Code::TopicAuthorizationFailed));
            return false;
        }
        if ctx.catalog.get(&name).is_none()
            && !access.cluster(ctx, Operation::Create)
            && !access.topic(ctx, Operation::Create, &name)
        {
            out.denied.push(entry(Code::UnknownTopicOrPartition));
            return false;
        }
        true
    });
    out.all_named_denied = before > 0 && topics.is_empty();
    out
}

/// Applies [`metadata_before`]'s result and advertises the caller's listener.
pub fn metadata_after(
    ctx: &BrokerContext,
    access: &Access,
    resp: &mut MetadataResponse,
    d: MetadataDenials,
) {
    let (host, port) = &access.listener.advertised;
    for b in &mut resp.brokers {
        b.host = StrBytes::from_string(host.clone());
        b.port = *port;
    }
    if !access.enforcing(ctx) {
        return;
    }
    if d.list_all {
        resp.topics.retain(|t| {
            t.name.as_ref().is_some_and(|n| {
                ctx.security.authorizer.allowed(
                    &access.principal,
                    &access.ip,
                    Operation::Describe,
                    ResourceType::Topic,
                    n.as_str(),
                )
            })
        });
    }
    if d.all_named_denied {
        resp.topics.clear();
    }
    resp.topics.extend(d.denied);
}
