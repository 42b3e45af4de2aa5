//! A broker process killed with SIGKILL while an acks=-1 producer runs loses no acknowledged
//! message: after a restart every acknowledged message is at its acknowledged offset, and the
//! log has no gap and no duplicate.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{consumer_config, producer_config, TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 3;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn_broker(dir: &std::path::Path, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_esker"))
        .args([
            "-o",
            &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            "-o",
            &format!("log.dirs={}", dir.display()),
            "-o",
            &format!("num.partitions={PARTITIONS}"),
            "-o",
            "num.shards=2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn esker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_acks_all_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = spawn_broker(dir.path(), port);

    let mut cfg = producer_config(&bootstrap, "-1");
    cfg.set("message.send.max.retries", "0")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "2");
    let producer: FutureProducer = cfg.create().expect("producer");
    let acked: Arc<Mutex<HashMap<(i32, i64), String>>> = Arc::default();

    // Keep producing until well after the kill; record every acknowledgement.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let producer = producer.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let value = format!("w{w}-m{i}");
                let rec = FutureRecord::to(TOPIC).key(&value).payload(&value);
                match producer.send(rec, Duration::from_secs(1)).await {
                    Ok(d) => {
                        acked
                            .lock()
                            .expect("lock")
                            .insert((d.partition, d.offset), value);
                    }
                    Err(_) => return i,
                }
            }
            unreachable!()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < 3000 {
        assert!(Instant::now() < deadline, "producer made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.0.kill().expect("SIGKILL");
    broker.0.wait().expect("reaped");
    for t in tasks {
        let _ = t.await;
    }
    drop(producer);
    let acked = Arc::try_unwrap(acked)
        .expect("sole owner")
        .into_inner()
        .expect("lock");
    assert!(acked.len() >= 3000);

    let _broker = spawn_broker(dir.path(), port);
    let bs = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&bs).create().expect("consumer");
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            let (low, high) = consumer
                .fetch_watermarks(TOPIC, p, TIMEOUT)
                .expect("watermarks");
            assert_eq!(low, 0);
            ends.insert(p, high);
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
                .expect("tpl");
        }
        let total: i64 = ends.values().sum();
        assert!(
            total as usize >= acked.len(),
            "log holds fewer records than were acknowledged"
        );
        consumer.assign(&tpl).expect("assign");
        let mut next: HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        let mut values = HashSet::new();
        let mut read = 0i64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while read < total {
            assert!(Instant::now() < deadline, "read {read} of {total}");
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.expect("consume");
            let p = m.partition();
            let n = next.get_mut(&p).expect("partition");
            assert_eq!(m.offset(), *n, "no gap in partition {p}");
            *n += 1;
            let v = String::from_utf8(m.payload().expect("payload").to_vec()).expect("utf8");
            if let Some(want) = acked.get(&(p, m.offset())) {
                assert_eq!(&v, want, "acknowledged message at {p}/{}", m.offset());
            }
            assert!(values.insert(v), "no duplicate");
            read += 1;
        }
        for ((p, o), v) in &acked {
            assert!(values.contains(v), "acknowledged {v} at {p}/{o} is missing");
        }
    })
    .await
    .expect("verification");
}
