"""Partition replication with stock clients, against three esker processes of this scenario's own
(cluster_common.Cluster: every node `broker,controller`, fenced 3 s after its last heartbeat;
auto.leader.rebalance.enable=false so that only the client's ElectLeaders moves leaders back):

  1. `kcat -L -J -t <topic>` shows, for a 6-partition topic with replication factor 3, three
     replicas and three in-sync replicas per partition and leaders on all three brokers;
  2. a confluent-kafka producer (acks=all, enable.idempotence=true) and a consumer group keep
     working across a SIGKILL of a partition leader (one that is not the active controller,
     which its log names), with no change in the application:
     delivery callbacks succeed again after the kill (the stall, from the kill to the first
     successful delivery of a record produced after it, is printed, and per partition), nothing
     fails, the acknowledged offsets of each partition are 0..n-1 in produce order, and the
     consumer reads every acknowledged record at its offset (a record read twice after a
     rebalance is fine; a gap or another value at an acknowledged offset is not). The killed node
     is started again and is back in the ISR of every partition it holds (AdminClient
     list_topics, bounded wait);
  3. the leaders that moved away from the restarted node go back to it with confluent-kafka's
     AdminClient.elect_leaders(ElectionType.PREFERRED): every partition is led by its first
     replica again;
  4. a replica move: a replication-factor-1 topic on broker A, with records, reassigned to
     broker B. confluent-kafka (2.16.1) has no AlterPartitionReassignments or
     ListPartitionReassignments, so this part uses kafka-python's KafkaAdminClient
     (alter_partition_reassignments, list_partition_reassignments). The reassignment is listed
     as in progress (or has completed already), metadata comes to show replicas == [B], the
     records are read back from B, A's data directory no longer holds the partition and B's
     does. Cancelling (replicas None) on a partition that is not being reassigned answers
     NO_REASSIGNMENT_IN_PROGRESS; a target naming an unknown broker or one broker twice
     answers INVALID_REPLICA_ASSIGNMENT;
  5. no node logs an ERROR while serving, and each exits 0 on SIGTERM.

The processes are killed in a finally block whatever happens. Every client call is bounded.
"""

import os
import sys
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, ElectionType, KafkaError, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_common import Cluster, kcat_metadata  # noqa: E402
from compat_common import Checks  # noqa: E402

PARTITIONS = 6
TIMEOUT_S = 30
# The records the producer of part 2 sends per second (spread over the partitions).
RATE = 200
# The leader's kill comes once this many records are acknowledged and consumed.
BEFORE_KILL = 600
MOVE_RECORDS = 300


def client_conf(bootstrap, **extra):
    return dict({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "log_level": 0}, **extra)


def topic_layout(admin, topic):
    """{partition: (leader, replicas in order, sorted ISR)} from a Metadata request; raises if the
    topic is missing or in error."""
    t = admin.list_topics(topic, timeout=10).topics.get(topic)
    if t is None or t.error is not None:
        raise RuntimeError(f"{topic}: {t and t.error}")
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


# ---------------------------------------------------------------------------------------------
# Part 1: what kcat shows of a replicated topic.
# ---------------------------------------------------------------------------------------------
def check_kcat_layout(c, cluster, topic):
    brokers = set(cluster.brokers())

    def full():
        md = kcat_metadata(cluster.nodes[0].bootstrap, topic)
        [t] = [t for t in md["topics"] if t["topic"] == topic]
        parts = t.get("partitions", [])
        layout = {p["partition"]: (p["leader"], sorted(r["id"] for r in p["replicas"]),
                                   sorted(r["id"] for r in p["isrs"])) for p in parts}
        if len(layout) != PARTITIONS or any(len(isr) != 3 for _, _, isr in layout.values()):
            return False, f"kcat shows {layout}"
        return True, layout

    layout = cluster.wait_for(f"kcat to show {topic} fully replicated", TIMEOUT_S, full)
    c.eq({p for p, (_, r, isr) in layout.items() if r == sorted(brokers) and isr == sorted(brokers)},
         set(range(PARTITIONS)),
         f"kcat -L -J -t {topic}: each of the {PARTITIONS} partitions has replicas and ISR {sorted(brokers)}")
    c.eq({lead for lead, _, _ in layout.values()}, brokers,
         f"kcat -L -J -t {topic}: the partition leaders are spread over all three brokers "
         f"({ {p: lead for p, (lead, _, _) in sorted(layout.items())} })")


# ---------------------------------------------------------------------------------------------
# Part 2: producer and consumer group across a leader's SIGKILL and restart.
# ---------------------------------------------------------------------------------------------
class Traffic:
    """An idempotent acks=all producer writing RATE records a second round-robin over the
    partitions, and a consumer group reading them, driven from one thread by pump()."""

    def __init__(self, cluster, topic):
        self.topic = topic
        self.client_errors = []
        self.producer = Producer(client_conf(
            cluster.bootstrap, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                  "message.timeout.ms": 60_000, "error_cb": self.client_errors.append}))
        self.group = f"repl-group-{uuid.uuid4().hex[:6]}"
        self.consumer = Consumer(client_conf(
            cluster.bootstrap, **{"group.id": self.group, "auto.offset.reset": "earliest",
                                  "error_cb": self.client_errors.append}))
        self.consumer.subscribe([topic])
        self.produced = 0               # records handed to produce()
        self.acked = {}                 # (partition, offset) -> value
        self.acked_at = {}              # record index -> (monotonic time, partition, offset)
        self.failed = []                # (record index, error)
        self.read = {}                  # (partition, offset) -> value (the first read)
        self.reread = 0                 # records read again (a rebalance or a retried fetch)
        self.wrong = []                 # (partition, offset, value first read, value read again)
        self.started = time.monotonic()

    def _report(self, err, msg):
        i = int(msg.value().decode().split()[1])
        if err is not None:
            self.failed.append((i, err))
        else:
            self.acked[(msg.partition(), msg.offset())] = msg.value()
            self.acked_at[i] = (time.monotonic(), msg.partition(), msg.offset())

    def pump(self, seconds=0.05, produce=True):
        """Produces what is due at RATE, serves delivery callbacks and reads what the consumer
        has, for about `seconds`."""
        end = time.monotonic() + seconds
        while True:
            if produce:
                due = int((time.monotonic() - self.started) * RATE)
                while self.produced < due:
                    i = self.produced
                    self.producer.produce(self.topic, key=f"key-{i:06d}".encode(),
                                          value=f"record {i}".encode(), partition=i % PARTITIONS,
                                          on_delivery=self._report)
                    self.produced += 1
            self.producer.poll(0)
            for m in self.consumer.consume(num_messages=500, timeout=0.01):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        print(f"    consumer error: {m.error()}", flush=True)
                    continue
                k = (m.partition(), m.offset())
                if k in self.read:
                    self.reread += 1
                    if self.read[k] != m.value():
                        self.wrong.append((k[0], k[1], self.read[k], m.value()))
                else:
                    self.read[k] = m.value()
            if time.monotonic() >= end:
                return

    def pump_until(self, what, timeout_s, done, cluster, produce=True):
        """pump() until done() is true; raises after timeout_s or if a running node exits."""
        running = [n for n in cluster.nodes if n.alive()]
        deadline = time.monotonic() + timeout_s
        while not done():
            for n in running:
                if n.proc.poll() is not None:
                    raise RuntimeError(f"node {n.id} exited with {n.proc.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"waiting for {what}: timed out after {timeout_s} s")
            self.pump(0.2, produce)

    def close(self):
        self.consumer.close()
        self.producer.flush(10)


def all_isrs_hold(admin, node_id):
    """(done, detail) for wait_for: node_id is in the ISR of every partition (of every topic)
    whose replicas include it."""
    md = admin.list_topics(timeout=10)
    missing = []
    for t in md.topics.values():
        if t.error is not None:
            return False, f"{t.topic}: {t.error}"
        for p in t.partitions.values():
            if node_id in p.replicas and node_id not in p.isrs:
                missing.append(f"{t.topic}/{p.id} isr {sorted(p.isrs)}")
    return not missing, f"{len(missing)} partition(s) without node {node_id} in the ISR: {missing[:4]}"


def check_failover(c, cluster, admin, topic):
    """Part 2; returns the killed node's id."""
    traffic = Traffic(cluster, topic)
    try:
        # Warm up: the group reads every partition and a few hundred records are acknowledged.
        traffic.pump_until("the group to read from every partition", TIMEOUT_S,
                           lambda: len(traffic.acked) >= BEFORE_KILL and
                           {p for p, _ in traffic.read} == set(range(PARTITIONS)), cluster)
        # The victim leads partitions but is not the active controller, so the stall is the
        # partition failover's (the fencing after broker.session.timeout.ms) without a quorum
        # election on top (tests/cluster.rs kills the controller).
        controller = cluster.wait_for("the quorum leader", 10, lambda: (cluster.quorum_leader() is not None,
                                                                        cluster.quorum_leader()))
        layout = topic_layout(admin, topic)
        victim_id = min((p, lead) for p, (lead, _, _) in layout.items() if lead != controller)[1]
        victim = cluster.node(victim_id)
        led = sorted(p for p, (lead, _, _) in layout.items() if lead == victim_id)
        print(f"  SIGKILL node {victim_id} (leader of partitions {led}; the active controller is node "
              f"{controller}) after {len(traffic.acked)} acknowledged records", flush=True)
        first_after = traffic.produced
        killed_at = time.monotonic()
        victim.kill()

        def delivered_after_kill():
            return {p for i, (_, p, _) in traffic.acked_at.items() if i >= first_after}

        traffic.pump_until("a delivery after the kill on every partition", 60,
                           lambda: delivered_after_kill() == set(range(PARTITIONS)), cluster)
        after = {i: v for i, v in traffic.acked_at.items() if i >= first_after}
        stall = min(t for t, _, _ in after.values()) - killed_at
        per_partition = {p: min(t for t, q, _ in after.values() if q == p) - killed_at
                         for p in range(PARTITIONS)}
        print(f"  stall: the first record produced after the kill was acknowledged {stall:.2f} s after "
              f"the SIGKILL; per partition: "
              + ", ".join(f"{p}: {s:.2f} s" + (" (led by the killed node)" if p in led else "")
                          for p, s in per_partition.items()), flush=True)
        c.ok(not traffic.failed,
             f"producer (acks=all, idempotent): delivery callbacks succeed again after the SIGKILL of "
             f"node {victim_id}, on every partition, within {max(per_partition.values()):.1f} s; "
             f"none failed", f"{len(traffic.failed)} failed: {traffic.failed[:3]}")
        new_layout = topic_layout(admin, topic)
        c.ok(all(new_layout[p][0] not in (victim_id, -1) for p in led),
             f"partitions {led} got new leaders from the ISR "
             f"({ {p: new_layout[p][0] for p in led} })", f"layout {new_layout}")

        traffic.pump(2)
        victim.start()
        restarted_at = time.monotonic()
        isr_back = {}

        def back_in_isr():
            done, detail = all_isrs_hold(admin, victim_id)
            isr_back["detail"] = detail
            return done

        traffic.pump_until(f"node {victim_id} back in every ISR", 60, back_in_isr, cluster)
        c.ok(True, f"node {victim_id} restarted and back in the ISR of every partition it holds "
             f"{time.monotonic() - restarted_at:.1f} s after its start (producer and consumer running)")

        # Stop producing; everything produced is acknowledged; the group reads all of it.
        traffic.pump(1)
        remaining = traffic.producer.flush(TIMEOUT_S)
        if remaining == 0:
            traffic.pump_until("the group to read every acknowledged record", TIMEOUT_S,
                               lambda: set(traffic.acked) <= set(traffic.read), cluster, produce=False)
    finally:
        traffic.close()

    c.ok(remaining == 0 and len(traffic.acked) == traffic.produced and not traffic.failed,
         f"all {traffic.produced} records produced across the kill and restart were acknowledged",
         f"{len(traffic.acked)} acknowledged, {len(traffic.failed)} failed, {remaining} still queued")
    problems = []
    for p in range(PARTITIONS):
        offs = sorted(o for q, o in traffic.acked if q == p)
        if offs != list(range(len(offs))):
            problems.append(f"partition {p}: acknowledged offsets have gaps ({len(offs)} offsets up to {offs[-1:]})")
        order = [int(traffic.acked[(p, o)].split()[1]) for o in offs]
        if order != sorted(order):
            problems.append(f"partition {p}: records acknowledged out of produce order")
    c.ok(not problems, "the acknowledged offsets of every partition are 0..n-1, in produce order",
         "; ".join(problems[:4]))
    gaps = sorted(k for k in traffic.acked if k not in traffic.read)
    misplaced = sorted(k for k, v in traffic.read.items() if traffic.acked.get(k) != v)
    c.ok(not gaps and not misplaced and not traffic.wrong,
         f"consumer group {traffic.group} read every one of the {len(traffic.acked)} acknowledged "
         f"records at its acknowledged offset ({traffic.reread} read again after a rebalance, which is allowed)",
         f"{len(gaps)} acknowledged offsets never read (e.g. {gaps[:4]}), {len(misplaced)} offsets read "
         f"with another value (e.g. {[(k, traffic.read[k], traffic.acked.get(k)) for k in misplaced[:3]]}), "
         f"{len(traffic.wrong)} offsets read twice with different values {traffic.wrong[:3]}")
    if traffic.client_errors:
        print(f"  client errors reported (expected while a node is down): {len(traffic.client_errors)}, "
              f"e.g. {traffic.client_errors[0]}", flush=True)
    return victim_id


# ---------------------------------------------------------------------------------------------
# Part 3: preferred leaders back with ElectLeaders.
# ---------------------------------------------------------------------------------------------
def check_elect_preferred(c, cluster, admin, topic, restarted):
    layout = topic_layout(admin, topic)
    moved = sorted(p for p, (lead, replicas, _) in layout.items() if lead != replicas[0])
    c.ok(moved and all(layout[p][1][0] == restarted for p in moved),
         f"before ElectLeaders: partitions {moved} whose first replica is node {restarted} are led "
         f"elsewhere (auto.leader.rebalance.enable=false)", f"layout {layout}")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    # No request_timeout / operation_timeout: confluent-kafka 2.16.1's binding rejects either
    # ("more argument specifiers than keyword list entries"); the wait is bounded by result().
    result = admin.elect_leaders(ElectionType.PREFERRED, tps).result(timeout=TIMEOUT_S)
    # Each value is None or a KafkaError (not the KafkaException the docstring says).
    outcome = {tp.partition: (None if e is None else e.code()) for tp, e in result.items()}
    want = {p: (None if p in moved else KafkaError.ELECTION_NOT_NEEDED) for p in range(PARTITIONS)}
    c.eq(outcome, want, "AdminClient.elect_leaders(PREFERRED): elected for the moved partitions, "
         "ELECTION_NOT_NEEDED for the others")

    def preferred():
        now = topic_layout(admin, topic)
        return all(lead == replicas[0] for lead, replicas, _ in now.values()), now

    started = time.monotonic()
    now = cluster.wait_for("every partition to be led by its first replica", TIMEOUT_S, preferred)
    c.ok(True, f"after elect_leaders every partition of {topic} is led by its first replica "
         f"(metadata showed it {time.monotonic() - started:.1f} s after the answer): "
         f"{ {p: lead for p, (lead, _, _) in sorted(now.items())} }")


# ---------------------------------------------------------------------------------------------
# Part 4: a replica move with kafka-python's reassignment API.
# ---------------------------------------------------------------------------------------------
def partition_dirs(node, topic):
    """The partition directories (<log.dirs>/<topic>-<partition>) of `topic` on the node."""
    return sorted(d for d in os.listdir(node.data_dir) if d.startswith(f"{topic}-"))


def check_replica_move(c, cluster, admin, other_topic):
    a, b = cluster.nodes[1], cluster.nodes[2]
    topic = f"move-{uuid.uuid4().hex[:8]}"
    # librdkafka wants the partition count with an assignment (-1 is refused, whatever the
    # binding's docstring says) and no replication factor.
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[a.id]])],
                              operation_timeout=10, request_timeout=TIMEOUT_S)[topic]
    fut.result(timeout=TIMEOUT_S)
    cluster.wait_for(f"{topic} to be led by node {a.id}", TIMEOUT_S,
                     lambda: (topic_layout(admin, topic).get(0, (None,))[0] == a.id, topic_layout(admin, topic)))

    acked, failed = {}, []
    producer = Producer(client_conf(cluster.bootstrap, **{"acks": "all", "message.timeout.ms": TIMEOUT_S * 1000}))
    for i in range(MOVE_RECORDS):
        producer.produce(topic, value=f"moved {i}".encode(), partition=0,
                         on_delivery=lambda err, m: failed.append(err) if err else
                         acked.__setitem__(m.offset(), m.value()))
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    c.ok(len(acked) == MOVE_RECORDS and not failed and remaining == 0,
         f"{topic} (replication factor 1, on node {a.id}): {MOVE_RECORDS} records acknowledged",
         f"{len(acked)} acknowledged, {failed[:3]}, {remaining} queued")
    c.ok(partition_dirs(a, topic) and not partition_dirs(b, topic),
         f"before the move node {a.id} holds {topic}-0 ({partition_dirs(a, topic)}) and node {b.id} does not",
         f"node {a.id}: {partition_dirs(a, topic)}, node {b.id}: {partition_dirs(b, topic)}")

    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","), request_timeout_ms=TIMEOUT_S * 1000,
                          client_id="compat-replication")
    try:
        tp = KpTopicPartition(topic, 0)
        answer = kp.alter_partition_reassignments({tp: [b.id]}, timeout_ms=TIMEOUT_S * 1000)
        c.eq(answer, {tp: None},
             f"KafkaAdminClient.alter_partition_reassignments({topic}-0 -> [{b.id}]) accepted")
        listed = kp.list_partition_reassignments([tp], timeout_ms=TIMEOUT_S * 1000)
        if listed:
            r = listed.get(tp, {})
            c.ok(sorted(r.get("replicas", [])) == sorted([a.id, b.id]) and r.get("adding_replicas") == [b.id]
                 and r.get("removing_replicas") == [a.id],
                 f"list_partition_reassignments: in progress, replicas {r.get('replicas')}, adding "
                 f"{r.get('adding_replicas')}, removing {r.get('removing_replicas')}", f"listed {listed}")
        else:
            c.ok(True, "list_partition_reassignments: nothing in progress (the move completed already)")

        def moved():
            lead, replicas, isr = topic_layout(admin, topic)[0]
            return (lead, replicas, isr) == (b.id, [b.id], [b.id]), (lead, replicas, isr)

        started = time.monotonic()
        cluster.wait_for(f"{topic}-0 to be on node {b.id} only", 60, moved)
        c.ok(True, f"metadata shows {topic}-0 with replicas, ISR [{b.id}] and leader {b.id} "
             f"{time.monotonic() - started:.1f} s after the listing")
        c.eq(kp.list_partition_reassignments([tp], timeout_ms=TIMEOUT_S * 1000), {},
             "list_partition_reassignments after the move: nothing in progress")

        # Cancelling where nothing is being moved: the partition of another topic.
        other = KpTopicPartition(other_topic, 0)
        answer = kp.alter_partition_reassignments({other: None}, timeout_ms=TIMEOUT_S * 1000)
        c.eq(answer, {other: NoReassignmentInProgressError},
             f"alter_partition_reassignments({other_topic}-0 -> None), no reassignment in progress: "
             "NO_REASSIGNMENT_IN_PROGRESS")
        # A target naming a broker that does not exist, or one broker twice, is refused.
        for target in ([99], [b.id, b.id]):
            answer = kp.alter_partition_reassignments({other: target},
                                                      timeout_ms=TIMEOUT_S * 1000)
            c.eq(answer, {other: InvalidReplicationAssignmentError},
                 f"alter_partition_reassignments({other_topic}-0 -> {target}): "
                 "INVALID_REPLICA_ASSIGNMENT")
    finally:
        kp.close()

    # Read back from B, the only replica.
    consumer = Consumer(client_conf(b.bootstrap, **{"group.id": f"move-{uuid.uuid4().hex[:6]}",
                                                     "enable.auto.commit": False}))
    read = {}
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(read) < len(acked) and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=500, timeout=0.5):
                if not m.error():
                    read[m.offset()] = m.value()
    finally:
        consumer.close()
    c.ok(read == acked, f"all {len(acked)} records read back from node {b.id}, each at its acknowledged offset",
         f"read {len(read)}, {len(set(acked) - set(read))} missing, "
         f"{sum(1 for o in read if read[o] != acked.get(o))} differ")

    def deleted():
        return not partition_dirs(a, topic), partition_dirs(a, topic)

    cluster.wait_for(f"node {a.id} to delete its replica of {topic}-0", TIMEOUT_S, deleted)
    c.ok(not partition_dirs(a, topic) and partition_dirs(b, topic),
         f"after the move node {a.id}'s data directory no longer holds {topic}-0; node {b.id}'s does "
         f"({partition_dirs(b, topic)})", f"node {a.id}: {partition_dirs(a, topic)}, node {b.id}: "
         f"{partition_dirs(b, topic)}")


def main():
    c = Checks("replication_test")
    cluster = Cluster("esker-repl-", {"auto.leader.rebalance.enable": "false"})
    try:
        cluster.start()
        admin = AdminClient(client_conf(cluster.bootstrap))
        topic = f"repl-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                            operation_timeout=10, request_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
        c.ok(True, f"AdminClient created {topic} ({PARTITIONS} partitions, replication factor 3)")

        check_kcat_layout(c, cluster, topic)
        victim = check_failover(c, cluster, admin, topic)
        check_elect_preferred(c, cluster, admin, topic, victim)
        check_replica_move(c, cluster, admin, topic)

        del admin
        for n in cluster.nodes:
            errors = n.error_lines()
            c.ok(not errors, f"node {n.id} logged no ERROR while serving", "; ".join(errors[:5]))
    except Exception:  # noqa: BLE001 - any failure is a failed check, then the nodes stop
        c.crash("replication scenario")
    finally:
        cluster.shutdown(c)
    c.finish()


if __name__ == "__main__":
    main()
