//! ListStreams: stream names and summaries in name order, paged by ExclusiveStartStreamName or
//! an opaque NextToken (the base64 of the last name returned).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{limit, mode_model, stream_arn};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{ListStreamsInput, ListStreamsOutput, StreamSummary, Timestamp};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Handles ListStreams.
pub async fn handle(
    k: &Kinesis,
    req: ListStreamsInput,
    caller: &Caller,
) -> Result<ListStreamsOutput, KinesisError> {
    let max = limit(req.limit, 100, 10_000, "limit")?;
    let after = match (&req.next_token, &req.exclusive_start_stream_name) {
        (Some(_), Some(_)) => {
            return Err(KinesisError::InvalidArgument(
                "NextToken and ExclusiveStartStreamName cannot be provided together.".into(),
            ))
        }
        (Some(token), None) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| KinesisError::InvalidArgument("Invalid NextToken.".into()))?,
        ),
        (None, name) => name.clone(),
    };
    let mut eligible = k
        .all_streams()
        .into_iter()
        .filter(|s| after.as_deref().map_or(true, |a| s.name.as_str() > a))
        // Only the streams the caller may DESCRIBE, as Kafka's Metadata listing.
        .filter(|s| k.may_describe(caller, &s.name));
    let page: Vec<_> = eligible.by_ref().take(max).collect();
    let has_more = eligible.next().is_some();
    let next_token = if has_more {
        page.last()
            .map(|s| URL_SAFE_NO_PAD.encode(s.name.as_bytes()))
    } else {
        None
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|s| s.name.clone()).collect(),
        has_more_streams: has_more,
        next_token,
        stream_summaries: page
            .iter()
            .map(|s| StreamSummary {
                stream_name: s.name.clone(),
                stream_arn: stream_arn(&caller.region, &s.name),
                stream_status: s
                    .meta
                    .status(crate::context::BrokerContext::now_ms())
                    .into(),
                stream_mode_details: mode_model(&s.meta),
                stream_creation_timestamp: Timestamp(s.meta.created_ms),
            })
            .collect(),
    })
}
