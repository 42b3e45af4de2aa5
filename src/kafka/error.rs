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
    }
}

/// Maps a log error to its Kafka error code.
pub fn log_code(e: &LogError) -> Code {
    match e {
        LogError::CorruptRecord(_) | LogError::UnsupportedMagic(_) => Code::CorruptMessage,
        LogError::RecordTooLarge { .. } => Code::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => Code::OffsetOutOfRange,
        _ => Code::KafkaStorageError,
    }
}

/// A shard that cannot be reached is, to a client, a broker that is going away.
pub fn shard_code(_e: &ShardError) -> Code {
    Code::NotLeaderOrFollower
}
