//! Kinesis through the broker's ACL authorizer, driven by the stock AWS SDK for Rust: the
//! SigV4 access key maps to `User:<user>` (`kinesis.credentials=ACCESS:SECRET:user`), and each
//! operation needs the Kafka operation on the stream's topic (PutRecord WRITE, GetRecords
//! READ, CreateStream CREATE, ListStreams filtered by DESCRIBE...). A denial is HTTP 400
//! `AccessDeniedException`; a wrong secret is InvalidSignatureException and an unknown key
//! UnrecognizedClientException.

mod common;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use common::kinesis::{client_for, code};
use common::raw::Raw;
use common::TestBroker;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn status<E>(e: &SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// `ALLOW <op>` on a topic (LITERAL) for a principal.
fn allow(topic: &str, principal: &str, op: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s(topic))
        .with_resource_pattern_type(3)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(3)
}

const WRITE: i8 = 4;
const READ: i8 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_operations_go_through_the_authorizer() -> TestResult {
    let b = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", "admin:admin-secret"),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
        ("kinesis.auth", "sigv4"),
        (
            "kinesis.credentials",
            "AKIDADMIN:admin-key:admin,AKIDWRITER:writer-key:writer,AKIDREADER:reader-key:reader",
        ),
    ])
    .await;
    let addr = b
        .broker
        .as_ref()
        .and_then(|b| b.kinesis_addr())
        .ok_or("kinesis listener")?;
    let admin = client_for(addr, "AKIDADMIN", "admin-key");
    let writer = client_for(addr, "AKIDWRITER", "writer-key");
    let reader = client_for(addr, "AKIDREADER", "reader-key");

    // CreateStream needs CREATE: the writer has none; the super user creates.
    let e = writer
        .create_stream()
        .stream_name("events")
        .shard_count(1)
        .send()
        .await
        .expect_err("no CREATE");
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(status(&e), 400);
    assert!(
        e.message().unwrap_or_default().contains("User:writer"),
        "{:?}",
        e.message()
    );
    admin
        .create_stream()
        .stream_name("events")
        .shard_count(1)
        .send()
        .await?;
    admin
        .create_stream()
        .stream_name("hidden")
        .shard_count(1)
        .send()
        .await?;

    // ACLs through Kafka's CreateAcls: writer may WRITE events, reader may READ it.
    let mut raw = Raw::connect(&b.bootstrap()).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0admin\0admin-secret")),
            2,
        )
        .await;
    assert_eq!(auth.error_code, 0);
    let r = raw
        .call(
            &CreateAclsRequest::default().with_creations(vec![
                allow("events", "User:writer", WRITE),
                allow("events", "User:reader", READ),
            ]),
            3,
        )
        .await;
    assert!(r.results.iter().all(|r| r.error_code == 0));

    // Writer: PutRecord(s) allowed, reading denied.
    writer
        .put_record()
        .stream_name("events")
        .partition_key("k")
        .data(Blob::new("v1"))
        .send()
        .await?;
    writer
        .put_records()
        .stream_name("events")
        .records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new("v2"))
                .build()?,
        )
        .send()
        .await?;
    let e = writer
        .get_shard_iterator()
        .stream_name("events")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect_err("no READ");
    assert_eq!(code(&e), "AccessDeniedException");
    // WRITE implies DESCRIBE, as in Kafka.
    writer
        .describe_stream_summary()
        .stream_name("events")
        .send()
        .await?;

    // Reader: GetShardIterator/GetRecords allowed, PutRecord denied.
    let it = reader
        .get_shard_iterator()
        .stream_name("events")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?
        .shard_iterator
        .ok_or("iterator")?;
    let got = reader.get_records().shard_iterator(&it).send().await?;
    let data: Vec<Vec<u8>> = got
        .records()
        .iter()
        .map(|r| r.data().as_ref().to_vec())
        .collect();
    assert_eq!(data, [b"v1".to_vec(), b"v2".to_vec()]);
    let e = reader
        .put_record()
        .stream_name("events")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("no WRITE");
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(status(&e), 400);
    // A GetRecords with an iterator obtained by someone else is still checked: the writer
    // holding the reader's iterator is denied.
    let e = writer
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("no READ");
    assert_eq!(code(&e), "AccessDeniedException");

    // ListStreams shows only the streams a principal may DESCRIBE.
    let listed = reader.list_streams().send().await?;
    assert_eq!(listed.stream_names(), ["events"]);
    let all = admin.list_streams().send().await?;
    assert_eq!(all.stream_names(), ["events", "hidden"]);
    // Describe, reshard, retention and delete of a stream without ACLs: denied.
    let e = reader
        .describe_stream()
        .stream_name("hidden")
        .send()
        .await
        .expect_err("no DESCRIBE");
    assert_eq!(code(&e), "AccessDeniedException");
    let e = reader
        .increase_stream_retention_period()
        .stream_name("events")
        .retention_period_hours(48)
        .send()
        .await
        .expect_err("no ALTER_CONFIGS");
    assert_eq!(code(&e), "AccessDeniedException");
    let e = reader
        .delete_stream()
        .stream_name("events")
        .send()
        .await
        .expect_err("no DELETE");
    assert_eq!(code(&e), "AccessDeniedException");

    // Authentication failures come before authorization: wrong secret, unknown key.
    let e = client_for(addr, "AKIDREADER", "wrong")
        .list_streams()
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(code(&e), "InvalidSignatureException");
    let e = client_for(addr, "AKIDNOBODY", "x")
        .list_streams()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(code(&e), "UnrecognizedClientException");

    // The super user bypasses everything.
    admin.delete_stream().stream_name("hidden").send().await?;
    drop(raw);
    b.stop().await;
    Ok(())
}
