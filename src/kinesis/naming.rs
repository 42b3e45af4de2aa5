//! Which Kafka topic holds which Kinesis stream.
//!
//! Kinesis allows every name of `[a-zA-Z0-9_.-]{1,128}`, Kafka every name of
//! `[a-zA-Z0-9._-]{1,249}` except `.` and `..`, and the broker keeps its own topics under
//! `__` (`__consumer_offsets`, `__transaction_state`, `__cluster_metadata`). So a stream is
//! the topic of the same name, except for the names that cannot or must not be a topic of
//! their own: a *reserved* name (one starting with `__`, or `.` or `..`) is stored under
//! [`ESCAPE`] + name, and so is any name that already looks escaped ([`ESCAPE`] repeated, then a
//! reserved name), which keeps the mapping injective:
//!
//! | stream | topic |
//! |---|---|
//! | `orders` | `orders` |
//! | `__orders` | `kinesis.__orders` |
//! | `kinesis.__orders` | `kinesis.kinesis.__orders` |
//! | `.` | `kinesis..` |
//!
//! Read the other way, a topic starting with `__` (the broker's internal topics, and topics
//! Kafka clients created under `__`) is no stream at all: never listed, described or read.

/// The prefix that escapes a reserved stream name.
pub const ESCAPE: &str = "kinesis.";

/// Whether a name cannot be the topic of a stream of that same name.
fn reserved(name: &str) -> bool {
    name.starts_with("__") || name == "." || name == ".."
}

/// The name without its leading [`ESCAPE`]s.
fn unescaped(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix(ESCAPE) {
        name = rest;
    }
    name
}

/// The topic that holds the stream `stream`.
pub fn topic_of(stream: &str) -> std::borrow::Cow<'_, str> {
    if reserved(unescaped(stream)) {
        format!("{ESCAPE}{stream}").into()
    } else {
        stream.into()
    }
}

/// The stream a topic holds, or `None` for a topic that is not a stream (the broker's
/// internal topics, any topic under `__`).
pub fn stream_of(topic: &str) -> Option<&str> {
    if reserved(topic) {
        return None;
    }
    if reserved(unescaped(topic)) {
        // At least one ESCAPE (else the topic itself would be reserved): drop one.
        return topic.strip_prefix(ESCAPE);
    }
    Some(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_their_topic() {
        for name in [
            "orders",
            "a",
            "kinesis.orders",
            "kinesis.",
            "_x",
            "x__y",
            "...",
        ] {
            assert_eq!(topic_of(name), name);
            assert_eq!(stream_of(name), Some(name));
        }
    }

    #[test]
    fn reserved_names_are_escaped_and_internal_topics_are_no_streams() {
        assert_eq!(topic_of("__orders"), "kinesis.__orders");
        assert_eq!(topic_of("__consumer_offsets"), "kinesis.__consumer_offsets");
        assert_eq!(topic_of("kinesis.__x"), "kinesis.kinesis.__x");
        assert_eq!(topic_of("."), "kinesis..");
        assert_eq!(topic_of(".."), "kinesis...");
        assert_eq!(stream_of("kinesis.__orders"), Some("__orders"));
        assert_eq!(stream_of("kinesis.kinesis.__x"), Some("kinesis.__x"));
        assert_eq!(stream_of("kinesis.."), Some("."));
        for internal in [
            "__consumer_offsets",
            "__transaction_state",
            "__orders",
            "__",
        ] {
            assert_eq!(stream_of(internal), None);
        }
    }

    #[test]
    fn the_mapping_is_injective_and_round_trips() {
        let parts = ["", "__", "kinesis.", ".", "..", "a", "_", "kinesis"];
        let mut names = Vec::new();
        for a in parts {
            for b in parts {
                for c in parts {
                    let n = format!("{a}{b}{c}");
                    if !n.is_empty() {
                        names.push(n);
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        let mut topics = std::collections::HashSet::new();
        for n in &names {
            let t = topic_of(n);
            assert!(!t.starts_with("__"), "{n} -> {t}");
            assert!(
                crate::catalog::validate_topic_name(&t).is_ok(),
                "{n} -> {t}"
            );
            assert_eq!(stream_of(&t), Some(n.as_str()), "{n} -> {t}");
            assert!(topics.insert(t.into_owned()), "{n} collides");
        }
        // Every topic that is a stream maps back to itself.
        for t in &names {
            if let Some(s) = stream_of(t) {
                assert_eq!(topic_of(s), t.as_str());
            }
        }
    }
}
