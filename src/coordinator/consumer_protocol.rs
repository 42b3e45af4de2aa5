//! The embedded `consumer` protocol of classic groups: member metadata is a version (i16)
//! followed by a `ConsumerProtocolSubscription`, an assignment a version followed by a
//! `ConsumerProtocolAssignment`. The broker only reads subscriptions (OffsetDelete refuses to
//! delete offsets of a topic the group still subscribes to).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

/// Highest version of the embedded schemas the codec knows; newer versions only add fields at
/// the end, so they are read as this one.
const MAX_VERSION: i16 = 3;

/// The topics a consumer-protocol member subscribes to, `None` if the metadata does not decode.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, MAX_VERSION);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn reads_topics_of_any_version() {
        for version in [0i16, 1, 3] {
            let sub = ConsumerProtocolSubscription::default().with_topics(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]);
            let mut b = BytesMut::new();
            b.put_i16(version);
            sub.encode(&mut b, version).unwrap();
            assert_eq!(
                subscription_topics(&b.freeze()),
                Some(vec!["a".to_string(), "b".to_string()])
            );
        }
        assert_eq!(subscription_topics(&Bytes::from_static(b"\x00")), None);
    }
}
