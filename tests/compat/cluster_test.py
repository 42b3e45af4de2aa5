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

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                  AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                  ScramCredentialInfo, ScramMechanism,
                                  UserScramCredentialUpsertion)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat_common import Checks, broker_bin, free_port  # noqa: E402

N_NODES = 3
PARTITIONS = 6
PER_PARTITION = 50
START_TIMEOUT_S = 60
TIMEOUT_S = 30


class Node:
    """One esker process of the cluster, with its config file, data directory and log."""

    def __init__(self, node_id, kafka_port, controller_port, voters, work):
        self.id = node_id
        self.kafka_port = kafka_port
        self.dir = os.path.join(work, f"node-{node_id}")
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "server.properties")
        self.log_path = os.path.join(self.dir, "esker.log")
        with open(self.config, "w") as f:
            f.write(
                "process.roles=broker,controller\n"
                f"node.id={node_id}\n"
                f"listeners=PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}\n"
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{kafka_port}\n"
                "controller.listener.names=CONTROLLER\n"
                "inter.broker.listener.name=PLAINTEXT\n"
                f"controller.quorum.voters={voters}\n"
                f"log.dirs={os.path.join(self.dir, 'data')}\n"
                "kinesis.listener=\n"
                "metrics.listener=\n"
                "num.shards=2\n"
                "group.initial.rebalance.delay.ms=0\n"
                "broker.heartbeat.interval.ms=500\n"
                "broker.session.timeout.ms=3000\n"
                "controller.quorum.election.timeout.ms=1000\n"
                "offsets.topic.replication.factor=3\n"
                "default.replication.factor=3\n"
            )
        self.start()

    def start(self):
        """Starts (or restarts) the process on the same config and data; the log is appended to."""
        env = dict(os.environ, RUST_LOG=os.environ.get("COMPAT_RUST_LOG", "info"), NO_COLOR="1")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([broker_bin(), "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka_port}"

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def error_lines(self, upto=None):
        text = self.log_text()[:upto]
        return [line for line in text.splitlines() if line.split()[1:2] == ["ERROR"]]

    def terminate(self, timeout_s=30):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def kcat_metadata(bootstrap):
    """kcat -L -J from `bootstrap` only, parsed; raises on failure."""
    out = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-m", "5"], capture_output=True,
                         timeout=15, check=True, text=True).stdout
    md = json.loads(out)
    # librdkafka may ask a broker it learned of instead: only the node asked counts.
    origin = md["originating_broker"]["name"]
    if not origin.startswith(bootstrap + "/"):
        raise RuntimeError(f"metadata asked of {bootstrap} came from {origin}")
    return md


def wait_for(what, timeout_s, check, nodes):
    """Polls check() (returns (done, detail)) until done; raises with the last detail and the
    nodes' log tails after timeout_s or when a node exits."""
    deadline = time.monotonic() + timeout_s
    detail = "never checked"
    while True:
        for n in nodes:
            if n.proc.poll() is not None:
                raise RuntimeError(f"node {n.id} exited with {n.proc.returncode} while waiting for {what}")
        try:
            done, detail = check()
            if done:
                return detail
        except Exception as e:  # noqa: BLE001 - not ready yet: keep polling
            detail = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"waiting for {what}: timed out after {timeout_s} s; last: {detail}")
        time.sleep(0.2)


def print_tails(nodes, lines=30):
    for n in nodes:
        print(f"  --- node {n.id}: last lines of {n.log_path} ---")
        for line in n.log_text().splitlines()[-lines:]:
            print("    " + line)


def main():
    c = Checks("cluster_test")
    work = tempfile.mkdtemp(prefix="esker-cluster-")
    ports = [(free_port(), free_port()) for _ in range(N_NODES)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cp}" for i, (_, cp) in enumerate(ports))
    nodes = []
    try:
        for i, (kp, cp) in enumerate(ports):
            nodes.append(Node(i + 1, kp, cp, voters, work))
        want_brokers = {n.id: n.bootstrap for n in nodes}

        # Every node lists the three brokers.
        def all_listed():
            for n in nodes:
                md = kcat_metadata(n.bootstrap)
                got = {b["id"]: b["name"] for b in md["brokers"]}
                if got != want_brokers:
                    return False, f"node {n.id} lists {got}"
            return True, ""

        started = time.monotonic()
        wait_for("every node to list three brokers", START_TIMEOUT_S, all_listed, nodes)
        print(f"  cluster up in {time.monotonic() - started:.1f} s ({work})")

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

        layout = wait_for(f"{topic} to have a leader per partition", TIMEOUT_S, led, nodes)
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

        wait_for("node 3 to see the ACL and the SCRAM user", TIMEOUT_S,
                 lambda: security_seen(nodes[2]), nodes)
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
        wait_for("every node to list three brokers after the restart", START_TIMEOUT_S, all_listed,
                 nodes)
        for n in nodes:
            def kept(node=n):
                a = AdminClient({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4",
                                 "log_level": 0})
                t = a.list_topics(topic, timeout=10).topics.get(topic)
                if t is None or t.error is not None or len(t.partitions) != PARTITIONS:
                    return False, f"{topic}: {t and (t.error, len(t.partitions))}"
                return security_seen(node)

            wait_for(f"node {n.id} to have the topic, ACL and user back", TIMEOUT_S, kept, nodes)
            c.ok(True, f"after a full restart node {n.id} has {topic} ({PARTITIONS} partitions), "
                 "the ACL and the SCRAM user")
    except Exception:  # noqa: BLE001 - any failure is a failed check, then the nodes stop
        c.crash("cluster scenario")
    finally:
        for n in nodes:
            rc = n.terminate()
            c.eq(rc, 0, f"node {n.id}: SIGTERM -> exit 0")
        for n in nodes:
            n.kill()
        if c.failed:
            print_tails(nodes)
            print(f"  work directory kept: {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
