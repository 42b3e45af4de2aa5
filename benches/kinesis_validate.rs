//! What AWS-exact request checking costs per Kinesis request, against reading the same body
//! into its typed model alone (what the broker did before it checked requests as AWS does):
//!
//! - `kinesis_decode/put_records_500x1KiB/{typed_only,checked}`: a PutRecords body as the AWS
//!   SDKs send it (500 records, 1 KiB of base64 data, partition keys), JSON and CBOR;
//! - `kinesis_decode/get_records/{typed_only,checked}`: a GetRecords body (iterator, limit).
//!
//! The ratio of `checked` to `typed_only` in one run is the figure; the end-to-end effect is
//! measured with `benches/kinesis.rs` (docs/performance.md).
//!
//! `cargo bench --bench kinesis_validate`

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use esker::kinesis::model::{GetRecordsInput, PutRecordsInput};
use esker::kinesis::validate;
use esker::kinesis::Encoding;

fn put_records_json() -> Vec<u8> {
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&data);
    let records: Vec<serde_json::Value> = (0..500)
        .map(|i| serde_json::json!({"Data": data, "PartitionKey": format!("key-{i}")}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"StreamName": "bench", "Records": records}))
        .expect("serialisable")
}

fn put_records_cbor() -> Vec<u8> {
    use ciborium::Value;
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let records: Vec<Value> = (0..500)
        .map(|i| {
            Value::Map(vec![
                (Value::Text("Data".into()), Value::Bytes(data.clone())),
                (
                    Value::Text("PartitionKey".into()),
                    Value::Text(format!("key-{i}")),
                ),
            ])
        })
        .collect();
    let body = Value::Map(vec![
        (
            Value::Text("StreamName".into()),
            Value::Text("bench".into()),
        ),
        (Value::Text("Records".into()), Value::Array(records)),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&body, &mut out).expect("serialisable");
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("kinesis_decode");
    group.measurement_time(Duration::from_secs(5));

    let json = put_records_json();
    group.throughput(Throughput::Elements(500));
    group.bench_function("put_records_500x1KiB/json/typed_only", |b| {
        b.iter(|| serde_json::from_slice::<PutRecordsInput>(black_box(&json)).expect("typed"))
    });
    group.bench_function("put_records_500x1KiB/json/checked", |b| {
        b.iter(|| {
            validate::decode::<PutRecordsInput>("PutRecords", black_box(&json), Encoding::Json)
                .expect("valid")
        })
    });

    let cbor = put_records_cbor();
    group.bench_function("put_records_500x1KiB/cbor/typed_only", |b| {
        b.iter(|| ciborium::from_reader::<PutRecordsInput, _>(black_box(&cbor[..])).expect("typed"))
    });
    group.bench_function("put_records_500x1KiB/cbor/checked", |b| {
        b.iter(|| {
            validate::decode::<PutRecordsInput>("PutRecords", black_box(&cbor), Encoding::Cbor)
                .expect("valid")
        })
    });

    let get = br#"{"ShardIterator":"AAAAAAAAAAGZL8I7S8WFN+Cmt0XSvw7UjkbMRx5gNlBY++tcjoSTd9gs/Ez3mE9eLhZLfQ5u8vrVXBZS7cn3B5flXK5TiumVYClg/BKfjpeq9avTvw1SeWi3bLPCz8ii7rgZsZGyjYChbcpiyZ2uFuJyCb7acZxEl6rqBrX9W6TtqtpNsaziiWTSd5PjseLwHaSkzqLU+U0=","Limit":10000}"#;
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_records/json/typed_only", |b| {
        b.iter(|| serde_json::from_slice::<GetRecordsInput>(black_box(get)).expect("typed"))
    });
    group.bench_function("get_records/json/checked", |b| {
        b.iter(|| {
            validate::decode::<GetRecordsInput>("GetRecords", black_box(get), Encoding::Json)
                .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
