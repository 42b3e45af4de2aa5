//! Kinesis errors as data: each variant is one AWS exception, with the `__type` clients match on
//! and the HTTP status AWS answers it with.
//!
//! Status codes follow what Kinesis Data Streams itself answers (the AWS Java SDK's
//! `Status Code: 400; Error Code: UnrecognizedClientException` / `InvalidSignatureException`
//! reports): every client-side problem, signature problems included, is 400; only
//! `InternalFailure` and `ServiceUnavailable` are 5xx.

/// One Kinesis exception; the message is the text AWS would put in `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinesisError {
    /// The stream or shard does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The resource is not in a state that allows the operation (e.g. the stream exists).
    #[error("{0}")]
    ResourceInUse(String),
    /// A parameter is not valid for the operation (semantic check).
    #[error("{0}")]
    InvalidArgument(String),
    /// A parameter breaks the API's constraints (length, range, pattern).
    #[error("{0}")]
    Validation(String),
    /// An account or stream limit would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// The shard iterator is older than its time to live.
    #[error("{0}")]
    ExpiredIterator(String),
    /// The ListShards / ListStreams `NextToken` is older than its time to live.
    #[error("{0}")]
    ExpiredNextToken(String),
    /// A shard's throughput limit is exceeded (`kinesis.enforce.limits`).
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    /// The body is not valid JSON / CBOR or does not match the operation's shape (AWS sends
    /// no message for a body it cannot parse: then the text is empty and left out).
    #[error("{0}")]
    Serialization(String),
    /// A member's value has the wrong type (AWS's `SerializationException` whose text is under
    /// `Message`, e.g. "class java.lang.String can not be converted to an Integer").
    #[error("{0}")]
    Type(String),
    /// `X-Amz-Target` names no Kinesis operation.
    #[error("{0}")]
    UnknownOperation(String),
    /// The access key is not known.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// The signature does not match, or the request is too old or too new.
    #[error("{0}")]
    InvalidSignature(String),
    /// The `Authorization` header lacks a part.
    #[error("{0}")]
    IncompleteSignature(String),
    /// No `Authorization` header while signatures are required.
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// The caller's principal may not perform the operation (the ACL authorizer said no).
    #[error("{0}")]
    AccessDenied(String),
    /// The operation is understood but not offered by this broker.
    #[error("{0}")]
    NotImplemented(String),
    /// Storage failed.
    #[error("{0}")]
    Internal(String),
}

impl KinesisError {
    /// The `__type` of the error body (and of `x-amzn-ErrorType`).
    pub fn type_name(&self) -> &'static str {
        match self {
            KinesisError::ResourceNotFound(_) => "ResourceNotFoundException",
            KinesisError::ResourceInUse(_) => "ResourceInUseException",
            KinesisError::InvalidArgument(_) => "InvalidArgumentException",
            KinesisError::Validation(_) => "ValidationException",
            KinesisError::LimitExceeded(_) => "LimitExceededException",
            KinesisError::ExpiredIterator(_) => "ExpiredIteratorException",
            KinesisError::ExpiredNextToken(_) => "ExpiredNextTokenException",
            KinesisError::ProvisionedThroughputExceeded(_) => {
                "ProvisionedThroughputExceededException"
            }
            KinesisError::Serialization(_) | KinesisError::Type(_) => "SerializationException",
            KinesisError::UnknownOperation(_) => "UnknownOperationException",
            KinesisError::UnrecognizedClient(_) => "UnrecognizedClientException",
            KinesisError::InvalidSignature(_) => "InvalidSignatureException",
            KinesisError::IncompleteSignature(_) => "IncompleteSignatureException",
            KinesisError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            KinesisError::AccessDenied(_) => "AccessDeniedException",
            KinesisError::NotImplemented(_) => "NotImplemented",
            KinesisError::Internal(_) => "InternalFailure",
        }
    }

    /// The HTTP status AWS answers the error with.
    pub fn status(&self) -> u16 {
        match self {
            KinesisError::Internal(_) => 500,
            KinesisError::NotImplemented(_) => 501,
            _ => 400,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            KinesisError::ResourceNotFound(m)
            | KinesisError::ResourceInUse(m)
            | KinesisError::InvalidArgument(m)
            | KinesisError::Validation(m)
            | KinesisError::LimitExceeded(m)
            | KinesisError::ExpiredIterator(m)
            | KinesisError::ExpiredNextToken(m)
            | KinesisError::ProvisionedThroughputExceeded(m)
            | KinesisError::Serialization(m)
            | KinesisError::Type(m)
            | KinesisError::UnknownOperation(m)
            | KinesisError::UnrecognizedClient(m)
            | KinesisError::InvalidSignature(m)
            | KinesisError::IncompleteSignature(m)
            | KinesisError::MissingAuthenticationToken(m)
            | KinesisError::AccessDenied(m)
            | KinesisError::NotImplemented(m)
            | KinesisError::Internal(m) => m,
        }
    }

    /// The key of the message in the error body: AWS writes `Message` for type errors and
    /// `message` for everything else.
    pub fn message_key(&self) -> &'static str {
        match self {
            KinesisError::Type(_) => "Message",
            _ => "message",
        }
    }

    /// `ResourceNotFoundException` for a stream, in AWS's words.
    pub fn stream_not_found(stream: &str) -> KinesisError {
        KinesisError::ResourceNotFound(format!(
            "Stream {stream} under account {} not found.",
            super::ACCOUNT_ID
        ))
    }

    /// `ResourceNotFoundException` for a shard, in AWS's words.
    pub fn shard_not_found(stream: &str, shard: &str) -> KinesisError {
        KinesisError::ResourceNotFound(format!(
            "Shard {shard} in stream {stream} under account {} does not exist",
            super::ACCOUNT_ID
        ))
    }

    /// `ResourceNotFoundException` for a shard id that names no shard (or, for SplitShard and
    /// MergeShards, a shard the stream lacks), in AWS's words.
    pub fn could_not_find_shard(stream: &str, shard: &str) -> KinesisError {
        KinesisError::ResourceNotFound(format!(
            "Could not find shard {shard} in stream {stream} under account {}.",
            super::ACCOUNT_ID
        ))
    }

    /// `ValidationException` in AWS's "1 validation error detected" form.
    pub fn validation(
        value: impl std::fmt::Display,
        field: &str,
        constraint: &str,
    ) -> KinesisError {
        KinesisError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ))
    }
}

impl From<crate::shard::ShardError> for KinesisError {
    fn from(e: crate::shard::ShardError) -> Self {
        KinesisError::Internal(e.to_string())
    }
}

impl From<crate::shard::StorageError> for KinesisError {
    fn from(e: crate::shard::StorageError) -> Self {
        KinesisError::Internal(e.to_string())
    }
}

/// A forwarded operation fails as the local one would: `InternalFailure` (500, which the AWS
/// SDKs retry), with the storage error's text where the leader's answer maps to one.
impl From<super::remote::RemoteError> for KinesisError {
    fn from(e: super::remote::RemoteError) -> Self {
        KinesisError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_statuses() {
        let e = KinesisError::stream_not_found("s");
        assert_eq!(e.type_name(), "ResourceNotFoundException");
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("Stream s under account"));
        assert_eq!(KinesisError::Internal("x".into()).status(), 500);
        assert_eq!(
            KinesisError::InvalidSignature("x".into()).type_name(),
            "InvalidSignatureException"
        );
    }

    #[test]
    fn forwarded_failures_are_internal_failures() {
        use crate::kafka::error::Code;
        use crate::kinesis::remote::RemoteError;
        let local = KinesisError::from(crate::shard::StorageError::NotLeader);
        let remote = KinesisError::from(RemoteError::Kafka {
            code: Code::NotLeaderOrFollower,
            message: None,
        });
        assert_eq!(remote, local);
        assert_eq!(remote.status(), 500);
        let unknown = KinesisError::from(RemoteError::Kafka {
            code: Code::UnknownTopicId,
            message: None,
        });
        assert_eq!(
            unknown,
            KinesisError::from(crate::shard::StorageError::UnknownPartition)
        );
        let no_leader = KinesisError::from(RemoteError::NoLeader {
            topic: "s".into(),
            partition: 3,
        });
        assert_eq!(no_leader.type_name(), "InternalFailure");
        assert!(no_leader.message().contains("no leader for partition 3"));
    }
}
