"""confluent-kafka's AdminClient (librdkafka) against the broker at $BOOTSTRAP.

- Topic configs: create_topics with validate_only (nothing created) and with configs; the
  refusals (unknown key and bad value: INVALID_CONFIG naming the key; replication factor 3:
  INVALID_REPLICATION_FACTOR; an existing topic; an illegal name); describe_configs of the topic
  (value, source, is_default and synonyms, for keys set on the topic, inherited from a static
  broker setting and left at the default) and of the broker; max.message.bytes enforced
  (MSG_SIZE_TOO_LARGE, nothing written) until incremental_alter_configs raises it;
  incremental_alter_configs SET / DELETE / APPEND / SUBTRACT each visible in describe_configs,
  and a request with one bad key changes nothing; message.timestamp.type=LogAppendTime honoured.
- create_partitions (validate_only, growing, shrinking refused), describe_topics, describe_cluster
  (cluster id and topic id as stored in the data directory).
- list_offsets and delete_records: the low watermark advances (never backwards), earliest and
  timestamp lookups answer the new start, a consumer positioned at 0 is reset to it.
- Consumer groups: list_consumer_groups (states and types filters), describe_consumer_groups
  (classic and KIP-848 groups: state, type, assignor, members and assignments),
  list_consumer_group_offsets, alter_consumer_group_offsets (refused while the group has
  members; then a consumer resumes from the altered offsets), delete_consumer_groups (refused
  while non-empty, GROUP_ID_NOT_FOUND for an unknown group)."""

import os
import time
import uuid

import confluent_kafka
from confluent_kafka import (
    OFFSET_END, Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType,
    KafkaError, KafkaException, Producer, TopicCollection, TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions, NewTopic,
    OffsetSpec, ResourceType,
)

from compat_common import BOOTSTRAP, Checks

TIMEOUT = 15
# run.sh starts the broker with log.retention.bytes set (a static broker config that topics
# inherit); against another broker this check is skipped.
STATIC_RETENTION_BYTES = os.environ.get("COMPAT_LOG_RETENTION_BYTES")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(fn):
    """Runs fn(); returns the KafkaError it raised (None when it succeeded)."""
    try:
        fn()
        return None
    except KafkaException as e:
        return e.args[0]


def err_name(e):
    return None if e is None else e.name()


def topic_configs(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)


def entry_view(e):
    """(value, source name, is_default, [(synonym, value, source name)])."""
    syn = [(s.name, s.value, ConfigSource(s.source).name) for s in (e.synonyms or {}).values()]
    return (e.value, ConfigSource(e.source).name, e.is_default, syn)


def create(admin, topic, partitions=3, config=None):
    futs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
                               operation_timeout=10, request_timeout=TIMEOUT)
    futs[topic].result(timeout=TIMEOUT)


def produce(topic, items, **conf):
    """items: [(partition, key, value)]; returns ([(partition, offset, ts_type, ts)], [errors])."""
    acked, errors = [], []

    def cb(err, m):
        if err is not None:
            errors.append(err)
        else:
            acked.append((m.partition(), m.offset()) + m.timestamp())

    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, **conf})
    for part, key, value in items:
        p.produce(topic, key=key, value=value, partition=part, on_delivery=cb)
    left = p.flush(TIMEOUT)
    if left:
        errors.append(f"{left} message(s) not delivered")
    return acked, errors


def consume_assigned(tps, want, conf=None, deadline_s=20):
    """assign() from the given offsets; [(partition, offset, key)] until `want` records or EOF
    on every partition."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": name("ca-unused"), "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest", **(conf or {})})
    reads, eof = [], set()
    try:
        c.assign(tps)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and (len(reads) < want or len(eof) < len(tps)):
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            reads.append((m.partition(), m.offset(), m.key()))
    finally:
        c.close()
    return reads


# ---------------------------------------------------------------------------------------------
def check_topic_configs(c, admin):
    # validate_only creates nothing.
    t_vo = name("ca-validate")
    err = error_of(lambda: admin.create_topics([NewTopic(t_vo, 2, 1, config={"retention.ms": "1000"})],
                                               validate_only=True, request_timeout=TIMEOUT)[t_vo].result(timeout=TIMEOUT))
    c.ok(err is None and t_vo not in admin.list_topics(timeout=TIMEOUT).topics,
         "create_topics(validate_only=True): accepted, and no topic was created", f"error {err}")

    # Refusals.
    t_bad = name("ca-bad")
    for desc, nt, want_code, want_text in [
        ("unknown config key", NewTopic(t_bad, 1, 1, config={"no.such.key": "1"}), "INVALID_CONFIG", "no.such.key"),
        ("non-numeric retention.ms", NewTopic(t_bad, 1, 1, config={"retention.ms": "soon"}), "INVALID_CONFIG",
         "retention.ms"),
        ("replication factor 3 on one broker", NewTopic(t_bad, 1, 3), "INVALID_REPLICATION_FACTOR", ""),
        # Kafka's INVALID_TOPIC_EXCEPTION (17), which librdkafka names TOPIC_EXCEPTION.
        ("illegal topic name", NewTopic("bad/name", 1, 1), "TOPIC_EXCEPTION", "bad/name"),
    ]:
        topic = nt.topic
        err = error_of(lambda: admin.create_topics([nt], request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT))
        c.ok(err_name(err) == want_code and want_text in (err.str() if err else ""),
             f"create_topics with {desc} refused: {err_name(err)} ({err.str() if err else ''})",
             f"expected {want_code} naming {want_text!r}")
    c.ok(t_bad not in admin.list_topics(timeout=TIMEOUT).topics, "no refused topic was created")

    # A topic with configs.
    topic = name("ca-configs")
    create(admin, topic, 1, {"retention.ms": "86400000", "max.message.bytes": "2000", "cleanup.policy": "delete",
                             "message.timestamp.type": "LogAppendTime"})
    err = error_of(lambda: create(admin, topic, 1))
    c.eq(err_name(err), "TOPIC_ALREADY_EXISTS", "create_topics of an existing topic: TOPIC_ALREADY_EXISTS")
    cfg = topic_configs(admin, topic)
    c.eq(entry_view(cfg["retention.ms"]),
         ("86400000", "DYNAMIC_TOPIC_CONFIG", False,
          [("retention.ms", "86400000", "DYNAMIC_TOPIC_CONFIG"), ("log.retention.ms", "604800000", "DEFAULT_CONFIG")]),
         "describe_configs: retention.ms set at creation (DYNAMIC_TOPIC_CONFIG, broker default as synonym)")
    c.eq(entry_view(cfg["max.message.bytes"]),
         ("2000", "DYNAMIC_TOPIC_CONFIG", False,
          [("max.message.bytes", "2000", "DYNAMIC_TOPIC_CONFIG"), ("message.max.bytes", "1048588", "DEFAULT_CONFIG")]),
         "describe_configs: max.message.bytes set at creation, message.max.bytes as synonym")
    c.eq((cfg["cleanup.policy"].value, ConfigSource(cfg["cleanup.policy"].source).name),
         ("delete", "DYNAMIC_TOPIC_CONFIG"), "describe_configs: cleanup.policy=delete (DYNAMIC_TOPIC_CONFIG)")
    c.eq((cfg["message.timestamp.type"].value, ConfigSource(cfg["message.timestamp.type"].source).name),
         ("LogAppendTime", "DYNAMIC_TOPIC_CONFIG"), "describe_configs: message.timestamp.type=LogAppendTime")
    c.eq(entry_view(cfg["segment.bytes"]),
         ("1073741824", "DEFAULT_CONFIG", True, [("log.segment.bytes", "1073741824", "DEFAULT_CONFIG")]),
         "describe_configs: segment.bytes left at the default (DEFAULT_CONFIG, is_default)")
    if STATIC_RETENTION_BYTES:
        c.eq(entry_view(cfg["retention.bytes"]),
             (STATIC_RETENTION_BYTES, "STATIC_BROKER_CONFIG", False,
              [("log.retention.bytes", STATIC_RETENTION_BYTES, "STATIC_BROKER_CONFIG")]),
             "describe_configs: retention.bytes inherited from the broker's log.retention.bytes (STATIC_BROKER_CONFIG)")
    c.ok(all(not e.is_read_only and not e.is_sensitive for e in cfg.values()),
         f"describe_configs: {len(cfg)} topic configs, none read-only or sensitive")

    # Broker configs.
    res = ConfigResource(ResourceType.BROKER, "0")
    bcfg = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    want = {"num.partitions": ("1", "STATIC_BROKER_CONFIG"), "message.max.bytes": ("1048588", "DEFAULT_CONFIG"),
            "listeners": (f"PLAINTEXT://{BOOTSTRAP}", "STATIC_BROKER_CONFIG")}
    if STATIC_RETENTION_BYTES:
        want["log.retention.bytes"] = (STATIC_RETENTION_BYTES, "STATIC_BROKER_CONFIG")
    got = {k: (bcfg[k].value, ConfigSource(bcfg[k].source).name) if k in bcfg else None for k in want}
    c.eq(got, want, f"describe_configs(BROKER 0): {len(bcfg)} entries; static settings and defaults with their sources")

    # Dynamic broker configs: SET a broker default, seen by the broker and inherited by the topic
    # (DYNAMIC_BROKER_CONFIG); a static-only key is refused; DELETE restores the default.
    def balter(*entries):
        r = ConfigResource(ResourceType.BROKER, "0", incremental_configs=list(entries))
        return admin.incremental_alter_configs([r], request_timeout=TIMEOUT)[r].result(timeout=TIMEOUT)
    balter(ConfigEntry("log.roll.ms", "86400000", incremental_operation=AlterConfigOpType.SET))
    bcfg = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    tcfg = topic_configs(admin, topic)
    c.eq(((bcfg["log.roll.ms"].value, ConfigSource(bcfg["log.roll.ms"].source).name),
          (tcfg["segment.ms"].value, ConfigSource(tcfg["segment.ms"].source).name)),
         (("86400000", "DYNAMIC_BROKER_CONFIG"), ("86400000", "DYNAMIC_BROKER_CONFIG")),
         "incremental_alter_configs(BROKER 0) SET log.roll.ms: dynamic on the broker, inherited as segment.ms")
    err = error_of(lambda: balter(ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)))
    # Kafka answers a key that is not dynamic with INVALID_REQUEST ("Cannot update these
    # configs dynamically").
    c.ok(err_name(err) == "INVALID_REQUEST" and "num.partitions" in (err.str() if err else ""),
         f"a static-only broker key is refused: {err_name(err)} ({err.str() if err else ''})")
    balter(ConfigEntry("log.roll.ms", "", incremental_operation=AlterConfigOpType.DELETE))
    bcfg = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    c.eq(ConfigSource(bcfg["log.roll.ms"].source).name, "DEFAULT_CONFIG",
         "incremental_alter_configs(BROKER 0) DELETE log.roll.ms: back to the default")

    # max.message.bytes is enforced, then raised.
    big = b"x" * 3000
    acked, errors = produce(topic, [(0, b"big", big)])
    codes = [e.name() if isinstance(e, KafkaError) else str(e) for e in errors]
    c.eq((acked, codes), ([], ["MSG_SIZE_TOO_LARGE"]),
         "a 3000-byte message to a topic with max.message.bytes=2000 fails with MSG_SIZE_TOO_LARGE")
    tp0 = TopicPartition(topic, 0)
    latest = admin.list_offsets({tp0: OffsetSpec.latest()}, request_timeout=TIMEOUT)[tp0].result(timeout=TIMEOUT)
    c.eq(latest.offset, 0, "nothing was written by the refused produce (latest offset 0)")

    def alter(*entries):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
        return admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)

    alter(ConfigEntry("max.message.bytes", "10000", incremental_operation=AlterConfigOpType.SET))
    t0 = now_ms()
    acked, errors = produce(topic, [(0, b"big", big)])
    t1 = now_ms()
    c.ok(not errors and [a[:2] for a in acked] == [(0, 0)],
         "incremental_alter_configs SET max.message.bytes=10000: the same message is now accepted at offset 0",
         f"acked {acked}, errors {errors}")
    c.ok(acked and acked[0][2] == confluent_kafka.TIMESTAMP_LOG_APPEND_TIME and t0 - 5 <= acked[0][3] <= t1 + 5,
         "message.timestamp.type=LogAppendTime: the delivery report carries the broker's append time",
         f"acked {acked}, produced between {t0} and {t1}")
    got = consume_assigned([TopicPartition(topic, 0, 0)], 1)
    c.eq([r[:2] for r in got], [(0, 0)], "the big message reads back")

    # SET / DELETE / APPEND / SUBTRACT.
    alter(ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
          ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    cfg = topic_configs(admin, topic)
    view = {k: (cfg[k].value, ConfigSource(cfg[k].source).name)
            for k in ("retention.ms", "max.message.bytes", "cleanup.policy", "message.timestamp.type")}
    c.eq(view, {"retention.ms": ("3600000", "DYNAMIC_TOPIC_CONFIG"),
                "max.message.bytes": ("1048588", "DEFAULT_CONFIG"),
                "cleanup.policy": ("delete,compact", "DYNAMIC_TOPIC_CONFIG"),
                "message.timestamp.type": ("LogAppendTime", "DYNAMIC_TOPIC_CONFIG")},
         "incremental_alter_configs SET retention.ms, DELETE max.message.bytes (back to the default), "
         "APPEND cleanup.policy; untouched keys kept")
    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    cfg = topic_configs(admin, topic)
    c.eq((cfg["cleanup.policy"].value, ConfigSource(cfg["cleanup.policy"].source).name),
         ("compact", "DYNAMIC_TOPIC_CONFIG"), "incremental_alter_configs SUBTRACT cleanup.policy delete -> compact")
    err = error_of(lambda: alter(
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET)))
    cfg = topic_configs(admin, topic)
    c.ok(err_name(err) == "INVALID_CONFIG" and "no.such.key" in err.str() and cfg["retention.ms"].value == "3600000",
         f"incremental_alter_configs with an unknown key refused ({err_name(err)}: {err.str() if err else ''}); "
         f"nothing changed (retention.ms {cfg['retention.ms'].value})")
    err = error_of(lambda: alter(ConfigEntry("retention.ms", "-5", incremental_operation=AlterConfigOpType.SET)))
    c.ok(err_name(err) == "INVALID_CONFIG" and "retention.ms" in (err.str() if err else ""),
         f"incremental_alter_configs retention.ms=-5 refused: {err_name(err)} ({err.str() if err else ''})")
    delete_topic(admin, topic)


def now_ms():
    return time.time_ns() // 1_000_000


def delete_topic(admin, topic):
    admin.delete_topics([topic], operation_timeout=10, request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)


# ---------------------------------------------------------------------------------------------
def check_partitions_and_cluster(c, admin):
    topic = name("ca-parts")
    create(admin, topic, 3)
    admin.create_partitions([NewPartitions(topic, 5)], validate_only=True,
                            request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    n = len(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
    c.eq(n, 3, "create_partitions(5, validate_only=True): still 3 partitions")
    admin.create_partitions([NewPartitions(topic, 5)], request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    d = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    parts = [(p.id, p.leader.id, [r.id for r in p.replicas], [r.id for r in p.isr]) for p in d.partitions]
    c.eq(parts, [(i, 0, [0], [0]) for i in range(5)],
         "create_partitions(5): describe_topics lists partitions 0..4, each led by 0 with replicas/isr [0]")
    acked, errors = produce(topic, [(4, b"k4", b"on the new partition")])
    got = consume_assigned([TopicPartition(topic, 4, 0)], 1)
    c.ok(not errors and [a[:2] for a in acked] == [(4, 0)] and got == [(4, 0, b"k4")],
         "a message produced to the new partition 4 is acknowledged at offset 0 and reads back",
         f"acked {acked}, errors {errors}, read {got}")
    err = error_of(lambda: admin.create_partitions([NewPartitions(topic, 4)],
                                                   request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT))
    c.eq(err_name(err), "INVALID_PARTITIONS", "create_partitions to fewer partitions: INVALID_PARTITIONS")

    data_dir = os.environ.get("ESKER_DATA_DIR")
    cl = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    host, port = BOOTSTRAP.rsplit(":", 1)
    c.eq((cl.controller.id, [(n.id, n.host, n.port) for n in cl.nodes]), (0, [(0, host, int(port))]),
         f"describe_cluster: controller 0, nodes [0 at {BOOTSTRAP}]")
    if data_dir:
        props = dict(line.strip().split("=", 1) for line in open(os.path.join(data_dir, "meta.properties"))
                     if "=" in line and not line.startswith("#"))
        c.eq(cl.cluster_id, props.get("cluster.id"), "describe_cluster: cluster id == cluster.id of meta.properties")
        meta = dict(line.strip().split(": ", 1) for line in open(os.path.join(data_dir, f"{topic}-0", "partition.metadata"))
                    if ": " in line)
        # Kafka stores topic ids in URL-safe base64; librdkafka prints them in standard base64.
        c.eq(str(d.topic_id), meta.get("topic_id", "").replace("-", "+").replace("_", "/"),
             "describe_topics: topic id == the one in partition.metadata")
    delete_topic(admin, topic)


# ---------------------------------------------------------------------------------------------
def check_records(c, admin):
    topic = name("ca-records")
    create(admin, topic, 3)
    base_ts = now_ms() - 60_000
    items = [(p, f"r{p}-{i:02d}".encode(), b"v") for p in range(3) for i in range(30)]
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, "batch.num.messages": 7})
    for i, (part, key, value) in enumerate(items):
        p.produce(topic, key=key, value=value, partition=part, timestamp=base_ts + (i % 30) * 10)
    c.eq(p.flush(TIMEOUT), 0, "produced 30 messages into each of 3 partitions (several batches each)")

    def offsets(spec):
        futs = admin.list_offsets({TopicPartition(topic, q): spec for q in range(3)}, request_timeout=TIMEOUT)
        return {tp.partition: f.result(timeout=TIMEOUT).offset for tp, f in futs.items()}

    c.eq((offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())),
         ({0: 0, 1: 0, 2: 0}, {0: 30, 1: 30, 2: 30}), "list_offsets before delete_records: earliest 0, latest 30")

    def delete(tps):
        futs = admin.delete_records(tps, request_timeout=TIMEOUT, operation_timeout=10)
        out = {}
        for tp, f in futs.items():
            try:
                out[tp.partition] = f.result(timeout=TIMEOUT).low_watermark
            except KafkaException as e:
                out[tp.partition] = e.args[0].name()
        return out

    c.eq(delete([TopicPartition(topic, 0, 10), TopicPartition(topic, 1, OFFSET_END), TopicPartition(topic, 2, 31)]),
         {0: 10, 1: 30, 2: "OFFSET_OUT_OF_RANGE"},
         "delete_records: before 10 -> low watermark 10; before OFFSET_END -> 30 (high watermark); "
         "beyond the end -> OFFSET_OUT_OF_RANGE")
    c.eq((offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())),
         ({0: 10, 1: 30, 2: 0}, {0: 30, 1: 30, 2: 30}), "list_offsets after: earliest is the new start, latest unchanged")
    c.eq(delete([TopicPartition(topic, 0, 5)]), {0: 10}, "delete_records before 5 on a log starting at 10: "
                                                        "low watermark stays 10 (never moves back)")
    c.eq(offsets(OffsetSpec.for_timestamp(base_ts - 1000)), {0: 10, 1: -1, 2: 0},
         "list_offsets(for_timestamp before every record): the new start (none left on partition 1)")
    reads = consume_assigned([TopicPartition(topic, q, 0) for q in range(3)], 50)
    got = {q: [off for part, off, _ in reads if part == q] for q in range(3)}
    c.eq(got, {0: list(range(10, 30)), 1: [], 2: list(range(30))},
         "a consumer assigned at offset 0 (auto.offset.reset=earliest) is reset to the new start: "
         "partition 0 reads 10..29, partition 1 nothing, partition 2 0..29")
    keys_ok = all(k == f"r{part}-{off:02d}".encode() for part, off, k in reads)
    c.ok(keys_ok, "every record read after delete_records is the one produced at its offset")
    delete_topic(admin, topic)


# ---------------------------------------------------------------------------------------------
def check_groups(c, admin):
    topic = name("ca-groups")
    create(admin, topic, 3)
    items = [(p, f"g{p}-{i:02d}".encode(), b"v") for p in range(3) for i in range(30)]
    acked, errors = produce(topic, items)
    c.ok(not errors and len(acked) == 90, "produced 30 messages into each of 3 partitions")

    group = name("ca-group")
    client_id = "compat-admin-member"
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "client.id": client_id,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "partition.assignment.strategy": "range"})
    try:
        cons.subscribe([topic])
        n = 0
        deadline = time.monotonic() + 30
        while n < 90 and time.monotonic() < deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                n += 1
        cons.commit(asynchronous=False)
        c.eq(n, 90, f"a consumer of {group} (range) read all 90 and committed")

        # While the member is there.
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
        mine = [(g.group_id, g.state, g.type, g.is_simple_consumer_group) for g in listed.valid if g.group_id == group]
        c.eq((mine, listed.errors), ([(group, ConsumerGroupState.STABLE, ConsumerGroupType.CLASSIC, False)], []),
             "list_consumer_groups: the group is listed Stable, classic, not simple")
        stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}, request_timeout=TIMEOUT).result()
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}, request_timeout=TIMEOUT).result()
        c.ok(group in {g.group_id for g in stable.valid} and group not in {g.group_id for g in empty.valid}
             and all(g.state == ConsumerGroupState.EMPTY for g in empty.valid),
             "list_consumer_groups(states=...): in the STABLE list, not in the EMPTY one (which lists only empty groups)")
        d = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
        members = [(m.client_id, m.host, m.group_instance_id,
                    sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)) for m in d.members]
        c.eq((d.group_id, d.state, d.type, d.partition_assignor, d.is_simple_consumer_group, d.coordinator.id, members),
             (group, ConsumerGroupState.STABLE, ConsumerGroupType.CLASSIC, "range", False, 0,
              [(client_id, "/127.0.0.1", None, [(topic, 0), (topic, 1), (topic, 2)])]),
             "describe_consumer_groups: Stable, classic, assignor range, one member (client id, host) assigned all 3 partitions")
        err = error_of(lambda: admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT))
        c.eq(err_name(err), "NON_EMPTY_GROUP", "delete_consumer_groups of a group with a member: NON_EMPTY_GROUP")
        res = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])],
                                                 request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
        c.eq([err_name(tp.error) for tp in res.topic_partitions], ["UNKNOWN_MEMBER_ID"],
             "alter_consumer_group_offsets while the group has a member: UNKNOWN_MEMBER_ID (as Kafka)")
    finally:
        cons.close()

    def group_offsets(partitions=None):
        req = ConsumerGroupTopicPartitions(group, partitions)
        res = admin.list_consumer_group_offsets([req], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
        return {tp.partition: tp.offset for tp in res.topic_partitions if tp.error is None and tp.offset >= 0}

    c.eq(group_offsets(), {0: 30, 1: 30, 2: 30}, "list_consumer_group_offsets: the committed end offsets")
    d = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    c.eq((d.state, len(d.members)), (ConsumerGroupState.EMPTY, 0), "after close: describe_consumer_groups Empty, no members")
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}, request_timeout=TIMEOUT).result()
    c.ok(group in {g.group_id for g in empty.valid}, "after close: listed with states={EMPTY}")

    res = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 12)])],
        request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    c.eq([(tp.partition, tp.offset, tp.error) for tp in res.topic_partitions], [(0, 5, None), (1, 12, None)],
         "alter_consumer_group_offsets of the empty group: partition 0 -> 5, 1 -> 12")
    c.eq(group_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)]), {0: 5, 1: 12},
         "list_consumer_group_offsets for the two partitions: the altered offsets")
    c.eq(group_offsets(), {0: 5, 1: 12, 2: 30}, "list_consumer_group_offsets for all: partition 2 untouched")
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    reads = []
    try:
        cons.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(reads) < 43 and time.monotonic() < deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                reads.append((m.partition(), m.offset()))
        more = cons.poll(1.0)
        if more is not None and not more.error():
            reads.append((more.partition(), more.offset()))
    finally:
        cons.close()
    got = {q: [o for p, o in reads if p == q] for q in range(3)}
    c.eq(got, {0: list(range(5, 30)), 1: list(range(12, 30)), 2: []},
         "a new member of the group resumes at the altered offsets (0 from 5, 1 from 12, nothing on 2)")

    admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    d = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    c.ok(group not in {g.group_id for g in listed.valid} and group_offsets() == {}
         and d.state == ConsumerGroupState.DEAD and not d.members,
         "delete_consumer_groups: the group is no longer listed, has no offsets, describes as Dead",
         f"listed {group in {g.group_id for g in listed.valid}}, offsets {group_offsets()}, state {d.state}")
    missing = name("ca-no-such-group")
    err = error_of(lambda: admin.delete_consumer_groups([missing], request_timeout=TIMEOUT)[missing].result(timeout=TIMEOUT))
    c.eq(err_name(err), "GROUP_ID_NOT_FOUND", "delete_consumer_groups of an unknown group: GROUP_ID_NOT_FOUND")

    # A KIP-848 group. Its member commits before leaving: esker currently drops a consumer-protocol
    # group without committed offsets as soon as its last member leaves (DeleteGroups then answers
    # GROUP_ID_NOT_FOUND), where Kafka keeps it Empty until the next offsets-retention pass.
    group2 = name("ca-group848")
    cons = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group2, "group.protocol": "consumer",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        cons.subscribe([topic])
        deadline = time.monotonic() + 30
        n = 0
        while (len(cons.assignment()) < 3 or n < 90) and time.monotonic() < deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                n += 1
        cons.commit(asynchronous=False)
        d = admin.describe_consumer_groups([group2], request_timeout=TIMEOUT)[group2].result(timeout=TIMEOUT)
        members = [(sorted(tp.partition for tp in m.assignment.topic_partitions),
                    sorted(tp.partition for tp in m.target_assignment.topic_partitions) if m.target_assignment else None)
                   for m in d.members]
        c.eq((d.state, d.type, d.partition_assignor, members),
             (ConsumerGroupState.STABLE, ConsumerGroupType.CONSUMER, "uniform", [([0, 1, 2], [0, 1, 2])]),
             "describe_consumer_groups of a group.protocol=consumer group: Stable, type CONSUMER, assignor uniform, "
             "member assignment == target assignment == all 3 partitions")
        by_type = {t: {g.group_id for g in admin.list_consumer_groups(types={t}, request_timeout=TIMEOUT).result().valid}
                   for t in (ConsumerGroupType.CONSUMER, ConsumerGroupType.CLASSIC)}
        c.ok(group2 in by_type[ConsumerGroupType.CONSUMER] and group2 not in by_type[ConsumerGroupType.CLASSIC],
             "list_consumer_groups(types=...): listed as CONSUMER, not as CLASSIC")
    finally:
        cons.close()
    d = admin.describe_consumer_groups([group2], request_timeout=TIMEOUT)[group2].result(timeout=TIMEOUT)
    req = ConsumerGroupTopicPartitions(group2)
    offs = admin.list_consumer_group_offsets([req], request_timeout=TIMEOUT)[group2].result(timeout=TIMEOUT)
    c.eq((n, d.state, d.type, len(d.members), sorted((tp.partition, tp.offset) for tp in offs.topic_partitions)),
         (90, ConsumerGroupState.EMPTY, ConsumerGroupType.CONSUMER, 0, [(0, 30), (1, 30), (2, 30)]),
         "the group.protocol=consumer member read all 90, committed and left: Empty, type CONSUMER, offsets kept")
    err = error_of(lambda: admin.delete_consumer_groups([group2], request_timeout=TIMEOUT)[group2].result(timeout=TIMEOUT))
    c.eq(err_name(err), None, "delete_consumer_groups of the empty consumer-protocol group")
    delete_topic(admin, topic)


def main():
    c = Checks("confluent-admin")
    print(f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}) "
          f"AdminClient against {BOOTSTRAP}", flush=True)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for label, fn in [("topic configs", check_topic_configs), ("partitions and cluster", check_partitions_and_cluster),
                      ("list_offsets and delete_records", check_records), ("consumer groups", check_groups)]:
        t0 = time.monotonic()
        try:
            fn(c, admin)
        except Exception:  # noqa: BLE001 - reported, then the next section runs
            c.crash(label)
        print(f"  ({label} took {time.monotonic() - t0:.2f}s)", flush=True)
    c.finish()


if __name__ == "__main__":
    main()
