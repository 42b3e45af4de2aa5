//! Idempotent producers: librdkafka with `enable.idempotence=true` writes through a proxy that
//! cuts connections after requests reach the broker but before their responses reach the
//! client. The client retries; the topic holds every message exactly once and in order.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards connections to `target`; on every connection, after `warmup` responses, the
/// `every`-th response frame is swallowed and the connection cut in both directions.
async fn chaos_proxy(
    listener: TcpListener,
    target: String,
    warmup: usize,
    every: usize,
    cuts: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let target = target.clone();
        let cuts = cuts.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let upstream = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            let mut frames = 0usize;
            loop {
                let mut len = [0u8; 4];
                if sr.read_exact(&mut len).await.is_err() {
                    break;
                }
                let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
                if sr.read_exact(&mut body).await.is_err() {
                    break;
                }
                frames += 1;
                if frames > warmup && frames % every == 0 {
                    // The request was processed; its answer never arrives.
                    cuts.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if cw.write_all(&len).await.is_err() || cw.write_all(&body).await.is_err() {
                    break;
                }
            }
            upstream.abort();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_a_lossy_proxy_write_exactly_once_in_order() {
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
    let proxy_addr = proxy.local_addr().expect("addr").to_string();
    let broker = TestBroker::start_with(&[
        ("advertised.listeners", &format!("PLAINTEXT://{proxy_addr}")),
        ("num.partitions", "1"),
    ])
    .await;
    let cuts = Arc::new(AtomicUsize::new(0));
    tokio::spawn(chaos_proxy(proxy, broker.bootstrap(), 4, 15, cuts.clone()));

    let mut cfg = producer_config(&proxy_addr, "-1");
    cfg.set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("batch.num.messages", "50")
        .set("retry.backoff.ms", "10")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("message.timeout.ms", "60000");
    let producer: FutureProducer = cfg.create().expect("producer");
    const N: usize = 5000;
    let sends = (0..N).map(|i| {
        let p = &producer;
        async move {
            let v = i.to_string();
            p.send(
                FutureRecord::<(), _>::to("exactly-once").payload(&v),
                TIMEOUT * 2,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered despite cut connections")
        }
    });
    let deliveries = join_all(sends).await;
    assert!(cuts.load(Ordering::SeqCst) > 0, "the proxy cut connections");
    // Acknowledged offsets are exactly 0..N in send order (a stored duplicate shifts them).
    if let Some((i, d)) = deliveries
        .iter()
        .enumerate()
        .find(|(i, d)| d.offset != *i as i64)
    {
        panic!(
            "message {i} acknowledged at offset {} (duplicates were stored)",
            d.offset
        );
    }

    let b = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&b).create().expect("consumer");
        let (_, high) = consumer
            .fetch_watermarks("exactly-once", 0, TIMEOUT)
            .expect("watermarks");
        assert_eq!(high, N as i64, "no duplicate was stored");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("exactly-once", 0, Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut next = 0usize;
        while next < N {
            assert!(Instant::now() < deadline, "read {next} of {N}");
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.expect("consume");
            let v: usize = std::str::from_utf8(m.payload().expect("payload"))
                .expect("utf8")
                .parse()
                .expect("number");
            assert_eq!(v, next, "message {next} exactly once, in order");
            next += 1;
        }
    })
    .await
    .expect("verification");
    broker.stop().await;
}

/// Sequence and epoch checks on the wire, producer ids never reused across a restart, and
/// duplicate detection that survives a restart (producer state snapshot / rebuild).
#[tokio::test]
async fn epochs_sequences_and_ids_across_restart() {
    use bytes::Bytes;
    use common::raw::Raw;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    fn batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
        let mut b =
            esker::log::batch::BatchBuilder::new(1_700_000_000_000).producer(pid, epoch, seq);
        b.record(None, Some(b"v"), 1_700_000_000_000);
        b.build().freeze()
    }
    async fn produce(c: &mut Raw, records: Bytes) -> (i16, i64) {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("idem")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
        let r: ProduceResponse = c.call(&req, 9).await;
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    let mut broker = TestBroker::start_with(&[("num.partitions", "1")]).await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    let init: InitProducerIdResponse = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    // Auto-create the topic through Metadata first.
    let _ = c
        .call(
            &kafka_protocol::messages::MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("idem")))),
                ])),
            12,
        )
        .await;
    assert_eq!(produce(&mut c, batch(pid, 0, 0)).await, (0, 0));
    assert_eq!(produce(&mut c, batch(pid, 0, 1)).await, (0, 1));
    assert_eq!(
        produce(&mut c, batch(pid, 0, 1)).await,
        (0, 1),
        "duplicate answered with its offset"
    );
    assert_eq!(
        produce(&mut c, batch(pid, 0, 5)).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&mut c, batch(pid, 1, 0)).await,
        (0, 2),
        "a new epoch starts at 0"
    );
    assert_eq!(
        produce(&mut c, batch(pid, 0, 2)).await.0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );

    drop(c);
    broker.restart().await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    assert_eq!(
        produce(&mut c, batch(pid, 1, 0)).await,
        (0, 2),
        "duplicate detected after restart"
    );
    assert_eq!(produce(&mut c, batch(pid, 1, 1)).await, (0, 3));
    let again: InitProducerIdResponse = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
            4,
        )
        .await;
    assert!(
        again.producer_id.0 > pid,
        "producer ids are not reused after a restart"
    );

    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
    let described: DescribeProducersResponse = c
        .call(
            &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str("idem")))
                .with_partition_indexes(vec![0])]),
            0,
        )
        .await;
    let p = &described.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let ours = p
        .active_producers
        .iter()
        .find(|s| s.producer_id.0 == pid)
        .expect("the producer is described");
    assert_eq!((ours.producer_epoch, ours.last_sequence), (1, 1));
    broker.stop().await;
}
