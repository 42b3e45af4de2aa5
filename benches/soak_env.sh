# Sourced (not run) by benches/soak.sh and benches/crash_loop.sh, the two front ends of the
# load generator benches/soak.rs. It moves to the repository's top and builds what they run:
# the release broker unless BROKER is set, and the load generator in the dev profile (it
# shares the test dependencies' build). It sets
#   BROKER     the broker binary;
#   SOAK_TOOL  the load generator's binary;
#   SOAK_DATA  `--data-dir "$DATA_DIR"` when DATA_DIR is set (kept then, with the broker's log
#              in it), otherwise empty: the tool uses a temp dir and removes it.
# The tool starts, kills and reaps the broker itself, so the callers `exec` it and need no trap.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${CARGO_TARGET_DIR:-target}
if [ -z "${BROKER:-}" ]; then
  cargo build --release --bin esker -q
  BROKER=$target/release/esker
fi
SOAK_TOOL=$(cargo build --bench soak --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\/soak-[^"]*\)".*/\1/p' | tail -1)
if [ ! -x "$SOAK_TOOL" ]; then
  echo "could not build the load generator (cargo build --bench soak)" >&2
  exit 1
fi
SOAK_DATA=()
if [ -n "${DATA_DIR:-}" ]; then
  SOAK_DATA=(--data-dir "$DATA_DIR")
fi
