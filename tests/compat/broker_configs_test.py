"""Dynamic broker configs through confluent-kafka's AdminClient against the broker at $BOOTSTRAP.

- incremental_alter_configs on ConfigResource(BROKER, "0") (this broker); describe_configs
  reports each key's source (DYNAMIC_BROKER_CONFIG over STATIC_BROKER_CONFIG over
  DEFAULT_CONFIG) with every layer as a synonym; DELETE falls back to the static value;
  validate_only changes nothing.
- Refusals: a key Kafka changes at runtime but Esker does not (INVALID_CONFIG), a static key
  (INVALID_REQUEST), a bad value (INVALID_REQUEST).
- A per-broker message.max.bytes refuses a bigger message (MSG_SIZE_TOO_LARGE) until deleted.

The cluster-wide default (BROKER "") cannot be addressed from librdkafka, which refuses an
empty resource name client-side ("Invalid ConfigResource"), nor from kafka-python, which wants
an integer; tests/broker_configs.rs covers it with a protocol-level client.

Everything set is deleted again, so later scenarios see the broker as it started."""

import os
import uuid

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceType,
)

from compat_common import BOOTSTRAP, Checks

TIMEOUT = 15
# run.sh starts the broker with log.retention.bytes set (a static broker config).
STATIC_RETENTION_BYTES = os.environ.get("COMPAT_LOG_RETENTION_BYTES")
SET = AlterConfigOpType.SET
DELETE = AlterConfigOpType.DELETE


def alter(admin, name, *entries, validate_only=False):
    r = ConfigResource(ResourceType.BROKER, name, incremental_configs=list(entries))
    fut = admin.incremental_alter_configs([r], request_timeout=TIMEOUT, validate_only=validate_only)[r]
    return fut.result(timeout=TIMEOUT)


def error_of(fn):
    try:
        fn()
        return None
    except KafkaException as e:
        return e.args[0]


def describe(admin, name):
    r = ConfigResource(ResourceType.BROKER, name)
    return admin.describe_configs([r], request_timeout=TIMEOUT)[r].result(timeout=TIMEOUT)


def view(entry):
    """Value and source (confluent-kafka keeps synonyms in a dict by name, so the layers of one
    key collapse into its last, least specific, one)."""
    return (entry.value, ConfigSource(entry.source).name,
            [(s.name, s.value, ConfigSource(s.source).name) for s in entry.synonyms.values()])


def produce(topic, size):
    """Produces one message of `size` bytes; returns None or the delivery error's name."""
    p = Producer({"bootstrap.servers": BOOTSTRAP, "message.max.bytes": 1000000})
    out = []
    p.produce(topic, b"x" * size, on_delivery=lambda err, msg: out.append(err))
    p.flush(TIMEOUT)
    return None if not out or out[0] is None else out[0].name()


def main():
    c = Checks("broker_configs_test")
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    # A dynamic key that run.sh leaves at its default (it sets log.cleaner.backoff.ms).
    key = "log.cleaner.min.compaction.lag.ms"
    try:
        before = describe(admin, "0")[key]
        c.eq(ConfigSource(before.source).name, "DEFAULT_CONFIG", f"{key} starts at its default")

        alter(admin, "0", ConfigEntry(key, "40000", incremental_operation=SET))
        c.eq(view(describe(admin, "0")[key]),
             ("40000", "DYNAMIC_BROKER_CONFIG",
              [(key, "0", "DEFAULT_CONFIG")]),
             "SET on BROKER \"0\": the per-broker value wins over the default (its synonym)")
        entry = describe(admin, "0")[key]
        c.ok(not entry.is_read_only, f"{key} is not read-only")
        c.ok(describe(admin, "0")["num.partitions"].is_read_only, "num.partitions is read-only")

        if STATIC_RETENTION_BYTES:
            k = "log.retention.bytes"
            alter(admin, "0", ConfigEntry(k, "200000000000", incremental_operation=SET))
            c.eq(view(describe(admin, "0")[k]),
                 ("200000000000", "DYNAMIC_BROKER_CONFIG",
                  [(k, "-1", "DEFAULT_CONFIG")]),
                 "SET over a static value: DYNAMIC_BROKER_CONFIG")
            alter(admin, "0", ConfigEntry(k, None, incremental_operation=DELETE))
            c.eq(view(describe(admin, "0")[k])[:2], (STATIC_RETENTION_BYTES, "STATIC_BROKER_CONFIG"),
                 "DELETE falls back to the static value")

        alter(admin, "0", ConfigEntry(key, None, incremental_operation=DELETE))
        c.eq(view(describe(admin, "0")[key])[:2], ("0", "DEFAULT_CONFIG"), "DELETE falls back to the default")

        alter(admin, "0", ConfigEntry("log.segment.bytes", "2048", incremental_operation=SET), validate_only=True)
        c.eq(ConfigSource(describe(admin, "0")["log.segment.bytes"].source).name, "DEFAULT_CONFIG",
             "validate_only changes nothing")

        refusals = [
            ("num.io.threads", "8", "INVALID_CONFIG"),
            ("listeners", "PLAINTEXT://127.0.0.1:1", "INVALID_CONFIG"),
            ("num.partitions", "3", "INVALID_REQUEST"),
            ("log.retention.ms", "soon", "INVALID_REQUEST"),
        ]
        for k, v, want in refusals:
            err = error_of(lambda: alter(admin, "0", ConfigEntry(k, v, incremental_operation=SET)))
            c.ok(err is not None and err.name() == want and k in err.str(),
                 f"SET {k}={v} is refused with {want} naming the key",
                 f"got {err.name() if err else None}: {err.str() if err else ''}")

        # message.max.bytes takes effect on produce.
        topic = f"broker-cfg-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT)
        alter(admin, "0", ConfigEntry("message.max.bytes", "2000", incremental_operation=SET))
        c.eq(produce(topic, 3000), "MSG_SIZE_TOO_LARGE", "message.max.bytes=2000 refuses 3000 bytes")
        alter(admin, "0", ConfigEntry("message.max.bytes", None, incremental_operation=DELETE))
        c.eq(produce(topic, 3000), None, "deleted: the default accepts it")
        admin.delete_topics([topic])[topic].result(timeout=TIMEOUT)
    except Exception:  # noqa: BLE001 - recorded as a failed check
        c.crash("broker configs")
    finally:
        # Leave the broker as it started for the next scenarios.
        try:
            alter(admin, "0", *[ConfigEntry(k, None, incremental_operation=DELETE)
                                for k in (key, "message.max.bytes", "log.retention.bytes")])
        except Exception:  # noqa: BLE001
            c.crash("cleanup")
    c.eq([k for k, e in describe(admin, "0").items() if ConfigSource(e.source).name == "DYNAMIC_BROKER_CONFIG"],
         [], "cleanup: no dynamic broker config left")
    c.finish()


if __name__ == "__main__":
    main()
