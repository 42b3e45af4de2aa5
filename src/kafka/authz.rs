//! Authorization of Kafka requests: the connection's identity ([`Access`]) and the per-API
//! checks that run around the handlers, so handlers stay unaware of ACLs. The checks and codes
//! are Kafka's (KafkaApis):
//!
//! - Denied topics are taken out of a request before its handler runs and answered with
//!   TOPIC_AUTHORIZATION_FAILED (29) per partition ([`retain_topics`]); listings (Metadata,
//!   OffsetFetch of every topic) silently drop what the caller may not DESCRIBE.
//! - Denied groups answer GROUP_AUTHORIZATION_FAILED (30), denied transactional ids 53, denied
//!   cluster operations CLUSTER_AUTHORIZATION_FAILED (31).
//! - `authorized_operations` fields (Metadata, DescribeCluster, DescribeGroups,
//!   ConsumerGroupDescribe) are computed from the ACLs when the client asks for them.
//!
//! Every denial is logged on the `esker::audit` target by [`crate::auth::Authorizer`]. With
//! the authorizer off every check is a single branch.

use std::sync::Arc;

use kafka_protocol::messages as m;
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{BROKER, TOPIC};
use super::error::Code;
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{ListenerInfo, Operation, Principal, ResourceType};
use crate::context::BrokerContext;

/// Who is asking, for authorization: the connection's principal, peer IP and listener.
#[derive(Debug, Clone)]
pub struct Access {
    /// The authenticated principal.
    pub principal: Arc<Principal>,
    /// Peer IP (ACL host).
    pub ip: Arc<str>,
    /// The listener the connection came through.
    pub listener: Arc<ListenerInfo>,
    /// The connection authenticated with a delegation token.
    pub token_authenticated: bool,
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

    /// The decision without an audit line (for listings and `authorized_operations`, where
    /// a "no" is not a refused request).
    pub(super) fn may(
        &self,
        ctx: &BrokerContext,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        ctx.security
            .authorizer
            .allowed(&self.principal, &self.ip, op, rt, name)
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

    /// Whether this connection may use the delegation-token APIs (Kafka's
    /// `allowTokenRequests`): not over PLAINTEXT, not anonymous over one-way SSL, and not
    /// authenticated with a token itself.
    pub fn may_request_tokens(&self) -> bool {
        use crate::auth::SecurityProtocol as P;
        !(self.token_authenticated
            || self.listener.protocol == P::Plaintext
            || (self.listener.protocol == P::Ssl && *self.principal == Principal::anonymous()))
    }

    fn enforcing(&self, ctx: &BrokerContext) -> bool {
        ctx.security.authorizer.enabled()
    }

    /// Kafka's `authorized_operations` bit field: bit `code` set for each operation of the
    /// resource type that the caller may perform.
    fn operations(&self, ctx: &BrokerContext, rt: ResourceType, name: &str) -> i32 {
        use Operation::*;
        let ops: &[Operation] = match rt {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                CreateTokens,
                DescribeTokens,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            _ => &[],
        };
        ops.iter()
            .filter(|op| self.may(ctx, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// `cluster_authorized_operations` as Kafka answers it: the bits when the caller may
    /// DESCRIBE the cluster, else 0.
    fn cluster_operations(&self, ctx: &BrokerContext) -> i32 {
        if self.may(
            ctx,
            Operation::Describe,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            self.operations(ctx, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    }
}

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

/// The one filter every per-item check uses: keeps the items `check` passes and answers
/// each other one with `deny`, given the check's reason. Does nothing when the authorizer is
/// off.
fn retain<T, R, E>(
    access: &Access,
    ctx: &BrokerContext,
    items: &mut Vec<T>,
    mut check: impl FnMut(&T) -> Result<(), E>,
    mut deny: impl FnMut(&T, E) -> R,
) -> Vec<R> {
    if !access.enforcing(ctx) {
        return Vec::new();
    }
    let mut denied = Vec::new();
    items.retain(|t| match check(t) {
        Ok(()) => true,
        Err(e) => {
            denied.push(deny(t, e));
            false
        }
    });
    denied
}

fn yes_no(ok: bool) -> Result<(), ()> {
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Keeps the topics of a request on which `op` is allowed; each other one is answered by
/// `deny` (which sets TOPIC_AUTHORIZATION_FAILED on its partitions).
fn retain_topics<T, R>(
    access: &Access,
    ctx: &BrokerContext,
    op: Operation,
    topics: &mut Vec<T>,
    name: impl Fn(&T) -> String,
    mut deny: impl FnMut(&T) -> R,
) -> Vec<R> {
    retain(
        access,
        ctx,
        topics,
        |t| yes_no(access.topic(ctx, op, &name(t))),
        |t, ()| deny(t),
    )
}

const DENIED_TOPIC: Code = Code::TopicAuthorizationFailed;

/// The name of a topic given by name or, from some version on, by id.
fn name_or_id(ctx: &BrokerContext, by_id: bool, name: &TopicName, id: &uuid::Uuid) -> String {
    if by_id {
        ctx.catalog
            .get_by_id(id)
            .map(|m| m.name.to_string())
            .unwrap_or_default()
    } else {
        name.to_string()
    }
}

/// Produce: WRITE on each topic, and on the transactional id of a transactional produce (else
/// every partition answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
pub fn produce(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::ProduceRequest,
    version: i16,
) -> Vec<m::produce_response::TopicProduceResponse> {
    use m::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let refuse = |t: &m::produce_request::TopicProduceData, code: i16| {
        TopicProduceResponse::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id)
            .with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                    })
                    .collect(),
            )
    };
    if let Some(id) = &req.transactional_id {
        if !access.allowed(ctx, Operation::Write, ResourceType::TransactionalId, id) {
            let code = crate::kafka::error::Code::TransactionalIdAuthorizationFailed.code();
            return std::mem::take(&mut req.topic_data)
                .iter()
                .map(|t| refuse(t, code))
                .collect();
        }
    }
    retain_topics(
        access,
        ctx,
        Operation::Write,
        &mut req.topic_data,
        |t| name_or_id(ctx, version >= 13, &t.name, &t.topic_id),
        |t| refuse(t, DENIED_TOPIC.code()),
    )
}

/// Fetch: READ on each topic.
pub fn fetch(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::FetchRequest,
    version: i16,
) -> Vec<m::fetch_response::FetchableTopicResponse> {
    use m::fetch_response::{FetchableTopicResponse, PartitionData};
    retain_topics(
        access,
        ctx,
        Operation::Read,
        &mut req.topics,
        |t| name_or_id(ctx, version >= 13, &t.topic, &t.topic_id),
        |t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(DENIED_TOPIC.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        },
    )
}

/// ListOffsets: DESCRIBE on each topic.
pub fn list_offsets(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::ListOffsetsRequest,
) -> Vec<m::list_offsets_response::ListOffsetsTopicResponse> {
    use m::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    retain_topics(
        access,
        ctx,
        Operation::Describe,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(DENIED_TOPIC.code())
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect(),
                )
        },
    )
}

/// OffsetForLeaderEpoch: DESCRIBE on each topic (what Kafka checks for clients).
pub fn offset_for_leader_epoch(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::OffsetForLeaderEpochRequest,
) -> Vec<m::offset_for_leader_epoch_response::OffsetForLeaderTopicResult> {
    use m::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    retain_topics(
        access,
        ctx,
        Operation::Describe,
        &mut req.topics,
        |t| t.topic.to_string(),
        |t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(DENIED_TOPIC.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        },
    )
}

/// DeleteRecords: DELETE on each topic.
pub fn delete_records(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::DeleteRecordsRequest,
) -> Vec<m::delete_records_response::DeleteRecordsTopicResult> {
    use m::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    retain_topics(
        access,
        ctx,
        Operation::Delete,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(DENIED_TOPIC.code())
                        })
                        .collect(),
                )
        },
    )
}

/// DescribeProducers: READ on each topic.
pub fn describe_producers(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::DescribeProducersRequest,
) -> Vec<m::describe_producers_response::TopicResponse> {
    use m::describe_producers_response::{PartitionResponse, TopicResponse};
    retain_topics(
        access,
        ctx,
        Operation::Read,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| {
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            PartitionResponse::default()
                                .with_partition_index(*p)
                                .with_error_code(DENIED_TOPIC.code())
                        })
                        .collect(),
                )
        },
    )
}

/// CreatePartitions: ALTER on each topic.
pub fn create_partitions(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::CreatePartitionsRequest,
) -> Vec<m::create_partitions_response::CreatePartitionsTopicResult> {
    use m::create_partitions_response::CreatePartitionsTopicResult;
    retain_topics(
        access,
        ctx,
        Operation::Alter,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| {
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(DENIED_TOPIC.code())
                .with_error_message(Some(text("ALTER on the topic is required")))
        },
    )
}

/// CreateTopics: CREATE on the cluster, else CREATE on each topic.
pub fn create_topics(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::CreateTopicsRequest,
) -> Vec<m::create_topics_response::CreatableTopicResult> {
    use m::create_topics_response::CreatableTopicResult;
    if !access.enforcing(ctx)
        || access.may(ctx, Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
    {
        return Vec::new();
    }
    retain_topics(
        access,
        ctx,
        Operation::Create,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(DENIED_TOPIC.code())
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        },
    )
}

/// DeleteTopics: a topic the caller may not DESCRIBE is 29 whether or not it exists (so
/// existence does not leak); one that does not exist is left to the handler (3 / unknown
/// id); an existing one without DELETE is 29.
pub fn delete_topics(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::DeleteTopicsRequest,
    version: i16,
) -> Vec<m::delete_topics_response::DeletableTopicResult> {
    use m::delete_topics_response::DeletableTopicResult;
    let check = |name: &str| {
        if !access.topic(ctx, Operation::Describe, name) {
            return false;
        }
        ctx.catalog.get(name).is_none() || access.topic(ctx, Operation::Delete, name)
    };
    let denied = |name: Option<String>, id: uuid::Uuid| {
        DeletableTopicResult::default()
            .with_name(name.map(|n| topic_name(&n)))
            .with_topic_id(id)
            .with_error_code(DENIED_TOPIC.code())
    };
    if version >= 6 {
        retain(
            access,
            ctx,
            &mut req.topics,
            |t| {
                yes_no(match &t.name {
                    Some(n) => check(n.as_str()),
                    // By id: an unknown id is the handler's UNKNOWN_TOPIC_ID.
                    None => ctx
                        .catalog
                        .get_by_id(&t.topic_id)
                        .map_or(true, |m| check(&m.name)),
                })
            },
            |t, ()| denied(t.name.as_ref().map(|n| n.to_string()), t.topic_id),
        )
    } else {
        retain(
            access,
            ctx,
            &mut req.topic_names,
            |n| yes_no(check(n.as_str())),
            |n, ()| denied(Some(n.to_string()), uuid::Uuid::nil()),
        )
    }
}

/// The ACL resource of a config resource: topics are topics, brokers (4) and broker loggers
/// (8) are the cluster.
fn config_resource(resource_type: i8, name: &str) -> Option<(ResourceType, String, Code)> {
    const BROKER_LOGGER: i8 = 8;
    match resource_type {
        TOPIC => Some((ResourceType::Topic, name.to_string(), DENIED_TOPIC)),
        // Client metrics resources are cluster configs to Kafka too.
        BROKER | BROKER_LOGGER | super::client_metrics::CLIENT_METRICS => Some((
            ResourceType::Cluster,
            CLUSTER_NAME.to_string(),
            Code::ClusterAuthorizationFailed,
        )),
        _ => None,
    }
}

/// One config-resource filter: keeps the resources the caller may act on with `$op` and
/// answers the others with `$resp` (29 for a topic, 31 for broker resources).
macro_rules! config_filter {
    ($(#[$doc:meta])* $name:ident, $req:ty, $resp:ty, $op:expr) => {
        $(#[$doc])*
        pub fn $name(ctx: &BrokerContext, access: &Access, req: &mut $req) -> Vec<$resp> {
            retain(
                access,
                ctx,
                &mut req.resources,
                |r| config_check(ctx, access, $op, r.resource_type, &r.resource_name),
                |r, code| {
                    <$resp>::default()
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name.clone())
                        .with_error_code(code.code())
                        .with_error_message(Some(text(code.to_string())))
                },
            )
        }
    };
}

config_filter!(
    /// DescribeConfigs: DESCRIBE_CONFIGS on the topic (29), or on the cluster for broker
    /// resources (31).
    describe_configs,
    m::DescribeConfigsRequest,
    m::describe_configs_response::DescribeConfigsResult,
    Operation::DescribeConfigs
);
config_filter!(
    /// AlterConfigs: ALTER_CONFIGS on the topic (29) or the cluster (31).
    alter_configs,
    m::AlterConfigsRequest,
    m::alter_configs_response::AlterConfigsResourceResponse,
    Operation::AlterConfigs
);
config_filter!(
    /// IncrementalAlterConfigs: ALTER_CONFIGS on the topic (29) or the cluster (31).
    incremental_alter_configs,
    m::IncrementalAlterConfigsRequest,
    m::incremental_alter_configs_response::AlterConfigsResourceResponse,
    Operation::AlterConfigs
);

fn config_check(
    ctx: &BrokerContext,
    access: &Access,
    op: Operation,
    resource_type: i8,
    name: &StrBytes,
) -> Result<(), Code> {
    match config_resource(resource_type, name.as_str()) {
        Some((rt, name, code)) if !access.allowed(ctx, op, rt, &name) => Err(code),
        _ => Ok(()),
    }
}

/// A request answered as a whole with one error code (31, 30, ...): the boxed answer.
pub type Denied<R> = Result<(), Box<R>>;

/// DescribeLogDirs: DESCRIBE on the cluster; denied, the answer is empty with
/// CLUSTER_AUTHORIZATION_FAILED (the field exists from v3).
pub fn describe_log_dirs(
    ctx: &BrokerContext,
    access: &Access,
    version: i16,
) -> Denied<m::DescribeLogDirsResponse> {
    if !access.enforcing(ctx) || access.cluster(ctx, Operation::Describe) {
        return Ok(());
    }
    let resp = m::DescribeLogDirsResponse::default();
    Err(Box::new(if version >= 3 {
        resp.with_error_code(Code::ClusterAuthorizationFailed.code())
    } else {
        resp
    }))
}

/// DescribeClientQuotas: DESCRIBE_CONFIGS on the cluster.
pub fn describe_client_quotas(
    ctx: &BrokerContext,
    access: &Access,
) -> Denied<m::DescribeClientQuotasResponse> {
    if !access.enforcing(ctx) || access.cluster(ctx, Operation::DescribeConfigs) {
        return Ok(());
    }
    Err(Box::new(
        m::DescribeClientQuotasResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(Some(text("DESCRIBE_CONFIGS on the cluster is required")))
            .with_entries(None),
    ))
}

/// AlterClientQuotas: ALTER_CONFIGS on the cluster; denied, every entry answers 31.
pub fn alter_client_quotas(
    ctx: &BrokerContext,
    access: &Access,
    req: &m::AlterClientQuotasRequest,
) -> Denied<m::AlterClientQuotasResponse> {
    use m::alter_client_quotas_response::{EntityData, EntryData};
    if !access.enforcing(ctx) || access.cluster(ctx, Operation::AlterConfigs) {
        return Ok(());
    }
    let entries = req
        .entries
        .iter()
        .map(|e| {
            EntryData::default()
                .with_error_code(Code::ClusterAuthorizationFailed.code())
                .with_error_message(Some(text("ALTER_CONFIGS on the cluster is required")))
                .with_entity(
                    e.entity
                        .iter()
                        .map(|d| {
                            EntityData::default()
                                .with_entity_type(d.entity_type.clone())
                                .with_entity_name(d.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    Err(Box::new(
        m::AlterClientQuotasResponse::default().with_entries(entries),
    ))
}

/// DeleteGroups: DELETE on each group.
pub fn delete_groups(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::DeleteGroupsRequest,
) -> Vec<m::delete_groups_response::DeletableGroupResult> {
    use m::delete_groups_response::DeletableGroupResult;
    retain(
        access,
        ctx,
        &mut req.groups_names,
        |g| yes_no(access.group(ctx, Operation::Delete, g.as_str())),
        |g, ()| {
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(Code::GroupAuthorizationFailed.code())
        },
    )
}

/// DescribeGroups: DESCRIBE on each group (30), and the groups' `authorized_operations`
/// when asked for.
pub fn describe_groups_before(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::DescribeGroupsRequest,
    version: i16,
) -> Vec<m::describe_groups_response::DescribedGroup> {
    use m::describe_groups_response::DescribedGroup;
    retain(
        access,
        ctx,
        &mut req.groups,
        |g| yes_no(access.group(ctx, Operation::Describe, g.as_str())),
        |g, ()| {
            let d = DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(Code::GroupAuthorizationFailed.code())
                .with_authorized_operations(i32::MIN);
            if version >= 6 {
                d.with_error_message(Some(text("DESCRIBE on the group is required")))
            } else {
                d
            }
        },
    )
}

/// Completes DescribeGroups: the denied groups and, when the authorizer is on and the
/// client asked, each group's authorized operations.
pub fn describe_groups_after(
    ctx: &BrokerContext,
    access: &Access,
    ops_requested: bool,
    resp: &mut m::DescribeGroupsResponse,
    denied: Vec<m::describe_groups_response::DescribedGroup>,
) {
    if access.enforcing(ctx) && ops_requested {
        for g in &mut resp.groups {
            g.authorized_operations =
                access.operations(ctx, ResourceType::Group, g.group_id.as_str());
        }
    }
    resp.groups.extend(denied);
}

/// ConsumerGroupDescribe: DESCRIBE on each group.
pub fn consumer_group_describe_before(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::ConsumerGroupDescribeRequest,
) -> Vec<m::consumer_group_describe_response::DescribedGroup> {
    use m::consumer_group_describe_response::DescribedGroup;
    retain(
        access,
        ctx,
        &mut req.group_ids,
        |g| yes_no(access.group(ctx, Operation::Describe, g.as_str())),
        |g, ()| {
            DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(Code::GroupAuthorizationFailed.code())
                .with_error_message(Some(text("DESCRIBE on the group is required")))
                .with_authorized_operations(i32::MIN)
        },
    )
}

/// Completes ConsumerGroupDescribe (denied groups, authorized operations).
pub fn consumer_group_describe_after(
    ctx: &BrokerContext,
    access: &Access,
    ops_requested: bool,
    resp: &mut m::ConsumerGroupDescribeResponse,
    denied: Vec<m::consumer_group_describe_response::DescribedGroup>,
) {
    if access.enforcing(ctx) && ops_requested {
        for g in &mut resp.groups {
            g.authorized_operations =
                access.operations(ctx, ResourceType::Group, g.group_id.as_str());
        }
    }
    resp.groups.extend(denied);
}

/// ListGroups: DESCRIBE on the cluster lists every group; otherwise only the groups the
/// caller may DESCRIBE (no error, as Kafka does).
pub fn list_groups(ctx: &BrokerContext, access: &Access, resp: &mut m::ListGroupsResponse) {
    if !access.enforcing(ctx)
        || access.may(
            ctx,
            Operation::Describe,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
    {
        return;
    }
    resp.groups.retain(|g| {
        access.may(
            ctx,
            Operation::Describe,
            ResourceType::Group,
            g.group_id.as_str(),
        )
    });
}

/// ConsumerGroupHeartbeat: READ on the group (30), DESCRIBE on every subscribed topic (29).
pub fn consumer_group_heartbeat(
    ctx: &BrokerContext,
    access: &Access,
    req: &m::ConsumerGroupHeartbeatRequest,
) -> Denied<m::ConsumerGroupHeartbeatResponse> {
    if !access.enforcing(ctx) {
        return Ok(());
    }
    let resp = m::ConsumerGroupHeartbeatResponse::default();
    if !access.group(ctx, Operation::Read, req.group_id.as_str()) {
        return Err(Box::new(
            resp.with_error_code(Code::GroupAuthorizationFailed.code())
                .with_error_message(Some(text("READ on the group is required"))),
        ));
    }
    let denied: Vec<&str> = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|t| t.as_str())
        .filter(|t| !access.topic(ctx, Operation::Describe, t))
        .collect();
    if !denied.is_empty() {
        return Err(Box::new(
            resp.with_error_code(DENIED_TOPIC.code())
                .with_error_message(Some(text(format!(
                    "Topic authorization failed for topics {denied:?}"
                )))),
        ));
    }
    Ok(())
}

/// With ACLs enforced, the topics the caller may DESCRIBE, as a filter the group coordinator
/// applies to regex subscriptions (Kafka assigns a regex only the topics its member may see).
pub fn topic_describe_filter(
    ctx: &Arc<BrokerContext>,
    access: &Access,
) -> Option<crate::coordinator::TopicFilter> {
    if !access.enforcing(ctx) {
        return None;
    }
    let (ctx, access) = (Arc::clone(ctx), access.clone());
    Some(crate::coordinator::TopicFilter::new(move |topic| {
        access.may(&ctx, Operation::Describe, ResourceType::Topic, topic)
    }))
}

/// FindCoordinator: DESCRIBE on the group (30) or the transactional id (53) of each key.
/// Applied to the handler's answer.
pub fn find_coordinator(
    ctx: &BrokerContext,
    access: &Access,
    req: &m::FindCoordinatorRequest,
    version: i16,
    resp: &mut m::FindCoordinatorResponse,
) {
    if !access.enforcing(ctx) {
        return;
    }
    let denied = |key: &str| -> Option<Code> {
        match req.key_type {
            0 => (!access.group(ctx, Operation::Describe, key))
                .then_some(Code::GroupAuthorizationFailed),
            1 => (!access.allowed(ctx, Operation::Describe, ResourceType::TransactionalId, key))
                .then_some(Code::TransactionalIdAuthorizationFailed),
            _ => None,
        }
    };
    if version >= 4 {
        for c in &mut resp.coordinators {
            if let Some(code) = denied(c.key.as_str()) {
                c.node_id = BrokerId(-1);
                c.host = StrBytes::default();
                c.port = -1;
                c.error_code = code.code();
                c.error_message = Some(text(code.to_string()));
            }
        }
    } else if let Some(code) = denied(req.key.as_str()) {
        resp.node_id = BrokerId(-1);
        resp.host = StrBytes::default();
        resp.port = -1;
        resp.error_code = code.code();
        if version >= 1 {
            resp.error_message = Some(text(code.to_string()));
        }
    }
}

/// OffsetCommit: READ on the group, else every partition answers 30; then READ on each
/// topic (29).
pub fn offset_commit(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::OffsetCommitRequest,
) -> Result<Vec<m::offset_commit_response::OffsetCommitResponseTopic>, m::OffsetCommitResponse> {
    use m::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let answer = |t: &m::offset_commit_request::OffsetCommitRequestTopic, code: Code| {
        OffsetCommitResponseTopic::default()
            .with_name(t.name.clone())
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code.code())
                    })
                    .collect(),
            )
    };
    if access.enforcing(ctx) && !access.group(ctx, Operation::Read, req.group_id.as_str()) {
        let topics = req
            .topics
            .iter()
            .map(|t| answer(t, Code::GroupAuthorizationFailed))
            .collect();
        return Err(m::OffsetCommitResponse::default().with_topics(topics));
    }
    Ok(retain_topics(
        access,
        ctx,
        Operation::Read,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| answer(t, DENIED_TOPIC),
    ))
}

/// What OffsetFetch must change after its handler.
pub struct OffsetFetchDenials {
    /// v0-7: the group was denied (the whole answer is 30).
    group_denied: bool,
    /// v0-7: requested topics the caller may not DESCRIBE, with their partitions.
    topics: Vec<DeniedPartitions>,
    /// v8+: per group (by position in the answer): denied, or the denied topics.
    groups: Vec<(GroupId, bool, Vec<DeniedPartitions>)>,
}

/// A topic and the requested partitions of it that are denied.
type DeniedPartitions = (TopicName, Vec<i32>);

/// OffsetFetch: DESCRIBE on the group (30) and on each topic: requested partitions of a
/// topic without DESCRIBE answer 29; a fetch of every topic leaves those topics out.
pub fn offset_fetch_before(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::OffsetFetchRequest,
    version: i16,
) -> OffsetFetchDenials {
    let mut d = OffsetFetchDenials {
        group_denied: false,
        topics: Vec::new(),
        groups: Vec::new(),
    };
    if !access.enforcing(ctx) {
        return d;
    }
    if version >= 8 {
        for g in &mut req.groups {
            let denied = !access.group(ctx, Operation::Describe, g.group_id.as_str());
            let mut topics = Vec::new();
            if denied {
                g.topics = Some(Vec::new());
            } else if let Some(ts) = g.topics.as_mut() {
                topics = retain_topics(
                    access,
                    ctx,
                    Operation::Describe,
                    ts,
                    |t| t.name.to_string(),
                    |t| (t.name.clone(), t.partition_indexes.clone()),
                );
            }
            d.groups.push((g.group_id.clone(), denied, topics));
        }
        return d;
    }
    if !access.group(ctx, Operation::Describe, req.group_id.as_str()) {
        d.group_denied = true;
        return d;
    }
    if let Some(ts) = req.topics.as_mut() {
        d.topics = retain_topics(
            access,
            ctx,
            Operation::Describe,
            ts,
            |t| t.name.to_string(),
            |t| (t.name.clone(), t.partition_indexes.clone()),
        );
    }
    d
}

/// The answer of a whole OffsetFetch (v0-7) whose group is denied, if it is.
pub fn offset_fetch_group_denied(
    d: &OffsetFetchDenials,
    req: &m::OffsetFetchRequest,
    version: i16,
) -> Option<m::OffsetFetchResponse> {
    use m::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
    if !d.group_denied {
        return None;
    }
    let code = Code::GroupAuthorizationFailed.code();
    if version >= 2 {
        return Some(m::OffsetFetchResponse::default().with_error_code(code));
    }
    // v1 has no top-level error: every requested partition carries it.
    let topics = req
        .topics
        .iter()
        .flatten()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_metadata(Some(StrBytes::default()))
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Some(m::OffsetFetchResponse::default().with_topics(topics))
}

/// Completes OffsetFetch: drops undescribable topics from "every topic" answers and adds
/// the denied requested partitions (29) and groups (30).
pub fn offset_fetch_after(
    ctx: &BrokerContext,
    access: &Access,
    resp: &mut m::OffsetFetchResponse,
    d: OffsetFetchDenials,
    version: i16,
) {
    use m::offset_fetch_response::{
        OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
        OffsetFetchResponseTopics,
    };
    if !access.enforcing(ctx) {
        return;
    }
    let visible = |t: &TopicName| access.may(ctx, Operation::Describe, ResourceType::Topic, t);
    if version >= 8 {
        for (g, (_, denied, topics)) in resp.groups.iter_mut().zip(d.groups) {
            if denied {
                g.topics.clear();
                g.error_code = Code::GroupAuthorizationFailed.code();
                continue;
            }
            g.topics.retain(|t| visible(&t.name));
            g.topics.extend(topics.into_iter().map(|(name, ps)| {
                OffsetFetchResponseTopics::default()
                    .with_name(name)
                    .with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(StrBytes::default()))
                                    .with_error_code(DENIED_TOPIC.code())
                            })
                            .collect(),
                    )
            }));
        }
        return;
    }
    resp.topics.retain(|t| visible(&t.name));
    resp.topics.extend(d.topics.into_iter().map(|(name, ps)| {
        OffsetFetchResponseTopic::default()
            .with_name(name)
            .with_partitions(
                ps.into_iter()
                    .map(|p| {
                        let r = OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_metadata(Some(StrBytes::default()))
                            .with_error_code(DENIED_TOPIC.code());
                        if version >= 5 {
                            r.with_committed_leader_epoch(-1)
                        } else {
                            r
                        }
                    })
                    .collect(),
            )
    }));
}

/// What Metadata must change after its handler: denied named topics, and whether the
/// handler's topics must all be dropped (every named topic was denied).
pub struct MetadataDenials {
    denied: Vec<m::metadata_response::MetadataResponseTopic>,
    all_named_denied: bool,
    list_all: bool,
    topic_ops: bool,
    cluster_ops: bool,
}

/// Takes named topics the caller may not DESCRIBE (29) or not auto-create (3) out of a
/// Metadata request.
pub fn metadata_before(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::MetadataRequest,
    version: i16,
) -> MetadataDenials {
    use m::metadata_response::MetadataResponseTopic;
    let list_all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut out = MetadataDenials {
        denied: Vec::new(),
        all_named_denied: false,
        list_all,
        topic_ops: version >= 8 && req.include_topic_authorized_operations,
        cluster_ops: (8..=10).contains(&version) && req.include_cluster_authorized_operations,
    };
    if list_all {
        return out;
    }
    let Some(topics) = req.topics.as_mut() else {
        return out;
    };
    let before = topics.len();
    out.denied = retain(
        access,
        ctx,
        topics,
        |t| {
            let Some(name) = t.name.as_ref() else {
                return Ok(());
            };
            if !access.topic(ctx, Operation::Describe, name) {
                return Err(DENIED_TOPIC);
            }
            if ctx.catalog.get(name).is_none()
                && !access.cluster(ctx, Operation::Create)
                && !access.topic(ctx, Operation::Create, name)
            {
                return Err(Code::UnknownTopicOrPartition);
            }
            Ok(())
        },
        |t, code| {
            MetadataResponseTopic::default()
                .with_error_code(code.code())
                .with_name(t.name.clone())
                .with_topic_authorized_operations(i32::MIN)
        },
    );
    out.all_named_denied = before > 0 && topics.is_empty();
    out
}

/// Applies [`metadata_before`]'s result, fills the authorized operations asked for, and
/// advertises the caller's listener.
pub fn metadata_after(
    ctx: &BrokerContext,
    access: &Access,
    resp: &mut m::MetadataResponse,
    d: MetadataDenials,
) {
    // A single node is advertised on the caller's listener; a cluster's brokers already are.
    if ctx.cluster.is_none() {
        let (host, port) = &access.listener.advertised;
        for b in &mut resp.brokers {
            b.host = StrBytes::from_string(host.clone());
            b.port = *port;
        }
    }
    if d.cluster_ops {
        resp.cluster_authorized_operations = access.cluster_operations(ctx);
    }
    if d.topic_ops {
        for t in resp.topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(n) = &t.name {
                t.topic_authorized_operations = access.operations(ctx, ResourceType::Topic, n);
            }
        }
    }
    if !access.enforcing(ctx) {
        return;
    }
    if d.list_all {
        resp.topics.retain(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| access.may(ctx, Operation::Describe, ResourceType::Topic, n))
        });
    }
    if d.all_named_denied {
        resp.topics.clear();
    }
    resp.topics.extend(d.denied);
}

/// DescribeCluster: open to every client, as in Kafka; `cluster_authorized_operations`
/// when asked for.
pub fn describe_cluster(
    ctx: &BrokerContext,
    access: &Access,
    ops_requested: bool,
    resp: &mut m::DescribeClusterResponse,
) {
    if ops_requested {
        resp.cluster_authorized_operations = access.cluster_operations(ctx);
    }
}

/// TxnOffsetCommit: WRITE on the transactional id, else every partition answers 53; READ on
/// the group, else 30; then READ on each topic (29 for its partitions).
pub fn txn_offset_commit(
    ctx: &BrokerContext,
    access: &Access,
    req: &mut m::TxnOffsetCommitRequest,
) -> Result<
    Vec<m::txn_offset_commit_response::TxnOffsetCommitResponseTopic>,
    m::TxnOffsetCommitResponse,
> {
    use m::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let answer = |t: &m::txn_offset_commit_request::TxnOffsetCommitRequestTopic, code: Code| {
        TxnOffsetCommitResponseTopic::default()
            .with_name(t.name.clone())
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code.code())
                    })
                    .collect(),
            )
    };
    if !access.enforcing(ctx) {
        return Ok(Vec::new());
    }
    let denied = if !access.allowed(
        ctx,
        Operation::Write,
        ResourceType::TransactionalId,
        req.transactional_id.as_str(),
    ) {
        Some(Code::TransactionalIdAuthorizationFailed)
    } else if !access.group(ctx, Operation::Read, req.group_id.as_str()) {
        Some(Code::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(code) = denied {
        let topics = req.topics.iter().map(|t| answer(t, code)).collect();
        return Err(m::TxnOffsetCommitResponse::default().with_topics(topics));
    }
    Ok(retain_topics(
        access,
        ctx,
        Operation::Read,
        &mut req.topics,
        |t| t.name.to_string(),
        |t| answer(t, DENIED_TOPIC),
    ))
}

/// WriteTxnMarkers: only brokers write transaction markers (CLUSTER_ACTION on the cluster, as
/// in Kafka); otherwise every partition of the request answers CLUSTER_AUTHORIZATION_FAILED.
pub fn write_txn_markers(
    ctx: &BrokerContext,
    access: &Access,
    req: &m::WriteTxnMarkersRequest,
) -> Denied<m::WriteTxnMarkersResponse> {
    use m::write_txn_markers_response as r;
    if !access.enforcing(ctx) || access.cluster(ctx, Operation::ClusterAction) {
        return Ok(());
    }
    let code = Code::ClusterAuthorizationFailed.code();
    let markers = req
        .markers
        .iter()
        .map(|marker| {
            let topics = marker
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            r::WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect();
                    r::WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            r::WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics)
        })
        .collect();
    Err(Box::new(
        m::WriteTxnMarkersResponse::default().with_markers(markers),
    ))
}
