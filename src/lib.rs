//! Esker: a single-binary message broker that speaks the Apache Kafka wire protocol over a
//! segment-file log.
//!
//! How a request travels:
//!
//! ```text
//! Kafka client ──TCP──▶ net (listener, framing, response ordering)
//!                         ──▶ kafka (decode with kafka-protocol, version table, one handler per API)
//!                               ──▶ shard router: (topic, partition) → owning shard (message passing)
//!                                     ──▶ shard (one thread, own runtime, owns its partitions)
//!                                           ──▶ log (segments + offset/time indexes on disk)
//! Kinesis SDK ──HTTP──▶ kinesis (SigV4, JSON/CBOR, one handler per operation) ──▶ shard router
//! ```
//!
//! - [`auth`]: principals, SASL (PLAIN, SCRAM), delegation tokens, the ACL authorizer and its
//!   durable stores.
//! - [`config`]: the table of every configuration key; parses `server.properties`.
//! - [`broker`]: start-up (recovery, listeners, the quorum) and graceful shutdown; it only wires.
//! - [`context`]: the handlers' shared context and the operations that span layers (topics,
//!   configs, ACLs, SCRAM users, quotas, producer ids, leadership), local or through the
//!   metadata log.
//! - [`catalog`]: which topics exist (names, ids, partition counts).
//! - [`net`]: connections, frames, pipelining; connection limits, idle and slow-frame
//!   deadlines, the request queue bound and memory pool (shared with the HTTP listeners).
//! - [`kafka`]: the protocol and its handlers.
//! - [`shard`]: shard threads and the partition state they own, with group-committed fsync.
//! - [`dynamic_config`]: dynamic broker configs (per broker and cluster default): which keys
//!   change at runtime, their layers, validation and files.
//! - [`topic_config`]: topic-level config keys, validation and storage.
//! - [`log`]: the storage engine, usable without any network.
//! - [`coordinator`]: consumer groups and committed offsets, one actor per `__consumer_offsets`
//!   partition, durable in that topic.
//! - [`metrics`]: every exported metric (Kafka's JMX-exporter names) and the `/metrics`,
//!   `/healthz`, `/readyz` endpoint.
//! - [`tls`]: TLS for the `SSL`/`SASL_SSL` listeners and Kinesis HTTPS (rustls), certificate
//!   principals and their mapping rules, certificate reload, `esker certs`.
//! - [`kinesis`]: the Kinesis Data Streams API (HTTP, SigV4, one handler per operation) over
//!   the same shards and logs: a stream is a topic, a shard a partition.
//! - [`raft`]: cluster mode's Raft metadata quorum (openraft), an opaque replicated log.
//! - [`metadata`]: the cluster metadata: KRaft settings, records, the image and its feed.
//! - [`controller`]: the metadata quorum member, replica placement, broker registration,
//!   heartbeats and fencing; the only writer of the metadata log.
//! - [`replicas`]: keeps this node's catalog and partition logs in step with the image.
//! - [`client`]: a small Kafka admin client (kafka-protocol types, SASL, TLS) for the CLI.
//! - [`cli`]: the `esker` admin subcommands (topics, groups, configs, ACLs, users, produce,
//!   consume, perf, cluster) and their table / JSON output.
//! - [`console`]: the web console under `/ui` (on the metrics listener or `console.listener`):
//!   a static single-page app and a JSON API answered from the context, ACL-checked and audited.
//! - `fuzzing` (hidden): entry points for the cargo-fuzz targets in `fuzz/`.
//! - [`telemetry`]: KIP-714 client telemetry: client metrics subscriptions, pushed OTLP
//!   metrics decoded and exported on `/metrics`.

#![warn(missing_docs)]

pub mod auth;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod context;
pub mod controller;
pub mod coordinator;
pub mod dynamic_config;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod kinesis;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod producer_ids;
pub mod quota;
pub mod raft;
pub mod replicas;
pub mod replication;
pub mod shard;
pub mod telemetry;
pub mod tls;
pub mod topic_config;
pub mod txn;

pub use broker::Broker;
pub use config::Config;
