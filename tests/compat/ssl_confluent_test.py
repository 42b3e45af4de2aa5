"""TLS with confluent-kafka (librdkafka with OpenSSL) and boto3, against a broker of this
scenario's own: certificates from `esker certs`, an SSL listener with ssl.client.auth=required,
a SASL_SSL listener with PLAIN users, and the Kinesis endpoint over HTTPS.

  - SSL with a client certificate signed by the CA: produce 200 messages, consume them back;
  - SSL without a certificate: refused at the handshake, the produce fails within its timeout;
  - SSL with a certificate from another CA: refused the same way;
  - SASL_SSL + PLAIN (no client certificate, KIP-684): produce and consume; a wrong password
    fails;
  - Kinesis over HTTPS with boto3 (verify=ca.pem): create a stream, put and get a record;
  - SIGTERM: exit 0 after a clean shutdown, no ERROR in the broker log.
"""

import os
import shutil
import sys
import tempfile
import time
import uuid


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat_common import (  # noqa: E402
    Checks, OwnBroker, ck_consume, ck_produce, create_active_stream, make_certs,
)

N = 200
TIMEOUT_S = 15


def ssl_conf(broker, certs, client=None, listener="SSL"):
    conf = {
        "bootstrap.servers": broker.addr(listener),
        "broker.address.family": "v4",
        "security.protocol": "SSL" if listener == "SSL" else "SASL_SSL",
        "ssl.ca.location": certs["ca"],
        "socket.timeout.ms": 10000,
    }
    if client:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = client
    return conf


def refused(c, label, conf, topic):
    start = time.time()
    acked, err, client_errors = ck_produce(conf, topic, 1, TIMEOUT_S)
    took = time.time() - start
    text = "; ".join(str(e) for e in client_errors[:3])
    c.ok(acked == 0 and err is not None and took < TIMEOUT_S + 5,
         f"{label}: refused, the produce fails within {TIMEOUT_S} s ({took:.1f} s: {err})",
         f"acked={acked} err={err} client errors: {text}")
    c.ok(any("SSL" in str(e) or "ssl" in str(e) or "certificate" in str(e) for e in client_errors),
         f"{label}: the client reports a TLS handshake failure", text or "no error reported")


def main():
    c = Checks("ssl_confluent_test")
    work = tempfile.mkdtemp(prefix="esker-ssl-confluent-")
    certs = make_certs(os.path.join(work, "certs"), clients=["alice"])
    other = make_certs(os.path.join(work, "other-ca"), clients=["mallory"])
    broker = OwnBroker(
        ["SSL", "SASL_SSL"],
        [
            f"ssl.certificate.location={certs['server']}",
            f"ssl.key.location={certs['server_key']}",
            f"ssl.ca.location={certs['ca']}",
            "ssl.client.auth=required",
            "sasl.enabled.mechanisms=PLAIN",
            "sasl.plain.users=carol:carol-secret",
            "kinesis.ssl.enabled=true",
        ],
        kinesis=True,
        work_dir=work,
    )
    print(f"  broker: SSL {broker.addr('SSL')}, SASL_SSL {broker.addr('SASL_SSL')}, "
          f"Kinesis {broker.kinesis_endpoint()} (work {work})")
    try:
        topic = f"ssl-{uuid.uuid4().hex[:8]}"
        alice = ssl_conf(broker, certs, certs["alice"])
        acked, err, _ = ck_produce(alice, topic, N, TIMEOUT_S)
        c.eq((acked, err), (N, None), f"SSL + client certificate: {N} messages acknowledged")
        got = ck_consume(alice, topic, N, TIMEOUT_S)
        c.eq(got, [f"message {i}" for i in range(N)], f"SSL + client certificate: {N} messages consumed back in order")

        refused(c, "SSL without a client certificate", ssl_conf(broker, certs), topic)
        refused(c, "SSL with a certificate from another CA", ssl_conf(broker, certs, other["mallory"]), topic)

        sasl = dict(ssl_conf(broker, certs, listener="SASL_SSL"),
                    **{"sasl.mechanism": "PLAIN", "sasl.username": "carol", "sasl.password": "carol-secret"})
        topic2 = f"sasl-ssl-{uuid.uuid4().hex[:8]}"
        acked, err, _ = ck_produce(sasl, topic2, 20, TIMEOUT_S)
        c.eq((acked, err), (20, None), "SASL_SSL + PLAIN without a client certificate: 20 acknowledged")
        c.eq(ck_consume(sasl, topic2, 20, TIMEOUT_S), [f"message {i}" for i in range(20)], "SASL_SSL + PLAIN: consumed back")
        acked, err, errors = ck_produce(dict(sasl, **{"sasl.password": "wrong"}), topic2, 1, TIMEOUT_S)
        c.ok(acked == 0 and err is not None, "SASL_SSL + PLAIN with a wrong password fails",
             f"acked={acked} err={err}")
        c.ok(any("Authentication" in str(e) or "SASL" in str(e) for e in errors),
             "SASL_SSL wrong password: the client reports an authentication failure",
             "; ".join(str(e) for e in errors[:3]))

        kinesis_https(c, broker, certs)
    except Exception:  # noqa: BLE001 - any failure is a failed check, then the broker stops
        c.crash("ssl_confluent scenario")
    finally:
        broker.check_stopped_cleanly(c, "TLS broker")
    if not c.failed:
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


def kinesis_https(c, broker, certs):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "kinesis",
        endpoint_url=broker.kinesis_endpoint("https"),
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        verify=certs["ca"],
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )
    name = f"tls-stream-{uuid.uuid4().hex[:6]}"
    create_active_stream(client, name)
    put = client.put_record(StreamName=name, Data=b"over https", PartitionKey="pk")
    it = client.get_shard_iterator(StreamName=name, ShardId=put["ShardId"],
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = client.get_records(ShardIterator=it)["Records"]
    c.eq([r["Data"] for r in records], [b"over https"],
         "Kinesis over HTTPS (boto3, verify=ca.pem): PutRecord then GetRecords")
    # A client that does not trust the CA refuses the endpoint.
    untrusting = boto3.client(
        "kinesis", endpoint_url=broker.kinesis_endpoint("https"), region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5),
    )
    try:
        untrusting.list_streams()
        c.ok(False, "Kinesis over HTTPS: a client not trusting the CA is refused", "request succeeded")
    except Exception as e:  # noqa: BLE001 - botocore raises SSLError wrapped in its own types
        c.ok("SSL" in type(e).__name__ or "certificate" in str(e).lower(),
             "Kinesis over HTTPS: a client not trusting the CA fails certificate verification", repr(e))


if __name__ == "__main__":
    main()
