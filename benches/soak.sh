#!/usr/bin/env bash
# Soak benchmark (issue 19): a release broker in its own process, pinned to core 0, and the load
# generator (benches/soak.rs) on core 1: an acks=all producer at a fixed rate, a steady consumer
# and churning consumers in one group, topics created, written and deleted, for DURATION
# seconds. Prints a Markdown row every minute (broker RSS, open fds, threads, records/s, produce
# latency p50/p99/max, churn counts) and a summary with RSS at start and end.
#
#   benches/soak.sh                      # one hour
#   benches/soak.sh 1200 --rate 5000     # 20 minutes, further flags for `soak` (see --help)
#   BROKER=/path/to/esker benches/soak.sh 600
#   BROKER_CPUS=0-1 TOOL_CPUS=2-3 benches/soak.sh
#
# The broker is built with `cargo build --release --bin esker` unless BROKER is set; the load
# generator is built in the dev profile (it shares the test dependencies' build). The data
# directory is a temp dir unless DATA_DIR is set (kept then, with the broker's log in it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-3600}
shift || true
target=${CARGO_TARGET_DIR:-target}
if [ -z "${BROKER:-}" ]; then
  cargo build --release --bin esker -q
  BROKER=$target/release/esker
fi
tool=$(cargo build --bench soak --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\/soak-[^"]*\)".*/\1/p' | tail -1)
BROKER_CPUS=${BROKER_CPUS:-0}
TOOL_CPUS=${TOOL_CPUS:-1}
data=()
[ -n "${DATA_DIR:-}" ] && data=(--data-dir "$DATA_DIR")
exec taskset -c "$TOOL_CPUS" "$tool" --broker "$BROKER" --broker-cpus "$BROKER_CPUS" "${data[@]}" \
  soak --duration-secs "$DURATION" "$@"
