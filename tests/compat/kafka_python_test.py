"""kafka-python against the broker at $BOOTSTRAP, with api_version auto-detection (not pinned).

For each of gzip, snappy, lz4 and zstd: create a fresh 3-partition topic with KafkaAdminClient,
produce 1000 keyed messages with headers and explicit timestamps (KafkaProducer with
compression_type, acks=all, enable_idempotence=False), flush, then read everything back with
KafkaConsumer(group_id=None) + assign() + seek_to_beginning() and check every
key/value/header/timestamp arrives exactly once and in per-partition order; then check
beginning_offsets, end_offsets, offsets_for_times and KafkaAdminClient.list_partition_offsets
(EARLIEST, LATEST, MAX_TIMESTAMP, by timestamp); finally delete the topic."""

import logging
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec, OffsetTimestamp

from compat_common import (
    BOOTSTRAP, CODECS, N_MESSAGES, N_PARTITIONS, PROBE_NAMES, Checks, check_consumed,
    check_layout, check_stored_codec, make_messages, timestamp_probes, topic_name,
)

TIMEOUT_MS = 15_000


def create_topic(c, admin, topic):
    res = admin.create_topics({topic: {"num_partitions": N_PARTITIONS, "replication_factor": 1}},
                              timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    errors = [(t["name"], t["error_code"]) for t in res["topics"] if t["error_code"] != 0]
    desc = admin.describe_topics([topic])
    parts = sorted(p["partition_index"] for d in desc for p in d["partitions"])
    leaders = {p["leader_id"] for d in desc for p in d["partitions"]}
    c.ok(not errors and parts == list(range(N_PARTITIONS)) and leaders == {0},
         f"KafkaAdminClient.create_topics({topic}, {N_PARTITIONS} partitions); described partitions "
         f"{parts} led by {leaders}", f"errors {errors}, describe {desc}")


def produce(c, codec, topic, msgs):
    p = KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        compression_type=None if codec == "none" else codec,
        enable_idempotence=False,
        acks="all",
        linger_ms=20,
        batch_size=16 * 1024,  # several batches per partition
    )
    c.ok(True, f"{codec}: KafkaProducer auto-detected api_version {p.config['api_version']}")
    t0 = time.monotonic()
    futures = [(m.i, p.send(topic, key=m.key, value=m.value, headers=m.headers, timestamp_ms=m.ts))
               for m in msgs]
    p.flush(timeout=TIMEOUT_MS / 1000)
    delivered, errors = {}, []
    for i, f in futures:
        try:
            md = f.get(timeout=TIMEOUT_MS / 1000)
            delivered[i] = (md.partition, md.offset)
        except Exception as e:  # noqa: BLE001 - reported as a check failure
            errors.append((i, repr(e)))
    p.close(timeout=10)
    c.ok(not errors, f"{codec}: produced {len(msgs)} messages, {len(errors)} errors "
                     f"({time.monotonic() - t0:.2f}s)", f"errors: {errors[:5]}")
    return delivered


def consume_all(c, codec, cons, topic, layout, n):
    tps = [TopicPartition(topic, p) for p in range(N_PARTITIONS)]
    cons.assign(tps)
    cons.seek_to_beginning()
    ends = {tp.partition: len(layout[tp.partition]) for tp in tps}
    records = []
    bad_ts_type = []
    deadline = time.monotonic() + 30
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        batch = cons.poll(timeout_ms=500)
        for tp, recs in batch.items():
            for r in recs:
                if r.timestamp_type != 0:  # 0 = CreateTime
                    bad_ts_type.append((r.partition, r.offset, r.timestamp_type))
                records.append((r.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp))
        if len(records) >= n and all(cons.position(tp) >= ends[tp.partition] for tp in tps):
            break
    took = time.monotonic() - t0
    positions = {tp.partition: cons.position(tp) for tp in tps}
    # Nothing more may arrive after the end of every partition (no duplicates).
    extra = cons.poll(timeout_ms=1000)
    for tp, recs in extra.items():
        for r in recs:
            records.append((r.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp))
    c.eq(positions, ends, f"{codec}: consumer positions reached the end of every partition ({took:.2f}s)")
    c.eq(bad_ts_type, [], f"{codec}: every record has timestamp type CreateTime")
    return records


def check_offsets_consumer(c, codec, cons, topic, msgs, layout):
    tps = [TopicPartition(topic, p) for p in layout]
    c.eq({tp.partition: o for tp, o in cons.beginning_offsets(tps, timeout_ms=TIMEOUT_MS).items()},
         {p: 0 for p in layout}, f"{codec}: beginning_offsets")
    c.eq({tp.partition: o for tp, o in cons.end_offsets(tps, timeout_ms=TIMEOUT_MS).items()},
         {p: len(idx) for p, idx in layout.items()}, f"{codec}: end_offsets == message count per partition")
    probes = timestamp_probes(msgs, layout)
    for r, name in enumerate(PROBE_NAMES):
        res = cons.offsets_for_times({TopicPartition(topic, p): cases[r][0] for p, cases in probes.items()},
                                     timeout_ms=TIMEOUT_MS)
        got = {tp.partition: (None if v is None else (v.offset, v.timestamp)) for tp, v in res.items()}
        # The consumer API answers None where the broker found no such record (offset -1).
        want = {p: (None if cases[r][1] == -1 else (cases[r][1], cases[r][2])) for p, cases in probes.items()}
        c.eq(got, want, f"{codec}: KafkaConsumer.offsets_for_times ({name}) == first record with ts >= query")


def check_offsets_admin(c, codec, admin, topic, msgs, layout):
    def run(specs):
        res = admin.list_partition_offsets(specs, timeout_ms=TIMEOUT_MS)
        return {tp.partition: (v.offset, v.timestamp) for tp, v in res.items()}

    tps = [TopicPartition(topic, p) for p in layout]
    c.eq({p: v[0] for p, v in run({tp: OffsetSpec.EARLIEST for tp in tps}).items()},
         {p: 0 for p in layout}, f"{codec}: KafkaAdminClient.list_partition_offsets(EARLIEST)")
    c.eq({p: v[0] for p, v in run({tp: OffsetSpec.LATEST for tp in tps}).items()},
         {p: len(idx) for p, idx in layout.items()},
         f"{codec}: KafkaAdminClient.list_partition_offsets(LATEST) == message count per partition")
    c.eq(run({tp: OffsetSpec.MAX_TIMESTAMP for tp in tps}),
         {p: (len(idx) - 1, msgs[idx[-1]].ts) for p, idx in layout.items()},
         f"{codec}: KafkaAdminClient.list_partition_offsets(MAX_TIMESTAMP) == (last offset, its timestamp)")
    probes = timestamp_probes(msgs, layout)
    for r, name in enumerate(PROBE_NAMES):
        want = {p: (cases[r][1], cases[r][2]) for p, cases in probes.items()}
        c.eq(run({TopicPartition(topic, p): OffsetTimestamp(cases[r][0]) for p, cases in probes.items()}),
             want, f"{codec}: KafkaAdminClient.list_partition_offsets(OffsetTimestamp, {name}) == (offset, ts) of first record with ts >= query")


def run_codec(c, admin, codec):
    topic = topic_name("kp", codec)
    msgs, _ = make_messages(codec, N_MESSAGES)
    create_topic(c, admin, topic)
    delivered = produce(c, codec, topic, msgs)
    layout = check_layout(c, codec, delivered, len(msgs))
    check_stored_codec(c, codec, topic, len(msgs))
    cons = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        enable_auto_commit=False,
        check_crcs=True,
        max_partition_fetch_bytes=16 * 1024,  # several fetches per partition
        request_timeout_ms=TIMEOUT_MS + 5000,
    )
    try:
        c.ok(True, f"{codec}: KafkaConsumer auto-detected api_version {cons.config['api_version']}")
        records = consume_all(c, codec, cons, topic, layout, len(msgs))
        check_consumed(c, codec, msgs, delivered, records)
        check_offsets_consumer(c, codec, cons, topic, msgs, layout)
    finally:
        cons.close()
    check_offsets_admin(c, codec, admin, topic, msgs, layout)
    admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
    c.ok(topic not in set(admin.list_topics()), f"{codec}: KafkaAdminClient.delete_topics; topic gone from metadata")


def main():
    logging.basicConfig(level=logging.WARNING, format="    kafka-python %(levelname)s %(name)s: %(message)s")
    c = Checks("kafka-python")
    print(f"kafka-python {kafka.__version__} against {BOOTSTRAP}", flush=True)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=TIMEOUT_MS + 5000)
    try:
        for codec in CODECS:
            t0 = time.monotonic()
            try:
                run_codec(c, admin, codec)
            except Exception:  # noqa: BLE001 - reported, then the next codec runs
                c.crash(f"{codec} round")
            print(f"  ({codec} round took {time.monotonic() - t0:.2f}s)", flush=True)
    finally:
        admin.close()
    c.finish()


if __name__ == "__main__":
    main()
