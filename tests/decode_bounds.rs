//! A length or count read from the wire never sizes an allocation before the bytes behind it
//! have arrived (issue 19's fuzz finding, fixed in the vendored kafka-protocol; see
//! `vendor/kafka-protocol/ESKER-PATCH.md`).
//!
//! A counting global allocator records the largest single allocation while each hostile input
//! goes through the entry point and broker the `kafka_request` fuzz target uses
//! (`esker::fuzzing::kafka_request` on a `FuzzBroker`): every file in `fuzz/known/`, then
//! hand-made frames with huge array counts for several APIs in flexible and non-flexible
//! versions, and record batches claiming huge record and header counts. Each must be answered
//! or refused without a panic and without any allocation of `MAX_ALLOCATION` or more. The
//! 73-byte frame of the finding is also sent to a broker over TCP: the connection is closed and
//! a real rdkafka producer is served afterwards. Kinesis CBOR bodies claiming huge strings,
//! arrays and maps get the same check through `esker::fuzzing::kinesis_request`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::raw::{request_frame, Raw};
use common::{producer_config, TestBroker, TIMEOUT};
use esker::fuzzing::{FuzzBroker, KafkaOutcome};
use kafka_protocol::compression::{Compressor, Decompressor, Snappy};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The largest single allocation a hostile input may cause.
const MAX_ALLOCATION: usize = 1 << 20;

/// Wraps the system allocator and remembers the largest single allocation (or reallocation)
/// since the last [`largest_since_reset`].
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this file measure one process-wide figure, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `f` and returns its output with the largest single allocation made meanwhile (by any
/// thread: the broker's shards included).
async fn measured<F: Future>(f: F) -> (F::Output, usize) {
    LARGEST.store(0, Ordering::SeqCst);
    let out = f.await;
    (out, LARGEST.swap(0, Ordering::SeqCst))
}

fn measured_sync<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::SeqCst);
    let out = f();
    (out, LARGEST.swap(0, Ordering::SeqCst))
}

// --- hand-made frames ---------------------------------------------------------------------

fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A signed varint (zigzag), as record fields use.
fn varint(out: &mut Vec<u8>, v: i32) {
    uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// A request header: v1 (`flexible` false) or v2 (with an empty tagged-field section).
fn header(api_key: i16, version: i16, flexible: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&7i32.to_be_bytes());
    b.extend_from_slice(&4i16.to_be_bytes());
    b.extend_from_slice(b"test");
    if flexible {
        b.push(0);
    }
    b
}

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn compact_string(b: &mut Vec<u8>, s: &str) {
    uvarint(b, s.len() as u64 + 1);
    b.extend_from_slice(s.as_bytes());
}

const HUGE_COUNT: i32 = i32::MAX;
/// A compact array's length field for `u32::MAX - 1` elements.
const HUGE_COMPACT: u64 = u32::MAX as u64;

/// Frames (without the size prefix) whose body claims an array far longer than the frame.
fn huge_array_frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut frames = Vec::new();

    // Metadata v0 and v4: topics (INT32 count).
    let mut b = header(3, 0, false);
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("Metadata v0 topics", b));
    let mut b = header(3, 4, false);
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    b.push(1);
    frames.push(("Metadata v4 topics", b));
    // Metadata v12 (flexible): topics (compact array).
    let mut b = header(3, 12, true);
    uvarint(&mut b, HUGE_COMPACT);
    frames.push(("Metadata v12 topics", b));

    // AddPartitionsToTxn v0: topics; v3 (flexible): topics, compact.
    let mut b = header(24, 0, false);
    string(&mut b, "txn");
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("AddPartitionsToTxn v0 topics", b));
    let mut b = header(24, 3, true);
    compact_string(&mut b, "txn");
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    uvarint(&mut b, HUGE_COMPACT);
    frames.push(("AddPartitionsToTxn v3 topics", b));

    // Produce v8: topic_data; v9 (flexible): one topic whose partition_data is huge.
    let mut b = header(0, 8, false);
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    b.extend_from_slice(&1i16.to_be_bytes()); // acks
    b.extend_from_slice(&5000i32.to_be_bytes()); // timeout_ms
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("Produce v8 topic_data", b));
    let mut b = header(0, 9, true);
    b.push(0); // transactional_id: null
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&5000i32.to_be_bytes());
    uvarint(&mut b, 2); // one topic
    compact_string(&mut b, "bounds");
    uvarint(&mut b, HUGE_COMPACT);
    frames.push(("Produce v9 partition_data", b));

    // Fetch v4: topics.
    let mut b = header(1, 4, false);
    for v in [-1i32, 100, 1, 1 << 20] {
        b.extend_from_slice(&v.to_be_bytes()); // replica_id, max_wait_ms, min_bytes, max_bytes
    }
    b.push(0); // isolation_level
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("Fetch v4 topics", b));

    // CreateTopics v2: topics; v5 (flexible): topics.
    let mut b = header(19, 2, false);
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("CreateTopics v2 topics", b));
    let mut b = header(19, 5, true);
    uvarint(&mut b, HUGE_COMPACT);
    frames.push(("CreateTopics v5 topics", b));

    // OffsetCommit v2: one topic whose partitions are huge.
    let mut b = header(8, 2, false);
    string(&mut b, "group");
    b.extend_from_slice(&(-1i32).to_be_bytes()); // generation
    string(&mut b, "member");
    b.extend_from_slice(&(-1i64).to_be_bytes()); // retention_time_ms
    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
    string(&mut b, "bounds");
    b.extend_from_slice(&HUGE_COUNT.to_be_bytes());
    frames.push(("OffsetCommit v2 partitions", b));

    frames
}

/// A v2 record batch (base offset 0, uncompressed, valid CRC) claiming `record_count` records
/// whose bytes are `records`.
fn raw_batch(record_count: i32, records: &[u8]) -> Bytes {
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
    after_crc.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // max timestamp
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&record_count.to_be_bytes());
    after_crc.extend_from_slice(records);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((4 + 1 + 4 + after_crc.len()) as i32); // leader epoch, magic, crc, rest
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(crc32c::crc32c(&after_crc));
    b.put_slice(&after_crc);
    b.freeze()
}

/// One record with value `v` whose header count is `headers` (and no header bytes).
fn record_claiming_headers(headers: i32) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, -1); // key: null
    varint(&mut body, 1); // value: 1 byte
    body.push(b'v');
    varint(&mut body, headers);
    let mut r = Vec::new();
    varint(&mut r, body.len() as i32);
    r.extend_from_slice(&body);
    r
}

/// Record batches that claim far more than they hold.
fn hostile_batches() -> Vec<(&'static str, Bytes)> {
    vec![
        (
            "record with i32::MAX headers",
            raw_batch(1, &record_claiming_headers(i32::MAX)),
        ),
        (
            "batch with i32::MAX records",
            raw_batch(i32::MAX, &record_claiming_headers(0)),
        ),
    ]
}

fn produce_frame(records: Bytes, version: i16) -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bounds")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    // Without the size prefix: what `kafka_request` takes.
    request_frame(&req, version, 9, "test").freeze().slice(4..)
}

fn known_findings() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/known");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz/known")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

// --- the tests ----------------------------------------------------------------------------

/// Runs one frame through `kafka_request` on the fuzz target's broker, as the target does.
fn through_dispatch(broker: &FuzzBroker, frame: Vec<u8>) -> (KafkaOutcome, usize) {
    broker.rt.block_on(measured(esker::fuzzing::kafka_request(
        &broker.ctx,
        &broker.listener,
        Bytes::from(frame),
        Duration::from_secs(5),
    )))
}

#[test]
fn hostile_counts_allocate_little_through_kafka_dispatch() {
    let _serial = SERIAL.blocking_lock();
    // The broker the kafka_request fuzz target runs.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = FuzzBroker::start(dir.path(), &[]).expect("broker starts");
    broker
        .rt
        .block_on(broker.ctx.create_topic("bounds", 1, Default::default()))
        .expect("topic");

    let known = known_findings();
    assert!(
        known
            .iter()
            .any(|(n, _)| n == "kafka_request-oom-add-partitions-to-txn-v0"),
        "the issue 19 finding is in fuzz/known"
    );
    for (name, frame) in known {
        let (outcome, largest) = through_dispatch(&broker, frame);
        assert!(
            largest < MAX_ALLOCATION,
            "fuzz/known/{name}: largest allocation {largest} bytes ({outcome:?})"
        );
        assert!(
            !matches!(outcome, KafkaOutcome::TimedOut),
            "fuzz/known/{name} got no answer"
        );
    }

    for (what, frame) in huge_array_frames() {
        let (outcome, largest) = through_dispatch(&broker, frame);
        assert!(
            largest < MAX_ALLOCATION,
            "{what}: largest allocation {largest} bytes ({outcome:?})"
        );
        match outcome {
            KafkaOutcome::Closed(reason) => assert!(
                reason.contains("malformed") && reason.contains("Tried to allocate"),
                "{what}: closed for an unexpected reason: {reason}"
            ),
            other => panic!("{what}: expected a closed connection, got {other:?}"),
        }
    }

    for (what, batch) in hostile_batches() {
        for version in [8, 9] {
            let frame = produce_frame(batch.clone(), version).to_vec();
            let (outcome, largest) = through_dispatch(&broker, frame);
            assert!(
                largest < MAX_ALLOCATION,
                "Produce v{version}, {what}: largest allocation {largest} bytes ({outcome:?})"
            );
            assert!(
                matches!(outcome, KafkaOutcome::Reply(_) | KafkaOutcome::Closed(_)),
                "Produce v{version}, {what}: {outcome:?}"
            );
        }
    }

    // The same entry point still takes a valid produce.
    let valid = esker::log::batch::build_batch(&[(None, Some(b"ok"))], 0).freeze();
    let (outcome, _) = through_dispatch(&broker, produce_frame(valid, 9).to_vec());
    assert!(matches!(outcome, KafkaOutcome::Reply(_)), "{outcome:?}");
    broker.shutdown().expect("clean shutdown");
}

#[tokio::test]
async fn record_and_snappy_decoders_refuse_claims_past_their_input() {
    let _serial = SERIAL.lock().await;
    for (what, batch) in hostile_batches() {
        let (result, largest) = measured_sync(|| RecordBatchDecoder::decode(&mut batch.clone()));
        assert!(result.is_err(), "{what} decoded");
        assert!(
            largest < MAX_ALLOCATION,
            "{what}: largest allocation {largest} bytes"
        );
    }

    // A raw snappy block (no xerial header) claiming u32::MAX bytes, and a xerial stream
    // whose one block claims as much.
    let mut raw = Vec::new();
    uvarint(&mut raw, u64::from(u32::MAX));
    raw.extend_from_slice(&[0, 0]);
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    xerial.extend_from_slice(&raw);
    for (what, input) in [("raw", raw), ("xerial", xerial)] {
        let (result, largest) = measured_sync(|| {
            Snappy::decompress(&mut Bytes::from(input), |b: &mut Bytes| Ok(b.len()))
        });
        let err = result.expect_err(what).to_string();
        assert!(err.contains("snappy"), "{what}: {err}");
        assert!(
            largest < MAX_ALLOCATION,
            "snappy {what}: largest allocation {largest} bytes"
        );
    }
}

#[test]
fn snappy_bound_keeps_real_data_decodable() {
    // The densest input there is: 8 MiB of zeros, compressed as Kafka clients do (xerial
    // framing, 32 KiB blocks); the stream, and its first block alone as raw snappy, must come
    // back whole.
    let data = vec![0u8; 8 << 20];
    let mut framed = BytesMut::new();
    Snappy::compress(&mut framed, |tmp: &mut BytesMut| {
        tmp.put_slice(&data);
        Ok(())
    })
    .expect("compress");
    let framed = framed.freeze();
    let back = Snappy::decompress(&mut framed.clone(), |b: &mut Bytes| Ok(b.clone()))
        .expect("xerial stream decompresses");
    assert_eq!(back.len(), data.len());
    assert!(back.iter().all(|b| *b == 0));

    let first_len = u32::from_be_bytes(framed[16..20].try_into().expect("4 bytes")) as usize;
    let block = framed.slice(20..20 + first_len);
    let back = Snappy::decompress(&mut block.clone(), |b: &mut Bytes| Ok(b.len()))
        .expect("raw block decompresses");
    assert_eq!(back, 32 * 1024, "a {first_len}-byte block");
}

/// CBOR Kinesis bodies whose byte string, text, array or map header claims about 4 GiB or
/// 4 billion items, followed by a few bytes.
fn huge_cbor_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let text = |b: &mut Vec<u8>, s: &str| {
        b.push(0x60 | s.len() as u8);
        b.extend_from_slice(s.as_bytes());
    };
    let mut bodies = Vec::new();
    let mut b = vec![0xa3];
    text(&mut b, "StreamName");
    text(&mut b, "bounds");
    text(&mut b, "Data");
    b.extend_from_slice(&[0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    bodies.push(("PutRecord", "byte string", b));
    let mut b = vec![0xa2];
    text(&mut b, "StreamName");
    b.extend_from_slice(&[0x7a, 0xff, 0xff, 0xff, 0xff, b'a', b'b']);
    bodies.push(("DescribeStream", "text string", b));
    let mut b = vec![0xa2];
    text(&mut b, "Records");
    b.extend_from_slice(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xa0]);
    bodies.push(("PutRecords", "array", b));
    bodies.push((
        "ListStreams",
        "map",
        vec![0xbb, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x61, b'a', 0x01],
    ));
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_cbor_claims_allocate_little() {
    let _serial = SERIAL.lock().await;
    // The front end is opened over the broker's context below, so the broker's own listener
    // stays off (one owner of the stream store).
    let broker = TestBroker::start_with(&[("kinesis.listener", "")]).await;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let kinesis = esker::fuzzing::kinesis_open(broker.context(), stop_rx).expect("kinesis");
    for (operation, what, body) in huge_cbor_bodies() {
        let (answer, largest) = measured(esker::fuzzing::kinesis_request(
            &kinesis,
            operation,
            &body,
            true,
            Duration::from_secs(5),
        ))
        .await;
        assert!(
            largest < MAX_ALLOCATION,
            "{operation} with a huge {what}: largest allocation {largest} bytes"
        );
        let (status, text) = answer.expect("answered in time");
        assert_eq!(
            status,
            400,
            "{operation} with a huge {what}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    drop(kinesis);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_frame_over_tcp_closes_and_broker_keeps_serving() {
    let _serial = SERIAL.lock().await;
    let broker = TestBroker::start().await;
    broker.create_topic("after-oom", 1).await;
    let frame = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/known/kafka_request-oom-add-partitions-to-txn-v0"),
    )
    .expect("known frame");
    assert_eq!(frame.len(), 73);

    let mut raw = Raw::connect(&broker.bootstrap()).await;
    let (closed, largest) = measured(async {
        raw.send_raw(&(frame.len() as i32).to_be_bytes()).await;
        raw.send_raw(&frame).await;
        raw.closed().await
    })
    .await;
    assert!(
        closed,
        "the broker closes a connection sending a malformed frame"
    );
    assert!(
        largest < MAX_ALLOCATION,
        "largest allocation {largest} bytes"
    );

    let producer: FutureProducer = producer_config(&broker.bootstrap(), "all")
        .create()
        .expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to("after-oom").key("k").payload("still here"),
            TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivered after the hostile frame");
    assert_eq!(delivery.partition, 0);
    assert_eq!(delivery.offset, 0);
    broker.stop().await;
}
