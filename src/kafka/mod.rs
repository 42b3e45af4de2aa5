//! The Kafka protocol layer: decodes a frame's header and body with `kafka-protocol`, checks the
//! version against the one table of supported APIs ([`SUPPORTED`], which is also the ApiVersions
//! answer), and calls one handler per API. Handlers speak to storage through [`BrokerContext`]
//! and the shards, never to sockets; they run on the shard that owns the connection.
//!
//! Requests are handled in two phases so that pipelining keeps order: [`dispatch`] runs in the
//! connection's read loop (it decodes and, for Produce, queues the appends on the owning shards
//! in request order) and returns the rest of the work as a future whose output is the encoded
//! response, written back in request order by `net`.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod authz;
mod client_metrics;
mod client_quotas;
mod create_acls;
mod create_delegation_token;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_cluster;
mod describe_configs;
mod describe_delegation_token;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
pub mod error;
mod expire_delegation_token;
mod fetch;
pub mod frame;
mod get_telemetry_subscriptions;
mod init_producer_id;
mod list_config_resources;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod push_telemetry;
mod reassignments;
mod renew_delegation_token;
mod request_quota;
mod sasl_authenticate;
mod sasl_handshake;
mod scram_credentials;
// Consumer groups and committed offsets (served by `crate::coordinator`).
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod delete_groups;
mod describe_groups;
mod find_coordinator;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod sync_group;
mod txn_offset_commit;
pub mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::auth::acl::Operation;
use crate::auth::{SecurityProtocol, Session};
use crate::context::BrokerContext;
use crate::quota;
pub use authz::Access;

/// The rest of a request's work, yielding what to write back.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What a handled request writes back.
#[derive(Debug)]
pub enum Reply {
    /// An encoded response frame.
    Frame(Bytes),
    /// An encoded response frame in chunks written back to back (vectored I/O): large
    /// payloads such as a fetch's record sets are referenced, not copied, or left in the
    /// segment files for `sendfile` ([`frame`]).
    Vectored(Vec<frame::Chunk>),
    /// Nothing (`acks=0` produce); the next response keeps its place.
    Nothing,
    /// The response could not be encoded: close the connection rather than leave the client
    /// waiting for an answer that will never come.
    Close,
}

/// What the connection should do with a frame.
pub enum Dispatch {
    /// Queue this future; its output is written in request order.
    Respond(ResponseFuture),
    /// Close the connection (malformed or unsupported request); the reason is logged.
    Close(String),
}

/// Every API the broker serves with the versions it implements. The ApiVersions response and
/// the version check both come from this table.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, produce::VERSIONS.0, produce::VERSIONS.1),
    (ApiKey::Fetch, fetch::VERSIONS.0, fetch::VERSIONS.1),
    (
        ApiKey::ListOffsets,
        list_offsets::VERSIONS.0,
        list_offsets::VERSIONS.1,
    ),
    (ApiKey::Metadata, metadata::VERSIONS.0, metadata::VERSIONS.1),
    (
        ApiKey::ApiVersions,
        api_versions::VERSIONS.0,
        api_versions::VERSIONS.1,
    ),
    (
        ApiKey::CreateTopics,
        create_topics::VERSIONS.0,
        create_topics::VERSIONS.1,
    ),
    (
        ApiKey::DeleteTopics,
        delete_topics::VERSIONS.0,
        delete_topics::VERSIONS.1,
    ),
    (
        ApiKey::DeleteRecords,
        delete_records::VERSIONS.0,
        delete_records::VERSIONS.1,
    ),
    (
        ApiKey::DescribeConfigs,
        describe_configs::VERSIONS.0,
        describe_configs::VERSIONS.1,
    ),
    (
        ApiKey::AlterConfigs,
        alter_configs::VERSIONS.0,
        alter_configs::VERSIONS.1,
    ),
    (
        ApiKey::IncrementalAlterConfigs,
        alter_configs::INCREMENTAL_VERSIONS.0,
        alter_configs::INCREMENTAL_VERSIONS.1,
    ),
    (
        ApiKey::CreatePartitions,
        create_partitions::VERSIONS.0,
        create_partitions::VERSIONS.1,
    ),
    (
        ApiKey::DescribeTopicPartitions,
        describe_topic_partitions::VERSIONS.0,
        describe_topic_partitions::VERSIONS.1,
    ),
    (
        ApiKey::DescribeQuorum,
        describe_quorum::VERSIONS.0,
        describe_quorum::VERSIONS.1,
    ),
    (
        ApiKey::ElectLeaders,
        elect_leaders::VERSIONS.0,
        elect_leaders::VERSIONS.1,
    ),
    (
        ApiKey::AlterPartitionReassignments,
        reassignments::ALTER_VERSIONS.0,
        reassignments::ALTER_VERSIONS.1,
    ),
    (
        ApiKey::ListPartitionReassignments,
        reassignments::LIST_VERSIONS.0,
        reassignments::LIST_VERSIONS.1,
    ),
    (
        ApiKey::DescribeCluster,
        describe_cluster::VERSIONS.0,
        describe_cluster::VERSIONS.1,
    ),
    (
        ApiKey::DescribeLogDirs,
        describe_log_dirs::VERSIONS.0,
        describe_log_dirs::VERSIONS.1,
    ),
    (
        ApiKey::OffsetForLeaderEpoch,
        offset_for_leader_epoch::VERSIONS.0,
        offset_for_leader_epoch::VERSIONS.1,
    ),
    (
        ApiKey::InitProducerId,
        init_producer_id::VERSIONS.0,
        init_producer_id::VERSIONS.1,
    ),
    (
        ApiKey::FindCoordinator,
        find_coordinator::VERSIONS.0,
        find_coordinator::VERSIONS.1,
    ),
    (
        ApiKey::JoinGroup,
        join_group::VERSIONS.0,
        join_group::VERSIONS.1,
    ),
    (
        ApiKey::SyncGroup,
        sync_group::VERSIONS.0,
        sync_group::VERSIONS.1,
    ),
    (
        ApiKey::Heartbeat,
        heartbeat::VERSIONS.0,
        heartbeat::VERSIONS.1,
    ),
    (
        ApiKey::LeaveGroup,
        leave_group::VERSIONS.0,
        leave_group::VERSIONS.1,
    ),
    (
        ApiKey::OffsetCommit,
        offset_commit::VERSIONS.0,
        offset_commit::VERSIONS.1,
    ),
    (
        ApiKey::OffsetFetch,
        offset_fetch::VERSIONS.0,
        offset_fetch::VERSIONS.1,
    ),
    (
        ApiKey::ListGroups,
        list_groups::VERSIONS.0,
        list_groups::VERSIONS.1,
    ),
    (
        ApiKey::DescribeGroups,
        describe_groups::VERSIONS.0,
        describe_groups::VERSIONS.1,
    ),
    (
        ApiKey::DeleteGroups,
        delete_groups::VERSIONS.0,
        delete_groups::VERSIONS.1,
    ),
    (
        ApiKey::OffsetDelete,
        offset_delete::VERSIONS.0,
        offset_delete::VERSIONS.1,
    ),
    (
        ApiKey::ConsumerGroupHeartbeat,
        consumer_group_heartbeat::VERSIONS.0,
        consumer_group_heartbeat::VERSIONS.1,
    ),
    (
        ApiKey::ConsumerGroupDescribe,
        consumer_group_describe::VERSIONS.0,
        consumer_group_describe::VERSIONS.1,
    ),
    (
        ApiKey::DescribeProducers,
        describe_producers::VERSIONS.0,
        describe_producers::VERSIONS.1,
    ),
    (
        ApiKey::AddPartitionsToTxn,
        add_partitions_to_txn::VERSIONS.0,
        add_partitions_to_txn::VERSIONS.1,
    ),
    (
        ApiKey::AddOffsetsToTxn,
        add_offsets_to_txn::VERSIONS.0,
        add_offsets_to_txn::VERSIONS.1,
    ),
    (ApiKey::EndTxn, end_txn::VERSIONS.0, end_txn::VERSIONS.1),
    (
        ApiKey::DescribeTransactions,
        describe_transactions::DESCRIBE_VERSIONS.0,
        describe_transactions::DESCRIBE_VERSIONS.1,
    ),
    (
        ApiKey::ListTransactions,
        describe_transactions::LIST_VERSIONS.0,
        describe_transactions::LIST_VERSIONS.1,
    ),
    (
        ApiKey::WriteTxnMarkers,
        write_txn_markers::VERSIONS.0,
        write_txn_markers::VERSIONS.1,
    ),
    (
        ApiKey::TxnOffsetCommit,
        txn_offset_commit::VERSIONS.0,
        txn_offset_commit::VERSIONS.1,
    ),
    (
        ApiKey::DescribeClientQuotas,
        client_quotas::VERSIONS.0,
        client_quotas::VERSIONS.1,
    ),
    (
        ApiKey::AlterClientQuotas,
        client_quotas::VERSIONS.0,
        client_quotas::VERSIONS.1,
    ),
    (
        ApiKey::GetTelemetrySubscriptions,
        get_telemetry_subscriptions::VERSIONS.0,
        get_telemetry_subscriptions::VERSIONS.1,
    ),
    (
        ApiKey::PushTelemetry,
        push_telemetry::VERSIONS.0,
        push_telemetry::VERSIONS.1,
    ),
    (
        ApiKey::ListConfigResources,
        list_config_resources::VERSIONS.0,
        list_config_resources::VERSIONS.1,
    ),
    (
        ApiKey::SaslHandshake,
        sasl_handshake::VERSIONS.0,
        sasl_handshake::VERSIONS.1,
    ),
    (
        ApiKey::SaslAuthenticate,
        sasl_authenticate::VERSIONS.0,
        sasl_authenticate::VERSIONS.1,
    ),
    (
        ApiKey::CreateAcls,
        create_acls::VERSIONS.0,
        create_acls::VERSIONS.1,
    ),
    (
        ApiKey::DescribeAcls,
        describe_acls::VERSIONS.0,
        describe_acls::VERSIONS.1,
    ),
    (
        ApiKey::DeleteAcls,
        delete_acls::VERSIONS.0,
        delete_acls::VERSIONS.1,
    ),
    (
        ApiKey::DescribeUserScramCredentials,
        scram_credentials::VERSIONS.0,
        scram_credentials::VERSIONS.1,
    ),
    (
        ApiKey::AlterUserScramCredentials,
        scram_credentials::VERSIONS.0,
        scram_credentials::VERSIONS.1,
    ),
    (
        ApiKey::CreateDelegationToken,
        create_delegation_token::VERSIONS.0,
        create_delegation_token::VERSIONS.1,
    ),
    (
        ApiKey::RenewDelegationToken,
        renew_delegation_token::VERSIONS.0,
        renew_delegation_token::VERSIONS.1,
    ),
    (
        ApiKey::ExpireDelegationToken,
        expire_delegation_token::VERSIONS.0,
        expire_delegation_token::VERSIONS.1,
    ),
    (
        ApiKey::DescribeDelegationToken,
        describe_delegation_token::VERSIONS.0,
        describe_delegation_token::VERSIONS.1,
    ),
];

fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

/// Who sent a request, as group membership records it: the header's client id and the peer
/// address in Kafka's `/ip` form.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Client id from the request header (empty if absent).
    pub client_id: String,
    /// `/ip` of the peer.
    pub host: String,
}

impl Caller {
    fn new(header: &RequestHeader, peer: std::net::SocketAddr) -> Caller {
        Caller {
            client_id: header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            host: format!("/{}", peer.ip()),
        }
    }
}

/// Decodes a frame and starts handling it, counting it and timing it until its response is
/// ready (`kafka_network_requestmetrics_*`).
pub async fn dispatch(
    frame: Bytes,
    ctx: &Arc<BrokerContext>,
    peer: std::net::SocketAddr,
    session: &mut Session,
) -> Dispatch {
    let started = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    // net guarantees at least 8 bytes: api key, version, correlation id.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    // A span per request at debug level (target `esker::request`); disabled, it costs a check.
    let span = crate::metrics::request_span(&frame, peer);
    // RequestBytes counts the 4-byte size prefix too, as Kafka's does.
    let size = frame.len() + 4;
    let client_id = if ctx.quotas.has_request_quotas() {
        header_client_id(&frame)
    } else {
        String::new()
    };
    let dispatch = if span.is_disabled() {
        handle(frame, ctx, peer, session).await
    } else {
        tracing::Instrument::instrument(handle(frame, ctx, peer, session), span.clone()).await
    };
    let Dispatch::Respond(fut) = dispatch else {
        return dispatch;
    };
    // ApiVersions and SASL come before a client is known, as in Kafka's network layer.
    let exempt = [
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
    ]
    .iter()
    .any(|k| *k as i16 == raw_key);
    let fut = if !exempt && ctx.quotas.has_request_quotas() {
        request_quota::meter(
            ctx,
            session.principal.name.clone(),
            client_id,
            started.elapsed(),
            fut,
        )
    } else {
        fut
    };
    if metrics.api(raw_key).is_none() {
        return Dispatch::Respond(fut);
    }
    let fut = Box::pin(async move {
        let reply = fut.await;
        if let Some(api) = metrics.api(raw_key) {
            api.count(version);
            api.observe_size(size);
            api.observe(started.elapsed());
        }
        reply
    });
    if span.is_disabled() {
        return Dispatch::Respond(fut);
    }
    Dispatch::Respond(Box::pin(tracing::Instrument::instrument(
        async move {
            let reply = fut.await;
            tracing::debug!(target: "esker::request", elapsed_us = started.elapsed().as_micros() as u64, "request done");
            reply
        },
        span,
    )))
}

/// The client id of a request header (v1 and v2 headers: a nullable string after the
/// correlation id), read without decoding the request.
fn header_client_id(frame: &[u8]) -> String {
    let Some(len) = frame.get(8..10).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return String::new();
    };
    usize::try_from(len)
        .ok()
        .and_then(|len| frame.get(10..10 + len))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

async fn handle(
    mut frame: Bytes,
    ctx: &Arc<BrokerContext>,
    peer: std::net::SocketAddr,
    session: &mut Session,
) -> Dispatch {
    // net guarantees at least 8 bytes: api key, version, correlation id.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Dispatch::Close(format!("unknown api key {raw_key}"));
    };
    if !supported(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer a version we do not know with a v0 error body listing ours.
            let body = api_versions::response(
                kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
            );
            return ready(encode(correlation_id, 0, &body));
        }
        return Dispatch::Close(format!("unsupported version {version} of {key:?}"));
    }
    let header_version = key.request_header_version(version);
    let header = match RequestHeader::decode(&mut frame, header_version) {
        Ok(h) => h,
        Err(e) => return Dispatch::Close(format!("malformed {key:?} v{version} header: {e}")),
    };
    tracing::trace!(api = ?key, version, correlation_id, client = ?header.client_id, "request");
    if !session.authenticated()
        && !matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Dispatch::Close(format!(
            "{key:?} before SASL authentication on listener {}",
            session.listener.name
        ));
    }
    if session.expired()
        && !matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        // KIP-152: Kafka closes a connection whose session ended without re-authentication.
        return Dispatch::Close(format!(
            "{key:?} after the SASL session of {} expired (connections.max.reauth.ms)",
            session.principal
        ));
    }
    let access = session.access();
    let ctx = ctx.clone();
    macro_rules! decode {
        ($ty:ty) => {
            match <$ty>::decode(&mut frame, version) {
                Ok(r) => r,
                Err(e) => {
                    return Dispatch::Close(format!("malformed {key:?} v{version} request: {e}"))
                }
            }
        };
    }
    macro_rules! respond {
        ($fut:expr) => {{
            let fut = $fut;
            Dispatch::Respond(Box::pin(async move {
                let resp = fut.await;
                encode(correlation_id, version, &resp)
            }))
        }};
    }
    // A whole request denied: answer its response type with one error code.
    macro_rules! deny {
        ($allowed:expr, $resp:expr, $code:expr) => {
            if !$allowed {
                let resp = $resp.with_error_code($code.code());
                return ready(encode(correlation_id, version, &resp));
            }
        };
    }
    use error::Code as C;
    use kafka_protocol::messages as m;
    match key {
        ApiKey::ApiVersions => {
            let req = decode!(m::ApiVersionsRequest);
            if version >= 3 {
                // KIP-511: kept for client telemetry's selectors (KIP-714).
                session.client_software = Some((
                    req.client_software_name.to_string(),
                    req.client_software_version.to_string(),
                ));
            }
            ready(encode(correlation_id, version, &api_versions::response(0)))
        }
        ApiKey::Metadata => {
            let mut req = decode!(m::MetadataRequest);
            let denials = authz::metadata_before(&ctx, &access, &mut req, version);
            let listener = session.listener.clone();
            respond!(async move {
                let mut resp = metadata::handle(ctx.clone(), req, version, &listener.name).await;
                authz::metadata_after(&ctx, &access, &mut resp, denials);
                resp
            })
        }
        ApiKey::SaslHandshake => {
            let req = decode!(m::SaslHandshakeRequest);
            let resp = sasl_handshake::handle(session, &ctx.security, &req);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::SaslAuthenticate => {
            let req = decode!(m::SaslAuthenticateRequest);
            let resp = sasl_authenticate::handle(session, &ctx.security, &req, version);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::CreateAcls => {
            let req = decode!(m::CreateAclsRequest);
            respond!(create_acls::handle(ctx, req, access))
        }
        ApiKey::DescribeAcls => {
            let req = decode!(m::DescribeAclsRequest);
            respond!(describe_acls::handle(ctx, req, access))
        }
        ApiKey::DeleteAcls => {
            let req = decode!(m::DeleteAclsRequest);
            respond!(delete_acls::handle(ctx, req, access))
        }
        ApiKey::DescribeUserScramCredentials => {
            let req = decode!(m::DescribeUserScramCredentialsRequest);
            respond!(scram_credentials::describe(ctx, req, access))
        }
        ApiKey::AlterUserScramCredentials => {
            let req = decode!(m::AlterUserScramCredentialsRequest);
            respond!(scram_credentials::alter(ctx, req, access))
        }
        ApiKey::CreateDelegationToken => {
            let req = decode!(m::CreateDelegationTokenRequest);
            respond!(create_delegation_token::handle(ctx, req, version, access))
        }
        ApiKey::RenewDelegationToken => {
            let req = decode!(m::RenewDelegationTokenRequest);
            respond!(renew_delegation_token::handle(ctx, req, access))
        }
        ApiKey::ExpireDelegationToken => {
            let req = decode!(m::ExpireDelegationTokenRequest);
            respond!(expire_delegation_token::handle(ctx, req, access))
        }
        ApiKey::DescribeDelegationToken => {
            let req = decode!(m::DescribeDelegationTokenRequest);
            let resp = describe_delegation_token::handle(&ctx, req, version, &access);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::CreateTopics => {
            let mut req = decode!(m::CreateTopicsRequest);
            let denied = authz::create_topics(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = create_topics::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::DeleteRecords => {
            let mut req = decode!(m::DeleteRecordsRequest);
            let denied = authz::delete_records(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = delete_records::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::DeleteTopics => {
            let mut req = decode!(m::DeleteTopicsRequest);
            let denied = authz::delete_topics(&ctx, &access, &mut req, version);
            respond!(async move {
                let mut resp = delete_topics::handle(ctx, req, version).await;
                resp.responses.extend(denied);
                resp
            })
        }
        ApiKey::ListOffsets => {
            let mut req = decode!(m::ListOffsetsRequest);
            let denied = authz::list_offsets(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = list_offsets::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::Fetch => {
            let mut req = decode!(m::FetchRequest);
            let replica_id = if version >= 15 {
                req.replica_state.replica_id.0
            } else {
                req.replica_id.0
            };
            // Only brokers replicate: CLUSTER_ACTION on the cluster, as in Kafka.
            if replica_id >= 0 && !access.cluster(&ctx, Operation::ClusterAction) {
                tracing::info!(principal = %access.principal.name, replica_id, "replica fetch denied");
                let resp = m::FetchResponse::default()
                    .with_error_code(error::Code::ClusterAuthorizationFailed.code());
                return ready(encode(correlation_id, version, &resp));
            }
            let denied = authz::fetch(&ctx, &access, &mut req, version);
            let caller = Caller::new(&header, peer);
            let user = access.principal.name.clone();
            let quotas = ctx.clone();
            // Without TLS the writer can send record sets straight from the segment files.
            let sendfile = ctx.config.fetch_sendfile
                && matches!(
                    session.listener.protocol,
                    SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext
                );
            let listener = session.listener.clone();
            let fut = async move {
                let mut fetched =
                    fetch::handle(ctx.clone(), req, version, sendfile, &listener.name).await;
                let resp = &mut fetched.response;
                resp.responses.extend(denied);
                let bytes = count_fetch(&ctx, resp);
                resp.throttle_time_ms =
                    throttle(&quotas, &caller, &user, quota::Kind::Fetch, bytes).await;
                if replica_id >= 0 {
                    request_quota::exempt();
                } else {
                    request_quota::charge(resp);
                }
                fetched
            };
            // Record sets go out by reference (vectored write) or from the files (sendfile),
            // not copied into the frame.
            Dispatch::Respond(Box::pin(async move {
                fetch::reply(correlation_id, version, fut.await)
            }))
        }
        ApiKey::GetTelemetrySubscriptions => {
            let req = decode!(m::GetTelemetrySubscriptionsRequest);
            let client = get_telemetry_subscriptions::client_info(&header, peer, session);
            let resp = get_telemetry_subscriptions::handle(&ctx, &req, &client);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::PushTelemetry => {
            let req = decode!(m::PushTelemetryRequest);
            let client = get_telemetry_subscriptions::client_info(&header, peer, session);
            let resp = push_telemetry::handle(&ctx, &req, &client);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::ListConfigResources => {
            let req = decode!(m::ListConfigResourcesRequest);
            deny!(
                access.cluster(&ctx, Operation::DescribeConfigs),
                m::ListConfigResourcesResponse::default(),
                C::ClusterAuthorizationFailed
            );
            let resp = list_config_resources::handle(&ctx, &req, version, &session.listener.name);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::DescribeClientQuotas => {
            let req = decode!(m::DescribeClientQuotasRequest);
            if let Err(resp) = authz::describe_client_quotas(&ctx, &access) {
                return ready(encode(correlation_id, version, &*resp));
            }
            respond!(client_quotas::describe(ctx, req, version))
        }
        ApiKey::AlterClientQuotas => {
            let req = decode!(m::AlterClientQuotasRequest);
            if let Err(resp) = authz::alter_client_quotas(&ctx, &access, &req) {
                return ready(encode(correlation_id, version, &*resp));
            }
            respond!(client_quotas::alter(ctx, req, version))
        }
        ApiKey::DescribeConfigs => {
            let mut req = decode!(m::DescribeConfigsRequest);
            let denied = authz::describe_configs(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = describe_configs::handle(ctx, req, version).await;
                resp.results.extend(denied);
                resp
            })
        }
        ApiKey::AlterConfigs => {
            let mut req = decode!(m::AlterConfigsRequest);
            let denied = authz::alter_configs(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = alter_configs::handle(ctx, req, version).await;
                resp.responses.extend(denied);
                resp
            })
        }
        ApiKey::IncrementalAlterConfigs => {
            let mut req = decode!(m::IncrementalAlterConfigsRequest);
            let denied = authz::incremental_alter_configs(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = alter_configs::handle_incremental(ctx, req, version).await;
                resp.responses.extend(denied);
                resp
            })
        }
        ApiKey::CreatePartitions => {
            let mut req = decode!(m::CreatePartitionsRequest);
            let denied = authz::create_partitions(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = create_partitions::handle(ctx, req, version).await;
                resp.results.extend(denied);
                resp
            })
        }
        ApiKey::DescribeTopicPartitions => {
            let req = decode!(m::DescribeTopicPartitionsRequest);
            respond!(describe_topic_partitions::handle(ctx, req, access))
        }
        ApiKey::ElectLeaders => {
            let req = decode!(m::ElectLeadersRequest);
            if !access.cluster(&ctx, Operation::Alter) {
                let resp = elect_leaders::denied(req, version);
                return ready(encode(correlation_id, version, &resp));
            }
            respond!(elect_leaders::handle(ctx, req))
        }
        ApiKey::AlterPartitionReassignments => {
            let req = decode!(m::AlterPartitionReassignmentsRequest);
            deny!(
                access.cluster(&ctx, Operation::Alter),
                m::AlterPartitionReassignmentsResponse::default(),
                C::ClusterAuthorizationFailed
            );
            respond!(reassignments::alter(ctx, req, version))
        }
        ApiKey::ListPartitionReassignments => {
            let req = decode!(m::ListPartitionReassignmentsRequest);
            deny!(
                access.cluster(&ctx, Operation::Describe),
                m::ListPartitionReassignmentsResponse::default(),
                C::ClusterAuthorizationFailed
            );
            let resp = reassignments::list(&ctx, req);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::DescribeQuorum => {
            let req = decode!(m::DescribeQuorumRequest);
            deny!(
                access.cluster(&ctx, Operation::Describe),
                m::DescribeQuorumResponse::default(),
                C::ClusterAuthorizationFailed
            );
            respond!(describe_quorum::handle(ctx, req, version))
        }
        ApiKey::DescribeCluster => {
            let req = decode!(m::DescribeClusterRequest);
            let ops = req.include_cluster_authorized_operations;
            respond!(async move {
                let listener = access.listener.name.clone();
                let mut resp = describe_cluster::handle(ctx.clone(), req, version, &listener).await;
                authz::describe_cluster(&ctx, &access, ops, &mut resp);
                let (host, port) = &access.listener.advertised;
                // A cluster's brokers were given the address of this listener already.
                for b in resp.brokers.iter_mut().filter(|_| ctx.cluster.is_none()) {
                    b.host = kafka_protocol::protocol::StrBytes::from_string(host.clone());
                    b.port = *port;
                }
                resp
            })
        }
        ApiKey::DescribeLogDirs => {
            let req = decode!(m::DescribeLogDirsRequest);
            if let Err(resp) = authz::describe_log_dirs(&ctx, &access, version) {
                return ready(encode(correlation_id, version, &*resp));
            }
            respond!(describe_log_dirs::handle(ctx, req, version))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut req = decode!(m::OffsetForLeaderEpochRequest);
            let denied = authz::offset_for_leader_epoch(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = offset_for_leader_epoch::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::DescribeProducers => {
            let mut req = decode!(m::DescribeProducersRequest);
            let denied = authz::describe_producers(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = describe_producers::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::AddPartitionsToTxn => {
            let req = decode!(m::AddPartitionsToTxnRequest);
            respond!(add_partitions_to_txn::handle(ctx, req, version, access))
        }
        ApiKey::AddOffsetsToTxn => {
            let req = decode!(m::AddOffsetsToTxnRequest);
            let empty = m::AddOffsetsToTxnResponse::default();
            deny!(
                access.allowed(
                    &ctx,
                    Operation::Write,
                    crate::auth::ResourceType::TransactionalId,
                    req.transactional_id.as_str()
                ),
                empty.clone(),
                C::TransactionalIdAuthorizationFailed
            );
            deny!(
                access.allowed(
                    &ctx,
                    Operation::Read,
                    crate::auth::ResourceType::Group,
                    req.group_id.as_str()
                ),
                empty,
                C::GroupAuthorizationFailed
            );
            respond!(add_offsets_to_txn::handle(ctx, req, version))
        }
        ApiKey::EndTxn => {
            let req = decode!(m::EndTxnRequest);
            deny!(
                access.allowed(
                    &ctx,
                    Operation::Write,
                    crate::auth::ResourceType::TransactionalId,
                    req.transactional_id.as_str()
                ),
                m::EndTxnResponse::default(),
                C::TransactionalIdAuthorizationFailed
            );
            respond!(end_txn::handle(ctx, req, version))
        }
        ApiKey::DescribeTransactions => {
            let req = decode!(m::DescribeTransactionsRequest);
            let resp = describe_transactions::describe(&ctx, req, &access);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::ListTransactions => {
            let req = decode!(m::ListTransactionsRequest);
            let resp = describe_transactions::list(&ctx, req, &access);
            ready(encode(correlation_id, version, &resp))
        }
        ApiKey::WriteTxnMarkers => {
            let req = decode!(m::WriteTxnMarkersRequest);
            if let Err(resp) = authz::write_txn_markers(&ctx, &access, &req) {
                return ready(encode(correlation_id, version, &*resp));
            }
            respond!(write_txn_markers::handle(ctx, req, version))
        }

        ApiKey::TxnOffsetCommit => {
            let mut req = decode!(m::TxnOffsetCommitRequest);
            let denied = match authz::txn_offset_commit(&ctx, &access, &mut req) {
                Ok(denied) => denied,
                Err(resp) => return ready(encode(correlation_id, version, &resp)),
            };
            respond!(async move {
                let mut resp = txn_offset_commit::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::InitProducerId => {
            let req = decode!(m::InitProducerIdRequest);
            match req.transactional_id.as_ref() {
                Some(t) => deny!(
                    access.allowed(
                        &ctx,
                        Operation::Write,
                        crate::auth::ResourceType::TransactionalId,
                        t.as_str()
                    ),
                    m::InitProducerIdResponse::default()
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                    C::TransactionalIdAuthorizationFailed
                ),
                None => deny!(
                    access.cluster(&ctx, Operation::IdempotentWrite),
                    m::InitProducerIdResponse::default()
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                    C::ClusterAuthorizationFailed
                ),
            }
            respond!(init_producer_id::handle(ctx, req, version))
        }
        ApiKey::FindCoordinator => {
            let req = decode!(m::FindCoordinatorRequest);
            respond!(async move {
                let checked = req.clone();
                let listener = access.listener.name.clone();
                let mut resp = find_coordinator::handle(ctx.clone(), req, version, &listener).await;
                authz::find_coordinator(&ctx, &access, &checked, version, &mut resp);
                if ctx.cluster.is_some() {
                    return resp;
                }
                // The listener the client came through is the one to advertise.
                let (host, port) = &access.listener.advertised;
                let host = kafka_protocol::protocol::StrBytes::from_string(host.clone());
                // Only the fields of this version may be set (others fail to encode).
                if version < 4 && resp.node_id.0 >= 0 && resp.port >= 0 {
                    resp.host = host.clone();
                    resp.port = *port;
                }
                for c in resp.coordinators.iter_mut().filter(|c| c.node_id.0 >= 0) {
                    c.host = host.clone();
                    c.port = *port;
                }
                resp
            })
        }
        ApiKey::JoinGroup => {
            let req = decode!(m::JoinGroupRequest);
            deny!(
                access.group(&ctx, Operation::Read, req.group_id.as_str()),
                m::JoinGroupResponse::default(),
                C::GroupAuthorizationFailed
            );
            let caller = Caller::new(&header, peer);
            respond!(join_group::handle(ctx, req, version, caller))
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let req = decode!(m::ConsumerGroupHeartbeatRequest);
            if let Err(resp) = authz::consumer_group_heartbeat(&ctx, &access, &req) {
                return ready(encode(correlation_id, version, &*resp));
            }
            let caller = Caller::new(&header, peer);
            let describable = authz::topic_describe_filter(&ctx, &access);
            respond!(consumer_group_heartbeat::handle(
                ctx,
                req,
                version,
                caller,
                describable
            ))
        }
        ApiKey::ConsumerGroupDescribe => {
            let mut req = decode!(m::ConsumerGroupDescribeRequest);
            let denied = authz::consumer_group_describe_before(&ctx, &access, &mut req);
            let ops = req.include_authorized_operations;
            respond!(async move {
                let mut resp = consumer_group_describe::handle(ctx.clone(), req, version).await;
                authz::consumer_group_describe_after(&ctx, &access, ops, &mut resp, denied);
                resp
            })
        }
        ApiKey::SyncGroup => {
            let req = decode!(m::SyncGroupRequest);
            deny!(
                access.group(&ctx, Operation::Read, req.group_id.as_str()),
                m::SyncGroupResponse::default(),
                C::GroupAuthorizationFailed
            );
            respond!(sync_group::handle(ctx, req, version))
        }
        ApiKey::Heartbeat => {
            let req = decode!(m::HeartbeatRequest);
            deny!(
                access.group(&ctx, Operation::Read, req.group_id.as_str()),
                m::HeartbeatResponse::default(),
                C::GroupAuthorizationFailed
            );
            respond!(heartbeat::handle(ctx, req, version))
        }
        ApiKey::LeaveGroup => {
            let req = decode!(m::LeaveGroupRequest);
            deny!(
                access.group(&ctx, Operation::Read, req.group_id.as_str()),
                m::LeaveGroupResponse::default(),
                C::GroupAuthorizationFailed
            );
            respond!(leave_group::handle(ctx, req, version))
        }
        ApiKey::OffsetCommit => {
            let mut req = decode!(m::OffsetCommitRequest);
            let denied = match authz::offset_commit(&ctx, &access, &mut req) {
                Ok(denied) => denied,
                Err(resp) => return ready(encode(correlation_id, version, &resp)),
            };
            respond!(async move {
                let mut resp = offset_commit::handle(ctx, req, version).await;
                resp.topics.extend(denied);
                resp
            })
        }
        ApiKey::OffsetFetch => {
            let mut req = decode!(m::OffsetFetchRequest);
            let denied = authz::offset_fetch_before(&ctx, &access, &mut req, version);
            if let Some(resp) = authz::offset_fetch_group_denied(&denied, &req, version) {
                return ready(encode(correlation_id, version, &resp));
            }
            respond!(async move {
                let mut resp = offset_fetch::handle(ctx.clone(), req, version).await;
                authz::offset_fetch_after(&ctx, &access, &mut resp, denied, version);
                resp
            })
        }
        ApiKey::ListGroups => {
            let req = decode!(m::ListGroupsRequest);
            respond!(async move {
                let mut resp = list_groups::handle(ctx.clone(), req, version).await;
                authz::list_groups(&ctx, &access, &mut resp);
                resp
            })
        }
        ApiKey::DescribeGroups => {
            let mut req = decode!(m::DescribeGroupsRequest);
            let denied = authz::describe_groups_before(&ctx, &access, &mut req, version);
            let ops = version >= 3 && req.include_authorized_operations;
            respond!(async move {
                let mut resp = describe_groups::handle(ctx.clone(), req, version).await;
                authz::describe_groups_after(&ctx, &access, ops, &mut resp, denied);
                resp
            })
        }
        ApiKey::DeleteGroups => {
            let mut req = decode!(m::DeleteGroupsRequest);
            let denied = authz::delete_groups(&ctx, &access, &mut req);
            respond!(async move {
                let mut resp = delete_groups::handle(ctx, req, version).await;
                resp.results.extend(denied);
                resp
            })
        }
        ApiKey::OffsetDelete => {
            let req = decode!(m::OffsetDeleteRequest);
            deny!(
                access.group(&ctx, Operation::Delete, req.group_id.as_str()),
                m::OffsetDeleteResponse::default(),
                C::GroupAuthorizationFailed
            );
            respond!(offset_delete::handle(ctx, req, version))
        }
        ApiKey::Produce => {
            let mut req = decode!(m::ProduceRequest);
            let denied = authz::produce(&ctx, &access, &mut req, version);
            let acks = req.acks;
            let bytes: usize = req
                .topic_data
                .iter()
                .flat_map(|t| t.partition_data.iter())
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            let caller = Caller::new(&header, peer);
            let user = access.principal.name.clone();
            let quotas = ctx.clone();
            // Phase one, in the read loop: queue the appends in request order.
            let pending = produce::dispatch(&ctx, req, version, &session.listener.name).await;
            Dispatch::Respond(Box::pin(async move {
                let mut resp = pending.complete().await;
                resp.responses.extend(denied);
                resp.throttle_time_ms =
                    throttle(&quotas, &caller, &user, quota::Kind::Produce, bytes).await;
                if acks == 0 {
                    Reply::Nothing
                } else {
                    encode(correlation_id, version, &resp)
                }
            }))
        }
        _ => Dispatch::Close(format!("api {key:?} is not implemented")),
    }
}

/// Counts a fetch response in the per-topic and error metrics; returns its record bytes.
fn count_fetch(ctx: &BrokerContext, resp: &kafka_protocol::messages::FetchResponse) -> usize {
    let metrics = &ctx.metrics;
    let api = metrics.api(ApiKey::Fetch as i16);
    let mut total = 0;
    for t in &resp.responses {
        let topic = metrics.topic(ctx, t.topic.as_str());
        for p in &t.partitions {
            let bytes = p.records.as_ref().map_or(0, |r| r.len());
            total += bytes;
            if let Some(api) = api {
                metrics.error(api, p.error_code);
            }
            if let Some(m) = &topic {
                m.fetch_requests.inc();
                m.bytes_out.inc_by(bytes as u64);
                if p.error_code != 0 {
                    m.failed_fetch.inc();
                }
            }
        }
    }
    total
}

/// Meters a Produce or Fetch against the caller's quota and, when it is over, holds the
/// response back for the throttle time (which mutes the connection, as Kafka does) and returns
/// it for `throttle_time_ms`.
///
/// The quota `user` is the authenticated principal's name without `User:` (`ANONYMOUS` on
/// listeners without SASL), as in Kafka.
async fn throttle(
    ctx: &BrokerContext,
    caller: &Caller,
    user: &str,
    kind: quota::Kind,
    bytes: usize,
) -> i32 {
    let delay = ctx.quotas.record(user, &caller.client_id, kind, bytes);
    ctx.metrics.observe_throttle(kind, delay);
    if delay.is_zero() {
        return 0;
    }
    tracing::debug!(client_id = %caller.client_id, ?kind, delay_ms = delay.as_millis() as u64, "throttled");
    tokio::time::sleep(delay).await;
    delay.as_millis().min(i32::MAX as u128) as i32
}

fn ready(frame: Reply) -> Dispatch {
    Dispatch::Respond(Box::pin(std::future::ready(frame)))
}

/// Encodes a size-prefixed response frame: length, response header (v0 or v1 as the API and
/// version require), body.
///
/// A metered request ([`request_quota`]) is charged here and its throttle time put in the body.
pub fn encode<R: Encodable + HeaderVersion + request_quota::Throttle + Clone>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Reply {
    let ms = request_quota::charged_ms();
    let throttled = (ms > body.throttle_time_ms()).then(|| {
        let mut copy = body.clone();
        copy.set_throttle_time_ms(ms);
        copy
    });
    let body = throttled.as_ref().unwrap_or(body);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let result = (|| -> anyhow::Result<Bytes> {
        let size = header.compute_size(header_version)? + body.compute_size(version)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size as i32);
        header.encode(&mut buf, header_version)?;
        body.encode(&mut buf, version)?;
        Ok(buf.freeze())
    })();
    match result {
        Ok(b) => Reply::Frame(b),
        Err(e) => {
            tracing::error!(error = %e, version, "cannot encode response; closing the connection");
            Reply::Close
        }
    }
}
