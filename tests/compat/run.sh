#!/usr/bin/env bash
# Client-compatibility suite: runs real Kafka clients (kcat, confluent-kafka and its AdminClient,
# kafka-python, aiokafka, kafkajs; their transactional producers and read_committed consumers in
# the *txn* / transactions scenarios; confluent-kafka on a compacted topic in compaction_test.py)
# and Kinesis clients (boto3, the AWS CLI; kinesis_diff.mjs compares raw requests' answers with
# kinesalite's) against a freshly built esker broker.
#
#   tests/compat/run.sh                 # every scenario
#   tests/compat/run.sh kcat.sh         # only the named scenario(s)
#
# It installs what it needs (kcat from Debian, a venv in tests/compat/.venv from
# requirements.txt, tests/compat/node_modules from package-lock.json with `npm ci`), builds the
# broker (`cargo build --release`), starts it on a free port with a temporary data directory,
# runs each scenario against it, stops it with SIGTERM and checks that it exited 0 after a clean
# shutdown and logged no ERROR. Exit status is non-zero if anything failed.
#
# console_test.mjs drives the web console in Debian's headless chromium (installed with apt-get
# when missing) through playwright-core and saves screenshots under
# <work directory>/console-screenshots (COMPAT_SCREENSHOTS=<dir> puts them elsewhere).
#
# Environment: COMPAT_KEEP=1 keeps the work directory (broker log, scenario output, data);
# COMPAT_RUST_LOG sets the broker's RUST_LOG (default "info"; the cluster scenarios' nodes keep
# openraft's own lines off unless it names openraft); COMPAT_SKIP_BUILD=1 uses the existing
# target/release/esker (under $CARGO_TARGET_DIR when that is set, as cargo does).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
SCENARIO_TIMEOUT=120      # seconds per scenario (each is expected to take well under a minute)
# A static broker setting that topics inherit (confluent_admin_test.py checks how DescribeConfigs
# reports it); 100 GiB, so it never deletes anything here.
LOG_RETENTION_BYTES=107374182400

log() { printf '[compat] %s\n' "$*"; }
die() { printf '[compat] FATAL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------------------------
install_kcat() {
    if command -v kcat >/dev/null 2>&1; then
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "kcat is missing and apt-get is not available"
    log "installing kcat with apt-get"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
    command -v kcat >/dev/null 2>&1 || die "kcat still missing after apt-get install"
}

# The console scenario drives Debian's chromium with playwright-core (no browser download).
install_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "chromium is missing and apt-get is not available"
    log "installing chromium with apt-get"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    [ -x /usr/bin/chromium ] || die "chromium still missing after apt-get install"
}

install_prometheus() {
    # Debian's package ships both binaries; its service is not used (the scenario starts its
    # own server on a free port). policy-rc.d keeps the postinst from starting it.
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "prometheus is missing and apt-get is not available"
    log "installing prometheus with apt-get"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        created=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    [ "$created" = 1 ] && $sudo rm -f "$policy"
    command -v prometheus >/dev/null 2>&1 || die "prometheus still missing after apt-get install"
    command -v promtool >/dev/null 2>&1 || die "promtool missing after apt-get install prometheus"
}

install_venv() {
    local req="$HERE/requirements.txt" stamp="$VENV/.requirements.stamp"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            log "python3 -m venv failed; installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        fi
    fi
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        "$VENV/bin/python" -c 'import confluent_kafka, kafka, snappy, lz4.frame, zstandard, boto3, aiokafka' 2>/dev/null; then
        return
    fi
    log "installing Python clients into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    "$VENV/bin/python" -c 'import confluent_kafka, kafka, snappy, lz4.frame, zstandard, boto3, aiokafka' ||
        die "Python client imports fail after pip install"
    echo "$want" >"$stamp"
}

# kafkajs: node_modules from package-lock.json (`npm ci`), redone when the lock file or the Node
# version changed since the last install.
install_node_modules() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "node/npm are missing and apt-get is not available"
        log "installing nodejs and npm with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    local stamp="$HERE/node_modules/.compat.stamp" want
    want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1) node $(node --version)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$HERE/node_modules/kafkajs/package.json" ]; then
        return
    fi
    log "installing Node clients (npm ci) into $HERE/node_modules"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
    echo "$want" >"$stamp"
}

# ---------------------------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------------------------
WORK=""
BROKER_PID=""
KEEP_WORK="${COMPAT_KEEP:-0}"

cleanup() {
    local rc=$?
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP_WORK" = 1 ]; then
            log "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

wait_for_port() { # port timeout_s
    local port=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
ALL_SCENARIOS=(kcat.sh confluent_kafka_test.py confluent_admin_test.py broker_configs_test.py kafka_python_test.py aiokafka_test.py
    kafkajs_test.mjs transactions_test.py kafka_python_txn_test.py kafkajs_txn_test.mjs
    kinesis_boto3_test.py kinesis_cli.sh kinesis_diff.mjs client_telemetry_test.py compaction_test.py prometheus_test.py
    ssl_kcat.sh ssl_confluent_test.py sasl_scram_test.py cluster_test.py replication_test.py console_test.mjs)
if [ $# -gt 0 ]; then
    SCENARIOS=("$@")
else
    SCENARIOS=("${ALL_SCENARIOS[@]}")
fi
for s in "${SCENARIOS[@]}"; do
    [ -f "$HERE/$s" ] || die "unknown scenario $s (known: ${ALL_SCENARIOS[*]})"
done

install_kcat
install_venv
log "kcat: $(kcat -V 2>&1 | sed -n 's/^Version //p')"
log "python clients: $("$VENV/bin/python" -c 'import confluent_kafka, kafka, aiokafka; print("confluent-kafka", confluent_kafka.__version__, "(librdkafka", confluent_kafka.libversion()[0] + "),", "kafka-python", kafka.__version__ + ",", "aiokafka", aiokafka.__version__)')"
case " ${SCENARIOS[*]} " in
    *.mjs\ *)
        install_node_modules
        log "node clients: kafkajs $(node -p "require('$HERE/node_modules/kafkajs/package.json').version") (node $(node --version))"
        ;;
esac

case " ${SCENARIOS[*]} " in
    *\ console_test.mjs\ *)
        install_chromium
        log "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
        ;;
esac

case " ${SCENARIOS[*]} " in
    *\ prometheus_test.py\ *)
        install_prometheus
        log "prometheus: $(prometheus --version 2>&1 | head -1)"
        ;;
esac

if [ "${COMPAT_SKIP_BUILD:-0}" != 1 ]; then
    log "building the broker (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
fi
# Where cargo put it: CARGO_TARGET_DIR (relative to the repository root, where cargo ran) or target/.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BROKER_BIN="$TARGET_DIR/release/esker"
[ -x "$BROKER_BIN" ] || die "$BROKER_BIN not found"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/esker-compat.XXXXXX")"
PORT="$(free_port)"
BOOTSTRAP="127.0.0.1:$PORT"
KINESIS_PORT="$(free_port)"
KINESIS_ENDPOINT="http://127.0.0.1:$KINESIS_PORT"
METRICS_PORT="$(free_port)"
METRICS_ENDPOINT="http://127.0.0.1:$METRICS_PORT"
BROKER_LOG="$WORK/broker.log"
log "starting broker on $BOOTSTRAP (data in $WORK/data, log $BROKER_LOG)"
# group.initial.rebalance.delay.ms=0: a group's first rebalance does not wait Kafka's 3 s.
# log.cleaner.backoff.ms and log.retention.check.interval.ms short: compaction_test.py's topic
# rolls after segment.ms=1 s and is cleaned within a second or two, not after 15 s / 5 min
# (retention.ms stays at its 7 days, so no other scenario's records are deleted).
RUST_LOG="${COMPAT_RUST_LOG:-info}" NO_COLOR=1 "$BROKER_BIN" \
    -o "listeners=PLAINTEXT://$BOOTSTRAP" \
    -o "log.dirs=$WORK/data" \
    -o num.partitions=1 \
    -o group.initial.rebalance.delay.ms=0 \
    -o log.cleaner.backoff.ms=500 \
    -o log.retention.check.interval.ms=500 \
    -o "log.retention.bytes=$LOG_RETENTION_BYTES" \
    -o "kinesis.listener=127.0.0.1:$KINESIS_PORT" \
    -o "metrics.listener=127.0.0.1:$METRICS_PORT" \
    >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
if ! wait_for_port "$PORT" 30; then
    sed 's/\x1b\[[0-9;]*m//g' "$BROKER_LOG" >&2
    die "broker did not open $BOOTSTRAP within 30 s"
fi
log "broker up (pid $BROKER_PID)"

export BOOTSTRAP COMPAT_PY="$VENV/bin/python" ESKER_DATA_DIR="$WORK/data" PYTHONUNBUFFERED=1
export COMPAT_LOG_RETENTION_BYTES="$LOG_RETENTION_BYTES"
export KINESIS_ENDPOINT COMPAT_AWS="$VENV/bin/aws"
export METRICS_ENDPOINT
# Scenarios that need special broker settings (TLS, SASL, a cluster, the console) start their own
# brokers from it; COMPAT_WORK is where they keep artefacts (console screenshots).
export BROKER_BIN COMPAT_WORK="$WORK"
declare -a RESULTS=()
PASSED=0
FAILED=0
record() { # name status detail
    RESULTS+=("$(printf '%-28s %s  %s' "$1" "$2" "$3")")
    if [ "$2" = PASS ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

for s in "${SCENARIOS[@]}"; do
    log "=== scenario $s ==="
    out="$WORK/${s%.*}.out"
    start=$SECONDS
    case "$s" in
        *.py) cmd=("$VENV/bin/python" "$HERE/$s") ;;
        *.mjs) cmd=(node "$HERE/$s") ;;
        *) cmd=(bash "$HERE/$s") ;;
    esac
    set +e
    timeout --kill-after=10 "$SCENARIO_TIMEOUT" "${cmd[@]}" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    took=$((SECONDS - start))
    # A scenario's one-line summary (the Kinesis differential test's counts) joins the table.
    summary="$(grep -h '^kinesis differential:' "$out" | tail -1 || true)"
    if [ "$rc" -eq 0 ]; then
        record "$s" PASS "${took}s${summary:+  ($summary)}"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        record "$s" FAIL "timed out after ${SCENARIO_TIMEOUT}s"
    else
        record "$s" FAIL "exit $rc after ${took}s${summary:+  ($summary)}"
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        log "broker died during $s"
        break
    fi
done

# Graceful shutdown: SIGTERM, then the broker must exit 0 after a clean shutdown.
if kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID"
    deadline=$((SECONDS + 30))
    while kill -0 "$BROKER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        record "broker shutdown (SIGTERM)" FAIL "still running 30 s after SIGTERM; killed"
    else
        set +e
        wait "$BROKER_PID"
        brc=$?
        set -e
        if [ "$brc" -ne 0 ]; then
            record "broker shutdown (SIGTERM)" FAIL "exit status $brc"
        elif ! grep -q "clean shutdown complete" "$BROKER_LOG"; then
            record "broker shutdown (SIGTERM)" FAIL "exit 0 but no 'clean shutdown complete' in the log"
        else
            record "broker shutdown (SIGTERM)" PASS "exit 0, clean shutdown"
        fi
    fi
else
    set +e
    wait "$BROKER_PID"
    brc=$?
    set -e
    record "broker shutdown (SIGTERM)" FAIL "broker exited on its own (status $brc) before SIGTERM"
fi
BROKER_PID=""

# The broker must not have logged an ERROR while serving the clients.
errors="$(sed 's/\x1b\[[0-9;]*m//g' "$BROKER_LOG" | grep -E '^\S+\s+ERROR' || true)"
warnings="$(sed 's/\x1b\[[0-9;]*m//g' "$BROKER_LOG" | grep -E '^\S+\s+WARN' || true)"
if [ -n "$errors" ]; then
    record "broker log has no ERROR" FAIL "$(printf '%s\n' "$errors" | wc -l) ERROR line(s)"
else
    record "broker log has no ERROR" PASS ""
fi

echo
if [ -n "$errors$warnings" ]; then
    log "broker ERROR/WARN lines (first 40):"
    printf '%s\n%s\n' "$errors" "$warnings" | sed '/^$/d' | head -40 | sed 's/^/    /'
fi
if [ "$FAILED" -ne 0 ]; then
    KEEP_WORK=1
    log "last 40 lines of the broker log:"
    sed 's/\x1b\[[0-9;]*m//g' "$BROKER_LOG" | tail -40 | sed 's/^/    /'
fi
echo
echo "================ esker client-compatibility summary ================"
for r in "${RESULTS[@]}"; do echo "  $r"; done
echo "===================================================================="
echo "compat: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
