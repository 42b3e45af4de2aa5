//! Malformed and hostile input, sent with a hand-rolled client: each gets the protocol's error
//! or a closed connection, and the broker keeps serving other connections without losing data.

mod common;

use bytes::{Bytes, BytesMut};
use common::raw::Raw;
use common::TestBroker;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

async fn still_serving(addr: &str) {
    let mut c = Raw::connect(addr).await;
    let r: ApiVersionsResponse = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0);
}

/// A valid uncompressed batch with one record.
fn batch(value: &[u8]) -> BytesMut {
    esker::log::batch::build_batch(&[(None, Some(value))], 1_700_000_000_000)
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

#[tokio::test]
async fn oversized_truncated_garbage_and_unknown_requests() {
    let broker = TestBroker::start_with(&[("socket.request.max.bytes", "1048576")]).await;
    let addr = broker.bootstrap();

    // A size prefix above socket.request.max.bytes closes the connection before allocation.
    let mut c = Raw::connect(&addr).await;
    c.send_raw(&(2_000_000_000i32).to_be_bytes()).await;
    assert!(c.closed().await, "oversized frame closes the connection");
    // A negative size too.
    let mut c = Raw::connect(&addr).await;
    c.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(c.closed().await);

    // A truncated frame: the peer goes away mid-frame; nothing breaks.
    let mut c = Raw::connect(&addr).await;
    c.send_raw(&100i32.to_be_bytes()).await;
    c.send_raw(&[0, 18, 0, 3]).await;
    drop(c);

    // Garbage: a plausible size followed by random bytes.
    let mut c = Raw::connect(&addr).await;
    let mut g = 64i32.to_be_bytes().to_vec();
    g.extend((0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 | 0x80));
    c.send_raw(&g).await;
    assert!(c.closed().await, "garbage closes the connection");

    // An unknown API key.
    let mut c = Raw::connect(&addr).await;
    let mut f = 10i32.to_be_bytes().to_vec();
    f.extend([0x7f, 0x00, 0, 1, 0, 0, 0, 1, 0xff, 0xff]);
    c.send_raw(&f).await;
    assert!(c.closed().await, "unknown api key closes the connection");

    // An unsupported version of a known API (Metadata v99).
    let mut c = Raw::connect(&addr).await;
    let mut f = 10i32.to_be_bytes().to_vec();
    f.extend([0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff]);
    c.send_raw(&f).await;
    assert!(
        c.closed().await,
        "unsupported version closes the connection"
    );

    // ApiVersions with a version from the future: error 35 and a v0 body with our ranges.
    let mut c = Raw::connect(&addr).await;
    let mut f = 10i32.to_be_bytes().to_vec();
    f.extend([0, 18, 0x00, 0x7f, 0, 0, 0, 9, 0xff, 0xff]);
    c.send_raw(&f).await;
    let mut resp = c.read_frame().await.expect("answer");
    let h = ResponseHeader::decode(&mut resp, 0).expect("v0 header");
    assert_eq!(h.correlation_id, 9);
    let body = ApiVersionsResponse::decode(&mut resp, 0).expect("v0 body");
    assert_eq!(body.error_code, 35);
    assert!(body
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version >= 3));

    still_serving(&addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn corrupt_batches_and_invalid_topic_names() {
    let broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    let mut c = Raw::connect(&addr).await;

    let created: CreateTopicsResponse = c
        .call(
            &CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("bad-input")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("no spaces allowed")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("rf3")))
                        .with_num_partitions(1)
                        .with_replication_factor(3),
                ]),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert_eq!(
        created.topics[2].error_code, 38,
        "INVALID_REPLICATION_FACTOR"
    );

    // A good batch is stored at offset 0.
    let ok: ProduceResponse = c
        .call(&produce_req("bad-input", batch(b"good").freeze()), 9)
        .await;
    let p = &ok.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    // A wrong CRC is CORRUPT_MESSAGE and nothing is written.
    let mut bad = batch(b"flipped");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r: ProduceResponse = c.call(&produce_req("bad-input", bad.freeze()), 9).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );

    // A batch whose length field lies.
    let mut lying = batch(b"short");
    lying[8..12].copy_from_slice(&1000i32.to_be_bytes());
    let r: ProduceResponse = c.call(&produce_req("bad-input", lying.freeze()), 9).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );

    // Old message format (magic 1) is refused.
    let mut old = batch(b"old");
    old[16] = 1;
    let r: ProduceResponse = c.call(&produce_req("bad-input", old.freeze()), 9).await;
    assert_ne!(r.responses[0].partition_responses[0].error_code, 0);

    // The next good batch gets offset 1: nothing of the bad ones was stored.
    let ok: ProduceResponse = c
        .call(&produce_req("bad-input", batch(b"good2").freeze()), 9)
        .await;
    let p = &ok.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 1));

    // Metadata for an invalid name answers INVALID_TOPIC_EXCEPTION and creates nothing.
    let md: MetadataResponse = c
        .call(
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("bad/name"))))])),
            12,
        )
        .await;
    assert_eq!(md.topics[0].error_code, 17);
    // Producing to a topic that does not exist.
    let r: ProduceResponse = c
        .call(&produce_req("missing", batch(b"x").freeze()), 9)
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);

    still_serving(&addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn pipelined_responses_keep_request_order() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};

    let broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    let mut c = Raw::connect(&addr).await;
    let md = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("pipelined"))))]));
    let _: MetadataResponse = c.call(&md, 12).await;

    // Four requests before reading anything: a slow long-polling fetch on an empty partition,
    // an acks=0 produce (no response) to another topic, and two fast requests.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(300)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("pipelined")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c1 = c.send(&fetch, 12).await;
    let mut fire_and_forget = produce_req("pipelined-other", batch(b"acks0").freeze());
    fire_and_forget.acks = 0;
    let _c2 = c.send(&fire_and_forget, 9).await;
    let c3 = c.send(&ApiVersionsRequest::default(), 3).await;
    let c4 = c.send(&md, 12).await;

    let (r1, f): (i32, FetchResponse) = c.recv(12).await;
    assert_eq!(r1, c1, "the slow fetch is answered first");
    assert_eq!(f.responses[0].partitions[0].error_code, 0);
    let (r3, _): (i32, ApiVersionsResponse) = c.recv(3).await;
    assert_eq!(
        r3, c3,
        "acks=0 produce has no response, the next one follows"
    );
    let (r4, _): (i32, MetadataResponse) = c.recv(12).await;
    assert_eq!(r4, c4);
    broker.stop().await;
}

/// Every advertised ListOffsets version gets an answer (Debian's kcat 1.7.1 sends v2; a field
/// that exists only from v4 once made the response unencodable and the client hung).
#[tokio::test]
async fn list_offsets_answers_every_version() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

    let broker = TestBroker::start().await;
    let mut c = Raw::connect(&broker.bootstrap()).await;
    let md = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("lo"))))]));
    let _: MetadataResponse = c.call(&md, 12).await;
    for _ in 0..3 {
        let _: ProduceResponse = c.call(&produce_req("lo", batch(b"v").freeze()), 9).await;
    }
    for version in 1..=10 {
        for (ts, want) in [(-2i64, 0i64), (-1, 3)] {
            let req = ListOffsetsRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("lo")))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts)])]);
            let r: ListOffsetsResponse = c.call(&req, version).await;
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.offset), (0, want), "v{version} ts {ts}");
        }
    }
    broker.stop().await;
}
