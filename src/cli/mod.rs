//! The `esker` admin subcommands: `topic`, `group`, `config`, `acl`, `user`, `produce`,
//! `consume`, `perf` and `cluster`. They talk the Kafka protocol through [`crate::client`] to
//! any broker (Esker or Apache Kafka), with kcat's connection flags (`-b`, `-X key=value`,
//! `-F client.properties`). Output is an aligned table for people or, with `--json`, JSON
//! with stable snake_case field names for scripts.
//!
//! Exit codes: 0 success; 1 the request failed (unknown topic, denied by ACL, refused
//! reset...); 2 bad usage (clap); 3 the cluster could not be reached or authentication failed.
//! Errors go to stderr as `error: ...`, naming the resource and Kafka's error code name.

mod acl;
mod cluster;
mod configs;
mod group;
mod output;
mod records;
mod topic;
mod user;

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::client::settings::parse_properties;
use crate::client::{Client, ClientError, ClientSettings};

/// Exit code: the request failed.
pub const EXIT_REQUEST: i32 = 1;
/// Exit code: bad usage (clap's own code).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: connection or authentication failure.
pub const EXIT_CONNECTION: i32 = 3;

/// Connection and output flags shared by every admin subcommand.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Bootstrap brokers, `host:port[,host:port...]` (default localhost:9092).
    #[arg(
        short = 'b',
        long = "brokers",
        global = true,
        value_name = "HOST:PORT,..."
    )]
    pub brokers: Option<String>,
    /// A client property with librdkafka's name (security.protocol, sasl.mechanism,
    /// sasl.username, sasl.password, ssl.ca.location, ssl.certificate.location,
    /// ssl.key.location, client.id, request.timeout.ms); may be repeated.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    pub props: Vec<String>,
    /// A Java-style client.properties file (bootstrap.servers, security.protocol,
    /// sasl.mechanism, sasl.jaas.config, ssl.truststore.location / ssl.keystore.location of
    /// type PEM); -X and -b override it.
    #[arg(
        short = 'F',
        long = "command-config",
        value_name = "FILE",
        global = true
    )]
    pub file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The admin subcommands (flattened into the binary's command line).
// Fields of clap variants take their help from their types.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// List, describe, create and delete topics; change a topic's configs.
    Topic {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: TopicAction,
    },
    /// Consumer groups: list, describe (members, lag), reset offsets, delete.
    Group {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Read or change broker and topic configs (IncrementalAlterConfigs).
    Config {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// List, add and remove ACLs.
    Acl {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: AclAction,
    },
    /// SCRAM users: list, set a password, delete.
    User {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Produce records (stdin lines or --value) with acks=all.
    Produce {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Consume records of a topic and print them.
    Consume {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(flatten)]
        args: ConsumeArgs,
    },
    /// A quick producer/consumer throughput run (benches/throughput.rs is the full tool).
    Perf {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(flatten)]
        args: PerfArgs,
    },
    /// The cluster: id, controller, brokers, features.
    Cluster {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// `esker topic ...`
// Fields of clap variants take their help from their types.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum TopicAction {
    /// Topics with their partition count and replication factor.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// A topic's partitions (leader, replicas, ISR, offsets) and non-default configs.
    Describe {
        /// The topic.
        topic: String,
    },
    /// Create a topic.
    Create {
        /// The topic.
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, short = 'r', default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, `key=value`; may be repeated.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or delete topic configs (same as `config set --topic`).
    AlterConfig {
        /// The topic.
        topic: String,
        #[command(flatten)]
        changes: ConfigChanges,
    },
}

/// Config changes: `--set key=value` and `--delete key`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
pub struct ConfigChanges {
    /// Set `key=value`; may be repeated.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Delete a key (back to its default); may be repeated.
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
}

/// `esker group ...`
// Fields of clap variants take their help from their types.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum GroupAction {
    /// Groups with their state and protocol type.
    List,
    /// A group's state, members and, per partition, committed offset, log end and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Reset a group's committed offsets: prints the plan, applies it with --execute; refused
    /// while the group has members.
    ResetOffsets {
        /// The group id.
        group: String,
        /// `TOPIC` or `TOPIC:P1,P2`; may be repeated.
        #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
        topic: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long, conflicts_with = "topic")]
        all_topics: bool,
        #[command(flatten)]
        to: ResetTo,
        /// Apply the plan (without it nothing changes).
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups (they must have no members).
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Where `group reset-offsets` moves each partition.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_datetime", "shift_by", "to_offset"])))]
pub struct ResetTo {
    /// The log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// The first offset at or after a time: `2024-05-01T12:00:00Z`, `...+02:00`, without a
    /// zone UTC, or epoch milliseconds.
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Move the committed offset by N (negative: back), within the log.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// An absolute offset (clamped to the log).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
}

/// `esker config ...`
// Fields of clap variants take their help from their types.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Dynamic (non-default) configs of a broker or topic; --all for every key.
    Get {
        #[command(flatten)]
        resource: ConfigResource,
        /// Every key, defaults and static ones too.
        #[arg(long)]
        all: bool,
    },
    /// Set or delete configs of a broker, the broker defaults or a topic.
    Set {
        #[command(flatten)]
        resource: ConfigResource,
        #[command(flatten)]
        changes: ConfigChanges,
    },
}

/// The resource of `config get|set`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("resource").required(true).args(["broker", "broker_defaults", "topic"])))]
pub struct ConfigResource {
    /// A broker by node id.
    #[arg(long, value_name = "ID")]
    pub broker: Option<i32>,
    /// The cluster-wide broker defaults.
    #[arg(long)]
    pub broker_defaults: bool,
    /// A topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
}

/// `esker acl ...`
// Fields of clap variants take their help from their types.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum AclAction {
    /// ACLs matching the given filters (all without filters).
    List {
        #[command(flatten)]
        acl: AclArgs,
    },
    /// Add ACLs: one per --operation.
    Add {
        #[command(flatten)]
        acl: AclArgs,
    },
    /// Remove the ACLs matching the filters (a resource is required).
    Remove {
        #[command(flatten)]
        acl: AclArgs,
    },
}

/// An ACL binding or filter.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("res").args(["topic", "group", "cluster", "transactional_id", "user"])))]
pub struct AclArgs {
    /// The principal, `User:alice` (`User:*` for everyone).
    #[arg(long)]
    pub principal: Option<String>,
    /// The client host (`*` any; default `*` when adding).
    #[arg(long)]
    pub host: Option<String>,
    /// Operation: ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION,
    /// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS; may
    /// be repeated.
    #[arg(long)]
    pub operation: Vec<String>,
    /// ALLOW or DENY (default ALLOW when adding).
    #[arg(long)]
    pub permission: Option<String>,
    /// A topic (`*` all topics).
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group.
    #[arg(long)]
    pub group: Option<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// A user (for delegation tokens on behalf of users).
    #[arg(long)]
    pub user: Option<String>,
    /// LITERAL or PREFIXED (and ANY, MATCH in filters); default LITERAL when adding, ANY
    /// otherwise.
    #[arg(long)]
    pub pattern: Option<String>,
}

/// `esker user ...`
#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// SCRAM users with their mechanisms and iterations.
    List,
    /// Create a user or change its password (salt random, SCRAM computed here).
    SetPassword {
        /// The user name.
        user: String,
        /// The password (read from the first line of stdin when absent).
        #[arg(long)]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Delete a user's credentials (every mechanism unless --mechanism).
    Delete {
        /// The user name.
        user: String,
        /// Only this mechanism.
        #[arg(long)]
        mechanism: Option<String>,
    },
}

/// `esker produce`
#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    /// The topic.
    pub topic: String,
    /// One record with this value (otherwise one record per stdin line).
    #[arg(long)]
    pub value: Option<String>,
    /// The key of every record.
    #[arg(long, short = 'k')]
    pub key: Option<String>,
    /// Split each stdin line into key and value at the first SEP (kcat's -K).
    #[arg(long, short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header `name=value` on every record; may be repeated.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The partition (default: by key hash as Kafka's partitioner, round robin without key).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
}

/// `esker consume`
#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Only this partition; may be repeated.
    #[arg(long, short = 'p')]
    pub partition: Vec<i32>,
    /// Start: beginning, end, or an offset.
    #[arg(long, short = 'o', default_value = "beginning")]
    pub offset: String,
    /// Start at the first record at or after this time (as `group reset-offsets --to-datetime`).
    #[arg(long, value_name = "DATETIME", conflicts_with = "offset")]
    pub from_time: Option<String>,
    /// Stop after N records.
    #[arg(long = "count", short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Start at the group's committed offsets and commit the positions reached at the end
    /// (a simple consumer: no group membership, so the group must have no members).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// text (the value), kv (key TAB value), json (one object per line), hex (the value).
    #[arg(long, short = 'f', default_value = "text")]
    pub format: String,
    /// Wait for new records instead of stopping at the end of the partitions.
    #[arg(long)]
    pub follow: bool,
}

/// `esker perf`
#[derive(Args, Debug, Clone)]
pub struct PerfArgs {
    /// The topic (it must exist).
    pub topic: String,
    /// Records to produce.
    #[arg(long, default_value_t = 100_000)]
    pub num_records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Records per produce request.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// produce, consume (what is in the topic) or both.
    #[arg(long, default_value = "both")]
    pub mode: String,
}

/// `esker cluster ...`
#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Cluster id, controller, brokers, the listener used and finalized features.
    Info,
}

/// A command's failure, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Exit 2.
    #[error("{0}")]
    Usage(String),
    /// Exit 1 or 3 depending on the client error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading stdin or writing stdout failed (exit 1).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Client(ClientError::Settings(_)) => EXIT_USAGE,
            CliError::Client(e) if e.is_connection() => EXIT_CONNECTION,
            _ => EXIT_REQUEST,
        }
    }
}

/// The result of a command.
pub type CliResult<T> = Result<T, CliError>;

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// Splits `key=value`.
fn key_value(s: &str, what: &str) -> CliResult<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| usage(format!("{what} `{s}`: expected key=value")))
}

impl ConnectArgs {
    /// The client settings from -F, -X and -b; warnings go to stderr.
    fn settings(&self) -> CliResult<ClientSettings> {
        let file = match &self.file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?;
                parse_properties(&text)
            }
            None => Vec::new(),
        };
        let props = self
            .props
            .iter()
            .map(|p| key_value(p, "-X"))
            .collect::<CliResult<Vec<_>>>()?;
        let (settings, warnings) =
            ClientSettings::from_sources(&file, &props, self.brokers.as_deref())?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        Ok(settings)
    }

    async fn connect(&self) -> CliResult<Client> {
        Ok(Client::connect(self.settings()?).await?)
    }
}

/// Runs an admin subcommand to completion and returns the process exit code.
pub fn run(cmd: CliCommand) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return EXIT_REQUEST;
        }
    };
    match rt.block_on(dispatch(cmd)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(cmd: CliCommand) -> CliResult<()> {
    match cmd {
        CliCommand::Topic { conn, action } => {
            let mut c = conn.connect().await?;
            topic::run(&mut c, action, conn.json).await
        }
        CliCommand::Group { conn, action } => {
            let mut c = conn.connect().await?;
            group::run(&mut c, action, conn.json).await
        }
        CliCommand::Config { conn, action } => {
            let mut c = conn.connect().await?;
            configs::run(&mut c, action, conn.json).await
        }
        CliCommand::Acl { conn, action } => {
            let mut c = conn.connect().await?;
            acl::run(&mut c, action, conn.json).await
        }
        CliCommand::User { conn, action } => {
            let mut c = conn.connect().await?;
            user::run(&mut c, action, conn.json).await
        }
        CliCommand::Produce { conn, args } => {
            let mut c = conn.connect().await?;
            records::produce(&mut c, args, conn.json).await
        }
        CliCommand::Consume { conn, args } => {
            let mut c = conn.connect().await?;
            records::consume(&mut c, args, conn.json).await
        }
        CliCommand::Perf { conn, args } => {
            let mut c = conn.connect().await?;
            records::perf(&mut c, args, conn.json).await
        }
        CliCommand::Cluster { conn, action } => {
            let mut c = conn.connect().await?;
            match action {
                ClusterAction::Info => cluster::info(&mut c, conn.json).await,
            }
        }
    }
}
