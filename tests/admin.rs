//! The admin API through librdkafka's AdminClient: topics created with configs, configs
//! described with their sources, altered (durably: visible after a restart), invalid keys and
//! values refused naming the key; `max.message.bytes` enforced to the byte.

mod common;

use std::time::Duration;

use common::{producer_config, TestBroker, TIMEOUT};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn src(s: ConfigSource) -> String {
    format!("{s:?}")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    producer_config(bootstrap, "1").create().expect("admin")
}

/// A topic config's value and its source (as `Debug` text: rdkafka's `ConfigSource` is not `Clone`).
async fn topic_config(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    key: &str,
) -> (Option<String>, String) {
    let res = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let r = res[0].as_ref().expect("topic described");
    let e = r.get(key).unwrap_or_else(|| panic!("{key} described"));
    (e.value.clone(), format!("{:?}", e.source))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_are_validated_described_altered_and_durable() {
    let mut broker = TestBroker::start().await;
    let a = admin(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    let res = a
        .create_topics(
            &[
                NewTopic::new("configured", 2, TopicReplication::Fixed(1))
                    .set("retention.ms", "3600000")
                    .set("cleanup.policy", "compact"),
                NewTopic::new("bad-key", 1, TopicReplication::Fixed(1)).set("retention.msx", "1"),
                NewTopic::new("bad-value", 1, TopicReplication::Fixed(1))
                    .set("retention.ms", "soon"),
            ],
            &opts,
        )
        .await
        .expect("create");
    assert!(res[0].is_ok(), "{:?}", res[0]);
    match &res[1] {
        Err((_, RDKafkaErrorCode::InvalidConfig)) => {}
        other => panic!("unknown key must be INVALID_CONFIG: {other:?}"),
    }
    match &res[2] {
        Err((_, RDKafkaErrorCode::InvalidConfig)) => {}
        other => panic!("bad value must be INVALID_CONFIG: {other:?}"),
    }

    assert_eq!(
        topic_config(&a, "configured", "retention.ms").await,
        (Some("3600000".into()), src(ConfigSource::DynamicTopic))
    );
    let collide = a
        .create_topics(
            &[NewTopic::new("my.topic", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert!(collide[0].is_ok());
    let collide = a
        .create_topics(
            &[NewTopic::new("my_topic", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert!(
        matches!(collide[0], Err((_, RDKafkaErrorCode::InvalidTopic))),
        "'.'/'_' collision refused: {:?}",
        collide[0]
    );
    assert_eq!(
        topic_config(&a, "configured", "max.message.bytes").await,
        (Some("1048588".into()), src(ConfigSource::Default))
    );

    // Legacy AlterConfigs replaces the overrides.
    let altered = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("configured"))
                .set("retention.ms", "7200000")],
            &opts,
        )
        .await
        .expect("alter");
    assert!(altered[0].is_ok(), "{:?}", altered[0]);
    let bad = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("configured")).set("no.such.key", "1")],
            &opts,
        )
        .await
        .expect("alter");
    // rdkafka 0.39 does not surface per-resource AlterConfigs errors (it maps every resource
    // to Ok), so the refusal is checked by its effect: the overrides are unchanged.
    assert_eq!(bad.len(), 1);
    assert_eq!(
        topic_config(&a, "configured", "retention.ms").await,
        (Some("7200000".into()), src(ConfigSource::DynamicTopic))
    );
    assert_eq!(
        topic_config(&a, "configured", "cleanup.policy").await.1,
        src(ConfigSource::Default),
        "AlterConfigs replaced the whole set"
    );

    drop(a);
    broker.restart().await;
    let a = admin(&broker.bootstrap());
    assert_eq!(
        topic_config(&a, "configured", "retention.ms").await,
        (Some("7200000".into()), src(ConfigSource::DynamicTopic)),
        "altered config survives a restart"
    );
    let broker_cfg = a
        .describe_configs(&[ResourceSpecifier::Broker(0)], &AdminOptions::new())
        .await
        .expect("describe broker");
    let b = broker_cfg[0].as_ref().expect("broker described");
    assert!(b.get("message.max.bytes").is_some());
    broker.stop().await;
}

/// The size of the batch librdkafka builds for one uncompressed record with no key or headers
/// and a `len`-byte value (61-byte header, then length, attributes, timestamp delta, offset
/// delta, key length -1, value length, value, header count), valid for 64 <= len + 7 < 8192.
fn batch_size(len: usize) -> usize {
    61 + 2 + (len + 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_message_bytes_is_enforced_to_the_byte() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let a = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let limit = 4000usize;
    let res = a
        .create_topics(
            &[NewTopic::new("limited", 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", &limit.to_string())],
            &opts,
        )
        .await
        .expect("create");
    assert!(res[0].is_ok());
    let mut cfg = producer_config(&bootstrap, "-1");
    cfg.set("linger.ms", "0").set("message.timeout.ms", "10000");
    let producer: FutureProducer = cfg.create().expect("producer");
    let value_over = vec![b'x'; limit - 70 + 1];
    assert_eq!(batch_size(value_over.len()), limit + 1);

    let err = producer
        .send(
            FutureRecord::<(), _>::to("limited").payload(&value_over),
            TIMEOUT,
        )
        .await
        .expect_err("one byte over the limit is refused");
    assert!(
        matches!(
            err.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
        ),
        "{err:?}"
    );
    // Exactly at the limit is accepted, at offset 0: nothing was written by the refusal.
    let ok = producer
        .send(
            FutureRecord::<(), _>::to("limited").payload(&value_over[1..]),
            TIMEOUT,
        )
        .await
        .expect("at the limit");
    assert_eq!(ok.offset, 0);

    // Raise the limit; the same message now goes through (a 5 MiB message too).
    let altered = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("limited"))
                .set("max.message.bytes", "6000000")],
            &opts,
        )
        .await
        .expect("alter");
    assert!(altered[0].is_ok());
    let ok = producer
        .send(
            FutureRecord::<(), _>::to("limited").payload(&value_over),
            TIMEOUT,
        )
        .await
        .expect("over the old limit after raising it");
    assert_eq!(ok.offset, 1);
    let mut big_cfg = producer_config(&bootstrap, "1");
    big_cfg.set("message.max.bytes", "10000000");
    let big_producer: FutureProducer = big_cfg.create().expect("producer");
    let five_mib = vec![7u8; 5 << 20];
    let ok = big_producer
        .send(
            FutureRecord::<(), _>::to("limited").payload(&five_mib),
            Duration::from_secs(30),
        )
        .await
        .expect("5 MiB message");
    assert_eq!(ok.offset, 2);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_and_cluster_apis() {
    use common::raw::Raw;
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
        DescribeLogDirsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use rdkafka::admin::NewPartitions;

    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let a = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = a
        .create_topics(
            &[NewTopic::new("growing", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert!(res[0].is_ok());
    let res = a
        .create_partitions(&[NewPartitions::new("growing", 5)], &opts)
        .await
        .expect("create partitions");
    assert!(res[0].is_ok(), "{:?}", res[0]);
    let res = a
        .create_partitions(&[NewPartitions::new("growing", 3)], &opts)
        .await
        .expect("create partitions");
    assert!(
        matches!(res[0], Err((_, RDKafkaErrorCode::InvalidPartitions))),
        "shrinking is refused: {:?}",
        res[0]
    );
    // The new partitions take writes.
    let producer: FutureProducer = producer_config(&bootstrap, "1").create().expect("producer");
    for p in 0..5 {
        let d = producer
            .send(
                FutureRecord::<(), _>::to("growing")
                    .partition(p)
                    .payload("x"),
                TIMEOUT,
            )
            .await
            .expect("produce to every partition");
        assert_eq!((d.partition, d.offset), (p, 0));
    }

    let mut c = Raw::connect(&bootstrap).await;
    let cluster: DescribeClusterResponse = c
        .call(&DescribeClusterRequest::default().with_endpoint_type(1), 1)
        .await;
    assert_eq!(cluster.error_code, 0);
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(
        cluster.brokers[0].port,
        broker.broker.as_ref().unwrap().kafka_addrs()[0].port() as i32
    );

    let epochs: OffsetForLeaderEpochResponse = c
        .call(
            &OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("growing")))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(4)
                        .with_current_leader_epoch(0)
                        .with_leader_epoch(0)]),
            ]),
            4,
        )
        .await;
    let e = &epochs.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 1));

    let dirs: DescribeLogDirsResponse = c
        .call(
            &DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("growing")))
                    .with_partitions(vec![0, 1, 2, 3, 4]),
            ])),
            4,
        )
        .await;
    let parts = &dirs.results[0].topics[0].partitions;
    assert_eq!(parts.len(), 5);
    assert!(parts.iter().all(|p| p.partition_size > 0), "{parts:?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_apply_to_topics_and_survive_a_restart() {
    let mut broker = TestBroker::start().await;
    let a = admin(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = a
        .create_topics(
            &[NewTopic::new("inherits", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert!(res[0].is_ok());
    a.alter_configs(
        &[AlterConfig::new(ResourceSpecifier::Broker(0)).set("log.retention.ms", "123456")],
        &opts,
    )
    .await
    .expect("alter broker");
    // The topic inherits the new broker default, reported as a dynamic broker config.
    assert_eq!(
        topic_config(&a, "inherits", "retention.ms").await,
        (Some("123456".into()), src(ConfigSource::DynamicBroker))
    );
    // A static-only key is refused (the value stays as it was).
    a.alter_configs(
        &[AlterConfig::new(ResourceSpecifier::Broker(0))
            .set("log.retention.ms", "123456")
            .set("num.partitions", "7")],
        &opts,
    )
    .await
    .expect("alter broker");
    let described = a
        .describe_configs(&[ResourceSpecifier::Broker(0)], &AdminOptions::new())
        .await
        .expect("describe broker");
    let b = described[0].as_ref().expect("broker described");
    assert_eq!(
        b.get("num.partitions").and_then(|e| e.value.clone()),
        Some("1".into())
    );
    let retention = b.get("log.retention.ms").expect("described");
    assert_eq!(retention.value.as_deref(), Some("123456"));
    assert!(!retention.is_read_only);
    assert!(b.get("listeners").expect("listeners").is_read_only);

    drop(a);
    broker.restart().await;
    let a = admin(&broker.bootstrap());
    assert_eq!(
        topic_config(&a, "inherits", "retention.ms").await,
        (Some("123456".into()), src(ConfigSource::DynamicBroker)),
        "dynamic broker config survives a restart"
    );
    broker.stop().await;
}
