"""kafka-python against the broker at $BOOTSTRAP, with api_version auto-detection (not pinned).

For each of gzip, snappy, lz4 and zstd: create a fresh 3-partition topic with KafkaAdminClient,
produce 1000 keyed messages with headers and explicit timestamps (KafkaProducer with
compression_type, acks=all and its default enable_idempotence=True: the stored batches must carry
the producer id and gap-free sequences), flush, then read everything back with
KafkaConsumer(group_id=None) + assign() + seek_to_beginning() and check every
key/value/header/timestamp arrives exactly once and in per-partition order; then check
beginning_offsets, end_offsets, offsets_for_times and KafkaAdminClient.list_partition_offsets
(EARLIEST, LATEST, MAX_TIMESTAMP, by timestamp); finally delete the topic.

Consumer group: a subscribe()d KafkaConsumer reads half of a 3-partition topic, commits exactly
what it processed (commit(offsets)) and closes; a second consumer of the group resumes exactly at
the committed offsets and reads the rest (nothing twice), and its auto-commit on close leaves the
group at the end offsets (KafkaAdminClient.list_group_offsets); describe_groups and
delete_groups.

DescribeTopicPartitions (KIP-966, key 75): KafkaAdminClient.describe_topic_partitions over two
topics with a partition limit of 2, paging with the returned cursor until every partition was
seen once, and an unknown topic answered UNKNOWN_TOPIC_OR_PARTITION."""

import logging
import time
import uuid

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import OffsetSpec, OffsetTimestamp

from compat_common import (
    BOOTSTRAP, CODECS, N_MESSAGES, N_PARTITIONS, PROBE_NAMES, Checks, check_consumed, check_group_resume,
    check_layout, check_stored_codec, check_stored_producer, end_offsets_of, make_messages,
    timestamp_probes, topic_name,
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
        acks="all",
        linger_ms=20,
        batch_size=16 * 1024,  # several batches per partition
    )
    c.ok(p.config["enable_idempotence"],
         f"{codec}: KafkaProducer auto-detected api_version {p.config['api_version']}, idempotence on by default",
         f"enable_idempotence was turned off: {p.config['enable_idempotence']}")
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
    check_stored_producer(c, codec, topic, N_PARTITIONS, idempotent=True)
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


# ---------------------------------------------------------------------------------------------
# Consumer group
# ---------------------------------------------------------------------------------------------
N_GROUP_MESSAGES = 300


def group_offsets(admin, group):
    res = admin.list_group_offsets([group])[group]
    return {tp.partition: om.offset for tp, om in res.items()}


def poll_group(cons, want, deadline_s):
    """Reads until `want` records were read (records past that are left unprocessed);
    [(partition, offset, key)] and {partition: next offset to read after what was processed}."""
    reads, positions = [], {}
    deadline = time.monotonic() + deadline_s
    while len(reads) < want and time.monotonic() < deadline:
        for tp, recs in cons.poll(timeout_ms=200).items():
            for r in recs:
                if len(reads) >= want:
                    break
                reads.append((r.partition, r.offset, r.key))
                positions[tp] = r.offset + 1
    return reads, positions


def run_group(c, admin):
    t0 = time.monotonic()
    topic = topic_name("kp-group", "gzip")
    group = f"kp-group-{uuid.uuid4().hex[:8]}"
    create_topic(c, admin, topic)
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type="gzip", linger_ms=5, batch_size=2048)
    futures = [p.send(topic, key=f"group-{i:04d}".encode(), value=f"value {i}".encode())
               for i in range(N_GROUP_MESSAGES)]
    p.flush(timeout=TIMEOUT_MS / 1000)
    delivered = {}
    for i, f in enumerate(futures):
        md = f.get(timeout=TIMEOUT_MS / 1000)
        delivered[f"group-{i:04d}".encode()] = (md.partition, md.offset)
    p.close(timeout=10)
    c.eq(len(delivered), N_GROUP_MESSAGES, f"group: produced {N_GROUP_MESSAGES} messages")
    check_stored_producer(c, "group", topic, N_PARTITIONS, idempotent=True)

    def consumer(**extra):
        cons = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                             max_poll_records=40, request_timeout_ms=TIMEOUT_MS + 5000, **extra)
        cons.subscribe([topic])
        return cons

    # First consumer: processes half and commits exactly what it processed.
    half = N_GROUP_MESSAGES // 2
    cons = consumer(enable_auto_commit=False)
    try:
        first, positions = poll_group(cons, half, 30)
        assignment = sorted(tp.partition for tp in cons.assignment())
        cons.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in positions.items()})
        committed_by_consumer = {tp.partition: cons.committed(tp) for tp in positions}
    finally:
        cons.close(autocommit=False)
    c.ok(len(first) == half and assignment == list(range(N_PARTITIONS)),
         f"group: subscribe() joined {group}, assigned {assignment}, processed {len(first)}, "
         f"commit({{tp: OffsetAndMetadata}}); committed() == {committed_by_consumer}")
    committed = group_offsets(admin, group)
    d = admin.describe_groups([group])[group]
    states = [(d["group_id"], d["group_state"], d["protocol_type"], len(d["members"]))]
    c.eq(states, [(group, "Empty", "consumer", 0)],
         "group: KafkaAdminClient.describe_groups after close: Empty, protocol type consumer, no members")
    # Second consumer: auto-commit, reads the rest, commits on close.
    cons = consumer(enable_auto_commit=True)
    try:
        second, _ = poll_group(cons, N_GROUP_MESSAGES - len(first), 30)
        extra, _ = poll_group(cons, 1, 1.0)  # nothing more may arrive
        second += extra
    finally:
        cons.close()
    check_group_resume(c, "group", delivered, first, committed, second)
    c.eq(group_offsets(admin, group), end_offsets_of(delivered),
         "group: after the second consumer closed (auto-commit) the group's offsets are the end offsets")
    c.eq(admin.delete_groups([group]), {group: "OK"}, "group: KafkaAdminClient.delete_groups")
    c.eq(group_offsets(admin, group), {}, "group: no committed offsets left after delete_groups")
    admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
    print(f"  (consumer group round took {time.monotonic() - t0:.2f}s)", flush=True)


def run_describe_topic_partitions(c, admin):
    topics = [f"dtp-a-{uuid.uuid4().hex[:8]}", f"dtp-b-{uuid.uuid4().hex[:8]}"]
    admin.create_topics({t: {"num_partitions": 3, "replication_factor": 1} for t in topics},
                        timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    seen, pages, cursor = [], 0, None
    while True:
        res = admin.describe_topic_partitions(topics, response_partition_limit=2, cursor=cursor)
        pages += 1
        for t in res["topics"]:
            seen += [(t["name"], p["partition_index"], p["leader_id"]) for p in t["partitions"]]
        cursor = res["next_cursor"]
        if cursor is None or pages > 10:
            break
    want = sorted((t, p, 0) for t in topics for p in range(3))
    c.ok(sorted(seen) == want and len(seen) == len(want) and pages == 3,
         f"describe_topic_partitions pages 2 partitions at a time with its cursor ({pages} pages, "
         f"{len(seen)} partitions, each once, led by 0)", f"pages {pages}, seen {seen}")
    res = admin.describe_topic_partitions([f"dtp-missing-{uuid.uuid4().hex[:8]}"])
    codes = [t["error_code"] for t in res["topics"]]
    c.ok(codes == [3], "describe_topic_partitions of an unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3)",
         f"codes {codes}")
    admin.delete_topics(topics, timeout_ms=TIMEOUT_MS)


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
        try:
            run_group(c, admin)
        except Exception:  # noqa: BLE001 - reported as a failure
            c.crash("consumer group round")
        try:
            run_describe_topic_partitions(c, admin)
        except Exception:  # noqa: BLE001 - reported as a failure
            c.crash("describe_topic_partitions round")
    finally:
        admin.close()
    c.finish()


if __name__ == "__main__":
    main()
