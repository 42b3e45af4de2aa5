//! `esker produce`, `esker consume` and `esker perf`: records through Produce (acks=all,
//! uncompressed v2 batches) and Fetch (read uncommitted, no fetch session), sent to each
//! partition's leader. Partitioning follows Kafka's default: murmur2 of the key, round robin
//! without one.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;

use super::output::{
    format_time, list_offsets, parse_time, partition_what, print_json, topic_what, topics,
};
use super::{key_value, usage, CliError, CliResult, ConsumeArgs, PerfArgs, ProduceArgs};
use crate::client::{check, Client, ClientError, Target};

/// Kafka's murmur2 (`Utils.murmur2`), used by the default partitioner for keyed records.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// A record's key and value.
type KeyValue = (Option<Bytes>, Option<Bytes>);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn codec(e: impl std::fmt::Display) -> CliError {
    ClientError::Protocol(e.to_string()).into()
}

/// One uncompressed v2 batch of `(key, value)` records with the same headers.
fn encode_batch(recs: &[KeyValue], headers: &[(String, String)]) -> CliResult<Bytes> {
    let now = now_ms();
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let mut r = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: k.clone(),
                value: v.clone(),
                headers: Default::default(),
            };
            for (hk, hv) in headers {
                r.headers.insert(
                    StrBytes::from_string(hk.clone()),
                    Some(Bytes::from(hv.clone())),
                );
            }
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(codec)?;
    Ok(buf.freeze())
}

/// Sends one batch to the partition's leader with acks=all; returns its base offset.
async fn send_batch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    leader: i32,
    batch: Bytes,
) -> CliResult<i64> {
    let resp = client
        .send_capped(Target::Node(leader), 12, |_| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])])
        })
        .await?;
    let mut base = -1;
    for t in &resp.responses {
        for p in &t.partition_responses {
            check(p.error_code, p.error_message.as_deref(), || {
                partition_what(topic, partition, p.error_code, "WRITE")
            })?;
            base = p.base_offset;
        }
    }
    Ok(base)
}

/// (partition, leader) of every partition of `topic`.
async fn partitions_of(client: &mut Client, topic: &str) -> CliResult<Vec<(i32, i32)>> {
    let info = topics(client, Some(&[topic.to_string()])).await?;
    let parts: Vec<(i32, i32)> = info
        .into_iter()
        .flat_map(|t| t.partitions.into_iter().map(|p| (p.index, p.leader)))
        .collect();
    if parts.is_empty() {
        return Err(ClientError::Response {
            what: topic_what(topic, 3, "DESCRIBE"),
            code: 3,
            message: None,
        }
        .into());
    }
    Ok(parts)
}

#[derive(Serialize)]
struct Produced {
    partition: i32,
    base_offset: i64,
    records: usize,
}

/// Runs `esker produce`.
pub async fn produce(client: &mut Client, args: ProduceArgs, json: bool) -> CliResult<()> {
    let headers = args
        .headers
        .iter()
        .map(|h| key_value(h, "--header"))
        .collect::<CliResult<Vec<_>>>()?;
    let key = args.key.as_ref().map(|k| Bytes::from(k.clone()));
    let mut recs: Vec<KeyValue> = Vec::new();
    match &args.value {
        Some(v) => recs.push((key.clone(), Some(Bytes::from(v.clone())))),
        None => {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                match args
                    .key_separator
                    .as_deref()
                    .and_then(|s| line.split_once(s))
                {
                    Some((k, v)) => recs.push((
                        Some(Bytes::from(k.to_string())),
                        Some(Bytes::from(v.to_string())),
                    )),
                    None => recs.push((key.clone(), Some(Bytes::from(line)))),
                }
            }
        }
    }
    let parts = partitions_of(client, &args.topic).await?;
    let n = parts.len() as i32;
    if let Some(p) = args.partition {
        if !parts.iter().any(|(i, _)| *i == p) {
            return Err(ClientError::Response {
                what: format!("partition {p} of topic '{}' does not exist", args.topic),
                code: 3,
                message: None,
            }
            .into());
        }
    }
    let leader_of: BTreeMap<i32, i32> = parts.into_iter().collect();
    let mut by_partition: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
    for (i, rec) in recs.into_iter().enumerate() {
        let p = match (args.partition, &rec.0) {
            (Some(p), _) => p,
            (None, Some(k)) => (murmur2(k) & 0x7fff_ffff) % n,
            (None, None) => i as i32 % n,
        };
        by_partition.entry(p).or_default().push(rec);
    }
    let mut produced = Vec::new();
    let mut total = 0;
    for (p, recs) in by_partition {
        let leader = leader_of.get(&p).copied().unwrap_or(-1);
        for chunk in recs.chunks(1000) {
            let batch = encode_batch(chunk, &headers)?;
            let base = send_batch(client, &args.topic, p, leader, batch).await?;
            total += chunk.len();
            produced.push(Produced {
                partition: p,
                base_offset: base,
                records: chunk.len(),
            });
        }
    }
    if json {
        return print_json(&serde_json::json!({
            "topic": args.topic, "records": total, "batches": produced
        }));
    }
    println!("produced {total} record(s) to topic '{}'", args.topic);
    Ok(())
}

/// A partition being read.
struct Position {
    partition: i32,
    leader: i32,
    next: i64,
    /// Stop before this offset (`i64::MAX` when following).
    end: i64,
}

/// Fetches from every partition below its end once (one request per leader); calls `on` per
/// record (control records skipped). Returns false once every partition reached its end.
async fn fetch_round(
    client: &mut Client,
    topic: &str,
    positions: &mut [Position],
    mut on: impl FnMut(i32, &Record) -> bool,
) -> CliResult<bool> {
    let leaders: std::collections::BTreeSet<i32> = positions
        .iter()
        .filter(|p| p.next < p.end)
        .map(|p| p.leader)
        .collect();
    if leaders.is_empty() {
        return Ok(false);
    }
    for leader in leaders {
        let parts: Vec<FetchPartition> = positions
            .iter()
            .filter(|p| p.leader == leader && p.next < p.end)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p.partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(p.next)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let resp = client
            .send_capped(Target::Node(leader), 12, |_| {
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(8 << 20)
                    .with_isolation_level(0)
                    .with_session_id(0)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(parts)])
            })
            .await?;
        check(resp.error_code, None, || {
            format!("cannot fetch from topic '{topic}'")
        })?;
        for t in resp.responses {
            for pd in t.partitions {
                check(pd.error_code, None, || {
                    partition_what(topic, pd.partition_index, pd.error_code, "READ")
                })?;
                let Some(pos) = positions
                    .iter_mut()
                    .find(|p| p.partition == pd.partition_index)
                else {
                    continue;
                };
                if pd.high_watermark >= 0 && pos.end != i64::MAX {
                    pos.end = pos.end.min(pd.high_watermark);
                }
                let mut buf = pd.records.unwrap_or_default();
                // Whole batches only: a fetch may end inside the last one.
                while buf.len() >= 12 {
                    let len = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let total = 12 + len.max(0) as usize;
                    if buf.len() < total {
                        break;
                    }
                    let mut batch = buf.split_to(total);
                    let set = RecordBatchDecoder::decode(&mut batch).map_err(codec)?;
                    for r in &set.records {
                        if r.offset < pos.next {
                            continue;
                        }
                        pos.next = r.offset + 1;
                        if r.control {
                            continue;
                        }
                        if !on(pd.partition_index, r) {
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }
    Ok(positions.iter().any(|p| p.next < p.end))
}

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

fn hex(b: &Option<Bytes>) -> String {
    b.as_ref()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_default()
}

/// Runs `esker consume`.
pub async fn consume(client: &mut Client, args: ConsumeArgs, json: bool) -> CliResult<()> {
    let format = if json { "json" } else { args.format.as_str() };
    if !["text", "kv", "json", "hex"].contains(&format) {
        return Err(usage(format!(
            "--format `{format}`: expected text, kv, json or hex"
        )));
    }
    let topic = args.topic.clone();
    let mut parts = partitions_of(client, &topic).await?;
    if !args.partition.is_empty() {
        for p in &args.partition {
            if !parts.iter().any(|(i, _)| i == p) {
                return Err(ClientError::Response {
                    what: format!("partition {p} of topic '{topic}' does not exist"),
                    code: 3,
                    message: None,
                }
                .into());
            }
        }
        parts.retain(|(i, _)| args.partition.contains(i));
    }
    let with_leader: Vec<(String, i32, i32)> =
        parts.iter().map(|(p, l)| (topic.clone(), *p, *l)).collect();
    let latest = list_offsets(client, &with_leader, -1).await?;
    let start: BTreeMap<(String, i32), i64> = if let Some(t) = &args.from_time {
        let found = list_offsets(client, &with_leader, parse_time(t)?).await?;
        found
            .into_iter()
            .map(|(k, v)| {
                let end = latest.get(&k).copied().unwrap_or(0);
                (k, if v < 0 { end } else { v })
            })
            .collect()
    } else {
        match args.offset.as_str() {
            "beginning" | "earliest" => list_offsets(client, &with_leader, -2).await?,
            "end" | "latest" => latest.clone(),
            n => {
                let o: i64 = n.parse().map_err(|_| {
                    usage(format!(
                        "--offset `{n}`: expected beginning, end or an offset"
                    ))
                })?;
                latest.keys().map(|k| (k.clone(), o)).collect()
            }
        }
    };
    let mut start = start;
    let coord = match &args.group {
        Some(g) => {
            let coord = client.coordinator(g).await?;
            let resp = client
                .send_capped(Target::Node(coord), 7, |_| {
                    kafka_protocol::messages::OffsetFetchRequest::default()
                        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
                            g.clone(),
                        )))
                        .with_topics(None)
                })
                .await?;
            check(resp.error_code, None, || {
                format!("cannot read the offsets of group '{g}'")
            })?;
            for t in resp.topics.iter().filter(|t| t.name.0.as_str() == topic) {
                for p in &t.partitions {
                    if p.committed_offset >= 0 {
                        start.insert((topic.clone(), p.partition_index), p.committed_offset);
                    }
                }
            }
            Some(coord)
        }
        None => None,
    };
    let mut positions: Vec<Position> = parts
        .iter()
        .map(|(p, l)| Position {
            partition: *p,
            leader: *l,
            next: start.get(&(topic.clone(), *p)).copied().unwrap_or(0),
            end: if args.follow {
                i64::MAX
            } else {
                latest.get(&(topic.clone(), *p)).copied().unwrap_or(0)
            },
        })
        .collect();
    let limit = args.count.unwrap_or(u64::MAX);
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    let mut write_err: Option<std::io::Error> = None;
    while seen < limit {
        let more = fetch_round(client, &topic, &mut positions, |partition, r| {
            let mut out = stdout.lock();
            let res = match format {
                "kv" => writeln!(
                    out,
                    "{}\t{}",
                    text(&r.key).unwrap_or_default(),
                    text(&r.value).unwrap_or_default()
                ),
                "hex" => writeln!(out, "{}", hex(&r.value)),
                "json" => {
                    let headers: BTreeMap<String, Option<String>> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), text(v)))
                        .collect();
                    let line = serde_json::json!({
                        "topic": topic, "partition": partition, "offset": r.offset,
                        "timestamp": format_time(r.timestamp), "key": text(&r.key),
                        "value": text(&r.value), "headers": headers,
                    });
                    writeln!(out, "{line}")
                }
                _ => writeln!(out, "{}", text(&r.value).unwrap_or_default()),
            };
            if let Err(e) = res {
                write_err = Some(e);
                return false;
            }
            seen += 1;
            seen < limit
        })
        .await?;
        if let Some(e) = write_err.take() {
            // A closed pipe (`| head`) ends the command quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
        if !more {
            break;
        }
    }
    if let (Some(g), Some(coord)) = (&args.group, coord) {
        commit(client, coord, g, &topic, &positions).await?;
    }
    Ok(())
}

/// Commits the positions reached under `group` (generation -1: the group must be empty).
async fn commit(
    client: &mut Client,
    coord: i32,
    group: &str,
    topic: &str,
    positions: &[Position],
) -> CliResult<()> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let resp = client
        .send_capped(Target::Node(coord), 9, |v| {
            let r = kafka_protocol::messages::OffsetCommitRequest::default()
                .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
                    group.to_string(),
                )))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        positions
                            .iter()
                            .map(|p| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(p.partition)
                                    .with_committed_offset(p.next)
                                    .with_committed_leader_epoch(-1)
                            })
                            .collect(),
                    )]);
            if (2..=4).contains(&v) {
                r.with_retention_time_ms(-1)
            } else {
                r
            }
        })
        .await?;
    for t in &resp.topics {
        for p in &t.partitions {
            check(p.error_code, None, || match p.error_code {
                30 => format!("not authorized to READ group '{group}'"),
                29 => format!("not authorized to READ topic '{topic}'"),
                _ => format!("cannot commit offsets of group '{group}' (is it active?)"),
            })?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ProduceStats {
    records: u64,
    records_per_sec: f64,
    mb_per_sec: f64,
    avg_latency_ms: f64,
    max_latency_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

#[derive(Serialize)]
struct ConsumeStats {
    records: u64,
    records_per_sec: f64,
    mb_per_sec: f64,
    seconds: f64,
}

/// The latency under which `q` of the records were acknowledged; `lat` holds (latency ms,
/// records of that request), sorted.
fn percentile(lat: &[(f64, u64)], total: u64, q: f64) -> f64 {
    let want = (q * total as f64).ceil() as u64;
    let mut acc = 0;
    for (l, n) in lat {
        acc += n;
        if acc >= want {
            return *l;
        }
    }
    lat.last().map_or(0.0, |l| l.0)
}

const MB: f64 = 1024.0 * 1024.0;

/// Runs `esker perf`.
pub async fn perf(client: &mut Client, args: PerfArgs, json: bool) -> CliResult<()> {
    let (do_produce, do_consume) = match args.mode.as_str() {
        "produce" => (true, false),
        "consume" => (false, true),
        "both" => (true, true),
        m => {
            return Err(usage(format!(
                "--mode `{m}`: expected produce, consume or both"
            )))
        }
    };
    if args.batch_records == 0 {
        return Err(usage("--batch-records must be at least 1"));
    }
    let topic = args.topic.clone();
    let parts = partitions_of(client, &topic).await?;
    let with_leader: Vec<(String, i32, i32)> =
        parts.iter().map(|(p, l)| (topic.clone(), *p, *l)).collect();
    let start = if do_produce {
        list_offsets(client, &with_leader, -1).await?
    } else {
        list_offsets(client, &with_leader, -2).await?
    };
    let mut produce_stats = None;
    if do_produce {
        let value = Bytes::from(vec![b'x'; args.record_size]);
        let full: Vec<KeyValue> = vec![(None, Some(value.clone())); args.batch_records];
        let full_batch = encode_batch(&full, &[])?;
        let mut lat: Vec<(f64, u64)> = Vec::new();
        let mut sent = 0u64;
        let begin = Instant::now();
        let mut i = 0usize;
        while sent < args.num_records {
            let n = (args.num_records - sent).min(args.batch_records as u64);
            let batch = if n as usize == args.batch_records {
                full_batch.clone()
            } else {
                encode_batch(&full[..n as usize], &[])?
            };
            let (p, leader) = parts[i % parts.len()];
            let t0 = Instant::now();
            send_batch(client, &topic, p, leader, batch).await?;
            lat.push((t0.elapsed().as_secs_f64() * 1000.0, n));
            sent += n;
            i += 1;
        }
        let secs = begin.elapsed().as_secs_f64().max(1e-9);
        let total_lat: f64 = lat.iter().map(|(l, n)| l * *n as f64).sum();
        lat.sort_by(|a, b| a.0.total_cmp(&b.0));
        produce_stats = Some(ProduceStats {
            records: sent,
            records_per_sec: sent as f64 / secs,
            mb_per_sec: (sent as f64 * args.record_size as f64) / MB / secs,
            avg_latency_ms: total_lat / sent.max(1) as f64,
            max_latency_ms: lat.last().map_or(0.0, |l| l.0),
            p50_ms: percentile(&lat, sent, 0.50),
            p95_ms: percentile(&lat, sent, 0.95),
            p99_ms: percentile(&lat, sent, 0.99),
            p999_ms: percentile(&lat, sent, 0.999),
        });
    }
    let mut consume_stats = None;
    if do_consume {
        let end = list_offsets(client, &with_leader, -1).await?;
        let mut positions: Vec<Position> = parts
            .iter()
            .map(|(p, l)| Position {
                partition: *p,
                leader: *l,
                next: start.get(&(topic.clone(), *p)).copied().unwrap_or(0),
                end: end.get(&(topic.clone(), *p)).copied().unwrap_or(0),
            })
            .collect();
        let (mut records, mut bytes) = (0u64, 0u64);
        let begin = Instant::now();
        while fetch_round(client, &topic, &mut positions, |_, r| {
            records += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            true
        })
        .await?
        {}
        let secs = begin.elapsed().as_secs_f64().max(1e-9);
        consume_stats = Some(ConsumeStats {
            records,
            records_per_sec: records as f64 / secs,
            mb_per_sec: bytes as f64 / MB / secs,
            seconds: secs,
        });
    }
    if json {
        return print_json(&serde_json::json!({
            "topic": topic, "record_size": args.record_size,
            "produce": produce_stats, "consume": consume_stats
        }));
    }
    if let Some(s) = &produce_stats {
        println!(
            "produce: {} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            s.records, s.records_per_sec, s.mb_per_sec, s.avg_latency_ms, s.max_latency_ms,
            s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms
        );
    }
    if let Some(s) = &consume_stats {
        println!(
            "consume: {} records read, {:.1} records/sec ({:.2} MB/sec) in {:.2} s.",
            s.records, s.records_per_sec, s.mb_per_sec, s.seconds
        );
    }
    eprintln!("(latency is per produce request of --batch-records records, acks=all, one request in flight; benches/throughput.rs is the full benchmark)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
