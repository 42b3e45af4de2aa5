"""Records real client traffic against an esker broker as fuzz seed corpora.

    python fuzz/seeds/capture.py path/to/esker OUT_DIR

Starts the broker (temporary data directory) with a PLAINTEXT and a SASL_PLAINTEXT listener
behind a recording TCP proxy (the advertised addresses are the proxy's, so clients never
bypass it) and a SigV4-checking Kinesis endpoint, then drives it with real clients:
confluent-kafka (librdkafka: producers with each compression codec, idempotent and
transactional producers, a consumer group, the AdminClient), kafka-python, kcat, SASL PLAIN
and SCRAM-SHA-256/512 logins, and boto3 against Kinesis. It writes:

- OUT_DIR/kafka_request/: every request frame a client sent (without the 4-byte size prefix);
- OUT_DIR/sasl/: the SaslAuthenticate tokens, in the sasl target's input format
  (mechanism byte, u16 length, first message, second message);
- OUT_DIR/record_batch/: the record batches of the Produce requests (flag byte 0);
- OUT_DIR/kinesis_request/: boto3's request bodies (operation byte, body), and the same bodies
  re-encoded as CBOR as the Java SDK sends them (operation byte | 0x80);
- OUT_DIR/sigv4/: boto3's signed requests as raw HTTP (credentials AKIDFUZZ / fuzz-secret);
- OUT_DIR/config/: the broker's own properties file.

The Python packages come from tests/compat/requirements.txt (the compat venv).
"""

import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# The operation order of esker::fuzzing::KINESIS_OPERATIONS.
KINESIS_OPERATIONS = [
    "AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod", "DeleteStream",
    "DescribeLimits", "DescribeStream", "DescribeStreamSummary", "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring", "GetRecords", "GetShardIterator", "IncreaseStreamRetentionPeriod",
    "ListShards", "ListStreams", "ListTagsForStream", "PutRecord", "PutRecords",
    "RemoveTagsFromStream", "MergeShards", "SplitShard", "UpdateShardCount",
    "RegisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers",
    "DeregisterStreamConsumer", "SubscribeToShard", "StartStreamEncryption", "NoSuchOperation",
]
SASL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
# The sasl target's fixed server nonce.
SERVER_NONCE = "fuzzservernonce"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    def __init__(self):
        self.frames = []  # (listener, bytes)
        self.lock = threading.Lock()

    def add(self, listener, frame):
        with self.lock:
            self.frames.append((listener, frame))


def pump(src, dst, on_frame=None):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if on_frame is None:
                continue
            buf += data
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if len(buf) < 4 + size:
                    break
                on_frame(buf[4 : 4 + size])
                buf = buf[4 + size :]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, upstream_port, name, recorder):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)

    def serve():
        while True:
            client, _ = srv.accept()
            try:
                up = socket.create_connection(("127.0.0.1", upstream_port))
            except OSError:
                client.close()
                continue
            rec = lambda f: recorder.add(name, f)  # noqa: E731
            threading.Thread(target=pump, args=(client, up, rec), daemon=True).start()
            threading.Thread(target=pump, args=(up, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"port {port} never opened")


def run(what, fn):
    try:
        fn()
        print(f"[capture] {what}: ok")
    except Exception as e:  # noqa: BLE001 - a failed workload still leaves its frames
        print(f"[capture] {what}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------
# Kafka workloads
# ---------------------------------------------------------------------------------------------
def confluent_workloads(bootstrap, sasl_bootstrap):
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (
        AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
        ConfigResource, NewPartitions, NewTopic, OffsetSpec, ResourcePatternType, ResourceType,
        ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def create():
        fs = admin.create_topics([NewTopic("seed-a", 3, 1), NewTopic("seed-b", 1, 1,
                                  config={"cleanup.policy": "compact"})])
        for f in fs.values():
            f.result(30)
    run("create topics", create)

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        def produce(codec=codec):
            p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                          "linger.ms": 5, "enable.idempotence": codec == "zstd"})
            for i in range(20):
                p.produce("seed-a", key=f"k{i}".encode(), value=(f"value-{i}-" * 3).encode(),
                          headers=[("h", b"v")] if i % 2 else None)
            p.produce("seed-b", key=b"key", value=b"compacted")
            p.flush(30)
        run(f"produce {codec}", produce)

    def acks0():
        p = Producer({"bootstrap.servers": bootstrap, "acks": 0})
        p.produce("seed-a", value=b"fire and forget")
        p.flush(10)
    run("produce acks=0", acks0)

    def transactional():
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "seed-txn"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("seed-a", key=b"t", value=b"committed")
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce("seed-a", key=b"t", value=b"aborted")
        p.abort_transaction(30)
    run("transactional producer", transactional)

    def group():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-group",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "isolation.level": "read_committed"})
        c.subscribe(["seed-a"])
        got = 0
        deadline = time.time() + 20
        while got < 20 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        c.commit(asynchronous=False)
        c.committed([TopicPartition("seed-a", 0)], 10)
        c.get_watermark_offsets(TopicPartition("seed-a", 0), 10)
        c.offsets_for_times([TopicPartition("seed-a", 0, 0)], 10)
        c.close()
    run("consumer group", group)

    def admin_ops():
        admin.list_topics(timeout=10)
        admin.describe_cluster().result(10)
        admin.list_consumer_groups().result(10)
        admin.describe_consumer_groups(["seed-group"])["seed-group"].result(10)
        admin.list_consumer_group_offsets(
            [confluent_kafka.ConsumerGroupTopicPartitions("seed-group")])["seed-group"].result(10)
        for f in admin.describe_configs([ConfigResource(ResourceType.TOPIC, "seed-a"),
                                         ConfigResource(ResourceType.BROKER, "1")]).values():
            f.result(10)
        admin.incremental_alter_configs([ConfigResource(
            ResourceType.TOPIC, "seed-a",
            incremental_configs=[confluent_kafka.admin.ConfigEntry(
                "retention.ms", "86400000",
                incremental_operation=confluent_kafka.admin.AlterConfigOpType.SET)])])
        admin.create_partitions([NewPartitions("seed-a", 4)])["seed-a"].result(10)
        admin.list_offsets({TopicPartition("seed-a", 0): OffsetSpec.latest(),
                            TopicPartition("seed-a", 1): OffsetSpec.earliest()})
        admin.delete_records([TopicPartition("seed-a", 1, 1)])
        binding = AclBinding(ResourceType.TOPIC, "seed-a", ResourcePatternType.LITERAL,
                             "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
        admin.create_acls([binding])[binding].result(10)
        flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
        admin.describe_acls(flt).result(10)
        admin.delete_acls([flt])[flt].result(10)
        admin.describe_user_scram_credentials().result(10)
        admin.describe_topics(confluent_kafka.TopicCollection(["seed-a"]))["seed-a"].result(10)
        admin.delete_consumer_groups(["seed-group"])
        time.sleep(1)
    run("admin", admin_ops)

    def scram_user():
        ups = [UserScramCredentialUpsertion("alice", ScramCredentialInfo(m, 4096),
                                            b"alice-secret")
               for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
        for f in admin.alter_user_scram_credentials(ups).values():
            f.result(10)
    run("scram users", scram_user)

    for mech in SASL_MECHANISMS:
        def login(mech=mech):
            p = Producer({"bootstrap.servers": sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                          "sasl.mechanism": mech, "sasl.username": "alice",
                          "sasl.password": "alice-secret"})
            p.produce("seed-a", value=f"via {mech}".encode())
            if p.flush(20) != 0:
                raise RuntimeError("not delivered")
        run(f"SASL {mech}", login)

    def delete():
        for f in admin.create_topics([NewTopic("seed-doomed", 1, 1)]).values():
            f.result(10)
        for f in admin.delete_topics(["seed-doomed"]).values():
            f.result(10)
    run("delete topic", delete)


def kafka_python_workloads(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    def produce_consume():
        p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
        for i in range(5):
            p.send("seed-a", key=b"kp", value=f"kafka-python {i}".encode())
        p.flush(10)
        p.close()
        c = KafkaConsumer("seed-a", bootstrap_servers=bootstrap, group_id="seed-kp",
                          auto_offset_reset="earliest", consumer_timeout_ms=3000)
        for _ in c:
            pass
        c.commit()
        c.close()
    run("kafka-python", produce_consume)

    def admin():
        a = KafkaAdminClient(bootstrap_servers=bootstrap)
        a.list_consumer_group_offsets("seed-kp")
        a.close()
    run("kafka-python admin", admin)


def kcat_workloads(bootstrap):
    if shutil.which("kcat") is None:
        print("[capture] kcat: not installed")
        return
    run("kcat -L", lambda: subprocess.run(["kcat", "-b", bootstrap, "-L"], check=True,
                                          capture_output=True, timeout=30))
    run("kcat -P", lambda: subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "seed-a", "-K:"],
                                          input=b"k:v\nk2:v2\n", check=True,
                                          capture_output=True, timeout=30))
    run("kcat -C", lambda: subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "seed-a", "-e",
                                           "-o", "beginning", "-c", "10"], check=True,
                                          capture_output=True, timeout=30))


# ---------------------------------------------------------------------------------------------
# Kinesis
# ---------------------------------------------------------------------------------------------
def cbor(value):
    """A minimal CBOR encoder for the shapes of Kinesis requests (Data fields as byte strings,
    as the Java SDK sends them)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for add, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | add]) + struct.pack(fmt, n)
        raise ValueError(n)

    def enc(v, key=None):
        if isinstance(v, bool):
            return b"\xf5" if v else b"\xf4"
        if isinstance(v, int):
            return head(0, v) if v >= 0 else head(1, -1 - v)
        if isinstance(v, float):
            return b"\xfb" + struct.pack(">d", v)
        if isinstance(v, str):
            if key == "Data":
                raw = base64.b64decode(v)
                return head(2, len(raw)) + raw
            b = v.encode()
            return head(3, len(b)) + b
        if isinstance(v, list):
            return head(4, len(v)) + b"".join(enc(x, key) for x in v)
        if isinstance(v, dict):
            return head(5, len(v)) + b"".join(enc(k) + enc(x, k) for k, x in v.items())
        if v is None:
            return b"\xf6"
        raise TypeError(type(v))
    return enc(value)


def kinesis_workloads(endpoint, out):
    import boto3
    import botocore.config

    k = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="AKIDFUZZ", aws_secret_access_key="fuzz-secret",
                     config=botocore.config.Config(retries={"max_attempts": 1}))

    def before_send(request, **_):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        op = target.split(".", 1)[-1]
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        if op in KINESIS_OPERATIONS:
            idx = KINESIS_OPERATIONS.index(op)
            save(out, "kinesis_request", bytes([idx]) + body)
            try:
                save(out, "kinesis_request", bytes([idx | 0x80]) + cbor(json.loads(body or b"{}")))
            except (ValueError, TypeError):
                pass
        from urllib.parse import urlsplit
        url = urlsplit(request.url)
        target_path = url.path + ("?" + url.query if url.query else "")
        lines = [f"{request.method} {target_path} HTTP/1.1", f"Host: {url.netloc}"]
        for name, value in request.headers.items():
            value = value.decode() if isinstance(value, bytes) else value
            lines.append(f"{name}: {value}")
        save(out, "sigv4", ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return None

    k.meta.events.register("before-send.kinesis.*", before_send)

    def streams():
        k.create_stream(StreamName="seed-stream", ShardCount=2)
        k.describe_stream(StreamName="seed-stream")
        k.describe_stream_summary(StreamName="seed-stream")
        k.list_streams()
        shards = k.list_shards(StreamName="seed-stream")["Shards"]
        put = k.put_record(StreamName="seed-stream", PartitionKey="pk", Data=b"hello kinesis")
        k.put_record(StreamName="seed-stream", PartitionKey="pk2", Data=b"\x00\x01binary",
                     ExplicitHashKey=str(2**127))
        k.put_records(StreamName="seed-stream",
                      Records=[{"PartitionKey": f"pk{i}", "Data": f"rec {i}".encode()}
                               for i in range(5)])
        for itype in ("TRIM_HORIZON", "LATEST"):
            it = k.get_shard_iterator(StreamName="seed-stream", ShardId=shards[0]["ShardId"],
                                      ShardIteratorType=itype)["ShardIterator"]
            k.get_records(ShardIterator=it, Limit=10)
        k.get_shard_iterator(StreamName="seed-stream", ShardId=shards[0]["ShardId"],
                             ShardIteratorType="AT_SEQUENCE_NUMBER",
                             StartingSequenceNumber=put["SequenceNumber"])
        k.get_shard_iterator(StreamName="seed-stream", ShardId=shards[0]["ShardId"],
                             ShardIteratorType="AT_TIMESTAMP", Timestamp=time.time() - 60)
        k.add_tags_to_stream(StreamName="seed-stream", Tags={"team": "fuzz"})
        k.list_tags_for_stream(StreamName="seed-stream")
        k.remove_tags_from_stream(StreamName="seed-stream", TagKeys=["team"])
        k.increase_stream_retention_period(StreamName="seed-stream", RetentionPeriodHours=48)
        k.decrease_stream_retention_period(StreamName="seed-stream", RetentionPeriodHours=24)
        k.enable_enhanced_monitoring(StreamName="seed-stream", ShardLevelMetrics=["ALL"])
        k.disable_enhanced_monitoring(StreamName="seed-stream", ShardLevelMetrics=["ALL"])
        k.describe_limits()
        arn = k.describe_stream_summary(StreamName="seed-stream")["StreamDescriptionSummary"]["StreamARN"]
        c = k.register_stream_consumer(StreamARN=arn, ConsumerName="seed-consumer")
        k.describe_stream_consumer(StreamARN=arn, ConsumerName="seed-consumer")
        k.list_stream_consumers(StreamARN=arn)
        k.deregister_stream_consumer(StreamARN=arn, ConsumerARN=c["Consumer"]["ConsumerARN"])
        k.split_shard(StreamName="seed-stream", ShardToSplit=shards[0]["ShardId"],
                      NewStartingHashKey=str(2**126))
        time.sleep(0.5)
        k.update_shard_count(StreamName="seed-stream", TargetShardCount=4,
                             ScalingType="UNIFORM_SCALING")
        time.sleep(0.5)
        shards = k.list_shards(StreamName="seed-stream")["Shards"]
        open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
        if len(open_shards) >= 2:
            k.merge_shards(StreamName="seed-stream", ShardToMerge=open_shards[0]["ShardId"],
                           AdjacentShardToMerge=open_shards[1]["ShardId"])
        k.delete_stream(StreamName="seed-stream", EnforceConsumerDeletion=True)
    run("boto3 kinesis", streams)

    def errors():
        for call in (lambda: k.describe_stream(StreamName="no-such-stream"),
                     lambda: k.get_records(ShardIterator="bm90IGFuIGl0ZXJhdG9y"),
                     lambda: k.create_stream(StreamName="bad name!", ShardCount=1)):
            try:
                call()
            except Exception:  # noqa: BLE001 - the request is what we want
                pass
    run("boto3 kinesis errors", errors)


# ---------------------------------------------------------------------------------------------
# Corpus files
# ---------------------------------------------------------------------------------------------
def save(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def header_end(frame, flexible):
    """The offset after a request header (v1 or v2)."""
    pos = 8
    (n,) = struct.unpack(">h", frame[pos : pos + 2])
    pos += 2 + max(n, 0)
    if flexible:
        count, pos = uvarint(frame, pos)
        for _ in range(count):
            _, pos = uvarint(frame, pos)
            size, pos = uvarint(frame, pos)
            pos += size
    return pos


def sasl_tokens(frames):
    """SaslAuthenticate tokens per SASL connection order: [(mechanism, [tokens])]."""
    exchanges, current = [], None
    for listener, f in frames:
        if listener != "sasl" or len(f) < 8:
            continue
        key, version = struct.unpack(">hh", f[:4])
        if key == 17:  # SaslHandshake: a mechanism string after the v1 header
            pos = header_end(f, False)
            (n,) = struct.unpack(">h", f[pos : pos + 2])
            current = (f[pos + 2 : pos + 2 + n].decode(), [])
            exchanges.append(current)
        elif key == 36 and current is not None:  # SaslAuthenticate
            pos = header_end(f, version >= 2)
            if version >= 2:
                n, pos = uvarint(f, pos)
                n -= 1
            else:
                (n,) = struct.unpack(">i", f[pos : pos + 4])
                pos += 4
            current[1].append(f[pos : pos + n])
    return exchanges


def produce_batches(frames):
    """The record-batch bytes of each Produce request (versions 3+; v9+ is flexible)."""
    for _, f in frames:
        key, version = struct.unpack(">hh", f[:4])
        if key != 0:
            continue
        flex = version >= 9
        try:
            pos = header_end(f, flex)

            def string(pos):
                if flex:
                    n, pos = uvarint(f, pos)
                    return pos + max(n - 1, 0)
                (n,) = struct.unpack(">h", f[pos : pos + 2])
                return pos + 2 + max(n, 0)

            pos = string(pos)  # transactional id
            pos += 2 + 4  # acks, timeout
            if flex:
                topics, pos = uvarint(f, pos)
                topics -= 1
            else:
                (topics,) = struct.unpack(">i", f[pos : pos + 4])
                pos += 4
            for _ in range(topics):
                pos = string(pos)
                if flex:
                    parts, pos = uvarint(f, pos)
                    parts -= 1
                else:
                    (parts,) = struct.unpack(">i", f[pos : pos + 4])
                    pos += 4
                for _ in range(parts):
                    pos += 4
                    if flex:
                        n, pos = uvarint(f, pos)
                        n -= 1
                    else:
                        (n,) = struct.unpack(">i", f[pos : pos + 4])
                        pos += 4
                    if n > 0:
                        yield f[pos : pos + n]
                        pos += n
                    if flex:
                        pos = header_end(b"\0" * 8 + b"\xff\xff" + f[pos:], True) - 10 + pos
                if flex:
                    pos = header_end(b"\0" * 8 + b"\xff\xff" + f[pos:], True) - 10 + pos
        except (struct.error, IndexError):
            continue


def main():
    esker, out = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="esker-capture-")
    ports = {k: free_port() for k in ("plain", "sasl", "proxy_plain", "proxy_sasl", "kinesis")}
    props = {
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{ports['plain']},SASL_PLAINTEXT://127.0.0.1:{ports['sasl']}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports['proxy_plain']},"
                                f"SASL_PLAINTEXT://127.0.0.1:{ports['proxy_sasl']}",
        "log.dirs": os.path.join(work, "data"),
        "num.partitions": "1",
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "sasl.plain.users": "alice:alice-secret",
        "kinesis.listener": f"127.0.0.1:{ports['kinesis']}",
        "kinesis.auth": "sigv4",
        "kinesis.credentials": "AKIDFUZZ:fuzz-secret:alice",
        "metrics.listener": "",
    }
    path = os.path.join(work, "server.properties")
    with open(path, "w") as f:
        f.write("# esker broker used to record fuzz seeds\n")
        for k, v in props.items():
            f.write(f"{k}={v}\n")
    recorder = Recorder()
    proxy(ports["proxy_plain"], ports["plain"], "plain", recorder)
    proxy(ports["proxy_sasl"], ports["sasl"], "sasl", recorder)
    log = open(os.path.join(work, "broker.log"), "w")
    broker = subprocess.Popen([esker, "--config", path], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_port(ports["plain"])
        wait_port(ports["kinesis"])
        bootstrap = f"127.0.0.1:{ports['proxy_plain']}"
        confluent_workloads(bootstrap, f"127.0.0.1:{ports['proxy_sasl']}")
        kafka_python_workloads(bootstrap)
        kcat_workloads(bootstrap)
        kinesis_workloads(f"http://127.0.0.1:{ports['kinesis']}", out)
    finally:
        broker.terminate()
        broker.wait(30)
    frames = list(recorder.frames)
    for _, f in frames:
        save(out, "kafka_request", f)
    for mech, tokens in sasl_tokens(frames):
        if mech not in SASL_MECHANISMS or not tokens:
            continue
        first = tokens[0]
        second = tokens[1] if len(tokens) > 1 else b""
        if mech.startswith("SCRAM") and second:
            # The sasl target answers client-first with a fixed server nonce: make the
            # recorded client-final carry it, so the seed reaches the proof check.
            attrs = dict(a.split("=", 1) for a in first.decode().split(",") if "=" in a)
            nonce = attrs.get("r", "") + SERVER_NONCE
            second = b",".join(b"r=" + nonce.encode() if p.startswith(b"r=") else p
                               for p in second.split(b","))
        save(out, "sasl", bytes([SASL_MECHANISMS.index(mech)]) + struct.pack(">H", len(first))
             + first + second)
    for b in produce_batches(frames):
        save(out, "record_batch", b"\x00" + b)
    with open(path, "rb") as f:
        save(out, "config", f.read())
    for t in sorted(os.listdir(out)):
        print(f"[capture] {t}: {len(os.listdir(os.path.join(out, t)))} files")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
