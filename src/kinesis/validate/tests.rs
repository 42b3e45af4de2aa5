//! The validator's wording, order, counting and number reading, against texts AWS answers
//! (as kinesalite, which copies them, shows).

use super::*;
use serde_json::json;

/// Validates `body` as the JSON path does (on the borrowed tree of its bytes) and checks the
/// answer is the one a `serde_json::Value` of it gets.
fn check(op: &str, body: serde_json::Value) -> Result<bool, KinesisError> {
    let op = operation(op).expect("operation in the model");
    let bytes = serde_json::to_vec(&body).expect("serialisable");
    let tree = json::Json::parse(&bytes).expect("valid JSON");
    let on_tree = validate(op.members, &tree);
    let on_value = validate(op.members, &body);
    assert_eq!(format!("{on_tree:?}"), format!("{on_value:?}"), "{body}");
    on_tree
}

fn message(op: &str, body: serde_json::Value) -> (String, String) {
    let e = check(op, body).expect_err("an error");
    (e.type_name().to_string(), e.message().to_string())
}

#[test]
fn every_operation_of_the_model_is_in_the_table_sorted() {
    let names: Vec<_> = schema::OPERATIONS.iter().map(|o| o.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for op in [
        "PutRecords",
        "GetRecords",
        "CreateStream",
        "UpdateStreamMode",
        "DescribeLimits",
    ] {
        assert!(operation(op).is_some(), "{op}");
    }
    assert!(operation("Nope").is_none());
}

#[test]
fn valid_requests_pass_without_truncation() {
    let body = json!({"StreamName": "s", "Records": [{"PartitionKey": "k", "Data": "aGVsbG8="}]});
    assert!(!check("PutRecords", body).unwrap());
    assert!(!check("ListStreams", json!({})).unwrap());
    let body = json!({"StreamName": "s", "ShardId": "shardId-000000000001",
        "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1.5e9});
    assert!(!check("GetShardIterator", body).unwrap());
}

#[test]
fn one_violation() {
    let long = "a".repeat(129);
    let (t, m) = message("DescribeStream", json!({ "StreamName": long }));
    assert_eq!(t, "ValidationException");
    assert_eq!(
        m,
        format!(
            "1 validation error detected: Value '{long}' at 'streamName' failed to satisfy \
             constraint: Member must have length less than or equal to 128"
        )
    );
}

#[test]
fn an_empty_name_breaks_the_pattern_and_the_length() {
    let (_, m) = message("DeleteStream", json!({"StreamName": ""}));
    assert_eq!(
        m,
        "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at \
         'streamName' failed to satisfy constraint: Member must have length greater than or \
         equal to 1"
    );
}

#[test]
fn violations_come_in_aws_member_order_not_body_order() {
    // PutRecord's order: SequenceNumberForOrdering, PartitionKey, ExplicitHashKey, Data,
    // StreamName.
    let body = json!({"StreamName": "a b", "Data": "aGVsbG8=", "ExplicitHashKey": "x",
        "PartitionKey": "", "SequenceNumberForOrdering": "01"});
    let (_, m) = message("PutRecord", body);
    let fields: Vec<_> = m
        .split("; ")
        .map(|e| {
            e.split(" at '")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap_or("")
        })
        .collect();
    assert!(m.starts_with("4 validation errors detected: "), "{m}");
    assert_eq!(
        fields,
        [
            "sequenceNumberForOrdering",
            "partitionKey",
            "explicitHashKey",
            "streamName"
        ]
    );
}

#[test]
fn missing_required_members_are_null() {
    let (_, m) = message("PutRecords", json!({"StreamName": "s"}));
    assert_eq!(
        m,
        "1 validation error detected: Value null at 'records' failed to satisfy constraint: \
         Member must not be null"
    );
    // null is absent
    let (_, m2) = message("PutRecords", json!({"StreamName": "s", "Records": null}));
    assert_eq!(m, m2);
}

#[test]
fn at_most_ten_errors_are_reported() {
    let records: Vec<_> = (0..12)
        .map(|_| json!({"PartitionKey": "", "Data": ""}))
        .collect();
    let (_, m) = message("PutRecords", json!({"StreamName": "s", "Records": records}));
    assert!(m.starts_with("10 validation errors detected: "), "{m}");
    assert_eq!(m.matches("failed to satisfy constraint").count(), 10);
    assert!(m.contains("'records.10.member.partitionKey'"));
    assert!(!m.contains("records.11"));
}

#[test]
fn record_members_have_their_path_and_lists_their_rendering() {
    let (_, m) = message(
        "PutRecords",
        json!({"StreamName": "s", "Records": [{"Data": "aGVsbG8="}]}),
    );
    assert_eq!(
        m,
        "1 validation error detected: Value null at 'records.1.member.partitionKey' failed to \
         satisfy constraint: Member must not be null"
    );
    let (_, m) = message("PutRecords", json!({"StreamName": "s", "Records": []}));
    assert_eq!(
        m,
        "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
    let many: Vec<_> = (0..501)
        .map(|_| json!({"PartitionKey": "k", "Data": ""}))
        .collect();
    let (_, m) = message("PutRecords", json!({"StreamName": "s", "Records": many}));
    assert!(m.starts_with(
        "1 validation error detected: Value '[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310, "
    ));
    assert!(m.ends_with("]' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"));
}

#[test]
fn blobs_are_rendered_as_java_buffers() {
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![0u8; 10_485_761],
    );
    let (_, m) = message(
        "PutRecord",
        json!({"StreamName": "s", "PartitionKey": "k", "Data": data}),
    );
    assert_eq!(
        m,
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 \
         cap=10485761]' at 'data' failed to satisfy constraint: Member must have length less \
         than or equal to 10485760"
    );
}

#[test]
fn enums_and_ranges() {
    let (_, m) = message(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "1", "ShardIteratorType": "latest"}),
    );
    assert_eq!(
        m,
        "1 validation error detected: Value 'latest' at 'shardIteratorType' failed to satisfy \
         constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, \
         AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
    );
    let (_, m) = message("GetRecords", json!({"ShardIterator": "x", "Limit": 0}));
    assert_eq!(
        m,
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
}

#[test]
fn tags_maps_and_key_lists() {
    let (_, m) = message(
        "AddTagsToStream",
        json!({"StreamName": "s", "Tags": {"k": "v".repeat(257)}}),
    );
    assert_eq!(
        m,
        format!(
            "1 validation error detected: Value '{{k={}}}' at 'tags' failed to satisfy \
             constraint: Map value must satisfy constraint: [Member must have length less than \
             or equal to 256, Member must have length greater than or equal to 0]",
            "v".repeat(257)
        )
    );
    let (_, m) = message(
        "RemoveTagsFromStream",
        json!({"StreamName": "s", "TagKeys": [""]}),
    );
    assert_eq!(
        m,
        "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must have length less than or equal to 128, \
         Member must have length greater than or equal to 1]"
    );
}

#[test]
fn type_errors_are_serialization_exceptions_with_aws_texts() {
    let cases = [
        ("ListStreams", json!({"Limit": "5"}), "class java.lang.String can not be converted to an Integer"),
        ("ListStreams", json!({"Limit": true}), "class java.lang.Boolean can not be converted to an Integer"),
        ("ListStreams", json!({"Limit": [1]}), "Start of list found where not expected"),
        ("ListStreams", json!({"Limit": {}}), "Start of structure or map found where not expected."),
        ("DeleteStream", json!({"StreamName": 1}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ("PutRecords", json!({"Records": "x"}), "Expected list or null"),
        ("PutRecords", json!({"Records": ["x"]}), "Expected null"),
        ("AddTagsToStream", json!({"Tags": []}), "Start of list found where not expected"),
        ("AddTagsToStream", json!({"Tags": 1}), "Expected map or null"),
        ("GetShardIterator", json!({"Timestamp": "2020-01-01"}), "class java.lang.String can not be converted to milliseconds since epoch"),
        ("PutRecord", json!({"Data": "abc"}), "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3"),
        ("PutRecord", json!({"Data": "ab!="}), "'ab!=' can not be converted to a Blob: Invalid Base64 character: '!'"),
        ("PutRecord", json!({"Data": "ab=c"}), "'ab=c' can not be converted to a Blob: Invalid Base64 character: '='"),
        ("PutRecord", json!({"Data": "aGVsbG9="}), "'aGVsbG9=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"),
        ("DeleteStream", json!({"EnforceConsumerDeletion": 1}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ("DeleteStream", json!({"EnforceConsumerDeletion": "yes"}), "'YES' can not be converted to an Boolean"),
    ];
    for (op, body, want) in cases {
        let e = check(op, body.clone()).expect_err("a type error");
        assert_eq!(e.type_name(), "SerializationException", "{op} {body}");
        assert_eq!(e.message_key(), "Message");
        assert_eq!(e.message(), want, "{op} {body}");
    }
    // The first wrong member in AWS's order wins, before any constraint.
    let e = check(
        "PutRecord",
        json!({"StreamName": 1, "PartitionKey": true, "Data": ""}),
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "class java.lang.Boolean can not be converted to an String"
    );
}

#[test]
fn numbers_are_read_as_aws_reads_them() {
    let (_, m) = message("ListStreams", json!({"Limit": 0.9}));
    assert!(m.contains("Value '0' at 'limit'"), "{m}");
    let (_, m) = message("ListStreams", json!({"Limit": 1e20}));
    assert!(m.contains("Value '2147483647' at 'limit'"), "{m}");
    let (_, m) = message("ListStreams", json!({"Limit": -1e20}));
    assert!(
        m.contains("Value '-100000000000000000000' at 'limit'"),
        "{m}"
    );
    // In range after truncation: valid, and the typed decoding sees the integer.
    assert!(check("ListStreams", json!({"Limit": 2.7})).unwrap());
    let input: crate::kinesis::model::ListStreamsInput =
        decode("ListStreams", br#"{"Limit": 2.7}"#, Encoding::Json).unwrap();
    assert_eq!(input.limit, Some(2));
}

#[test]
fn unparsable_bodies_are_serialization_exceptions_without_message() {
    for body in [&b""[..], b"{", b"[]", b"1", b"null", b"  "] {
        let e =
            decode::<crate::kinesis::model::ListStreamsInput>("ListStreams", body, Encoding::Json)
                .unwrap_err();
        assert_eq!(e.type_name(), "SerializationException");
        assert_eq!(e.message(), "", "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn cbor_bodies_are_validated_too() {
    let mut body = Vec::new();
    let value = ciborium::Value::Map(vec![
        (
            ciborium::Value::Text("StreamName".into()),
            ciborium::Value::Text("s".into()),
        ),
        (
            ciborium::Value::Text("PartitionKey".into()),
            ciborium::Value::Text(String::new()),
        ),
        (
            ciborium::Value::Text("Data".into()),
            ciborium::Value::Bytes(vec![1, 2, 3]),
        ),
    ]);
    ciborium::into_writer(&value, &mut body).unwrap();
    let e = decode::<crate::kinesis::model::PutRecordInput>("PutRecord", &body, Encoding::Cbor)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
    // An empty CBOR body is an empty map (the Java SDKs send none for input-less operations).
    assert!(
        decode::<crate::kinesis::model::ListStreamsInput>("ListStreams", b"", Encoding::Cbor)
            .is_ok()
    );
}

#[test]
fn arn_patterns() {
    let (_, m) = message("ListStreamConsumers", json!({"StreamARN": "nope"}));
    assert_eq!(
        m,
        "1 validation error detected: Value 'nope' at 'streamARN' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+"
    );
    assert!(check(
        "ListStreamConsumers",
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"})
    )
    .is_ok());
}

/// The vectorised alphabet check answers as a byte-by-byte reading does, for every kind of
/// misplaced character and padding.
#[test]
fn base64_checks_agree_with_a_byte_by_byte_reading() {
    fn reference(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let bad = !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
                || (b == b'=' && bytes.get(i + 1).is_some_and(|&n| n != b'='));
            if bad {
                let c = s[i..].chars().next().unwrap_or('?');
                return Some(format!("Invalid Base64 character: '{c}'"));
            }
        }
        None
    }
    let base = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODkrLw==";
    let mut cases: Vec<String> = vec![
        String::new(),
        "AAAA".into(),
        "AA==".into(),
        "AAA=".into(),
        "A===".into(),
        "====".into(),
        "AB==".into(),
        "AAB=".into(),
        base.into(),
    ];
    for pos in [0, 1, 30, 63, 64, 65, base.len() - 3] {
        for c in ['=', '-', '_', ' ', 'é', '\u{7f}', '*'] {
            let mut s: String = base.chars().take(pos).collect();
            s.push(c);
            s.extend(base.chars().skip(pos + 1));
            cases.push(s);
        }
    }
    for s in &cases {
        let got = base64_error(s);
        match reference(s) {
            Some(expected) if utf16_len(s) % 4 == 0 => {
                assert_eq!(got.as_deref(), Some(expected.as_str()), "{s}")
            }
            _ => assert!(
                got.as_ref().map_or(true, |m| !m.starts_with("Invalid Base64 character")),
                "{s}: {got:?}"
            ),
        }
    }
    assert_eq!(base64_error("AAAA"), None);
    assert_eq!(base64_error(base), None);
}
