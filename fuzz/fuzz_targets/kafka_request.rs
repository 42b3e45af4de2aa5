//! One Kafka request frame (without its 4-byte size prefix) through the broker's request
//! entry point (`kafka::dispatch`): header decode, API and version check, the handler, the
//! encoded response, from a fresh PLAINTEXT connection (`User:ANONYMOUS`).
//!
//! One in-process broker per fuzz process (a temporary data directory, one shard), kept in a
//! static; every input gets at most `LIMIT` to be answered, so long polls (Fetch `max_wait_ms`),
//! throttles and rebalance waits cost a bounded time. State persists between inputs (topics,
//! groups, ACLs), as on a real broker; to keep one process's cost bounded the harness deletes
//! every topic once they hold more than `MAX_PARTITIONS` partitions, and skips CreateTopics /
//! CreatePartitions asking for more than `MAX_PARTITIONS_PER_INPUT` partitions (the broker's own
//! cap of 10 000 per request is unit-tested in `kafka::create_topics`).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use esker::fuzzing::FuzzBroker;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, RequestHeader,
};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

const LIMIT: Duration = Duration::from_millis(100);
const MAX_PARTITIONS: usize = 2_000;
const MAX_PARTITIONS_PER_INPUT: i64 = 64;

fn harness() -> &'static FuzzBroker {
    static H: OnceLock<FuzzBroker> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("esker-fuzz-kafka-")
            .tempdir()
            .expect("temp dir")
            .keep();
        FuzzBroker::start(&dir, &[]).expect("broker starts")
    })
}

/// Partitions a CreateTopics or CreatePartitions frame asks for (0 for other requests or
/// frames that do not decode).
fn partitions_asked(frame: &[u8]) -> i64 {
    if frame.len() < 4 {
        return 0;
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return 0;
    };
    if !matches!(api, ApiKey::CreateTopics | ApiKey::CreatePartitions) {
        return 0;
    }
    let mut buf = Bytes::copy_from_slice(frame);
    let header_version = api.request_header_version(version);
    if RequestHeader::decode(&mut buf, header_version).is_err() {
        return 0;
    }
    match api {
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut buf, version)
            .map(|r| {
                r.topics
                    .iter()
                    .map(|t| i64::from(t.num_partitions.max(1)) + t.assignments.len() as i64)
                    .sum()
            })
            .unwrap_or(0),
        _ => CreatePartitionsRequest::decode(&mut buf, version)
            .map(|r| r.topics.iter().map(|t| i64::from(t.count.max(0))).sum())
            .unwrap_or(0),
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    if partitions_asked(data) > MAX_PARTITIONS_PER_INPUT {
        return;
    }
    let frame = Bytes::copy_from_slice(data);
    h.rt.block_on(async {
        let _ = esker::fuzzing::kafka_request(&h.ctx, &h.listener, frame, LIMIT).await;
        let topics = h.ctx.catalog.all();
        let partitions: usize = topics.iter().map(|t| t.partitions.max(0) as usize).sum();
        if partitions > MAX_PARTITIONS {
            for t in topics.iter().filter(|t| !t.name.starts_with("__")) {
                let _ = tokio::time::timeout(Duration::from_secs(10), h.ctx.delete_topic(&t.name))
                    .await;
            }
        }
    });
});
