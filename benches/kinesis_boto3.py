"""Kinesis PutRecords throughput with boto3 (the AWS SDK for Python) against any endpoint, so
Esker and a peer (kinesalite) can be measured the same way in the same run.

Creates a stream, then runs --processes boto3 client processes (one client each), each sending
PutRecords batches of --batch records of --size bytes in a closed loop for --seconds after one
warm-up second, and prints the records/s and MB/s acknowledged by the endpoint (records the
response marks as failed are not counted, and reported). With --server-pid (a server on this
machine) it also prints the CPU seconds the server spent in the measured window, from /proc.

    tests/compat/.venv/bin/python benches/kinesis_boto3.py --endpoint http://127.0.0.1:4567 \\
        --seconds 15 --processes 2 --shards 4 [--server-pid PID]
"""

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid

import boto3
import botocore.config


def client(endpoint, validate=True):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=botocore.config.Config(
            retries={"max_attempts": 1},
            max_pool_connections=2,
            read_timeout=120,
            parameter_validation=validate,
        ),
    )


def cpu_seconds(pid):
    """utime + stime of a process (and its waited-for children) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def writer(args, stream, index, start_at, stop_at, out):
    c = client(args.endpoint, validate=args.validate)
    payload = os.urandom(args.size)
    n = 0
    ok = failed = 0
    ok_window = 0
    while True:
        now = time.time()
        if now >= stop_at:
            break
        records = [
            {"Data": payload, "PartitionKey": f"p{index}-{n + i}"} for i in range(args.batch)
        ]
        n += args.batch
        r = c.put_records(StreamName=stream, Records=records)
        f = r.get("FailedRecordCount", 0)
        ok += args.batch - f
        failed += f
        done = time.time()
        # Count a batch in the measured window if it was acknowledged inside it.
        if start_at <= done < stop_at:
            ok_window += args.batch - f
    out.put((ok_window, ok, failed))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds (15)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    p.add_argument("--processes", type=int, default=2, help="boto3 client processes (2)")
    p.add_argument("--shards", type=int, default=4, help="shards of the stream (4)")
    p.add_argument("--batch", type=int, default=500, help="records per PutRecords (500)")
    p.add_argument("--size", type=int, default=1024, help="data bytes per record (1024)")
    p.add_argument(
        "--validate",
        action="store_true",
        help="keep botocore's client-side parameter validation on (a quarter of the client's "
        "CPU at 500 records per call; off by default, for either endpoint)",
    )
    p.add_argument("--server-pid", type=int, help="report this local server's CPU seconds")
    p.add_argument("--keep", action="store_true", help="do not delete the stream afterwards")
    args = p.parse_args()

    c = client(args.endpoint)
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    c.create_stream(StreamName=stream, ShardCount=args.shards)
    for _ in range(200):  # kinesalite creates streams asynchronously
        s = c.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        if s["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.1)
    else:
        sys.exit(f"stream {stream} never became ACTIVE")

    out = mp.Queue()
    start_at = time.time() + 0.5 + args.warmup
    stop_at = start_at + args.seconds
    procs = [
        mp.Process(target=writer, args=(args, stream, i, start_at, stop_at, out))
        for i in range(args.processes)
    ]
    for pr in procs:
        pr.start()
    cpu0 = None
    if args.server_pid:
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = cpu_seconds(args.server_pid)
    time.sleep(max(0.0, stop_at - time.time()))
    cpu1 = cpu_seconds(args.server_pid) if args.server_pid else None
    results = [out.get() for _ in procs]
    for pr in procs:
        pr.join()

    window = sum(r[0] for r in results)
    total_ok = sum(r[1] for r in results)
    failed = sum(r[2] for r in results)
    rps = window / args.seconds
    print(
        f"endpoint={args.endpoint} processes={args.processes} shards={args.shards} "
        f"batch={args.batch} size={args.size}B seconds={args.seconds:g} "
        f"validation={'on' if args.validate else 'off'}"
    )
    print(
        f"PutRecords: {rps:.0f} records/s, {rps * args.size / 1e6:.2f} MB/s "
        f"({window} records acknowledged in the window; {total_ok} in all, {failed} failed)"
    )
    if cpu0 is not None:
        cpu = cpu1 - cpu0
        per = window / cpu if cpu > 0 else float("inf")
        print(
            f"server CPU: {cpu:.2f} s in {args.seconds:g} s "
            f"({cpu / args.seconds:.2f} cores), {per:.0f} records per CPU-second"
        )
    if not args.keep:
        try:
            c.delete_stream(StreamName=stream)
        except Exception as e:  # noqa: BLE001 - a benchmark's cleanup
            print(f"delete_stream failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
