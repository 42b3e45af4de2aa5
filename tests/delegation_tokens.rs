//! Delegation tokens (KIP-48 / KIP-373 / KIP-249) over a SASL_PLAINTEXT listener with a raw
//! protocol client: create, renew, describe and expire with every refusal Kafka answers, SCRAM
//! authentication with `tokenauth=true` acting as the token's owner (its ACLs apply), the
//! periodic removal of expired tokens, and durability across a restart.
//!
//! No client we ship supports token authentication: kafka-python 3.0.12 and aiokafka 0.14
//! send no SCRAM extensions, and librdkafka has no `tokenauth` setting, so the SCRAM client
//! here is hand-written (RFC 5802 with Kafka's extension).

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use common::raw::Raw;
use common::{TestBroker, TIMEOUT};
use hmac::{Hmac, KeyInit, Mac};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_delegation_token_request::CreatableRenewers;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sha2::{Digest, Sha256, Sha512};

const SECRET: &str = "token-secret-key";
const USERS: &str = "admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw";
const HOUR: i64 = 3_600_000;

// Kafka's error codes.
const AUTH_DISABLED: i16 = 61;
const NOT_FOUND: i16 = 62;
const OWNER_MISMATCH: i16 = 63;
const REQUEST_NOT_ALLOWED: i16 = 64;
const AUTHORIZATION_FAILED: i16 = 65;
const EXPIRED: i16 = 66;
const INVALID_PRINCIPAL_TYPE: i16 = 67;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn token_broker(secret: Option<&str>) -> TestBroker {
    let mut o = vec![
        (
            "listeners",
            "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.plain.users", USERS),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
        ("delegation.token.expiry.time.ms", "3600000"),
        ("delegation.token.max.lifetime.ms", "7200000"),
        ("delegation.token.expiry.check.interval.ms", "100"),
    ];
    if let Some(k) = secret {
        o.push(("delegation.token.secret.key", k));
    }
    TestBroker::start_with(&o).await
}

fn sasl_addr(b: &TestBroker) -> String {
    b.broker.as_ref().expect("running").kafka_addrs()[0].to_string()
}

fn plaintext_addr(b: &TestBroker) -> String {
    b.broker.as_ref().expect("running").kafka_addrs()[1].to_string()
}

/// A raw connection authenticated with SASL/PLAIN.
async fn login(addr: &str, user: &str) -> Raw {
    let mut raw = Raw::connect(addr).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let resp = raw
        .call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(format!("\0{user}\0{user}-pw"))),
            2,
        )
        .await;
    assert_eq!(resp.error_code, 0, "{user} logs in");
    raw
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// What the token's password is, as the broker must compute it: base64(HMAC-SHA512(id)).
fn expected_hmac(token_id: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    m.update(token_id.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn attr<'a>(msg: &'a str, key: &str) -> &'a str {
    msg.split(',')
        .find_map(|p| p.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("`{key}=` in {msg}"))
}

/// SCRAM-SHA-256 with the `tokenauth=true` extension, as Kafka's ScramSaslClient sends it:
/// user = token id, password = base64 HMAC. Returns the connection and the final
/// SaslAuthenticate response (error code 0 on success, with the server signature checked).
async fn token_login(addr: &str, token_id: &str, hmac: &[u8]) -> (Raw, SaslAuthenticateResponse) {
    let mut raw = Raw::connect(addr).await;
    let hs = raw
        .call(
            &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let bare = format!("n={token_id},r=tokenclientnonce,tokenauth=true");
    let first = raw
        .call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(format!("n,,{bare}"))),
            2,
        )
        .await;
    if first.error_code != 0 {
        return (raw, first);
    }
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).expect("utf-8");
    let nonce = attr(&server_first, "r");
    assert!(nonce.starts_with("tokenclientnonce"));
    let salt = B64.decode(attr(&server_first, "s")).expect("salt");
    let iterations: u32 = attr(&server_first, "i").parse().expect("iterations");
    assert_eq!(
        iterations, 4096,
        "Kafka's token credentials use 4096 iterations"
    );
    // Hi(password, salt, i): PBKDF2 with one block.
    let password = B64.encode(hmac);
    let mut block = salt.clone();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password.as_bytes(), &block);
    let mut salted = u.clone();
    for _ in 1..iterations {
        u = hmac_sha256(password.as_bytes(), &u);
        salted.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key).to_vec();
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let last = raw
        .call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(format!(
                "{without_proof},p={}",
                B64.encode(proof)
            ))),
            2,
        )
        .await;
    if last.error_code == 0 {
        let server_key = hmac_sha256(&salted, b"Server Key");
        let expect = format!(
            "v={}",
            B64.encode(hmac_sha256(&server_key, auth_message.as_bytes()))
        );
        assert_eq!(last.auth_bytes, Bytes::from(expect), "server signature");
    }
    (raw, last)
}

fn create_req(
    owner: Option<&str>,
    renewers: &[(&str, &str)],
    max: i64,
) -> CreateDelegationTokenRequest {
    // kafka-protocol refuses to encode v1-2 with a null owner (it wants an empty one), and an
    // empty owner means the requester, as a null one does.
    CreateDelegationTokenRequest::default()
        .with_owner_principal_type(Some(s(if owner.is_some() { "User" } else { "" })))
        .with_owner_principal_name(Some(s(owner.unwrap_or(""))))
        .with_renewers(
            renewers
                .iter()
                .map(|(t, n)| {
                    CreatableRenewers::default()
                        .with_principal_type(s(t))
                        .with_principal_name(s(n))
                })
                .collect(),
        )
        .with_max_lifetime_ms(max)
}

async fn renew(raw: &mut Raw, hmac: &[u8], period: i64) -> RenewDelegationTokenResponse {
    raw.call(
        &RenewDelegationTokenRequest::default()
            .with_hmac(Bytes::copy_from_slice(hmac))
            .with_renew_period_ms(period),
        2,
    )
    .await
}

async fn expire(raw: &mut Raw, hmac: &[u8], period: i64) -> ExpireDelegationTokenResponse {
    raw.call(
        &ExpireDelegationTokenRequest::default()
            .with_hmac(Bytes::copy_from_slice(hmac))
            .with_expiry_time_period_ms(period),
        2,
    )
    .await
}

/// Token ids a DescribeDelegationToken (v3, all owners) shows this connection.
async fn describe_ids(raw: &mut Raw) -> Vec<String> {
    let resp = raw
        .call(
            &DescribeDelegationTokenRequest::default().with_owners(None),
            3,
        )
        .await;
    assert_eq!(resp.error_code, 0);
    let mut ids: Vec<String> = resp.tokens.iter().map(|t| t.token_id.to_string()).collect();
    ids.sort();
    ids
}

fn acl(rt: i8, name: &str, principal: &str, op: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(3) // LITERAL
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(3) // ALLOW
}

async fn create_acls(admin: &mut Raw, acls: Vec<AclCreation>) {
    let resp = admin
        .call(&CreateAclsRequest::default().with_creations(acls), 3)
        .await;
    assert!(resp.results.iter().all(|r| r.error_code == 0));
}

/// The error code Metadata answers for one named topic.
async fn topic_error(raw: &mut Raw, topic: &str) -> i16 {
    let md = raw
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s(topic))))]))
                .with_allow_auto_topic_creation(false),
            12,
        )
        .await;
    md.topics[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_disabled_without_a_secret_key() {
    let broker = token_broker(None).await;
    let mut alice = login(&sasl_addr(&broker), "alice").await;
    let created = alice.call(&create_req(None, &[], -1), 3).await;
    assert_eq!(created.error_code, AUTH_DISABLED);
    assert_eq!(created.principal_name.as_str(), "alice");
    assert_eq!(created.token_requester_principal_name.as_str(), "alice");
    assert!(created.hmac.is_empty());
    let described = alice
        .call(
            &DescribeDelegationTokenRequest::default().with_owners(None),
            3,
        )
        .await;
    assert_eq!(described.error_code, AUTH_DISABLED);
    assert_eq!(
        renew(&mut alice, b"whatever", -1).await.error_code,
        AUTH_DISABLED
    );
    assert_eq!(
        expire(&mut alice, b"whatever", -1).await.error_code,
        AUTH_DISABLED
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_renew_describe_expire_and_authenticate_with_tokens() {
    let mut broker = token_broker(Some(SECRET)).await;
    let addr = sasl_addr(&broker);
    let mut admin = login(&addr, "admin").await;
    let mut alice = login(&addr, "alice").await;
    let mut bob = login(&addr, "bob").await;
    let mut carol = login(&addr, "carol").await;

    // PLAINTEXT channels may not handle tokens (DELEGATION_TOKEN_REQUEST_NOT_ALLOWED).
    let mut plain = Raw::connect(&plaintext_addr(&broker)).await;
    assert_eq!(
        plain.call(&create_req(None, &[], -1), 3).await.error_code,
        REQUEST_NOT_ALLOWED
    );
    assert_eq!(
        plain
            .call(
                &DescribeDelegationTokenRequest::default().with_owners(None),
                3
            )
            .await
            .error_code,
        REQUEST_NOT_ALLOWED
    );
    assert_eq!(
        renew(&mut plain, b"x", -1).await.error_code,
        REQUEST_NOT_ALLOWED
    );
    assert_eq!(
        expire(&mut plain, b"x", -1).await.error_code,
        REQUEST_NOT_ALLOWED
    );

    // Alice creates a token for herself with bob as renewer, asking for a shorter lifetime
    // than delegation.token.max.lifetime.ms (2 h) but longer than the expiry time (1 h).
    let before = esker::context::BrokerContext::now_ms();
    let created = alice
        .call(&create_req(None, &[("User", "bob")], 90 * 60 * 1000), 3)
        .await;
    assert_eq!(created.error_code, 0);
    assert_eq!(created.principal_type.as_str(), "User");
    assert_eq!(created.principal_name.as_str(), "alice");
    assert_eq!(created.token_requester_principal_name.as_str(), "alice");
    assert!(created.issue_timestamp_ms >= before);
    assert_eq!(
        created.expiry_timestamp_ms - created.issue_timestamp_ms,
        HOUR
    );
    assert_eq!(
        created.max_timestamp_ms - created.issue_timestamp_ms,
        90 * 60 * 1000
    );
    let alice_id = created.token_id.to_string();
    assert_eq!(alice_id.len(), 22, "a Kafka Uuid string: {alice_id}");
    let alice_hmac = created.hmac.to_vec();
    assert_eq!(
        alice_hmac,
        expected_hmac(&alice_id),
        "HMAC-SHA512 of the id"
    );
    // v1 answers without the requester fields.
    let v1 = bob.call(&create_req(None, &[], -1), 1).await;
    assert_eq!(v1.error_code, 0);
    assert_eq!(v1.principal_name.as_str(), "bob");
    assert!(v1.token_requester_principal_name.is_empty());
    assert_eq!(v1.max_timestamp_ms - v1.issue_timestamp_ms, 2 * HOUR);
    let bob_id = v1.token_id.to_string();

    // KIP-373: a token for another owner needs CREATE_TOKENS on that user.
    let for_bob = alice.call(&create_req(Some("bob"), &[], -1), 3).await;
    assert_eq!(for_bob.error_code, AUTHORIZATION_FAILED);
    assert_eq!(for_bob.principal_name.as_str(), "bob");
    assert_eq!(for_bob.token_requester_principal_name.as_str(), "alice");
    create_acls(&mut admin, vec![acl(7, "User:bob", "User:alice", 13)]).await;
    let for_bob = alice.call(&create_req(Some("bob"), &[], -1), 3).await;
    assert_eq!(for_bob.error_code, 0);
    assert_eq!(for_bob.principal_name.as_str(), "bob");
    assert_eq!(for_bob.token_requester_principal_name.as_str(), "alice");
    let bob_by_alice_id = for_bob.token_id.to_string();
    // Renewers must be users.
    assert_eq!(
        alice
            .call(&create_req(None, &[("Group", "g")], -1), 3)
            .await
            .error_code,
        INVALID_PRINCIPAL_TYPE
    );

    // Renew: unknown HMAC, a stranger, then the renewer with a short period.
    assert_eq!(
        renew(&mut alice, b"not-a-token", -1).await.error_code,
        NOT_FOUND
    );
    assert_eq!(
        renew(&mut carol, &alice_hmac, -1).await.error_code,
        OWNER_MISMATCH
    );
    let now = esker::context::BrokerContext::now_ms();
    let renewed = renew(&mut bob, &alice_hmac, 60_000).await;
    assert_eq!(renewed.error_code, 0);
    assert!((now + 60_000..now + 60_000 + 10_000).contains(&renewed.expiry_timestamp_ms));
    let renewed = renew(&mut alice, &alice_hmac, -1).await;
    assert_eq!(renewed.error_code, 0);
    assert!(renewed.expiry_timestamp_ms >= now + HOUR);

    // Describe: owners and renewers see their tokens; the requester of bob's token is alice.
    assert_eq!(describe_ids(&mut alice).await, vec![alice_id.clone()]);
    let mut bob_sees = vec![alice_id.clone(), bob_id.clone(), bob_by_alice_id.clone()];
    bob_sees.sort();
    assert_eq!(describe_ids(&mut bob).await, bob_sees, "owner and renewer");
    assert!(describe_ids(&mut carol).await.is_empty());
    let full = bob
        .call(
            &DescribeDelegationTokenRequest::default().with_owners(Some(vec![
                DescribeDelegationTokenOwner::default()
                    .with_principal_type(s("User"))
                    .with_principal_name(s("alice")),
            ])),
            3,
        )
        .await;
    assert_eq!(full.error_code, 0);
    assert_eq!(full.tokens.len(), 1, "the owners filter");
    let t = &full.tokens[0];
    assert_eq!(t.token_id.as_str(), alice_id);
    assert_eq!(t.hmac.to_vec(), alice_hmac);
    assert_eq!(t.principal_name.as_str(), "alice");
    assert_eq!(t.token_requester_principal_name.as_str(), "alice");
    assert_eq!(t.renewers.len(), 1);
    assert_eq!(t.renewers[0].principal_name.as_str(), "bob");
    let empty = alice
        .call(
            &DescribeDelegationTokenRequest::default().with_owners(Some(vec![])),
            3,
        )
        .await;
    assert_eq!((empty.error_code, empty.tokens.len()), (0, 0));
    // DESCRIBE_TOKENS on User:alice, or DESCRIBE on the token, lets carol see it.
    create_acls(&mut admin, vec![acl(7, "User:alice", "User:carol", 14)]).await;
    assert_eq!(describe_ids(&mut carol).await, vec![alice_id.clone()]);
    create_acls(&mut admin, vec![acl(6, &bob_id, "User:carol", 8)]).await;
    let mut carol_sees = vec![alice_id.clone(), bob_id.clone()];
    carol_sees.sort();
    assert_eq!(describe_ids(&mut carol).await, carol_sees);
    // The super user sees all.
    assert_eq!(describe_ids(&mut admin).await.len(), 3);

    // Token authentication: the connection acts as alice, and alice's ACLs apply.
    create_topics(&mut admin, &["alice-topic", "other-topic"]).await;
    create_acls(&mut admin, vec![acl(2, "alice-topic", "User:alice", 8)]).await;
    let (mut as_token, resp) = token_login(&addr, &alice_id, &alice_hmac).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    assert!(
        resp.session_lifetime_ms > 0 && resp.session_lifetime_ms <= HOUR + 1000,
        "the session ends with the token: {}",
        resp.session_lifetime_ms
    );
    assert_eq!(topic_error(&mut as_token, "alice-topic").await, 0);
    assert_eq!(
        topic_error(&mut as_token, "other-topic").await,
        TOPIC_AUTHORIZATION_FAILED
    );
    // Token-authenticated connections may not use the token APIs.
    assert_eq!(
        as_token
            .call(&create_req(None, &[], -1), 3)
            .await
            .error_code,
        REQUEST_NOT_ALLOWED
    );
    assert_eq!(
        renew(&mut as_token, &alice_hmac, -1).await.error_code,
        REQUEST_NOT_ALLOWED
    );
    assert_eq!(
        as_token
            .call(
                &DescribeDelegationTokenRequest::default().with_owners(None),
                3
            )
            .await
            .error_code,
        REQUEST_NOT_ALLOWED
    );
    // A wrong HMAC or an unknown token fails authentication.
    let (mut raw, resp) = token_login(&addr, &alice_id, b"wrong").await;
    assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(raw.closed().await);
    let (mut raw, resp) = token_login(&addr, "unknownTokenId00000000", &alice_hmac).await;
    assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(
        resp.error_message
            .as_deref()
            .is_some_and(|m| m.contains("Invalid tokenId : unknownTokenId00000000")),
        "{:?}",
        resp.error_message
    );
    assert!(raw.closed().await);

    // Expire: strangers may not; a period moves the expiry; a negative one removes at once.
    assert_eq!(
        expire(&mut carol, &alice_hmac, -1).await.error_code,
        OWNER_MISMATCH
    );
    let bob_hmac = v1.hmac.to_vec();
    let now = esker::context::BrokerContext::now_ms();
    let moved = expire(&mut bob, &bob_hmac, 1).await;
    assert_eq!(moved.error_code, 0);
    assert!((now + 1..now + 10_000).contains(&moved.expiry_timestamp_ms));
    // Once that moment has passed: renewal and expiry answer EXPIRED, authentication fails
    // (until the periodic check removes the token, after which it is not found).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = renew(&mut bob, &bob_hmac, -1).await.error_code;
        if r == EXPIRED {
            break;
        }
        assert!(
            r == 0 && Instant::now() < deadline,
            "renewal answered {r} before expiring"
        );
        // Keep the (re-extended) token short-lived.
        assert_eq!(expire(&mut bob, &bob_hmac, 1).await.error_code, 0);
    }
    let (_, resp) = token_login(&addr, &bob_id, &bob_hmac).await;
    assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
    // The periodic check (every 100 ms here) removes it.
    let deadline = Instant::now() + TIMEOUT;
    while describe_ids(&mut bob).await.contains(&bob_id) {
        assert!(Instant::now() < deadline, "expired token never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(renew(&mut bob, &bob_hmac, -1).await.error_code, NOT_FOUND);
    let removed = expire(&mut bob, &expected_hmac(&bob_by_alice_id), -1).await;
    assert_eq!(removed.error_code, 0);
    assert!(!describe_ids(&mut bob).await.contains(&bob_by_alice_id));

    // The secret is sensitive: DescribeConfigs never returns it.
    let configs = admin
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("0"))
                    .with_configuration_keys(Some(vec![s("delegation.token.secret.key")])),
            ]),
            4,
        )
        .await;
    let entry = &configs.results[0].configs[0];
    assert_eq!(entry.name.as_str(), "delegation.token.secret.key");
    assert!(entry.is_sensitive);
    assert_eq!(entry.value, None);

    // Durable: after a restart alice's token is still there and still authenticates.
    drop((admin, alice, bob, carol, as_token, plain));
    broker.restart().await;
    let addr = sasl_addr(&broker);
    let mut alice = login(&addr, "alice").await;
    assert_eq!(describe_ids(&mut alice).await, vec![alice_id.clone()]);
    let (mut as_token, resp) = token_login(&addr, &alice_id, &alice_hmac).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(topic_error(&mut as_token, "alice-topic").await, 0);
    broker.stop().await;
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
