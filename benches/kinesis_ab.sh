#!/usr/bin/env bash
# Kinesis PutRecords / GetRecords throughput of two (or more) Esker binaries, alternating in
# rounds so that a noisy machine hits each alike: each broker pinned to core 0, the AWS SDK load
# (benches/kinesis.rs with --endpoint) on core 1. Prints records/s and the broker's CPU seconds
# for each run, then the medians per binary. This is how issue 18's before/after figures were
# taken (docs/performance.md).
#
#   benches/kinesis_ab.sh before=/tmp/esker-old after=target/release/esker
#   ROUNDS=5 RECORDS=200000 benches/kinesis_ab.sh a=/path/one b=/path/two
#
# Build the binaries with `cargo build --release` at the commits to compare (a worktree each)
# and the load generator with `cargo bench --no-run --bench kinesis`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-100000}
BROKER_CPUS=${BROKER_CPUS:-0}
TOOL_CPUS=${TOOL_CPUS:-1}
[ $# -ge 1 ] || { sed -n 2,13p "$0"; exit 2; }
tool=${KINESIS_BENCH:-$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/kinesis-* 2>/dev/null | grep -v '\.d$' | head -n 1)}
[ -x "$tool" ] || { echo "no load generator: run cargo bench --no-run --bench kinesis" >&2; exit 2; }
tck=$(getconf CLK_TCK)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

run_one() { # name binary round
  local name=$1 bin=$2 round=$3 dir port pid t0 t1 out
  dir=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  taskset -c "$BROKER_CPUS" "$bin" -o "log.dirs=$dir/data" -o listeners=PLAINTEXT://127.0.0.1:0 \
    -o "kinesis.listener=127.0.0.1:$port" -o metrics.listener= >"$dir/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port" && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/broker.log" >&2; exit 1; }
    sleep 0.1
  done
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(taskset -c "$TOOL_CPUS" "$tool" --endpoint "http://127.0.0.1:$port" --records "$RECORDS" 2>&1 | grep 'records/s')
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  local cpu put get
  cpu=$(awk -v a="$t0" -v b="$t1" -v t="$tck" 'BEGIN {printf "%.2f", (b - a) / t}')
  put=$(echo "$out" | awk '/PutRecords/ {for (i = 1; i <= NF; i++) if ($(i + 1) == "records/s") print $i}')
  get=$(echo "$out" | awk '/GetRecords/ {for (i = 1; i <= NF; i++) if ($(i + 1) == "records/s") print $i}')
  printf '%-10s round %s  put %8s rec/s  get %8s rec/s  broker %s CPU-s  (load %s)\n' \
    "$name" "$round" "$put" "$get" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
  echo "$name $put $get $cpu" >>"$results"
}

for round in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    run_one "${spec%%=*}" "${spec#*=}" "$round"
  done
done
echo
echo "medians over $ROUNDS rounds of $RECORDS records:"
for spec in "$@"; do
  name=${spec%%=*}
  awk -v n="$name" '$1 == n {p[++c] = $2; g[c] = $3; u[c] = $4}
    function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    END {printf "%-10s put %8.0f rec/s  get %8.0f rec/s  broker %.2f CPU-s\n", n, med(p, c), med(g, c), med(u, c)}' "$results"
done
