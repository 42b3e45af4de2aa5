//! AddTagsToStream, ListTagsForStream, RemoveTagsFromStream: tags live in the stream's
//! metadata (at most 50 per stream, 10 per AddTagsToStream call, as in AWS).

use super::{limit, required, stream_name_of};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    AddTagsInput, Empty, ListTagsInput, ListTagsOutput, RemoveTagsInput, Tag,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

const MAX_TAGS: usize = 50;

fn check_tag(key: &str, value: &str) -> Result<(), KinesisError> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(KinesisError::validation(
            key,
            "tags",
            "Member must have a key of 1 to 128 characters",
        ));
    }
    if value.chars().count() > 256 {
        return Err(KinesisError::validation(
            value,
            "tags",
            "Member must have a value of at most 256 characters",
        ));
    }
    Ok(())
}

/// Handles AddTagsToStream.
pub async fn add(k: &Kinesis, req: AddTagsInput, caller: &Caller) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "AddTagsToStream",
        crate::auth::Operation::Alter,
        &name,
    )?;
    let tags = required(req.tags, "tags")?;
    if tags.is_empty() || tags.len() > 10 {
        return Err(KinesisError::validation(
            tags.len(),
            "tags",
            "Member must have length between 1 and 10",
        ));
    }
    for (key, value) in &tags {
        check_tag(key, value)?;
    }
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    let mut meta = (*stream.meta).clone();
    meta.tags.extend(tags);
    if meta.tags.len() > MAX_TAGS {
        return Err(KinesisError::LimitExceeded(format!(
            "Failed to add tags to stream {name} under account {} because a given stream \
             cannot have more than {MAX_TAGS} tags.",
            crate::kinesis::ACCOUNT_ID
        )));
    }
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    Ok(Empty {})
}

/// Handles ListTagsForStream.
pub async fn list(
    k: &Kinesis,
    req: ListTagsInput,
    caller: &Caller,
) -> Result<ListTagsOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "ListTagsForStream",
        crate::auth::Operation::Describe,
        &name,
    )?;
    let max = limit(req.limit, 50, 50, "limit")?;
    let stream = k.stream(&name)?;
    let mut eligible = stream.meta.tags.iter().filter(|(key, _)| {
        req.exclusive_start_tag_key
            .as_deref()
            .map_or(true, |a| key.as_str() > a)
    });
    let tags = eligible
        .by_ref()
        .take(max)
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    Ok(ListTagsOutput {
        tags,
        has_more_tags: eligible.next().is_some(),
    })
}

/// Handles RemoveTagsFromStream.
pub async fn remove(
    k: &Kinesis,
    req: RemoveTagsInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "RemoveTagsFromStream",
        crate::auth::Operation::Alter,
        &name,
    )?;
    let keys = required(req.tag_keys, "tagKeys")?;
    if keys.is_empty() || keys.len() > 50 {
        return Err(KinesisError::validation(
            keys.len(),
            "tagKeys",
            "Member must have length between 1 and 50",
        ));
    }
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    let mut meta = (*stream.meta).clone();
    for key in &keys {
        meta.tags.remove(key);
    }
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    Ok(Empty {})
}
