#!/usr/bin/env bash
# kcat (Debian's kcat 1.7.1, librdkafka with OpenSSL) over TLS, against a broker of this
# scenario's own started from $BROKER_BIN: certificates from `esker certs`, an SSL listener with
# ssl.client.auth=required and a SASL_SSL listener with a PLAIN user.
#   - SSL with a client certificate: kcat -L lists the broker, -P produces, -C -e reads it back;
#   - SSL without a client certificate: refused at the handshake, kcat -P fails in time;
#   - SSL with a certificate from another CA: refused the same way;
#   - SASL_SSL + PLAIN (no client certificate): produce and consume;
#   - SIGTERM: exit 0 after a clean shutdown, no ERROR in the broker log.
# Every check runs even when an earlier one failed; the exit status is 1 if any failed.
set -euo pipefail

PY="${COMPAT_PY:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BROKER_BIN="${BROKER_BIN:-$HERE/../../target/release/esker}"
KCAT_TIMEOUT=20
TMP="$(mktemp -d)"
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

FAILS=0
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); echo "  ok   - $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "  FAIL - $*"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BROKER_BIN" certs --out "$TMP/certs" --client alice >/dev/null
"$BROKER_BIN" certs --out "$TMP/other" --client mallory >/dev/null
C="$TMP/certs"
SSL_PORT="$(free_port)"
SASL_PORT="$(free_port)"
LOG="$TMP/broker.log"
RUST_LOG="${COMPAT_RUST_LOG:-info}" NO_COLOR=1 "$BROKER_BIN" \
    -o "listeners=SSL://127.0.0.1:$SSL_PORT,SASL_SSL://127.0.0.1:$SASL_PORT" \
    -o "log.dirs=$TMP/data" -o num.partitions=1 -o kinesis.listener= -o metrics.listener= \
    -o "ssl.certificate.location=$C/server.pem" -o "ssl.key.location=$C/server.key" \
    -o "ssl.ca.location=$C/ca.pem" -o ssl.client.auth=required \
    -o sasl.enabled.mechanisms=PLAIN -o "sasl.plain.users=carol:carol-secret" \
    >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$SASL_PORT") 2>/dev/null; then break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$SSL_PORT") 2>/dev/null; then
    cat "$LOG"
    echo "ssl_kcat: broker did not start"
    exit 1
fi
echo "  broker: SSL 127.0.0.1:$SSL_PORT, SASL_SSL 127.0.0.1:$SASL_PORT"

BASE=(-X broker.address.family=v4 -X socket.timeout.ms=10000 -X "ssl.ca.location=$C/ca.pem")
SSL=(-b "127.0.0.1:$SSL_PORT" -X security.protocol=SSL "${BASE[@]}")
ALICE=("${SSL[@]}" -X "ssl.certificate.location=$C/alice.pem" -X "ssl.key.location=$C/alice.key")
SASL=(-b "127.0.0.1:$SASL_PORT" -X security.protocol=SASL_SSL "${BASE[@]}"
    -X sasl.mechanisms=PLAIN -X sasl.username=carol -X sasl.password=carol-secret)
kc() { # out kcat-args...: stdout to $out, stderr to $out.err
    local out=$1
    shift
    timeout "$KCAT_TIMEOUT" kcat -q "$@" >"$out" 2>"$out.err"
}

TOPIC="ssl-kcat-$$-$RANDOM"
seq 1 50 | sed 's/^/tls line /' >"$TMP/expected"

# 1. SSL with a client certificate.
if kc "$TMP/meta" "${ALICE[@]}" -L -J && grep -q "\"brokers\":\[{\"id\":0,\"name\":\"127.0.0.1:$SSL_PORT\"}\]" "$TMP/meta"; then
    pass "kcat -L over SSL with a client certificate lists the broker on the SSL port"
else
    fail "kcat -L over SSL: $(head -c 300 "$TMP/meta") $(head -c 300 "$TMP/meta.err")"
fi
if kc "$TMP/p1" "${ALICE[@]}" -P -t "$TOPIC" <"$TMP/expected"; then
    pass "kcat -P over SSL with a client certificate: 50 lines produced"
else
    fail "kcat -P over SSL: $(head -c 300 "$TMP/p1.err")"
fi
if kc "$TMP/c1" "${ALICE[@]}" -C -t "$TOPIC" -o beginning -e && cmp -s "$TMP/c1" "$TMP/expected"; then
    pass "kcat -C over SSL reads the 50 lines back in order"
else
    fail "kcat -C over SSL: got $(wc -l <"$TMP/c1") lines; $(head -c 300 "$TMP/c1.err")"
fi

# 2./3. Refused: no certificate, or one from another CA. The produce must fail in time (kcat
# exits non-zero once message.timeout.ms passes, or at once when every broker is down) and
# librdkafka must log the TLS failure (without -q).
refused() { # label kcat-args...
    local label=$1
    shift
    local start=$SECONDS rc=0
    echo "refused" | timeout "$KCAT_TIMEOUT" kcat "$@" -X message.timeout.ms=6000 -P -t "$TOPIC" \
        >"$TMP/r.out" 2>"$TMP/r.err" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
        pass "$label: kcat -P fails (exit $rc after $((SECONDS - start)) s)"
    else
        fail "$label: kcat -P exit $rc (expected a failure before the ${KCAT_TIMEOUT} s timeout)"
    fi
    if grep -qiE 'ssl|certificate|handshake' "$TMP/r.err"; then
        pass "$label: kcat reports the TLS failure ($(grep -ioE 'alert [a-z ]+|certificate [a-z ]+' "$TMP/r.err" | head -1))"
    else
        fail "$label: no TLS error reported: $(head -c 300 "$TMP/r.err")"
    fi
}
refused "SSL without a client certificate" "${SSL[@]}"
refused "SSL with a certificate from another CA" "${SSL[@]}" \
    -X "ssl.certificate.location=$TMP/other/mallory.pem" -X "ssl.key.location=$TMP/other/mallory.key"
if kc "$TMP/c2" "${ALICE[@]}" -C -t "$TOPIC" -o beginning -e && cmp -s "$TMP/c2" "$TMP/expected"; then
    pass "the refused clients wrote nothing; the broker still serves certificate holders"
else
    fail "after the refused clients: got $(wc -l <"$TMP/c2") lines; $(head -c 300 "$TMP/c2.err")"
fi

# 4. SASL_SSL with PLAIN.
TOPIC2="sasl-ssl-kcat-$$-$RANDOM"
if kc "$TMP/p3" "${SASL[@]}" -P -t "$TOPIC2" <"$TMP/expected"; then
    pass "kcat -P over SASL_SSL + PLAIN (no client certificate): 50 lines produced"
else
    fail "kcat -P over SASL_SSL: $(head -c 300 "$TMP/p3.err")"
fi
if kc "$TMP/c3" "${SASL[@]}" -C -t "$TOPIC2" -o beginning -e && cmp -s "$TMP/c3" "$TMP/expected"; then
    pass "kcat -C over SASL_SSL + PLAIN reads the 50 lines back"
else
    fail "kcat -C over SASL_SSL: got $(wc -l <"$TMP/c3") lines; $(head -c 300 "$TMP/c3.err")"
fi

# 5. SIGTERM: clean exit, no ERROR lines.
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
if [ "$rc" -eq 0 ] && grep -q "clean shutdown complete" "$LOG"; then
    pass "SIGTERM: the TLS broker exits 0 after a clean shutdown"
else
    fail "SIGTERM: exit $rc; $(tail -5 "$LOG")"
fi
if grep -qE '^\S+\s+ERROR' "$LOG"; then
    fail "the TLS broker logged ERROR lines: $(grep -E '^\S+\s+ERROR' "$LOG" | head -3)"
else
    pass "the TLS broker logged no ERROR ($(grep -cE '^\S+\s+WARN' "$LOG") WARN lines: the refused handshakes)"
fi

echo "ssl_kcat: $((CHECKS - FAILS)) passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
