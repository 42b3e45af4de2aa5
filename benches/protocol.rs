//! Benchmarks of the protocol side of the produce and fetch hot paths, on realistic bytes:
//!
//! - `protocol/decode_produce/16KiB`: decoding a Produce request (v9, one partition) carrying a
//!   16 KiB batch of 1 KiB records, as the connection's read loop does for every request.
//! - `protocol/assign_offsets/16KiB` (and `+log_append_time`): the produce path's per-batch
//!   offset assignment, a patched copy of the 61-byte header (the records are not copied; with
//!   LogAppendTime the CRC is recomputed over the batch).
//! - `protocol/encode_fetch/1MiB/{contiguous,chunked}`: encoding a Fetch response (v12) holding
//!   1 MiB of records, copied into one frame (the old way) or referenced as chunks for a
//!   vectored write (what the broker does).
//!
//! `cargo bench --bench protocol`

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use esker::kafka::{encode, frame, Reply};
use esker::log::batch::{self, BatchBuilder};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A batch of 15 records with 1 KiB values and 16-byte keys: just under 16 KiB.
fn produce_batch() -> BytesMut {
    let value: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    for i in 0..15 {
        let key = format!("key-{i:012}");
        builder.record(Some(key.as_bytes()), Some(&value), 1_700_000_000_000 + i);
    }
    builder.build()
}

fn bench_decode(c: &mut Criterion) {
    let batch = produce_batch().freeze();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let mut buf = BytesMut::new();
    req.encode(&mut buf, 9).expect("encode");
    let body = buf.freeze();
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_produce/16KiB", |b| {
        b.iter(|| {
            let mut bytes = body.clone();
            ProduceRequest::decode(black_box(&mut bytes), 9).expect("decode")
        })
    });
    group.finish();
}

fn bench_assign_offsets(c: &mut Criterion) {
    let batch = produce_batch();
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    let mut offset = 0i64;
    group.bench_function("assign_offsets/16KiB", |b| {
        b.iter(|| {
            offset += 15;
            batch::patched_header(black_box(&batch), offset, None)
        })
    });
    group.bench_function("assign_offsets/16KiB+log_append_time", |b| {
        b.iter(|| {
            offset += 15;
            batch::patched_header(black_box(&batch), offset, Some(1_800_000_000_000))
        })
    });
    group.finish();
}

fn bench_encode_fetch(c: &mut Criterion) {
    let records = Bytes::from(vec![0x42u8; 1 << 20]);
    let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench-topic")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(1_000_000)
            .with_records(Some(records.clone()))])]);
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(records.len() as u64));
    group.bench_function("encode_fetch/1MiB/contiguous", |b| {
        b.iter(|| match encode(7, 12, black_box(&resp)) {
            Reply::Frame(f) => f,
            _ => panic!("encode failed"),
        })
    });
    group.bench_function("encode_fetch/1MiB/chunked", |b| {
        b.iter(|| {
            frame::encode_chunked(
                7,
                12,
                black_box(&resp),
                vec![frame::Splice::Bytes(records.clone())],
            )
            .expect("encode")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_decode, bench_assign_offsets, bench_encode_fetch
}
criterion_main!(benches);
