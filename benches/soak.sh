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
# Builds with benches/soak_env.sh: the release broker unless BROKER is set, the load generator
# in the dev profile. The data directory is a temp dir unless DATA_DIR is set (kept then, with
# the broker's log in it).
set -euo pipefail
DURATION=${1:-3600}
shift || true
# shellcheck source=benches/soak_env.sh
source "$(dirname "$0")/soak_env.sh"
BROKER_CPUS=${BROKER_CPUS:-0}
TOOL_CPUS=${TOOL_CPUS:-1}
exec taskset -c "$TOOL_CPUS" "$SOAK_TOOL" --broker "$BROKER" --broker-cpus "$BROKER_CPUS" \
  "${SOAK_DATA[@]}" soak --duration-secs "$DURATION" "$@"
