//! Operations addressed by a resource ARN (a stream's or an enhanced fan-out consumer's):
//! resolving the ARN, and PutResourcePolicy / GetResourcePolicy / DeleteResourcePolicy, whose
//! JSON policy text is stored verbatim with the stream (or its consumer) in the stream's
//! metadata. The policy is kept and answered, not enforced: the broker's ACLs decide access.

use super::consumers::parse_consumer_arn;
use super::{required, validate_stream_name};
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    Empty, GetResourcePolicyOutput, PutResourcePolicyInput, ResourceArnInput,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::{ConsumerMeta, StreamMeta};
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// The longest policy document AWS takes (20 KiB).
const MAX_POLICY_BYTES: usize = 20 << 10;

/// What a resource ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    Stream(String),
    /// `…:stream/<stream>/consumer/<name>:<creation seconds>`.
    Consumer {
        /// The stream.
        stream: String,
        /// The consumer's name.
        name: String,
        /// The creation seconds ending the ARN.
        secs: i64,
    },
}

/// Reads a resource ARN.
pub(crate) fn resolve_arn(arn: &str) -> Result<Resource, KinesisError> {
    let bad = || {
        KinesisError::InvalidArgument(format!(
            "Invalid ResourceARN {arn}: it names neither a Kinesis stream nor a consumer."
        ))
    };
    if !arn.starts_with("arn:") || !arn.contains(":kinesis:") {
        return Err(bad());
    }
    let resource = if arn.contains("/consumer/") {
        let (stream, name, secs) = parse_consumer_arn(arn).ok_or_else(bad)?;
        Resource::Consumer { stream, name, secs }
    } else {
        let (_, name) = arn.split_once(":stream/").ok_or_else(bad)?;
        Resource::Stream(name.to_string())
    };
    validate_stream_name(resource.stream())?;
    Ok(resource)
}

impl Resource {
    /// The stream of the resource.
    pub(crate) fn stream(&self) -> &str {
        match self {
            Resource::Stream(s) | Resource::Consumer { stream: s, .. } => s,
        }
    }

    /// "stream orders" / "consumer app" for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Resource::Stream(s) => format!("stream {s}"),
            Resource::Consumer { name, .. } => format!("consumer {name}"),
        }
    }

    /// ResourceNotFoundException unless the resource exists.
    pub(crate) fn check_exists(&self, k: &Kinesis) -> Result<(), KinesisError> {
        let stream = k.stream(self.stream())?;
        if let Resource::Consumer { .. } = self {
            let mut meta = (*stream.meta).clone();
            self.consumer_in(&mut meta)?;
        }
        Ok(())
    }

    /// The consumer this ARN names in `meta`.
    pub(crate) fn consumer_in<'a>(
        &self,
        meta: &'a mut StreamMeta,
    ) -> Result<&'a mut ConsumerMeta, KinesisError> {
        let Resource::Consumer { stream, name, secs } = self else {
            return Err(KinesisError::Internal("not a consumer ARN".into()));
        };
        meta.consumers
            .iter_mut()
            .find(|c| &c.name == name && c.created_ms.div_euclid(1000) == *secs)
            .ok_or_else(|| {
                KinesisError::ResourceNotFound(format!(
                    "Consumer {name} under stream {stream} under account {ACCOUNT_ID} not found."
                ))
            })
    }
}

/// The policy slot of a resource in `meta`.
fn policy_of<'a>(
    resource: &Resource,
    meta: &'a mut StreamMeta,
) -> Result<&'a mut Option<String>, KinesisError> {
    Ok(match resource {
        Resource::Stream(_) => &mut meta.policy,
        Resource::Consumer { .. } => &mut resource.consumer_in(meta)?.policy,
    })
}

/// Sets (or with `None` removes) a resource's policy; `None` from `check` keeps it.
async fn set_policy(
    k: &Kinesis,
    resource: &Resource,
    policy: Option<String>,
    arn: &str,
) -> Result<(), KinesisError> {
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(resource.stream())?;
    let mut meta = (*stream.meta).clone();
    let slot = policy_of(resource, &mut meta)?;
    if policy.is_none() && slot.is_none() {
        return Err(KinesisError::ResourceNotFound(format!(
            "No resource policy found for resource ARN {arn}."
        )));
    }
    *slot = policy;
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    Ok(())
}

/// Handles PutResourcePolicy: the policy must be a JSON object; it is kept as sent.
pub async fn put_policy(
    k: &Kinesis,
    req: PutResourcePolicyInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let policy = required(req.policy, "policy")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "PutResourcePolicy",
        crate::auth::Operation::Alter,
        resource.stream(),
    )?;
    if policy.len() > MAX_POLICY_BYTES {
        return Err(KinesisError::validation(
            "policy",
            "policy",
            &format!("Member must have length less than or equal to {MAX_POLICY_BYTES}"),
        ));
    }
    if !serde_json::from_str::<serde_json::Value>(&policy).is_ok_and(|v| v.is_object()) {
        return Err(KinesisError::InvalidArgument(
            "Policy is not a valid JSON policy document.".into(),
        ));
    }
    set_policy(k, &resource, Some(policy), &arn).await?;
    tracing::info!(resource = %arn, "kinesis resource policy stored");
    Ok(Empty {})
}

/// Handles GetResourcePolicy: the stored text, or `{}` when there is none.
pub async fn get_policy(
    k: &Kinesis,
    req: ResourceArnInput,
    caller: &Caller,
) -> Result<GetResourcePolicyOutput, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "GetResourcePolicy",
        crate::auth::Operation::Describe,
        resource.stream(),
    )?;
    let stream = k.stream(resource.stream())?;
    let mut meta = (*stream.meta).clone();
    let policy = policy_of(&resource, &mut meta)?
        .take()
        .unwrap_or_else(|| "{}".into());
    Ok(GetResourcePolicyOutput { policy })
}

/// Handles DeleteResourcePolicy.
pub async fn delete_policy(
    k: &Kinesis,
    req: ResourceArnInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let arn = required(req.resource_arn, "resourceARN")?;
    let resource = resolve_arn(&arn)?;
    k.authorize(
        caller,
        "DeleteResourcePolicy",
        crate::auth::Operation::Alter,
        resource.stream(),
    )?;
    set_policy(k, &resource, None, &arn).await?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert_eq!(
            resolve_arn("arn:aws:kinesis:us-east-1:000000000000:stream/orders").unwrap(),
            Resource::Stream("orders".into())
        );
        assert_eq!(
            resolve_arn("arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/app:17")
                .unwrap(),
            Resource::Consumer {
                stream: "orders".into(),
                name: "app".into(),
                secs: 17
            }
        );
        assert!(resolve_arn("arn:aws:s3:::bucket").is_err());
        assert!(resolve_arn("orders").is_err());
    }
}
