#!/usr/bin/env bash
# Crash-loop benchmark (issue 19): ROUNDS rounds of start a release broker, acks=all producers
# on 32 partitions, SIGKILL at a random moment, restart, and check that every record
# acknowledged so far (in any round) is stored at the partition and offset it was acknowledged
# at, by content (round, producer, sequence number), and that nothing is stored twice. Prints
# one line per round and a summary: rounds, records acknowledged, checks, lost. Exits 1 if
# anything acknowledged was lost.
#
#   benches/crash_loop.sh                # 100 rounds
#   benches/crash_loop.sh 300 --producers 16 --partitions 64 --seed 42
#   BROKER=/path/to/esker DATA_DIR=/tmp/crash benches/crash_loop.sh 10
#
# Builds with benches/soak_env.sh, as benches/soak.sh does (release broker unless BROKER is set,
# dev-profile load generator).
set -euo pipefail
ROUNDS=${1:-100}
shift || true
# shellcheck source=benches/soak_env.sh
source "$(dirname "$0")/soak_env.sh"
exec "$SOAK_TOOL" --broker "$BROKER" "${SOAK_DATA[@]}" crash-loop --rounds "$ROUNDS" "$@"
