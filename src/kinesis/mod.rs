//! The Kinesis Data Streams API, a second front end on the same storage as Kafka.
//!
//! ```text
//! AWS SDK ──HTTP/1.1 or h2c──▶ server (accept loop on shard 0, connections spread over the
//!                               shard runtimes, hyper)
//!            ──▶ router: X-Amz-Target → operation, JSON body, SigV4 (sigv4), errors (error)
//!                  ──▶ validate: AWS's type and constraint checks on the parsed body
//!                  ──▶ ops/<operation>.rs: one handler per operation, speaking the model
//!                        ──▶ BrokerContext (create/delete topic, add partitions) and the
//!                            shards (append / read / list_offset / snapshot), as Kafka does,
//!                            or, in a cluster, the partition's leader (remote: Kafka
//!                            Produce / Fetch / ListOffsets on the inter-broker listener)
//! ```
//!
//! The mapping: a stream is a topic of the same name, shard `shardId-00000000000k` is partition
//! `k`, a record is a Kafka record (partition key = key, data = value). What Kafka has no place
//! for (hash-key ranges, parent shards, tags, stream mode) lives in [`store`]. Sequence numbers
//! ([`sequence`]) and shard iterators ([`iterator`]) encode partition and offset. Handlers run
//! on the runtime of the shard that accepted the connection and reach partitions only by
//! message passing to their owning shards, or ([`remote`]) through the partition's leader when
//! another broker of the cluster leads it, so every broker's endpoint serves every stream.
//! `docs/kinesis.md` has the user-facing description.

pub mod error;
pub mod eventstream;
pub mod hash;
pub mod iterator;
pub mod limits;
pub mod model;
pub mod naming;
mod ops;
pub mod records;
pub mod remote;
pub mod sequence;
mod server;
pub mod sigv4;
pub mod store;
pub mod validate;

use std::sync::Arc;

pub use error::KinesisError;
pub(crate) use ops::dispatch as dispatch_operation;
pub(crate) use server::Reply as OperationReply;
pub use server::{accept_loop, Encoding};

use crate::context::BrokerContext;
use iterator::IteratorKey;
use sigv4::{AuthMode, Credentials};
use store::StreamStore;

/// The account id in ARNs and messages.
pub const ACCOUNT_ID: &str = "000000000000";

/// The Kinesis settings of the broker configuration (`kinesis.*` keys).
#[derive(Clone, PartialEq, Eq)]
pub struct KinesisConfig {
    /// `kinesis.listener` as `host:port`; `None` when empty (disabled).
    pub listener: Option<String>,
    /// Whether `kinesis.listener` was set explicitly: then failing to bind it stops start-up;
    /// the default listener is best effort (a warning when its port is taken).
    pub listener_explicit: bool,
    /// `kinesis.auth`.
    pub auth: AuthMode,
    /// `kinesis.credentials`.
    pub credentials: Credentials,
    /// `kinesis.shard.iterator.ttl.ms`.
    pub iterator_ttl_ms: i64,
    /// `kinesis.shard.limit`.
    pub shard_limit: i64,
    /// `kinesis.enforce.limits`.
    pub enforce_limits: bool,
    /// `kinesis.create.stream.ms`: how long a new stream is CREATING.
    pub create_stream_ms: i64,
    /// `kinesis.delete.stream.ms`: how long a deleted stream is DELETING.
    pub delete_stream_ms: i64,
    /// `kinesis.update.stream.ms`: how long a changed stream is UPDATING.
    pub update_stream_ms: i64,
}

impl std::fmt::Debug for KinesisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisConfig")
            .field("listener", &self.listener)
            .field("auth", &self.auth)
            .field("credentials", &"<redacted>")
            .field("iterator_ttl_ms", &self.iterator_ttl_ms)
            .field("shard_limit", &self.shard_limit)
            .field("enforce_limits", &self.enforce_limits)
            .field("create_stream_ms", &self.create_stream_ms)
            .field("delete_stream_ms", &self.delete_stream_ms)
            .field("update_stream_ms", &self.update_stream_ms)
            .finish()
    }
}

impl KinesisConfig {
    /// Builds the settings from the validated key values (`get(key)` returns the effective
    /// value as text; `explicit(key)` whether it was set).
    pub fn from_values(
        get: impl Fn(&str) -> String,
        explicit: impl Fn(&str) -> bool,
    ) -> KinesisConfig {
        let listener = get("kinesis.listener").trim().to_string();
        KinesisConfig {
            listener: (!listener.is_empty()).then_some(listener),
            listener_explicit: explicit("kinesis.listener"),
            auth: if get("kinesis.auth") == "sigv4" {
                AuthMode::SigV4
            } else {
                AuthMode::None
            },
            credentials: Credentials::parse(&get("kinesis.credentials")).unwrap_or_default(),
            iterator_ttl_ms: get("kinesis.shard.iterator.ttl.ms")
                .parse()
                .unwrap_or(300_000),
            shard_limit: get("kinesis.shard.limit").parse().unwrap_or(500),
            enforce_limits: get("kinesis.enforce.limits") == "true",
            create_stream_ms: get("kinesis.create.stream.ms").parse().unwrap_or(0),
            delete_stream_ms: get("kinesis.delete.stream.ms").parse().unwrap_or(0),
            update_stream_ms: get("kinesis.update.stream.ms").parse().unwrap_or(0),
        }
    }

    /// Checks a `kinesis.listener` value: empty, or `host:port`.
    pub fn validate_listener(v: &str) -> Result<(), String> {
        if v.trim().is_empty() {
            return Ok(());
        }
        let (host, port) = v
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| format!("`{v}` is not host:port"))?;
        port.parse::<u16>()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        if host.is_empty() {
            return Err(format!("`{v}` has no host"));
        }
        Ok(())
    }
}

/// The Kinesis front end's state, shared by its connections.
pub struct Kinesis {
    pub(crate) ctx: Arc<BrokerContext>,
    pub(crate) streams: StreamStore,
    pub(crate) iterators: IteratorKey,
    pub(crate) config: KinesisConfig,
    pub(crate) limits: limits::Limits,
    /// Set to true at shutdown (ends SubscribeToShard streams).
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    /// Active SubscribeToShard subscriptions: (topic id, consumer, partition).
    pub(crate) subscriptions:
        std::sync::Mutex<std::collections::HashSet<(uuid::Uuid, String, i32)>>,
    /// Forwarding to the leaders of partitions this node does not lead (cluster nodes only).
    pub(crate) remote: Option<Arc<remote::Remote>>,
    /// UpdateAccountSettings' settings (stored in `account.json` on a single node; in memory
    /// on a cluster node).
    pub(crate) account: std::sync::Mutex<model::AccountSettings>,
    /// Where `account.json` lives (single node only).
    account_file: Option<std::path::PathBuf>,
}

impl Kinesis {
    /// Loads the stream metadata and the iterator key from the log directory. `stop` turns
    /// true when the broker shuts down.
    pub fn open(
        ctx: Arc<BrokerContext>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<Kinesis> {
        let dir = StreamStore::dir_of(&ctx.config.log_dir);
        let streams = match &ctx.cluster {
            // Shared by every node through the metadata log.
            Some(c) => StreamStore::cluster(c.clone()),
            None => {
                let streams = StreamStore::open(dir.clone())?;
                streams.prune(|name, id| ctx.catalog.get(name).is_some_and(|t| t.id == id));
                streams
            }
        };
        let iterators = IteratorKey::load_or_create(&dir)?;
        let account_file = ctx.cluster.is_none().then(|| dir.join("account.json"));
        let account = account_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let config = ctx.config.kinesis.clone();
        let remote = ctx
            .cluster
            .clone()
            .map(|c| Arc::new(remote::Remote::new(c)));
        Ok(Kinesis {
            ctx,
            streams,
            iterators,
            config,
            limits: limits::Limits::default(),
            stop,
            subscriptions: Default::default(),
            remote,
            account: std::sync::Mutex::new(account),
            account_file,
        })
    }

    /// Stores the account settings (a single node's `account.json`, written atomically).
    pub(crate) fn store_account(
        &self,
        settings: &model::AccountSettings,
    ) -> Result<(), KinesisError> {
        let Some(file) = &self.account_file else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(settings)
            .map_err(|e| KinesisError::Internal(format!("cannot encode account settings: {e}")))?;
        store::write_atomically(file, &bytes)
            .map_err(|e| KinesisError::Internal(format!("cannot store account settings: {e}")))
    }
}

/// Parses `host:port` of `kinesis.listener` into the addresses to bind.
pub fn resolve_listener(v: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    let host_port = v.trim();
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| std::io::Error::other(format!("`{v}` is not host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other(format!("`{port}` is not a port number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
    addrs.dedup();
    Ok(addrs)
}
