#!/usr/bin/env bash
# kcat (Debian's kcat, with its bundled librdkafka) against the broker at $BOOTSTRAP:
#   - kcat -L (plain and JSON) lists broker 0 and the topic;
#   - kcat -P with keys (-K:) and headers (-H) produces N lines into a 1-partition topic, in two
#     groups separated by a known instant T (each group has its own headers);
#   - kcat -C -e -o beginning reads back exactly what was produced, in order;
#   - kcat -C -e -o -10 returns exactly the last 10;
#   - kcat -C -e -o s@T starts exactly at the first message of the second group, and
#     -o s@<timestamp of a message> starts at the first message with a timestamp >= it;
#   - consumer group (kcat -G, balanced consumer, auto-commit on exit) on a 3-partition topic:
#     a first member reads 40 of 90 messages (-c 40) and exits, a second resumes exactly at the
#     committed offsets and reads the other 50 (-e), a third finds nothing left; every message
#     once. (The topic is created with the venv's confluent-kafka AdminClient: kcat cannot.)
# Every check runs even when an earlier one failed; the exit status is 1 if any failed.
set -euo pipefail

: "${BOOTSTRAP:?BOOTSTRAP must be set (host:port of the broker)}"
PY="${COMPAT_PY:-python3}"
TOPIC="kcat-compat-$$-$RANDOM"
GROUP1=30
GROUP2=30
N=$((GROUP1 + GROUP2))
# A kcat call that the broker never answers must fail this scenario, not hang it.
KCAT_TIMEOUT=15

K=(kcat -q -b "$BOOTSTRAP" -X broker.address.family=v4 -X socket.timeout.ms=10000)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

FAILS=0
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); echo "  ok   - $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "  FAIL - $*"; }
now_ms() { "$PY" -c 'import time; print(time.time_ns() // 1000000)'; }
kc() { # run kcat with a timeout; stdout to $1, stderr to $1.err
    local out=$1
    shift
    timeout "$KCAT_TIMEOUT" "${K[@]}" "$@" >"$out" 2>"$out.err"
}
# Compare a file with the expected one; print a short diff on mismatch.
same() { # description expected actual
    if cmp -s "$2" "$3"; then
        pass "$1 ($(wc -l <"$3") lines)"
    else
        fail "$1: expected $(wc -l <"$2") lines, got $(wc -l <"$3"); diff (expected vs actual):"
        diff "$2" "$3" | head -20 | sed 's/^/         /' || true
        [ -s "$3.err" ] && sed 's/^/         kcat: /' "$3.err" | head -5
        return 0
    fi
}

echo "kcat scenario: topic $TOPIC, broker $BOOTSTRAP, $(kcat -V 2>&1 | sed -n 's/^Version //p')"

# --- Metadata: kcat -L -t (auto-creates the topic) and kcat -L -J --------------------------
if kc "$TMP/L.txt" -L -t "$TOPIC"; then
    if grep -Eq "^ *broker 0 at ${BOOTSTRAP//./\\.}( |\$)" "$TMP/L.txt" &&
        grep -q "topic \"$TOPIC\" with 1 partitions" "$TMP/L.txt" &&
        grep -Eq '^ *partition 0, leader 0, replicas: 0, isrs: 0' "$TMP/L.txt"; then
        pass "kcat -L -t: broker 0 at $BOOTSTRAP and topic $TOPIC (1 partition, leader 0) listed"
    else
        fail "kcat -L -t output lacks broker 0 / topic / partition 0 leader 0:"
        sed 's/^/         /' "$TMP/L.txt"
    fi
else
    fail "kcat -L -t failed (exit $?): $(head -3 "$TMP/L.txt.err")"
fi
if kc "$TMP/LJ.json" -L -J; then
    if "$PY" - "$TMP/LJ.json" "$TOPIC" "$BOOTSTRAP" <<'EOF'; then
import json, sys
md = json.load(open(sys.argv[1]))
topic, bootstrap = sys.argv[2], sys.argv[3]
brokers = {b["id"]: b["name"] for b in md["brokers"]}
assert brokers == {0: bootstrap}, f"brokers {brokers}, expected {{0: {bootstrap}}}"
assert md["controllerid"] == 0, f"controllerid {md['controllerid']}"
topics = {t["topic"]: t for t in md["topics"]}
assert topic in topics, f"{topic} not in {sorted(topics)}"
parts = topics[topic]["partitions"]
assert [p["partition"] for p in parts] == [0], parts
assert parts[0]["leader"] == 0 and "error" not in parts[0], parts[0]
EOF
        pass "kcat -L -J (all topics): brokers == {0: $BOOTSTRAP}, controller 0, $TOPIC has partition 0 led by 0"
    else
        fail "kcat -L -J content wrong: $(head -c 400 "$TMP/LJ.json")"
    fi
else
    fail "kcat -L -J failed: $(head -3 "$TMP/LJ.json.err")"
fi

# --- Produce two groups with keys and headers, around a known instant T ---------------------
# Line i: key "key-i", value "value i: ..." would break -K: (first ':' splits), so no ':' in values.
gen() { # from to
    for ((i = $1; i < $2; i++)); do
        printf 'key-%03d:value %d with spaces, commas=and equals %s\n' "$i" "$i" "$(printf 'x%.0s' $(seq 1 $((i % 7 + 1))))"
    done
}
gen 0 "$GROUP1" >"$TMP/in1.txt"
gen "$GROUP1" "$N" >"$TMP/in2.txt"
# Expected '%k|%s|%h' lines: group 1 carries headers a=b,src=kcat; group 2 carries a=c.
sed -e 's/:/|/' -e 's/$/|a=b,src=kcat/' "$TMP/in1.txt" >"$TMP/exp.txt"
sed -e 's/:/|/' -e 's/$/|a=c/' "$TMP/in2.txt" >>"$TMP/exp.txt"

# Each group is produced by several kcat -P runs (chunks of 10) so that the messages carry
# several distinct timestamps, which the s@<timestamp> checks below rely on.
produce_ok=1
produce_chunks() { # input-file header-args...
    local file=$1 start
    shift
    for ((start = 1; start <= $(wc -l <"$file"); start += 10)); do
        if ! sed -n "${start},$((start + 9))p" "$file" |
            timeout "$KCAT_TIMEOUT" "${K[@]}" -P -t "$TOPIC" -p 0 -K: "$@" 2>"$TMP/p.err"; then
            produce_ok=0
            fail "kcat -P of lines $start.. of $(basename "$file") failed: $(head -3 "$TMP/p.err")"
            return
        fi
        sleep 0.05
    done
}
produce_chunks "$TMP/in1.txt" -H a=b -H src=kcat
sleep 0.3
T="$(now_ms)"
sleep 0.3
produce_chunks "$TMP/in2.txt" -H a=c
[ "$produce_ok" = 1 ] && pass "kcat -P produced $N keyed lines with headers in $((N / 10)) runs (T=$T between the two groups)"

# --- Read back by absolute offset (Fetch only, no ListOffsets): offsets and timestamps -------
if kc "$TMP/abs.txt" -C -e -t "$TOPIC" -p 0 -o 0 -f '%p|%o|%T|%k|%s|%h\n'; then
    cut -d'|' -f4- "$TMP/abs.txt" >"$TMP/abs_kvh.txt"
    same "kcat -C -o 0 (absolute offset) returns the produced keys/values/headers in order" "$TMP/exp.txt" "$TMP/abs_kvh.txt"
    seq 0 $((N - 1)) | sed 's/^/0|/' >"$TMP/exp_offsets.txt"
    cut -d'|' -f1,2 "$TMP/abs.txt" >"$TMP/abs_offsets.txt"
    same "offsets are 0..$((N - 1)) on partition 0" "$TMP/exp_offsets.txt" "$TMP/abs_offsets.txt"
    cut -d'|' -f3 "$TMP/abs.txt" >"$TMP/ts.txt"
    # Timestamps (CreateTime) are non-decreasing, group 1 before T, group 2 at or after T.
    if awk -v t="$T" -v g1="$GROUP1" '
        NR > 1 && $1 < prev { bad = "decreasing at line " NR }
        NR <= g1 && $1 >= t { bad = "group-1 message " NR - 1 " has ts " $1 " >= T" }
        NR > g1 && $1 < t { bad = "group-2 message " NR - 1 " has ts " $1 " < T" }
        { prev = $1 }
        END { if (bad) { print bad; exit 1 } if (NR == 0) { print "no messages"; exit 1 } }' "$TMP/ts.txt" >"$TMP/ts.check"; then
        pass "timestamps non-decreasing; group 1 < T <= group 2"
    else
        fail "timestamps: $(cat "$TMP/ts.check")"
    fi
else
    fail "kcat -C -o 0 failed or hung (exit $?): $(head -3 "$TMP/abs.txt.err")"
fi

# --- kcat -C -e -o beginning: exactly what was produced ---------------------------------------
if kc "$TMP/beg.txt" -C -e -t "$TOPIC" -o beginning -f '%k|%s|%h\n'; then
    same "kcat -C -o beginning reads back exactly the $N produced messages" "$TMP/exp.txt" "$TMP/beg.txt"
else
    fail "kcat -C -e -o beginning failed or hung (exit $?): $(head -3 "$TMP/beg.txt.err")"
fi

# --- kcat -C -e -o -10: exactly the last 10 --------------------------------------------------
tail -10 "$TMP/exp.txt" >"$TMP/exp_last10.txt"
if kc "$TMP/last10.txt" -C -e -t "$TOPIC" -o -10 -f '%k|%s|%h\n'; then
    same "kcat -C -o -10 returns exactly the last 10" "$TMP/exp_last10.txt" "$TMP/last10.txt"
else
    fail "kcat -C -e -o -10 failed or hung (exit $?): $(head -3 "$TMP/last10.txt.err")"
fi

# --- kcat -C -e -o s@T: starts at the first message of group 2 -------------------------------
sed -e 's/:/|/' -e 's/$/|a=c/' "$TMP/in2.txt" >"$TMP/exp_g2.txt"
if kc "$TMP/ts_T.txt" -C -e -t "$TOPIC" -o "s@$T" -f '%k|%s|%h\n'; then
    same "kcat -C -o s@$T starts at key-$(printf %03d "$GROUP1") (first message with ts >= T)" "$TMP/exp_g2.txt" "$TMP/ts_T.txt"
else
    fail "kcat -C -e -o s@$T failed or hung (exit $?): $(head -3 "$TMP/ts_T.txt.err")"
fi

# --- kcat -C -e -o s@<timestamp of a record> and s@<that timestamp + 1> -----------------------
# The expected start is computed from the timestamps read back above: the first offset whose
# timestamp is >= the probe (messages of one kcat run may share a millisecond).
if [ -s "${TMP}/ts.txt" ]; then
    probe=17
    ts_probe="$(sed -n "$((probe + 1))p" "$TMP/ts.txt")"
    for q in "$ts_probe" "$((ts_probe + 1))"; do
        first="$(awk -v t="$q" '$1 >= t { print NR - 1; exit }' "$TMP/ts.txt")"
        if [ -z "$first" ]; then
            fail "no message has a timestamp >= $q (timestamps: $(sort -u "$TMP/ts.txt" | tr '\n' ' '))"
            continue
        fi
        tail -n +"$((first + 1))" "$TMP/exp.txt" >"$TMP/exp_probe.txt"
        if kc "$TMP/ts_probe.txt" -C -e -t "$TOPIC" -o "s@$q" -f '%k|%s|%h\n'; then
            same "kcat -C -o s@$q (ts of offset $probe$([ "$q" = "$ts_probe" ] || echo ' + 1 ms')) starts at offset $first" \
                "$TMP/exp_probe.txt" "$TMP/ts_probe.txt"
        else
            fail "kcat -C -e -o s@$q failed or hung (exit $?): $(head -3 "$TMP/ts_probe.txt.err")"
        fi
    done
else
    fail "no timestamps read back; s@<message timestamp> checks skipped"
fi

# --- Consumer group: kcat -G reads part, commits on exit; the next member resumes -------------
GTOPIC="kcat-group-$$-$RANDOM"
GGROUP="kcat-group-$$-$RANDOM"
GPARTS=3
GPER=30
GFIRST=40
if "$PY" - "$BOOTSTRAP" "$GTOPIC" "$GPARTS" <<'EOF' >"$TMP/gcreate.err" 2>&1; then
import sys
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)])[topic].result(timeout=15)
EOF
    pass "created $GTOPIC with $GPARTS partitions"
else
    fail "could not create $GTOPIC: $(tail -3 "$TMP/gcreate.err")"
fi
gproduce_ok=1
for ((p = 0; p < GPARTS; p++)); do
    for ((i = 0; i < GPER; i++)); do printf 'g%d-%03d:group value %d of partition %d\n' "$p" "$i" "$i" "$p"; done |
        timeout "$KCAT_TIMEOUT" "${K[@]}" -P -t "$GTOPIC" -p "$p" -K: 2>"$TMP/gp.err" || {
        gproduce_ok=0
        fail "kcat -P -p $p to $GTOPIC failed: $(head -3 "$TMP/gp.err")"
    }
done
[ "$gproduce_ok" = 1 ] && pass "kcat -P produced $GPER messages into each of the $GPARTS partitions of $GTOPIC"
# auto.offset.reset=earliest: only a missing commit would make a member start at 0. (Not -o
# beginning: in -G mode kcat applies -o to every assigned partition, overriding the commits.)
G=(-G "$GGROUP" -X auto.offset.reset=earliest -f '%p|%o|%k\n')
if kc "$TMP/g1.txt" "${G[@]}" -c "$GFIRST" "$GTOPIC"; then
    pass "kcat -G $GGROUP -c $GFIRST: first member read $(wc -l <"$TMP/g1.txt") messages and exited (commit on close)"
else
    fail "kcat -G -c $GFIRST failed or hung (exit $?): $(head -3 "$TMP/g1.txt.err")"
fi
if kc "$TMP/g2.txt" "${G[@]}" -e "$GTOPIC"; then
    pass "kcat -G $GGROUP -e: second member read $(wc -l <"$TMP/g2.txt") messages to the end and exited"
else
    fail "kcat -G -e (second member) failed or hung (exit $?): $(head -3 "$TMP/g2.txt.err")"
fi
if kc "$TMP/g3.txt" "${G[@]}" -e "$GTOPIC"; then
    if [ ! -s "$TMP/g3.txt" ]; then
        pass "kcat -G $GGROUP -e: a third member finds nothing left (the second one's offsets were committed)"
    else
        fail "kcat -G -e (third member) read $(wc -l <"$TMP/g3.txt") messages again: $(head -3 "$TMP/g3.txt" | tr '\n' ' ')"
    fi
else
    fail "kcat -G -e (third member) failed or hung (exit $?): $(head -3 "$TMP/g3.txt.err")"
fi
if "$PY" - "$TMP/g1.txt" "$TMP/g2.txt" "$GPARTS" "$GPER" "$GFIRST" >"$TMP/gcheck.txt" 2>&1 <<'EOF'; then
import sys
first_f, second_f = sys.argv[1], sys.argv[2]
parts, per, want_first = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def read(path):
    out = {p: [] for p in range(parts)}
    for line in open(path):
        p, off, key = line.rstrip("\n").split("|")
        p, off = int(p), int(off)
        assert key == f"g{p}-{off:03d}", f"{path}: key {key} at {p}/{off}"
        out[p].append(off)
    return out
first, second = read(first_f), read(second_f)
n_first = sum(map(len, first.values()))
assert n_first == want_first, f"first member read {n_first}, expected {want_first}"
for p in range(parts):
    k = len(first[p])
    assert first[p] == list(range(k)), f"partition {p}: first member read {first[p]}, not 0..{k - 1}"
    assert second[p] == list(range(k, per)), \
        f"partition {p}: first member stopped at {k}, second read {second[p][:3]}..{second[p][-2:]}, expected {k}..{per - 1}"
print({p: len(first[p]) for p in range(parts)})
EOF
    pass "kcat -G: the second member resumed each partition exactly after the first one's commit (first read per partition $(cat "$TMP/gcheck.txt")); all $((GPARTS * GPER)) messages exactly once"
else
    fail "kcat -G resume: $(tail -2 "$TMP/gcheck.txt")"
fi

echo "kcat: $((CHECKS - FAILS)) passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
