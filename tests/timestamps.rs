//! ListOffsets by timestamp answers the exact record, also inside compressed batches (which
//! the broker decompresses only for this lookup), and max-timestamp (-3) finds its record.

mod common;

use std::time::Duration;

use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lookups_are_exact_in_compressed_batches() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("ts-{codec}");
        let mut cfg = producer_config(&bootstrap, "1");
        cfg.set("compression.type", codec).set("linger.ms", "100");
        let producer: FutureProducer = cfg.create().expect("producer");
        let base = 1_800_000_000_000i64;
        // 100 records sent together land in one (compressed) batch; timestamps 10 ms apart.
        let topic_ref = topic.as_str();
        let sends = (0..100i64).map(|i| {
            let p = &producer;
            async move {
                let v = format!("value-{i}");
                p.send(
                    FutureRecord::<(), _>::to(topic_ref)
                        .partition(0)
                        .payload(&v)
                        .timestamp(base + i * 10),
                    TIMEOUT,
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered")
                .offset
            }
        });
        let offsets = join_all(sends).await;
        assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
        let b = bootstrap.clone();
        let t = topic.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = consumer_config(&b).create().expect("consumer");
            for (ts, want) in [
                (base + 425, 43),
                (base, 0),
                (base - 1, 0),
                (base + 990, 99),
                (base + 991, -1),
            ] {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&t, 0, Offset::Offset(ts))
                    .expect("tpl");
                let r = consumer
                    .offsets_for_times(tpl, Duration::from_secs(10))
                    .expect("lookup");
                let got = r.elements()[0].offset();
                let want = if want < 0 {
                    Offset::End
                } else {
                    Offset::Offset(want)
                };
                assert_eq!(got, want, "{codec}: timestamp {ts}");
            }
        })
        .await
        .expect("lookups");
    }
    broker.stop().await;
}
