//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer. A consumer is a name registered on a stream
//! (kept in the stream's metadata, at most 20 per stream as in AWS); its ARN is
//! `<stream ARN>/consumer/<name>:<creation epoch seconds>`. Consumers are ACTIVE as soon as
//! they are registered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{limit, required, stream_arn, validate_stream_name, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    Consumer, ConsumerDescription, ConsumerRefInput, DescribeConsumerOutput, Empty,
    ListConsumersInput, ListConsumersOutput, RegisterConsumerInput, RegisterConsumerOutput,
    Timestamp,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::ConsumerMeta;
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// Consumers per stream.
pub const MAX_CONSUMERS: usize = 20;

/// A consumer's ARN.
pub(crate) fn consumer_arn(region: &str, stream: &str, c: &ConsumerMeta) -> String {
    format!(
        "{}/consumer/{}:{}",
        stream_arn(region, stream),
        c.name,
        c.created_ms.div_euclid(1000)
    )
}

/// (stream name, consumer name, creation seconds) of a consumer ARN.
pub(crate) fn parse_consumer_arn(arn: &str) -> Option<(String, String, i64)> {
    let (stream_part, consumer_part) = arn.split_once("/consumer/")?;
    let (_, stream) = stream_part.split_once(":stream/")?;
    let (name, secs) = consumer_part.rsplit_once(':')?;
    Some((stream.to_string(), name.to_string(), secs.parse().ok()?))
}

fn stream_of_arn(arn: &str) -> Result<String, KinesisError> {
    let name = arn
        .split_once(":stream/")
        .map(|(_, n)| n.to_string())
        .filter(|n| !n.contains('/'))
        .ok_or_else(|| {
            KinesisError::validation(arn, "streamARN", "Member must be a Kinesis stream ARN")
        })?;
    validate_stream_name(&name)?;
    Ok(name)
}

fn validate_consumer_name(name: &str) -> Result<(), KinesisError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KinesisError::validation(
            name,
            "consumerName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ (1 to 128 characters)",
        ))
    }
}

fn not_found(stream: &str, consumer: &str) -> KinesisError {
    KinesisError::ResourceNotFound(format!(
        "Consumer {consumer} under stream {stream} under account {ACCOUNT_ID} not found."
    ))
}

/// The stream and consumer a ConsumerARN, or a StreamARN and ConsumerName, name.
pub(crate) fn find_consumer(
    k: &Kinesis,
    consumer_arn: Option<&str>,
    stream_arn: Option<&str>,
    consumer_name: Option<&str>,
) -> Result<(Stream, ConsumerMeta), KinesisError> {
    let (stream_name, name, secs) = match (consumer_arn, stream_arn, consumer_name) {
        (Some(arn), _, _) => {
            let (s, n, t) = parse_consumer_arn(arn).ok_or_else(|| {
                KinesisError::validation(
                    arn,
                    "consumerARN",
                    "Member must be a Kinesis consumer ARN",
                )
            })?;
            (s, n, Some(t))
        }
        (None, Some(arn), Some(name)) => (stream_of_arn(arn)?, name.to_string(), None),
        _ => {
            return Err(KinesisError::InvalidArgument(
                "Either ConsumerARN or both StreamARN and ConsumerName must be provided.".into(),
            ))
        }
    };
    validate_stream_name(&stream_name)?;
    let stream = k.stream(&stream_name)?;
    let consumer = stream
        .meta
        .consumers
        .iter()
        .find(|c| c.name == name && secs.map_or(true, |t| t == c.created_ms.div_euclid(1000)))
        .cloned()
        .ok_or_else(|| not_found(&stream_name, &name))?;
    Ok((stream, consumer))
}

fn model(region: &str, stream: &str, c: &ConsumerMeta) -> Consumer {
    Consumer {
        consumer_name: c.name.clone(),
        consumer_arn: consumer_arn(region, stream, c),
        consumer_status: "ACTIVE".into(),
        consumer_creation_timestamp: Timestamp(c.created_ms),
    }
}

/// Handles RegisterStreamConsumer.
pub async fn register(
    k: &Kinesis,
    req: RegisterConsumerInput,
    caller: &Caller,
) -> Result<RegisterConsumerOutput, KinesisError> {
    let arn = required(req.stream_arn, "streamARN")?;
    let name = required(req.consumer_name, "consumerName")?;
    validate_consumer_name(&name)?;
    let stream_name = stream_of_arn(&arn)?;
    k.authorize(
        caller,
        "RegisterStreamConsumer",
        crate::auth::Operation::Read,
        &stream_name,
    )?;
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&stream_name)?;
    if stream.meta.consumers.iter().any(|c| c.name == name) {
        return Err(KinesisError::ResourceInUse(format!(
            "Consumer {name} under stream {stream_name} under account {ACCOUNT_ID} already exists."
        )));
    }
    if stream.meta.consumers.len() >= MAX_CONSUMERS {
        return Err(KinesisError::LimitExceeded(format!(
            "Stream {stream_name} under account {ACCOUNT_ID} already has {MAX_CONSUMERS} registered consumers."
        )));
    }
    let consumer = ConsumerMeta::new(name, BrokerContext::now_ms());
    let mut meta = (*stream.meta).clone();
    meta.consumers.push(consumer.clone());
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    tracing::info!(stream = %stream_name, consumer = %consumer.name, "kinesis consumer registered");
    Ok(RegisterConsumerOutput {
        consumer: model(&caller.region, &stream_name, &consumer),
    })
}

/// Handles DescribeStreamConsumer.
pub async fn describe(
    k: &Kinesis,
    req: ConsumerRefInput,
    caller: &Caller,
) -> Result<DescribeConsumerOutput, KinesisError> {
    let (stream, c) = find_consumer(
        k,
        req.consumer_arn.as_deref(),
        req.stream_arn.as_deref(),
        req.consumer_name.as_deref(),
    )?;
    k.authorize(
        caller,
        "DescribeStreamConsumer",
        crate::auth::Operation::Describe,
        &stream.name,
    )?;
    let m = model(&caller.region, &stream.name, &c);
    Ok(DescribeConsumerOutput {
        consumer_description: ConsumerDescription {
            consumer_name: m.consumer_name,
            consumer_arn: m.consumer_arn,
            consumer_status: m.consumer_status,
            consumer_creation_timestamp: m.consumer_creation_timestamp,
            stream_arn: stream_arn(&caller.region, &stream.name),
        },
    })
}

/// Handles ListStreamConsumers (paged by a NextToken holding the last name returned).
pub async fn list(
    k: &Kinesis,
    req: ListConsumersInput,
    caller: &Caller,
) -> Result<ListConsumersOutput, KinesisError> {
    let arn = required(req.stream_arn, "streamARN")?;
    let max = limit(req.max_results, 100, 10_000, "maxResults")?;
    let stream_name = stream_of_arn(&arn)?;
    k.authorize(
        caller,
        "ListStreamConsumers",
        crate::auth::Operation::Describe,
        &stream_name,
    )?;
    let stream = k.stream(&stream_name)?;
    let after = match &req.next_token {
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| KinesisError::InvalidArgument("Invalid NextToken.".into()))?,
        ),
        None => None,
    };
    let mut consumers: Vec<&ConsumerMeta> = stream.meta.consumers.iter().collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut eligible = consumers
        .into_iter()
        .filter(|c| after.as_deref().map_or(true, |a| c.name.as_str() > a));
    let page: Vec<&ConsumerMeta> = eligible.by_ref().take(max).collect();
    let next_token = match (eligible.next(), page.last()) {
        (Some(_), Some(last)) => Some(URL_SAFE_NO_PAD.encode(last.name.as_bytes())),
        _ => None,
    };
    Ok(ListConsumersOutput {
        consumers: page
            .into_iter()
            .map(|c| model(&caller.region, &stream.name, c))
            .collect(),
        next_token,
    })
}

/// Handles DeregisterStreamConsumer.
pub async fn deregister(
    k: &Kinesis,
    req: ConsumerRefInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let _admin = k.streams.admin.lock().await;
    let (stream, c) = find_consumer(
        k,
        req.consumer_arn.as_deref(),
        req.stream_arn.as_deref(),
        req.consumer_name.as_deref(),
    )?;
    k.authorize(
        caller,
        "DeregisterStreamConsumer",
        crate::auth::Operation::Read,
        &stream.name,
    )?;
    let mut meta = (*stream.meta).clone();
    meta.consumers.retain(|x| x.name != c.name);
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    tracing::info!(stream = %stream.name, consumer = %c.name, "kinesis consumer deregistered");
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_arns_round_trip() {
        let c = ConsumerMeta::new("app".into(), 1_700_000_000_123);
        let arn = consumer_arn("us-east-1", "orders", &c);
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/app:1700000000"
        );
        assert_eq!(
            parse_consumer_arn(&arn),
            Some(("orders".into(), "app".into(), 1_700_000_000))
        );
        assert_eq!(
            parse_consumer_arn("arn:aws:kinesis:x:y:stream/orders"),
            None
        );
    }
}
