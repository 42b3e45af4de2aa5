"""Helpers of the cluster scenarios (cluster_test.py, replication_test.py): a cluster of esker
processes of the scenario's own, started from $BROKER_BIN (compat_common.broker_bin) on free
loopback ports with Kafka's KRaft keys, every node `broker,controller`, each with its config
file (written like config/cluster/nodeN.properties), data directory and log in a work directory.

    cluster = Cluster("esker-cluster-", {"auto.leader.rebalance.enable": "false"})
    try:
        cluster.start()
        ...
    except Exception:
        c.crash("...")
    finally:
        cluster.shutdown(c)   # SIGTERM each node (exit 0 checked), kill what is left, log tails

A node can be SIGKILLed (Node.kill) and started again (Node.start) on the same data.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from compat_common import broker_bin, free_port

START_TIMEOUT_S = 60

# What every node of these clusters runs with, on top of its listeners and directories: fast
# failure detection (a node is fenced 3 s after its last heartbeat) and replicated internal topics.
BASE_PROPERTIES = {
    "kinesis.listener": "",
    "metrics.listener": "",
    "num.shards": "2",
    "group.initial.rebalance.delay.ms": "0",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "controller.quorum.election.timeout.ms": "1000",
    "offsets.topic.replication.factor": "3",
    "default.replication.factor": "3",
}


class Node:
    """One esker process of the cluster, with its config file, data directory and log.
    properties: {key: value} written into its config file after the listeners and directories."""

    def __init__(self, node_id, kafka_port, controller_port, voters, work, properties):
        self.id = node_id
        self.kafka_port = kafka_port
        self.dir = os.path.join(work, f"node-{node_id}")
        os.makedirs(self.dir)
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "server.properties")
        self.log_path = os.path.join(self.dir, "esker.log")
        self.proc = None
        self.log = None
        with open(self.config, "w") as f:
            f.write(
                "process.roles=broker,controller\n"
                f"node.id={node_id}\n"
                f"listeners=PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}\n"
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{kafka_port}\n"
                "controller.listener.names=CONTROLLER\n"
                "inter.broker.listener.name=PLAINTEXT\n"
                f"controller.quorum.voters={voters}\n"
                f"log.dirs={self.data_dir}\n"
            )
            for key, value in properties.items():
                f.write(f"{key}={value}\n")
        self.start()

    def start(self):
        """Starts (or restarts) the process on the same config and data; the log is appended to.

        The log filter is the broker's default (info, openraft off) or COMPAT_RUST_LOG with
        openraft kept off unless it names openraft: openraft logs each refused connection to a
        voter that is down as an ERROR, every half second, and the scenarios fail on ERROR lines
        (Esker logs the quorum's events itself)."""
        env = dict(os.environ, NO_COLOR="1")
        env.pop("RUST_LOG", None)
        wanted = os.environ.get("COMPAT_RUST_LOG")
        if wanted:
            env["RUST_LOG"] = wanted if "openraft" in wanted else f"{wanted},openraft=off"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([broker_bin(), "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka_port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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
        """SIGKILL (if still running), reaped; the log file is closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def kcat_metadata(bootstrap, topic=None):
    """kcat -L -J from `bootstrap` only (of `topic` only if given), parsed; raises on failure."""
    cmd = ["kcat", "-L", "-J", "-b", bootstrap, "-m", "5"]
    if topic is not None:
        cmd += ["-t", topic]
    out = subprocess.run(cmd, capture_output=True, timeout=15, check=True, text=True).stdout
    md = json.loads(out)
    # librdkafka may ask a broker it learned of instead: only the node asked counts.
    origin = md["originating_broker"]["name"]
    if not origin.startswith(bootstrap + "/"):
        raise RuntimeError(f"metadata asked of {bootstrap} came from {origin}")
    return md


def wait_for(what, timeout_s, check, nodes):
    """Polls check() (returns (done, detail)) until done; raises with the last detail after
    timeout_s or when a node of `nodes` exits. Returns the detail of the successful check."""
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


class Cluster:
    """n nodes in a fresh work directory (mkdtemp with `prefix`); properties: {key: value} on
    top of BASE_PROPERTIES for every node. Nothing runs until start()."""

    def __init__(self, prefix, properties=None, n=3):
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.ports = [(free_port(), free_port()) for _ in range(n)]
        self.properties = dict(BASE_PROPERTIES, **(properties or {}))
        self.nodes = []

    def start(self):
        """Starts every node (each is in self.nodes as soon as its process runs, so shutdown()
        stops it whatever happens next) and waits until every node lists all of them."""
        voters = ",".join(f"{i + 1}@127.0.0.1:{cp}" for i, (_, cp) in enumerate(self.ports))
        for i, (kp, cp) in enumerate(self.ports):
            self.nodes.append(Node(i + 1, kp, cp, voters, self.work, self.properties))
        started = time.monotonic()
        self.wait_for("every node to list every broker", START_TIMEOUT_S, self.all_listed)
        print(f"  cluster up in {time.monotonic() - started:.1f} s ({self.work})", flush=True)

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def bootstrap(self):
        """Every node's address, for clients that must survive any one node going away."""
        return ",".join(n.bootstrap for n in self.nodes)

    def brokers(self):
        """{node id: advertised address}."""
        return {n.id: n.bootstrap for n in self.nodes}

    def all_listed(self):
        """wait_for check: every running node lists every broker at its advertised address."""
        want = self.brokers()
        for n in self.nodes:
            if not n.alive():
                continue
            md = kcat_metadata(n.bootstrap)
            got = {b["id"]: b["name"] for b in md["brokers"]}
            if got != want:
                return False, f"node {n.id} lists {got}"
        return True, ""

    def quorum_leader(self):
        """The node id every running node last logged as the metadata quorum's leader (the
        active controller), or None while they disagree. Clients cannot tell: like KRaft brokers,
        a node names itself as the controller in Metadata and DescribeCluster."""
        seen = set()
        for n in self.nodes:
            if n.alive():
                found = re.findall(r"raft leader changed node=\d+ leader=(\w+(?:\(\d+\))?)", n.log_text())
                seen.add(found[-1] if found else None)
        m = re.fullmatch(r"Some\((\d+)\)", seen.pop()) if len(seen) == 1 and None not in seen else None
        return int(m.group(1)) if m else None

    def wait_for(self, what, timeout_s, check, nodes=None):
        """wait_for over the running nodes (or `nodes`): a node exiting meanwhile fails it."""
        return wait_for(what, timeout_s, check, nodes if nodes is not None else
                        [n for n in self.nodes if n.alive()])

    def shutdown(self, c):
        """SIGTERMs every node, records that each exits 0 (a node that already exited fails with
        its status), kills whatever is left; on failure prints the log tails and keeps the work
        directory (as COMPAT_KEEP=1 does), else removes it."""
        for n in self.nodes:
            rc = n.terminate()
            c.eq(rc, 0, f"node {n.id}: SIGTERM -> exit 0")
        for n in self.nodes:
            n.kill()
        if c.failed:
            print_tails(self.nodes)
        if c.failed or os.environ.get("COMPAT_KEEP") == "1":
            print(f"  work directory kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
