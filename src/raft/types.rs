//! The openraft type configuration of the quorum: node ids are `u64`, nodes are
//! [`openraft::BasicNode`] (the `host:port` of the controller listener), commands and replies
//! are opaque bytes. Plain data, used from whichever thread holds it.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata quorum.
    pub(crate) TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of the quorum.
pub(crate) type LogEntry = openraft::Entry<TypeConfig>;
/// A log id (leader term and node, index).
pub(crate) type LogId = openraft::LogId<u64>;
/// The membership as recorded with the log id of the entry that set it.
pub(crate) type Membership = openraft::StoredMembership<u64, openraft::BasicNode>;
/// Snapshot metadata: last included log id and membership.
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
/// openraft's storage error for this configuration.
pub(crate) type StorageError = openraft::StorageError<u64>;

/// A command replicated through the log: the bytes given to `Quorum::write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Command(#[serde(with = "b64")] pub(crate) Vec<u8>);

/// The state machine's reply to a command (empty for blank and membership entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply(#[serde(with = "b64")] pub(crate) Vec<u8>);

/// Serde helper: byte vectors as base64 strings in JSON (a third of the size of a number array).
pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `bytes` as a base64 string.
    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    /// Deserializes a base64 string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
