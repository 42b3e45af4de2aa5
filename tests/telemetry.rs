//! KIP-714 client telemetry: librdkafka subscribes through the broker's default subscription,
//! pushes its metrics, and they appear on `/metrics`; the terminating push on close drops
//! them. The error answers of PushTelemetry (stale subscription, compression, size, reserved
//! id, undecodable payload, early push) and the CLIENT_METRICS config resource with
//! ListConfigResources are driven with the raw client (no Rust client exposes them).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::Raw;
use common::{http_get, producer_config, TestBroker};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeConfigsRequest, GetTelemetrySubscriptionsRequest,
    GetTelemetrySubscriptionsResponse, IncrementalAlterConfigsRequest, ListConfigResourcesRequest,
    PushTelemetryRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const CLIENT_METRICS: i8 = 16;

/// Polls `/metrics` until `done` holds for its text (at most 30 s); returns the last text.
async fn await_metrics(broker: &TestBroker, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = http_get(broker.metrics_addr(), "/metrics").await;
        assert_eq!(status, 200);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("esker_client_metric{"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_pushes_metrics_to_the_metrics_endpoint() {
    let broker = TestBroker::start_with(&[
        ("telemetry.default.metrics", "org.apache.kafka.producer."),
        ("telemetry.default.interval.ms", "2000"),
    ])
    .await;
    let producer: FutureProducer = producer_config(&broker.bootstrap(), "1")
        .set("client.id", "telemetry-producer")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to("telemetry-topic").key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    let text = await_metrics(&broker, "the producer's pushed metrics", |t| {
        client_series(t)
            .iter()
            .any(|l| l.contains("name=\"org.apache.kafka.producer.node.request.latency.avg\""))
    })
    .await;
    let series = client_series(&text);
    // Only the subscribed prefix, with the client's identity as labels.
    assert!(
        series.iter().all(|l| {
            l.contains("client_id=\"telemetry-producer\"")
                && l.contains("client_software_name=\"librdkafka\"")
                && l.contains("name=\"org.apache.kafka.producer.")
        }),
        "{series:#?}"
    );
    // Per-node metrics carry the node as a label.
    assert!(
        series.iter().any(|l| l.contains("node_id=\"0\"")),
        "{series:#?}"
    );
    assert!(
        text.contains("esker_client_telemetry_instances 1\n"),
        "{text}"
    );

    // Closing sends the terminating push (librdkafka waits for it in rd_kafka_destroy),
    // which drops the client's series at once, well before they would expire (3 intervals).
    let pushes = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("esker_client_telemetry_pushes_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("pushes counter")
    };
    let before = pushes(&text);
    let dropped_at = Instant::now();
    tokio::task::spawn_blocking(move || drop(producer))
        .await
        .expect("producer closed");
    let (_, text) = http_get(broker.metrics_addr(), "/metrics").await;
    assert!(dropped_at.elapsed() < Duration::from_secs(6));
    assert!(client_series(&text).is_empty(), "{text}");
    assert!(pushes(&text) > before, "the terminating push was accepted");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subscription_means_no_metrics() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let a = raw
        .call(&GetTelemetrySubscriptionsRequest::default(), 0)
        .await;
    assert_eq!(a.error_code, 0);
    assert!(!a.client_instance_id.is_nil());
    assert!(
        a.requested_metrics.is_empty(),
        "Kafka's default: no subscription"
    );
    assert_eq!(a.telemetry_max_bytes, 1_048_576);
    broker.stop().await;
}

/// A fresh instance: GetTelemetrySubscriptions with the zero id.
async fn subscribe(raw: &mut Raw) -> GetTelemetrySubscriptionsResponse {
    let a = raw
        .call(&GetTelemetrySubscriptionsRequest::default(), 0)
        .await;
    assert_eq!(a.error_code, 0);
    a
}

fn push(
    a: &GetTelemetrySubscriptionsResponse,
    compression: i8,
    metrics: Vec<u8>,
) -> PushTelemetryRequest {
    PushTelemetryRequest::default()
        .with_client_instance_id(a.client_instance_id)
        .with_subscription_id(a.subscription_id)
        .with_compression_type(compression)
        .with_metrics(Bytes::from(metrics))
}

/// An OTLP `MetricsData` with one gauge `raw.gauge` = `value` (hand-encoded protobuf).
fn gauge(value: f64) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
        out.push(tag);
        let mut n = body.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(body);
    }
    let mut point = vec![0x21]; // as_double = 4, fixed64
    point.extend_from_slice(&value.to_le_bytes());
    let mut g = Vec::new();
    field(&mut g, 0x0a, &point); // Gauge.data_points = 1
    let mut metric = Vec::new();
    field(&mut metric, 0x0a, b"raw.gauge"); // Metric.name = 1
    field(&mut metric, 0x2a, &g); // Metric.gauge = 5
    let mut scope = Vec::new();
    field(&mut scope, 0x12, &metric); // ScopeMetrics.metrics = 2
    let mut rm = Vec::new();
    field(&mut rm, 0x12, &scope); // ResourceMetrics.scope_metrics = 2
    let mut data = Vec::new();
    field(&mut data, 0x0a, &rm); // MetricsData.resource_metrics = 1
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_telemetry_errors_follow_kafka() {
    let broker = TestBroker::start_with(&[
        ("telemetry.default.metrics", "*"),
        ("telemetry.default.interval.ms", "60000"),
        ("telemetry.max.bytes", "1024"),
    ])
    .await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    // KIP-511 software name, for the labels.
    let v = raw
        .call(
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("raw-client"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
            3,
        )
        .await;
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == 72 && k.min_version == 0 && k.max_version == 0));

    // Accepted, then too early.
    let a = subscribe(&mut raw).await;
    assert_eq!(a.requested_metrics, vec![StrBytes::from_static_str("*")]);
    assert_eq!(a.push_interval_ms, 60000);
    assert_eq!(a.telemetry_max_bytes, 1024);
    assert_eq!(a.accepted_compression_types, vec![4, 3, 1, 2]);
    assert_eq!(raw.call(&push(&a, 0, gauge(4.5)), 0).await.error_code, 0);
    assert_eq!(
        raw.call(&push(&a, 0, gauge(4.5)), 0).await.error_code,
        89,
        "THROTTLING_QUOTA_EXCEEDED"
    );
    let text = await_metrics(&broker, "the raw gauge", |t| {
        t.contains("name=\"raw.gauge\"")
    })
    .await;
    let line = format!(
        "esker_client_metric{{client_instance_id=\"{}\",client_id=\"raw\",client_software_name=\"raw-client\",client_software_version=\"1.0\",name=\"raw.gauge\"}} 4.5",
        a.client_instance_id
    );
    assert!(text.contains(&line), "{text}");
    // Asking for the subscription again at once is throttled too.
    let again = raw
        .call(
            &GetTelemetrySubscriptionsRequest::default()
                .with_client_instance_id(a.client_instance_id),
            0,
        )
        .await;
    assert_eq!(again.error_code, 89);

    // Each error on a fresh instance (the first push after a subscription is never early).
    let a = subscribe(&mut raw).await;
    let stale = push(&a, 0, gauge(1.0)).with_subscription_id(a.subscription_id.wrapping_add(1));
    assert_eq!(
        raw.call(&stale, 0).await.error_code,
        117,
        "UNKNOWN_SUBSCRIPTION_ID"
    );
    // ... after which the client may fetch its subscription at once.
    let refreshed = raw
        .call(
            &GetTelemetrySubscriptionsRequest::default()
                .with_client_instance_id(a.client_instance_id),
            0,
        )
        .await;
    assert_eq!(refreshed.error_code, 0);
    assert_eq!(refreshed.subscription_id, a.subscription_id);

    let a = subscribe(&mut raw).await;
    assert_eq!(
        raw.call(&push(&a, 5, gauge(1.0)), 0).await.error_code,
        76,
        "UNSUPPORTED_COMPRESSION_TYPE"
    );

    let a = subscribe(&mut raw).await;
    assert_eq!(
        raw.call(&push(&a, 0, vec![0u8; 1025]), 0).await.error_code,
        118,
        "TELEMETRY_TOO_LARGE"
    );

    let a = subscribe(&mut raw).await;
    let zero = push(&a, 0, gauge(1.0)).with_client_instance_id(Uuid::nil());
    assert_eq!(raw.call(&zero, 0).await.error_code, 42, "INVALID_REQUEST");

    let a = subscribe(&mut raw).await;
    assert_eq!(
        raw.call(&push(&a, 0, vec![0x0a, 0x7f, 0x01]), 0)
            .await
            .error_code,
        87,
        "INVALID_RECORD for a truncated protobuf"
    );
    let a = subscribe(&mut raw).await;
    assert_eq!(
        raw.call(&push(&a, 4, gauge(1.0)), 0).await.error_code,
        87,
        "INVALID_RECORD for a payload that is not zstd"
    );

    // The terminating push is accepted once, even early; after it, INVALID_REQUEST.
    let a = subscribe(&mut raw).await;
    assert_eq!(raw.call(&push(&a, 0, gauge(2.0)), 0).await.error_code, 0);
    let last = push(&a, 0, gauge(2.0)).with_terminating(true);
    assert_eq!(raw.call(&last, 0).await.error_code, 0);
    assert_eq!(raw.call(&last, 0).await.error_code, 42);

    // The connection survived every refusal.
    assert_eq!(subscribe(&mut raw).await.error_code, 0);
    broker.stop().await;
}

fn alter(name: &str, configs: &[(&str, i8, Option<&str>)]) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(
            configs
                .iter()
                .map(|(k, op, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_config_operation(*op)
                        .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                })
                .collect(),
        )])
}

fn describe(name: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(StrBytes::from_string(name.to_string()))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_metrics_resources_are_durable_and_listed() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("listed", 1).await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    // Kafka's validation answers.
    let bad = [
        (alter("s", &[("interval.ms", 0, Some("5"))]), 42),
        (alter("s", &[("bogus", 0, Some("1"))]), 42),
        (alter("s", &[("match", 0, Some("client_rack=x"))]), 40),
        (alter("", &[("metrics", 0, Some("x"))]), 42),
    ];
    for (req, code) in bad {
        let r = raw.call(&req, 1).await;
        assert_eq!(
            r.responses[0].error_code, code,
            "{:?}",
            r.responses[0].error_message
        );
    }
    let r = raw
        .call(
            &alter(
                "producers",
                &[
                    ("metrics", 0, Some("org.apache.kafka.producer.")),
                    ("interval.ms", 0, Some("1000")),
                    ("match", 0, Some("client_id=ra.*")),
                ],
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    // APPEND to a list key.
    let r = raw
        .call(
            &alter(
                "producers",
                &[("metrics", 2, Some("org.apache.kafka.consumer."))],
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);

    // The raw client ("raw") matches the subscription.
    let a = subscribe(&mut raw).await;
    assert_eq!(
        a.requested_metrics,
        vec![
            StrBytes::from_static_str("org.apache.kafka.consumer."),
            StrBytes::from_static_str("org.apache.kafka.producer."),
        ]
    );
    assert_eq!(a.push_interval_ms, 1000);

    broker.restart().await;
    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let d = raw.call(&describe("producers"), 4).await;
    let got: Vec<(String, String, i8)> = d.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("interval.ms".into(), "1000".into(), 7),
            ("match".into(), "client_id=ra.*".into(), 7),
            (
                "metrics".into(),
                "org.apache.kafka.producer.,org.apache.kafka.consumer.".into(),
                7
            ),
        ],
        "durable across a restart, source CLIENT_METRICS_CONFIG"
    );
    // An unknown resource describes as empty; an empty name is INVALID_REQUEST.
    let d = raw.call(&describe("nothing"), 4).await;
    assert_eq!(
        (d.results[0].error_code, d.results[0].configs.len()),
        (0, 0)
    );
    assert_eq!(raw.call(&describe(""), 4).await.results[0].error_code, 42);

    // ListConfigResources v0: client metrics only.
    let l = raw.call(&ListConfigResourcesRequest::default(), 0).await;
    assert_eq!(l.error_code, 0);
    let names: Vec<String> = l
        .config_resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    assert_eq!(names, vec!["producers"]);
    // v1, every type: client metrics, broker logger, broker, topics, in Kafka's order.
    let l = raw.call(&ListConfigResourcesRequest::default(), 1).await;
    let all: Vec<(i8, String)> = l
        .config_resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    assert_eq!(
        &all[..3],
        &[(16, "producers".into()), (8, "0".into()), (4, "0".into())]
    );
    assert!(all[3..].iter().all(|(t, _)| *t == 2));
    assert!(all.contains(&(2, "listed".into())));
    // v1 filtered; an unsupported type fails the request.
    let l = raw
        .call(
            &ListConfigResourcesRequest::default().with_resource_types(vec![2]),
            1,
        )
        .await;
    assert!(l.config_resources.iter().all(|r| r.resource_type == 2));
    let l = raw
        .call(
            &ListConfigResourcesRequest::default().with_resource_types(vec![2, 64]),
            1,
        )
        .await;
    assert_eq!(
        (l.error_code, l.config_resources.len()),
        (35, 0),
        "UNSUPPORTED_VERSION"
    );

    // Removing every key removes the resource.
    let r = raw
        .call(
            &alter(
                "producers",
                &[
                    ("metrics", 1, None),
                    ("interval.ms", 1, None),
                    ("match", 1, None),
                ],
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let l = raw.call(&ListConfigResourcesRequest::default(), 0).await;
    assert!(l.config_resources.is_empty());
    broker.stop().await;
}
