"""SASL/SCRAM end to end with Python clients, against a broker of this scenario's own with a
SASL_SSL listener (certificates from `esker certs`):

  - confluent-kafka's AdminClient (logged in with PLAIN as the bootstrap user) creates
    SCRAM-SHA-512 and SCRAM-SHA-256 credentials with alter_user_scram_credentials, and
    describe_user_scram_credentials lists them (mechanism and iterations, never a secret);
  - confluent-kafka logs in with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, produces and consumes;
  - kafka-python logs in with SCRAM-SHA-512 and PLAIN, produces and consumes;
  - a wrong SCRAM password fails with an authentication error (both clients);
  - SIGTERM, a new broker on the same data directory: the SCRAM user logs in again (the
    credentials are durable, stored salted);
  - each broker exits 0 after a clean shutdown and logs no ERROR.

Every client operation runs under a timeout.
"""

import os
import shutil
import sys
import tempfile
import time
import uuid

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat_common import Checks, OwnBroker, ck_consume, ck_produce, make_certs  # noqa: E402

TIMEOUT_S = 15
N = 20
LISTENER = "SASL_SSL"


def conf(broker, certs, mechanism, user, password):
    return {
        "bootstrap.servers": broker.addr(LISTENER),
        "broker.address.family": "v4",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": certs["ca"],
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        "socket.timeout.ms": 10000,
    }


def kp_conf(broker, certs, mechanism, user, password):
    return dict(
        bootstrap_servers=broker.addr(LISTENER),
        security_protocol="SASL_SSL",
        ssl_cafile=certs["ca"],
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        request_timeout_ms=TIMEOUT_S * 1000,
    )


def kp_round_trip(c, label, cfg, topic, n):
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(max_block_ms=TIMEOUT_S * 1000, **cfg)
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"kp message {i}".encode()) for i in range(n)]
    offsets = [f.get(timeout=TIMEOUT_S).offset for f in futures]
    p.close(timeout=TIMEOUT_S)
    c.eq(len(offsets), n, f"{label}: kafka-python produced {n} messages")
    consumer = KafkaConsumer(topic, group_id=f"kp-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT_S * 1000, **cfg)
    got = []
    for m in consumer:
        got.append(m.value.decode())
        if len(got) == n:
            break
    consumer.close()
    c.eq(got, [f"kp message {i}" for i in range(n)], f"{label}: kafka-python consumed them back in order")


def kp_refused(c, label, cfg, broker):
    """kafka-python retries a refused login until max_block_ms instead of raising the
    authentication error, so the check is: no connection succeeds within the timeout, and the
    broker refused its SASL exchange (audit line) rather than anything else."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KpError

    before = broker.log_text().count("SASL authentication failed")
    start = time.time()
    try:
        p = KafkaProducer(**dict(cfg, max_block_ms=10_000))
        p.close(timeout=5)
        c.ok(False, f"{label}: kafka-python is refused", "connected")
    except KpError as e:
        took = time.time() - start
        refusals = broker.log_text().count("SASL authentication failed") - before
        c.ok(refusals > 0,
             f"{label}: kafka-python fails ({type(e).__name__} after {took:.1f} s) and the broker "
             f"refused its SASL login {refusals} time(s)",
             f"{type(e).__name__}: {e}; broker refusals: {refusals}")


def create_scram_users(c, broker, certs):
    admin = AdminClient(conf(broker, certs, "PLAIN", "admin", "admin-secret"))
    upserts = [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     b"alice-secret"),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"bob-secret"),
    ]
    futures = admin.alter_user_scram_credentials(upserts, request_timeout=TIMEOUT_S)
    for user, f in futures.items():
        try:
            f.result(timeout=TIMEOUT_S)
            c.ok(True, f"alter_user_scram_credentials created {user}")
        except Exception as e:  # noqa: BLE001
            c.ok(False, f"alter_user_scram_credentials created {user}", str(e))
    described = admin.describe_user_scram_credentials(["alice", "bob"], request_timeout=TIMEOUT_S)
    got = {}
    for user, f in described.items():
        d = f.result(timeout=TIMEOUT_S)
        got[user] = [(i.mechanism, i.iterations) for i in d.scram_credential_infos]
    c.eq(got, {"alice": [(ScramMechanism.SCRAM_SHA_512, 8192)], "bob": [(ScramMechanism.SCRAM_SHA_256, 4096)]},
         "describe_user_scram_credentials lists mechanism and iterations")


def start_broker(work, certs):
    return OwnBroker(
        [LISTENER],
        [
            f"ssl.certificate.location={certs['server']}",
            f"ssl.key.location={certs['server_key']}",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.plain.users=admin:admin-secret,carol:carol-secret",
        ],
        work_dir=work,
    )


def main():
    c = Checks("sasl_scram_test")
    work = tempfile.mkdtemp(prefix="esker-scram-")
    certs = make_certs(os.path.join(work, "certs"))
    broker = start_broker(work, certs)
    print(f"  broker: SASL_SSL {broker.addr(LISTENER)} (work {work})")
    try:
        create_scram_users(c, broker, certs)
        for mech, user in [("SCRAM-SHA-512", "alice"), ("SCRAM-SHA-256", "bob"), ("PLAIN", "carol")]:
            topic = f"scram-{uuid.uuid4().hex[:8]}"
            cfg = conf(broker, certs, mech, user, f"{user}-secret")
            acked, err, _ = ck_produce(cfg, topic, N, TIMEOUT_S)
            c.eq((acked, err), (N, None), f"confluent-kafka {mech} as {user}: {N} acknowledged")
            c.eq(ck_consume(cfg, topic, N, TIMEOUT_S), [f"message {i}" for i in range(N)],
                 f"confluent-kafka {mech}: consumed back in order")
        acked, err, errors = ck_produce(conf(broker, certs, "SCRAM-SHA-512", "alice", "wrong"), "scram-x", 1, TIMEOUT_S)
        c.ok(acked == 0 and err is not None, "confluent-kafka SCRAM-SHA-512 with a wrong password fails",
             f"acked={acked} err={err}")
        c.ok(any("Authentication" in str(e) or "SASL" in str(e) for e in errors),
             "wrong password: confluent-kafka reports an authentication failure",
             "; ".join(str(e) for e in errors[:3]))

        kp_round_trip(c, "kafka-python SCRAM-SHA-512", kp_conf(broker, certs, "SCRAM-SHA-512", "alice", "alice-secret"),
                      f"kp-scram-{uuid.uuid4().hex[:8]}", N)
        kp_round_trip(c, "kafka-python PLAIN", kp_conf(broker, certs, "PLAIN", "carol", "carol-secret"),
                      f"kp-plain-{uuid.uuid4().hex[:8]}", N)
        kp_refused(c, "kafka-python SCRAM-SHA-512 with a wrong password",
                   kp_conf(broker, certs, "SCRAM-SHA-512", "alice", "wrong"), broker)
    except Exception:  # noqa: BLE001 - any failure is a failed check, then the broker stops
        c.crash("sasl_scram scenario (first broker)")
    broker.check_stopped_cleanly(c, "SCRAM broker")

    # Same data directory, new process: the SCRAM credentials are durable.
    try:
        broker = start_broker(work, certs)
        topic = f"scram-after-restart-{uuid.uuid4().hex[:8]}"
        cfg = conf(broker, certs, "SCRAM-SHA-512", "alice", "alice-secret")
        acked, err, _ = ck_produce(cfg, topic, N, TIMEOUT_S)
        c.eq((acked, err), (N, None), "after a restart, alice logs in with SCRAM-SHA-512 and produces")
        c.eq(ck_consume(cfg, topic, N, TIMEOUT_S), [f"message {i}" for i in range(N)],
             "after a restart: consumed back")
        kp_round_trip(c, "after a restart, kafka-python SCRAM-SHA-256 as bob",
                      kp_conf(broker, certs, "SCRAM-SHA-256", "bob", "bob-secret"),
                      f"kp-after-{uuid.uuid4().hex[:8]}", N)
    except Exception:  # noqa: BLE001
        c.crash("sasl_scram scenario (restarted broker)")
    finally:
        broker.check_stopped_cleanly(c, "restarted SCRAM broker")
    if not c.failed:
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
