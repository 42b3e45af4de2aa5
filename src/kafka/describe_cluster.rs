//! DescribeCluster (key 60), versions 0..=2: this broker as the whole cluster and controller,
//! or in a cluster every live broker of the metadata image and the active controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Endpoint type 1 = brokers (2 = controllers, which a client cannot reach here).
const BROKERS: i8 = 1;

/// Handles a DescribeCluster request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeClusterRequest,
    _version: i16,
    listener: &str,
) -> DescribeClusterResponse {
    let node = BrokerId(ctx.config.node_id);
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.cluster_id.clone()))
        .with_controller_id(node)
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != BROKERS {
        resp.error_code = Code::UnsupportedEndpointType.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "only broker endpoints are served",
        ));
        return resp;
    }
    if let Some(c) = &ctx.cluster {
        let image = c.image();
        // The controller stays this broker, as KRaft brokers answer (see metadata.rs).
        if let Some(id) = &image.cluster_id {
            resp.cluster_id = StrBytes::from_string(id.clone());
        }
        resp.brokers = image
            .live_brokers()
            .filter_map(|b| {
                let (host, port) = crate::context::broker_endpoint(&image, b.id, listener)?;
                Some(
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port)
                        .with_rack(b.rack.clone().map(StrBytes::from_string)),
                )
            })
            .collect();
        return resp;
    }
    let (host, port) = ctx.advertised.clone();
    resp.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port)];
    resp
}
