"""Shared helpers of the Python compatibility scenarios: the message set, the checks of what a
consumer read back, and a small check recorder that keeps going after a failure and exits
non-zero at the end."""

import os
import sys
import time
import traceback
import uuid

BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:9092")
# COMPAT_CODECS=gzip,none narrows a debugging run ("none" = uncompressed); the suite runs all four.
CODECS = [x for x in os.environ.get("COMPAT_CODECS", "gzip,snappy,lz4,zstd").split(",") if x]
N_MESSAGES = 1000
N_PARTITIONS = 3


def now_ms():
    return time.time_ns() // 1_000_000


def topic_name(prefix, codec):
    return f"{prefix}-{codec}-{uuid.uuid4().hex[:8]}"


class Msg:
    """The i-th message of a run: key, value, headers and an explicit CreateTime timestamp.

    Timestamps are base_ts + 2*i, so every message has its own millisecond and a lookup of
    base_ts + 2*i + 1 falls strictly between message i and message i+1."""

    __slots__ = ("i", "key", "value", "headers", "ts")

    def __init__(self, codec, i, base_ts):
        self.i = i
        self.key = f"{codec}-key-{i:04d}".encode()
        # Compressible and of varying length; every 50th value is empty, a few are binary.
        if i % 50 == 49:
            self.value = b""
        elif i % 97 == 0:
            self.value = bytes(range(256)) * 3
        else:
            self.value = (f"value {i} of {codec}: " + "lorem ipsum " * (i % 23)).encode()
        self.headers = [
            ("idx", str(i).encode()),
            ("codec", codec.encode()),
            ("bin", bytes([i % 256, 0, 255, (i * 7) % 256])),
        ]
        if i % 10 == 0:
            self.headers.append(("dup", b"first"))
            self.headers.append(("dup", b"second"))  # repeated header keys keep their order
        self.ts = base_ts + 2 * i


def make_messages(codec, n=N_MESSAGES):
    # An hour ago, so the timestamps cannot collide with anything the broker assigns itself.
    base_ts = now_ms() - 3_600_000
    return [Msg(codec, i, base_ts) for i in range(n)], base_ts


class Checks:
    """Records named checks; a failure is printed at once and counted, and the run goes on."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.passed = 0
        self.failed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"  ok   - {what}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL - {what}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def eq(self, actual, expected, what):
        return self.ok(actual == expected, what, f"expected {expected!r}, got {actual!r}")

    def crash(self, what):
        self.failed += 1
        print(f"  FAIL - {what} raised:", flush=True)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()

    def finish(self):
        print(f"{self.scenario}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def check_consumed(c, codec, msgs, delivered, records):
    """Checks what a consumer read back.

    msgs: the produced Msg list; delivered: {i: (partition, offset)} from the producer's
    acknowledgements; records: list of (partition, offset, key, value, headers, timestamp) in
    the order the consumer returned them, headers as a list of (str, bytes) pairs."""
    by_key = {m.key: m for m in msgs}
    seen = {}
    problems = []
    last_offset = {}
    for part, off, key, value, headers, ts in records:
        m = by_key.get(key)
        if m is None:
            problems.append(f"unknown key {key!r} at {part}/{off}")
            continue
        if m.i in seen:
            problems.append(f"key {key!r} read twice: {seen[m.i]} and {(part, off)}")
            continue
        seen[m.i] = (part, off)
        if (part, off) != delivered.get(m.i):
            problems.append(f"key {key!r} at {(part, off)}, acknowledged at {delivered.get(m.i)}")
        if value != m.value:
            problems.append(f"key {key!r}: value {value[:40]!r}..., expected {m.value[:40]!r}...")
        if headers != m.headers:
            problems.append(f"key {key!r}: headers {headers!r}, expected {m.headers!r}")
        if ts != m.ts:
            problems.append(f"key {key!r}: timestamp {ts}, expected {m.ts}")
        if part in last_offset and off <= last_offset[part][0]:
            problems.append(f"partition {part}: offset {off} after {last_offset[part][0]}")
        if part in last_offset and m.i <= last_offset[part][1]:
            problems.append(f"partition {part}: message {m.i} read after message {last_offset[part][1]}")
        last_offset[part] = (off, m.i)
    missing = sorted(set(range(len(msgs))) - set(seen))
    if missing:
        problems.append(f"{len(missing)} message(s) never read, e.g. {missing[:10]}")
    c.ok(
        not problems,
        f"{codec}: {len(records)} records read back; every key/value/header/timestamp exactly "
        f"once, in per-partition order",
        "; ".join(problems[:8]) + (f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""),
    )
    return not problems


def partition_layout(delivered, n_partitions=N_PARTITIONS):
    """{partition: [message index in offset order]} from the acknowledgements."""
    layout = {p: [] for p in range(n_partitions)}
    for i, (p, off) in sorted(delivered.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        layout[p].append(i)
    return layout


def check_layout(c, codec, delivered, n, n_partitions=N_PARTITIONS):
    """The acknowledged offsets of each partition are 0..count-1, in produce order; returns
    {partition: [message indexes in offset order]}."""
    layout = partition_layout(delivered, n_partitions)
    problems = []
    if len(delivered) != n:
        problems.append(f"{n - len(delivered)} message(s) not acknowledged")
    for p, idx in layout.items():
        offs = sorted(delivered[i][1] for i in idx)
        if offs != list(range(len(idx))):
            problems.append(f"partition {p}: acknowledged offsets {offs[:5]}... are not 0..{len(idx) - 1}")
        if idx != sorted(idx):
            problems.append(f"partition {p}: offsets not in produce order")
        if not idx:
            problems.append(f"partition {p}: received no message (the keys should spread over all partitions)")
    counts = {p: len(v) for p, v in layout.items()}
    c.ok(not problems, f"{codec}: {n} acknowledged, offsets 0..count-1 per partition in produce order {counts}",
         "; ".join(problems))
    return layout


def timestamp_probes(msgs, layout):
    """Per partition, four lookups by timestamp as (query_ts, expected_offset, expected_ts):
    before the first message, exactly a middle message's timestamp, between two of its
    messages (a timestamp that no message of the partition carries), and past the last message
    (Kafka answers offset -1, timestamp -1). Kafka semantics: the first record whose timestamp is
    >= query_ts, whatever the batch or its compression."""
    probes = {}
    for p, idx in layout.items():
        if not idx:
            continue
        ts = [msgs[i].ts for i in idx]
        mid = len(idx) // 2
        after = (mid + 1, ts[mid + 1]) if mid + 1 < len(idx) else (-1, -1)
        probes[p] = [
            (ts[0] - 1000, 0, ts[0]),
            (ts[mid], mid, ts[mid]),
            (ts[mid] + 1, after[0], after[1]),
            (ts[-1] + 1000, -1, -1),
        ]
    return probes


PROBE_NAMES = ["before first", "exact ts of a middle record", "between two records", "past last"]


# ---------------------------------------------------------------------------------------------
# What the broker stored. A client may silently fall back to no compression (librdkafka does so
# for lz4 when the broker does not advertise FindCoordinator), which would make a codec round
# test nothing; the batches on disk tell. The broker keeps record batches verbatim in
# <log.dirs>/<topic>-<partition>/*.log (run.sh exports ESKER_DATA_DIR).
# ---------------------------------------------------------------------------------------------
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}


class StoredBatch:
    """One record batch as stored on disk (the v2 batch header fields the suite checks)."""

    __slots__ = ("partition", "base_offset", "count", "codec", "producer_id", "producer_epoch",
                 "base_sequence", "attributes", "control")

    def __init__(self, partition, base_offset, count, codec, producer_id, producer_epoch, base_sequence,
                 attributes=0, control=None):
        self.partition = partition
        self.base_offset = base_offset
        self.count = count
        self.codec = codec
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        # Attribute bits 4 (transactional) and 5 (control batch).
        self.attributes = attributes
        # Control batches: "COMMIT", "ABORT" (from the control record's key) or "control#<type>".
        self.control = control

    @property
    def transactional(self):
        return bool(self.attributes & 0x10)

    @property
    def is_control(self):
        return bool(self.attributes & 0x20)


def _varint(data, pos):
    """A zigzag varint of a v2 record at pos: (value, position after it)."""
    shift = raw = 0
    while True:
        b = data[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def _control_type(data, records_pos):
    """The type of a control batch's (uncompressed) first record, from its key: [version i16]
    [type i16], 0 = ABORT, 1 = COMMIT."""
    import struct

    try:
        pos = _varint(data, records_pos)[1]  # record length
        pos += 1  # record attributes
        pos = _varint(data, pos)[1]  # timestamp delta
        pos = _varint(data, pos)[1]  # offset delta
        key_len, pos = _varint(data, pos)
        if key_len < 4:
            return f"control key of {key_len} bytes"
        kind = struct.unpack_from(">h", data, pos + 2)[0]
    except (IndexError, struct.error):
        return "truncated control record"
    return {0: "ABORT", 1: "COMMIT"}.get(kind, f"control#{kind}")


def stored_batches(topic, n_partitions):
    """[StoredBatch] of the batches on disk in (partition, offset) order, or None when
    ESKER_DATA_DIR is not set."""
    import glob
    import struct

    data_dir = os.environ.get("ESKER_DATA_DIR")
    if not data_dir:
        return None
    out = []
    for p in range(n_partitions):
        for path in sorted(glob.glob(os.path.join(data_dir, f"{topic}-{p}", "*.log"))):
            with open(path, "rb") as f:
                data = f.read()
            pos = 0
            # Batch v2 header: baseOffset i64, batchLength i32, partitionLeaderEpoch i32,
            # magic i8, crc u32, attributes i16 (at 21), lastOffsetDelta i32, baseTimestamp i64,
            # maxTimestamp i64, producerId i64 (at 43), producerEpoch i16 (at 51),
            # baseSequence i32 (at 53), recordCount i32 (at 57).
            while pos + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if length <= 0:
                    break
                attrs = struct.unpack_from(">h", data, pos + 21)[0]
                pid, epoch, seq, count = struct.unpack_from(">qhii", data, pos + 43)
                control = _control_type(data, pos + 61) if attrs & 0x20 else None
                out.append(StoredBatch(p, base, count, CODEC_NAMES.get(attrs & 7, f"codec#{attrs & 7}"),
                                       pid, epoch, seq, attrs, control))
                pos += 12 + length
    return out


def check_stored_producer(c, label, topic, n_partitions, idempotent):
    """What the broker stored tells whether the client really produced idempotently: with
    idempotence every batch carries the one producer id the broker handed out (InitProducerId)
    and, per partition, base sequences that continue exactly where the previous batch ended,
    from 0; without it the producer id is -1 and sequences are -1."""
    batches = stored_batches(topic, n_partitions)
    if batches is None:
        print(f"  skip - {label}: ESKER_DATA_DIR not set, producer ids not checked", flush=True)
        return
    problems = []
    pids = sorted({(b.producer_id, b.producer_epoch) for b in batches})
    if not batches:
        problems.append("no batch stored")
    if idempotent:
        if len(pids) != 1 or pids[0][0] < 0 or pids[0][1] < 0:
            problems.append(f"(producer id, epoch) of the batches: {pids}, expected one id >= 0")
        next_seq = {}
        for b in batches:
            want = next_seq.get(b.partition, 0)
            if b.base_sequence != want:
                problems.append(f"partition {b.partition} batch at offset {b.base_offset}: base sequence "
                                f"{b.base_sequence}, expected {want}")
            next_seq[b.partition] = b.base_sequence + b.count
        what = (f"{label}: idempotent producer: all {len(batches)} stored batches carry producer id "
                f"{pids[0][0] if len(pids) == 1 else pids} and gap-free sequences from 0 per partition")
    else:
        if any(b.producer_id != -1 for b in batches):
            problems.append(f"(producer id, epoch) of the batches: {pids}, expected producer id -1")
        what = f"{label}: non-idempotent producer: all {len(batches)} stored batches have producer id -1"
    c.ok(not problems, what, "; ".join(problems[:5]))


def stored_txn_layout(topic, n_partitions):
    """{partition: [("DATA", records, transactional) | ("COMMIT" | "ABORT", producer id)]} of
    what the broker stored, consecutive data batches of one kind merged; None when
    ESKER_DATA_DIR is not set. With the producer ids of the transactional data batches, so a
    check can tell whose transaction a marker ends."""
    batches = stored_batches(topic, n_partitions)
    if batches is None:
        return None, None
    layout = {p: [] for p in range(n_partitions)}
    txn_pids = set()
    for b in batches:
        rows = layout[b.partition]
        if b.is_control:
            rows.append((b.control, b.producer_id))
            continue
        if b.transactional:
            txn_pids.add(b.producer_id)
        if rows and rows[-1][0] == "DATA" and rows[-1][2] == b.transactional:
            rows[-1] = ("DATA", rows[-1][1] + b.count, b.transactional)
        else:
            rows.append(("DATA", b.count, b.transactional))
    return layout, txn_pids


def check_stored_transactions(c, label, topic, n_partitions, want):
    """The stored batches of each partition follow `want`: {partition: [("DATA", n) |
    "COMMIT" | "ABORT"]}: transactional data batches (attribute bit 4) and control batches
    (bits 4 + 5, one record whose key says COMMIT or ABORT), each marker carrying the producer id
    of the transactional batches before it."""
    layout, pids = stored_txn_layout(topic, n_partitions)
    if layout is None:
        print(f"  skip - {label}: ESKER_DATA_DIR not set, stored markers not checked", flush=True)
        return
    problems = []
    got = {}
    for p, rows in layout.items():
        got[p] = [("DATA", r[1]) if r[0] == "DATA" else r[0] for r in rows]
        for r in rows:
            if r[0] == "DATA" and not r[2]:
                problems.append(f"partition {p}: {r[1]} non-transactional record(s)")
            if r[0] != "DATA" and r[1] not in pids:
                problems.append(f"partition {p}: {r[0]} marker of producer id {r[1]}, data of {sorted(pids)}")
    if got != want:
        problems.append(f"stored {got}, expected {want}")
    c.ok(not problems,
         f"{label}: stored batches are transactional data and control batches in order {want}",
         "; ".join(problems[:5]))


def check_stored_codec(c, codec, topic, n_messages, n_partitions=N_PARTITIONS):
    batches = stored_batches(topic, n_partitions)
    if batches is None:
        print(f"  skip - {codec}: ESKER_DATA_DIR not set, stored compression not checked", flush=True)
        return
    codecs = {}
    for b in batches:
        codecs[b.codec] = codecs.get(b.codec, 0) + b.count
    c.ok(codecs == {codec: n_messages},
         f"{codec}: the broker stored {len(batches)} batches, all {codec}-compressed (records per codec: {codecs})",
         f"expected all {n_messages} records in {codec} batches; the client did not compress as configured")


# ---------------------------------------------------------------------------------------------
# Consumer groups: consume part of a topic in a group, commit, close; a new consumer of the same
# group must resume exactly at the committed offsets and read the rest, nothing twice.
# ---------------------------------------------------------------------------------------------
def end_offsets_of(delivered):
    """{partition: high watermark} from {key: (partition, offset)} acknowledgements."""
    ends = {}
    for p, off in delivered.values():
        ends[p] = max(ends.get(p, 0), off + 1)
    return ends


def check_group_resume(c, label, delivered, first, committed, second, n_partitions=N_PARTITIONS):
    """delivered: {key: (partition, offset)} of everything produced (offsets 0..n-1 per
    partition); first / second: [(partition, offset, key)] in the order the first and the second
    consumer of the group read them; committed: {partition: offset} the group held after the
    first consumer committed and closed (partitions it never read may be absent).

    Checks that the first consumer read, per partition, a prefix from offset 0; that the commit
    is exactly the next offset to read after that prefix; that the second consumer started each
    partition exactly at the committed offset (0 where nothing was committed) and read to the
    end in order; and that every message was read exactly once by the two together."""
    ends = end_offsets_of(delivered)

    def per_partition(reads):
        out = {p: [] for p in range(n_partitions)}
        problems = []
        for p, off, key in reads:
            if delivered.get(key) != (p, off):
                problems.append(f"key {key!r} read at {p}/{off}, acknowledged at {delivered.get(key)}")
            out.setdefault(p, []).append(off)
        return out, problems

    got1, problems1 = per_partition(first)
    prefix = {p: len(offs) for p, offs in got1.items()}
    for p, offs in got1.items():
        if offs != list(range(len(offs))):
            problems1.append(f"partition {p}: read offsets {offs[:6]}... (not 0..{len(offs) - 1} in order)")
    c.ok(not problems1 and first,
         f"{label}: first consumer read {len(first)} records, per partition offsets 0..k-1 in order "
         f"(k = {prefix})", "; ".join(problems1[:5]) or "read nothing")

    want_commit = {p: k for p, k in prefix.items() if k > 0}
    c.eq({p: o for p, o in committed.items() if o >= 0 or p in want_commit}, want_commit,
         f"{label}: committed offsets after the first consumer closed == next offset to read")

    got2, problems2 = per_partition(second)
    for p in range(n_partitions):
        start = committed.get(p, 0) if committed.get(p, -1) >= 0 else 0
        want = list(range(start, ends.get(p, 0)))
        if got2.get(p, []) != want:
            offs = got2.get(p, [])
            problems2.append(f"partition {p}: second consumer read {len(offs)} offsets "
                             f"{offs[:3]}...{offs[-2:]}, expected {start}..{ends.get(p, 0) - 1}")
    keys = [k for _, _, k in first] + [k for _, _, k in second]
    dups = len(keys) - len(set(keys))
    missing = len(set(delivered) - set(keys))
    if dups or missing:
        problems2.append(f"{dups} message(s) read twice, {missing} never read")
    c.ok(not problems2,
         f"{label}: second consumer of the group resumed exactly at the committed offsets and read "
         f"the other {len(second)}; all {len(delivered)} read exactly once",
         "; ".join(problems2[:5]))
    return not problems1 and not problems2


# ---------------------------------------------------------------------------------------------
# Scenarios that need a broker of their own (TLS listeners, SASL users): certificates made by
# `esker certs`, a broker started from $BROKER_BIN (exported by run.sh) on free ports with its
# own data directory, stopped with SIGTERM.
# ---------------------------------------------------------------------------------------------
def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def broker_bin():
    path = os.environ.get("BROKER_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "target", "release", "esker")
    return path


def make_certs(out_dir, clients=(), hostnames=()):
    """Runs `esker certs --out out_dir [--hostname H ...] [--client NAME ...]`.

    Returns {"ca": ca.pem, "ca_key": ca.key, "server": server.pem, "server_key": server.key,
    NAME: (NAME.pem, NAME.key) for each client}. Each call makes a new CA."""
    import subprocess

    cmd = [broker_bin(), "certs", "--out", out_dir]
    for h in hostnames:
        cmd += ["--hostname", h]
    for c in clients:
        cmd += ["--client", c]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    out = {
        "ca": os.path.join(out_dir, "ca.pem"),
        "ca_key": os.path.join(out_dir, "ca.key"),
        "server": os.path.join(out_dir, "server.pem"),
        "server_key": os.path.join(out_dir, "server.key"),
    }
    for c in clients:
        out[c] = (os.path.join(out_dir, f"{c}.pem"), os.path.join(out_dir, f"{c}.key"))
    return out


class OwnBroker:
    """A broker process of a scenario's own. listeners: names (SSL, SASL_SSL, PLAINTEXT, ... or
    names mapped by listener.security.protocol.map in `overrides`), each on a free port;
    overrides: ["key=value", ...]; kinesis=True also opens the Kinesis endpoint."""

    def __init__(self, listeners, overrides=(), kinesis=False, work_dir=None):
        import subprocess
        import tempfile

        self.work = work_dir or tempfile.mkdtemp(prefix="esker-own-")
        self.ports = {name: free_port() for name in listeners}
        self.kinesis_port = free_port() if kinesis else None
        self.log_path = os.path.join(self.work, "broker.log")
        args = [
            broker_bin(),
            "-o", "listeners=" + ",".join(f"{n}://127.0.0.1:{p}" for n, p in self.ports.items()),
            "-o", f"log.dirs={os.path.join(self.work, 'data')}",
            "-o", "num.partitions=1",
            "-o", "group.initial.rebalance.delay.ms=0",
            "-o", "metrics.listener=",
            "-o", f"kinesis.listener=127.0.0.1:{self.kinesis_port}" if kinesis else "kinesis.listener=",
        ]
        for o in overrides:
            args += ["-o", o]
        env = dict(os.environ, RUST_LOG=os.environ.get("COMPAT_RUST_LOG", "info"), NO_COLOR="1")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(30)

    def _wait_ready(self, timeout_s):
        import socket

        deadline = time.time() + timeout_s
        pending = list(self.ports.values()) + ([self.kinesis_port] if self.kinesis_port else [])
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.time() > deadline:
                raise RuntimeError(f"broker not listening after {timeout_s} s:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
                pending.pop(0)
            except OSError:
                time.sleep(0.1)

    def addr(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"

    def kinesis_endpoint(self, scheme="https"):
        return f"{scheme}://localhost:{self.kinesis_port}"

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def lines(self, level):
        """Log lines at `level` (ERROR, WARN, ...)."""
        import re

        pat = re.compile(r"^\S+\s+" + level + r"\b")
        return [l for l in self.log_text().splitlines() if pat.match(l)]

    def stop(self, timeout_s=30):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode

    def check_stopped_cleanly(self, c, label):
        """Stops the broker and records: exit 0 after a clean shutdown, no ERROR logged."""
        rc = self.stop()
        c.ok(rc == 0 and "clean shutdown complete" in self.log_text(),
             f"{label}: SIGTERM -> exit 0 after a clean shutdown", f"exit status {rc}")
        errors = self.lines("ERROR")
        c.ok(not errors, f"{label}: the broker logged no ERROR", "; ".join(errors[:5]))
        if c.failed:
            print(f"  --- {label}: last lines of {self.log_path} ---")
            for line in self.log_text().splitlines()[-30:]:
                print("    " + line)


def ck_produce(conf, topic, n, timeout_s):
    """confluent-kafka: produces n messages valued "message <i>"; returns (acknowledged count,
    first delivery error, client errors)."""
    from confluent_kafka import Producer

    errors = []
    # log_level 0: librdkafka's own log lines would repeat what error_cb collects, many times.
    p = Producer(dict(conf, **{"message.timeout.ms": timeout_s * 1000 // 2, "error_cb": errors.append,
                               "log_level": 0}))
    acked, failed = [], []

    def report(err, msg):
        (failed if err else acked).append(err or msg.offset())

    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"message {i}".encode(), on_delivery=report)
        p.poll(0)
    p.flush(timeout_s)
    return len(acked), (failed[0] if failed else None), errors


def ck_consume(conf, topic, n, timeout_s):
    """confluent-kafka: consumes up to n values from the beginning in a fresh group, until the
    deadline."""
    from confluent_kafka import Consumer, KafkaError

    c = Consumer(dict(conf, **{"group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                               "log_level": 0}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout_s
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                print(f"    consumer error: {m.error()}")
            continue
        got.append(m.value().decode())
    c.close()
    return got


def create_active_stream(client, name, shards=1, timeout_s=10.0):
    """CreateStream, then wait (DescribeStreamSummary) until the stream is ACTIVE; raises if it
    is not within timeout_s."""
    client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + timeout_s
    while True:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"stream {name} still {summary['StreamStatus']} after {timeout_s} s")
        time.sleep(0.1)
