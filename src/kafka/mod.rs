//! The Kafka protocol layer: decodes a frame's header and body with `kafka-protocol`, checks the
//! version against the one table of supported APIs ([`SUPPORTED`], which is also the ApiVersions
//! answer), and calls one handler per API. Handlers speak to storage through [`BrokerContext`]
//! and the shards, never to sockets; they run on the shard that owns the connection.
//!
//! Requests are handled in two phases so that pipelining keeps order: [`dispatch`] runs in the
//! connection's read loop (it decodes and, for Produce, queues the appends on the owning shards
//! in request order) and returns the rest of the work as a future whose output is the encoded
//! response, written back in request order by `net`.

mod alter_configs;
mod api_versions;
mod create_topics;
mod delete_topics;
mod describe_configs;
pub mod error;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::broker::BrokerContext;

/// The rest of a request's work, yielding what to write back.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What a handled request writes back.
#[derive(Debug)]
pub enum Reply {
    /// An encoded response frame.
    Frame(Bytes),
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
];

fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

/// Decodes a frame and starts handling it.
pub async fn dispatch(mut frame: Bytes, ctx: &Arc<BrokerContext>) -> Dispatch {
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
    use kafka_protocol::messages as m;
    match key {
        ApiKey::ApiVersions => {
            let _req = decode!(m::ApiVersionsRequest);
            ready(encode(correlation_id, version, &api_versions::response(0)))
        }
        ApiKey::Metadata => {
            let req = decode!(m::MetadataRequest);
            respond!(metadata::handle(ctx, req, version))
        }
        ApiKey::CreateTopics => {
            let req = decode!(m::CreateTopicsRequest);
            respond!(create_topics::handle(ctx, req, version))
        }
        ApiKey::DeleteTopics => {
            let req = decode!(m::DeleteTopicsRequest);
            respond!(delete_topics::handle(ctx, req, version))
        }
        ApiKey::ListOffsets => {
            let req = decode!(m::ListOffsetsRequest);
            respond!(list_offsets::handle(ctx, req, version))
        }
        ApiKey::Fetch => {
            let req = decode!(m::FetchRequest);
            respond!(fetch::handle(ctx, req, version))
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(m::DescribeConfigsRequest);
            respond!(describe_configs::handle(ctx, req, version))
        }
        ApiKey::AlterConfigs => {
            let req = decode!(m::AlterConfigsRequest);
            respond!(alter_configs::handle(ctx, req, version))
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = decode!(m::IncrementalAlterConfigsRequest);
            respond!(alter_configs::handle_incremental(ctx, req, version))
        }
        ApiKey::Produce => {
            let req = decode!(m::ProduceRequest);
            let acks = req.acks;
            // Phase one, in the read loop: queue the appends in request order.
            let pending = produce::dispatch(&ctx, req, version).await;
            Dispatch::Respond(Box::pin(async move {
                let resp = pending.complete().await;
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

fn ready(frame: Reply) -> Dispatch {
    Dispatch::Respond(Box::pin(std::future::ready(frame)))
}

/// Encodes a size-prefixed response frame: length, response header (v0 or v1 as the API and
/// version require), body.
pub fn encode<R: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &R) -> Reply {
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
