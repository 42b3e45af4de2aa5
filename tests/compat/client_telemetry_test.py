"""Client telemetry (KIP-714) against the broker at $BOOTSTRAP, metrics at $METRICS_ENDPOINT.

kafka-python's KafkaAdminClient creates a client metrics resource (IncrementalAlterConfigs on
the CLIENT_METRICS resource type) that subscribes clients whose client.id matches to the
producer metrics every second; an invalid interval is refused; describe_configs reads the
resource back and list_config_resources lists it (ListConfigResources v1, alone and with the
topics and the broker). A confluent-kafka Producer (librdkafka) with that client.id then pushes
its metrics, which appear on /metrics as esker_client_metric series carrying its client id;
finally the resource is deleted (every key removed) and is no longer listed."""

import os
import time
import urllib.request
import uuid

from confluent_kafka import Producer
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from compat_common import BOOTSTRAP, Checks

METRICS = os.environ.get("METRICS_ENDPOINT", "http://127.0.0.1:9644")
PREFIX = "org.apache.kafka.producer."


def scrape():
    with urllib.request.urlopen(METRICS + "/metrics", timeout=10) as r:
        return r.read().decode()


def client_series(text, client_id):
    return [l for l in text.splitlines()
            if l.startswith("esker_client_metric{") and f'client_id="{client_id}"' in l]


def main():
    c = Checks("client_telemetry_test")
    tag = uuid.uuid4().hex[:8]
    name = f"compat-producers-{tag}"
    client_id = f"compat-telemetry-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id=f"compat-admin-{tag}")
    try:
        res = admin.alter_configs(
            [ConfigResource("CLIENT_METRICS", name,
                            {"metrics": PREFIX, "interval.ms": "1000", "match": f"client_id={client_id}"})],
            raise_on_unknown=False, incremental=True)
        c.eq(res.get("client_metrics", {}).get(name), "OK", "IncrementalAlterConfigs creates the resource")
        res = admin.alter_configs([ConfigResource("CLIENT_METRICS", f"bad-{tag}", {"interval.ms": "5"})],
                                  raise_on_unknown=False, incremental=True)
        c.ok("InvalidRequest" in str(res.get("client_metrics", {}).get(f"bad-{tag}")),
             "an interval below 100 ms is INVALID_REQUEST", repr(res))

        described = admin.describe_configs([ConfigResource("CLIENT_METRICS", name)])
        text = repr(described)
        c.ok(PREFIX in text and "1000" in text and f"client_id={client_id}" in text,
             "describe_configs reads the resource back", text)

        listed = admin.list_config_resources(["CLIENT_METRICS"])
        c.ok(name in listed.get("client_metrics", []), "list_config_resources(CLIENT_METRICS) lists it",
             repr(listed))
        c.ok(f"bad-{tag}" not in listed.get("client_metrics", []), "the refused resource was not created")
        everything = admin.list_config_resources()
        c.ok(name in everything.get("client_metrics", []) and everything.get("broker")
             and everything.get("topic") is not None, "list_config_resources() lists every type",
             repr(everything))

        producer = Producer({"bootstrap.servers": BOOTSTRAP, "client.id": client_id,
                             "broker.address.family": "v4"})
        delivered = []
        producer.produce(f"telemetry-{tag}", b"v", on_delivery=lambda err, _m: delivered.append(err))
        producer.flush(15)
        c.eq(delivered, [None], "the producer delivered a message")
        deadline = time.time() + 30
        series = []
        while time.time() < deadline:
            series = client_series(scrape(), client_id)
            if series:
                break
            producer.poll(0.2)
        c.ok(series, "the producer's pushed metrics appear on /metrics", f"none for {client_id}")
        c.ok(all(f'name="{PREFIX}' in l for l in series), "only the subscribed prefix is pushed",
             repr(series[:5]))
        c.ok(any('client_software_name="confluent-kafka-python"' in l or 'client_software_name="librdkafka"' in l
                 for l in series), "the series name the client software", repr(series[:2]))
        del producer

        res = admin.alter_configs(
            [ConfigResource("CLIENT_METRICS", name,
                            {"metrics": ("DELETE", None), "interval.ms": ("DELETE", None),
                             "match": ("DELETE", None)})],
            raise_on_unknown=False, incremental=True)
        c.eq(res.get("client_metrics", {}).get(name), "OK", "deleting every key is accepted")
        listed = admin.list_config_resources(["CLIENT_METRICS"])
        c.ok(name not in listed.get("client_metrics", []), "the resource is gone", repr(listed))
    except Exception:
        c.crash("client telemetry scenario")
    finally:
        admin.close()
    c.finish()


if __name__ == "__main__":
    main()
