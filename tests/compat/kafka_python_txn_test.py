"""kafka-python transactions against the broker at $BOOTSTRAP (api_version auto-detected).

Read-process-write: an input topic is filled without transactions; a KafkaConsumer of a group
(subscribe(), no auto-commit) reads half of it; a KafkaProducer(transactional_id=...) writes one
record per input record to the same partition of a 3-partition output topic,
send_offsets_to_transaction({tp: OffsetAndMetadata}, consumer.group_metadata()) and
commit_transaction(); then the other half the same way and abort_transaction().

- The acknowledged offsets leave one offset for each marker (COMMIT after transaction 1, ABORT
  after transaction 2); the stored batches are transactional with a control batch per marker.
- KafkaConsumer.committed() is transaction 1's positions, before and after the abort.
- KafkaConsumer(isolation_level='read_committed') reads exactly the committed records and its
  end_offsets() are the high watermark (nothing open); a read_uncommitted one reads both
  transactions and no control record.

Zombie fencing: producer 1 opens a transaction and flushes records; producer 2 with the same
transactional_id calls init_transactions() (aborting producer 1's transaction); producer 1's
commit_transaction() raises ProducerFencedError (or InvalidProducerEpochError); producer 2 commits
a transaction; read_committed sees only producer 2's records."""

import logging
import time
import uuid

import kafka
import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from compat_common import BOOTSTRAP, N_PARTITIONS, Checks, check_stored_transactions

TIMEOUT_MS = 30_000
N_INPUT = 60


def create_topics(c, admin, topics):
    res = admin.create_topics({t: {"num_partitions": N_PARTITIONS, "replication_factor": 1} for t in topics},
                              timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    errors = [(t["name"], t["error_code"]) for t in res["topics"] if t["error_code"] != 0]
    c.ok(not errors, f"created {len(topics)} topics of {N_PARTITIONS} partitions: {', '.join(topics)}",
         f"errors {errors}")


def txn_producer(tid):
    return KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=tid, acks="all", linger_ms=5,
                         transaction_timeout_ms=60_000, max_block_ms=TIMEOUT_MS,
                         request_timeout_ms=TIMEOUT_MS)


def send_all(producer, items):
    """Sends [(topic, partition, key, value)] and waits for each; {(topic, partition, key): offset}."""
    futures = [((t, p, k), producer.send(t, key=k, value=v, partition=p)) for t, p, k, v in items]
    producer.flush(timeout=TIMEOUT_MS / 1000)
    return {tk: f.get(timeout=TIMEOUT_MS / 1000).offset for tk, f in futures}


def read_all(topic, isolation, want, deadline_s=30):
    """Reads every partition of topic from the beginning (group_id=None, assign()) until `want`
    records arrived, then one more second. Returns ({(topic, partition, key): offset},
    duplicates, {partition: position at the end}, {partition: end_offsets()})."""
    cons = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False,
                         isolation_level=isolation, request_timeout_ms=TIMEOUT_MS + 5000)
    try:
        tps = [TopicPartition(topic, p) for p in range(N_PARTITIONS)]
        cons.assign(tps)
        cons.seek_to_beginning()
        got, dups = {}, []
        deadline = time.monotonic() + deadline_s
        extra_until = None
        while time.monotonic() < deadline and (extra_until is None or time.monotonic() < extra_until):
            for tp, recs in cons.poll(timeout_ms=200).items():
                for r in recs:
                    k = (r.topic, r.partition, r.key)
                    if k in got:
                        dups.append(k)
                    got[k] = r.offset
            if extra_until is None and len(got) >= want:
                extra_until = time.monotonic() + 1.0
        ends = {tp.partition: o for tp, o in cons.end_offsets(tps, timeout_ms=TIMEOUT_MS).items()}
        positions = {tp.partition: cons.position(tp) for tp in tps}
        return got, dups, positions, ends
    finally:
        cons.close()


def poll_group(cons, want):
    """Reads `want` records with the group's consumer; [(partition, offset, key)] and
    {TopicPartition: next offset} of what was read."""
    reads, positions = [], {}
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while len(reads) < want and time.monotonic() < deadline:
        for tp, recs in cons.poll(timeout_ms=200, max_records=want - len(reads)).items():
            for r in recs:
                reads.append((r.partition, r.offset, r.key))
                positions[tp] = r.offset + 1
    return reads, positions


def outputs_of(reads, topic, tag):
    return [(topic, p, f"{tag}-{k.decode()}".encode(), f"{tag}: {off}".encode()) for p, off, k in reads]


def run_read_process_write(c, admin):
    suffix = uuid.uuid4().hex[:8]
    inp, out, group = f"kp-txn-in-{suffix}", f"kp-txn-out-{suffix}", f"kp-txn-group-{suffix}"
    create_topics(c, admin, [inp, out])
    plain = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    send_all(plain, [(inp, i % N_PARTITIONS, f"in-{i:03d}".encode(), f"input {i}".encode())
                     for i in range(N_INPUT)])
    plain.close(timeout=10)

    cons = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", isolation_level="read_committed",
                         request_timeout_ms=TIMEOUT_MS + 5000)
    cons.subscribe([inp])
    producer = txn_producer(f"kp-txn-{suffix}")
    try:
        t0 = time.monotonic()
        producer.init_transactions()
        c.ok(True, f"KafkaProducer(transactional_id=...).init_transactions() ({time.monotonic() - t0:.2f}s)")

        first, pos1 = poll_group(cons, N_INPUT // 2)
        producer.begin_transaction()
        delivered1 = send_all(producer, outputs_of(first, out, "t1"))
        offsets1 = {tp: OffsetAndMetadata(o, "", -1) for tp, o in pos1.items()}
        producer.send_offsets_to_transaction(offsets1, cons.group_metadata())
        producer.commit_transaction()
        want1 = {tp.partition: o for tp, o in pos1.items()}
        c.ok(len(first) == N_INPUT // 2 and len(delivered1) == len(first),
             f"transaction 1: {len(delivered1)} records, send_offsets_to_transaction({want1}), "
             f"commit_transaction()")
        c.eq({tp.partition: cons.committed(tp) for tp in pos1}, want1,
             "after the commit, KafkaConsumer.committed() == the offsets sent with the transaction")

        second, pos2 = poll_group(cons, N_INPUT - len(first))
        producer.begin_transaction()
        delivered2 = send_all(producer, outputs_of(second, out, "t2"))
        offsets2 = {tp: OffsetAndMetadata(o, "", -1) for tp, o in pos2.items()}
        producer.send_offsets_to_transaction(offsets2, cons.group_metadata())
        producer.abort_transaction()
        c.ok(len(delivered2) == len(second),
             f"transaction 2: {len(delivered2)} records, send_offsets_to_transaction, abort_transaction()")
        c.eq({tp.partition: cons.committed(tp) for tp in pos1}, want1,
             "after the abort, KafkaConsumer.committed() is still transaction 1's offsets")
    finally:
        cons.close(autocommit=False)
        producer.close(timeout=10)

    problems, hw, layout = [], {}, {}
    for p in range(N_PARTITIONS):
        o1 = sorted(o for (_, pp, _), o in delivered1.items() if pp == p)
        o2 = sorted(o for (_, pp, _), o in delivered2.items() if pp == p)
        n1, n2 = len(o1), len(o2)
        if o1 != list(range(n1)) or o2 != list(range(n1 + 1, n1 + 1 + n2)):
            problems.append(f"partition {p}: transaction 1 at {o1}, transaction 2 at {o2}")
        hw[p] = n1 + n2 + 2
        layout[p] = [("DATA", n1), "COMMIT", ("DATA", n2), "ABORT"]
    c.ok(not problems, "acknowledged offsets: transaction 1 at 0..n1-1, its COMMIT marker at n1, "
                       "transaction 2 after it", "; ".join(problems))
    check_stored_transactions(c, "read-process-write", out, N_PARTITIONS, layout)

    got, dups, positions, ends = read_all(out, "read_committed", len(delivered1))
    c.ok(got == delivered1 and not dups,
         f"KafkaConsumer(isolation_level='read_committed') read exactly transaction 1's {len(delivered1)} records "
         f"at their offsets ({len(got)} read)",
         f"extra {sorted(set(got) - set(delivered1))[:3]}, missing {sorted(set(delivered1) - set(got))[:3]}, "
         f"duplicates {dups[:3]}")
    c.eq(ends, hw, "read_committed end_offsets() == high watermark (records + 2 markers; nothing open)")
    c.eq(positions, hw, "read_committed consumer's positions moved past the ABORT marker to the end")
    both = dict(delivered1, **delivered2)
    got, dups, _, ends = read_all(out, "read_uncommitted", len(both))
    c.ok(got == both and not dups,
         f"read_uncommitted consumer read both transactions' {len(both)} records and no control record",
         f"extra {sorted(set(got) - set(both))[:3]}, missing {sorted(set(both) - set(got))[:3]}")
    c.eq(ends, hw, "read_uncommitted end_offsets() == high watermark")
    admin.delete_topics([inp, out], timeout_ms=TIMEOUT_MS)


def run_fencing(c, admin):
    suffix = uuid.uuid4().hex[:8]
    topic, tid = f"kp-txn-fence-{suffix}", f"kp-txn-fence-{suffix}"
    create_topics(c, admin, [topic])
    p1 = txn_producer(tid)
    p1.init_transactions()
    p1.begin_transaction()
    send_all(p1, [(topic, i % N_PARTITIONS, f"zombie-{i}".encode(), b"from producer 1") for i in range(6)])
    p2 = txn_producer(tid)
    t0 = time.monotonic()
    p2.init_transactions()
    c.ok(True, f"fencing: producer 2 with the same transactional_id: init_transactions() "
               f"({time.monotonic() - t0:.2f}s)")
    raised = None
    try:
        p1.commit_transaction()
    except Errors.KafkaError as e:
        raised = e
    c.ok(isinstance(raised, (Errors.ProducerFencedError, Errors.InvalidProducerEpochError)),
         f"fencing: producer 1's commit_transaction() raised {type(raised).__name__}", f"{raised!r}")
    p1.close(timeout=5)
    p2.begin_transaction()
    delivered = send_all(p2, [(topic, i % N_PARTITIONS, f"fresh-{i}".encode(), b"from producer 2")
                              for i in range(6)])
    p2.commit_transaction()
    p2.close(timeout=10)
    got, _, _, _ = read_all(topic, "read_committed", 6)
    c.eq(sorted(k[2] for k in got), sorted(k[2] for k in delivered),
         "fencing: read_committed sees only producer 2's committed records")
    check_stored_transactions(c, "fencing", topic, N_PARTITIONS,
                              {p: [("DATA", 2), "ABORT", ("DATA", 2), "COMMIT"] for p in range(N_PARTITIONS)})
    admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)


def main():
    logging.basicConfig(level=logging.ERROR, format="    kafka-python %(levelname)s %(name)s: %(message)s")
    c = Checks("kafka-python transactions")
    print(f"kafka-python {kafka.__version__} transactions against {BOOTSTRAP}", flush=True)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=TIMEOUT_MS + 5000)
    try:
        for name, fn in (("read-process-write", run_read_process_write), ("fencing", run_fencing)):
            t0 = time.monotonic()
            try:
                fn(c, admin)
            except Exception:  # noqa: BLE001 - reported, then the next round runs
                c.crash(f"{name} round")
            print(f"  ({name} round took {time.monotonic() - t0:.2f}s)", flush=True)
    finally:
        admin.close()
    c.finish()


if __name__ == "__main__":
    main()
