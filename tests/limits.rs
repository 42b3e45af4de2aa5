//! Connection and memory bounds (issue 19): `max.connections`, `max.connections.per.ip` and its
//! overrides, `connections.max.idle.ms`, `socket.request.read.timeout.ms` and the
//! `queued.max.request.bytes` memory pool, on the Kafka listener and (idle, slow request) on the
//! Kinesis, metrics and console listeners.
//!
//! The 10 000-connection and memory tests run the broker as a child process
//! (`CARGO_BIN_EXE_esker`) so that its file descriptors and RSS are its own.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{request_frame, Raw};
use common::{http_exchange, producer_config, TestBroker, TIMEOUT};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The value of one series (`name{labels}` exactly as exported), 0 when absent.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn scrape(b: &TestBroker) -> String {
    let ctx = b.context();
    ctx.metrics.render(&ctx).await
}

/// Whether the broker serves the connection: an ApiVersions request gets an answer.
async fn served(s: &mut TcpStream) -> bool {
    let frame = request_frame(&ApiVersionsRequest::default(), 0, 1, "limits");
    if s.write_all(&frame).await.is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await,
        Ok(Ok(_))
    )
}

/// Whether the peer closes the connection within 10 s (EOF or reset).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{source}:0").parse().expect("source"))
        .expect("bind source address");
    sock.connect(addr).await.expect("connect")
}

async fn produce_some(p: &FutureProducer, topic: &str, n: usize) {
    for i in 0..n {
        let value = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to(topic).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_max_connections_is_refused_while_a_producer_keeps_working() {
    let b = TestBroker::start_with(&[("max.connections", "6")]).await;
    b.create_topic("busy", 1).await;
    let addr: SocketAddr = b.bootstrap().parse().expect("addr");
    let producer: FutureProducer = producer_config(&b.bootstrap(), "1")
        .create()
        .expect("producer");
    produce_some(&producer, "busy", 5).await;
    let limiter = b.context().net.clients.clone();
    let used = limiter.open();
    assert!(
        (1..6).contains(&used),
        "the producer holds {used} connections"
    );
    let mut fill = Vec::new();
    for _ in used..6 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        assert!(
            served(&mut s).await,
            "connections under the limit are served"
        );
        fill.push(s);
    }
    assert_eq!(limiter.open(), 6);
    let mut over = TcpStream::connect(addr).await.expect("connect");
    assert!(
        !served(&mut over).await,
        "the connection over max.connections is refused"
    );
    let text = scrape(&b).await;
    assert_eq!(
        series(
            &text,
            r#"esker_connections_rejected_total{listener="PLAINTEXT",reason="max_connections"}"#
        ),
        1.0
    );
    // The producer connected earlier keeps producing.
    produce_some(&producer, "busy", 20).await;
    // A freed slot is usable again.
    drop(fill.pop());
    common::eventually("a slot frees", TIMEOUT, || {
        (limiter.open() < 6).then_some(())
    })
    .await;
    let mut again = TcpStream::connect(addr).await.expect("connect");
    assert!(served(&mut again).await);
    drop(producer);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limit_and_its_overrides() {
    let b = TestBroker::start_with(&[
        ("max.connections.per.ip", "2"),
        (
            "max.connections.per.ip.overrides",
            "127.0.0.1:100,127.0.0.2:4",
        ),
    ])
    .await;
    b.create_topic("ips", 1).await;
    let addr: SocketAddr = b.bootstrap().parse().expect("addr");
    let producer: FutureProducer = producer_config(&b.bootstrap(), "1")
        .create()
        .expect("producer");
    produce_some(&producer, "ips", 3).await;
    // 127.0.0.3 has the default limit (2), 127.0.0.2 its override (4).
    for (source, limit) in [("127.0.0.3", 2), ("127.0.0.2", 4)] {
        let mut held = Vec::new();
        for _ in 0..limit {
            let mut s = connect_from(source, addr).await;
            assert!(served(&mut s).await, "{source}: under its limit");
            held.push(s);
        }
        let mut over = connect_from(source, addr).await;
        assert!(
            !served(&mut over).await,
            "{source}: connection {} refused",
            limit + 1
        );
        // Another address is not affected.
        produce_some(&producer, "ips", 5).await;
        drop(held);
    }
    let text = scrape(&b).await;
    assert_eq!(
        series(
            &text,
            r#"esker_connections_rejected_total{listener="PLAINTEXT",reason="per_ip"}"#
        ),
        2.0
    );
    drop(producer);
    b.stop().await;
}

fn fetch_request(topic: &str, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_frames_and_idle_connections_are_closed_but_a_long_poll_is_not() {
    let b = TestBroker::start_with(&[
        ("socket.request.read.timeout.ms", "1000"),
        ("connections.max.idle.ms", "2000"),
    ])
    .await;
    b.create_topic("quiet", 1).await;
    let addr: SocketAddr = b.bootstrap().parse().expect("addr");
    let closed_by = |listener: &str, reason: &str| {
        format!(r#"esker_connections_closed_total{{listener="{listener}",reason="{reason}"}}"#)
    };

    // A frame that starts and stalls is cut off at the read timeout, before the idle one.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(&100i32.to_be_bytes()).await.expect("write");
    slow.write_all(&[0, 18, 0, 3]).await.expect("write");
    let started = Instant::now();
    assert!(closed(&mut slow).await, "a stalled frame is cut off");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let text = scrape(&b).await;
    assert_eq!(series(&text, &closed_by("PLAINTEXT", "slow_frame")), 1.0);
    assert_eq!(series(&text, &closed_by("PLAINTEXT", "idle")), 0.0);

    // An idle connection is closed after connections.max.idle.ms.
    let mut idle = Raw::connect(&b.bootstrap()).await;
    let _ = idle.call(&ApiVersionsRequest::default(), 3).await;
    let started = Instant::now();
    assert!(idle.closed().await, "an idle connection is closed");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(
        series(&scrape(&b).await, &closed_by("PLAINTEXT", "idle")),
        1.0
    );

    // A long-poll fetch longer than the idle timeout is in flight: the connection stays.
    let mut poll = Raw::connect(&b.bootstrap()).await;
    let started = Instant::now();
    let resp: FetchResponse = poll.call(&fetch_request("quiet", 4500), 11).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(4000),
        "the fetch waited its max_wait ({:?})",
        started.elapsed()
    );
    assert_eq!(
        series(&scrape(&b).await, &closed_by("PLAINTEXT", "idle")),
        1.0,
        "not reaped while the fetch was in flight"
    );
    // Then, idle again, it is reaped like any other.
    assert!(poll.closed().await);

    // The HTTP listeners: an idle connection and a request head that stalls.
    let kinesis = common::kinesis::kinesis_addr(&b);
    let metrics = b.metrics_addr();
    for (listener, addr) in [("KINESIS", kinesis), ("METRICS", metrics)] {
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        assert!(
            closed(&mut slow).await,
            "{listener}: a stalled request head"
        );
        assert!(closed(&mut idle).await, "{listener}: an idle connection");
        assert!(started.elapsed() >= Duration::from_millis(1900));
        let text = scrape(&b).await;
        assert_eq!(
            series(&text, &closed_by(listener, "slow_frame")),
            1.0,
            "{listener}"
        );
        assert_eq!(
            series(&text, &closed_by(listener, "idle")),
            1.0,
            "{listener}"
        );
    }
    b.stop().await;
}

/// `console.listener` is served like the metrics listener: connections count against a limiter
/// of its own, and an idle connection and a stalled request head are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_listener_limits_and_closes_idle_and_stalled_connections() {
    let b = TestBroker::start_with(&[
        ("console.listener", "127.0.0.1:0"),
        ("socket.request.read.timeout.ms", "1000"),
        ("connections.max.idle.ms", "2000"),
        ("max.connections.per.ip", "2"),
    ])
    .await;
    let addr = b.console_addr();
    let console = b.context().net.console.clone();
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /ui/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    common::eventually("both connections counted", TIMEOUT, || {
        (console.open() == 2).then_some(())
    })
    .await;
    // A third from the same address is over max.connections.per.ip; the metrics listener,
    // counted apart, still answers.
    let mut over = TcpStream::connect(addr).await.expect("connect");
    assert!(closed(&mut over).await, "the connection over the limit");
    assert_eq!(common::http_get(b.metrics_addr(), "/healthz").await.0, 200);
    assert!(closed(&mut slow).await, "a stalled request head");
    assert!(closed(&mut idle).await, "an idle connection");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "the idle one was closed at its deadline, not before ({:?})",
        started.elapsed()
    );
    let text = scrape(&b).await;
    let of = |series_name: &str, reason: &str| {
        series(
            &text,
            &format!(r#"{series_name}{{listener="CONSOLE",reason="{reason}"}}"#),
        )
    };
    assert_eq!(of("esker_connections_closed_total", "slow_frame"), 1.0);
    assert_eq!(of("esker_connections_closed_total", "idle"), 1.0);
    assert_eq!(of("esker_connections_rejected_total", "per_ip"), 1.0);
    b.stop().await;
}

// ---- child-process tests ----

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

/// The broker as a child process: (process, Kafka address, metrics address).
async fn spawn_broker(dir: &Path, extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let (port, metrics_port) = (free_port(), free_port());
    let mut args = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", dir.display()),
        "num.shards=2".to_string(),
        format!("metrics.listener=127.0.0.1:{metrics_port}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esker"));
    for a in &args {
        cmd.arg("-o").arg(a);
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn esker");
    let proc = Proc(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    common::eventually_async("the broker listening", Duration::from_secs(60), || {
        TcpStream::connect(metrics)
    })
    .await;
    (proc, addr, metrics)
}

/// Raises this process's soft open-file limit to the hard one; false if that is below `want`.
fn raise_open_files(want: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        if limit.rlim_max < want {
            return false;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
    }
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("field present")
}

/// Waits until `check` holds on the broker's metrics text.
async fn await_metrics(
    metrics: SocketAddr,
    what: &str,
    limit: Duration,
    check: impl Fn(&str) -> bool,
) {
    common::eventually_async(what, limit, || async {
        let (_, text) = common::http_get(metrics, "/metrics").await;
        if check(&text) {
            return Ok(());
        }
        // The connection series, to say where it stands.
        Err(text
            .lines()
            .filter(|l| l.starts_with("esker_connections") || l.starts_with("kafka_server_socket"))
            .map(str::to_string)
            .collect::<Vec<_>>())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_are_reaped() {
    const N: usize = 10_000;
    if !raise_open_files(N as u64 + 2_000) {
        eprintln!("skipped: the open-file hard limit is below {}", N + 2_000);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, addr, metrics) =
        spawn_broker(dir.path(), &["connections.max.idle.ms=3000"]).await;
    let mut conns = Vec::with_capacity(N);
    let started = Instant::now();
    let created =
        r#"kafka_server_socketservermetrics_connection_creation_total{listener="PLAINTEXT"}"#;
    while conns.len() < N {
        // Waves the listen backlog can hold: a connection the kernel drops from a full accept
        // queue looks established to the client but never reaches the broker.
        let wave = futures::future::join_all((0..100).map(|_| TcpStream::connect(addr))).await;
        for c in wave {
            conns.push(c.expect("connect"));
        }
        let want = conns.len() as f64;
        await_metrics(metrics, "the wave accepted", TIMEOUT, |t| {
            series(t, created) >= want
        })
        .await;
    }
    eprintln!("{N} connections opened in {:?}", started.elapsed());
    let idle = r#"esker_connections_closed_total{listener="PLAINTEXT",reason="idle"}"#;
    let open = r#"kafka_server_socketservermetrics_connections{listener="PLAINTEXT"}"#;
    await_metrics(
        metrics,
        "every connection reaped",
        Duration::from_secs(180),
        |t| series(t, idle) >= N as f64 && series(t, open) == 0.0,
    )
    .await;
    eprintln!("all reaped {:?} after the first connect", started.elapsed());
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(closed(c).await, "connection {i} was closed by the broker");
    }
}

/// A 1 MiB produce request body: 16 records of 64 KiB.
fn mib_batch() -> Bytes {
    let value: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let records: Vec<esker::log::batch::KeyValue<'_>> =
        (0..16).map(|_| (None, Some(value.as_slice()))).collect();
    esker::log::batch::build_batch(&records, 1_700_000_000_000).freeze()
}

/// Floods the broker with 200 produce requests of 1 MiB from 20 connections, each sending its
/// 10 requests back to back before reading the answers; returns the broker's peak RSS growth.
async fn flood(pool: Option<&str>) -> u64 {
    const CONNECTIONS: usize = 20;
    const PER_CONNECTION: usize = 10;
    const PARTITIONS: i32 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = vec!["message.max.bytes=2097152"];
    let setting;
    if let Some(p) = pool {
        setting = format!("queued.max.request.bytes={p}");
        extra.push(&setting);
    }
    let (broker, addr, _) = spawn_broker(dir.path(), &extra).await;
    let pid = broker.0.id();
    let bootstrap = addr.to_string();
    let mut admin = Raw::connect(&bootstrap).await;
    let created: CreateTopicsResponse = admin
        .call(
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("flood")))
                    .with_num_partitions(PARTITIONS)
                    .with_replication_factor(1)]),
            4,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let batch = mib_batch();
    let request = |partition: i32| {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("flood")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.clone()))])])
    };
    // Warm up every partition and code path, then take the baseline.
    for p in 0..PARTITIONS {
        let r: ProduceResponse = admin.call(&request(p), 8).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    drop(admin);
    let baseline = proc_status_bytes(pid, "VmRSS");
    let hwm_before = proc_status_bytes(pid, "VmHWM");
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let bootstrap = bootstrap.clone();
            let reqs: Vec<_> = (0..PER_CONNECTION)
                .map(|i| request(((c + i) % PARTITIONS as usize) as i32))
                .collect();
            tokio::spawn(async move {
                let mut conn = Raw::connect(&bootstrap).await;
                let mut sent = Vec::new();
                for r in &reqs {
                    sent.push(conn.send(r, 8).await);
                }
                for id in sent {
                    let (corr, r) = conn.recv::<ProduceResponse>(8).await;
                    assert_eq!(corr, id);
                    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("every request answered");
    }
    let hwm = proc_status_bytes(pid, "VmHWM");
    let peak = hwm.saturating_sub(baseline);
    eprintln!(
        "after: RssAnon {} MiB, RssFile {} MiB",
        proc_status_bytes(pid, "RssAnon") >> 20,
        proc_status_bytes(pid, "RssFile") >> 20
    );
    eprintln!(
        "pool {pool:?}: baseline RSS {} MiB, peak before {} MiB, peak after {} MiB, growth {} MiB",
        baseline >> 20,
        hwm_before >> 20,
        hwm >> 20,
        peak >> 20
    );
    // Every record is there.
    let consumer: rdkafka::consumer::BaseConsumer = common::consumer_config(&bootstrap)
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304")
        .create()
        .expect("consumer");
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("flood", p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let want = (CONNECTIONS * PER_CONNECTION + PARTITIONS as usize) * 16;
    let mut got = 0usize;
    common::eventually_async("every record read back", Duration::from_secs(120), || {
        // Drains what has arrived; between rounds the helper waits for more.
        while let Some(m) = consumer.poll(Duration::ZERO) {
            let m = m.expect("record");
            assert_eq!(m.payload().map(<[u8]>::len), Some(64 * 1024));
            got += 1;
        }
        let now = if got >= want {
            Ok(())
        } else {
            Err(format!("read {got} of {want} records"))
        };
        async move { now }
    })
    .await;
    assert_eq!(got, want, "no more records than were produced");
    peak
}

/// The pool bounds what a flood of large requests can take. Documented overhead (see
/// docs/configuration.md): the pool plus 32 MiB (connection buffers, allocator slack, the
/// decoded requests and responses) over the idle broker's RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1_mib_produce_requests_stays_within_the_memory_pool() {
    const POOL: u64 = 32 << 20;
    const SLACK: u64 = 32 << 20;
    let peak = flood(Some(&POOL.to_string())).await;
    assert!(
        peak < POOL + SLACK,
        "peak RSS growth {} MiB over pool {} MiB + slack {} MiB",
        peak >> 20,
        POOL >> 20,
        SLACK >> 20
    );
}

/// The same flood without a pool, for comparison (`cargo test --test limits -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn flood_without_a_pool_for_comparison() {
    let peak = flood(None).await;
    eprintln!("unbounded: peak RSS growth {} MiB", peak >> 20);
}

// ---- Kinesis request bodies in the memory pool ----

/// A Kinesis body of unknown length (HTTP/1 chunked) reserves the most a body may take while
/// it arrives and gives the rest back once read; a body announced over the 16 MiB limit is
/// refused before it is read. The pool ends where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_bodies_of_unknown_length_and_oversized_ones_use_the_pool() {
    let b = TestBroker::start_with(&[("queued.max.request.bytes", "1048576")]).await;
    let c = common::kinesis::client(&b);
    common::kinesis::create(&c, "chunked", 1)
        .await
        .expect("create stream");
    let addr = common::kinesis::kinesis_addr(&b);
    let ctx = b.context();
    let pool = ctx.net.pool.as_ref().expect("a pool");
    let head = "POST / HTTP/1.1\r\nHost: kinesis\r\nContent-Type: application/x-amz-json-1.1\r\n\
                X-Amz-Target: Kinesis_20131202.PutRecord";
    let json = br#"{"StreamName":"chunked","PartitionKey":"k","Data":"aGVsbG8="}"#;
    let (first, rest) = json.split_at(20);
    let mut chunked = Vec::new();
    for piece in [first, rest] {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = http_exchange(
        addr,
        &format!("{head}\r\nTransfer-Encoding: chunked"),
        &chunked,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("SequenceNumber"), "{answer}");
    // Announced over the limit: answered at once, nothing read, nothing reserved.
    let (status, answer) = http_exchange(
        addr,
        &format!("{head}\r\nContent-Length: {}", (16 << 20) + 1),
        b"",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("SerializationException"), "{answer}");
    common::eventually("every reservation released", TIMEOUT, || {
        (pool.available() == pool.capacity()).then_some(())
    })
    .await;
    b.stop().await;
}

/// PutRecords entries of 4.5 MiB in all: 5 records of 900 KiB (a 6 MiB JSON body once base64).
fn put_records_entries(seed: u8) -> Vec<aws_sdk_kinesis::types::PutRecordsRequestEntry> {
    (0..5u8)
        .map(|r| {
            let data: Vec<u8> = (0..900 * 1024)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ r)
                .collect();
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_sdk_kinesis::primitives::Blob::new(data))
                .partition_key(format!("key-{seed}-{r}"))
                .build()
                .expect("entry")
        })
        .collect()
}

/// 40 concurrent PutRecords of 4.5 MiB each (about 6 MiB of body) from the AWS SDK for Rust,
/// against the broker as a child process; returns the peak RSS growth and the metrics text
/// after the flood.
async fn kinesis_flood(pool: Option<&str>) -> (u64, String) {
    const REQUESTS: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let kinesis_port = free_port();
    let mut extra = vec![format!("kinesis.listener=127.0.0.1:{kinesis_port}")];
    if let Some(p) = pool {
        extra.push(format!("queued.max.request.bytes={p}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (broker, _, metrics) = spawn_broker(dir.path(), &extra).await;
    let pid = broker.0.id();
    let kinesis = SocketAddr::from(([127, 0, 0, 1], kinesis_port));
    common::eventually_async("the kinesis listener", TIMEOUT, || {
        TcpStream::connect(kinesis)
    })
    .await;
    let client = common::kinesis::client_for(kinesis, "AKIDTEST", "secret");
    common::kinesis::create(&client, "flood", 4)
        .await
        .expect("create stream");
    // Warm up the code paths, then take the baseline.
    let warm = client
        .put_records()
        .stream_name("flood")
        .set_records(Some(put_records_entries(255)))
        .send()
        .await
        .expect("warm-up PutRecords");
    assert_eq!(warm.failed_record_count(), Some(0));
    let baseline = proc_status_bytes(pid, "VmRSS");
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            let entries = put_records_entries(i as u8);
            tokio::spawn(async move {
                let out = client
                    .put_records()
                    .stream_name("flood")
                    .set_records(Some(entries))
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                if out.failed_record_count() != Some(0) || out.records().len() != 5 {
                    return Err(format!("request {i}: {out:?}"));
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("every PutRecords succeeds");
    }
    let peak = proc_status_bytes(pid, "VmHWM").saturating_sub(baseline);
    eprintln!(
        "kinesis flood, pool {pool:?}: baseline RSS {} MiB, peak growth {} MiB",
        baseline >> 20,
        peak >> 20
    );
    let (_, text) = common::http_get(metrics, "/metrics").await;
    (peak, text)
}

/// Kinesis request bodies take their bytes from `queued.max.request.bytes` like Kafka frames:
/// 40 concurrent PutRecords of about 6 MiB of body with an 8 MiB pool all succeed, one or so
/// at a time, the pool's wait counter shows that they waited, every reservation is released
/// after, and the broker's peak RSS stays within the pool plus the documented overhead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_put_records_waits_for_the_memory_pool() {
    const POOL: u64 = 8 << 20;
    const SLACK: u64 = 48 << 20;
    let (peak, text) = kinesis_flood(Some(&POOL.to_string())).await;
    let waited = series(&text, "esker_request_memory_pool_wait_seconds_total");
    eprintln!("pool wait: {waited} s");
    assert!(waited > 0.0, "PutRecords waited for the pool");
    assert_eq!(
        series(&text, "kafka_network_socketserver_memorypoolavailable"),
        POOL as f64,
        "every reservation released"
    );
    assert_eq!(
        series(&text, "kafka_network_socketserver_memorypoolused"),
        0.0
    );
    assert!(
        peak < POOL + SLACK,
        "peak RSS growth {} MiB over pool {} MiB + slack {} MiB",
        peak >> 20,
        POOL >> 20,
        SLACK >> 20
    );
}

/// The same Kinesis flood without a pool, for comparison (`-- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn kinesis_flood_without_a_pool_for_comparison() {
    let (peak, _) = kinesis_flood(None).await;
    eprintln!("unbounded: peak RSS growth {} MiB", peak >> 20);
}

// ---- the inter-broker listener and max.connections ----

/// A connection to `addr` that the broker serves (an ApiVersions answered): waits until the
/// broker has a slot for it (connections the cluster harness opened may still be closing).
async fn hold_slot(addr: &str) -> Raw {
    common::eventually_async("a served connection", TIMEOUT, || async {
        let mut raw = Raw::connect(addr).await;
        raw.send(&ApiVersionsRequest::default(), 0).await;
        match raw.read_frame().await {
            Some(_) => Ok(raw),
            None => Err("refused"),
        }
    })
    .await
}

/// Kafka's rule for the inter-broker listener (KIP-402): with `max.connections=1` and a client
/// holding the one slot of each of two brokers, the brokers still reach each other on their
/// `INTERNAL` listener: a partition on both, with `min.insync.replicas=2`, takes acks=all
/// produces (each needs the follower to fetch from the leader), while a second client
/// connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inter_broker_connections_are_exempt_from_max_connections() {
    use common::cluster::Cluster;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };
    use kafka_protocol::messages::BrokerId;
    let c = Cluster::start_with_internal_listener(2, &[("max.connections", "1")]).await;
    let mut leader = hold_slot(&c.bootstrap(1)).await;
    let _follower_side = hold_slot(&c.bootstrap(2)).await;
    let created: CreateTopicsResponse = leader
        .call(
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("ib")))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("min.insync.replicas"))
                        .with_value(Some(StrBytes::from_static_str("2")))])]),
            4,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let batch = Bytes::from(esker::log::batch::build_batch(
        &[(None, Some(b"replicated".as_slice()))],
        1_700_000_000_000,
    ));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("ib")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    // Until node 1 has become the partition's leader, produces are answered with an error
    // (polled as `eventually` does, on the one connection the slot allows).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r: ProduceResponse = leader.call(&produce, 8).await;
        let code = r.responses[0].partition_responses[0].error_code;
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an acks=all produce with both replicas in sync: error {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        let r: ProduceResponse = leader.call(&produce, 8).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    // The client slot is still the one held: another client is refused.
    let mut over = TcpStream::connect(c.bootstrap(1)).await.expect("connect");
    assert!(
        !served(&mut over).await,
        "max.connections still bounds clients"
    );
    let (_, text) = common::http_get(c.metrics_addr(1), "/metrics").await;
    assert!(
        series(
            &text,
            r#"esker_connections_rejected_total{listener="PLAINTEXT",reason="max_connections"}"#
        ) >= 1.0
    );
    assert!(
        series(
            &text,
            r#"kafka_server_socketservermetrics_connections{listener="INTERNAL"}"#
        ) >= 1.0,
        "the follower fetches through INTERNAL"
    );
}
