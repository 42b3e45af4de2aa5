#!/usr/bin/env bash
# Builds every fuzz target once and runs each for a time budget (libFuzzer via cargo-fuzz).
#
#   fuzz/run.sh [seconds-per-target] [target...]     # default 60 s, every target
#
# Toolchain: cargo-fuzz needs nightly-only flags (-Z sanitizer, -C passes). A nightly toolchain
# is used when rustup has one; otherwise the stable one with RUSTC_BOOTSTRAP=1 (stable ships
# the same compiler). AddressSanitizer is used when the toolchain ships its runtime
# (librustc-*_rt.asan.a), otherwise --sanitizer none. cargo-fuzz is installed with
# `cargo install cargo-fuzz --locked` when missing.
#
# Each run starts from the committed corpus fuzz/corpus/<target> (read only: new inputs go to
# a scratch directory, so a run never changes the repository) and prints runs, execs/s,
# corpus size and crashes. Crashing inputs land in fuzz/artifacts/<target>/; the script exits
# non-zero if any target crashed, timed out (-timeout, default 10 s per input) or failed to
# build.
#
# Build: `--dev` with opt-level 1 (fuzz/Cargo.toml), which keeps the cold build of the broker
# and its dependencies short on 2 cores; FUZZ_RELEASE=1 builds cargo-fuzz's default (release
# with debug assertions) for long runs.
#
# Environment: FUZZ_TARGET_DIR (default fuzz/target), FUZZ_TOOLCHAIN (+nightly / +stable to
# force one), FUZZ_SANITIZER (address / none), FUZZ_ARGS (extra libFuzzer
# flags), FUZZ_KEEP_CORPUS=1 (merge new inputs back into fuzz/corpus/<target> at the end, for
# long local runs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(kafka_request record_batch sasl kinesis_request sigv4 config)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
TARGET_DIR="${FUZZ_TARGET_DIR:-$HERE/target}"

log() { printf '[fuzz] %s\n' "$*"; }

# --- cargo-fuzz ---------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# --- toolchain ----------------------------------------------------------------------------
TOOLCHAIN="${FUZZ_TOOLCHAIN:-}"
if [ -z "$TOOLCHAIN" ]; then
    if command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        TOOLCHAIN="+nightly"
    else
        TOOLCHAIN="+stable"
    fi
fi
if [ "$TOOLCHAIN" != "+nightly" ]; then
    # The stable compiler accepts the nightly flags cargo-fuzz passes when told it may.
    export RUSTC_BOOTSTRAP=1
fi
if ! command -v rustup >/dev/null 2>&1; then
    TOOLCHAIN=""
fi
SYSROOT="$(rustc ${TOOLCHAIN} --print sysroot)"
HOST="$(rustc ${TOOLCHAIN} -vV | sed -n 's/^host: //p')"
SANITIZER="${FUZZ_SANITIZER:-}"
if [ -z "$SANITIZER" ]; then
    if ls "$SYSROOT/lib/rustlib/$HOST/lib/"librustc-*_rt.asan.a >/dev/null 2>&1; then
        SANITIZER=address
    else
        SANITIZER=none
    fi
fi
log "toolchain ${TOOLCHAIN:-default} ($(rustc ${TOOLCHAIN} --version)), sanitizer $SANITIZER, ${SECONDS_PER_TARGET}s per target"

# --- build --------------------------------------------------------------------------------
build_start=$(date +%s)
MODE=(--dev)
[ "${FUZZ_RELEASE:-0}" = 1 ] && MODE=(--release --debug-assertions)
# shellcheck disable=SC2086
cargo ${TOOLCHAIN} fuzz build "${MODE[@]}" --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR"
log "built in $(( $(date +%s) - build_start ))s"

# --- run ----------------------------------------------------------------------------------
failed=0
passed_targets=0
failed_targets=0
SUMMARY=()
for t in "${TARGETS[@]}"; do
    corpus="$HERE/corpus/$t"
    mkdir -p "$corpus" "$HERE/artifacts/$t"
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/esker-fuzz-corpus-$t.XXXXXX")"
    out="$(mktemp "${TMPDIR:-/tmp}/esker-fuzz-out-$t.XXXXXX")"
    before=$(find "$HERE/artifacts/$t" -type f | wc -l)
    set +e
    # shellcheck disable=SC2086
    cargo ${TOOLCHAIN} fuzz run "${MODE[@]}" --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" "$t" \
        "$scratch" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$HERE/artifacts/$t/" ${FUZZ_ARGS:-} \
        >"$out" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$out" | tail -1)
    size=$(( $(find "$corpus" -type f | wc -l) + $(find "$scratch" -type f | wc -l) ))
    crashes=$(( $(find "$HERE/artifacts/$t" -type f | wc -l) - before ))
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        failed_targets=$((failed_targets + 1))
        log "$t FAILED (exit $rc); the end of its log:"
        tail -60 "$out" | sed 's/^/    /'
    else
        passed_targets=$((passed_targets + 1))
    fi
    if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
        cp -n "$scratch"/* "$corpus"/ 2>/dev/null || true
    fi
    line="$(printf '%-16s runs %-9s execs/s %-6s corpus %-5s new %-5s crashes %s' \
        "$t" "${runs:-?}" "${eps:-?}" "$size" "${new:-?}" "$crashes")"
    log "$line"
    SUMMARY+=("$line")
    rm -rf "$scratch" "$out" "${TMPDIR:-/tmp}"/esker-fuzz-kafka-* "${TMPDIR:-/tmp}"/esker-fuzz-partition-* \
        "${TMPDIR:-/tmp}"/esker-fuzz-sasl-* "${TMPDIR:-/tmp}"/esker-fuzz-kinesis-*
done

log "summary (${SECONDS_PER_TARGET}s per target):"
for line in "${SUMMARY[@]}"; do
    log "  $line"
done
echo "fuzz: $passed_targets passed, $failed_targets failed"
exit "$failed"
