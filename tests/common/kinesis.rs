//! The AWS SDK for Rust pointed at a test broker's Kinesis endpoint (plain HTTP, no retries).

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::ShardIteratorType;
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

/// The (code, message) of an SDK error.
pub fn err<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> (String, String) {
    (code(e), e.message().unwrap_or_default().to_string())
}

/// What a Kinesis test returns: SDK errors propagate with `?`.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Creates the stream `name` with `shards` shards.
pub async fn create(c: &Client, name: &str, shards: i32) -> TestResult {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await?;
    Ok(())
}

/// A shard iterator of `kind` (from `seq` for the AT/AFTER_SEQUENCE_NUMBER kinds), or the
/// error the broker answered.
pub async fn iterator_of(
    c: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> Result<String, SdkError<GetShardIteratorError>> {
    let out = c
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(seq.map(str::to_string))
        .send()
        .await?;
    Ok(out.shard_iterator().expect("a shard iterator").to_string())
}

/// A shard iterator of `kind` (TRIM_HORIZON, LATEST).
pub async fn iterator(
    c: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> Result<String, SdkError<GetShardIteratorError>> {
    iterator_of(c, stream, shard, kind, None).await
}
