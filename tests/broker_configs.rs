//! Dynamic broker configs: IncrementalAlterConfigs / AlterConfigs on BROKER "<node id>" (this
//! broker) and BROKER "" (the cluster default), with Kafka's precedence and sources in
//! DescribeConfigs, Kafka's error codes for what cannot change at runtime, validate_only,
//! persistence across a restart, and a change taking effect on produce.

mod common;

use common::raw::Raw;
use common::{producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

/// One IncrementalAlterConfigs change: key, operation, value.
type Change<'a> = (&'a str, i8, Option<&'a str>);

/// IncrementalAlterConfigs on BROKER `name`; returns the error code and message.
async fn alter(
    c: &mut Raw,
    name: &str,
    changes: &[Change<'_>],
    validate_only: bool,
) -> (i16, String) {
    let configs = changes
        .iter()
        .map(|(k, op, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(*op)
                .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let r = c
        .call(
            &IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(BROKER)
                    .with_resource_name(StrBytes::from_string(name.into()))
                    .with_configs(configs)]),
            1,
        )
        .await;
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn set_ok(c: &mut Raw, name: &str, key: &str, value: &str) {
    let (code, msg) = alter(c, name, &[(key, SET, Some(value))], false).await;
    assert_eq!(code, 0, "SET {key}={value} on BROKER {name:?}: {msg}");
}

/// DescribeConfigs (v4, with synonyms) of BROKER `name`.
async fn describe(c: &mut Raw, name: &str) -> DescribeConfigsResult {
    let r = c
        .call(
            &DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(BROKER)
                    .with_resource_name(StrBytes::from_string(name.into()))
                    .with_configuration_keys(None)]),
            4,
        )
        .await;
    r.results.into_iter().next().expect("one result")
}

/// A described key's value, source and synonyms (name, value, source).
type Described = (String, i8, Vec<(String, String, i8)>);

fn entry(r: &DescribeConfigsResult, key: &str) -> Option<Described> {
    let e = r.configs.iter().find(|e| e.name.as_str() == key)?;
    Some((
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
        e.synonyms
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    s.source,
                )
            })
            .collect(),
    ))
}

fn syn(k: &str, v: &str, source: i8) -> (String, String, i8) {
    (k.into(), v.into(), source)
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    producer_config(bootstrap, "1").create().expect("admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_broker_beats_cluster_default_beats_static_and_all_survive_a_restart() {
    let mut broker = TestBroker::start_with(&[("log.cleaner.backoff.ms", "20000")]).await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    broker.create_topic("inherits", 1).await;
    let k = "log.cleaner.backoff.ms";

    // Static, with the default as its synonym.
    let d = describe(&mut c, "0").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(
        entry(&d, k),
        Some((
            "20000".into(),
            4,
            vec![syn(k, "20000", 4), syn(k, "15000", 5)]
        ))
    );

    // The cluster default (BROKER "") wins over the static value.
    set_ok(&mut c, "", k, "30000").await;
    set_ok(&mut c, "", "log.retention.ms", "1000000").await;
    let d = describe(&mut c, "0").await;
    assert_eq!(
        entry(&d, k),
        Some((
            "30000".into(),
            3,
            vec![syn(k, "30000", 3), syn(k, "20000", 4), syn(k, "15000", 5)]
        ))
    );
    // Described as "", the cluster default lists only what is set there.
    let d = describe(&mut c, "").await;
    let mut names: Vec<(&str, i8)> = d
        .configs
        .iter()
        .map(|e| (e.name.as_str(), e.config_source))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("log.cleaner.backoff.ms", 3), ("log.retention.ms", 3)]
    );

    // This broker's own value wins over the cluster default.
    set_ok(&mut c, "0", k, "40000").await;
    let d = describe(&mut c, "0").await;
    assert_eq!(
        entry(&d, k),
        Some((
            "40000".into(),
            2,
            vec![
                syn(k, "40000", 2),
                syn(k, "30000", 3),
                syn(k, "20000", 4),
                syn(k, "15000", 5)
            ]
        ))
    );

    // A real client sees the sources, and topics inherit the cluster default.
    let a = admin(&broker.bootstrap());
    let described = a
        .describe_configs(
            &[
                ResourceSpecifier::Broker(0),
                ResourceSpecifier::Topic("inherits"),
            ],
            &AdminOptions::new(),
        )
        .await
        .expect("describe");
    let b = described[0].as_ref().expect("broker");
    let e = b.get("log.retention.ms").expect("log.retention.ms");
    assert_eq!(
        (e.value.as_deref(), format!("{:?}", e.source)),
        (Some("1000000"), "DynamicDefaultBroker".to_string())
    );
    let t = described[1].as_ref().expect("topic");
    let e = t.get("retention.ms").expect("retention.ms");
    assert_eq!(
        (e.value.as_deref(), format!("{:?}", e.source)),
        (Some("1000000"), "DynamicDefaultBroker".to_string())
    );

    // DELETE of the per-broker value falls back to the cluster default.
    let (code, msg) = alter(&mut c, "0", &[(k, DELETE, None)], false).await;
    assert_eq!(code, 0, "{msg}");
    assert_eq!(
        entry(&describe(&mut c, "0").await, k).map(|e| (e.0, e.1)),
        Some(("30000".into(), 3))
    );

    // validate_only checks and changes nothing.
    let (code, msg) = alter(
        &mut c,
        "",
        &[("log.segment.bytes", SET, Some("2048"))],
        true,
    )
    .await;
    assert_eq!(code, 0, "{msg}");
    let (code, _) = alter(&mut c, "", &[("log.segment.bytes", SET, Some("1"))], true).await;
    assert_eq!(code, INVALID_REQUEST, "validate_only still validates");
    let d = describe(&mut c, "0").await;
    assert_eq!(entry(&d, "log.segment.bytes").map(|e| e.1), Some(5));

    set_ok(&mut c, "0", "log.roll.ms", "7200000").await;
    drop((c, a));
    broker.restart().await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    let d = describe(&mut c, "0").await;
    let got: Vec<Option<(String, i8)>> = [k, "log.retention.ms", "log.roll.ms"]
        .iter()
        .map(|key| entry(&d, key).map(|e| (e.0, e.1)))
        .collect();
    assert_eq!(
        got,
        vec![
            Some(("30000".into(), 3)),
            Some(("1000000".into(), 3)),
            Some(("7200000".into(), 2))
        ],
        "both layers survive a restart"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_change_at_runtime_is_refused_with_kafka_codes() {
    let broker = TestBroker::start().await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    let cases: &[(&str, &[Change<'_>], i16, &str)] = &[
        // Dynamic in Kafka, not in Esker: INVALID_CONFIG saying so.
        (
            "0",
            &[("num.io.threads", SET, Some("16"))],
            INVALID_CONFIG,
            "does not support",
        ),
        (
            "",
            &[("listeners", SET, Some("PLAINTEXT://:9093"))],
            INVALID_CONFIG,
            "listeners",
        ),
        (
            "0",
            &[("ssl.keystore.location", SET, Some("/k.jks"))],
            INVALID_CONFIG,
            "PEM",
        ),
        (
            "",
            &[("max.connections", SET, Some("10"))],
            INVALID_CONFIG,
            "max.connections",
        ),
        // Static in Kafka too: INVALID_REQUEST, as Kafka's "Cannot update these configs
        // dynamically".
        (
            "0",
            &[("num.partitions", SET, Some("3"))],
            INVALID_REQUEST,
            "num.partitions",
        ),
        // A bad value.
        (
            "0",
            &[("log.retention.ms", SET, Some("soon"))],
            INVALID_REQUEST,
            "log.retention.ms",
        ),
        // Unknown key.
        (
            "",
            &[("no.such.key", SET, Some("1"))],
            INVALID_CONFIG,
            "no.such.key",
        ),
        // Another broker's id: that broker must be asked.
        (
            "7",
            &[("log.retention.ms", SET, Some("1000"))],
            INVALID_REQUEST,
            "expected 0",
        ),
        (
            "0",
            &[
                ("log.retention.ms", SET, Some("1000")),
                ("log.retention.ms", SET, Some("2000")),
            ],
            INVALID_REQUEST,
            "duplicate",
        ),
        (
            "0",
            &[("log.retention.ms", SET, None)],
            INVALID_REQUEST,
            "Null value",
        ),
    ];
    for (name, changes, code, needle) in cases {
        let (got, msg) = alter(&mut c, name, changes, false).await;
        assert_eq!(got, *code, "{changes:?} on {name:?}: {msg}");
        assert!(
            msg.contains(needle),
            "{changes:?}: `{msg}` lacks `{needle}`"
        );
    }
    // One refused key refuses the whole resource: nothing was stored.
    let (got, _) = alter(
        &mut c,
        "0",
        &[
            ("log.retention.ms", SET, Some("1000")),
            ("num.io.threads", SET, Some("4")),
        ],
        false,
    )
    .await;
    assert_eq!(got, INVALID_CONFIG);
    assert!(describe(&mut c, "").await.configs.is_empty());
    assert_eq!(
        entry(&describe(&mut c, "0").await, "log.retention.ms").map(|e| e.1),
        Some(5)
    );
    // Describing another broker is refused too.
    assert_eq!(describe(&mut c, "7").await.error_code, INVALID_REQUEST);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_max_bytes_changes_take_effect_on_produce() {
    let broker = TestBroker::start().await;
    broker.create_topic("sized", 1).await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    let producer: FutureProducer = producer_config(&broker.bootstrap(), "1")
        .create()
        .expect("producer");
    let big = vec![b'x'; 3000];
    let send = |p: &FutureProducer| {
        let p = p.clone();
        let big = big.clone();
        async move {
            p.send(FutureRecord::<(), _>::to("sized").payload(&big), TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    };
    send(&producer).await.expect("3000 bytes fit the default");

    set_ok(&mut c, "", "message.max.bytes", "2000").await;
    match send(&producer).await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MESSAGE_TOO_LARGE under the cluster default, got {other:?}"),
    }
    // The per-broker value wins over the cluster default.
    set_ok(&mut c, "0", "message.max.bytes", "10000").await;
    send(&producer).await.expect("the per-broker limit applies");
    let (code, msg) = alter(&mut c, "0", &[("message.max.bytes", DELETE, None)], false).await;
    assert_eq!(code, 0, "{msg}");
    assert!(send(&producer).await.is_err(), "the cluster default again");
    let (code, msg) = alter(&mut c, "", &[("message.max.bytes", DELETE, None)], false).await;
    assert_eq!(code, 0, "{msg}");
    send(&producer).await.expect("back to the default");
    broker.stop().await;
}

/// Node `id`'s view of a key (value, source) as DescribeConfigs on BROKER `id` answers it.
async fn node_view(bootstrap: &str, id: i32, key: &str) -> Result<(String, i8), String> {
    let mut c = Raw::connect(bootstrap).await;
    let d = describe(&mut c, &id.to_string()).await;
    if d.error_code != 0 {
        return Err(format!(
            "node {id}: error {} {:?}",
            d.error_code, d.error_message
        ));
    }
    entry(&d, key)
        .map(|e| (e.0, e.1))
        .ok_or_else(|| format!("node {id}: {key} not described"))
}

/// Waits until nodes 1, 2 and 3 each describe `key` as `want` (value, source).
async fn wait_views(c: &common::cluster::Cluster, key: &str, want: &[(&str, i8)], what: &str) {
    let want: Vec<(String, i8)> = want.iter().map(|(v, s)| (v.to_string(), *s)).collect();
    let want = &want;
    c.wait_until(what, std::time::Duration::from_secs(60), || async move {
        let mut got = Vec::new();
        for id in 1..=3 {
            got.push(node_view(&c.bootstrap(id), id, key).await?);
        }
        if got == *want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_replicates_the_default_and_each_brokers_own_values_across_restarts() {
    use common::cluster::{within, Cluster};
    use std::time::Duration;
    let mut c = Cluster::start(3, &[]).await;
    let logs = c.logs();
    let k = "log.cleaner.backoff.ms";
    // Node 2 has its own value; the others take the cluster default.
    let want = [("30000", 3), ("40000", 2), ("30000", 3)];
    within(Duration::from_secs(120), &logs, async {
        // The cluster default, sent to node 1; node 2's own value, sent to node 2.
        let mut one = Raw::connect(&c.bootstrap(1)).await;
        set_ok(&mut one, "", k, "30000").await;
        let mut two = Raw::connect(&c.bootstrap(2)).await;
        set_ok(&mut two, "2", k, "40000").await;
        // Node 1 does not take node 2's per-broker change.
        let (code, msg) = alter(&mut one, "2", &[(k, SET, Some("1"))], false).await;
        assert_eq!(code, INVALID_REQUEST, "{msg}");
        wait_views(&c, k, &want, "every node to apply its dynamic configs").await;
    })
    .await;
    c.terminate_all().await;
    c.restart_all().await;
    within(Duration::from_secs(120), &logs, async {
        wait_views(
            &c,
            k,
            &want,
            "every node to keep its dynamic configs across a restart",
        )
        .await;
    })
    .await;
    c.terminate_all().await;
}
