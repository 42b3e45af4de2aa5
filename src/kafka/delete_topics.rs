//! DeleteTopics (key 20), versions 1..=6 (names, or names and ids from v6).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 6);

/// Handles a DeleteTopics request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // Up to v5 the topics are a list of names; v6 has (name or id) entries.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let meta = match &name {
            Some(n) => ctx.catalog.get(n),
            None => ctx.catalog.get_by_id(&id),
        };
        let mut r = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        match meta {
            // The coordinator's internal topic cannot be deleted under it.
            Some(m) if &*m.name == crate::coordinator::OFFSETS_TOPIC => {
                r.error_code = Code::InvalidTopicException.code();
            }
            Some(m) => {
                ctx.delete_topic(&m.name).await;
                r.name = Some(TopicName(StrBytes::from_string(m.name.to_string())));
                r.topic_id = m.id;
            }
            None => {
                r.error_code = if name.is_some() {
                    Code::UnknownTopicOrPartition.code()
                } else {
                    Code::UnknownTopicId.code()
                };
            }
        }
        results.push(r);
    }
    DeleteTopicsResponse::default().with_responses(results)
}
