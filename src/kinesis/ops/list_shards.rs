//! ListShards: the shards of a stream in partition order, filtered by ShardFilter and paged by
//! ExclusiveStartShardId or NextToken. A NextToken is the base64 of
//! `<stream>\n<last partition returned>\n<issued ms>\n<filter>` and expires after 300 s
//! (ExpiredNextTokenException), as in AWS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{limit, parse_shard_id, shard_model, stream_name_of, validate_stream_name, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{ListShardsInput, ListShardsOutput, ShardFilter, Timestamp};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::ShardMeta;
use crate::kinesis::Kinesis;

const TOKEN_TTL_MS: i64 = 300_000;

struct Token {
    stream: String,
    after: i32,
    issued_ms: i64,
    filter: Option<(String, Option<i32>, Option<i64>)>,
}

fn encode_token(t: &Token) -> String {
    let filter = t
        .filter
        .as_ref()
        .map(|(kind, id, ts)| {
            format!(
                "{kind}\n{}\n{}",
                id.map(|i| i.to_string()).unwrap_or_default(),
                ts.map(|i| i.to_string()).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!(
        "{}\n{}\n{}\n{filter}",
        t.stream, t.after, t.issued_ms
    ))
}

fn decode_token(s: &str) -> Option<Token> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let mut parts = text.split('\n');
    let stream = parts.next()?.to_string();
    let after = parts.next()?.parse().ok()?;
    let issued_ms = parts.next()?.parse().ok()?;
    let kind = parts.next().unwrap_or("");
    let filter = if kind.is_empty() {
        None
    } else {
        let id = parts.next().and_then(|v| v.parse().ok());
        let ts = parts.next().and_then(|v| v.parse().ok());
        Some((kind.to_string(), id, ts))
    };
    Some(Token {
        stream,
        after,
        issued_ms,
        filter,
    })
}

fn keep(s: &ShardMeta, filter: &Option<(String, Option<i32>, Option<i64>)>) -> bool {
    let Some((kind, id, ts)) = filter else {
        return true;
    };
    let closed_at = s.closed.map(|c| c.at_ms);
    match kind.as_str() {
        "AFTER_SHARD_ID" => id.map_or(true, |id| s.partition > id),
        "AT_LATEST" => s.is_open(),
        "AT_TIMESTAMP" => {
            let ts = ts.unwrap_or(0);
            s.created_ms <= ts && closed_at.map_or(true, |c| c >= ts)
        }
        "FROM_TIMESTAMP" => {
            let ts = ts.unwrap_or(0);
            closed_at.map_or(true, |c| c >= ts)
        }
        // AT_TRIM_HORIZON, FROM_TRIM_HORIZON: every shard still holds data.
        _ => true,
    }
}

fn check_filter(f: &ShardFilter) -> Result<(String, Option<i32>, Option<i64>), KinesisError> {
    let kind = f.kind.as_str();
    let valid = [
        "AFTER_SHARD_ID",
        "AT_TRIM_HORIZON",
        "FROM_TRIM_HORIZON",
        "AT_LATEST",
        "AT_TIMESTAMP",
        "FROM_TIMESTAMP",
    ];
    if !valid.contains(&kind) {
        return Err(KinesisError::validation(
            kind,
            "shardFilter.type",
            &format!("Member must satisfy enum value set: [{}]", valid.join(", ")),
        ));
    }
    let id = match (&f.shard_id, kind) {
        (Some(id), _) => Some(parse_shard_id(id).ok_or_else(|| {
            KinesisError::validation(id, "shardFilter.shardId", "Member must be a shard id")
        })?),
        (None, "AFTER_SHARD_ID") => {
            return Err(KinesisError::InvalidArgument(
                "ShardId must be provided with the AFTER_SHARD_ID shard filter.".into(),
            ))
        }
        (None, _) => None,
    };
    let ts = match (f.timestamp, kind) {
        (Some(Timestamp(ms)), _) => Some(ms),
        (None, "AT_TIMESTAMP" | "FROM_TIMESTAMP") => {
            return Err(KinesisError::InvalidArgument(format!(
                "Timestamp must be provided with the {kind} shard filter."
            )))
        }
        (None, _) => None,
    };
    Ok((kind.to_string(), id, ts))
}

/// Handles ListShards.
pub async fn handle(
    k: &Kinesis,
    req: ListShardsInput,
    caller: &Caller,
) -> Result<ListShardsOutput, KinesisError> {
    let max = limit(req.max_results, 1000, 10_000, "maxResults")?;
    let now = BrokerContext::now_ms();
    let (stream, after, filter): (Stream, Option<i32>, _) = match &req.next_token {
        Some(token) => {
            if req.stream_name.is_some() || req.stream_arn.is_some() {
                return Err(KinesisError::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ));
            }
            let t = decode_token(token)
                .ok_or_else(|| KinesisError::InvalidArgument("Invalid NextToken.".into()))?;
            if now - t.issued_ms > TOKEN_TTL_MS {
                return Err(KinesisError::ExpiredNextToken(
                    "The NextToken has expired. Please make a new request without NextToken."
                        .into(),
                ));
            }
            validate_stream_name(&t.stream)?;
            k.authorize(
                caller,
                "ListShards",
                crate::auth::Operation::Describe,
                &t.stream,
            )?;
            (k.stream(&t.stream)?, Some(t.after), t.filter)
        }
        None => {
            let name = stream_name_of(&req)?;
            k.authorize(
                caller,
                "ListShards",
                crate::auth::Operation::Describe,
                &name,
            )?;
            let stream = k.stream(&name)?;
            let after = match &req.exclusive_start_shard_id {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                    KinesisError::validation(
                        id,
                        "exclusiveStartShardId",
                        "Member must be a shard id",
                    )
                })?),
                None => None,
            };
            let filter = req.shard_filter.as_ref().map(check_filter).transpose()?;
            (stream, after, filter)
        }
    };
    let mut eligible = stream
        .meta
        .shards
        .iter()
        .filter(|s| after.map_or(true, |a| s.partition > a))
        .filter(|s| keep(s, &filter));
    let page: Vec<&ShardMeta> = eligible.by_ref().take(max).collect();
    let has_more = eligible.next().is_some();
    let next_token = match (has_more, page.last()) {
        (true, Some(last)) => Some(encode_token(&Token {
            stream: stream.name.clone(),
            after: last.partition,
            issued_ms: now,
            filter,
        })),
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: page.into_iter().map(shard_model).collect(),
        next_token,
    })
}
