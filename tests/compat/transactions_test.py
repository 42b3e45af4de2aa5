"""confluent-kafka (librdkafka) transactions against the broker at $BOOTSTRAP.

Read-process-write: an input topic is filled without transactions; a consumer of a group
(subscribe(), no auto-commit) reads half of it; a transactional producer writes a record per input
record to all 3 partitions of two output topics, adds the consumer's positions with
send_offsets_to_transaction(consumer.position(), consumer.consumer_group_metadata()) and commits;
then it processes the other half the same way and aborts.

- While the first transaction is open (its records flushed): a read_committed consumer reaches
  the end of every output partition without a record and its watermark query answers the last
  stable offset (0); a read_uncommitted one sees the open transaction's records.
- After the commit: consumer.committed() is the positions sent with the transaction; after the
  abort it is unchanged.
- Offsets: the committed records at 0..n-1 of each partition, the COMMIT marker at n, the aborted
  records after it, then the ABORT marker (the high watermark counts both markers); the stored
  batches on disk are transactional, with one control batch per marker.
- A fresh read_committed consumer reads exactly the committed records; a read_uncommitted one
  reads both transactions' records and no control record; both end at the high watermark.
- A new consumer of the group resumes at the committed offsets: the aborted half of the input
  is read again.

Zombie fencing: producer 1 opens a transaction and flushes records; producer 2 with the same
transactional.id calls init_transactions (which aborts producer 1's transaction); producer 1's
commit_transaction raises a fatal KafkaException (fenced: librdkafka's _FENCED, PRODUCER_FENCED or
INVALID_PRODUCER_EPOCH); producer 2 commits a transaction of its own; read_committed sees only
producer 2's records."""

import time
import uuid

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import BOOTSTRAP, N_PARTITIONS, Checks, check_stored_transactions

TIMEOUT = 30
N_INPUT = 60  # input records, 20 per partition; each transaction processes half of them
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def create_topics(c, admin, topics):
    futs = admin.create_topics([NewTopic(t, num_partitions=N_PARTITIONS, replication_factor=1) for t in topics],
                               operation_timeout=10, request_timeout=TIMEOUT)
    for t in topics:
        futs[t].result(timeout=TIMEOUT)
    c.ok(True, f"created {len(topics)} topics of {N_PARTITIONS} partitions: {', '.join(topics)}")


def txn_producer(tid, errors):
    return Producer({
        "bootstrap.servers": BOOTSTRAP,
        "transactional.id": tid,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
        "error_cb": errors.append,
        "log_level": 0,
    })


def read_all(tps, isolation, deadline_s=30):
    """Reads every partition of `tps` [(topic, partition)] from the beginning (assign(), no group
    membership) until each reported its end, then one more second (nothing may follow).
    Returns ([(topic, partition, offset, key, value)], errors, partitions that reached the end)."""
    cons = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"txn-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "log_level": 0,
    })
    records, errors, eof = [], [], set()
    try:
        cons.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and len(eof) < len(tps):
            m = cons.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add((m.topic(), m.partition()))
                else:
                    errors.append(m.error())
                continue
            eof.discard((m.topic(), m.partition()))
            records.append((m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                records.append((m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        return records, errors, eof
    finally:
        cons.close()


def watermarks(tps, isolation):
    """{(topic, partition): (low, high)} from a consumer of the given isolation level (librdkafka
    asks ListOffsets with it: high is the last stable offset under read_committed)."""
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"txn-wm-{uuid.uuid4().hex[:8]}",
                     "isolation.level": isolation, "log_level": 0})
    try:
        return {(t, p): cons.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT, cached=False)
                for t, p in tps}
    finally:
        cons.close()


def fill_input(c, topic):
    """N_INPUT records, record i to partition i % 3, without transactions."""
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "log_level": 0})
    for i in range(N_INPUT):
        p.produce(topic, key=f"in-{i:03d}".encode(), value=f"input {i}".encode(), partition=i % N_PARTITIONS)
    left = p.flush(TIMEOUT)
    c.eq(left, 0, f"filled the input topic with {N_INPUT} records (idempotent, no transaction)")


def poll_input(cons, want, errors):
    """Reads `want` input records with the group's consumer; [(partition, offset, key)]."""
    reads = []
    deadline = time.monotonic() + TIMEOUT
    while len(reads) < want and time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error())
            continue
        reads.append((m.partition(), m.offset(), m.key()))
    return reads


def process(producer, reads, outputs, tag, delivered, errors):
    """One output record per input record and output topic, to the input's partition."""

    def report(err, m):
        if err is not None:
            errors.append(err)
        else:
            delivered[(m.topic(), m.partition(), m.key())] = m.offset()

    for part, off, key in reads:
        for t in outputs:
            producer.produce(t, key=f"{tag}-{key.decode()}".encode(), value=f"{tag}: {t} {off}".encode(),
                             partition=part, on_delivery=report)
            producer.poll(0)


def positions(cons):
    """The consumer's positions (next offset to read) as TopicPartitions for
    send_offsets_to_transaction, leaving out partitions it has not read from yet."""
    return [tp for tp in cons.position(cons.assignment()) if tp.offset >= 0]


def as_dict(tps):
    return {tp.partition: tp.offset for tp in tps}


def committed_of(cons, topic):
    res = cons.committed([TopicPartition(topic, p) for p in range(N_PARTITIONS)], timeout=TIMEOUT)
    return {tp.partition: tp.offset for tp in res if tp.offset >= 0}


def run_read_process_write(c, admin):
    suffix = uuid.uuid4().hex[:8]
    inp, out_a, out_b = f"txn-in-{suffix}", f"txn-out-a-{suffix}", f"txn-out-b-{suffix}"
    outputs = [out_a, out_b]
    out_tps = [(t, p) for t in outputs for p in range(N_PARTITIONS)]
    group = f"txn-group-{suffix}"
    create_topics(c, admin, [inp, out_a, out_b])
    fill_input(c, inp)
    errors = []
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "isolation.level": "read_committed", "log_level": 0})
    producer = txn_producer(f"txn-rpw-{suffix}", errors)
    closed = False
    try:
        cons.subscribe([inp])
        t0 = time.monotonic()
        producer.init_transactions(TIMEOUT)
        c.ok(True, f"init_transactions() ({time.monotonic() - t0:.2f}s)")

        # Transaction 1: the first half, committed.
        first = poll_input(cons, N_INPUT // 2, errors)
        c.ok(len(first) == N_INPUT // 2 and not errors,
             f"group consumer read {len(first)} input records", f"errors {errors[:5]}")
        delivered1 = {}
        producer.begin_transaction()
        process(producer, first, outputs, "t1", delivered1, errors)
        left = producer.flush(TIMEOUT)
        c.ok(left == 0 and not errors and len(delivered1) == len(first) * 2,
             f"transaction 1: {len(delivered1)} records to {len(out_tps)} partitions of 2 topics flushed "
             f"while the transaction is open", f"left {left}, errors {errors[:5]}")

        rc, rc_errors, rc_eof = read_all(out_tps, "read_committed", deadline_s=15)
        c.ok(not rc and not rc_errors and rc_eof == set(out_tps),
             "open transaction: a read_committed consumer reaches the end of every output partition "
             "and reads none of its records",
             f"read {len(rc)}: {rc[:3]}, errors {rc_errors[:3]}, ended on {len(rc_eof)} of {len(out_tps)}")
        ru, ru_errors, _ = read_all(out_tps, "read_uncommitted", deadline_s=15)
        c.eq(len(ru), len(delivered1),
             "open transaction: a read_uncommitted consumer reads its records")
        wm = watermarks(out_tps, "read_committed")
        c.eq({tp: hi for tp, (_, hi) in wm.items()}, {tp: 0 for tp in out_tps},
             "open transaction: read_committed watermark query answers the last stable offset 0")

        sent1 = positions(cons)
        t0 = time.monotonic()
        producer.send_offsets_to_transaction(sent1, cons.consumer_group_metadata(), TIMEOUT)
        producer.commit_transaction(TIMEOUT)
        c.ok(True, f"transaction 1: send_offsets_to_transaction({as_dict(sent1)}) and commit_transaction() "
                   f"({time.monotonic() - t0:.2f}s)")
        c.eq(committed_of(cons, inp), as_dict(sent1),
             "after the commit, consumer.committed() == the positions sent with the transaction")

        # Transaction 2: the second half, aborted.
        second = poll_input(cons, N_INPUT - len(first), errors)
        delivered2 = {}
        producer.begin_transaction()
        process(producer, second, outputs, "t2", delivered2, errors)
        sent2 = positions(cons)
        producer.send_offsets_to_transaction(sent2, cons.consumer_group_metadata(), TIMEOUT)
        left = producer.flush(TIMEOUT)
        t0 = time.monotonic()
        producer.abort_transaction(TIMEOUT)
        c.ok(left == 0 and not errors and len(delivered2) == len(second) * 2 and as_dict(sent2) != as_dict(sent1),
             f"transaction 2: {len(delivered2)} records, send_offsets_to_transaction({as_dict(sent2)}), "
             f"abort_transaction() ({time.monotonic() - t0:.2f}s)", f"left {left}, errors {errors[:5]}")
        c.eq(committed_of(cons, inp), as_dict(sent1),
             "after the abort, consumer.committed() is still transaction 1's positions")
        cons.close()
        closed = True

        check_offsets(c, out_tps, delivered1, delivered2)
        for t in outputs:
            want = {}
            for p in range(N_PARTITIONS):
                n1 = sum(1 for (tt, pp, _) in delivered1 if (tt, pp) == (t, p))
                n2 = sum(1 for (tt, pp, _) in delivered2 if (tt, pp) == (t, p))
                want[p] = [("DATA", n1), "COMMIT", ("DATA", n2), "ABORT"]
            check_stored_transactions(c, t, t, N_PARTITIONS, want)
        check_reads(c, out_tps, delivered1, delivered2)
        check_resume(c, inp, group, second)
    finally:
        if not closed:
            cons.close()
        producer.flush(5)
    futs = admin.delete_topics([inp, out_a, out_b], operation_timeout=10, request_timeout=TIMEOUT)
    for f in futs.values():
        f.result(timeout=TIMEOUT)


def check_offsets(c, out_tps, delivered1, delivered2):
    """Per partition: transaction 1 at 0..n1-1, its COMMIT marker at n1, transaction 2 at
    n1+1..n1+n2, its ABORT marker at n1+n2+1; high watermark (both isolation levels, nothing open)
    n1+n2+2."""
    problems = []
    want_hw = {}
    for tp in out_tps:
        o1 = sorted(o for (t, p, _), o in delivered1.items() if (t, p) == tp)
        o2 = sorted(o for (t, p, _), o in delivered2.items() if (t, p) == tp)
        n1, n2 = len(o1), len(o2)
        if o1 != list(range(n1)):
            problems.append(f"{tp}: transaction 1 at {o1[:4]}..., expected 0..{n1 - 1}")
        if o2 != list(range(n1 + 1, n1 + 1 + n2)):
            problems.append(f"{tp}: transaction 2 at {o2[:4]}..., expected {n1 + 1}..{n1 + n2} "
                            f"(offset {n1} is the COMMIT marker)")
        want_hw[tp] = n1 + n2 + 2
    c.ok(not problems, "acknowledged offsets: each COMMIT marker takes the offset after its transaction's records",
         "; ".join(problems[:4]))
    for isolation in ("read_uncommitted", "read_committed"):
        got = {tp: hi for tp, (_, hi) in watermarks(out_tps, isolation).items()}
        c.eq(got, want_hw, f"{isolation} high watermark == records + 2 markers per partition")


def check_reads(c, out_tps, delivered1, delivered2):
    def keyed(records):
        return {(t, p, k): o for t, p, o, k, _ in records}

    rc, rc_errors, rc_eof = read_all(out_tps, "read_committed")
    c.ok(keyed(rc) == delivered1 and len(rc) == len(delivered1) and not rc_errors and rc_eof == set(out_tps),
         f"read_committed consumer read exactly transaction 1's {len(delivered1)} records at their offsets "
         f"({len(rc)} read) and reached the end of every partition",
         f"extra {sorted(set(keyed(rc)) - set(delivered1))[:3]}, missing "
         f"{sorted(set(delivered1) - set(keyed(rc)))[:3]}, errors {rc_errors[:3]}, ended on {len(rc_eof)}")
    both = dict(delivered1, **delivered2)
    ru, ru_errors, ru_eof = read_all(out_tps, "read_uncommitted")
    c.ok(keyed(ru) == both and len(ru) == len(both) and not ru_errors and ru_eof == set(out_tps),
         f"read_uncommitted consumer read both transactions' {len(both)} records at their offsets and no "
         f"control record ({len(ru)} read)",
         f"extra {sorted(set(keyed(ru)) - set(both))[:3]}, missing {sorted(set(both) - set(keyed(ru)))[:3]}, "
         f"errors {ru_errors[:3]}")
    last, unordered = {}, []
    for t, p, o, _, _ in rc:
        if o <= last.get((t, p), -1):
            unordered.append((t, p, o))
        last[(t, p)] = o
    c.eq(unordered, [], "read_committed records arrive in offset order per partition")


def check_resume(c, inp, group, second):
    """A new consumer of the group starts at the committed offsets: it reads the input records of
    the aborted transaction again, and nothing of the first half."""
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "log_level": 0})
    errors = []
    try:
        cons.subscribe([inp])
        again = poll_input(cons, len(second), errors)
        again += poll_input_for(cons, 1.0, errors)
    finally:
        cons.close()
    c.eq(sorted(again), sorted(second),
         "a new consumer of the group resumes at the committed offsets: the aborted half is read again")


def poll_input_for(cons, seconds, errors):
    reads = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error())
            continue
        reads.append((m.partition(), m.offset(), m.key()))
    return reads


def run_fencing(c, admin):
    suffix = uuid.uuid4().hex[:8]
    topic = f"txn-fence-{suffix}"
    tid = f"txn-fence-{suffix}"
    tps = [(topic, p) for p in range(N_PARTITIONS)]
    create_topics(c, admin, [topic])
    errors1, errors2 = [], []
    p1 = txn_producer(tid, errors1)
    p1.init_transactions(TIMEOUT)
    p1.begin_transaction()
    for i in range(6):
        p1.produce(topic, key=f"zombie-{i}".encode(), value=b"from producer 1", partition=i % N_PARTITIONS)
    left = p1.flush(TIMEOUT)
    c.eq(left, 0, "fencing: producer 1 opened a transaction and flushed 6 records")

    p2 = txn_producer(tid, errors2)
    t0 = time.monotonic()
    p2.init_transactions(TIMEOUT)
    c.ok(True, f"fencing: producer 2 with the same transactional.id: init_transactions() "
               f"({time.monotonic() - t0:.2f}s)")
    raised = None
    try:
        p1.commit_transaction(TIMEOUT)
    except KafkaException as e:
        raised = e.args[0]
    c.ok(raised is not None and raised.fatal() and raised.code() in FENCED_CODES,
         f"fencing: producer 1's commit_transaction() raised a fatal KafkaException "
         f"({raised.name() if raised else None}: {raised.str() if raised else ''})",
         f"raised {raised!r}, fatal {raised.fatal() if raised else None}")

    delivered = {}

    def report(err, m):
        if err is None:
            delivered[(m.topic(), m.partition(), m.key())] = m.offset()

    p2.begin_transaction()
    for i in range(6):
        p2.produce(topic, key=f"fresh-{i}".encode(), value=b"from producer 2", partition=i % N_PARTITIONS,
                   on_delivery=report)
    p2.commit_transaction(TIMEOUT)
    c.eq(len(delivered), 6, "fencing: producer 2 committed a transaction of 6 records")
    rc, rc_errors, _ = read_all(tps, "read_committed")
    keys = sorted(k.decode() for _, _, _, k, _ in rc)
    c.eq(keys, sorted(f"fresh-{i}" for i in range(6)),
         "fencing: read_committed sees only producer 2's records (producer 1's transaction was aborted)")
    ru, _, _ = read_all(tps, "read_uncommitted")
    c.eq(len(ru), 12, "fencing: read_uncommitted sees the records of both producers")
    check_stored_transactions(c, "fencing", topic, N_PARTITIONS,
                              {p: [("DATA", 2), "ABORT", ("DATA", 2), "COMMIT"] for p in range(N_PARTITIONS)})
    c.ok(not errors2, "fencing: producer 2 reported no error", f"{errors2[:3]}")
    p2.flush(5)
    admin.delete_topics([topic], operation_timeout=10, request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)


def main():
    c = Checks("confluent-kafka transactions")
    print(f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}) "
          f"transactions against {BOOTSTRAP}", flush=True)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for name, fn in (("read-process-write", run_read_process_write), ("fencing", run_fencing)):
        t0 = time.monotonic()
        try:
            fn(c, admin)
        except Exception:  # noqa: BLE001 - reported, then the next round runs
            c.crash(f"{name} round")
        print(f"  ({name} round took {time.monotonic() - t0:.2f}s)", flush=True)
    c.finish()


if __name__ == "__main__":
    main()
