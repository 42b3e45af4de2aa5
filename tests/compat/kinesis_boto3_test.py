"""boto3 (the AWS SDK for Python) against the broker's Kinesis endpoint at $KINESIS_ENDPOINT.

Creates a 4-shard stream, puts 10 000 records (PutRecords in batches of 500, plus single
PutRecord calls with explicit hash keys), checks that every record went to the shard whose hash
range holds MD5(partition key), and reads them all back through iterators of each type
(TRIM_HORIZON, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP, LATEST), paging with
Limit. Then splits a shard and merges two, checking that new records go to the children and that
a drained parent answers no NextShardIterator; changes the retention period; adds, lists and
removes tags; checks the errors boto3 raises for an unknown stream, a bad iterator and 501
records, and (with parameter_validation=False, so the server sees them) AWS's
ValidationException / SerializationException texts for invalid requests; the records are also readable by a Kafka consumer (confluent-kafka, if installed) with
the same keys and bytes; finally deletes the stream."""

import hashlib
import os
import time
import uuid

import boto3
import botocore.config
from botocore.exceptions import ClientError

from compat_common import BOOTSTRAP, Checks

ENDPOINT = os.environ.get("KINESIS_ENDPOINT", "http://127.0.0.1:4567")
N = 10_000


def client(**config):
    return boto3.client(
        "kinesis",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="compat",
        aws_secret_access_key="compat-secret",
        config=botocore.config.Config(retries={"max_attempts": 1}, **config),
    )


def md5(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


def shard_ranges(k, stream):
    shards = []
    token = None
    while True:
        resp = k.list_shards(NextToken=token) if token else k.list_shards(StreamName=stream)
        shards += resp["Shards"]
        token = resp.get("NextToken")
        if not token:
            return shards


def drain(k, iterator, limit=None):
    out = []
    while iterator:
        resp = k.get_records(ShardIterator=iterator, **({"Limit": limit} if limit else {}))
        out += resp["Records"]
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            break
        iterator = resp.get("NextShardIterator")
    return out


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, None


def error_text(fn):
    """(code, message) of the ClientError `fn` raises."""
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message")
    return None, None


def aws_texts(c, k, stream, shard, seq):
    """AWS's formats and texts, as boto3 users see them (issue 18)."""
    import base64
    account = "000000000000"
    c.eq(len(seq), 56, "sequence numbers have AWS's 56 digits")
    it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    raw = base64.b64decode(it)
    c.eq((raw[:8], len(raw)), (b"\0" * 7 + b"\1", 152 + 16 * ((len(stream) + 2) // 16)),
         "shard iterators have AWS's prefix and length")
    index = str(int(shard.rsplit("-", 1)[1]))
    c.ok(k.get_shard_iterator(StreamName=stream, ShardId=index, ShardIteratorType="LATEST")["ShardIterator"],
         "a shard id given as its index is accepted")
    c.eq(error_text(lambda: k.get_shard_iterator(StreamName=stream, ShardId="foo", ShardIteratorType="LATEST")),
         ("ResourceNotFoundException", f"Could not find shard foo in stream {stream} under account {account}."),
         "an id that names no shard: AWS's text")
    c.eq(error_text(lambda: k.get_shard_iterator(StreamName="no-such-stream", ShardId=shard, ShardIteratorType="LATEST")),
         ("ResourceNotFoundException",
          f"Shard {shard} in stream no-such-stream under account {account} does not exist"),
         "a missing stream is reported as its missing shard, as AWS does")
    c.eq(error_text(lambda: k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST",
                                                 StartingSequenceNumber=seq)),
         ("InvalidArgumentException",
          "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or "
          "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified LATEST and also a "
          "StartingSequenceNumber."),
         "LATEST with a StartingSequenceNumber: AWS's text")
    c.eq(error_text(lambda: k.get_records(ShardIterator="bm90IGFuIGl0ZXJhdG9y")),
         ("InvalidArgumentException", "Invalid ShardIterator."), "a bad iterator: AWS's text")
    c.eq(error_text(lambda: k.add_tags_to_stream(StreamName=stream, Tags={"k": "100%"})),
         ("InvalidArgumentException",
          f"Failed to add tags to stream {stream} under account {account} because some tags contained illegal "
          "characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."),
         "a tag with % : AWS's text")
    c.eq(error_text(lambda: k.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=8761)),
         ("InvalidArgumentException",
          "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long."),
         "retention above 8760 hours: AWS's text")


def main():
    c = Checks("kinesis_boto3")
    k = client()
    stream = f"compat-{uuid.uuid4().hex[:8]}"
    try:
        k.create_stream(StreamName=stream, ShardCount=4)
        k.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
        desc = k.describe_stream(StreamName=stream)["StreamDescription"]
        c.eq((desc["StreamStatus"], len(desc["Shards"]), desc["RetentionPeriodHours"]), ("ACTIVE", 4, 24),
             "create_stream: ACTIVE, 4 shards, 24 h retention")
        c.ok(stream in k.list_streams()["StreamNames"], "list_streams lists the stream")
        shards = shard_ranges(k, stream)
        ranges = {s["ShardId"]: (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
                  for s in shards}

        # 10 000 records: PutRecords in batches of 500.
        t0 = time.time()
        placed = {}
        for start in range(0, N, 500):
            recs = [{"PartitionKey": f"pk-{i}", "Data": f"data-{i}".encode()} for i in range(start, start + 500)]
            resp = k.put_records(StreamName=stream, Records=recs)
            if resp["FailedRecordCount"]:
                c.ok(False, "put_records without failures", str(resp["Records"][:3]))
                return c.finish()
            for i, r in zip(range(start, start + 500), resp["Records"]):
                placed[i] = (r["ShardId"], r["SequenceNumber"])
        took = time.time() - t0
        print(f"  put {N} records in {took:.2f}s ({N / took:.0f} records/s)")
        wrong = [i for i, (shard, _) in placed.items()
                 if not ranges[shard][0] <= md5(f"pk-{i}") <= ranges[shard][1]]
        c.eq(wrong[:5], [], f"put_records: {N} records, each on the shard whose range holds MD5(key)")
        # boto3 may send whole epoch seconds: keep the records before and after a second apart.
        time.sleep(1.1)
        mid_ts = time.time()
        time.sleep(0.01)
        extra = []
        for shard, (lo, _hi) in sorted(ranges.items()):
            r = k.put_record(StreamName=stream, PartitionKey="explicit", ExplicitHashKey=str(lo), Data=b"explicit")
            extra.append((shard, r["ShardId"], r["SequenceNumber"]))
        c.ok(all(a == b for a, b, _ in extra), "put_record with ExplicitHashKey lands on that key's shard")

        # TRIM_HORIZON, paging with Limit.
        got = {}
        t0 = time.time()
        for shard in ranges:
            it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for r in drain(k, it, limit=1000):
                got.setdefault(r["PartitionKey"], []).append((shard, r["Data"], r["SequenceNumber"]))
        took = time.time() - t0
        print(f"  read {sum(len(v) for v in got.values())} records in {took:.2f}s")
        bad = [i for i in range(N) if got.get(f"pk-{i}") != [(placed[i][0], f"data-{i}".encode(), placed[i][1])]]
        c.eq(bad[:5], [], f"TRIM_HORIZON reads all {N} records back once, with their shard, bytes and sequence number")
        c.eq(len(got.get("explicit", [])), 4, "TRIM_HORIZON also returns the 4 explicit-hash-key records")

        shard, seq = placed[0]
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                  StartingSequenceNumber=seq)["ShardIterator"]
        first = k.get_records(ShardIterator=it, Limit=1)["Records"]
        c.eq([r["SequenceNumber"] for r in first], [seq], "AT_SEQUENCE_NUMBER starts at that record")
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                  StartingSequenceNumber=seq)["ShardIterator"]
        nxt = k.get_records(ShardIterator=it, Limit=1)["Records"]
        c.ok(len(nxt) == 1 and int(nxt[0]["SequenceNumber"]) > int(seq), "AFTER_SEQUENCE_NUMBER starts after it")
        ts_records = []
        for s in ranges:
            it = k.get_shard_iterator(StreamName=stream, ShardId=s, ShardIteratorType="AT_TIMESTAMP",
                                      Timestamp=mid_ts)["ShardIterator"]
            ts_records += drain(k, it)
        c.eq(sorted(r["Data"] for r in ts_records)[:8], [b"explicit"] * 4,
             "AT_TIMESTAMP returns only the records put after that time")
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
        resp = k.get_records(ShardIterator=it)
        c.eq(resp["Records"], [], "LATEST starts after the last record")
        k.put_record(StreamName=stream, PartitionKey="late", ExplicitHashKey=str(ranges[shard][0]), Data=b"late")
        resp = k.get_records(ShardIterator=resp["NextShardIterator"])
        c.eq([r["Data"] for r in resp["Records"]], [b"late"], "the LATEST iterator's next iterator sees a new record")
        c.ok(all(isinstance(r["ApproximateArrivalTimestamp"], object) for r in resp["Records"]),
             "records carry ApproximateArrivalTimestamp")

        # Split and merge.
        s0 = sorted(ranges)[0]
        lo, hi = ranges[s0]
        k.split_shard(StreamName=stream, ShardToSplit=s0, NewStartingHashKey=str((lo + hi) // 2))
        shards = shard_ranges(k, stream)
        children = [s for s in shards if s.get("ParentShardId") == s0]
        parent = next(s for s in shards if s["ShardId"] == s0)
        c.ok(len(children) == 2 and "EndingSequenceNumber" in parent["SequenceNumberRange"],
             "split_shard: the parent is closed and has two children")
        r = k.put_record(StreamName=stream, PartitionKey="after-split", ExplicitHashKey=str(lo), Data=b"child")
        c.eq(r["ShardId"], children[0]["ShardId"], "a record put after the split goes to the child")
        it = k.get_shard_iterator(StreamName=stream, ShardId=s0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        ends = None
        while it:
            resp = k.get_records(ShardIterator=it, Limit=10_000)
            it = resp.get("NextShardIterator")
            ends = resp
        c.ok(ends is not None and "NextShardIterator" not in ends and len(ends.get("ChildShards", [])) == 2,
             "the drained parent answers no NextShardIterator and names its ChildShards")
        k.merge_shards(StreamName=stream, ShardToMerge=children[0]["ShardId"],
                       AdjacentShardToMerge=children[1]["ShardId"])
        summary = k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        c.eq(summary["OpenShardCount"], 4, "merge_shards: back to 4 open shards")

        # Retention and tags.
        k.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=72)
        k.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=48)
        c.eq(k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["RetentionPeriodHours"], 48,
             "retention period increased to 72 h then decreased to 48 h")
        k.add_tags_to_stream(StreamName=stream, Tags={"team": "data", "env": "ci"})
        k.remove_tags_from_stream(StreamName=stream, TagKeys=["env"])
        c.eq(k.list_tags_for_stream(StreamName=stream)["Tags"], [{"Key": "team", "Value": "data"}],
             "tags added, listed and removed")

        # Errors.
        c.eq(error_code(lambda: k.describe_stream(StreamName="no-such-stream")), ("ResourceNotFoundException", 400),
             "unknown stream: ResourceNotFoundException (400)")
        c.eq(error_code(lambda: k.get_records(ShardIterator="bm90IGFuIGl0ZXJhdG9y"))[0], "InvalidArgumentException",
             "bad iterator: InvalidArgumentException")
        too_many = [{"PartitionKey": "k", "Data": b"x"}] * 501
        c.eq(error_code(lambda: k.put_records(StreamName=stream, Records=too_many))[0], "ValidationException",
             "501 records: ValidationException")

        # Without boto3's own parameter validation, invalid requests reach the server, which
        # answers them as AWS does.
        raw = client(parameter_validation=False)
        c.eq(error_text(lambda: raw.put_records(StreamName=stream, Records=[
                 {"PartitionKey": "", "Data": b"x"}, {"PartitionKey": "k" * 257, "Data": b"x"}])),
             ("ValidationException",
              "2 validation errors detected: Value '' at 'records.1.member.partitionKey' failed to satisfy "
              "constraint: Member must have length greater than or equal to 1; Value '" + "k" * 257
              + "' at 'records.2.member.partitionKey' failed to satisfy constraint: Member must have length "
              "less than or equal to 256"),
             "parameter_validation=False: AWS's ValidationException for two bad partition keys")
        c.eq(error_text(lambda: raw.describe_stream(StreamName="bad name!", Limit=0)),
             ("ValidationException",
              "2 validation errors detected: Value '0' at 'limit' failed to satisfy constraint: Member must "
              "have value greater than or equal to 1; Value 'bad name!' at 'streamName' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
             "parameter_validation=False: violations in AWS's member order")
        c.eq(error_text(lambda: raw.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                                          ShardIteratorType="latest")),
             ("ValidationException",
              "1 validation error detected: Value 'latest' at 'shardIteratorType' failed to satisfy constraint: "
              "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, "
              "AT_SEQUENCE_NUMBER, TRIM_HORIZON]"),
             "parameter_validation=False: an enum violation")
        c.eq(error_text(lambda: raw.list_streams(Limit="5")),
             ("SerializationException", "class java.lang.String can not be converted to an Integer"),
             "parameter_validation=False: a string for an integer is AWS's SerializationException")
        aws_texts(c, k, stream, placed[0][0], placed[0][1])

        # The same records through Kafka.
        try:
            from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        except ImportError:
            Consumer = None
        if Consumer is not None:
            consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "kinesis-compat",
                                 "enable.auto.commit": False})
            partition = int(placed[0][0].rsplit("-", 1)[1])
            consumer.assign([TopicPartition(stream, partition, OFFSET_BEGINNING)])
            m = None
            deadline = time.time() + 15
            while time.time() < deadline:
                m = consumer.poll(1.0)
                if m is not None and not m.error():
                    break
            consumer.close()
            first_on_shard = min((i for i in range(N) if placed[i][0] == placed[0][0]), key=lambda i: int(placed[i][1]))
            c.eq((m.key(), m.value()) if m is not None else None,
                 (f"pk-{first_on_shard}".encode(), f"data-{first_on_shard}".encode()),
                 "a Kafka consumer reads the shard's first record with the same key and bytes")

        k.delete_stream(StreamName=stream)
        c.eq(error_code(lambda: k.describe_stream(StreamName=stream))[0], "ResourceNotFoundException",
             "delete_stream removes the stream")
    except Exception:
        c.crash("kinesis scenario")
    return c.finish()


if __name__ == "__main__":
    main()
