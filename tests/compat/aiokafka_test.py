"""aiokafka (asyncio, its own protocol implementation) against the broker at $BOOTSTRAP.

Create a 3-partition topic with AIOKafkaAdminClient; produce 300 keyed messages with
AIOKafkaProducer (enable_idempotence=True, acks=all, lz4): every send acknowledged, the stored
batches lz4-compressed and carrying the producer id with gap-free sequences. Then a consumer
group: a subscribed AIOKafkaConsumer (enable_auto_commit=False) reads half with getone(),
commits exactly what it read with commit({tp: offset}) and stops; a second consumer of the group
(auto-commit) resumes exactly at the committed offsets and reads the rest with getmany() (nothing
twice), and stopping it commits the end offsets (AIOKafkaAdminClient.list_consumer_group_offsets);
describe_consumer_groups / list_consumer_groups see the group Empty; the topic is deleted."""

import asyncio
import logging
import time
import uuid

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from compat_common import (
    BOOTSTRAP, N_PARTITIONS, Checks, check_group_resume, check_stored_codec, check_stored_producer,
    end_offsets_of, topic_name,
)

N_MESSAGES = 300
TIMEOUT_S = 15


async def create_topic(c, admin, topic):
    resp = await admin.create_topics([NewTopic(topic, num_partitions=N_PARTITIONS, replication_factor=1)])
    errors = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
    # Metadata may lag the creation by a moment on a real cluster; poll briefly.
    parts = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        desc = await admin.describe_topics([topic])
        parts = sorted(p["partition"] for d in desc for p in d["partitions"])
        if parts == list(range(N_PARTITIONS)):
            break
        await asyncio.sleep(0.1)
    c.ok(not errors and parts == list(range(N_PARTITIONS)),
         f"AIOKafkaAdminClient.create_topics({topic}, {N_PARTITIONS} partitions); described partitions {parts}",
         f"errors {errors}")


async def produce(c, topic):
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                         compression_type="lz4", linger_ms=5, max_batch_size=2048)
    await p.start()
    delivered, errors = {}, []
    t0 = time.monotonic()
    try:
        futures = []
        for i in range(N_MESSAGES):
            key = f"aio-{i:04d}".encode()
            futures.append((key, await p.send(topic, key=key, value=f"value {i}".encode())))
        for key, fut in futures:
            try:
                md = await asyncio.wait_for(fut, TIMEOUT_S)
                delivered[key] = (md.partition, md.offset)
            except Exception as e:  # noqa: BLE001 - reported as a check failure
                errors.append((key, repr(e)))
    finally:
        await p.stop()
    c.ok(not errors and len(delivered) == N_MESSAGES,
         f"AIOKafkaProducer(enable_idempotence=True, lz4): {len(delivered)} of {N_MESSAGES} acknowledged "
         f"({time.monotonic() - t0:.2f}s)", f"errors {errors[:5]}")
    counts = {}
    for part, off in delivered.values():
        counts.setdefault(part, []).append(off)
    c.ok(all(sorted(v) == list(range(len(v))) for v in counts.values()) and len(counts) == N_PARTITIONS,
         f"acknowledged offsets are 0..count-1 on each partition {({k: len(v) for k, v in sorted(counts.items())})}")
    check_stored_codec(c, "lz4", topic, N_MESSAGES)
    check_stored_producer(c, "aiokafka", topic, N_PARTITIONS, idempotent=True)
    return delivered


async def group_offsets(admin, group):
    res = await admin.list_consumer_group_offsets(group)
    return {tp.partition: om.offset for tp, om in res.items()}


async def run_group(c, admin, topic, delivered):
    group = f"aio-group-{uuid.uuid4().hex[:8]}"
    half = N_MESSAGES // 2

    def consumer(**extra):
        return AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group,
                                auto_offset_reset="earliest", **extra)

    # First consumer: getone() until half, commit exactly what was read, stop.
    t0 = time.monotonic()
    cons = consumer(enable_auto_commit=False)
    await cons.start()
    first, positions = [], {}
    try:
        while len(first) < half:
            m = await asyncio.wait_for(cons.getone(), TIMEOUT_S)
            first.append((m.partition, m.offset, m.key))
            positions[TopicPartition(topic, m.partition)] = m.offset + 1
        assignment = sorted(tp.partition for tp in cons.assignment())
        await cons.commit(positions)
        committed_by_consumer = {tp.partition: await cons.committed(tp) for tp in positions}
    finally:
        await cons.stop()
    c.ok(len(first) == half and assignment == list(range(N_PARTITIONS))
         and committed_by_consumer == {tp.partition: off for tp, off in positions.items()},
         f"group: {group} joined, assigned {assignment}, getone() read {len(first)} "
         f"({time.monotonic() - t0:.2f}s); commit({{tp: offset}}) and committed() == {committed_by_consumer}")
    committed = await group_offsets(admin, group)
    [desc] = await admin.describe_consumer_groups([group])
    got = [(g[1], g[2], g[3], len(g[5])) for g in desc.groups]
    c.eq(got, [(group, "Empty", "consumer", 0)],
         "group: describe_consumer_groups after stop(): Empty, protocol type consumer, no members")
    listed = {g[0]: g[1] for g in await admin.list_consumer_groups()}
    c.eq(listed.get(group), "consumer", f"group: list_consumer_groups lists {group} (protocol type consumer)")

    # Second consumer: auto-commit, getmany() the rest, stop() commits.
    t1 = time.monotonic()
    cons = consumer(enable_auto_commit=True)
    await cons.start()
    second = []
    try:
        deadline = time.monotonic() + 30
        while len(second) < N_MESSAGES - half and time.monotonic() < deadline:
            for _, recs in (await cons.getmany(timeout_ms=200)).items():
                second.extend((r.partition, r.offset, r.key) for r in recs)
        for _, recs in (await cons.getmany(timeout_ms=1000)).items():  # nothing more may arrive
            second.extend((r.partition, r.offset, r.key) for r in recs)
    finally:
        await cons.stop()
    c.ok(True, f"group: second consumer read {len(second)} with getmany() ({time.monotonic() - t1:.2f}s)")
    check_group_resume(c, "group", delivered, first, committed, second)
    c.eq(await group_offsets(admin, group), end_offsets_of(delivered),
         "group: after the second consumer stopped (auto-commit) the group's offsets are the end offsets")


async def main_async(c):
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=TIMEOUT_S * 1000)
    await admin.start()
    try:
        topic = topic_name("aio", "lz4")
        await create_topic(c, admin, topic)
        delivered = await produce(c, topic)
        t0 = time.monotonic()
        try:
            await run_group(c, admin, topic, delivered)
        except Exception:  # noqa: BLE001 - reported as a failure
            c.crash("aiokafka consumer group round")
        print(f"  (consumer group round took {time.monotonic() - t0:.2f}s)", flush=True)
        await admin.delete_topics([topic])
        c.ok(topic not in await admin.list_topics(), "AIOKafkaAdminClient.delete_topics; topic gone")
    finally:
        await admin.close()


def main():
    logging.basicConfig(level=logging.WARNING, format="    aiokafka %(levelname)s %(name)s: %(message)s")
    c = Checks("aiokafka")
    print(f"aiokafka {aiokafka.__version__} against {BOOTSTRAP}", flush=True)
    try:
        asyncio.run(main_async(c))
    except Exception:  # noqa: BLE001 - reported as a failure
        c.crash("aiokafka scenario")
    c.finish()


if __name__ == "__main__":
    main()
