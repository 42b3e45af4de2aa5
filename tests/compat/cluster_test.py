"""Cluster mode with stock clients, against three esker processes of this scenario's own (Kafka's
KRaft keys, every node `broker,controller`, each started with `esker -c <file>` on free loopback
ports, the files written like config/cluster/nodeN.properties):

  - `kcat -L -J -b <node 2>` lists the three brokers at their advertised addresses and names a
    controller among them;
  - confluent-kafka's AdminClient (bootstrapped from node 1) creates a 6-partition topic with
    replication factor 3 whose leaders are on all three brokers, three replicas and in-sync
    replicas per partition;
  - a confluent-kafka producer bootstrapped from node 1 (acks=all) writes keyed records to every
    partition, so it reaches every partition leader; a consumer group bootstrapped from node 3
    reads each record back once, at its acknowledged offset, with its key and value;
  - an ACL created through node 1 and a SCRAM user created through node 2 are seen through
    node 3 (they live in the metadata log);
  - all three nodes stopped with SIGTERM (each exits 0) and started again: the topic, the ACL and
    the SCRAM user are there on every node;
  - no node logs an ERROR while serving, and each exits 0 on SIGTERM.

The processes are killed in a finally block whatever happens. Every client call is bounded.
"""

import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                  AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                  ScramCredentialInfo, ScramMechanism,
                                  UserScramCredentialUpsertion)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_common import START_TIMEOUT_S, Cluster, kcat_metadata  # noqa: E402
from compat_common import Checks  # noqa: E402

PARTITIONS = 6
PER_PARTITION = 50
TIMEOUT_S = 30


def main():
    c = Checks("cluster_test")
    cluster = Cluster("esker-cluster-")
    nodes = cluster.nodes
    try:
        cluster.start()
        want_brokers = cluster.brokers()

        md = kcat_metadata(nodes[1].bootstrap)
        c.eq({b["id"]: b["name"] for b in md["brokers"]}, want_brokers,
             "kcat -L -b <node 2> lists the three brokers at their advertised addresses")
        c.ok(md.get("controllerid") in want_brokers, "kcat -L -b <node 2> names a node as controller",
             f"controllerid {md.get('controllerid')}")

        # A 6-partition topic with replication factor 3, created through node 1.
        topic = f"cluster-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap, "broker.address.family": "v4",
                             "log_level": 0})
        fut = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                                  operation_timeout=10, request_timeout=TIMEOUT_S)[topic]
        fut.result(timeout=TIMEOUT_S)
        c.ok(True, f"AdminClient created {topic} ({PARTITIONS} partitions, replication factor 3)")

        def led():
            t = admin.list_topics(topic, timeout=10).topics.get(topic)
            if t is None or t.error is not None or len(t.partitions) != PARTITIONS:
                return False, f"{topic}: {t and (t.error, len(t.partitions))}"
            parts = t.partitions.values()
            if any(p.leader < 0 for p in parts):
                return False, f"leaders {[p.leader for p in parts]}"
            return True, {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in parts}

        layout = cluster.wait_for(f"{topic} to have a leader per partition", TIMEOUT_S, led)
        leaders = {lead for lead, _, _ in layout.values()}
        c.eq(leaders, set(want_brokers), f"the leaders of {topic}'s partitions are on all three brokers")
        c.eq({p for p, (_, r, isr) in layout.items() if r == [1, 2, 3] and isr == [1, 2, 3]},
             set(range(PARTITIONS)), "every partition has replicas and ISR [1, 2, 3]")

        # Produce through node 1 to every partition (so to every leader), consume through node 3.
        acked, failed = {}, []

        def report(err, msg):
            if err is not None:
                failed.append(err)
            else:
                acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

        producer = Producer({"bootstrap.servers": nodes[0].bootstrap, "broker.address.family": "v4",
                             "acks": "all", "message.timeout.ms": TIMEOUT_S * 1000, "log_level": 0})
        n = PARTITIONS * PER_PARTITION
        for i in range(n):
            p = i % PARTITIONS
            producer.produce(topic, key=f"key-{i:04d}".encode(), value=f"value {i} for {p}".encode(),
                             partition=p, on_delivery=report)
            producer.poll(0)
        remaining = producer.flush(TIMEOUT_S)
        c.ok(len(acked) == n and not failed and remaining == 0,
             f"producer bootstrapped from node 1 (acks=all): {n} records acknowledged",
             f"{len(acked)} acknowledged, {len(failed)} failed ({failed[:3]}), {remaining} pending")
        c.eq({p for p, _ in acked}, set(range(PARTITIONS)),
             "records acknowledged on every partition (each by its leader, on all three brokers)")

        group = f"cluster-group-{uuid.uuid4().hex[:6]}"
        consumer = Consumer({"bootstrap.servers": nodes[2].bootstrap, "broker.address.family": "v4",
                             "group.id": group, "auto.offset.reset": "earliest", "log_level": 0})
        consumer.subscribe([topic])
        read, duplicates = {}, []
        deadline = time.monotonic() + 60
        try:
            while len(read) < len(acked) and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        print(f"    consumer error: {m.error()}")
                    continue
                k = (m.partition(), m.offset())
                if k in read:
                    duplicates.append(k)
                read[k] = (m.key(), m.value())
        finally:
            consumer.close()
        c.ok(read == acked and not duplicates,
             f"consumer group {group} bootstrapped from node 3 read all {len(acked)} records once, "
             "at their acknowledged offsets, with their keys and values",
             f"read {len(read)}, {len(duplicates)} twice, "
             f"{len(set(acked) - set(read))} missing, {sum(1 for k in read if read[k] != acked.get(k))} differ")

        # Cluster-wide security metadata: an ACL through node 1, a SCRAM user through node 2.
        acl = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
        for f in admin.create_acls([acl], request_timeout=TIMEOUT_S).values():
            f.result(timeout=TIMEOUT_S)
        admin2 = AdminClient({"bootstrap.servers": nodes[1].bootstrap, "broker.address.family": "v4",
                              "log_level": 0})
        user = "cluster-bob"
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret")
        for f in admin2.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT_S).values():
            f.result(timeout=TIMEOUT_S)
        acl_filter = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)

        def security_seen(node):
            a = AdminClient({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4",
                             "log_level": 0})
            acls = a.describe_acls(acl_filter, request_timeout=10).result(timeout=15)
            users = a.describe_user_scram_credentials([user], request_timeout=10)
            infos = users[user].result(timeout=15).scram_credential_infos
            mechanisms = [i.mechanism for i in infos]
            done = [str(b.principal) for b in acls] == ["User:alice"] and \
                mechanisms == [ScramMechanism.SCRAM_SHA_256]
            return done, f"acls {acls}, scram {mechanisms}"

        cluster.wait_for("node 3 to see the ACL and the SCRAM user", TIMEOUT_S,
                         lambda: security_seen(nodes[2]))
        c.ok(True, "an ACL created through node 1 and a SCRAM user created through node 2 are "
             "described by node 3")

        # Close the clients before the nodes go away (librdkafka would log the disconnections).
        del producer, admin, admin2
        serving_ended = {n.id: len(n.log_text()) for n in nodes}
        for n in nodes:
            errors = n.error_lines(serving_ended[n.id])
            c.ok(not errors, f"node {n.id} logged no ERROR while serving", "; ".join(errors[:5]))

        # Stop all three, start all three: the metadata is all there.
        for n in nodes:
            rc = n.terminate()
            c.eq(rc, 0, f"node {n.id}: SIGTERM -> exit 0 (before the full restart)")
            n.log.close()
        for n in nodes:
            n.start()
        cluster.wait_for("every node to list three brokers after the restart", START_TIMEOUT_S,
                         cluster.all_listed)
        for n in nodes:
            def kept(node=n):
                a = AdminClient({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4",
                                 "log_level": 0})
                t = a.list_topics(topic, timeout=10).topics.get(topic)
                if t is None or t.error is not None or len(t.partitions) != PARTITIONS:
                    return False, f"{topic}: {t and (t.error, len(t.partitions))}"
                return security_seen(node)

            cluster.wait_for(f"node {n.id} to have the topic, ACL and user back", TIMEOUT_S, kept)
            c.ok(True, f"after a full restart node {n.id} has {topic} ({PARTITIONS} partitions), "
                 "the ACL and the SCRAM user")
    except Exception:  # noqa: BLE001 - any failure is a failed check, then the nodes stop
        c.crash("cluster scenario")
    finally:
        cluster.shutdown(c)
    c.finish()


if __name__ == "__main__":
    main()
