#!/usr/bin/env python3
"""Generates the Kinesis differential corpus and Esker's request-validation table from the AWS
API model (botocore's `kinesis/2013-12-02/service-2.json`).

    tests/compat/.venv/bin/python tests/compat/kinesis_diff/generate.py [--model PATH]

Writes
  tests/compat/kinesis_diff/generated.json  the model-derived cases run by kinesis_diff.mjs
  src/kinesis/validate/schema.rs             the constraint table src/kinesis/validate uses

Both outputs are committed, so neither CI nor the build depends on botocore's version; rerun
this after upgrading botocore and review the diff.

Member order. AWS reports the violations of one request in an order of its own (neither
alphabetical nor the model's); kinesalite's validations/*.js list the members of the 17
operations it implements in that order, observed against AWS. MEMBER_ORDER below carries those
facts; members the model has and kinesalite lacks (StreamARN, StreamId, ...) follow in model
order, as do the members of the operations kinesalite lacks.

Truncation. AWS's JSON front end reads numbers as "TruncatingBigNumber": an integer member
given 2.7 is read as 2, one given 10^20 as 2147483647 (Long members: floored only). The
validator does the same before checking ranges.
"""

import argparse
import glob
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# AWS's member order for the operations kinesalite implements (kinesalite/validations/*.js).
MEMBER_ORDER = {
    "AddTagsToStream": ["Tags", "StreamName"],
    "CreateStream": ["ShardCount", "StreamName"],
    "DecreaseStreamRetentionPeriod": ["RetentionPeriodHours", "StreamName"],
    "DeleteStream": ["StreamName"],
    "DescribeStream": ["Limit", "ExclusiveStartShardId", "StreamName"],
    "DescribeStreamSummary": ["StreamName"],
    "GetRecords": ["Limit", "ShardIterator"],
    "GetShardIterator": ["ShardId", "ShardIteratorType", "StartingSequenceNumber", "StreamName", "Timestamp"],
    "IncreaseStreamRetentionPeriod": ["RetentionPeriodHours", "StreamName"],
    "ListShards": ["ExclusiveStartShardId", "MaxResults", "NextToken", "StreamCreationTimestamp", "StreamName"],
    "ListStreams": ["Limit", "ExclusiveStartStreamName"],
    "ListTagsForStream": ["Limit", "ExclusiveStartTagKey", "StreamName"],
    "MergeShards": ["ShardToMerge", "AdjacentShardToMerge", "StreamName"],
    "PutRecord": ["SequenceNumberForOrdering", "PartitionKey", "ExplicitHashKey", "Data", "StreamName"],
    "PutRecords": ["Records", "StreamName"],
    "RemoveTagsFromStream": ["TagKeys", "StreamName"],
    "SplitShard": ["NewStartingHashKey", "StreamName", "ShardToSplit"],
}
# Members of nested structures, same source.
NESTED_ORDER = {
    "PutRecordsRequestEntry": ["PartitionKey", "ExplicitHashKey", "Data"],
}
# The order AWS lists an enum's values in its message (kinesalite, observed), where the model's
# differs.
ENUM_ORDER = {
    "ShardIteratorType": ["AFTER_SEQUENCE_NUMBER", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "TRIM_HORIZON"],
}
# What AWS prints for a structure inside a list (Java's Object.toString of the request entry).
MEMBER_STR = {
    "PutRecordsRequestEntry": "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310",
}
# Operations the corpus covers: those kinesalite (the reference run beside Esker) implements.
CORPUS_OPERATIONS = list(MEMBER_ORDER)
# The ShardCount AWS's older front end bounded (kinesalite's observation; the model has no max).
INTEGER_MAX = 2147483647


def find_model():
    pats = [
        os.path.join(ROOT, "tests/compat/.venv/lib/python3*/site-packages/botocore/data/kinesis/2013-12-02/service-2.json*"),
        "/work/venv-compat/lib/python3*/site-packages/botocore/data/kinesis/2013-12-02/service-2.json*",
    ]
    try:
        import botocore  # noqa: F401

        pats.insert(0, os.path.join(os.path.dirname(botocore.__file__), "data/kinesis/2013-12-02/service-2.json*"))
    except ImportError:
        pass
    for p in pats:
        hits = sorted(glob.glob(p))
        if hits:
            return hits[0]
    sys.exit("service-2.json not found: pass --model")


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def lower_first(s):
    return s[:1].lower() + s[1:]


def ordered_members(op, shape_name, shape):
    members = list(shape.get("members", {}))
    order = MEMBER_ORDER.get(op) if op else NESTED_ORDER.get(shape_name)
    if not order:
        return members
    return [m for m in order if m in members] + [m for m in members if m not in order]


# ---------------------------------------------------------------------------------------------
# The Rust table
# ---------------------------------------------------------------------------------------------
def rust_str(s):
    return json.dumps(s)


def gen_rust(model):
    shapes = model["shapes"]
    out = []
    emitted = {}

    def ident(name):
        return "S_" + "".join(c if c.isalnum() else "_" for c in name).upper()

    def emit(name):
        if name in emitted:
            return emitted[name]
        ident_name = ident(name)
        emitted[name] = ident_name
        s = shapes[name]
        t = s["type"]
        opt = lambda v: f"Some({v})" if v is not None else "None"  # noqa: E731
        if t == "structure":
            mems = []
            for m in ordered_members(None, name, s):
                child = emit(s["members"][m]["shape"])
                req = "true" if m in s.get("required", []) else "false"
                mems.append(f"    Member {{ name: {rust_str(m)}, field: {rust_str(lower_first(m))}, required: {req}, shape: &{child} }},")
            out.append(f"static {ident_name}_MEMBERS: &[Member] = &[\n" + "\n".join(mems) + "\n];")
            kind = f"Kind::Structure({ident_name}_MEMBERS)"
        elif t == "list":
            kind = f"Kind::List(&{emit(s['member']['shape'])})"
        elif t == "map":
            kind = f"Kind::Map(&{emit(s['key']['shape'])}, &{emit(s['value']['shape'])})"
        else:
            kind = {
                "string": "Kind::String",
                "integer": "Kind::Integer",
                "long": "Kind::Long",
                "boolean": "Kind::Boolean",
                "blob": "Kind::Blob",
                "timestamp": "Kind::Timestamp",
            }[t]
        numeric = t in ("integer", "long")
        enum = ENUM_ORDER.get(name, s.get("enum"))
        pattern = s.get("pattern")
        out.append(
            f"static {ident_name}: Shape = Shape {{\n"
            f"    name: {rust_str(name)},\n"
            f"    kind: {kind},\n"
            f"    min_len: {opt(s.get('min') if not numeric else None)},\n"
            f"    max_len: {opt(s.get('max') if not numeric else None)},\n"
            f"    min: {opt(s.get('min') if numeric else None)},\n"
            f"    max: {opt(s.get('max') if numeric else None)},\n"
            f"    pattern: {opt(rust_str(pattern)) if pattern else 'None'},\n"
            f"    enum_values: &[{', '.join(rust_str(e) for e in enum or [])}],\n"
            f"    member_str: {opt(rust_str(MEMBER_STR[name])) if name in MEMBER_STR else 'None'},\n"
            "};"
        )
        return ident_name

    ops = []
    for op, o in model["operations"].items():
        inp = o.get("input", {}).get("shape")
        if not inp:
            ops.append(f"    Operation {{ name: {rust_str(op)}, members: &[] }},")
            continue
        s = shapes[inp]
        mems = []
        for m in ordered_members(op, inp, s):
            child = emit(s["members"][m]["shape"])
            req = "true" if m in s.get("required", []) else "false"
            mems.append(f"        Member {{ name: {rust_str(m)}, field: {rust_str(lower_first(m))}, required: {req}, shape: &{child} }},")
        ops.append(f"    Operation {{\n        name: {rust_str(op)},\n        members: &[\n" + "\n".join(mems) + "\n        ],\n    },")
    header = (
        "//! The constraint table of every Kinesis operation's input, GENERATED by\n"
        "//! `tests/compat/kinesis_diff/generate.py` from AWS's API model (botocore's\n"
        f"//! `kinesis/2013-12-02/service-2.json`, model uid {model['metadata'].get('uid')}); do not edit, rerun it.\n"
        "//! Members are in AWS's reporting order (see the generator's MEMBER_ORDER).\n\n"
        "use super::{Kind, Member, Operation, Shape};\n\n"
    )
    body = "\n\n".join(out)
    table = "/// Every operation of the model, sorted by name.\npub static OPERATIONS: &[Operation] = &[\n" + "\n".join(ops) + "\n];\n"
    return header + body + "\n\n" + table


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------
def valid_value(name, s, shapes):
    t = s["type"]
    if name == "StreamName":
        return "${missing}"
    if name == "ShardId":
        return "shardId-000000000000"
    if name == "HashKey":
        return "1"
    if name == "SequenceNumber":
        return "1"
    if name == "StreamARN":
        return "arn:aws:kinesis:us-east-1:000000000000:stream/${missing}"
    if t == "string":
        if s.get("enum"):
            return s["enum"][0]
        if s.get("pattern"):
            return "abc"
        return "x" * max(1, s.get("min", 1))
    if t in ("integer", "long"):
        if name == "RetentionPeriodHours":
            return 48
        return max(1, s.get("min", 1))
    if t == "boolean":
        return True
    if t == "blob":
        return "aGVsbG8="
    if t == "timestamp":
        return 1500000000
    if t == "list":
        m = s["member"]["shape"]
        return [valid_value(m, shapes[m], shapes)]
    if t == "map":
        return {"k": valid_value(s["value"]["shape"], shapes[s["value"]["shape"]], shapes)}
    if t == "structure":
        return {m: valid_value(s["members"][m]["shape"], shapes[s["members"][m]["shape"]], shapes) for m in s.get("required", [])}
    raise ValueError(t)


WRONG = {"string": "x", "number": 1, "boolean": True, "object": {}, "list": []}
JSON_OF = {"string": "string", "integer": "number", "long": "number", "boolean": "boolean",
           "blob": "string", "timestamp": "number", "list": "list", "map": "object", "structure": "object"}


def violations(name, s, shapes):
    """(label, value) pairs, each breaking one constraint of the shape (first one first)."""
    t = s["type"]
    out = []
    if t == "string":
        if s.get("pattern"):
            bad = "1x" if s["pattern"].startswith("0|") else "!bad name"
            out.append(("pattern", bad))
        if s.get("enum"):
            out.append(("enum", "NOT_A_VALUE"))
        if s.get("min", 0) > 0:
            out.append(("too_short", ""))
        if "max" in s and s["max"] <= 4096:
            ok = "a" if not s.get("pattern", "").startswith("0|") else "1"
            out.append(("too_long", ok * (s["max"] + 1)))
    elif t in ("integer", "long"):
        if "min" in s:
            out.append(("below_min", s["min"] - 1))
        if "max" in s:
            out.append(("above_max", s["max"] + 1))
    elif t == "list":
        m = s["member"]["shape"]
        if s.get("min", 0) > 0:
            out.append(("empty", []))
        if "max" in s and s["max"] <= 600:
            out.append(("too_many", [valid_value(m, shapes[m], shapes)] * (s["max"] + 1)))
        for label, v in violations(m, shapes[m], shapes)[:2]:
            out.append(("member_" + label, [v]))
    elif t == "map":
        v = s["value"]["shape"]
        if s.get("min", 0) > 0:
            out.append(("empty", {}))
        if "max" in s and s["max"] <= 300:
            out.append(("too_many", {f"k{i}": "v" for i in range(s["max"] + 1)}))
        kmax = shapes[s["key"]["shape"]].get("max")
        if kmax:
            out.append(("key_too_long", {"k" * (kmax + 1): "v"}))
        vmax = shapes[v].get("max")
        if vmax:
            out.append(("value_too_long", {"k": "v" * (vmax + 1)}))
    elif t == "structure":
        for m in ordered_members(None, name, s):
            ms = s["members"][m]["shape"]
            base = valid_value(name, s, shapes)
            if m in s.get("required", []):
                b = dict(base)
                b.pop(m, None)
                out.append((f"{m}_missing", b))
            for label, v in violations(ms, shapes[ms], shapes)[:3]:
                b = dict(base)
                b[m] = v
                out.append((f"{m}_{label}", b))
    return out


def gen_corpus(model):
    shapes = model["shapes"]
    cases = []
    for op in CORPUS_OPERATIONS:
        o = model["operations"][op]
        inp = o["input"]["shape"]
        s = shapes[inp]
        members = [m for m in ordered_members(op, inp, s) if m in MEMBER_ORDER[op]]
        required = set(s.get("required", [])) | {m for m in members if m == "StreamName"}
        if op == "CreateStream":
            required.add("ShardCount")
        base = {m: valid_value(s["members"][m]["shape"], shapes[s["members"][m]["shape"]], shapes) for m in members if m in required}
        if op == "ListShards":
            base["StreamName"] = "${missing}"
        if op == "CreateStream":
            base["StreamName"] = "${run}-created"
        cases.append({"id": f"{op}/valid", "op": op, "body": base})
        firsts = {}
        for m in members:
            ms = s["members"][m]["shape"]
            shape = shapes[ms]
            if m in required:
                b = dict(base)
                del b[m]
                cases.append({"id": f"{op}/{m}/missing", "op": op, "body": b})
                b = dict(base)
                b[m] = None
                cases.append({"id": f"{op}/{m}/null", "op": op, "body": b})
            want = JSON_OF[shape["type"]]
            for wname, wval in WRONG.items():
                if wname == want or (want == "number" and wname == "number"):
                    continue
                b = dict(base)
                b[m] = wval
                cases.append({"id": f"{op}/{m}/type_{wname}", "op": op, "body": b})
            for label, v in violations(ms, shape, shapes):
                b = dict(base)
                b[m] = v
                cases.append({"id": f"{op}/{m}/{label}", "op": op, "body": b})
                firsts.setdefault(m, v)
        if len(firsts) > 1:
            b = dict(base)
            b.update(firsts)
            cases.append({"id": f"{op}/all_members_invalid", "op": op, "body": b})
            b = dict(base)
            b.update({m: v for m, v in list(firsts.items())[::-1]})
            cases.append({"id": f"{op}/all_members_invalid_reversed_keys", "op": op, "body": dict(reversed(list(b.items())))})
    # More violations than AWS reports (it stops at 10).
    recs = [{"PartitionKey": "", "Data": "aGVsbG8="} for _ in range(12)]
    cases.append({"id": "PutRecords/twelve_invalid_records", "op": "PutRecords", "body": {"StreamName": "${missing}", "Records": recs}})
    recs = [{"PartitionKey": "p" * 257, "ExplicitHashKey": "x", "Data": "aGVsbG8="} for _ in range(3)]
    cases.append({"id": "PutRecords/three_records_two_errors_each", "op": "PutRecords", "body": {"StreamName": "${missing}", "Records": recs}})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="path to service-2.json(.gz)")
    args = ap.parse_args()
    path = args.model or find_model()
    model = load(path)
    cases = gen_corpus(model)
    with open(os.path.join(HERE, "generated.json"), "w") as f:
        json.dump({"source": f"generated by generate.py from {model['metadata'].get('uid')}", "cases": cases}, f, indent=1)
        f.write("\n")
    rs = os.path.join(ROOT, "src/kinesis/validate/schema.rs")
    os.makedirs(os.path.dirname(rs), exist_ok=True)
    with open(rs, "w") as f:
        f.write(gen_rust(model))
    print(f"{len(cases)} cases -> generated.json; table -> {os.path.relpath(rs, ROOT)}")


if __name__ == "__main__":
    main()
