#!/usr/bin/env bash
# The AWS CLI (`aws kinesis --endpoint-url`) against the broker's Kinesis endpoint at
# $KINESIS_ENDPOINT: create a stream, put records, read them back, list, tag, delete.
set -uo pipefail
AWS="${COMPAT_AWS:-aws}"
ENDPOINT="${KINESIS_ENDPOINT:-http://127.0.0.1:4567}"
export AWS_ACCESS_KEY_ID=compat AWS_SECRET_ACCESS_KEY=compat-secret AWS_DEFAULT_REGION=us-east-1
export AWS_PAGER="" AWS_MAX_ATTEMPTS=1
k() { "$AWS" kinesis --endpoint-url "$ENDPOINT" --output json "$@"; }
py() { "${COMPAT_PY:-python3}" -c "$1"; }

passed=0
failed=0
check() { # description command...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "  ok   - $what"
    else
        failed=$((failed + 1))
        echo "  FAIL - $what"
    fi
}

stream="cli-$RANDOM$RANDOM"
check "create-stream --shard-count 2" k create-stream --stream-name "$stream" --shard-count 2
check "describe-stream: ACTIVE with 2 shards" \
    test "$(k describe-stream --stream-name "$stream" --query 'StreamDescription.[StreamStatus,length(Shards)]' --output text)" = "ACTIVE	2"
for i in 1 2 3; do
    # AWS CLI v1 takes --data as text (v2 wants base64 or --cli-binary-format raw-in-base64-out).
    k put-record --stream-name "$stream" --partition-key same-key --data "record-$i" >/dev/null ||
        failed=$((failed + 1))
done
shard="$(k put-record --stream-name "$stream" --partition-key same-key --data record-4 --query ShardId --output text)"
check "put-record returns the shard of the partition key" test -n "$shard"
it="$(k get-shard-iterator --stream-name "$stream" --shard-id "$shard" --shard-iterator-type TRIM_HORIZON \
    --query ShardIterator --output text)"
records="$(k get-records --shard-iterator "$it")"
check "get-records returns the 4 records in order (base64 data)" test "$(printf '%s' "$records" | py '
import base64, json, sys
r = json.load(sys.stdin)["Records"]
print(",".join(base64.b64decode(x["Data"]).decode() for x in r))')" = "record-1,record-2,record-3,record-4"
kcat_reads() {
    command -v kcat >/dev/null 2>&1 || return 0
    local partition=$((10#${shard#shardId-}))
    local got
    got="$(kcat -b "${BOOTSTRAP:-127.0.0.1:9092}" -C -t "$stream" -p "$partition" -e -q -f '%k=%s\n' 2>/dev/null)"
    [ "$got" = "$(printf 'same-key=record-%s\n' 1 2 3 4)" ] || { echo "    kcat read: $got"; return 1; }
}
check "kcat reads the same keys and bytes from the shard's partition" kcat_reads
check "list-streams lists it" sh -c "\"$AWS\" kinesis --endpoint-url \"$ENDPOINT\" list-streams --output text | grep -q \"$stream\""
check "add-tags-to-stream / list-tags-for-stream" sh -c "
    \"$AWS\" kinesis --endpoint-url \"$ENDPOINT\" add-tags-to-stream --stream-name \"$stream\" --tags team=data &&
    \"$AWS\" kinesis --endpoint-url \"$ENDPOINT\" list-tags-for-stream --stream-name \"$stream\" --output text | grep -q data"
unknown_fails() {
    local out
    if out="$(k describe-stream --stream-name no-such-stream 2>&1)"; then
        return 1
    fi
    [[ "$out" == *ResourceNotFoundException* ]]
}
check "describe-stream of an unknown stream fails with ResourceNotFoundException" unknown_fails
check "delete-stream" k delete-stream --stream-name "$stream"
echo "kinesis_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
