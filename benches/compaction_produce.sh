#!/usr/bin/env bash
# What the log cleaner costs concurrent producers: the throughput tool (benches/throughput.rs)
# produces keyed records (a bounded key space, so keys repeat) into a compacted topic of an
# external esker broker, once with log.cleaner.enable=true and once with false, in the same
# run; the broker on CPU 0, the tool on CPU 1 (taskset). Prints the tool's MB/s and the
# broker's CPU seconds per GB for each, the cleaner's work during the run (its metrics) and
# the topic's size on disk at the end, then a Markdown table and the on/off ratios.
#
#   benches/compaction_produce.sh [--num-records N] [--key-space K] [extra throughput flags]
#
# Environment: BROKER_BIN (default $CARGO_TARGET_DIR/release/esker, built by
# `cargo build --release`), SEGMENT_BYTES (16777216), CLEANER_BACKOFF_MS (1000),
# BROKER_CPU (0), TOOL_CPU (1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BROKER_BIN="${BROKER_BIN:-$TARGET_DIR/release/esker}"
SEGMENT_BYTES="${SEGMENT_BYTES:-16777216}"
CLEANER_BACKOFF_MS="${CLEANER_BACKOFF_MS:-1000}"
BROKER_CPU="${BROKER_CPU:-0}"
TOOL_CPU="${TOOL_CPU:-1}"
NUM_RECORDS=1000000
KEY_SPACE=10000
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --num-records) NUM_RECORDS=$2; shift 2 ;;
        --key-space) KEY_SPACE=$2; shift 2 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done

[ -x "$BROKER_BIN" ] || { echo "no broker binary at $BROKER_BIN (cargo build --release)" >&2; exit 1; }
TOOL="$(cd "$ROOT" && cargo bench --bench throughput --no-run 2>&1 |
    sed -n 's/.*Executable benches\/throughput.rs (\(.*\))/\1/p' | tail -1)"
[ -x "$TOOL" ] || { echo "could not build the throughput tool" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

BROKER_PID=""
WORK=""
cleanup() {
    [ -n "$BROKER_PID" ] && kill -KILL "$BROKER_PID" 2>/dev/null || true
    [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT

metric() { # endpoint name
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

declare -A MBS CPU_GB PASSES READ_MB SIZE_MB
for cleaner in true false; do
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/esker-cbench.XXXXXX")"
    port="$(free_port)"
    mport="$(free_port)"
    taskset -c "$BROKER_CPU" "$BROKER_BIN" \
        -o "listeners=PLAINTEXT://127.0.0.1:$port" -o "log.dirs=$WORK/data" -o num.shards=1 \
        -o "log.cleaner.enable=$cleaner" -o "log.cleaner.backoff.ms=$CLEANER_BACKOFF_MS" \
        -o kinesis.listener= -o "metrics.listener=127.0.0.1:$mport" >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    echo "=== log.cleaner.enable=$cleaner (broker pid $BROKER_PID on CPU $BROKER_CPU, tool on CPU $TOOL_CPU)"
    out="$(taskset -c "$TOOL_CPU" "$TOOL" --bootstrap "127.0.0.1:$port" --broker-pid "$BROKER_PID" \
        --mode produce --num-records "$NUM_RECORDS" --key-space "$KEY_SPACE" --topic bench \
        --topic-config cleanup.policy=compact --topic-config "segment.bytes=$SEGMENT_BYTES" \
        --no-loopback --no-disk "${EXTRA[@]}")"
    echo "$out"
    MBS[$cleaner]="$(echo "$out" | sed -n 's/^produce: .* \([0-9.]*\) MB\/s.*/\1/p' | head -1)"
    CPU_GB[$cleaner]="$(echo "$out" | sed -n 's/^broker CPU during produce: .*, \([0-9.]*\) CPU-s per GB/\1/p')"
    PASSES[$cleaner]="$(metric "http://127.0.0.1:$mport" esker_log_cleaner_passes_total)"
    read_bytes="$(metric "http://127.0.0.1:$mport" esker_log_cleaner_read_bytes_total)"
    READ_MB[$cleaner]="$(awk -v b="${read_bytes:-0}" 'BEGIN { printf "%.0f", b / 1e6 }')"
    SIZE_MB[$cleaner]="$(du -sm "$WORK/data/bench-0" | cut -f1)"
    echo "cleaner passes ${PASSES[$cleaner]:-0}, read ${READ_MB[$cleaner]} MB; bench-0 on disk ${SIZE_MB[$cleaner]} MB"
    kill -TERM "$BROKER_PID"
    wait "$BROKER_PID" || true
    BROKER_PID=""
    rm -rf "$WORK"
    WORK=""
done

echo
echo "| log.cleaner.enable | produce MB/s | broker CPU-s per GB | cleaner passes (MB read) during the run | topic on disk after, MB |"
echo "|---|---|---|---|---|"
for cleaner in true false; do
    echo "| $cleaner | ${MBS[$cleaner]} | ${CPU_GB[$cleaner]} | ${PASSES[$cleaner]:-0} (${READ_MB[$cleaner]}) | ${SIZE_MB[$cleaner]} |"
done
awk -v a="${MBS[true]}" -v b="${MBS[false]}" -v c="${CPU_GB[true]}" -v d="${CPU_GB[false]}" \
    'BEGIN { printf "cleaner on / off: produce MB/s %.3f, broker CPU-s per GB %.3f\n", a / b, c / d }'
