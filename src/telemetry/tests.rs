use super::otlp::encode::{metric, metrics_data, point};
use super::*;

fn client() -> ClientInfo {
    ClientInfo {
        client_id: "c1".into(),
        software_name: Some("librdkafka".into()),
        software_version: Some("2.12.1".into()),
        source_address: Some("127.0.0.1".into()),
        source_port: Some(40000),
    }
}

fn manager(default_metrics: &str, interval_ms: i32) -> (tempfile::TempDir, ClientTelemetry) {
    let dir = tempfile::tempdir().unwrap();
    let config = TelemetryConfig {
        default_metrics: subscription::list(default_metrics),
        default_interval_ms: interval_ms,
        ..TelemetryConfig::default()
    };
    let t = ClientTelemetry::open(dir.path(), config).unwrap();
    (dir, t)
}

fn payload(value: f64) -> Vec<u8> {
    metrics_data(
        &[],
        &[metric(
            "org.apache.kafka.producer.node.request.latency.avg",
            5,
            &[point(Err(value), &[("node.id", "1")])],
            false,
        )],
    )
}

fn push<'a>(a: &SubscriptionAnswer, metrics: &'a [u8]) -> Push<'a> {
    Push {
        client_instance_id: a.client_instance_id,
        subscription_id: a.subscription_id,
        terminating: false,
        compression_type: 0,
        metrics,
    }
}

fn rendered(t: &ClientTelemetry) -> String {
    let mut out = String::new();
    t.render(&mut out);
    out
}

#[test]
fn no_subscription_by_default() {
    let (_d, t) = manager("", 1000);
    let a = t
        .get_subscriptions(Uuid::nil(), &client(), Instant::now())
        .unwrap();
    assert!(!a.client_instance_id.is_nil(), "an id is assigned");
    assert!(a.requested_metrics.is_empty());
    assert_eq!(a.push_interval_ms, subscription::DEFAULT_INTERVAL_MS);
    assert_eq!(a.telemetry_max_bytes, 1_048_576);
    assert_eq!(a.accepted_compression_types, vec![4, 3, 1, 2]);
}

#[test]
fn push_is_exported_and_errors_follow_kafka() {
    let (_d, t) = manager("org.apache.kafka.", 1000);
    let now = Instant::now();
    let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
    assert_eq!(a.requested_metrics, vec!["org.apache.kafka."]);
    assert_eq!(a.push_interval_ms, 1000);
    // Asked again at once: throttled.
    assert!(matches!(
        t.get_subscriptions(a.client_instance_id, &client(), now),
        Err(TelemetryError::Throttled(_))
    ));
    let body = payload(2.5);
    t.push(&push(&a, &body), &client(), now).unwrap();
    let out = rendered(&t);
    let line = format!(
        "esker_client_metric{{client_instance_id=\"{}\",client_id=\"c1\",client_software_name=\"librdkafka\",client_software_version=\"2.12.1\",name=\"org.apache.kafka.producer.node.request.latency.avg\",node_id=\"1\"}} 2.5\n",
        a.client_instance_id
    );
    assert!(out.contains(&line), "{out}");
    assert!(out.contains("esker_client_telemetry_series 1\n"));
    assert!(out.contains("esker_client_telemetry_pushes_total 1\n"));
    // A second push within the interval is throttled.
    assert_eq!(
        t.push(&push(&a, &body), &client(), now + Duration::from_millis(10)),
        Err(TelemetryError::Throttled(a.client_instance_id))
    );
    let later = now + Duration::from_millis(1100);
    // Stale id, unknown compression, too large, garbage, reserved id.
    let stale = Push {
        subscription_id: a.subscription_id ^ 1,
        ..push(&a, &body)
    };
    assert!(matches!(
        t.push(&stale, &client(), later),
        Err(TelemetryError::UnknownSubscriptionId { .. })
    ));
    // After UNKNOWN_SUBSCRIPTION_ID the client may ask for its subscription at once.
    let a2 = t
        .get_subscriptions(
            a.client_instance_id,
            &client(),
            later + Duration::from_millis(1),
        )
        .unwrap();
    assert_eq!(a2.client_instance_id, a.client_instance_id);
    assert_eq!(a2.subscription_id, a.subscription_id);
    let bad = Push {
        compression_type: 9,
        ..push(&a, &body)
    };
    assert_eq!(
        t.push(&bad, &client(), later + Duration::from_millis(2)),
        Err(TelemetryError::UnsupportedCompression(9))
    );
    let garbage = [0x0a, 0xff, 0xff];
    let later = later + Duration::from_millis(1100);
    assert!(matches!(
        t.push(&push(&a, &garbage), &client(), later),
        Err(TelemetryError::InvalidRecord(_))
    ));
    let zero = Push {
        client_instance_id: Uuid::nil(),
        ..push(&a, &body)
    };
    assert!(matches!(
        t.push(&zero, &client(), later),
        Err(TelemetryError::InvalidRequest(_))
    ));
    // The terminating push is accepted once (even early) and drops the series.
    let last = Push {
        terminating: true,
        ..push(&a, &body)
    };
    let later = later + Duration::from_millis(10);
    t.push(&last, &client(), later).unwrap();
    assert!(!rendered(&t).contains("esker_client_metric{"));
    assert!(matches!(
        t.push(&last, &client(), later),
        Err(TelemetryError::InvalidRequest(_))
    ));
}

#[test]
fn too_large_payloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = TelemetryConfig {
        default_metrics: vec!["*".into()],
        default_interval_ms: 1000,
        max_bytes: 16,
        ..TelemetryConfig::default()
    };
    let t = ClientTelemetry::open(dir.path(), config).unwrap();
    let now = Instant::now();
    let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
    assert_eq!(a.telemetry_max_bytes, 16);
    let body = payload(1.0);
    assert!(body.len() > 16);
    assert!(matches!(
        t.push(&push(&a, &body), &client(), now),
        Err(TelemetryError::TooLarge { max: 16, .. })
    ));
}

#[test]
fn compressed_payloads_decode() {
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let body = payload(7.0);
    let compress = |kind: i8| -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        let write = |b: &mut bytes::BytesMut| {
            b.extend_from_slice(&body);
            Ok(())
        };
        match kind {
            1 => Gzip::compress(&mut out, write).unwrap(),
            2 => Snappy::compress(&mut out, write).unwrap(),
            3 => Lz4::compress(&mut out, write).unwrap(),
            _ => Zstd::compress(&mut out, write).unwrap(),
        }
        out.to_vec()
    };
    for kind in [1i8, 2, 3, 4] {
        let (_d, t) = manager("*", 1000);
        let now = Instant::now();
        let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
        let c = compress(kind);
        let p = Push {
            compression_type: kind,
            ..push(&a, &c)
        };
        t.push(&p, &client(), now).unwrap();
        assert!(rendered(&t).contains("node_id=\"1\"} 7\n"), "codec {kind}");
        // The same bytes claimed under another codec do not decode.
        let (_d, t) = manager("*", 1000);
        let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
        let wrong = Push {
            compression_type: if kind == 4 { 1 } else { 4 },
            ..push(&a, &c)
        };
        assert!(matches!(
            t.push(&wrong, &client(), now),
            Err(TelemetryError::InvalidRecord(_))
        ));
    }
}

#[test]
fn series_expire_after_three_intervals_and_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let config = TelemetryConfig {
        default_metrics: vec!["*".into()],
        default_interval_ms: 1000,
        max_series: 3,
        ..TelemetryConfig::default()
    };
    let t = ClientTelemetry::open(dir.path(), config).unwrap();
    let now = Instant::now();
    let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
    let nodes: Vec<Vec<u8>> = (0..5)
        .map(|n| point(Ok(n), &[("node.id", &n.to_string())]))
        .collect();
    let body = metrics_data(&[], &[metric("m", 5, &nodes, false)]);
    t.push(&push(&a, &body), &client(), now).unwrap();
    let out = rendered(&t);
    assert_eq!(out.matches("esker_client_metric{").count(), 3, "{out}");
    assert!(out.contains("esker_client_telemetry_dropped_series_total 2\n"));
    // A delta sum accumulates into a total.
    let sum = |v| metrics_data(&[], &[metric("s", 7, &[point(Ok(v), &[])], true)]);
    let other = ClientInfo {
        client_id: "c2".into(),
        ..client()
    };
    let (_d2, t2) = manager("*", 1000);
    let b = t2.get_subscriptions(Uuid::nil(), &other, now).unwrap();
    t2.push(&push(&b, &sum(3)), &other, now).unwrap();
    let next = now + Duration::from_millis(1000);
    t2.push(&push(&b, &sum(4)), &other, next).unwrap();
    assert!(rendered(&t2).contains("name=\"s\"} 7\n"));
    // Three intervals without a push: the series go; the instance stays until 60 s.
    t2.sweep(&mut t2.lock(), next + Duration::from_millis(3100));
    assert!(!rendered(&t2).contains("esker_client_metric{"));
    let mut state = t2.lock();
    assert_eq!(state.instances.len(), 1);
    t2.sweep(&mut state, next + Duration::from_secs(61));
    assert_eq!(state.instances.len(), 0);
    assert_eq!(state.series, 0);
}

#[test]
fn resources_are_validated_stored_and_resubscribe_clients() {
    let (dir, t) = manager("", 1000);
    let set = |k: &str, v: &str| (k.to_string(), AlterOp::Set, Some(v.to_string()));
    // Invalid changes are refused and nothing is stored.
    assert!(matches!(
        t.alter_incremental("s", &[set("interval.ms", "5")], false),
        Err(ConfigError::Invalid(SubscriptionError::Interval(_)))
    ));
    assert!(matches!(
        t.alter_incremental("s", &[set("bogus", "1")], false),
        Err(ConfigError::Invalid(SubscriptionError::UnknownKey(_)))
    ));
    assert!(matches!(
        t.alter_incremental(
            "s",
            &[("interval.ms".into(), AlterOp::Append, Some("1".into()))],
            false
        ),
        Err(ConfigError::NotAList(_))
    ));
    assert!(matches!(
        t.alter_incremental("", &[set("metrics", "x")], false),
        Err(ConfigError::Invalid(SubscriptionError::EmptyName))
    ));
    t.alter_incremental("s", &[set("metrics", "a.")], true)
        .unwrap();
    assert!(
        t.resource_names().is_empty(),
        "validate_only stores nothing"
    );

    let now = Instant::now();
    let a = t.get_subscriptions(Uuid::nil(), &client(), now).unwrap();
    assert!(a.requested_metrics.is_empty());
    t.alter_incremental(
        "s",
        &[
            set("metrics", "a.,b."),
            set("interval.ms", "2000"),
            set("match", "client_id=c.*"),
        ],
        false,
    )
    .unwrap();
    t.alter_incremental(
        "s",
        &[
            ("metrics".into(), AlterOp::Append, Some("c.".into())),
            ("metrics".into(), AlterOp::Subtract, Some("a.".into())),
        ],
        false,
    )
    .unwrap();
    assert_eq!(
        t.resource("s").unwrap().get("metrics").map(String::as_str),
        Some("b.,c.")
    );
    // The old subscription id is stale now; the client learns the new set at once.
    let body = payload(1.0);
    assert!(matches!(
        t.push(&push(&a, &body), &client(), now),
        Err(TelemetryError::UnknownSubscriptionId { .. })
    ));
    let a2 = t
        .get_subscriptions(a.client_instance_id, &client(), now)
        .unwrap();
    assert_eq!(a2.requested_metrics, vec!["b.", "c."]);
    assert_eq!(a2.push_interval_ms, 2000);
    assert_ne!(a2.subscription_id, a.subscription_id);

    // Durable: a reopened manager has the resource.
    drop(t);
    let t = ClientTelemetry::open(dir.path(), TelemetryConfig::default()).unwrap();
    assert_eq!(t.resource_names(), vec!["s"]);
    // Deleting every key removes the resource.
    t.alter_incremental(
        "s",
        &[
            ("metrics".into(), AlterOp::Delete, None),
            ("interval.ms".into(), AlterOp::Delete, None),
            ("match".into(), AlterOp::Delete, None),
        ],
        false,
    )
    .unwrap();
    assert!(t.resource_names().is_empty());
    let t = ClientTelemetry::open(dir.path(), TelemetryConfig::default()).unwrap();
    assert!(t.resource_names().is_empty());
}

#[test]
fn label_names_and_values_are_safe() {
    assert_eq!(label_name("node.id"), "node_id");
    assert_eq!(label_name("name"), "attr_name");
    assert_eq!(label_name("1x"), "attr_1x");
    assert_eq!(label_name("__x"), "attr___x");
    assert_eq!(label_name(""), "attr_");
    assert_eq!(
        crate::metrics::escape_label("a\"b\\c\nd"),
        "a\\\"b\\\\c\\nd"
    );
    assert_eq!(number(f64::INFINITY), "+Inf");
    assert_eq!(number(f64::NEG_INFINITY), "-Inf");
    assert_eq!(number(f64::NAN), "NaN");
    assert_eq!(number(1.5), "1.5");
}
