//! Client quotas: AlterClientQuotas / DescribeClientQuotas, and a producer_byte_rate of 1 MB/s
//! on one client id slows that producer to about 1 MB/s (with throttle_time_ms in its
//! responses) while another client is not slowed.

mod common;

use std::time::{Duration, Instant};

use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn set_rate(c: &mut Raw, client_id: &str, rate: f64) {
    let r: AlterClientQuotasResponse = c
        .call(
            &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_entity_name(Some(StrBytes::from_string(client_id.into())))])
                .with_ops(vec![OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(rate)])]),
            1,
        )
        .await;
    assert_eq!(
        r.entries[0].error_code, 0,
        "{:?}",
        r.entries[0].error_message
    );
}

/// Produces `total` bytes in 1 KiB messages with `client.id` and returns the time taken.
async fn produce_as(bootstrap: &str, client_id: &str, total: usize) -> Duration {
    let mut cfg = producer_config(bootstrap, "1");
    cfg.set("client.id", client_id)
        .set("linger.ms", "5")
        .set("batch.size", "65536");
    let producer: FutureProducer = cfg.create().expect("producer");
    timed_sends(&producer, "quota-topic", total / 1024).await
}

/// Sends `count` 1 KiB messages to `topic` at once and returns the time until all were
/// delivered.
async fn timed_sends(producer: &FutureProducer, topic: &str, count: usize) -> Duration {
    let value = vec![b'q'; 1024];
    let start = Instant::now();
    let sends = (0..count).map(|_| {
        let v = &value;
        async move {
            producer
                .send(FutureRecord::<(), _>::to(topic).payload(v), TIMEOUT * 2)
                .await
                .map_err(|(e, _)| e)
                .expect("delivered")
        }
    });
    join_all(sends).await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_byte_rate_slows_only_its_client() {
    let broker = TestBroker::start_with(&[("num.partitions", "1")]).await;
    let bootstrap = broker.bootstrap();
    let mut c = Raw::connect(&bootstrap).await;
    set_rate(&mut c, "slow", 1_000_000.0).await;

    let described: DescribeClientQuotasResponse = c
        .call(
            &DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
                .with_entity_type(StrBytes::from_static_str("client-id"))
                .with_match_type(0)
                .with_match(Some(StrBytes::from_static_str("slow")))]),
            1,
        )
        .await;
    let entries = described.entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(entries[0].values[0].value, 1_000_000.0);

    // 11 MB at 1 MB/s with one second of burst: about 10 s.
    let slow = produce_as(&bootstrap, "slow", 11_000_000).await;
    let fast = produce_as(&bootstrap, "fast", 11_000_000).await;
    let slow_rate = 11.0 / slow.as_secs_f64();
    assert!(
        (0.7..=1.3).contains(&slow_rate),
        "throttled client ran at {slow_rate:.2} MB/s over {slow:?}"
    );
    assert!(
        fast < slow / 3,
        "unthrottled client is not slowed: {fast:?} vs {slow:?}"
    );

    // A raw request over quota carries throttle_time_ms.
    set_rate(&mut c, "raw", 100_000.0).await;
    let big = vec![7u8; 200_000];
    let records =
        esker::log::batch::build_batch(&[(None, Some(&big[..]))], 1_700_000_000_000).freeze();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("quota-topic")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r: ProduceResponse = c.call(&req, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(
        r.throttle_time_ms > 500,
        "throttle_time_ms = {}",
        r.throttle_time_ms
    );
    broker.stop().await;
}

/// The quota `user` entity is the authenticated principal's name (without `User:`): a
/// producer_byte_rate on user alice slows alice over SASL/PLAIN, not bob (same client id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_quota_follows_the_sasl_principal() {
    let broker = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", "alice:alice-secret,bob:bob-secret"),
        ("num.partitions", "1"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    let mut c = Raw::connect(&bootstrap).await;
    let hs: kafka_protocol::messages::SaslHandshakeResponse = c
        .call(
            &kafka_protocol::messages::SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth: kafka_protocol::messages::SaslAuthenticateResponse = c
        .call(
            &kafka_protocol::messages::SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::from_static(b"\0bob\0bob-secret")),
            2,
        )
        .await;
    assert_eq!(auth.error_code, 0);
    let r: AlterClientQuotasResponse = c
        .call(
            &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("user"))
                    .with_entity_name(Some(StrBytes::from_static_str("alice")))])
                .with_ops(vec![OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(1_000_000.0)])]),
            1,
        )
        .await;
    assert_eq!(r.entries[0].error_code, 0);

    let produce = |user: &'static str| {
        let bootstrap = bootstrap.clone();
        async move {
            let mut cfg = producer_config(&bootstrap, "1");
            cfg.set("client.id", "same-client")
                .set("batch.size", "65536")
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", "PLAIN")
                .set("sasl.username", user)
                .set("sasl.password", format!("{user}-secret"));
            let producer: FutureProducer = cfg.create().expect("producer");
            // 5 MB at 1 MB/s with one second of burst: about 4 s for alice.
            timed_sends(&producer, "user-quota", 5_000).await
        }
    };
    let alice = produce("alice").await;
    let bob = produce("bob").await;
    assert!(
        alice > Duration::from_millis(2500),
        "alice is throttled to 1 MB/s: {alice:?}"
    );
    assert!(
        bob < alice / 2,
        "bob is not throttled: {bob:?} vs {alice:?}"
    );
    broker.stop().await;
}

/// Sends up to `count` Metadata requests one after another and returns each
/// throttle_time_ms with the time its answer took; stops after `throttled` throttled answers
/// (when given).
async fn metadata_throttles(
    c: &mut Raw,
    count: usize,
    throttled: Option<usize>,
) -> Vec<(i32, Duration)> {
    use kafka_protocol::messages::MetadataRequest;
    let mut out = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let r = c
            .call(&MetadataRequest::default().with_topics(None), 9)
            .await;
        out.push((r.throttle_time_ms, started.elapsed()));
        if throttled.is_some_and(|n| out.iter().filter(|(t, _)| *t > 0).count() >= n) {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_percentage_throttles_only_its_client() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let mut admin = Raw::connect(&bootstrap).await;
    // 1% of a thread: 10 ms of handler time per second.
    let r: AlterClientQuotasResponse = admin
        .call(
            &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_entity_name(Some(StrBytes::from_static_str("busy")))])
                .with_ops(vec![OpData::default()
                    .with_key(StrBytes::from_static_str("request_percentage"))
                    .with_value(1.0)])]),
            1,
        )
        .await;
    assert_eq!(
        r.entries[0].error_code, 0,
        "{:?}",
        r.entries[0].error_message
    );

    // Another client sends as many requests as it likes without a throttle.
    let mut free = Raw::connect_as(&bootstrap, "free").await;
    let answers = metadata_throttles(&mut free, 500, None).await;
    assert!(answers.iter().all(|(t, _)| *t == 0), "{answers:?}");
    let free_mean = answers.iter().map(|(_, d)| *d).sum::<Duration>() / answers.len() as u32;

    // The quota'd client gets throttle_time_ms once its burst is spent, and each throttled
    // answer is held back as long (the connection is muted meanwhile: answers leave in order),
    // which holds it to about 1% of a thread.
    let mut busy = Raw::connect_as(&bootstrap, "busy").await;
    let answers = metadata_throttles(&mut busy, 2000, Some(50)).await;
    let first = answers.iter().position(|(t, _)| *t > 0);
    let throttled: Vec<(i32, Duration)> = answers.iter().copied().filter(|(t, _)| *t > 0).collect();
    assert_eq!(
        throttled.len(),
        50,
        "{} answers, first throttled: {first:?}",
        answers.len()
    );
    for (t, took) in &throttled {
        assert!(
            *took >= Duration::from_millis(*t as u64 * 9 / 10),
            "throttle_time_ms {t} but answered after {took:?}"
        );
    }
    let busy_mean = throttled.iter().map(|(_, d)| *d).sum::<Duration>() / 50;
    eprintln!(
        "free client: {free_mean:?} per answer; busy client: first throttled answer #{first:?}, \
         then {busy_mean:?} per answer (throttle_time_ms {:?})",
        throttled.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    assert!(
        busy_mean > free_mean * 5,
        "throttled answers ({busy_mean:?}) are not slower than free ones ({free_mean:?})"
    );

    // The throttles are counted per quota kind.
    let (status, body) = common::http_get(broker.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200);
    let counted = body
        .lines()
        .find(|l| l.starts_with("esker_quota_throttled_total{quota=\"request\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(counted >= 50.0, "esker_quota_throttled_total: {counted}");
    broker.stop().await;
}
