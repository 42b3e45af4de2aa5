//! Broker configuration: one table of every key (name, default, documentation, validator) that
//! parses a `server.properties`-style file plus `--override key=value` pairs into a typed
//! [`Config`], and renders `config/server.properties` and the docs from the same table.
//!
//! Loading is pure: it takes the file contents and overrides as strings, so tests need no files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration error; start-up stops with its message, which always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key that no table entry describes.
    #[error("unknown configuration key `{key}`")]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A value the key's validator refused.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A line that is not `key=value`.
    #[error("line {line}: expected `key=value`, found `{text}`")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
}

/// The kind of value a key takes, which decides how it is validated.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A signed integer within inclusive bounds.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// Any string.
    Str,
    /// A comma-separated list of `NAME://host:port` listeners.
    Listeners,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// A decimal number between 0 and 1 inclusive (Kafka's DOUBLE ratios).
    Ratio,
}

/// One configuration key.
#[derive(Debug)]
pub struct KeyDef {
    /// The key, in Kafka's spelling where Kafka has one.
    pub name: &'static str,
    /// The default, as it would be written in the file.
    pub default: &'static str,
    /// How the value is validated.
    pub kind: Kind,
    /// One sentence (or a few) of documentation.
    pub doc: &'static str,
}

const I32MAX: i64 = i32::MAX as i64;

/// Every key the broker accepts. `config/server.properties` is rendered from this table.
pub const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "node.id",
        default: "0",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The id of this broker, reported in Metadata. `broker.id` is accepted as a synonym.",
    },
    KeyDef {
        name: "listeners",
        default: "PLAINTEXT://127.0.0.1:9092",
        kind: Kind::Listeners,
        doc: "Comma-separated Kafka listeners, `NAME://host:port`; the name is a security protocol \
              (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or mapped to one by \
              listener.security.protocol.map. A host name that resolves to several addresses (e.g. localhost) is bound on each of them; \
              port 0 picks a free port.",
    },
    KeyDef {
        name: "advertised.listeners",
        default: "",
        kind: Kind::Str,
        doc: "Listeners advertised to clients in Metadata, `NAME://host:port`; a client is told the \
              advertised address of the listener it connected through (matched by name). Empty means \
              the bound listeners.",
    },
    KeyDef {
        name: "listener.security.protocol.map",
        default: "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        kind: Kind::Str,
        doc: "Listener name to security protocol, `NAME:PROTOCOL,...`, so listeners can have names \
              of their own (e.g. `INTERNAL:SASL_PLAINTEXT`).",
    },
    KeyDef {
        name: "sasl.enabled.mechanisms",
        default: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        kind: Kind::Str,
        doc: "SASL mechanisms offered on SASL listeners: any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. \
              A SaslHandshake for another answers UNSUPPORTED_SASL_MECHANISM with this list.",
    },
    KeyDef {
        name: "sasl.plain.users",
        default: "",
        kind: Kind::Str,
        doc: "Users accepted by SASL/PLAIN, `user:password,...` (the password may contain `:`). \
              Sensitive: never returned by DescribeConfigs. SCRAM users are managed with \
              AlterUserScramCredentials instead and stored salted.",
    },
    KeyDef {
        name: "authorizer.class.name",
        default: "",
        kind: Kind::Str,
        doc: "Any non-empty value (e.g. org.apache.kafka.metadata.authorizer.StandardAuthorizer) \
              switches on ACL authorization of every request; empty allows everything.",
    },
    KeyDef {
        name: "super.users",
        default: "",
        kind: Kind::Str,
        doc: "Principals allowed everything whatever the ACLs, `User:admin;User:ops` (`;` as in Kafka; \
              `,` also accepted).",
    },
    KeyDef {
        name: "allow.everyone.if.no.acl.found",
        default: "false",
        kind: Kind::Bool,
        doc: "With the authorizer on: allow an operation on a resource that no ACL covers at all.",
    },
    KeyDef {
        name: "connections.max.reauth.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "KIP-152: when positive, a SASL session lasts this long; SaslAuthenticate (v1+) tells \
              the client, which re-authenticates on the same connection (same principal) before \
              it ends; a request other than SaslHandshake/SaslAuthenticate/ApiVersions after it \
              ended closes the connection. 0 = sessions never expire.",
    },
    KeyDef {
        name: "delegation.token.secret.key",
        default: "",
        kind: Kind::Str,
        doc: "Secret that signs delegation tokens (KIP-48): a token's password is the HMAC-SHA512 \
              of its id keyed with it, so every broker of a cluster needs the same value. Empty \
              disables tokens (DELEGATION_TOKEN_AUTH_DISABLED). `delegation.token.master.key` is \
              accepted as a synonym. Sensitive: never returned by DescribeConfigs.",
    },
    KeyDef {
        name: "delegation.token.max.lifetime.ms",
        default: "604800000",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "The longest a delegation token lives, renewals included (a CreateDelegationToken \
              may ask for less).",
    },
    KeyDef {
        name: "delegation.token.expiry.time.ms",
        default: "86400000",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "How far a creation or renewal pushes a delegation token's expiry (a \
              RenewDelegationToken may ask for less); never past its max lifetime.",
    },
    KeyDef {
        name: "delegation.token.expiry.check.interval.ms",
        default: "3600000",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "How often expired delegation tokens are removed (in a cluster, by the active \
              controller through the metadata log). An expired token fails authentication at \
              once, removed or not.",
    },
    KeyDef {
        name: "ssl.certificate.location",
        default: "",
        kind: Kind::Str,
        doc: "PEM file with the server certificate chain (leaf first) of SSL and SASL_SSL listeners \
              and of Kinesis HTTPS. Required when such a listener exists. Every ssl.* key can be \
              set per listener as `listener.name.<listener>.ssl.*` (e.g. \
              listener.name.internal.ssl.certificate.location).",
    },
    KeyDef {
        name: "ssl.key.location",
        default: "",
        kind: Kind::Str,
        doc: "PEM file with the private key of ssl.certificate.location (PKCS#8, PKCS#1 or SEC1, \
              unencrypted).",
    },
    KeyDef {
        name: "ssl.ca.location",
        default: "",
        kind: Kind::Str,
        doc: "PEM file with the CA certificates that sign client certificates; required when \
              ssl.client.auth is required or requested.",
    },
    KeyDef {
        name: "ssl.client.auth",
        default: "none",
        kind: Kind::Enum(&["required", "requested", "none"]),
        doc: "Client certificates on SSL listeners: `required` (a client without a certificate \
              signed by ssl.ca.location fails the handshake), `requested` (optional; without one \
              the client is User:ANONYMOUS) or `none`. SASL_SSL listeners ignore the broker-wide \
              value and ask for certificates only when listener.name.<listener>.ssl.client.auth \
              says so (KIP-684).",
    },
    KeyDef {
        name: "ssl.enabled.protocols",
        default: "TLSv1.2,TLSv1.3",
        kind: Kind::Str,
        doc: "TLS versions accepted: TLSv1.2 and/or TLSv1.3.",
    },
    KeyDef {
        name: "ssl.principal.mapping.rules",
        default: "DEFAULT",
        kind: Kind::Str,
        doc: "How a client certificate's subject DN (RFC 2253, e.g. CN=alice,OU=eng) becomes the \
              principal User:<name>: comma-separated `RULE:<regex>/<replacement>/[L|U]` and \
              `DEFAULT` (the DN itself); the first rule whose regex matches the whole DN wins, e.g. \
              `RULE:^CN=(.*?),.*$/$1/,DEFAULT`. A DN no rule matches is refused.",
    },
    KeyDef {
        name: "ssl.handshake.timeout.ms",
        default: "10000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "A client that has not completed the TLS handshake this long after connecting is \
              disconnected (with a warning).",
    },
    KeyDef {
        name: "ssl.reload.interval.ms",
        default: "5000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How often the certificate, key and CA files are checked for changes; changed files \
              are loaded for new connections without a restart (a file that does not load keeps \
              the previous ones, with a warning). 0 disables reloading.",
    },
    KeyDef {
        name: "log.dirs",
        default: "./data",
        kind: Kind::Str,
        doc: "The directory holding the partition logs (`log.dir` is accepted as a synonym). Only one \
              directory is supported.",
    },
    KeyDef {
        name: "num.partitions",
        default: "1",
        kind: Kind::Int { min: 1, max: 100_000 },
        doc: "Partitions of a topic that is auto-created or created with num_partitions=-1.",
    },
    KeyDef {
        name: "auto.create.topics.enable",
        default: "true",
        kind: Kind::Bool,
        doc: "Create a topic when a client asks Metadata for one that does not exist.",
    },
    KeyDef {
        name: "message.max.bytes",
        default: "1048588",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The largest record batch the broker accepts, in bytes (after compression).",
    },
    KeyDef {
        name: "socket.request.max.bytes",
        default: "104857600",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "The largest request frame accepted; a larger size prefix closes the connection before \
              anything is allocated.",
    },
    KeyDef {
        name: "socket.request.read.timeout.ms",
        default: "30000",
        kind: Kind::Int { min: -1, max: I32MAX },
        doc: "Esker's own key (Kafka has none): how long a request frame may take to arrive once its \
              first byte has, not counting time waiting for queued.max.requests or \
              queued.max.request.bytes; a slower sender is disconnected. The default is Kafka \
              clients' request.timeout.ms, after which the client gives up on the request anyway. \
              -1 waits forever (Kafka's behaviour: only connections.max.idle.ms applies).",
    },
    KeyDef {
        name: "connections.max.idle.ms",
        default: "600000",
        kind: Kind::Int { min: -1, max: i64::MAX },
        doc: "Close a connection that has read no byte for this long while no request of it is in \
              flight (Kafka, Kinesis, metrics and console listeners). -1 never closes idle \
              connections.",
    },
    KeyDef {
        name: "max.connections",
        default: "2147483647",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "Open connections allowed on the Kafka and Kinesis listeners together (the metrics \
              listener and console.listener each count their own, with the same limit). A connection over the limit is \
              closed right after it is accepted (Kafka instead stops accepting until a slot \
              frees); refusals are counted and logged at most once a second. As in Kafka, the \
              inter-broker listener's connections are exempt when the broker has other Kafka \
              listeners (and are not counted: no client connection is closed for them).",
    },
    KeyDef {
        name: "max.connections.per.ip",
        default: "2147483647",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "Open connections allowed from one client address; the one over it is closed right \
              after accept. 0 refuses every address not listed in max.connections.per.ip.overrides \
              (which must then be set).",
    },
    KeyDef {
        name: "max.connections.per.ip.overrides",
        default: "",
        kind: Kind::Str,
        doc: "Per-address exceptions to max.connections.per.ip, `host:count,ip:count` (e.g. \
              `127.0.0.1:200,[::1]:200,gateway.internal:1000`); host names are resolved at start.",
    },
    KeyDef {
        name: "queued.max.requests",
        default: "500",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Requests read and not yet answered, over all Kafka and Kinesis connections, before \
              readers wait (Kafka bounds its request queue with it). A request still running after 100 ms (a long-poll \
              fetch, a JoinGroup waiting for the group, an acks=all produce waiting for replicas) \
              counts as parked, as Kafka's purgatory, and leaves the count.",
    },
    KeyDef {
        name: "queued.max.request.bytes",
        default: "-1",
        kind: Kind::Int { min: -1, max: i64::MAX },
        doc: "A memory pool for request frames and Kinesis request bodies: a connection reserves \
              a frame's size (a body's Content-Length; 16 MiB while a body of unknown length \
              arrives) before reading it and waits while the pool is short, so a flood of large \
              requests queues instead of growing the heap. Released when the request's handler is \
              done; a request larger than the pool waits for the whole pool and is served alone. \
              -1: unbounded.",
    },
    KeyDef {
        name: "fetch.sendfile.enable",
        default: "false",
        kind: Kind::Bool,
        doc: "On PLAINTEXT and SASL_PLAINTEXT listeners, send fetched record sets of 64 KiB or more \
              straight from the segment files with sendfile(2) instead of reading them into memory \
              first (TLS listeners always read them). Off by default: over loopback it measured \
              no clear CPU saving (docs/performance.md).",
    },
    KeyDef {
        name: "log.segment.bytes",
        default: "1073741824",
        kind: Kind::Int { min: 1024, max: I32MAX },
        doc: "Size at which a partition's active segment is rolled.",
    },
    KeyDef {
        name: "log.index.interval.bytes",
        default: "4096",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "Bytes of log between two entries of the sparse offset and time indexes.",
    },
    KeyDef {
        name: "log.index.size.max.bytes",
        default: "10485760",
        kind: Kind::Int { min: 4096, max: I32MAX },
        doc: "Maximum size of an offset index file; the segment rolls when it is full.",
    },
    KeyDef {
        name: "log.message.timestamp.type",
        default: "CreateTime",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        doc: "Whether stored batches keep the producer's timestamps (CreateTime) or get the broker's \
              append time (LogAppendTime).",
    },
    KeyDef {
        name: "producer.id.expiration.ms",
        default: "86400000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "An idempotent producer that has not written to a partition for this long is forgotten \
              there (checked every log.retention.check.interval.ms); its next batch is accepted \
              as from a new producer.",
    },
    KeyDef {
        name: "log.flush.linger.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: 1000 },
        doc: "Group commit: an fsync for acks=-1 waits at most this long to gather the writes of every \
              partition on its shard. With 0, writes that arrive while an fsync runs share the next \
              one; a linger only pays off where an fsync is expensive (see docs/performance.md).",
    },
    KeyDef {
        name: "log.flush.interval.messages",
        default: "9223372036854775807",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Topics' default flush.messages: data produced with acks=0/1 is fsynced once this many \
              messages were appended to a partition since its last fsync (acks=-1 data is always \
              fsynced before the answer). The default, Long.MAX, leaves it to the operating system.",
    },
    KeyDef {
        name: "log.flush.interval.ms",
        default: "9223372036854775807",
        kind: Kind::Int { min: 0, max: i64::MAX },
        doc: "Topics' default flush.ms: acks=0/1 data is fsynced once it is this old (checked by each \
              shard's maintenance tick). The default, Long.MAX, leaves it to the operating system.",
    },
    KeyDef {
        name: "log.flush.offset.checkpoint.interval.ms",
        default: "60000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often each partition's recovery point (the offset below which everything is fsynced) \
              is written to its `recovery-point-offset` file. After a crash only the segments from the \
              recovery point on are scanned.",
    },
    KeyDef {
        name: "log.roll.ms",
        default: "604800000",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Topics' default segment.ms: a non-empty active segment this old (counted from its first \
              append) is rolled by the next retention check, so idle partitions expire too. \
              `log.roll.hours` is accepted as in Kafka (the ms key wins).",
    },
    KeyDef {
        name: "log.retention.ms",
        default: "604800000",
        kind: Kind::Int { min: -1, max: i64::MAX },
        doc: "Topics' default retention.ms: whole segments whose newest record is older than this are \
              deleted (an active segment wholly past it is rolled first); -1 keeps data forever. \
              `log.retention.minutes` and `log.retention.hours` are accepted as in Kafka (ms wins over \
              minutes over hours).",
    },
    KeyDef {
        name: "log.retention.bytes",
        default: "-1",
        kind: Kind::Int { min: -1, max: i64::MAX },
        doc: "Topics' default retention.bytes: the oldest segments of a partition are deleted while it \
              would still hold at least this many bytes without them (never the active segment); -1 \
              means no size limit.",
    },
    KeyDef {
        name: "log.retention.check.interval.ms",
        default: "300000",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "How often each shard applies retention and segment.ms to its partitions.",
    },
    KeyDef {
        name: "log.cleanup.policy",
        default: "delete",
        kind: Kind::Enum(&["delete", "compact", "compact,delete", "delete,compact"]),
        doc: "The default cleanup.policy of topics: delete (retention), compact (the log cleaner \
              keeps the latest record of each key) or both.",
    },
    KeyDef {
        name: "log.cleaner.enable",
        default: "true",
        kind: Kind::Bool,
        doc: "Runs the log cleaner, which compacts topics whose cleanup.policy includes compact \
              (`__consumer_offsets` and `__transaction_state` among them).",
    },
    KeyDef {
        name: "log.cleaner.threads",
        default: "1",
        kind: Kind::Int { min: 1, max: 1024 },
        doc: "How many shards may clean a log at the same time (each shard cleans on a blocking \
              thread of its own, one log at a time).",
    },
    KeyDef {
        name: "log.cleaner.io.max.bytes.per.second",
        default: "9223372036854775807",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Throttle of the cleaner: bytes read plus written per second, over all cleaning \
              shards together (Kafka takes a double; an integer is accepted here).",
    },
    KeyDef {
        name: "log.cleaner.dedupe.buffer.size",
        default: "134217728",
        kind: Kind::Int { min: 1024 * 1024, max: i64::MAX },
        doc: "Memory for the cleaner's offset map (24 bytes per key, Kafka's accounting), shared \
              by the cleaning shards. A log with more distinct keys in its dirty part is cleaned \
              in several passes, as many segments per pass as fit.",
    },
    KeyDef {
        name: "log.cleaner.delete.retention.ms",
        default: "86400000",
        kind: Kind::Int { min: 0, max: i64::MAX },
        doc: "Default delete.retention.ms: how long tombstones and transaction markers survive \
              in a compacted log after the segment holding them was cleaned.",
    },
    KeyDef {
        name: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        kind: Kind::Ratio,
        doc: "Default min.cleanable.dirty.ratio: a log is cleaned once the uncleaned share of \
              its cleanable bytes reaches this ratio (or max.compaction.lag.ms is exceeded).",
    },
    KeyDef {
        name: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: i64::MAX },
        doc: "Default min.compaction.lag.ms: a record stays uncompacted at least this long.",
    },
    KeyDef {
        name: "log.cleaner.max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Default max.compaction.lag.ms: a log whose oldest uncleaned record is older than \
              this is cleaned whatever its dirty ratio.",
    },
    KeyDef {
        name: "log.cleaner.backoff.ms",
        default: "15000",
        kind: Kind::Int { min: 0, max: i64::MAX },
        doc: "How long a shard's cleaner sleeps when no log is due for cleaning.",
    },
    KeyDef {
        name: "num.shards",
        default: "0",
        kind: Kind::Int { min: 0, max: 1024 },
        doc: "Number of shards (threads, each owning a share of the partitions); 0 means one per core.",
    },
    KeyDef {
        name: "queued.max.requests.per.connection",
        default: "64",
        kind: Kind::Int { min: 1, max: 100_000 },
        doc: "Requests read ahead on one connection (pipelining) before the broker stops reading it \
              until responses have been written.",
    },
    KeyDef {
        name: "shutdown.timeout.ms",
        default: "10000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a graceful shutdown waits for in-flight requests before closing connections.",
    },
    KeyDef {
        name: "process.roles",
        default: "",
        kind: Kind::Str,
        doc: "Kafka's KRaft roles of this node: `broker,controller` makes it a node of a cluster \
              that serves clients and is a member of the metadata quorum. Empty (the default) runs \
              the single-node broker without a quorum. Dedicated `broker` or `controller` nodes are \
              not supported yet.",
    },
    KeyDef {
        name: "controller.quorum.voters",
        default: "",
        kind: Kind::Str,
        doc: "The metadata quorum, `id@host:port,...`: every controller's node.id and the address of \
              its controller listener. Required when process.roles includes controller (this node \
              must be listed, unless it joins later with `esker quorum add-voter`).",
    },
    KeyDef {
        name: "controller.quorum.bootstrap.servers",
        default: "",
        kind: Kind::Str,
        doc: "Controller addresses, `host:port,...`, used to reach the quorum when this node is not \
              among controller.quorum.voters (KIP-853: a node waiting to be added as a voter).",
    },
    KeyDef {
        name: "controller.listener.names",
        default: "CONTROLLER",
        kind: Kind::Str,
        doc: "The listener (by name, in listeners) on which the controller serves the quorum's \
              internal RPC (Raft replication, forwarded metadata writes, broker heartbeats). It is \
              not a Kafka listener: clients never connect to it. Only the first name is used.",
    },
    KeyDef {
        name: "inter.broker.listener.name",
        default: "",
        kind: Kind::Str,
        doc: "The listener other brokers use to reach this one; empty means the first listener that \
              is not a controller listener.",
    },
    KeyDef {
        name: "broker.rack",
        default: "",
        kind: Kind::Str,
        doc: "The rack of this broker, registered with the quorum and used to spread a partition's \
              replicas over racks. Empty means no rack.",
    },
    KeyDef {
        name: "default.replication.factor",
        default: "1",
        kind: Kind::Int { min: 1, max: 32767 },
        doc: "Replication factor of topics created without one (auto-creation, CreateTopics with -1). \
              A single node always uses 1.",
    },
    KeyDef {
        name: "offsets.topic.replication.factor",
        default: "3",
        kind: Kind::Int { min: 1, max: 32767 },
        doc: "Replication factor of `__consumer_offsets` in a cluster. As in Kafka, the topic is \
              created once that many brokers are registered (FindCoordinator answers \
              COORDINATOR_NOT_AVAILABLE until then). A single node always uses 1.",
    },
    KeyDef {
        name: "metadata.log.dir",
        default: "",
        kind: Kind::Str,
        doc: "Directory of the metadata quorum's log, vote and snapshots. Empty means \
              `<log.dirs>/__cluster_metadata-0`, as in Kafka.",
    },
    KeyDef {
        name: "controller.quorum.election.timeout.ms",
        default: "1000",
        kind: Kind::Int { min: 100, max: 600_000 },
        doc: "How long a quorum member waits without hearing from a leader before it starts an \
              election (randomised between this and twice this); the leader sends heartbeats every \
              fifth of it.",
    },
    KeyDef {
        name: "metadata.snapshot.interval.entries",
        default: "1000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "A controller snapshots the metadata image and purges its log after this many applied \
              entries, so the log does not grow without bound; a restarted node catches up from the \
              leader's log or snapshot.",
    },
    KeyDef {
        name: "broker.heartbeat.interval.ms",
        default: "2000",
        kind: Kind::Int { min: 10, max: I32MAX },
        doc: "How often a broker sends a heartbeat to the active controller.",
    },
    KeyDef {
        name: "broker.session.timeout.ms",
        default: "9000",
        kind: Kind::Int { min: 100, max: I32MAX },
        doc: "A broker whose heartbeats stop for this long is fenced: it is no longer named as a \
              partition leader or in-sync replica, and leaders move to other in-sync replicas. It is \
              unfenced at its next heartbeat.",
    },
    KeyDef {
        name: "unclean.leader.election.enable",
        default: "false",
        kind: Kind::Bool,
        doc: "When every in-sync replica of a partition is down, let a live replica outside the ISR \
              lead (availability over durability: records it never had are lost). Topic config \
              of the same name overrides it.",
    },
    KeyDef {
        name: "min.insync.replicas",
        default: "1",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Topics' default min.insync.replicas: an acks=all produce to a partition with fewer \
              in-sync replicas fails with NOT_ENOUGH_REPLICAS.",
    },
    KeyDef {
        name: "auto.leader.rebalance.enable",
        default: "true",
        kind: Kind::Bool,
        doc: "The active controller moves leadership back to each partition's preferred replica \
              (the first assigned) when it is live and in sync and a broker's share of partitions \
              led elsewhere exceeds leader.imbalance.per.broker.percentage.",
    },
    KeyDef {
        name: "leader.imbalance.check.interval.seconds",
        default: "300",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often the active controller checks for leader imbalance.",
    },
    KeyDef {
        name: "leader.imbalance.per.broker.percentage",
        default: "10",
        kind: Kind::Int { min: 0, max: 100 },
        doc: "The share of a broker's preferred partitions that may be led elsewhere before the \
              controller elects the preferred leaders again.",
    },
    KeyDef {
        name: "replica.selector.class",
        default: "",
        kind: Kind::Str,
        doc: "Follower fetching for consumers (KIP-392): when set (to any value, e.g. Kafka's \
              org.apache.kafka.common.replica.RackAwareReplicaSelector), a partition leader \
              directs a consumer that sends client.rack to an in-sync replica in the same \
              broker.rack, which serves it up to its high watermark. Empty: consumers read from \
              leaders only.",
    },
    KeyDef {
        name: "leader.replication.throttled.rate",
        default: "9223372036854775807",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Bytes per second a leader sends to out-of-sync followers of the replicas named by \
              topics' leader.replication.throttled.replicas (replica moves); dynamic, per broker \
              or cluster-wide.",
    },
    KeyDef {
        name: "follower.replication.throttled.rate",
        default: "9223372036854775807",
        kind: Kind::Int { min: 1, max: i64::MAX },
        doc: "Bytes per second a follower fetches for its out-of-sync replicas named by topics' \
              follower.replication.throttled.replicas (replica moves); dynamic, per broker or \
              cluster-wide.",
    },
    KeyDef {
        name: "replica.lag.time.max.ms",
        default: "30000",
        kind: Kind::Int { min: 10, max: I32MAX },
        doc: "A follower that has not caught up with its leader's log end for this long leaves the \
              partition's in-sync replicas (AlterPartition through the controller); it rejoins once \
              it reaches the high watermark again.",
    },
    KeyDef {
        name: "replica.fetch.max.bytes",
        default: "1048576",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Bytes a follower asks for per partition in one fetch from its leader (at least one \
              batch is always returned).",
    },
    KeyDef {
        name: "replica.fetch.response.max.bytes",
        default: "10485760",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Bytes a follower asks for in one whole fetch from a leader.",
    },
    KeyDef {
        name: "replica.fetch.wait.max.ms",
        default: "500",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a follower's fetch waits at the leader for new records.",
    },
    KeyDef {
        name: "replica.fetch.backoff.ms",
        default: "1000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a follower waits before retrying a leader it could not fetch from (the \
              first retries come sooner, doubling up to this).",
    },
    KeyDef {
        name: "replica.socket.timeout.ms",
        default: "30000",
        kind: Kind::Int { min: 100, max: I32MAX },
        doc: "A follower's fetch that gets no answer in this long (on top of \
              replica.fetch.wait.max.ms) is abandoned and its connection reopened.",
    },
    KeyDef {
        name: "replica.fsync.enable",
        default: "true",
        kind: Kind::Bool,
        doc: "Esker's durability promise in a cluster: a follower fsyncs (group commit) what it \
              fetched before its next fetch reports it to the leader, so an acks=all produce is \
              answered only when every in-sync replica has the records on disk. false lets \
              followers report records still in their page cache, as Kafka does (faster \
              replication; a simultaneous power loss of the in-sync replicas can lose \
              acknowledged records).",
    },
    KeyDef {
        name: "offsets.topic.num.partitions",
        default: "50",
        kind: Kind::Int { min: 1, max: 1000 },
        doc: "Partitions of the internal topic `__consumer_offsets`, created at first start; a group \
              belongs to partition abs(hash(group id)) % this, whose coordinator actor owns it. Only \
              read when the topic is created: an existing topic keeps its partition count.",
    },
    KeyDef {
        name: "offsets.topic.segment.bytes",
        default: "104857600",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "segment.bytes of `__consumer_offsets` when it is created: small enough that its \
              segments roll and get compacted (Kafka's default).",
    },
    KeyDef {
        name: "transaction.state.log.segment.bytes",
        default: "104857600",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "segment.bytes of `__transaction_state` when it is created (Kafka's default).",
    },
    KeyDef {
        name: "offsets.retention.minutes",
        default: "10080",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Committed offsets of a group that has no members are deleted this long after the group \
              became empty (for groups that never had members: after the commit).",
    },
    KeyDef {
        name: "transaction.state.log.num.partitions",
        default: "50",
        kind: Kind::Int { min: 1, max: 1000 },
        doc: "Partitions of the internal topic `__transaction_state`, created at first start; a \
              transactional id belongs to partition abs(hash(id)) % this, whose leader is its \
              transaction coordinator. Only read when the topic is created.",
    },
    KeyDef {
        name: "transaction.state.log.replication.factor",
        default: "3",
        kind: Kind::Int { min: 1, max: 32767 },
        doc: "Replication factor of `__transaction_state` in a cluster; created once that many \
              brokers are registered (FindCoordinator answers COORDINATOR_NOT_AVAILABLE for \
              transactional ids until then). A single node always uses 1.",
    },
    KeyDef {
        name: "transaction.state.log.min.isr",
        default: "2",
        kind: Kind::Int { min: 1, max: 32767 },
        doc: "`min.insync.replicas` of `__transaction_state` (capped by its replication factor).",
    },
    KeyDef {
        name: "transaction.max.timeout.ms",
        default: "900000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "Largest `transaction.timeout.ms` a producer may ask for; InitProducerId with more \
              answers INVALID_TRANSACTION_TIMEOUT.",
    },
    KeyDef {
        name: "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        default: "10000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often the transaction coordinator aborts transactions open longer than their \
              timeout (the producer's epoch is bumped, so it is fenced).",
    },
    KeyDef {
        name: "transactional.id.expiration.ms",
        default: "604800000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "A transactional id with no transaction for this long is forgotten (a tombstone in \
              `__transaction_state`).",
    },
    KeyDef {
        name: "transaction.remove.expired.transaction.cleanup.interval.ms",
        default: "3600000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often the transaction coordinator looks for expired transactional ids.",
    },
    KeyDef {
        name: "offsets.retention.check.interval.ms",
        default: "600000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often each coordinator partition looks for expired offsets and empty groups to remove.",
    },
    KeyDef {
        name: "offset.metadata.max.bytes",
        default: "4096",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The longest metadata string an OffsetCommit may attach to an offset \
              (OFFSET_METADATA_TOO_LARGE beyond).",
    },
    KeyDef {
        name: "group.initial.rebalance.delay.ms",
        default: "3000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The first rebalance of an empty group waits this long (and again, up to the rebalance \
              timeout, while new members keep arriving) so that consumers started together get one \
              assignment instead of a rebalance each. 0 completes as soon as every member joined.",
    },
    KeyDef {
        name: "group.min.session.timeout.ms",
        default: "6000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The smallest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT below).",
    },
    KeyDef {
        name: "group.max.session.timeout.ms",
        default: "1800000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "The largest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT above).",
    },
    KeyDef {
        name: "group.consumer.heartbeat.interval.ms",
        default: "5000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How often members of consumer-protocol groups (KIP-848, `group.protocol=consumer`) are \
              told to heartbeat.",
    },
    KeyDef {
        name: "group.consumer.session.timeout.ms",
        default: "45000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "A member of a consumer-protocol group that has not heartbeaten for this long is removed \
              and its partitions are reassigned.",
    },
    KeyDef {
        name: "group.consumer.assignors",
        default: "uniform,range",
        kind: Kind::Str,
        doc: "Server-side assignors consumer-protocol groups may ask for (`group.remote.assignor`), \
              the default first: `uniform` (balanced and sticky) and `range` (contiguous ranges per \
              topic).",
    },
    KeyDef {
        name: "kinesis.listener",
        default: "127.0.0.1:4567",
        kind: Kind::Str,
        doc: "The Kinesis Data Streams API endpoint, `host:port` (HTTP/1.1 and HTTP/2; HTTPS with \
              kinesis.ssl.enabled); empty disables it. Port 0 picks a free port. When left at its default and the port is \
              taken, the broker warns and runs without it; a listener set explicitly that cannot be \
              bound stops start-up.",
    },
    KeyDef {
        name: "kinesis.ssl.enabled",
        default: "false",
        kind: Kind::Bool,
        doc: "Serve the Kinesis endpoint over HTTPS with ssl.certificate.location and \
              ssl.key.location (no client certificates: requests are authenticated by SigV4).",
    },
    KeyDef {
        name: "kinesis.auth",
        default: "none",
        kind: Kind::Enum(&["none", "sigv4"]),
        doc: "`sigv4` verifies each request's AWS Signature V4 against `kinesis.credentials` \
              (UnrecognizedClientException for an unknown key, InvalidSignatureException for a bad \
              signature). `none` (development) accepts any signature; the access key still names \
              the principal.",
    },
    KeyDef {
        name: "kinesis.credentials",
        default: "",
        kind: Kind::Str,
        doc: "Kinesis credentials, `ACCESS_KEY:SECRET_KEY[:user],...`; the principal of a request \
              is `User:<user>` (the access key when no user is given).",
    },
    KeyDef {
        name: "kinesis.shard.iterator.ttl.ms",
        default: "300000",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "How long a shard iterator stays valid (ExpiredIteratorException after); 5 minutes as \
              in AWS.",
    },
    KeyDef {
        name: "kinesis.create.stream.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a new Kinesis stream stays CREATING before it is ACTIVE (AWS takes seconds; \
              0 = ACTIVE at once).",
    },
    KeyDef {
        name: "kinesis.delete.stream.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a deleted Kinesis stream stays DELETING (listed, not writable) before its \
              topic is deleted (0 = at once).",
    },
    KeyDef {
        name: "kinesis.update.stream.ms",
        default: "0",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "How long a Kinesis stream stays UPDATING after resharding, UpdateShardCount, \
              UpdateStreamMode or Start/StopStreamEncryption (0 = ACTIVE at once).",
    },
    KeyDef {
        name: "kinesis.enforce.limits",
        default: "false",
        kind: Kind::Bool,
        doc: "Enforce Kinesis's per-shard throughput limits (1 MiB/s or 1000 records/s in, 2 MiB/s \
              and 5 GetRecords/s out), answering ProvisionedThroughputExceededException beyond them.",
    },
    KeyDef {
        name: "kinesis.shard.limit",
        default: "500",
        kind: Kind::Int { min: 1, max: 100_000 },
        doc: "The most open Kinesis shards all streams may have together (CreateStream answers \
              LimitExceededException beyond; reported by DescribeLimits).",
    },
    KeyDef {
        name: "metrics.listener",
        default: "127.0.0.1:9644",
        kind: Kind::Str,
        doc: "The HTTP endpoint serving `/metrics` (Prometheus text format), `/healthz` and \
              `/readyz`, `host:port`; empty disables it. Port 0 picks a free port. When left at its \
              default and the port is taken, the broker warns and runs without it.",
    },
    KeyDef {
        name: "metrics.partition.labels.enabled",
        default: "true",
        kind: Kind::Bool,
        doc: "Export per-partition series (`kafka_log_log_size`, `kafka_log_log_logstartoffset`, \
              `kafka_log_log_logendoffset`, and the per-partition consumer-group series \
              `kafka_consumergroup_lag` and `kafka_consumergroup_current_offset`); turn off when \
              the partition count makes them too many.",
    },
    KeyDef {
        name: "metrics.group.labels.enabled",
        default: "true",
        kind: Kind::Bool,
        doc: "Export per-consumer-group series (`kafka_consumergroup_*`: lag and committed offsets \
              per group, topic and partition, members per group); turn off when there are too \
              many groups.",
    },
    KeyDef {
        name: "console.enable",
        default: "false",
        kind: Kind::Bool,
        doc: "Serve the web console under `/ui` on metrics.listener (plain HTTP, HTTP basic \
              authentication against SCRAM users). See docs/console.md.",
    },
    KeyDef {
        name: "console.listener",
        default: "",
        kind: Kind::Str,
        doc: "A listener of its own for the web console, `host:port` (served under `/ui`; HTTPS \
              with console.ssl.enabled); empty: none. Port 0 picks a free port.",
    },
    KeyDef {
        name: "console.ssl.enabled",
        default: "false",
        kind: Kind::Bool,
        doc: "Serve console.listener over HTTPS with ssl.certificate.location and \
              ssl.key.location.",
    },
    KeyDef {
        name: "console.ssl.client.auth",
        default: "none",
        kind: Kind::Enum(&["none", "requested", "required"]),
        doc: "Client certificates on console.listener (with console.ssl.enabled and \
              ssl.ca.location): a certificate signed by the CA authenticates its mapped principal \
              (ssl.principal.mapping.rules), as on an SSL Kafka listener; `required` refuses \
              clients without one.",
    },
    KeyDef {
        name: "telemetry.max.bytes",
        default: "1048576",
        kind: Kind::Int { min: 1, max: I32MAX },
        doc: "The largest metrics payload (compressed) a client may send in a PushTelemetry \
              (KIP-714); larger pushes answer TELEMETRY_TOO_LARGE.",
    },
    KeyDef {
        name: "telemetry.default.metrics",
        default: "",
        kind: Kind::Str,
        doc: "Metric name prefixes every client is subscribed to (KIP-714 client telemetry), \
              comma-separated, `*` for all (e.g. `org.apache.kafka.producer.,org.apache.kafka.consumer.`); \
              pushed values appear on /metrics as esker_client_metric. Empty, as in Kafka, subscribes \
              clients only through client metrics resources (IncrementalAlterConfigs on CLIENT_METRICS).",
    },
    KeyDef {
        name: "telemetry.default.interval.ms",
        default: "300000",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        doc: "Push interval of the telemetry.default.metrics subscription; a client matching \
              several subscriptions pushes at the smallest of their intervals.",
    },
    KeyDef {
        name: "telemetry.max.series",
        default: "10000",
        kind: Kind::Int { min: 0, max: I32MAX },
        doc: "The most esker_client_metric series exported; pushed series beyond it are dropped \
              (and counted in esker_client_telemetry_dropped_series_total).",
    },
    KeyDef {
        name: "log.format",
        default: "text",
        kind: Kind::Enum(&["text", "json"]),
        doc: "Format of the broker's own log lines on stdout: `text` (human-readable) or `json` \
              (one JSON object per line). The `ESKER_LOG_FORMAT` environment variable overrides \
              it; `RUST_LOG` sets the filter (default `info`).",
    },
];

/// Keys holding secrets: DescribeConfigs flags them sensitive and never returns their values.
pub const SENSITIVE_KEYS: &[&str] = &[
    "kinesis.credentials",
    "sasl.plain.users",
    "delegation.token.secret.key",
];

/// Keys that Kafka users write under another name; mapped before validation.
const SYNONYMS: &[(&str, &str)] = &[
    ("broker.id", "node.id"),
    ("log.dir", "log.dirs"),
    ("delegation.token.master.key", "delegation.token.secret.key"),
];

/// Kafka's coarser spellings of a millisecond key: (key, key it sets, factor to ms, precedence).
/// As in Kafka, the millisecond key wins over minutes, which win over hours, whatever the order
/// they are written in; a negative value means unlimited (-1 ms).
const UNIT_SYNONYMS: &[(&str, &str, i64, u8)] = &[
    ("log.retention.minutes", "log.retention.ms", 60_000, 1),
    ("log.retention.hours", "log.retention.ms", 3_600_000, 0),
    ("log.roll.hours", "log.roll.ms", 3_600_000, 0),
];

/// Precedence of a key written in its millisecond form (see [`UNIT_SYNONYMS`]).
const MS_PRECEDENCE: u8 = 2;

/// A listener: a name (a security protocol, or mapped to one by
/// `listener.security.protocol.map`) and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `PLAINTEXT`, ...
    pub name: String,
    /// Host as written (may be a name such as `localhost`, or empty for all interfaces).
    pub host: String,
    /// Port (0 = ephemeral).
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port` (IPv6 hosts in brackets).
    pub fn parse(s: &str) -> Result<Listener, String> {
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` is not NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            return Err(format!("`{s}` has no listener name"));
        }
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host: host.to_string(),
            port,
        })
    }
}

/// Whether stored batches keep producer timestamps or get the append time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Producer's timestamps are kept.
    CreateTime,
    /// The broker stamps the batch with its append time.
    LogAppendTime,
}

/// The validated, typed broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `node.id`.
    pub node_id: i32,
    /// `listeners`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (empty = derived from the bound listeners).
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs`.
    pub log_dir: PathBuf,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `message.max.bytes`.
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `fetch.sendfile.enable`.
    pub fetch_sendfile: bool,
    /// Connection and request bounds (`max.connections`, `connections.max.idle.ms`, ...).
    pub net: crate::net::limits::NetLimitsConfig,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u64,
    /// `log.index.size.max.bytes`.
    pub log_index_size_max_bytes: u64,
    /// `log.message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `log.flush.linger.ms`.
    pub flush_linger: Duration,
    /// `num.shards`, resolved (never 0).
    pub num_shards: usize,
    /// `queued.max.requests.per.connection`.
    pub max_inflight_per_connection: usize,
    /// `shutdown.timeout.ms`.
    pub shutdown_timeout: Duration,
    /// `log.roll.ms` (or `log.roll.hours`).
    pub log_roll_ms: u64,
    /// `log.retention.ms` (or minutes, hours); `None` for -1 (unlimited).
    pub log_retention_ms: Option<u64>,
    /// `log.retention.bytes`; `None` for -1 (unlimited).
    pub log_retention_bytes: Option<u64>,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval: Duration,
    /// `log.flush.interval.messages`; `None` for Long.MAX (never).
    pub log_flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`; `None` for Long.MAX (never).
    pub log_flush_interval_ms: Option<u64>,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub log_flush_offset_checkpoint_interval: Duration,
    /// Benchmark baseline only, not a configuration key: when true, every acks=-1 append is
    /// fsynced on its own, inline on its shard, instead of being group-committed.
    pub fsync_per_append: bool,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// The KRaft keys (`process.roles`, `controller.quorum.voters`, ...).
    pub cluster: crate::metadata::ClusterConfig,
    /// `offsets.retention.minutes`.
    pub offsets_retention: Duration,
    /// The `transaction.*` keys.
    pub transactions: crate::txn::TxnConfig,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.assignors`, the default first.
    pub group_consumer_assignors: Vec<String>,
    /// Listeners, SASL and authorizer settings.
    pub security: crate::auth::SecurityConfig,
    /// The `kinesis.*` keys.
    pub kinesis: crate::kinesis::KinesisConfig,
    /// The `metrics.*` keys.
    pub metrics: crate::metrics::MetricsConfig,
    /// The `console.*` keys (the web console).
    pub console: crate::console::ConsoleConfig,
    /// The `telemetry.*` keys (KIP-714 client telemetry).
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// Every key's effective value as text (defaults included), for DescribeConfigs and for
    /// topic configs that default to a broker key.
    pub values: BTreeMap<&'static str, String>,
    /// The keys set explicitly (file or overrides) rather than left at their default.
    pub explicit: std::collections::BTreeSet<&'static str>,
    /// Dynamic broker configs (IncrementalAlterConfigs / AlterConfigs on the broker), this
    /// broker's own and the cluster default, shared by every clone of this config; they win
    /// over `values` for the keys in [`DYNAMIC_KEYS`].
    pub dynamic: std::sync::Arc<std::sync::RwLock<crate::dynamic_config::DynamicConfigs>>,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
}

/// Broker keys that can be changed at runtime (see [`crate::dynamic_config`]).
pub const DYNAMIC_KEYS: &[&str] = crate::dynamic_config::RUNTIME_KEYS;

impl Config {
    /// The dynamic value of a broker key, if one is set (this broker's own, else the cluster
    /// default).
    pub fn dynamic_value(&self, key: &str) -> Option<String> {
        self.dynamic_entry(key).map(|(v, _)| v)
    }

    /// The dynamic value of a broker key with its source (DYNAMIC_BROKER_CONFIG or
    /// DYNAMIC_DEFAULT_BROKER_CONFIG), if one is set.
    pub fn dynamic_entry(&self, key: &str) -> Option<(String, crate::topic_config::Source)> {
        self.dynamic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(|(v, s)| (v.clone(), s))
    }

    /// A snapshot of both layers of dynamic broker configs.
    pub fn dynamic_configs(&self) -> crate::dynamic_config::DynamicConfigs {
        self.dynamic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates a value for a dynamic broker key.
    pub fn validate_dynamic(key: &str, value: &str) -> Result<(), String> {
        crate::dynamic_config::validate(key, value).map_err(|e| e.to_string())
    }
}

/// Validates a value for one of the table's keys.
pub(crate) fn validate_value(key: &str, value: &str) -> Result<(), String> {
    let def = KEYS
        .iter()
        .find(|d| d.name == key)
        .ok_or_else(|| format!("unknown configuration key `{key}`"))?;
    validate(def, value)
}

impl Default for Config {
    fn default() -> Self {
        // The embedded defaults are valid by construction; a failure here is a bug in KEYS,
        // caught by the unit tests.
        Config::from_pairs(std::iter::empty::<(String, String)>())
            .unwrap_or_else(|e| panic!("embedded defaults are invalid: {e}"))
    }
}

impl Config {
    /// Loads a properties text and then applies overrides (`key=value`), validating every key.
    pub fn load(properties: &str, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut pairs = parse_properties(properties)?;
        for (i, o) in overrides.iter().enumerate() {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Syntax {
                line: i + 1,
                text: o.clone(),
            })?;
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        Config::from_pairs(pairs)
    }

    /// Builds a config from key/value pairs (later pairs win), with defaults for the rest.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut values: BTreeMap<&'static str, String> = KEYS
            .iter()
            .map(|k| (k.name, k.default.to_string()))
            .collect();
        let mut explicit = std::collections::BTreeSet::new();
        let mut precedence: BTreeMap<&'static str, u8> = BTreeMap::new();
        let mut listener_tls: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in pairs {
            let (k, mut v) = (k.into(), v.into());
            // `listener.name.<listener>.ssl.*`: a per-listener TLS setting.
            if let Some((listener, key)) = crate::tls::TlsConfig::listener_key(&k) {
                if let Some(def) = KEYS.iter().find(|d| d.name == key) {
                    validate(def, &v).map_err(|reason| ConfigError::InvalidValue {
                        key: k.clone(),
                        value: v.clone(),
                        reason,
                    })?;
                }
                listener_tls
                    .entry(listener)
                    .or_default()
                    .insert(key.to_string(), v.trim().to_string());
                continue;
            }
            let mut rank = MS_PRECEDENCE;
            if let Some(&(_, ms_key, factor, r)) = UNIT_SYNONYMS.iter().find(|u| u.0 == k) {
                let n: i64 = v.trim().parse().map_err(|_| ConfigError::InvalidValue {
                    key: k.clone(),
                    value: v.clone(),
                    reason: "not an integer".into(),
                })?;
                v = if n < 0 {
                    "-1".into()
                } else {
                    n.saturating_mul(factor).to_string()
                };
                if precedence.get(ms_key).is_some_and(|p| *p > r) {
                    continue;
                }
                rank = r;
            }
            let canonical = UNIT_SYNONYMS
                .iter()
                .find(|u| u.0 == k)
                .map(|u| u.1)
                .or_else(|| SYNONYMS.iter().find(|(alias, _)| *alias == k).map(|s| s.1))
                .unwrap_or(k.as_str());
            let def = KEYS
                .iter()
                .find(|d| d.name == canonical)
                .ok_or(ConfigError::UnknownKey { key: k.clone() })?;
            validate(def, &v).map_err(|reason| ConfigError::InvalidValue {
                key: k.clone(),
                value: v.clone(),
                reason,
            })?;
            if UNIT_SYNONYMS.iter().any(|u| u.1 == def.name) {
                precedence.insert(def.name, rank);
            }
            values.insert(def.name, v.trim().to_string());
            explicit.insert(def.name);
        }
        let get = |k: &str| values.get(k).cloned().unwrap_or_default();
        let int = |k: &str| get(k).trim().parse::<i64>().unwrap_or(0);
        let listeners =
            parse_listeners(&get("listeners")).map_err(|reason| ConfigError::InvalidValue {
                key: "listeners".into(),
                value: get("listeners"),
                reason,
            })?;
        let advertised = if get("advertised.listeners").trim().is_empty() {
            Vec::new()
        } else {
            parse_listeners(&get("advertised.listeners")).map_err(|reason| {
                ConfigError::InvalidValue {
                    key: "advertised.listeners".into(),
                    value: get("advertised.listeners"),
                    reason,
                }
            })?
        };
        let security = security_config(&get, &listeners, listener_tls)?;
        let shards = match int("num.shards") {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n as usize,
        };
        let producer_id_expiration_ms = int("producer.id.expiration.ms");
        let cluster = crate::metadata::ClusterConfig::from_values(&get, &listeners, int("node.id"))
            .map_err(|(key, reason)| ConfigError::InvalidValue {
                key: key.into(),
                value: get(key),
                reason,
            })?;
        let net = crate::net::limits::NetLimitsConfig::from_values(get).map_err(|reason| {
            ConfigError::InvalidValue {
                key: "max.connections.per.ip.overrides".into(),
                value: get("max.connections.per.ip.overrides"),
                reason,
            }
        })?;
        Ok(Config {
            node_id: int("node.id") as i32,
            listeners,
            advertised_listeners: advertised,
            log_dir: PathBuf::from(get("log.dirs")),
            num_partitions: int("num.partitions") as i32,
            auto_create_topics: get("auto.create.topics.enable") == "true",
            message_max_bytes: int("message.max.bytes") as usize,
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            fetch_sendfile: get("fetch.sendfile.enable") == "true",
            net,
            log_segment_bytes: int("log.segment.bytes") as u64,
            log_index_interval_bytes: int("log.index.interval.bytes") as u64,
            log_index_size_max_bytes: int("log.index.size.max.bytes") as u64,
            timestamp_type: if get("log.message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            flush_linger: Duration::from_millis(int("log.flush.linger.ms") as u64),
            num_shards: shards,
            max_inflight_per_connection: int("queued.max.requests.per.connection") as usize,
            shutdown_timeout: Duration::from_millis(int("shutdown.timeout.ms") as u64),
            log_roll_ms: int("log.roll.ms").max(1) as u64,
            log_retention_ms: u64::try_from(int("log.retention.ms")).ok(),
            log_retention_bytes: u64::try_from(int("log.retention.bytes")).ok(),
            log_retention_check_interval: Duration::from_millis(
                int("log.retention.check.interval.ms").max(1) as u64,
            ),
            log_flush_interval_messages: Some(int("log.flush.interval.messages"))
                .filter(|n| *n != i64::MAX)
                .map(|n| n.max(1) as u64),
            log_flush_interval_ms: Some(int("log.flush.interval.ms"))
                .filter(|n| *n != i64::MAX)
                .map(|n| n.max(0) as u64),
            log_flush_offset_checkpoint_interval: Duration::from_millis(
                int("log.flush.offset.checkpoint.interval.ms").max(1) as u64,
            ),
            fsync_per_append: false,
            offsets_topic_num_partitions: int("offsets.topic.num.partitions") as i32,
            cluster,
            offsets_retention: Duration::from_secs(int("offsets.retention.minutes") as u64 * 60),
            transactions: crate::txn::TxnConfig {
                num_partitions: int("transaction.state.log.num.partitions") as i32,
                replication_factor: int("transaction.state.log.replication.factor") as i32,
                min_isr: int("transaction.state.log.min.isr") as i32,
                max_timeout_ms: int("transaction.max.timeout.ms") as i32,
                abort_interval: Duration::from_millis(int(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                ) as u64),
                id_expiration_ms: int("transactional.id.expiration.ms"),
                expiry_interval: Duration::from_millis(int(
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                ) as u64),
                segment_bytes: int("transaction.state.log.segment.bytes"),
            },
            offsets_retention_check_interval: Duration::from_millis(int(
                "offsets.retention.check.interval.ms",
            ) as u64),
            offset_metadata_max_bytes: int("offset.metadata.max.bytes") as usize,
            group_initial_rebalance_delay: Duration::from_millis(int(
                "group.initial.rebalance.delay.ms",
            ) as u64),
            group_min_session_timeout_ms: int("group.min.session.timeout.ms") as i32,
            group_max_session_timeout_ms: int("group.max.session.timeout.ms") as i32,
            group_consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms")
                as i32,
            group_consumer_session_timeout_ms: int("group.consumer.session.timeout.ms") as i32,
            group_consumer_assignors: get("group.consumer.assignors")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            security,
            kinesis: crate::kinesis::KinesisConfig::from_values(get, |k| explicit.contains(k)),
            metrics: crate::metrics::MetricsConfig::from_values(get, |k| explicit.contains(k)),
            console: crate::console::ConsoleConfig::from_values(get),
            telemetry: crate::telemetry::TelemetryConfig::from_values(get),
            values,
            explicit,
            dynamic: Default::default(),
            producer_id_expiration_ms,
        })
    }

    /// The log settings of a partition without topic overrides: the broker keys that are the
    /// defaults of the topic configs (`log.segment.bytes` for `segment.bytes`, `log.roll.ms` for
    /// `segment.ms`, `log.retention.*`, `log.flush.interval.*`, ...).
    pub fn log_config(&self) -> crate::log::LogConfig {
        crate::log::LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            index_interval_bytes: self.log_index_interval_bytes,
            // The produce handler enforces max.message.bytes per topic (MESSAGE_TOO_LARGE before
            // anything reaches a shard); the log only guards against frames no request can hold.
            max_message_bytes: self.socket_request_max_bytes,
            segment_index_bytes: self.log_index_size_max_bytes,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            flush_interval_messages: self.log_flush_interval_messages,
            flush_interval_ms: self.log_flush_interval_ms,
            compact: self
                .values
                .get("log.cleanup.policy")
                .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact")),
            min_cleanable_dirty_ratio: self
                .values
                .get("log.cleaner.min.cleanable.ratio")
                .and_then(|v| parse_ratio(v).ok())
                .unwrap_or(0.5),
            min_compaction_lag_ms: self
                .value_i64("log.cleaner.min.compaction.lag.ms", 0)
                .max(0) as u64,
            max_compaction_lag_ms: match self
                .value_i64("log.cleaner.max.compaction.lag.ms", i64::MAX)
            {
                i64::MAX => None,
                v => Some(v.max(1) as u64),
            },
            delete_retention_ms: self
                .value_i64("log.cleaner.delete.retention.ms", 86_400_000)
                .max(0) as u64,
        }
    }

    /// An integer key's effective value (its dynamic value first), or `default`.
    pub fn value_i64(&self, key: &str, default: i64) -> i64 {
        self.dynamic_value(key)
            .or_else(|| self.values.get(key).cloned())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// A configuration for tests and embedding: ephemeral port on 127.0.0.1, the given data dir.
    pub fn for_test(log_dir: impl Into<PathBuf>) -> Config {
        Config {
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 0,
            }],
            log_dir: log_dir.into(),
            ..Config::default()
        }
    }
}

fn parse_listeners(s: &str) -> Result<Vec<Listener>, String> {
    let v: Vec<Listener> = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Listener::parse)
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("at least one listener is required".into());
    }
    for (i, l) in v.iter().enumerate() {
        if v[..i].iter().any(|o| o.name == l.name) {
            return Err(format!("listener name `{}` is used twice", l.name));
        }
    }
    Ok(v)
}

/// Builds the security settings and checks every listener's protocol.
fn security_config(
    get: &dyn Fn(&str) -> String,
    listeners: &[Listener],
    listener_tls: BTreeMap<String, BTreeMap<String, String>>,
) -> Result<crate::auth::SecurityConfig, ConfigError> {
    use crate::auth::{AuthorizerConfig, SecurityConfig, SecurityProtocol};
    let invalid = |key: &str, reason: String| ConfigError::InvalidValue {
        key: key.into(),
        value: if SENSITIVE_KEYS.contains(&key) {
            "<hidden>".into()
        } else {
            get(key)
        },
        reason,
    };
    let ms = |key: &str, default: i64| get(key).trim().parse().unwrap_or(default);
    let sec = SecurityConfig {
        protocol_map: SecurityConfig::parse_protocol_map(&get("listener.security.protocol.map"))
            .map_err(|r| invalid("listener.security.protocol.map", r))?,
        mechanisms: SecurityConfig::parse_mechanisms(&get("sasl.enabled.mechanisms"))
            .map_err(|r| invalid("sasl.enabled.mechanisms", r))?,
        plain_users: SecurityConfig::parse_plain_users(&get("sasl.plain.users"))
            .map_err(|r| invalid("sasl.plain.users", r))?,
        authorizer: AuthorizerConfig {
            enabled: !get("authorizer.class.name").trim().is_empty(),
            super_users: SecurityConfig::parse_super_users(&get("super.users"))
                .map_err(|r| invalid("super.users", r))?,
            allow_if_no_acl: get("allow.everyone.if.no.acl.found") == "true",
        },
        reauth_ms: get("connections.max.reauth.ms").trim().parse().unwrap_or(0),
        tls: crate::tls::TlsConfig {
            base: crate::tls::LISTENER_KEYS
                .iter()
                .map(|k| (k.to_string(), get(k)))
                .collect(),
            overrides: listener_tls,
            reload_interval: Duration::from_millis(
                get("ssl.reload.interval.ms").trim().parse().unwrap_or(0),
            ),
            handshake_timeout: Duration::from_millis(
                get("ssl.handshake.timeout.ms")
                    .trim()
                    .parse()
                    .unwrap_or(10_000),
            ),
            kinesis_enabled: get("kinesis.ssl.enabled") == "true"
                && !get("kinesis.listener").trim().is_empty(),
        },
        tokens: crate::auth::delegation::TokenConfig {
            secret_key: Some(get("delegation.token.secret.key")).filter(|k| !k.trim().is_empty()),
            max_lifetime_ms: ms("delegation.token.max.lifetime.ms", 604_800_000),
            expiry_time_ms: ms("delegation.token.expiry.time.ms", 86_400_000),
            check_interval_ms: ms("delegation.token.expiry.check.interval.ms", 3_600_000),
        },
    };
    let setting_err = |e: crate::tls::SettingError| ConfigError::InvalidValue {
        key: e.key,
        value: e.value,
        reason: e.reason,
    };
    for l in listeners {
        match sec.protocol_of(&l.name) {
            Ok(p @ (SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)) => {
                sec.tls.for_listener(&l.name, p).map_err(setting_err)?;
            }
            Ok(_) => {}
            Err(r) => return Err(invalid("listeners", r)),
        }
    }
    if let Some(name) = sec
        .tls
        .overrides
        .keys()
        .find(|n| !listeners.iter().any(|l| l.name == **n))
    {
        return Err(invalid(
            "listeners",
            format!(
                "listener.name.{}.ssl.* is set but there is no listener `{name}`",
                name.to_ascii_lowercase()
            ),
        ));
    }
    if sec.tls.kinesis_enabled {
        sec.tls.for_kinesis().map_err(setting_err)?;
    }
    Ok(sec)
}

fn validate(def: &KeyDef, v: &str) -> Result<(), String> {
    let v = v.trim();
    match def.kind {
        Kind::Int { min, max } => {
            let n: i64 = v.parse().map_err(|_| "not an integer".to_string())?;
            if n < min || n > max {
                return Err(format!("must be between {min} and {max}"));
            }
        }
        Kind::Bool => {
            if v != "true" && v != "false" {
                return Err("must be true or false".into());
            }
        }
        Kind::Str if def.name == "log.dirs" => {
            if v.is_empty() {
                return Err("a directory is required".into());
            }
            if v.contains(',') {
                return Err("only one log directory is supported".into());
            }
        }
        Kind::Str
            if def.name == "kinesis.listener"
                || def.name == "metrics.listener"
                || def.name == "console.listener" =>
        {
            crate::kinesis::KinesisConfig::validate_listener(v)?;
        }
        Kind::Str if def.name == "ssl.enabled.protocols" => {
            crate::tls::parse_protocols(v)?;
        }
        Kind::Str if def.name == "ssl.principal.mapping.rules" => {
            crate::tls::PrincipalMapper::parse(v).map_err(|e| e.reason)?;
        }
        Kind::Str if def.name == "kinesis.credentials" => {
            crate::kinesis::sigv4::Credentials::parse(v)?;
        }
        Kind::Str if def.name == "group.consumer.assignors" => {
            let names: Vec<&str> = v.split(',').map(str::trim).collect();
            if names
                .iter()
                .any(|n| !crate::coordinator::assignor::ASSIGNORS.contains(n))
            {
                return Err(format!(
                    "each assignor must be one of {}",
                    crate::coordinator::assignor::ASSIGNORS.join(", ")
                ));
            }
        }
        Kind::Str => {}
        Kind::Listeners => {
            parse_listeners(v)?;
        }
        Kind::Enum(options) => {
            if !options.contains(&v) {
                return Err(format!("must be one of {}", options.join(", ")));
            }
        }
        Kind::Ratio => {
            parse_ratio(v)?;
        }
    }
    Ok(())
}

/// Parses a ratio between 0 and 1 (Kafka's `min.cleanable.dirty.ratio` style DOUBLE).
pub fn parse_ratio(v: &str) -> Result<f64, String> {
    let r: f64 = v
        .trim()
        .parse()
        .map_err(|_| "not a decimal number".to_string())?;
    if !(0.0..=1.0).contains(&r) {
        return Err("must be between 0 and 1".into());
    }
    Ok(r)
}

/// Parses `key=value` lines (`#` and `!` comments, blank lines, `key: value` also accepted).
fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
            continue;
        }
        let split = t.find(['=', ':']).ok_or_else(|| ConfigError::Syntax {
            line: i + 1,
            text: t.to_string(),
        })?;
        let (k, v) = t.split_at(split);
        out.push((k.trim().to_string(), v[1..].trim().to_string()));
    }
    Ok(out)
}

/// What the docs add to a key in [`DYNAMIC_KEYS`].
pub const DYNAMIC_NOTE: &str = " Dynamic: IncrementalAlterConfigs on BROKER <node id> (this broker) \
                                or BROKER \"\" (cluster default) changes it at runtime (docs/configuration.md).";

/// Renders the documented `server.properties` (every key, commented, with its default).
pub fn render_properties() -> String {
    let mut out = String::from(
        "# Esker broker configuration. Every key the broker accepts, with its default.\n\
         # Generated from src/config.rs (KEYS); a test keeps this file in step with it.\n\
         # Unknown keys and invalid values stop start-up with a message naming the key.\n",
    );
    for k in KEYS {
        out.push('\n');
        let mut doc = k.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        if DYNAMIC_KEYS.contains(&k.name) {
            doc.push_str(DYNAMIC_NOTE);
        }
        let mut line = String::from("#");
        for word in doc.split(' ') {
            if line.len() + word.len() + 1 > 98 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
        out.push_str(&format!("{}={}\n", k.name, k.default));
    }
    out
}

/// Resolves a listener to the socket addresses to bind (all addresses a host name resolves to).
pub fn resolve(listener: &Listener) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    let host = if listener.host.is_empty() {
        "0.0.0.0"
    } else {
        listener.host.as_str()
    };
    let mut addrs: Vec<SocketAddr> = (host, listener.port).to_socket_addrs()?.collect();
    addrs.dedup();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert!(c.num_shards >= 1);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::load("foo.bar=1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("foo.bar"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = Config::load("num.partitions=zero\n", &[]).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = Config::load("", &["auto.create.topics.enable=yes".into()]).unwrap_err();
        assert!(e.to_string().contains("auto.create.topics.enable"), "{e}");
        let e = Config::load("log.dirs=/a,/b\n", &[]).unwrap_err();
        assert!(e.to_string().contains("log.dirs"), "{e}");
        let e = Config::load("listeners=PLAINTEXT://127.0.0.1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("listeners"), "{e}");
    }

    #[test]
    fn overrides_win_and_synonyms_map() {
        let c = Config::load(
            "# comment\nnum.partitions=3\nbroker.id=7\nlog.dir=/tmp/x\n",
            &["num.partitions=5".into()],
        )
        .unwrap();
        assert_eq!(c.num_partitions, 5);
        assert_eq!(c.node_id, 7);
        assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn retention_units_follow_kafka_precedence() {
        let c = Config::default();
        assert_eq!(c.log_retention_ms, Some(604_800_000));
        assert_eq!(c.log_retention_bytes, None);
        assert_eq!(c.log_flush_interval_messages, None);
        assert_eq!(c.log_flush_interval_ms, None);
        let c = Config::load("log.retention.hours=2\n", &[]).unwrap();
        assert_eq!(c.log_retention_ms, Some(7_200_000));
        assert_eq!(c.values["log.retention.ms"], "7200000");
        // ms wins over minutes over hours, in any order.
        let c = Config::load(
            "log.retention.ms=5000\nlog.retention.minutes=3\nlog.retention.hours=1\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.log_retention_ms, Some(5000));
        let c = Config::load("log.retention.hours=1\nlog.retention.minutes=3\n", &[]).unwrap();
        assert_eq!(c.log_retention_ms, Some(180_000));
        let c = Config::load("log.retention.hours=-1\nlog.roll.hours=1\n", &[]).unwrap();
        assert_eq!(c.log_retention_ms, None);
        assert_eq!(c.log_roll_ms, 3_600_000);
        let e = Config::load("log.retention.hours=soon\n", &[]).unwrap_err();
        assert!(e.to_string().contains("log.retention.hours"), "{e}");
        let c = Config::load(
            "log.flush.interval.messages=10\nlog.retention.bytes=4096\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.log_flush_interval_messages, Some(10));
        assert_eq!(c.log_config().flush_interval_messages, Some(10));
        assert_eq!(c.log_config().retention_bytes, Some(4096));
    }

    #[test]
    fn shipped_properties_file_matches_table() {
        let shipped = include_str!("../config/server.properties");
        assert_eq!(
            shipped,
            render_properties(),
            "config/server.properties is out of date: regenerate it with `esker --print-config`"
        );
        // And it loads.
        Config::load(shipped, &[]).unwrap();
    }
}
