//! Security: SASL/PLAIN over SASL_PLAINTEXT with rdkafka and a raw client, and the ACL
//! authorizer (prefixed ALLOW, DENY over ALLOW, super users, Metadata hiding, durable ACLs).
//! SCRAM and TLS are exercised by the Python compat suite (librdkafka here has no OpenSSL).

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

const USERS: &str = "admin:admin-secret,alice:alice-secret";

async fn sasl_broker(authorizer: bool) -> TestBroker {
    let mut o = vec![
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", USERS),
    ];
    if authorizer {
        o.push(("authorizer.class.name", "StandardAuthorizer"));
        o.push(("super.users", "User:admin"));
    }
    TestBroker::start_with(&o).await
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A raw connection authenticated with SASL/PLAIN.
async fn login(addr: &str, user: &str, pass: &str) -> (Raw, SaslAuthenticateResponse) {
    let mut raw = Raw::connect(addr).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let token = format!("\0{user}\0{pass}");
    let resp = raw
        .call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            2,
        )
        .await;
    (raw, resp)
}

fn sasl_client(c: &mut rdkafka::ClientConfig, user: &str, pass: &str) {
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", pass);
}

async fn create_topics(raw: &mut Raw, names: &[&str]) {
    let req = CreateTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(TopicName(s(n)))
                        .with_num_partitions(1)
                        .with_replication_factor(1)
                })
                .collect(),
        )
        .with_timeout_ms(10_000);
    let resp = raw.call(&req, 5).await;
    for t in resp.topics {
        assert_eq!(t.error_code, 0, "{:?}", t.name);
    }
}

fn acl(rt: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_produce_consume_with_rdkafka() {
    let broker = sasl_broker(false).await;
    let bootstrap = broker.bootstrap();
    let mut pc = producer_config(&bootstrap, "all");
    sasl_client(&mut pc, "alice", "alice-secret");
    let producer: FutureProducer = pc.create().expect("producer");
    producer
        .send(
            FutureRecord::to("sasl-topic").key("k").payload("v"),
            TIMEOUT,
        )
        .await
        .expect("delivered");
    let mut cc = common::consumer_config(&bootstrap);
    sasl_client(&mut cc, "alice", "alice-secret");
    let consumer: BaseConsumer = cc.create().expect("consumer");
    let md = consumer
        .fetch_metadata(Some("sasl-topic"), TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 1);
    // The listener the client came through is the one advertised.
    assert_eq!(
        format!("{}:{}", md.brokers()[0].host(), md.brokers()[0].port()),
        bootstrap
    );

    // Wrong password: no metadata.
    let mut bad = common::consumer_config(&bootstrap);
    sasl_client(&mut bad, "alice", "wrong");
    let bad: BaseConsumer = bad.create().expect("consumer");
    assert!(bad
        .fetch_metadata(None, std::time::Duration::from_secs(3))
        .is_err());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_errors_and_out_of_order_requests() {
    let broker = sasl_broker(false).await;
    let addr = broker.bootstrap();
    // Wrong password: SASL_AUTHENTICATION_FAILED with a message, then the connection closes.
    let (mut raw, resp) = login(&addr, "alice", "nope").await;
    assert_eq!(resp.error_code, 58);
    assert!(resp.error_message.unwrap().contains("alice"));
    assert!(raw.closed().await);
    // Unsupported mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled list.
    let mut raw = Raw::connect(&addr).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("GSSAPI")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 33);
    assert_eq!(hs.mechanisms.len(), 3);
    // Anything but ApiVersions/SaslHandshake before authenticating closes the connection.
    let mut raw = Raw::connect(&addr).await;
    let v = raw.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(v.error_code, 0);
    raw.send(&MetadataRequest::default(), 12).await;
    assert!(raw.closed().await);
    // Right password works, and the connection is usable.
    let (mut raw, resp) = login(&addr, "alice", "alice-secret").await;
    assert_eq!(resp.error_code, 0);
    let md = raw.call(&MetadataRequest::default(), 12).await;
    assert_eq!(md.brokers.len(), 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_prefixed_write_deny_super_user_metadata_and_restart() {
    let mut broker = sasl_broker(true).await;
    let addr = broker.bootstrap();
    let (mut admin, r) = login(&addr, "admin", "admin-secret").await;
    assert_eq!(r.error_code, 0);
    create_topics(&mut admin, &["orders-1", "orders-secret", "payments"]).await;

    // alice without ACLs can do nothing (allow.everyone.if.no.acl.found=false).
    let (mut alice, _) = login(&addr, "alice", "alice-secret").await;
    let resp = alice
        .call(
            &CreateAclsRequest::default().with_creations(vec![acl(2, "x", 3, "User:alice", 2, 3)]),
            3,
        )
        .await;
    assert_eq!(
        resp.results[0].error_code, 31,
        "CreateAcls needs ALTER on the cluster"
    );

    // WRITE on prefix orders-, DENY ALL on orders-secret (topic 2, prefixed 4 / literal 3,
    // WRITE 4, ALL 2, ALLOW 3, DENY 2). One invalid binding is refused on its own.
    let resp = admin
        .call(
            &CreateAclsRequest::default().with_creations(vec![
                acl(2, "orders-", 4, "User:alice", 4, 3),
                acl(2, "orders-secret", 3, "User:alice", 2, 2),
                acl(9, "bad", 3, "User:alice", 4, 3),
            ]),
            3,
        )
        .await;
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes[..2], [0, 0]);
    assert_ne!(codes[2], 0);

    let mut pc = producer_config(&addr, "1");
    sasl_client(&mut pc, "alice", "alice-secret");
    pc.set("message.timeout.ms", "5000");
    let producer: FutureProducer = pc.create().expect("producer");
    producer
        .send(FutureRecord::to("orders-1").key("k").payload("v"), TIMEOUT)
        .await
        .expect("allowed by the prefixed ACL");
    for denied in ["payments", "orders-secret"] {
        let err = producer
            .send(FutureRecord::to(denied).key("k").payload("v"), TIMEOUT)
            .await
            .expect_err("denied");
        assert_eq!(
            err.0.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{denied}: {err:?}"
        );
    }

    // Metadata: listing hides undescribable topics; a named one answers 29.
    let md = alice
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let names: Vec<String> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["orders-1".to_string()]);
    let named = alice
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("payments"))))])),
            12,
        )
        .await;
    assert_eq!(named.topics[0].error_code, 29);
    // Group APIs need READ on the group.
    let hb = alice
        .call(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s("m")),
            4,
        )
        .await;
    assert_eq!(hb.error_code, 30);
    // Super user sees everything.
    let md = admin
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(
        md.topics.len() >= 3,
        "the three topics and __consumer_offsets"
    );

    // ACLs survive a restart.
    let acls = std::fs::read_to_string(broker.dir.path().join(".esker-config/acls")).unwrap();
    assert!(acls.contains("orders-secret"), "{acls}");
    drop((admin, alice, producer));
    broker.restart().await;
    let addr = broker.bootstrap();
    let (mut admin, _) = login(&addr, "admin", "admin-secret").await;
    let any = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let d = admin.call(&any, 3).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.resources.len(), 2);
    // MATCH for orders-secret finds both bindings; DeleteAcls returns what it removed.
    let del = admin
        .call(
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("orders-secret")))
                .with_pattern_type_filter(2)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1)]),
            3,
        )
        .await;
    assert_eq!(del.filter_results[0].matching_acls.len(), 2);
    let d = admin.call(&any, 3).await;
    assert!(d.resources.is_empty());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_listener_is_anonymous_and_unchanged() {
    // Two listeners at once: PLAINTEXT (anonymous) next to SASL_PLAINTEXT.
    let broker = TestBroker::start_with(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT",
        ),
        ("sasl.plain.users", USERS),
    ])
    .await;
    let addrs = broker.broker.as_ref().unwrap().kafka_addrs().to_vec();
    let mut raw = Raw::connect(&addrs[0].to_string()).await;
    let md = raw.call(&MetadataRequest::default(), 12).await;
    assert_eq!(md.brokers[0].port, i32::from(addrs[0].port()));
    let (mut raw, r) = login(&addrs[1].to_string(), "alice", "alice-secret").await;
    assert_eq!(r.error_code, 0);
    let md = raw.call(&MetadataRequest::default(), 12).await;
    assert_eq!(
        md.brokers[0].port,
        i32::from(addrs[1].port()),
        "advertises its own listener"
    );
    broker.stop().await;
}

/// KIP-152: with `connections.max.reauth.ms`, SaslAuthenticate reports the session lifetime,
/// librdkafka re-authenticates on the same connection and keeps producing, a different
/// principal is refused, and an expired session's next request closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_with_connections_max_reauth_ms() {
    let broker = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", "alice:alice-secret,bob:bob-secret"),
        ("connections.max.reauth.ms", "1000"),
        ("num.partitions", "1"),
    ])
    .await;
    let addr = broker.bootstrap();
    let reauths = || {
        broker
            .broker
            .as_ref()
            .expect("running")
            .context()
            .security
            .reauthentications
            .load(std::sync::atomic::Ordering::Relaxed)
    };

    // The lifetime is reported from SaslAuthenticate v1.
    let (mut raw, resp) = login(&addr, "alice", "alice-secret").await;
    assert_eq!(resp.error_code, 0);
    assert!(
        (1..=1000).contains(&resp.session_lifetime_ms),
        "{}",
        resp.session_lifetime_ms
    );
    // Re-authenticating as the same principal on the same connection works.
    let before = reauths();
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let again = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret")),
            2,
        )
        .await;
    assert_eq!(again.error_code, 0);
    assert!(again.session_lifetime_ms > 0);
    assert_eq!(reauths(), before + 1);
    assert_eq!(
        raw.call(&MetadataRequest::default(), 12)
            .await
            .brokers
            .len(),
        1
    );
    // Once the session has ended, anything but SASL/ApiVersions closes the connection.
    tokio::time::sleep(std::time::Duration::from_millis(
        again.session_lifetime_ms as u64 + 100,
    ))
    .await;
    assert_eq!(
        raw.call(&ApiVersionsRequest::default(), 3).await.error_code,
        0
    );
    raw.send(&MetadataRequest::default(), 12).await;
    assert!(raw.closed().await, "expired session is closed");

    // Re-authenticating as someone else: SASL_AUTHENTICATION_FAILED, then closed.
    let (mut raw, _) = login(&addr, "alice", "alice-secret").await;
    raw.call(
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        1,
    )
    .await;
    let other = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0bob\0bob-secret")),
            2,
        )
        .await;
    assert_eq!(other.error_code, 58);
    assert!(other
        .error_message
        .is_some_and(|m| m.contains("User:alice") && m.contains("User:bob")));
    assert!(raw.closed().await);
    // Changing the mechanism: ILLEGAL_SASL_STATE, closed.
    let (mut raw, _) = login(&addr, "alice", "alice-secret").await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 34);
    assert!(raw.closed().await);

    // librdkafka re-authenticates by itself and keeps producing across several sessions.
    let mut pc = producer_config(&addr, "all");
    sasl_client(&mut pc, "alice", "alice-secret");
    let producer: FutureProducer = pc.create().expect("producer");
    let start = reauths();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut sent = 0;
    while reauths() < start + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "librdkafka did not re-authenticate 3 times ({} so far)",
            reauths() - start
        );
        producer
            .send(FutureRecord::to("reauth").key("k").payload("v"), TIMEOUT)
            .await
            .expect("delivered across re-authentications");
        sent += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut cc = common::consumer_config(&addr);
    sasl_client(&mut cc, "alice", "alice-secret");
    let consumer: BaseConsumer = cc.create().expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks("reauth", 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!(high, sent, "every record delivered once");
    drop((producer, consumer));
    broker.stop().await;
}
