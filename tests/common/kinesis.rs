//! The AWS SDK for Rust pointed at a test broker's Kinesis endpoint (plain HTTP, no retries).

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::Client;

use super::TestBroker;

/// A client signing with `access`/`secret` against the endpoint at `addr`.
pub fn client_for(addr: std::net::SocketAddr, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// The broker's bound Kinesis address.
pub fn kinesis_addr(b: &TestBroker) -> std::net::SocketAddr {
    b.broker
        .as_ref()
        .and_then(|b| b.kinesis_addr())
        .expect("kinesis listener bound")
}

/// A client with the default dev credentials.
pub fn client(b: &TestBroker) -> Client {
    client_for(kinesis_addr(b), "AKIDTEST", "secret")
}

/// The AWS error code of an SDK error (`ResourceNotFoundException`, ...).
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    e.code().unwrap_or("<none>").to_string()
}
