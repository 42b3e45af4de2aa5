"""confluent-kafka (librdkafka) against the broker at $BOOTSTRAP.

For each of gzip, snappy, lz4 and zstd: create a fresh 3-partition topic with AdminClient,
produce 1000 keyed messages with headers and explicit timestamps (acks=all, idempotence off),
flush, then read everything back with assign() from OFFSET_BEGINNING (no group membership, no
commits) and check every key/value/header/timestamp arrives exactly once and in per-partition
order; then check get_watermark_offsets, Consumer.offsets_for_times and AdminClient.list_offsets
(earliest, latest, max_timestamp, for_timestamp); finally delete the topic."""

import time

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from compat_common import (
    BOOTSTRAP, CODECS, N_MESSAGES, N_PARTITIONS, Checks, check_consumed, check_layout, check_stored_codec,
    PROBE_NAMES, make_messages, timestamp_probes, topic_name,
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
        "enable.idempotence": False,
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


def consume_all(codec, topic, n):
    cons = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        # librdkafka requires a group.id; with assign() and no commits the group is never joined.
        "group.id": "esker-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
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


def run_codec(c, admin, codec):
    topic = topic_name("ck", codec)
    msgs, _ = make_messages(codec, N_MESSAGES)
    create_topic(c, admin, topic)
    delivered = produce(c, codec, topic, msgs)
    layout = check_layout(c, codec, delivered, len(msgs))
    check_stored_codec(c, codec, topic, len(msgs))
    t0 = time.monotonic()
    cons, records, errors, eof = consume_all(codec, topic, len(msgs))
    try:
        c.ok(not errors and len(eof) == N_PARTITIONS,
             f"{codec}: consumed to end of all {N_PARTITIONS} partitions in {time.monotonic() - t0:.2f}s",
             f"errors {errors[:5]}, EOF on {sorted(eof)}")
        check_consumed(c, codec, msgs, delivered, records)
        check_offsets_consumer(c, codec, cons, topic, msgs, layout)
    finally:
        cons.close()
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
    c.finish()


if __name__ == "__main__":
    main()
