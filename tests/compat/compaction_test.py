"""Log compaction seen through confluent-kafka (librdkafka) against the broker at $BOOTSTRAP.

AdminClient creates a compacted topic (cleanup.policy=compact, 64 KiB segments rolled after
1 s, min.cleanable.dirty.ratio 0.01, delete.retention.ms 4 s); an idempotent Producer writes
100 000 updates over 1 000 keys, the last update of every tenth key a tombstone. Then, each
condition polled with a deadline (run.sh starts the broker with a short log.cleaner.backoff.ms
and log.retention.check.interval.ms, so segment.ms rolls and the cleaner's passes come quickly):

- a Consumer reading from the beginning gets exactly the latest record of every key (value, or
  null for the 100 tombstones), each key once, in offset order, each at the offset the
  producer's delivery report gave it;
- then, once delete.retention.ms has passed, the same without the tombstones;
- the partition's size dropped: the .log files in $ESKER_DATA_DIR (when run.sh exports it) and
  the size DescribeLogDirs reports (kafka-python's admin client; confluent-kafka has no
  describe_log_dirs) are a small fraction of the bytes produced;
- the broker's esker_log_cleaner_passes_total counted the passes ($METRICS_ENDPOINT)."""

import glob
import os
import time
import urllib.request
import uuid

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import BOOTSTRAP, Checks

TIMEOUT = 15
UPDATES = 100_000
KEYS = 1_000
DELETE_RETENTION_MS = 4000
# Deadlines of the two polled conditions; together well under run.sh's 120 s per scenario.
COMPACTED_WITHIN_S = 45
TOMBSTONES_GONE_WITHIN_S = 40


def key_of(i):
    return f"key-{(i * 7919) % KEYS:04d}".encode()


def produce_updates(c, topic):
    """Returns ({key: (offset, value)} of each key's latest record, bytes of keys and values)."""
    acked, errors = [], []

    def cb(err, m):
        if err is not None:
            errors.append(err)
        else:
            acked.append((m.offset(), m.key(), m.value()))

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 20})
    produced_bytes = 0
    for i in range(UPDATES):
        key = key_of(i)
        # The last update of every tenth key is a tombstone.
        tombstone = i >= UPDATES - KEYS and key.endswith(b"0")
        value = None if tombstone else f"value-{i}-{'x' * 40}".encode()
        produced_bytes += len(key) + (len(value) if value else 0)
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=0, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    c.ok(not errors and not left and len(acked) == UPDATES,
         f"{UPDATES} updates over {KEYS} keys acknowledged",
         f"{len(acked)} acked, {left} left, errors {errors[:3]}")
    latest = {}
    for off, key, value in acked:
        if key not in latest or latest[key][0] < off:
            latest[key] = (off, value)
    return latest, produced_bytes


def read_all(topic, deadline_s=15):
    """[(offset, key, value)] from the beginning up to the end of the partition, or None if the
    end was not reached within deadline_s."""
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"compaction-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.partition.eof": True})
    out = []
    try:
        _, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            for m in cons.consume(num_messages=10_000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= high:
                            return out
                        continue
                    raise RuntimeError(f"consume error: {m.error()}")
                out.append((m.offset(), m.key(), m.value()))
                if m.offset() + 1 >= high:
                    return out
        return None
    finally:
        cons.close()


def compare(records, want):
    """Problems of `records` against `want` ({key: (offset, value)}): each key once, in offset
    order, at its expected offset with its expected value, nothing else."""
    problems = []
    seen = set()
    last = -1
    for off, key, value in records:
        if off <= last:
            problems.append(f"offset {off} after {last}")
        last = off
        if key in seen:
            problems.append(f"key {key!r} read twice (again at {off})")
        seen.add(key)
        if key not in want:
            problems.append(f"unexpected key {key!r} at {off}")
        elif want[key] != (off, value):
            problems.append(f"key {key!r}: ({off}, {value!r}), expected {want[key]!r}")
    missing = set(want) - seen
    if missing:
        problems.append(f"{len(missing)} key(s) missing, e.g. {sorted(missing)[:3]}")
    return problems


def await_table(c, topic, want, within_s, what):
    """Polls read_all until it matches `want`; records the check; returns the seconds taken."""
    t0 = time.monotonic()
    problems = ["never read to the end"]
    reads = 0
    while time.monotonic() - t0 < within_s:
        records = read_all(topic, deadline_s=max(1.0, min(15.0, within_s - (time.monotonic() - t0))))
        reads += 1
        if records is not None:
            problems = compare(records, want)
            if not problems:
                break
        time.sleep(0.5)  # between two full reads of the partition, not a synchronisation
    took = time.monotonic() - t0
    c.ok(not problems, f"{what} (after {took:.1f}s, {reads} read(s))",
         "; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""))
    return took


def partition_log_bytes(topic):
    data_dir = os.environ.get("ESKER_DATA_DIR")
    if not data_dir:
        return None
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, f"{topic}-0", "*.log")))


def described_size(topic):
    """The partition's size from DescribeLogDirs (kafka-python), or None if unavailable."""
    try:
        from kafka import KafkaAdminClient
    except ImportError:
        return None
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=TIMEOUT * 1000)
    try:
        answer = admin.describe_log_dirs(topic_partitions={topic: [0]})
    finally:
        admin.close()
    sizes = []

    def walk(x):
        # Versions of kafka-python return either response objects or nested dicts/lists.
        if isinstance(x, dict):
            if x.get("topic", x.get("name")) == topic:
                for p in x.get("partitions", []):
                    if p.get("partition_index", p.get("partition")) == 0:
                        sizes.append(p.get("partition_size", p.get("size")))
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif hasattr(x, "to_object"):
            walk(x.to_object())

    walk(answer)
    return sizes[0] if sizes else None


def metric(name):
    endpoint = os.environ.get("METRICS_ENDPOINT")
    if not endpoint:
        return None
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=TIMEOUT) as r:
        body = r.read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def check_compaction(c):
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    config = {"cleanup.policy": "compact", "segment.bytes": "65536", "segment.ms": "1000",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": str(DELETE_RETENTION_MS)}
    futs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)],
                               request_timeout=TIMEOUT)
    futs[topic].result(timeout=TIMEOUT)
    passes_before = metric("esker_log_cleaner_passes_total")

    t0 = time.monotonic()
    latest, produced_bytes = produce_updates(c, topic)
    print(f"  (produced {UPDATES} updates, {produced_bytes} bytes of keys and values, "
          f"in {time.monotonic() - t0:.1f}s)", flush=True)
    tombstones = sum(1 for _, v in latest.values() if v is None)
    c.eq((len(latest), tombstones), (KEYS, KEYS // 10), "keys written and keys whose last update is a tombstone")

    await_table(c, topic, latest, COMPACTED_WITHIN_S,
                f"compacted: exactly the latest record of each of the {KEYS} keys ({tombstones} tombstones), "
                "each once, in offset order, at its acknowledged offset")
    on_disk = partition_log_bytes(topic)
    if on_disk is None:
        print("  skip - ESKER_DATA_DIR not set, partition files not measured", flush=True)
    else:
        c.ok(0 < on_disk * 20 < produced_bytes,
             f"partition files after compaction: {on_disk} bytes, under 1/20 of the {produced_bytes} produced")

    live = {k: v for k, v in latest.items() if v[1] is not None}
    await_table(c, topic, live, TOMBSTONES_GONE_WITHIN_S,
                f"after delete.retention.ms ({DELETE_RETENTION_MS} ms): the tombstones are gone, "
                f"the {len(live)} live keys remain")
    on_disk = partition_log_bytes(topic)
    described = described_size(topic)
    if on_disk is not None:
        c.ok(0 < on_disk * 20 < produced_bytes,
             f"partition files without the tombstones: {on_disk} bytes")
    if described is None:
        print("  skip - DescribeLogDirs size not available", flush=True)
    else:
        c.ok(0 < described * 20 < produced_bytes,
             f"DescribeLogDirs: partition size {described} bytes, under 1/20 of the {produced_bytes} produced")

    passes_after = metric("esker_log_cleaner_passes_total")
    if passes_after is None:
        print("  skip - METRICS_ENDPOINT not set, cleaner metrics not checked", flush=True)
    else:
        c.ok(passes_after >= (passes_before or 0) + 2,
             f"esker_log_cleaner_passes_total went from {passes_before} to {passes_after}")


def main():
    c = Checks("compaction")
    print(f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}) "
          f"against {BOOTSTRAP}", flush=True)
    t0 = time.monotonic()
    try:
        check_compaction(c)
    except Exception:  # noqa: BLE001 - reported as a failure
        c.crash("compaction")
    print(f"  (took {time.monotonic() - t0:.2f}s)", flush=True)
    c.finish()


if __name__ == "__main__":
    main()
