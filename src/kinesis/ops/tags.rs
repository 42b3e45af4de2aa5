//! AddTagsToStream, ListTagsForStream, RemoveTagsFromStream and their ARN-addressed forms
//! TagResource, UntagResource, ListTagsForResource (a stream's or a consumer's ARN). Tags live
//! in the stream's metadata (a consumer's with the consumer), with AWS's limits and texts: at
//! most 50 per resource, 10 per AddTagsToStream / RemoveTagsFromStream call, keys of 1–128
//! and values of 0–256 characters of Unicode letters, digits, white space and `_ . / = + - @`
//! (`%` passes the character check but is then refused, as AWS does).

use std::collections::BTreeMap;

use super::resource::{resolve_arn, Resource};
use super::{limit, required, stream_name_of};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    AddTagsInput, Empty, ListTagsForResourceInput, ListTagsForResourceOutput, ListTagsInput,
    ListTagsOutput, RemoveTagsInput, Tag, TagResourceInput, UntagResourceInput,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// Tags one stream (or consumer) may have.
pub(crate) const MAX_TAGS: usize = 50;
/// Tags one AddTagsToStream / keys one RemoveTagsFromStream call may name.
const MAX_PER_CALL: usize = 10;

/// Whether AWS's tag character check passes `c` (kinesalite's rendering of it: Unicode
/// letters of U+00C0–U+1FFF and U+2C00–U+D7FF, ASCII word characters, `. / - = + _ @ %` and
/// space).
fn allowed_char(c: char) -> bool {
    matches!(c, '\u{C0}'..='\u{1FFF}' | '\u{2C00}'..='\u{D7FF}')
        || c.is_ascii_alphanumeric()
        || matches!(c, '_' | '.' | '/' | '-' | '=' | '+' | ' ' | '@' | '%')
}

/// Checks tag keys and values for AWS's characters; `what` is "add tags to" or "remove tags
/// from", `resource` e.g. "stream orders".
pub(crate) fn check_characters<'a>(
    texts: impl Iterator<Item = &'a str> + Clone,
    what: &str,
    resource: &str,
) -> Result<(), KinesisError> {
    if texts.clone().any(|t| !t.chars().all(allowed_char)) {
        return Err(KinesisError::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @."
                .into(),
        ));
    }
    if texts.clone().any(|t| t.contains('%')) {
        return Err(KinesisError::InvalidArgument(format!(
            "Failed to {what} {resource} under account {ACCOUNT_ID} because some tags contained \
             illegal characters. The allowed characters are Unicode letters, white-spaces, \
             '_',',','/','=','+','-','@'."
        )));
    }
    Ok(())
}

/// Key and value lengths (the API's constraints).
pub(crate) fn check_lengths<'a>(
    tags: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), KinesisError> {
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(KinesisError::validation(
                key,
                "tags",
                "Map keys must satisfy constraint: [Member must have length less than or equal \
                 to 128, Member must have length greater than or equal to 1]",
            ));
        }
        if value.chars().count() > 256 {
            return Err(KinesisError::validation(
                value,
                "tags",
                "Map value must satisfy constraint: [Member must have length less than or equal \
                 to 256, Member must have length greater than or equal to 0]",
            ));
        }
    }
    Ok(())
}

/// Adds `tags` to `current`, refusing more than [`MAX_TAGS`] in all.
fn merge(
    current: &mut BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    resource: &str,
) -> Result<(), KinesisError> {
    let mut merged = current.clone();
    merged.extend(tags);
    if merged.len() > MAX_TAGS {
        return Err(KinesisError::InvalidArgument(format!(
            "Failed to add tags to {resource} under account {ACCOUNT_ID} because a given \
             {} cannot have more than {MAX_TAGS} tags associated with it.",
            resource.split(' ').next().unwrap_or("stream")
        )));
    }
    *current = merged;
    Ok(())
}

/// Applies `change` to the tags of a resource and stores the stream's metadata.
async fn update_tags(
    k: &Kinesis,
    resource: &Resource,
    change: impl FnOnce(&mut BTreeMap<String, String>, &str) -> Result<(), KinesisError>,
) -> Result<(), KinesisError> {
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(resource.stream())?;
    let mut meta = (*stream.meta).clone();
    match resource {
        Resource::Stream(name) => change(&mut meta.tags, &format!("stream {name}"))?,
        Resource::Consumer { name, .. } => {
            let c = resource.consumer_in(&mut meta)?;
            change(&mut c.tags, &format!("consumer {name}"))?
        }
    }
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
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
    if tags.is_empty() || tags.len() > MAX_PER_CALL {
        return Err(KinesisError::validation(
            format!("{tags:?}"),
            "tags",
            &format!("Member must have length between 1 and {MAX_PER_CALL}"),
        ));
    }
    check_lengths(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    k.stream(&name)?;
    let texts = tags.keys().chain(tags.values()).map(String::as_str);
    check_characters(texts, "add tags to", &format!("stream {name}"))?;
    update_tags(k, &Resource::Stream(name), |current, resource| {
        merge(current, tags, resource)
    })
    .await?;
    Ok(Empty {})
}

/// The tags of `all` after `exclusive_start`, at most `max`, and whether more remain.
fn page(
    all: &BTreeMap<String, String>,
    exclusive_start: Option<&str>,
    max: usize,
) -> (Vec<Tag>, bool) {
    let mut eligible = all
        .iter()
        .filter(|(key, _)| exclusive_start.map_or(true, |a| key.as_str() > a));
    let tags = eligible
        .by_ref()
        .take(max)
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    (tags, eligible.next().is_some())
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
    let (tags, has_more_tags) = page(
        &stream.meta.tags,
        req.exclusive_start_tag_key.as_deref(),
        max,
    );
    Ok(ListTagsOutput {
        tags,
        has_more_tags,
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
    if keys.is_empty() || keys.len() > MAX_PER_CALL {
        return Err(KinesisError::validation(
            format!("{keys:?}"),
            "tagKeys",
            &format!("Member must have length between 1 and {MAX_PER_CALL}"),
        ));
    }
    k.stream(&name)?;
    check_characters(
        keys.iter().map(String::as_str),
        "remove tags from",
        &format!("stream {name}"),
    )?;
    update_tags(k, &Resource::Stream(name), |current, _| {
        for key in &keys {
            current.remove(key);
        }
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

/// Handles TagResource (a stream's or a consumer's ARN).
pub async fn tag_resource(
    k: &Kinesis,
    req: TagResourceInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let tags = required(req.tags, "tags")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "TagResource",
        crate::auth::Operation::Alter,
        resource.stream(),
    )?;
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(KinesisError::validation(
            format!("{tags:?}"),
            "tags",
            &format!("Member must have length between 1 and {MAX_TAGS}"),
        ));
    }
    check_lengths(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    resource.check_exists(k)?;
    let texts = tags.keys().chain(tags.values()).map(String::as_str);
    check_characters(texts, "add tags to", &resource.describe())?;
    update_tags(k, &resource, |current, what| merge(current, tags, what)).await?;
    Ok(Empty {})
}

/// Handles UntagResource.
pub async fn untag_resource(
    k: &Kinesis,
    req: UntagResourceInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let keys = required(req.tag_keys, "tagKeys")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "UntagResource",
        crate::auth::Operation::Alter,
        resource.stream(),
    )?;
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(KinesisError::validation(
            format!("{keys:?}"),
            "tagKeys",
            &format!("Member must have length between 1 and {MAX_TAGS}"),
        ));
    }
    resource.check_exists(k)?;
    check_characters(
        keys.iter().map(String::as_str),
        "remove tags from",
        &resource.describe(),
    )?;
    update_tags(k, &resource, |current, _| {
        for key in &keys {
            current.remove(key);
        }
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

/// Handles ListTagsForResource: every tag of the resource.
pub async fn list_for_resource(
    k: &Kinesis,
    req: ListTagsForResourceInput,
    caller: &Caller,
) -> Result<ListTagsForResourceOutput, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "ListTagsForResource",
        crate::auth::Operation::Describe,
        resource.stream(),
    )?;
    let stream = k.stream(resource.stream())?;
    let mut meta = (*stream.meta).clone();
    let tags = match &resource {
        Resource::Stream(_) => meta.tags,
        Resource::Consumer { .. } => std::mem::take(&mut resource.consumer_in(&mut meta)?.tags),
    };
    Ok(ListTagsForResourceOutput {
        tags: page(&tags, None, MAX_TAGS).0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_tag_characters() {
        let ok = ["env", "a b", "x_y.z/w=1+2-3@", "Ünïcødé", "日本"];
        for t in ok {
            assert!(check_characters([t].into_iter(), "add tags to", "stream s").is_ok());
        }
        let e = check_characters(["a*b"].into_iter(), "add tags to", "stream s").unwrap_err();
        assert_eq!(
            e.message(),
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @."
        );
        let e = check_characters(["50%"].into_iter(), "add tags to", "stream s").unwrap_err();
        assert_eq!(
            e.message(),
            "Failed to add tags to stream s under account 000000000000 because some tags \
             contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        );
        assert!(check_characters(["tab\t"].into_iter(), "x", "y").is_err());
        assert!(check_characters(["😀"].into_iter(), "x", "y").is_err());
    }

    #[test]
    fn at_most_fifty_tags() {
        let mut current: BTreeMap<String, String> =
            (0..45).map(|i| (format!("k{i}"), String::new())).collect();
        let more: BTreeMap<String, String> =
            (40..50).map(|i| (format!("k{i}"), "v".into())).collect();
        merge(&mut current, more, "stream s").unwrap();
        assert_eq!(current.len(), 50);
        let e = merge(
            &mut current,
            BTreeMap::from([("new".into(), String::new())]),
            "stream s",
        )
        .unwrap_err();
        assert_eq!(e.type_name(), "InvalidArgumentException");
        assert!(e
            .message()
            .ends_with("because a given stream cannot have more than 50 tags associated with it."));
        assert_eq!(current.len(), 50);
    }
}
