//! Kinesis API throughput with the AWS SDK for Rust: PutRecords (batches of 500 from several
//! concurrent writers) and GetRecords (every shard read back from TRIM_HORIZON), against an
//! in-process Esker or any Kinesis endpoint (`--endpoint`, e.g. kinesalite) in the same run.
//!
//! `cargo bench --bench kinesis -- --records 100000 --size 1024 --shards 4`
//! `cargo bench --bench kinesis -- --endpoint http://127.0.0.1:4568` (kinesalite)

use std::time::Instant;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Kinesis PutRecords / GetRecords throughput")]
struct Args {
    /// Endpoint to measure; without it an in-process Esker is started in a temp dir.
    #[arg(long)]
    endpoint: Option<String>,
    /// Number of records.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Data bytes per record.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Concurrent PutRecords writers.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

fn report(what: &str, records: usize, bytes: usize, secs: f64) {
    println!(
        "{what:<10} {records:>9} records in {secs:>7.2} s: {:>10.0} records/s {:>8.2} MB/s",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

async fn run(c: &Client, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let stream = format!("bench-{}", std::process::id());
    c.create_stream()
        .stream_name(&stream)
        .shard_count(args.shards)
        .send()
        .await?;
    // kinesalite creates streams asynchronously.
    for _ in 0..100 {
        let d = c
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await?;
        if d.stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let payload = vec![b'x'; args.size];
    let started = Instant::now();
    let per_writer = args.records.div_ceil(args.writers);
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let c = c.clone();
        let stream = stream.clone();
        let payload = payload.clone();
        let n = per_writer.min(args.records.saturating_sub(w * per_writer));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < n {
                let batch: Vec<PutRecordsRequestEntry> = (sent..(sent + 500).min(n))
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("w{w}-{i}"))
                            .data(Blob::new(payload.clone()))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let len = batch.len();
                let out = c
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(batch))
                    .send()
                    .await
                    .expect("put_records");
                assert_eq!(out.failed_record_count(), Some(0), "failed records");
                sent += len;
            }
            sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    report(
        "PutRecords",
        total,
        total * args.size,
        started.elapsed().as_secs_f64(),
    );

    let shards = c.list_shards().stream_name(&stream).send().await?;
    let started = Instant::now();
    let mut read = 0usize;
    let mut bytes = 0usize;
    for s in shards.shards() {
        let mut it = c
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = c.get_records().shard_iterator(i).send().await?;
            if r.records().is_empty() {
                break;
            }
            read += r.records().len();
            bytes += r
                .records()
                .iter()
                .map(|x| x.data().as_ref().len())
                .sum::<usize>();
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    report("GetRecords", read, bytes, started.elapsed().as_secs_f64());
    assert_eq!(read, total, "every record read back");
    c.delete_stream().stream_name(&stream).send().await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match &args.endpoint {
            Some(e) => {
                println!(
                    "endpoint {e}: {} records of {} bytes, {} shards",
                    args.records, args.size, args.shards
                );
                run(&client(e), &args).await
            }
            None => {
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
                let config = esker::Config::from_pairs([
                    ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
                    ("log.dirs", dir.path().display().to_string()),
                    ("kinesis.listener", "127.0.0.1:0".to_string()),
                ])?;
                let broker = esker::Broker::start(config).await?;
                let addr = broker.kinesis_addr().ok_or("no kinesis listener")?;
                println!(
                    "in-process esker (http://{addr}): {} records of {} bytes, {} shards",
                    args.records, args.size, args.shards
                );
                let result = run(&client(&format!("http://{addr}")), &args).await;
                broker.shutdown().await?;
                result
            }
        }
    })
}
