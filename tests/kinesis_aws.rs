//! Kinesis answers as AWS gives them, through the stock AWS SDK for Rust: sequence numbers and
//! shard iterators of AWS's form, shard ids in every form AWS takes, AWS's texts for missing
//! shards and streams and for GetShardIterator / PutRecord / retention / tag arguments, the
//! stream life cycle (CREATING, UPDATING, DELETING with configured delays), encryption,
//! stream mode, resource policies, account settings, and KPL aggregated records passing
//! through intact.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    EncryptionType, MinimumThroughputBillingCommitmentInputStatus, ScalingType, ShardIteratorType,
    StreamMode, StreamModeDetails, StreamStatus,
};
use aws_sdk_kinesis::Client;
use base64::Engine;
use common::kinesis::{client, code, create, err, iterator_of, TestResult};
use common::TestBroker;
use md5::{Digest, Md5};

const ACCOUNT: &str = "000000000000";

/// How long a stream may take through a configured life-cycle delay.
const WAIT: Duration = Duration::from_secs(20);

/// The hex digits of a decimal number (big-integer arithmetic on the digits).
fn hex_of(decimal: &str) -> String {
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut rem = 0;
        for d in digits.iter_mut() {
            let cur = rem * 10 + *d;
            *d = cur / 16;
            rem = cur % 16;
        }
        hex.push(char::from_digit(rem, 16).expect("hex digit"));
    }
    hex.iter().rev().collect()
}

/// kinesalite's parseSequence for AWS's version-2 numbers: (shard creation seconds,
/// sequence index, record seconds, shard index).
fn aws_fields(seq: &str) -> (u64, u64, u64, u64) {
    assert_eq!(seq.len(), 56, "{seq}");
    let hex = hex_of(seq);
    assert_eq!(hex.len(), 47, "{hex}");
    assert!(hex.starts_with('2') && hex.ends_with('2'), "{hex}");
    let p = |a: usize, b: usize| u64::from_str_radix(&hex[a..b], 16).expect("hex");
    (p(1, 10), p(11, 27), p(29, 38), p(38, 46))
}

/// Waits until the stream `name` shows `status` (a describe that fails fails the test).
async fn wait_for_status(c: &Client, name: &str, status: StreamStatus) {
    let want = &status;
    common::eventually_async(&format!("stream {name} {status:?}"), WAIT, || async move {
        let s = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("describe");
        let got = s
            .stream_description_summary()
            .map(|d| d.stream_status().clone());
        match got {
            Some(ref g) if g == want => Ok(()),
            _ => Err(got),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_iterators_and_shard_ids_as_aws() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "fmt", 2).await?;
    let created = c
        .describe_stream_summary()
        .stream_name("fmt")
        .send()
        .await?
        .stream_description_summary()
        .expect("summary")
        .stream_creation_timestamp()
        .secs() as u64;
    let shards = c.list_shards().stream_name("fmt").send().await?;
    let start = shards.shards()[1]
        .sequence_number_range()
        .expect("range")
        .starting_sequence_number()
        .to_string();
    // The shard's starting number: sequence index 0, shard 1, the stream's creation time.
    assert_eq!(aws_fields(&start), (created, 0, created, 1));

    // Records on shard 1 (explicit hash key in its upper half).
    let mut seqs = Vec::new();
    for i in 0..3 {
        let r = c
            .put_record()
            .stream_name("fmt")
            .partition_key("k")
            .explicit_hash_key("300000000000000000000000000000000000000")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await?;
        assert_eq!(r.shard_id(), "shardId-000000000001");
        let (shard_created, index, time, shard) = aws_fields(r.sequence_number());
        assert_eq!((shard_created, shard), (created, 1));
        assert!(time >= created, "record time {time} before {created}");
        assert_eq!(index, 2 * i + 1, "offset {i}");
        seqs.push(r.sequence_number().to_string());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // Iterators: AWS's 8-byte prefix and length (152 bytes for a 3-character name); shard ids
    // in every form AWS takes.
    for id in [
        "shardId-000000000001",
        "1",
        "shard-1",
        "shardId-1",
        "x-0001",
    ] {
        let it = iterator_of(
            &c,
            "fmt",
            id,
            ShardIteratorType::AtSequenceNumber,
            Some(&seqs[1]),
        )
        .await?;
        let raw = base64::engine::general_purpose::STANDARD.decode(&it)?;
        assert_eq!(raw.len(), 152, "{it}");
        assert_eq!(&raw[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        let r = c.get_records().shard_iterator(&it).send().await?;
        let got: Vec<_> = r.records().iter().map(|r| r.sequence_number()).collect();
        assert_eq!(got, [seqs[1].as_str(), seqs[2].as_str()], "shard id {id}");
    }
    let it = iterator_of(
        &c,
        "fmt",
        "1",
        ShardIteratorType::AfterSequenceNumber,
        Some(&seqs[2]),
    )
    .await?;
    let r = c.get_records().shard_iterator(&it).send().await?;
    assert!(r.records().is_empty());
    // The shard's starting number names the gap before the first record.
    let it = iterator_of(
        &c,
        "fmt",
        "1",
        ShardIteratorType::AfterSequenceNumber,
        Some(&start),
    )
    .await?;
    let r = c.get_records().shard_iterator(&it).send().await?;
    assert_eq!(r.records().len(), 3);

    // Not-found texts, in AWS's order of checks.
    let e = iterator_of(&c, "fmt", "foo", ShardIteratorType::Latest, None)
        .await
        .expect_err("bad shard id");
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            format!("Could not find shard foo in stream fmt under account {ACCOUNT}.")
        )
    );
    let e = iterator_of(&c, "nope", "shard-3", ShardIteratorType::Latest, None)
        .await
        .expect_err("no stream");
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            format!(
                "Shard shardId-000000000003 in stream nope under account {ACCOUNT} does not exist"
            )
        )
    );
    let e = iterator_of(&c, "fmt", "9", ShardIteratorType::Latest, None)
        .await
        .expect_err("no shard");
    assert_eq!(
        err(&e).1,
        format!("Shard shardId-000000000009 in stream fmt under account {ACCOUNT} does not exist")
    );

    // GetShardIterator's argument rules.
    let e = iterator_of(&c, "fmt", "1", ShardIteratorType::Latest, Some(&seqs[0]))
        .await
        .expect_err("LATEST with a sequence number");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
             StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified LATEST and also a StartingSequenceNumber."
                .into()
        )
    );
    let e = iterator_of(&c, "fmt", "1", ShardIteratorType::AtSequenceNumber, None)
        .await
        .expect_err("AT_SEQUENCE_NUMBER without one");
    assert!(err(&e)
        .1
        .ends_with("Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber."));
    let e = iterator_of(
        &c,
        "fmt",
        "0",
        ShardIteratorType::AtSequenceNumber,
        Some(&seqs[0]),
    )
    .await
    .expect_err("another shard's number");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used \
             in a call to a shard with shardId-000000000000"
                .into()
        )
    );
    let e = iterator_of(
        &c,
        "fmt",
        "1",
        ShardIteratorType::AtSequenceNumber,
        Some("12345"),
    )
    .await
    .expect_err("a number of AWS's oldest layout");
    assert_eq!(
        err(&e).1,
        "Invalid StartingSequenceNumber. It encodes shardId-000000012345, while it was used in \
         a call to a shard with shardId-000000000001"
    );
    let e = iterator_of(
        &c,
        "fmt",
        "1",
        ShardIteratorType::AtSequenceNumber,
        Some("65537"),
    )
    .await
    .expect_err("not a sequence number of this shard");
    assert_eq!(
        err(&e).1,
        format!(
            "StartingSequenceNumber 65537 used in GetShardIterator on shard shardId-000000000001 \
             in stream fmt under account {ACCOUNT} is invalid."
        )
    );
    let e = c
        .get_shard_iterator()
        .stream_name("fmt")
        .shard_id("1")
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .send()
        .await
        .expect_err("no timestamp");
    assert_eq!(
        err(&e).1,
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current \
         request has no timestamp parameter."
    );
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    let e = c
        .get_shard_iterator()
        .stream_name("fmt")
        .shard_id("1")
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from(future))
        .send()
        .await
        .expect_err("future timestamp");
    let (kind, message) = err(&e);
    assert_eq!(kind, "InvalidArgumentException");
    assert!(
        message.starts_with(
            "The timestampInMillis parameter cannot be greater than the \
             currentTimestampInMillis. timestampInMillis: "
        ),
        "{message}"
    );

    // GetRecords: a token that is no iterator.
    let e = c
        .get_records()
        .shard_iterator("AAAAAAAAAAEAAAAA")
        .send()
        .await
        .expect_err("bad iterator");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            "Invalid ShardIterator.".into()
        )
    );

    // PutRecord's SequenceNumberForOrdering.
    c.put_record()
        .stream_name("fmt")
        .partition_key("k")
        .data(Blob::new("ordered"))
        .sequence_number_for_ordering(&seqs[2])
        .send()
        .await?;
    let e = c
        .put_record()
        .stream_name("fmt")
        .partition_key("k")
        .data(Blob::new("x"))
        .sequence_number_for_ordering("42x")
        .send()
        .await
        .expect_err("bad ordering number");
    // Not digits: AWS's front end refuses it by the model's pattern before the operation runs.
    assert_eq!(
        err(&e),
        (
            "ValidationException".into(),
            "1 validation error detected: Value '42x' at 'sequenceNumberForOrdering' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})"
                .into()
        )
    );

    // Retention bounds.
    let e = c
        .increase_stream_retention_period()
        .stream_name("fmt")
        .retention_period_hours(8761)
        .send()
        .await
        .expect_err("too long");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            "Maximum allowed retention period is 8760 hours. Requested retention period (8761 \
             hours) is too long."
                .into()
        )
    );
    let e = c
        .decrease_stream_retention_period()
        .stream_name("fmt")
        .retention_period_hours(23)
        .send()
        .await
        .expect_err("too short");
    assert_eq!(
        err(&e).1,
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is \
         too short."
    );
    c.increase_stream_retention_period()
        .stream_name("fmt")
        .retention_period_hours(8760)
        .send()
        .await?;
    let e = c
        .decrease_stream_retention_period()
        .stream_name("fmt")
        .retention_period_hours(8760)
        .send()
        .await;
    assert!(e.is_ok(), "the same retention is no decrease but allowed");
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_aws_rules_on_streams_and_resource_arns() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    c.create_stream()
        .stream_name("tagged")
        .shard_count(1)
        .tags("team", "data eng")
        .send()
        .await?;
    let tags = c
        .list_tags_for_stream()
        .stream_name("tagged")
        .send()
        .await?;
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].value(), Some("data eng"));

    let e = c
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("bad*key", "v")
        .send()
        .await
        .expect_err("bad character");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @."
                .into()
        )
    );
    let e = c
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("k", "100%")
        .send()
        .await
        .expect_err("percent");
    assert_eq!(
        err(&e).1,
        format!(
            "Failed to add tags to stream tagged under account {ACCOUNT} because some tags \
             contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        )
    );
    // 49 more tags (10 per call) fill the stream's 50.
    for call in 0..5 {
        let mut req = c.add_tags_to_stream().stream_name("tagged");
        for i in 0..10 {
            let n = call * 10 + i;
            if n < 49 {
                req = req.tags(format!("k{n:02}"), format!("välue {n}"));
            }
        }
        req.send().await?;
    }
    let e = c
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("one-too-many", "")
        .send()
        .await
        .expect_err("51 tags");
    assert_eq!(
        err(&e),
        (
            "InvalidArgumentException".into(),
            format!(
                "Failed to add tags to stream tagged under account {ACCOUNT} because a given \
                 stream cannot have more than 50 tags associated with it."
            )
        )
    );
    // Overwriting a tag is no new tag.
    c.add_tags_to_stream()
        .stream_name("tagged")
        .tags("team", "platform")
        .send()
        .await?;

    // The ARN-addressed operations see the same tags.
    let arn = c
        .describe_stream_summary()
        .stream_name("tagged")
        .send()
        .await?
        .stream_description_summary()
        .expect("summary")
        .stream_arn()
        .to_string();
    let all = c.list_tags_for_resource().resource_arn(&arn).send().await?;
    assert_eq!(all.tags().len(), 50);
    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("k00")
        .tag_keys("k01")
        .send()
        .await?;
    c.tag_resource()
        .resource_arn(&arn)
        .tags("via-arn", "yes")
        .send()
        .await?;
    let all = c.list_tags_for_resource().resource_arn(&arn).send().await?;
    assert_eq!(all.tags().len(), 49);
    assert!(all
        .tags()
        .iter()
        .any(|t| t.key() == "via-arn" && t.value() == Some("yes")));
    let page = c
        .list_tags_for_stream()
        .stream_name("tagged")
        .limit(10)
        .send()
        .await?;
    assert!(page.has_more_tags());

    // A consumer's ARN has tags of its own.
    let consumer = c
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await?
        .consumer()
        .expect("consumer")
        .consumer_arn()
        .to_string();
    c.tag_resource()
        .resource_arn(&consumer)
        .tags("owner", "me")
        .send()
        .await?;
    let got = c
        .list_tags_for_resource()
        .resource_arn(&consumer)
        .send()
        .await?;
    assert_eq!(got.tags().len(), 1);
    assert_eq!(got.tags()[0].key(), "owner");

    // Missing streams.
    let e = c
        .list_tags_for_resource()
        .resource_arn(format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/none"))
        .send()
        .await
        .expect_err("no stream");
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            format!("Stream none under account {ACCOUNT} not found.")
        )
    );
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn life_cycle_encryption_mode_policies_and_account_settings() -> TestResult {
    let mut b = TestBroker::start_with(&[
        ("kinesis.create.stream.ms", "1500"),
        ("kinesis.update.stream.ms", "1500"),
        ("kinesis.delete.stream.ms", "1500"),
    ])
    .await;
    let c = client(&b);
    create(&c, "life", 2).await?;
    let d = c.describe_stream().stream_name("life").send().await?;
    let desc = d.stream_description().expect("description");
    assert_eq!(desc.stream_status(), &StreamStatus::Creating);
    assert!(desc.shards().is_empty());
    let e = c
        .put_record()
        .stream_name("life")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("CREATING");
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            format!("Stream life under account {ACCOUNT} not found.")
        )
    );
    wait_for_status(&c, "life", StreamStatus::Active).await;
    c.put_record()
        .stream_name("life")
        .partition_key("k")
        .data(Blob::new("before"))
        .send()
        .await?;

    // Resharding leaves the stream UPDATING: no other change meanwhile.
    c.update_shard_count()
        .stream_name("life")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await?;
    let e = c
        .split_shard()
        .stream_name("life")
        .shard_to_split("shardId-000000000002")
        .new_starting_hash_key("100")
        .send()
        .await
        .expect_err("UPDATING");
    assert_eq!(
        err(&e),
        (
            "ResourceInUseException".into(),
            format!("Stream life under account {ACCOUNT} not ACTIVE, instead in state UPDATING")
        )
    );
    // Records are still taken while UPDATING.
    c.put_record()
        .stream_name("life")
        .partition_key("k")
        .data(Blob::new("during"))
        .send()
        .await?;
    wait_for_status(&c, "life", StreamStatus::Active).await;

    // Encryption: key ids validated, shown, stamped on puts; records come back as written.
    let e = c
        .start_stream_encryption()
        .stream_name("life")
        .encryption_type(EncryptionType::Kms)
        .key_id("not a key")
        .send()
        .await
        .expect_err("bad key id");
    assert_eq!(code(&e), "InvalidArgumentException");
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    c.start_stream_encryption()
        .stream_name("life")
        .encryption_type(EncryptionType::Kms)
        .key_id(key)
        .send()
        .await?;
    wait_for_status(&c, "life", StreamStatus::Active).await;
    let s = c
        .describe_stream_summary()
        .stream_name("life")
        .send()
        .await?;
    let s = s.stream_description_summary().expect("summary");
    assert_eq!(s.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(s.key_id(), Some(key));
    let put = c
        .put_record()
        .stream_name("life")
        .partition_key("k")
        .data(Blob::new("secret"))
        .send()
        .await?;
    assert_eq!(put.encryption_type(), Some(&EncryptionType::Kms));
    let it = iterator_of(
        &c,
        "life",
        put.shard_id(),
        ShardIteratorType::AtSequenceNumber,
        Some(put.sequence_number()),
    )
    .await?;
    let r = c.get_records().shard_iterator(&it).send().await?;
    assert_eq!(r.records()[0].data().as_ref(), b"secret");
    c.stop_stream_encryption()
        .stream_name("life")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await?;
    wait_for_status(&c, "life", StreamStatus::Active).await;

    // Stream mode by ARN.
    let arn = s.stream_arn().to_string();
    c.update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()?,
        )
        .send()
        .await?;
    wait_for_status(&c, "life", StreamStatus::Active).await;

    // Resource policies, verbatim.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kinesis:GetRecords","Resource":"*"}]}"#;
    c.put_resource_policy()
        .resource_arn(&arn)
        .policy(policy)
        .send()
        .await?;
    let e = c
        .put_resource_policy()
        .resource_arn(&arn)
        .policy("not json")
        .send()
        .await
        .expect_err("not a policy");
    assert_eq!(code(&e), "InvalidArgumentException");
    c.update_account_settings()
        .minimum_throughput_billing_commitment(
            aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                .status(MinimumThroughputBillingCommitmentInputStatus::Enabled)
                .build()?,
        )
        .send()
        .await?;

    // All of it survives a restart.
    b.restart().await;
    let c = client(&b);
    let got = c.get_resource_policy().resource_arn(&arn).send().await?;
    assert_eq!(got.policy(), policy);
    let s = c
        .describe_stream_summary()
        .stream_name("life")
        .send()
        .await?;
    let s = s.stream_description_summary().expect("summary");
    assert_eq!(s.encryption_type(), Some(&EncryptionType::None));
    assert_eq!(
        s.stream_mode_details().map(|m| m.stream_mode().clone()),
        Some(StreamMode::OnDemand)
    );
    let settings = c.describe_account_settings().send().await?;
    assert_eq!(
        settings
            .minimum_throughput_billing_commitment()
            .map(|m| m.status().as_str().to_string()),
        Some("ENABLED".to_string())
    );
    c.delete_resource_policy().resource_arn(&arn).send().await?;
    let got = c.get_resource_policy().resource_arn(&arn).send().await?;
    assert_eq!(got.policy(), "{}");

    // DELETING for a while, then gone; records are refused meanwhile.
    c.delete_stream().stream_name("life").send().await?;
    let d = c
        .describe_stream_summary()
        .stream_name("life")
        .send()
        .await?;
    assert_eq!(
        d.stream_description_summary()
            .map(|s| s.stream_status().clone()),
        Some(StreamStatus::Deleting)
    );
    let e = c
        .put_record()
        .stream_name("life")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("DELETING");
    assert_eq!(code(&e), "ResourceNotFoundException");
    common::eventually_async("stream life gone", WAIT, || async {
        match c.describe_stream_summary().stream_name("life").send().await {
            Err(e) if code(&e) == "ResourceNotFoundException" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    create(&c, "life", 1).await?;
    b.stop().await;
    Ok(())
}

/// Appends a protobuf varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited protobuf field.
fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a varint protobuf field.
fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// A KPL aggregated record (the Kinesis Producer Library's format): the magic, then the
/// protobuf `AggregatedRecord { repeated string partition_key_table = 1; repeated string
/// explicit_hash_key_table = 2; repeated Record records = 3; }` with `Record {
/// uint64 partition_key_index = 1; uint64 explicit_hash_key_index = 2; bytes data = 3; }`,
/// then the MD5 of the protobuf.
fn kpl_aggregate(keys: &[&str], records: &[(usize, &[u8])]) -> Vec<u8> {
    let mut pb = Vec::new();
    for k in keys {
        field_bytes(&mut pb, 1, k.as_bytes());
    }
    for (key, data) in records {
        let mut r = Vec::new();
        field_varint(&mut r, 1, *key as u64);
        field_bytes(&mut r, 3, data);
        field_bytes(&mut pb, 3, &r);
    }
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(&pb);
    out.extend_from_slice(&Md5::digest(&pb));
    out
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The fields of a protobuf message: (field number, varint value or bytes).
/// A protobuf field: its number, and its varint value (`Ok`) or bytes (`Err`).
type Field<'a> = (u64, Result<u64, &'a [u8]>);

fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        match tag & 7 {
            0 => out.push((tag >> 3, Ok(read_varint(buf, &mut pos)?))),
            2 => {
                let len = read_varint(buf, &mut pos)? as usize;
                let bytes = buf.get(pos..pos + len)?;
                pos += len;
                out.push((tag >> 3, Err(bytes)));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// De-aggregates a KPL record as the KCL does: (partition key, data) of each user record; a
/// record without the magic or with a wrong MD5 is one user record itself.
fn deaggregate(partition_key: &str, data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let whole = || vec![(partition_key.to_string(), data.to_vec())];
    let Some(body) = data.strip_prefix(&KPL_MAGIC[..]) else {
        return whole();
    };
    if body.len() < 16 {
        return whole();
    }
    let (pb, md5) = body.split_at(body.len() - 16);
    if Md5::digest(pb).as_slice() != md5 {
        return whole();
    }
    let Some(top) = fields(pb) else {
        return whole();
    };
    let keys: Vec<String> = top
        .iter()
        .filter_map(|(f, v)| match (f, v) {
            (1, Err(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    top.iter()
        .filter_map(|(f, v)| match (f, v) {
            (3, Err(r)) => {
                let rf = fields(r)?;
                let key = rf.iter().find_map(|(f, v)| match (f, v) {
                    (1, Ok(i)) => Some(*i as usize),
                    _ => None,
                })?;
                let data = rf.iter().find_map(|(f, v)| match (f, v) {
                    (3, Err(d)) => Some(d.to_vec()),
                    _ => None,
                })?;
                Some((keys.get(key)?.clone(), data))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregated_records_come_back_intact_and_deaggregate() -> TestResult {
    let b = TestBroker::start().await;
    let c = client(&b);
    create(&c, "kpl", 1).await?;
    let users: Vec<(usize, Vec<u8>)> = (0..100)
        .map(|i| {
            (
                i % 3,
                format!("user record {i} {}", "x".repeat(i)).into_bytes(),
            )
        })
        .collect();
    let keys = ["alpha", "beta", "gamma"];
    let refs: Vec<(usize, &[u8])> = users.iter().map(|(k, d)| (*k, d.as_slice())).collect();
    let blob = kpl_aggregate(&keys, &refs);
    assert_eq!(
        deaggregate("alpha", &blob).len(),
        100,
        "the test's own round trip"
    );
    let put = c
        .put_record()
        .stream_name("kpl")
        .partition_key("alpha")
        .data(Blob::new(blob.clone()))
        .send()
        .await?;
    // And a plain record beside it.
    c.put_record()
        .stream_name("kpl")
        .partition_key("plain")
        .data(Blob::new("not aggregated"))
        .send()
        .await?;
    let it = iterator_of(
        &c,
        "kpl",
        put.shard_id(),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await?;
    let r = c.get_records().shard_iterator(&it).send().await?;
    assert_eq!(r.records().len(), 2);
    let got = &r.records()[0];
    assert_eq!(got.sequence_number(), put.sequence_number());
    assert_eq!(got.data().as_ref(), blob.as_slice(), "bytes intact");
    let mut seen = Vec::new();
    for rec in r.records() {
        seen.extend(deaggregate(
            rec.partition_key().unwrap_or_default(),
            rec.data().as_ref(),
        ));
    }
    assert_eq!(seen.len(), 101);
    for (i, (key, data)) in seen.iter().take(100).enumerate() {
        assert_eq!(key, keys[i % 3]);
        assert_eq!(data, &users[i].1);
    }
    assert_eq!(seen[100], ("plain".to_string(), b"not aggregated".to_vec()));
    b.stop().await;
    Ok(())
}
