"""confluent-kafka (librdkafka) against the broker at $BOOTSTRAP.

For each of gzip, snappy, lz4 and zstd: create a fresh 3-partition topic with AdminClient,
produce 1000 keyed messages with headers and explicit timestamps (acks=all,
enable.idempotence=true: the stored batches must carry the producer id and gap-free sequences),
flush, then read everything back with assign() from OFFSET_BEGINNING (no group membership; the
default auto-commit commits the final positions on close, which the broker must accept from a
consumer outside the group) and check every key/value/header/timestamp arrives exactly once and
in per-partition order; then check get_watermark_offsets, Consumer.offsets_for_times and
AdminClient.list_offsets (earliest, latest, max_timestamp, for_timestamp); finally delete the
topic.

Consumer groups, once with each of the classic protocol's range and cooperative-sticky
assignors and with the KIP-848 consumer protocol (group.protocol=consumer): a subscribe()d
consumer reads half of a 3-partition topic, commits synchronously and closes; a second consumer
of the group resumes exactly at the committed offsets and reads the rest (nothing twice), and its
auto-commit on close leaves the group's offsets at the end of every partition."""

import time
import uuid

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from confluent_kafka import ConsumerGroupTopicPartitions

from compat_common import (
    BOOTSTRAP, CODECS, N_MESSAGES, N_PARTITIONS, Checks, check_consumed, check_group_resume, check_layout,
    check_stored_codec, check_stored_producer, end_offsets_of, PROBE_NAMES, make_messages,
    timestamp_probes, topic_name,
)

TIMEOUT = 15


def create_topic(c, admin, topic):
    futs = admin.create_topics([NewTopic(topic, num_partitions=N_PARTITIONS, replication_factor=1)],
                               operation_timeout=10, request_timeout=TIMEOUT)
    futs[topic].result(timeout=TIMEOUT)
    md = admin.list_topics(topic=topic, timeout=TIMEOUT)
    t = md.topics.get(topic)
    parts = sorted(t.partitions) if t is not None and t.error is None else None
    leaders = {p.leader for p in t.partitions.values()} if parts else None
    c.ok(parts == list(range(N_PARTITIONS)) and leaders == {0},
         f"AdminClient.create_topics({topic}, {N_PARTITIONS} partitions); metadata lists partitions "
         f"{parts} led by {leaders}",
         f"metadata: {t and t.error}")


def produce(c, codec, topic, msgs):
    errors = []
    delivered = {}

    def on_delivery(err, m):
        i = int(m.key().rsplit(b"-", 1)[1])  # delivery reports carry no headers
        if err is not None:
            errors.append((i, err))
        else:
            delivered[i] = (m.partition(), m.offset())

    p = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 20,
        "batch.num.messages": 250,  # several batches per partition
        "error_cb": lambda e: errors.append(("error_cb", e)),
    })
    t0 = time.monotonic()
    for m in msgs:
        p.produce(topic, key=m.key, value=m.value, headers=m.headers, timestamp=m.ts,
                  on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(TIMEOUT)
    took = time.monotonic() - t0
    c.ok(left == 0 and not errors,
         f"{codec}: produced {len(msgs)} messages, flush() left {left}, {len(errors)} errors ({took:.2f}s)",
         f"errors: {errors[:5]}")
    return delivered


def consume_all(codec, topic, n, group):
    cons = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        # With assign() the group is never joined; the default auto-commit still commits the
        # positions (OffsetCommit with generation -1 and no member id) when the consumer closes.
        "group.id": group,
        "enable.partition.eof": True,
        "check.crcs": True,
        "max.partition.fetch.bytes": 16 * 1024,  # several fetches per partition
    })
    records = []
    errors = []
    eof = set()
    try:
        cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(N_PARTITIONS)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(eof) < N_PARTITIONS or len(records) < n):
            m = cons.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                else:
                    errors.append(m.error())
                continue
            eof.discard(m.partition())
            ts_type, ts = m.timestamp()
            if ts_type != confluent_kafka.TIMESTAMP_CREATE_TIME:
                errors.append(f"timestamp type {ts_type} at {m.partition()}/{m.offset()}")
            headers = [(k, v) for k, v in (m.headers() or [])]
            records.append((m.partition(), m.offset(), m.key(), m.value(), headers, ts))
        # Nothing more may arrive after the end of every partition (no duplicates).
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                records.append((m.partition(), m.offset(), m.key(), m.value(),
                                list(m.headers() or []), m.timestamp()[1]))
        return cons, records, errors, eof
    except Exception:
        cons.close()
        raise


def check_offsets_consumer(c, codec, cons, topic, msgs, layout):
    for p, idx in layout.items():
        lo, hi = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT, cached=False)
        c.eq((lo, hi), (0, len(idx)), f"{codec}: get_watermark_offsets(p{p}) == (0, {len(idx)})")
    probes = timestamp_probes(msgs, layout)
    # One timestamp per partition per call: one call per probe round.
    for r, name in enumerate(PROBE_NAMES):
        tps = [TopicPartition(topic, p, cases[r][0]) for p, cases in probes.items()]
        res = cons.offsets_for_times(tps, timeout=TIMEOUT)
        got = {tp.partition: (tp.offset, tp.error) for tp in res}
        want = {p: (cases[r][1], None) for p, cases in probes.items()}
        c.eq(got, want, f"{codec}: Consumer.offsets_for_times ({name}) == first record with ts >= query")


def check_offsets_admin(c, codec, admin, topic, msgs, layout):
    def run(specs):
        futs = admin.list_offsets(specs, request_timeout=TIMEOUT)
        return {tp.partition: f.result(timeout=TIMEOUT) for tp, f in futs.items()}

    tps = [TopicPartition(topic, p) for p in layout]
    earliest = run({tp: OffsetSpec.earliest() for tp in tps})
    c.eq({p: r.offset for p, r in earliest.items()}, {p: 0 for p in layout},
         f"{codec}: AdminClient.list_offsets(earliest)")
    latest = run({tp: OffsetSpec.latest() for tp in tps})
    c.eq({p: r.offset for p, r in latest.items()}, {p: len(idx) for p, idx in layout.items()},
         f"{codec}: AdminClient.list_offsets(latest) == message count per partition")
    maxts = run({tp: OffsetSpec.max_timestamp() for tp in tps})
    c.eq({p: (r.offset, r.timestamp) for p, r in maxts.items()},
         {p: (len(idx) - 1, msgs[idx[-1]].ts) for p, idx in layout.items()},
         f"{codec}: AdminClient.list_offsets(max_timestamp) == (last offset, its timestamp)")
    probes = timestamp_probes(msgs, layout)
    for r, name in enumerate(PROBE_NAMES):
        res = run({TopicPartition(topic, p): OffsetSpec.for_timestamp(cases[r][0])
                   for p, cases in probes.items()})
        want = {p: (cases[r][1], cases[r][2]) for p, cases in probes.items()}
        c.eq({p: (x.offset, x.timestamp) for p, x in res.items()}, want,
             f"{codec}: AdminClient.list_offsets(for_timestamp, {name}) == (offset, ts) of first record with ts >= query")


def group_offsets(admin, group):
    """{partition: committed offset} of a group, through AdminClient.list_consumer_group_offsets."""
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.error is None}


# ---------------------------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------------------------
N_GROUP_MESSAGES = 300
GROUP_VARIANTS = [
    # (label, consumer settings)
    ("classic-range", {"partition.assignment.strategy": "range"}),
    ("classic-cooperative-sticky", {"partition.assignment.strategy": "cooperative-sticky"}),
    ("consumer-protocol", {"group.protocol": "consumer"}),
]


def produce_for_groups(c, admin, topic):
    """Produces N_GROUP_MESSAGES keyed messages (idempotent, lz4); returns {key: (partition, offset)}."""
    create_topic(c, admin, topic)
    delivered, errors = {}, []

    def on_delivery(err, m):
        if err is not None:
            errors.append(err)
        else:
            delivered[m.key()] = (m.partition(), m.offset())

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "compression.type": "lz4",
                  "linger.ms": 5, "batch.num.messages": 40, "error_cb": lambda e: errors.append(e)})
    for i in range(N_GROUP_MESSAGES):
        p.produce(topic, key=f"group-{i:04d}".encode(), value=f"value {i}".encode(), on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(TIMEOUT)
    counts = {}
    for part, _ in delivered.values():
        counts[part] = counts.get(part, 0) + 1
    c.ok(left == 0 and not errors and len(delivered) == N_GROUP_MESSAGES and len(counts) == N_PARTITIONS,
         f"groups: produced {N_GROUP_MESSAGES} messages with enable.idempotence=true (per partition {counts})",
         f"left {left}, errors {errors[:5]}")
    check_stored_producer(c, "groups", topic, N_PARTITIONS, idempotent=True)
    return delivered


def group_consumer(group, settings, **extra):
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest"}
    conf.update(settings)
    conf.update(extra)
    return Consumer(conf)


def poll_group(cons, want, deadline_s, errors):
    """Polls until `want` records were read (or the deadline); [(partition, offset, key)]."""
    reads = []
    deadline = time.monotonic() + deadline_s
    while len(reads) < want and time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error())
            continue
        reads.append((m.partition(), m.offset(), m.key()))
    return reads


def run_group(c, admin, label, settings, topic, delivered):
    group = f"ck-{label}-{uuid.uuid4().hex[:8]}"
    half = N_GROUP_MESSAGES // 2
    errors = []
    t0 = time.monotonic()
    # First consumer: reads half, commits synchronously what it read, closes.
    cons = group_consumer(group, settings, **{"enable.auto.commit": False})
    try:
        cons.subscribe([topic])
        first = poll_group(cons, half, 30, errors)
        joined = time.monotonic() - t0
        assignment = sorted(tp.partition for tp in cons.assignment())
        commit_res = cons.commit(asynchronous=False)
        commit_errors = [(tp.partition, tp.error) for tp in commit_res or [] if tp.error is not None]
    finally:
        cons.close()
    c.ok(len(first) == half and not errors and assignment == list(range(N_PARTITIONS)) and not commit_errors,
         f"{label}: subscribe() joined {group}, assigned partitions {assignment}, read {len(first)} "
         f"({joined:.2f}s), Consumer.commit(asynchronous=False) succeeded",
         f"errors {errors[:5]}, commit errors {commit_errors}")
    committed = group_offsets(admin, group)
    # Second consumer: default auto-commit, reads the rest; close() commits the final positions.
    t1 = time.monotonic()
    cons = group_consumer(group, settings)
    try:
        cons.subscribe([topic])
        second = poll_group(cons, N_GROUP_MESSAGES - len(first), 30, errors)
        second += poll_group(cons, 1, 1.0, errors)  # nothing more may arrive
    finally:
        cons.close()
    c.ok(not errors, f"{label}: second consumer of {group} read {len(second)} ({time.monotonic() - t1:.2f}s)",
         f"errors {errors[:5]}")
    check_group_resume(c, label, delivered, first, committed, second)
    c.eq(group_offsets(admin, group), end_offsets_of(delivered),
         f"{label}: after the second consumer closed (auto-commit) the group's offsets are the end offsets")
    futs = admin.delete_consumer_groups([group], request_timeout=TIMEOUT)
    futs[group].result(timeout=TIMEOUT)
    print(f"  ({label} took {time.monotonic() - t0:.2f}s)", flush=True)


def run_groups(c, admin):
    topic = topic_name("ck-groups", "lz4")
    delivered = produce_for_groups(c, admin, topic)
    for label, settings in GROUP_VARIANTS:
        try:
            run_group(c, admin, label, settings, topic, delivered)
        except Exception:  # noqa: BLE001 - reported, then the next variant runs
            c.crash(f"group round {label}")
    admin.delete_topics([topic], operation_timeout=10, request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)


def run_codec(c, admin, codec):
    topic = topic_name("ck", codec)
    msgs, _ = make_messages(codec, N_MESSAGES)
    create_topic(c, admin, topic)
    delivered = produce(c, codec, topic, msgs)
    layout = check_layout(c, codec, delivered, len(msgs))
    check_stored_codec(c, codec, topic, len(msgs))
    check_stored_producer(c, codec, topic, N_PARTITIONS, idempotent=True)
    t0 = time.monotonic()
    group = f"ck-assign-{codec}-{uuid.uuid4().hex[:8]}"
    cons, records, errors, eof = consume_all(codec, topic, len(msgs), group)
    try:
        c.ok(not errors and len(eof) == N_PARTITIONS,
             f"{codec}: consumed to end of all {N_PARTITIONS} partitions in {time.monotonic() - t0:.2f}s",
             f"errors {errors[:5]}, EOF on {sorted(eof)}")
        check_consumed(c, codec, msgs, delivered, records)
        check_offsets_consumer(c, codec, cons, topic, msgs, layout)
    finally:
        cons.close()
    c.eq(group_offsets(admin, group), {p: len(idx) for p, idx in layout.items()},
         f"{codec}: the assign() consumer's auto-commit on close stored the end offsets in {group}")
    check_offsets_admin(c, codec, admin, topic, msgs, layout)
    futs = admin.delete_topics([topic], operation_timeout=10, request_timeout=TIMEOUT)
    futs[topic].result(timeout=TIMEOUT)
    names = set(admin.list_topics(timeout=TIMEOUT).topics)
    c.ok(topic not in names, f"{codec}: AdminClient.delete_topics; topic gone from metadata")


def main():
    c = Checks("confluent-kafka")
    print(f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}) "
          f"against {BOOTSTRAP}", flush=True)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for codec in CODECS:
        t0 = time.monotonic()
        try:
            run_codec(c, admin, codec)
        except (KafkaException, Exception):
            c.crash(f"{codec} round")
        print(f"  ({codec} round took {time.monotonic() - t0:.2f}s)", flush=True)
    t0 = time.monotonic()
    try:
        run_groups(c, admin)
    except Exception:  # noqa: BLE001 - reported as a failure
        c.crash("consumer groups")
    print(f"  (consumer groups took {time.monotonic() - t0:.2f}s)", flush=True)
    c.finish()


if __name__ == "__main__":
    main()
