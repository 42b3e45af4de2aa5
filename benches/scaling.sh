#!/usr/bin/env bash
# Scaling sweep for issue 8: produce throughput of the in-process broker over shards,
# partitions and producers, printed as a Markdown table with each row's ratio to the first.
#
#   benches/scaling.sh                       # the default sweep below
#   SHARDS="1 2" PARTITIONS="1 64" PRODUCERS="1 16" RECORDS=300000 benches/scaling.sh
#   EXTRA="--acks -1" benches/scaling.sh     # any further flags for benches/throughput.rs
#
# Every row is one run of `cargo bench --bench throughput -- --mode produce ...` (rdkafka
# producers in the same process as the broker, so the clients share the machine's cores).
set -euo pipefail
cd "$(dirname "$0")/.."

SHARDS=${SHARDS:-"1 2"}
PARTITIONS=${PARTITIONS:-"1 4 16 64"}
PRODUCERS=${PRODUCERS:-"1 4 16"}
RECORDS=${RECORDS:-300000}
EXTRA=${EXTRA:-}

cargo bench --bench throughput --no-run -q
echo "cores: $(nproc); records per run: $RECORDS; extra flags: ${EXTRA:-none}"
echo
echo "| shards | partitions | producers | records/s | MB/s | ratio to first row |"
echo "|---|---|---|---|---|---|"
first=""
for s in $SHARDS; do
  for p in $PARTITIONS; do
    for n in $PRODUCERS; do
      # shellcheck disable=SC2086
      line=$(cargo bench -q --bench throughput -- --mode produce --no-loopback --no-disk \
        --shards "$s" --partitions "$p" --producers "$n" --num-records "$RECORDS" $EXTRA \
        | grep '^produce:')
      rps=$(sed -E 's/^produce: ([0-9]+) records\/s.*/\1/' <<<"$line")
      mbs=$(sed -E 's/^produce: [0-9]+ records\/s, ([0-9.]+) MB\/s.*/\1/' <<<"$line")
      first=${first:-$mbs}
      ratio=$(awk -v a="$mbs" -v b="$first" 'BEGIN { printf "%.2f", a / b }')
      echo "| $s | $p | $n | $rps | $mbs | $ratio |"
    done
  done
done
