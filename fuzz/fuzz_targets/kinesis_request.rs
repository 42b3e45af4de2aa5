//! Kinesis request bodies, JSON (`application/x-amz-json-1.1`) and CBOR
//! (`application/x-amz-cbor-1.1`), through the router's decode, the operation's handler and
//! the response encoder, over a real in-process broker (a temporary data directory, one
//! shard), as an anonymous caller.
//!
//! Input: byte 0 picks the operation (`esker::fuzzing::KINESIS_OPERATIONS`, low 7 bits modulo
//! its length) and the encoding (bit 7 set: CBOR); the rest is the body. Each input gets at
//! most `LIMIT` (GetRecords and SubscribeToShard can wait). Streams persist between inputs;
//! `kinesis.shard.limit` is 16 and every stream is deleted once they hold more than
//! `MAX_PARTITIONS` shards, to bound one process's cost.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use esker::fuzzing::FuzzBroker;
use esker::kinesis::Kinesis;
use libfuzzer_sys::fuzz_target;

const LIMIT: Duration = Duration::from_millis(100);
const MAX_PARTITIONS: usize = 1_000;

struct Harness {
    broker: FuzzBroker,
    kinesis: Arc<Kinesis>,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("esker-fuzz-kinesis-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let broker =
            FuzzBroker::start(&dir, &[("kinesis.shard.limit", "16")]).expect("broker starts");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let kinesis = {
            let _enter = broker.rt.enter();
            esker::fuzzing::kinesis_open(broker.ctx.clone(), stop_rx).expect("kinesis opens")
        };
        Harness {
            broker,
            kinesis,
            _stop: stop_tx,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let ops = esker::fuzzing::KINESIS_OPERATIONS;
    let operation = ops[usize::from(selector & 0x7f) % ops.len()];
    let cbor = selector & 0x80 != 0;
    h.broker.rt.block_on(async {
        let _ = esker::fuzzing::kinesis_request(&h.kinesis, operation, body, cbor, LIMIT).await;
        let topics = h.broker.ctx.catalog.all();
        let partitions: usize = topics.iter().map(|t| t.partitions.max(0) as usize).sum();
        if partitions > MAX_PARTITIONS {
            for t in topics.iter().filter(|t| !t.name.starts_with("__")) {
                let body = format!(
                    r#"{{"StreamName":"{}","EnforceConsumerDeletion":true}}"#,
                    t.name
                );
                let _ = esker::fuzzing::kinesis_request(
                    &h.kinesis,
                    "DeleteStream",
                    body.as_bytes(),
                    false,
                    Duration::from_secs(10),
                )
                .await;
            }
        }
    });
});
