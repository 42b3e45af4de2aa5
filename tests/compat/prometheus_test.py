"""A real Prometheus (Debian's package) scraping the broker's $METRICS_ENDPOINT every second
while a confluent-kafka producer and consumer group (and a boto3 Kinesis client) run.

Through Prometheus' HTTP API:
- the bytes-in rate of the topic is positive while producing;
- Produce latency quantiles (histogram_quantile over the TotalTimeMs buckets) are > 0 and
  below a few seconds;
- the group's lag falls to 0 once the consumer has committed everything, grows to exactly N
  while the consumer is stopped and N more records are produced, and falls back to 0 when it
  catches up (every wait is a poll with a deadline);
- every PromQL expression of every dashboard JSON under grafana/ (template variables replaced
  by `.*` and a fixed rate interval) returns data.
`promtool check metrics` accepts a /metrics scrape (no errors, no lint warnings)."""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import BOOTSTRAP, Checks, create_active_stream

METRICS = os.environ.get("METRICS_ENDPOINT", "http://127.0.0.1:9644")
KINESIS = os.environ.get("KINESIS_ENDPOINT")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PARTITIONS = 3
FIRST = 3000
MORE = 500
DEADLINE = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Prometheus:
    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="esker-prometheus-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: esker\n    scrape_interval: 1s\n"
                f"    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            )
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr):
        """Instant query: the result vector (list of (labels, float))."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        _, body = http_get(url)
        data = json.loads(body)
        if data.get("status") != "success":
            raise RuntimeError(f"{expr}: {data}")
        res = data["data"]
        if res["resultType"] == "scalar":
            return [({}, float(res["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in res["result"]]

    def value(self, expr):
        """The single value of `expr`, or None when it has no data."""
        r = self.query(expr)
        return r[0][1] if r else None

    def wait_for(self, what, expr, pred, deadline=DEADLINE):
        """Polls `expr` until pred(value) holds; returns (ok, last value)."""
        end = time.monotonic() + deadline
        v = None
        while time.monotonic() < end:
            try:
                v = self.value(expr)
            except Exception as e:  # not ready yet
                v = f"error: {e}"
            if not isinstance(v, str) and v is not None and pred(v):
                return True, v
            time.sleep(0.25)
        return False, v

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def produce(topic, n, tag):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=f"{tag}-{i}".encode(), value=(f"{tag} value {i} " * 8).encode())
        if i % 500 == 499:
            p.poll(0)
    left = p.flush(30)
    if left:
        raise RuntimeError(f"{left} records not delivered")


def consume_all(group, topic, n):
    """Reads n records in group `group` and commits synchronously; returns the count read."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, end = 0, time.monotonic() + DEADLINE
    try:
        while got < n and time.monotonic() < end:
            msgs = c.consume(500, 0.5)
            for m in msgs:
                if m.error() is None:
                    got += 1
            if msgs:
                c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def provoke_fetch_error(topic):
    """A fetch far past the log end: OFFSET_OUT_OF_RANGE, counted in ErrorsPerSec."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"oor-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 10_000_000)])
    end = time.monotonic() + 5
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            break  # reset to earliest happened
    c.close()


def kinesis_traffic(c):
    """A stream with a put and a read, so the Kinesis series exist."""
    if not KINESIS:
        return None
    import boto3
    k = boto3.client("kinesis", endpoint_url=KINESIS, region_name="us-east-1",
                     aws_access_key_id="compat", aws_secret_access_key="compat")
    name = f"prom-{uuid.uuid4().hex[:8]}"
    create_active_stream(k, name, timeout_s=DEADLINE)
    for i in range(20):
        k.put_record(StreamName=name, Data=f"record {i}".encode(), PartitionKey=f"pk{i}")
    shard = k.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = k.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = k.get_records(ShardIterator=it, Limit=100)["Records"]
    c.eq(len(got), 20, "kinesis: GetRecords returns the 20 records put")
    return name


def dashboard_exprs():
    """(file, title, expr) of every `expr` in every dashboard JSON under grafana/."""
    out = []

    def walk(v, path, title):
        if isinstance(v, dict):
            title = v.get("title", title)
            for k, x in v.items():
                if k == "expr" and isinstance(x, str):
                    out.append((path, title, x))
                else:
                    walk(x, path, title)
        elif isinstance(v, list):
            for x in v:
                walk(x, path, title)

    for path in sorted(glob.glob(os.path.join(ROOT, "grafana", "**", "*.json"), recursive=True)):
        with open(path) as f:
            walk(json.load(f), os.path.relpath(path, ROOT), "")
    return out


def concrete(expr):
    """Grafana's variables replaced: intervals by 30s, everything else by the regex `.*`."""
    for v in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}", "$interval"):
        expr = expr.replace(v, "30s")
    expr = expr.replace("$__range", "5m")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


def main():
    c = Checks("prometheus")
    target = urllib.parse.urlparse(METRICS).netloc
    status, text = http_get(f"{METRICS}/metrics")
    c.eq(status, 200, "GET /metrics")

    prom = Prometheus(target)
    try:
        ok, _ = prom.wait_for("up", 'up{job="esker"}', lambda v: v == 1)
        if not c.ok(ok, "prometheus scrapes the broker (up == 1)"):
            with open(os.path.join(prom.dir, "prometheus.log")) as f:
                print(f.read()[-3000:])
            c.finish()
        run(c, prom)
    except Exception:
        c.crash("prometheus scenario")
    finally:
        prom.stop()
    c.finish()


def run(c, prom):
    topic = f"prom-{uuid.uuid4().hex[:8]}"
    group = f"prom-group-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(15)
    t = f'topic="{topic}"'
    g = f'consumergroup="{group}",{t}'

    # A first record makes the topic's counters exist; once Prometheus has scraped them, the
    # rest of the batch is an increase that rate() sees.
    produce(topic, 1, "first")
    ok, v = prom.wait_for("counter", f"sum(kafka_server_brokertopicmetrics_messagesin_total{{{t}}})",
                          lambda v: v == 1)
    c.ok(ok, "the topic's messages-in counter is scraped", f"last value {v}")
    produce(topic, FIRST - 1, "first")
    ok, v = prom.wait_for("bytes in", f"sum(rate(kafka_server_brokertopicmetrics_bytesin_total{{{t}}}[30s]))",
                          lambda v: v > 0)
    c.ok(ok, "bytes-in rate of the topic > 0", f"last value {v}")
    ok, v = prom.wait_for("messages in", f"sum(kafka_server_brokertopicmetrics_messagesin_total{{{t}}})",
                          lambda v: v == FIRST)
    c.ok(ok, f"messages-in counter reaches {FIRST}", f"last value {v}")
    for q in (0.5, 0.99):
        expr = (f"histogram_quantile({q}, sum by (le) (rate("
                'kafka_network_requestmetrics_totaltimems_bucket{request="Produce"}[1m])))')
        ok, v = prom.wait_for("latency", expr, lambda v: v == v)  # not NaN
        c.ok(ok and 0 < v < 5000, f"Produce latency p{int(q * 100)} is > 0 and < 5 s", f"{v} ms")

    c.eq(consume_all(group, topic, FIRST), FIRST, "consumer group reads the first batch")
    ok, v = prom.wait_for("lag 0", f"sum(kafka_consumergroup_lag{{{g}}})", lambda v: v == 0)
    c.ok(ok, "lag is 0 once the group committed everything", f"last value {v}")

    # The consumer is stopped: lag grows by exactly what is produced.
    produce(topic, MORE, "more")
    ok, v = prom.wait_for("lag N", f"sum(kafka_consumergroup_lag{{{g}}})", lambda v: v == MORE)
    c.ok(ok, f"lag grows to {MORE} while the consumer is stopped", f"last value {v}")
    ok, v = prom.wait_for("lag sum N", f"sum(kafka_consumergroup_topic_lag{{{g}}})", lambda v: v == MORE)
    c.ok(ok, f"per-group lag sum is {MORE}", f"last value {v}")
    ok, v = prom.wait_for("partitions", f"count(kafka_consumergroup_lag{{{g}}})", lambda v: v == PARTITIONS)
    c.ok(ok, "one lag series per partition", f"last value {v}")

    c.eq(consume_all(group, topic, MORE), MORE, "the consumer catches up")
    ok, v = prom.wait_for("lag 0 again", f"sum(kafka_consumergroup_lag{{{g}}})", lambda v: v == 0)
    c.ok(ok, "lag falls back to 0 when the consumer catches up", f"last value {v}")
    ok, v = prom.wait_for("rebalances", "sum(kafka_server_groupcoordinatormetrics_group_rebalance_total)",
                          lambda v: v >= 2)
    c.ok(ok, "group rebalances counted", f"last value {v}")

    provoke_fetch_error(topic)
    kinesis_traffic(c)

    # promtool on a scrape.
    _, text = http_get(f"{METRICS}/metrics")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    c.ok(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
         "promtool check metrics: no errors or lint warnings",
         f"exit {r.returncode}: {(r.stdout + r.stderr)[:2000]}")

    # Every dashboard query returns data (after a few scrapes of the Kinesis and error series,
    # so rate windows hold two samples).
    exprs = dashboard_exprs()
    c.ok(len(exprs) >= 40, f"dashboards hold {len(exprs)} queries")
    pending = {(p, title, e) for p, title, e in exprs}
    last = {}
    end = time.monotonic() + DEADLINE
    while pending and time.monotonic() < end:
        for key in sorted(pending):
            try:
                res = prom.query(concrete(key[2]))
            except Exception as e:
                last[key] = f"error: {e}"
                continue
            if res:
                pending.discard(key)
            else:
                last[key] = "no data"
        if pending:
            time.sleep(0.5)
    for p, title, e in exprs:
        key = (p, title, e)
        c.ok(key not in pending, f"{p}: {title}: query returns data",
             f"{last.get(key)}: {concrete(e)}")


if __name__ == "__main__":
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("prometheus/promtool not installed")
        sys.exit(1)
    main()
