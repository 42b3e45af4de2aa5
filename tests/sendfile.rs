//! Fetch responses whose record sets are sent from the segment files (`sendfile`, plaintext
//! listeners, `fetch.sendfile.enable=true`) or read and written (TLS): several MB over many small segments read back byte
//! for byte with librdkafka and with raw Fetch requests on a PLAINTEXT and an SSL listener of
//! the same broker (both must equal the segment files on disk); one fetch spanning several
//! segments; a long poll answered across a segment roll; fetches racing retention.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use esker::log::batch;
use esker::tls::certs::{generate, CertsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "sf";
const SEGMENT_BYTES: &str = "524288";
const FETCH_VERSION: i16 = 12;

/// A Kafka protocol connection over any stream (plain TCP or TLS).
struct Client<S> {
    s: S,
    corr: i32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send<Req: Request + Encodable>(&mut self, req: &Req, version: i16) -> i32 {
        self.corr += 1;
        let frame = common::raw::request_frame(req, version, self.corr, "sendfile-test");
        self.s.write_all(&frame).await.expect("write");
        self.s.flush().await.expect("flush");
        self.corr
    }

    async fn recv_fetch(&mut self, sent: i32, version: i16) -> FetchResponse {
        let mut len = [0u8; 4];
        tokio::time::timeout(TIMEOUT, self.s.read_exact(&mut len))
            .await
            .expect("no hang")
            .expect("response size");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).await.expect("response");
        let mut frame = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut frame, FetchResponse::header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, sent);
        let resp = FetchResponse::decode(&mut frame, version).expect("response body");
        assert!(frame.is_empty(), "{} bytes after the response", frame.len());
        resp
    }

    async fn fetch(&mut self, req: &FetchRequest) -> FetchResponse {
        let sent = self.send(req, FETCH_VERSION).await;
        self.recv_fetch(sent, FETCH_VERSION).await
    }
}

fn fetch_request(
    offset: i64,
    partition_max: i32,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max)])])
}

/// Checks every batch (framing, CRC-32C) and that offsets follow on from `next`; returns the
/// offset after the last batch.
fn check_batches(records: &[u8], mut next: i64) -> i64 {
    let mut rest = records;
    while !rest.is_empty() {
        let header = batch::validate(rest).expect("a valid batch");
        assert!(
            header.base_offset <= next && header.last_offset() >= next,
            "batch {}..={} does not continue at {next}",
            header.base_offset,
            header.last_offset()
        );
        next = header.last_offset() + 1;
        rest = &rest[header.total_size()..];
    }
    next
}

/// Reads the whole partition with Fetch requests of `partition_max` bytes; returns the
/// concatenated record sets.
async fn fetch_everything<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    partition_max: i32,
) -> Vec<u8> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let resp = c.fetch(&fetch_request(offset, partition_max, 0, 1)).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        if offset >= p.high_watermark {
            return all;
        }
        let records = p.records.clone().unwrap_or_default();
        assert!(
            !records.is_empty(),
            "no records at {offset} below {}",
            p.high_watermark
        );
        offset = check_batches(&records, offset);
        all.extend_from_slice(&records);
    }
}

/// The partition's segment files, concatenated in order: every batch the log holds.
fn segment_files(root: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == name) {
                    return Some(p);
                }
                if let Some(found) = find(&p, name) {
                    return Some(found);
                }
            }
        }
        None
    }
    let dir = find(root, &format!("{TOPIC}-0")).expect("partition directory");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut bytes = Vec::new();
    for f in &files {
        bytes.extend(std::fs::read(f).expect("segment"));
    }
    (files, bytes)
}

async fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = producer_config(bootstrap, "1")
        .create()
        .expect("admin client");
    let res = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topics");
    assert!(res[0].is_ok(), "{:?}", res[0]);
}

fn value(i: usize) -> Vec<u8> {
    let len = 5_000 + (i * 7_919) % 10_000;
    (0..len).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect()
}

/// Produces messages `from..to` (key `k{i}`, value [`value`]) with acks=1.
async fn produce(bootstrap: &str, from: usize, to: usize) {
    let producer: FutureProducer = producer_config(bootstrap, "1")
        .set("batch.size", "200000")
        .create()
        .expect("producer");
    let futs = (from..to).map(|i| {
        let producer = &producer;
        async move {
            let key = format!("k{i}");
            let v = value(i);
            producer
                .send(FutureRecord::to(TOPIC).key(&key).payload(&v), TIMEOUT)
                .await
                .map_err(|(e, _)| e)
                .expect("delivered")
        }
    });
    for (n, d) in futures::future::join_all(futs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!((d.partition, d.offset), (0, (from + n) as i64), "in order");
    }
}

fn certs(dir: &Path) {
    generate(&CertsRequest {
        out: dir.to_path_buf(),
        hostnames: Vec::new(),
        clients: Vec::new(),
        ca_name: format!("test CA {}", dir.display()),
    })
    .expect("certificates");
}

async fn tls_client(
    addr: &str,
    certs: &Path,
) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    Client { s, corr: 0 }
}

async fn plain_client(addr: &str) -> Client<TcpStream> {
    Client {
        s: TcpStream::connect(addr).await.expect("connect"),
        corr: 0,
    }
}

/// ~8 MB over ~16 segments of 512 KiB: librdkafka reads every message back; raw fetches over
/// PLAINTEXT (sendfile) and SSL (read and written) both return exactly the segment files'
/// bytes, with fetch sizes from below one batch to several segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_ssl_fetches_return_the_segment_bytes() {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    certs(certs_dir.path());
    let (cert, key) = (
        certs_dir.path().join("server.pem").display().to_string(),
        certs_dir.path().join("server.key").display().to_string(),
    );
    let broker = TestBroker::start_with(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &key),
        ("log.segment.bytes", SEGMENT_BYTES),
        ("fetch.sendfile.enable", "true"),
    ])
    .await;
    let addrs = broker
        .broker
        .as_ref()
        .expect("running")
        .kafka_addrs()
        .to_vec();
    let (plain, ssl) = (addrs[0].to_string(), addrs[1].to_string());
    create_topic(&plain).await;
    const N: usize = 800;
    produce(&plain, 0, N).await;

    let (files, on_disk) = segment_files(broker.dir.path());
    assert!(files.len() >= 10, "{} segments", files.len());
    assert!(on_disk.len() > 7_000_000, "{} bytes", on_disk.len());

    // librdkafka, PLAINTEXT: every message, in order, byte for byte.
    let consumer: BaseConsumer = consumer_config(&plain).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut next = 0usize;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while next < N {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {next} of {N}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.expect("message");
        assert_eq!(m.offset(), next as i64);
        assert_eq!(m.key(), Some(format!("k{next}").as_bytes()));
        assert!(m.payload() == Some(&value(next)[..]), "value of {next}");
        next += 1;
    }
    drop(consumer);

    // Raw fetches: sizes below one batch (KIP-74: one whole batch), around the sendfile
    // threshold, one partition fetch (1 MiB, rdkafka's default) and several segments at once.
    let mut p = plain_client(&plain).await;
    let mut s = tls_client(&ssl, certs_dir.path()).await;
    for partition_max in [1, 65_536, 300_000, 1 << 20, 3 << 20] {
        let via_plain = fetch_everything(&mut p, partition_max).await;
        assert!(
            via_plain == on_disk,
            "PLAINTEXT, {partition_max}-byte fetches"
        );
        let via_ssl = fetch_everything(&mut s, partition_max).await;
        assert!(via_ssl == on_disk, "SSL, {partition_max}-byte fetches");
    }

    // One fetch spanning several segments, on both listeners.
    let big = 3 << 20;
    for records in [
        p.fetch(&fetch_request(0, big, 0, 1)).await,
        s.fetch(&fetch_request(0, big, 0, 1)).await,
    ]
    .map(|r| {
        r.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default()
    }) {
        assert!(records.len() > 2 * 524_288, "{} bytes", records.len());
        assert!(records[..] == on_disk[..records.len()]);
    }
    broker.stop().await;
}

/// A long poll waiting at the log end with a large `min_bytes` is answered, as soon as enough
/// has been appended, with batches written across segment rolls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_answered_across_a_segment_roll() {
    let broker = TestBroker::start_with(&[
        ("log.segment.bytes", SEGMENT_BYTES),
        ("fetch.sendfile.enable", "true"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap).await;
    produce(&bootstrap, 0, 20).await;
    let mut c = plain_client(&bootstrap).await;
    let asked = std::time::Instant::now();
    let sent = c
        .send(
            &fetch_request(20, 4 << 20, 20_000, 1_500_000),
            FETCH_VERSION,
        )
        .await;
    produce(&bootstrap, 20, 220).await;
    let resp = c.recv_fetch(sent, FETCH_VERSION).await;
    // Woken by the appends that reached min_bytes, not by the 20 s deadline.
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "{:?}",
        asked.elapsed()
    );
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = p.records.clone().unwrap_or_default();
    assert!(records.len() >= 1_500_000, "{} bytes", records.len());
    let end = check_batches(&records, 20);
    assert!(end > 20);
    let (files, on_disk) = segment_files(broker.dir.path());
    assert!(files.len() >= 4, "{} segments", files.len());
    // The batches from offset 20 on are the files' bytes from the end of the first 20 messages.
    let start = on_disk.len()
        - c.fetch(&fetch_request(20, 64 << 20, 0, 1)).await.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len());
    assert!(records[..] == on_disk[start..start + records.len()]);
    broker.stop().await;
}

/// Fetches from the log start while producers fill small segments and retention deletes the
/// oldest every few milliseconds: every answer is either OffsetOutOfRange or valid batches
/// continuing at the requested offset; the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_racing_retention_return_valid_batches_or_out_of_range() {
    let broker = TestBroker::start_with(&[
        ("log.segment.bytes", "262144"),
        ("log.retention.bytes", "1048576"),
        ("log.retention.check.interval.ms", "10"),
        ("fetch.sendfile.enable", "true"),
    ])
    .await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap).await;
    produce(&bootstrap, 0, 100).await;
    let producer = {
        let bootstrap = bootstrap.clone();
        tokio::spawn(async move {
            for round in 1..8 {
                produce(&bootstrap, round * 100, (round + 1) * 100).await;
            }
        })
    };
    let mut c = plain_client(&bootstrap).await;
    let (mut answers, mut out_of_range, mut bytes) = (0, 0, 0usize);
    let mut offset = 0;
    while !producer.is_finished() || answers < 50 {
        let resp = c.fetch(&fetch_request(offset, 1 << 20, 0, 1)).await;
        let p = &resp.responses[0].partitions[0];
        answers += 1;
        match p.error_code {
            0 => {
                let records = p.records.clone().unwrap_or_default();
                bytes += records.len();
                let next = check_batches(&records, offset);
                // Start over from the log start now and then, where deletion happens.
                offset = if answers % 3 == 0 {
                    p.log_start_offset
                } else {
                    next
                };
            }
            1 => {
                out_of_range += 1;
                offset = p.log_start_offset;
            }
            code => panic!("error {code}"),
        }
    }
    producer.await.expect("producer");
    assert!(bytes > 0);
    eprintln!("{answers} fetches, {out_of_range} out of range, {bytes} bytes");
    // Still serving: the rest of the log reads back whole.
    let mut tail = plain_client(&bootstrap).await;
    let resp = tail.fetch(&fetch_request(0, 1 << 20, 0, 1)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 1, "offset 0 is gone");
    let start = p.log_start_offset;
    let resp = tail.fetch(&fetch_request(start, 4 << 20, 0, 1)).await;
    let records = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert!(!records.is_empty());
    check_batches(&records, start);
    broker.stop().await;
}
