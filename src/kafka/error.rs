//! The one place where errors of the lower layers become Kafka error codes.

pub use kafka_protocol::error::ResponseError as Code;

use crate::log::LogError;
use crate::shard::{ShardError, StorageError};

/// Maps a storage error to the code a client expects for it.
pub fn storage_code(e: &StorageError) -> Code {
    match e {
        StorageError::UnknownPartition => Code::UnknownTopicOrPartition,
        StorageError::Log(l) => log_code(l),
        StorageError::Io(_) => Code::KafkaStorageError,
        StorageError::OutOfOrderSequence { .. } => Code::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => Code::InvalidProducerEpoch,
        StorageError::NotLeader => Code::NotLeaderOrFollower,
        StorageError::NotEnoughReplicas { .. } => Code::NotEnoughReplicas,
        StorageError::FencedLeaderEpoch { .. } => Code::FencedLeaderEpoch,
        StorageError::UnknownLeaderEpoch { .. } => Code::UnknownLeaderEpoch,
        StorageError::ControlBatchFromClient => Code::InvalidRecord,
        StorageError::CoordinatorFenced { .. } => Code::TransactionCoordinatorFenced,
    }
}

/// Maps a log error to its Kafka error code.
pub fn log_code(e: &LogError) -> Code {
    match e {
        LogError::CorruptRecord(_) | LogError::UnsupportedMagic(_) => Code::CorruptMessage,
        LogError::RecordTooLarge { .. } => Code::MessageTooLarge,
        LogError::InvalidRecord(_) => Code::InvalidRecord,
        LogError::OffsetOutOfRange { .. } => Code::OffsetOutOfRange,
        LogError::StaleEpoch { .. } => Code::FencedLeaderEpoch,
        _ => Code::KafkaStorageError,
    }
}

/// A shard that cannot be reached is, to a client, a broker that is going away.
pub fn shard_code(_e: &ShardError) -> Code {
    Code::NotLeaderOrFollower
}

/// Maps a group coordinator outcome to its Kafka error code.
pub fn group_code(e: &crate::coordinator::GroupError) -> Code {
    use crate::coordinator::GroupError as G;
    match e {
        G::InvalidGroupId => Code::InvalidGroupId,
        G::CoordinatorLoadInProgress => Code::CoordinatorLoadInProgress,
        G::CoordinatorNotAvailable => Code::CoordinatorNotAvailable,
        G::NotCoordinator => Code::NotCoordinator,
        G::UnknownMemberId => Code::UnknownMemberId,
        G::IllegalGeneration => Code::IllegalGeneration,
        G::RebalanceInProgress => Code::RebalanceInProgress,
        G::MemberIdRequired => Code::MemberIdRequired,
        G::FencedInstanceId => Code::FencedInstanceId,
        G::InconsistentGroupProtocol => Code::InconsistentGroupProtocol,
        G::InvalidSessionTimeout => Code::InvalidSessionTimeout,
        G::GroupIdNotFound => Code::GroupIdNotFound,
        G::NonEmptyGroup => Code::NonEmptyGroup,
        G::GroupSubscribedToTopic => Code::GroupSubscribedToTopic,
        G::OffsetMetadataTooLarge => Code::OffsetMetadataTooLarge,
        G::UnknownTopicOrPartition => Code::UnknownTopicOrPartition,
        G::FencedMemberEpoch => Code::FencedMemberEpoch,
        G::StaleMemberEpoch => Code::StaleMemberEpoch,
        G::UnsupportedAssignor => Code::UnsupportedAssignor,
        G::UnreleasedInstanceId => Code::UnreleasedInstanceId,
        G::InvalidRequest => Code::InvalidRequest,
        G::InvalidProducerEpoch => Code::InvalidProducerEpoch,
        G::UnstableOffsetCommit => Code::UnstableOffsetCommit,
        G::InvalidRegularExpression => Code::InvalidRegularExpression,
    }
}

/// The code of an optional group error (0 for none).
pub fn group_error_code(e: Option<crate::coordinator::GroupError>) -> i16 {
    e.map_or(0, |e| group_code(&e).code())
}

/// Maps a transaction coordinator refusal to its Kafka error code. Requests older than KIP-588
/// (`fenced_is_epoch`) learn of fencing as INVALID_PRODUCER_EPOCH.
pub fn txn_code(e: &crate::txn::state::TxnError, fenced_is_epoch: bool) -> Code {
    use crate::txn::state::TxnError as E;
    match e {
        E::InvalidProducerIdMapping => Code::InvalidProducerIdMapping,
        E::ProducerFenced if fenced_is_epoch => Code::InvalidProducerEpoch,
        E::ProducerFenced => Code::ProducerFenced,
        E::ConcurrentTransactions => Code::ConcurrentTransactions,
        E::InvalidTxnState => Code::InvalidTxnState,
        E::InvalidTransactionTimeout => Code::InvalidTransactionTimeout,
        E::NotCoordinator => Code::NotCoordinator,
        E::CoordinatorLoadInProgress => Code::CoordinatorLoadInProgress,
        E::CoordinatorNotAvailable | E::NeedProducerId => Code::CoordinatorNotAvailable,
    }
}

/// Maps a delegation-token refusal to its Kafka error code.
pub fn token_code(e: crate::auth::delegation::TokenError) -> Code {
    use crate::auth::delegation::TokenError as E;
    match e {
        E::Disabled => Code::DelegationTokenAuthDisabled,
        E::NotFound => Code::DelegationTokenNotFound,
        E::Expired => Code::DelegationTokenExpired,
        E::OwnerMismatch => Code::DelegationTokenOwnerMismatch,
        E::InvalidPrincipalType => Code::InvalidPrincipalType,
    }
}

/// Maps a refused telemetry request (KIP-714) to its Kafka error code.
pub fn telemetry_code(e: &crate::telemetry::TelemetryError) -> Code {
    use crate::telemetry::TelemetryError as T;
    match e {
        T::InvalidRequest(_) => Code::InvalidRequest,
        T::Throttled(_) => Code::ThrottlingQuotaExceeded,
        T::UnknownSubscriptionId { .. } => Code::UnknownSubscriptionId,
        T::UnsupportedCompression(_) => Code::UnsupportedCompressionType,
        T::TooLarge { .. } => Code::TelemetryTooLarge,
        T::InvalidRecord(_) => Code::InvalidRecord,
    }
}

/// Maps a refused client metrics resource change to its Kafka error code (Kafka answers
/// INVALID_REQUEST for unknown keys, an empty name or an interval out of range, and
/// INVALID_CONFIG for values that do not parse).
pub fn client_metrics_code(e: &crate::telemetry::ConfigError) -> Code {
    use crate::telemetry::{ConfigError as C, SubscriptionError as S};
    match e {
        C::Invalid(S::EmptyName | S::UnknownKey(_) | S::Interval(_)) => Code::InvalidRequest,
        C::Invalid(S::NotAnInteger(_) | S::Pattern(_)) | C::NotAList(_) => Code::InvalidConfig,
        C::Storage(_) => Code::KafkaStorageError,
    }
}
