//! The `esker` binary: parses the command line, loads the configuration and runs the broker
//! until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc options read at start-up (`_RJEM_MALLOC_CONF` in the environment still overrides
/// them). `oversize_threshold:0` keeps large buffers (fetch reads and produce frames of several
/// MiB) in the ordinary arenas, whose freed pages are reused for the next request; by default
/// allocations of 8 MiB and more go to an arena that returns its pages to the kernel at once
/// (`madvise`), so every large fetch faulted in and zeroed fresh pages: two thirds of the
/// broker's CPU time on the fetch path (docs/performance.md).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"oversize_threshold:0\0";

/// A message broker speaking the Kafka protocol.
#[derive(Parser, Debug)]
#[command(name = "esker", version, about)]
struct Args {
    /// A server.properties file (Kafka key names). Without it the embedded defaults apply.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Override one key, `key=value`; may be repeated.
    #[arg(long = "override", short = 'o', value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the documented default configuration and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a CA, a server certificate and client certificates (PEM) for TLS listeners:
    /// ca.pem/ca.key, server.pem/server.key (SANs localhost, 127.0.0.1 and --hostname/--ip),
    /// <NAME>.pem/<NAME>.key per --client (subject CN=<NAME>), all signed by the CA.
    Certs {
        /// Output directory (created if missing; existing files are overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Extra DNS name of the server certificate; may be repeated.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Extra IP address of the server certificate; may be repeated.
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<std::net::IpAddr>,
        /// A client certificate with subject CN=<NAME>; may be repeated.
        #[arg(long = "client", value_name = "NAME")]
        clients: Vec<String>,
        /// Common name of the CA.
        #[arg(long, default_value = "Esker CA")]
        ca_name: String,
    },
    /// Inspect or change the metadata quorum of a cluster (Kafka's kafka-metadata-quorum.sh):
    /// the request goes to each --bootstrap-controller in turn until the quorum leader answers.
    Quorum {
        /// Controller listener addresses, `host:port,...`.
        #[arg(
            long = "bootstrap-controller",
            value_name = "HOST:PORT",
            value_delimiter = ',',
            required = true
        )]
        controllers: Vec<String>,
        #[command(subcommand)]
        action: QuorumAction,
    },
    /// The admin subcommands (topic, group, config, acl, user, produce, consume, perf,
    /// cluster): a Kafka client for any broker, see docs/cli.md.
    #[command(flatten)]
    Admin(esker::cli::CliCommand),
}

#[derive(Subcommand, Debug)]
enum QuorumAction {
    /// The leader, its epoch, the high watermark and every voter's and observer's progress.
    Describe,
    /// Add a node (started with this node.id and its controller listener) as a voter.
    AddVoter {
        /// The node's node.id.
        #[arg(long)]
        node_id: u64,
        /// Its controller listener, `host:port`.
        #[arg(long, value_name = "HOST:PORT")]
        controller_address: String,
    },
    /// Remove a voter.
    RemoveVoter {
        /// The node's node.id.
        #[arg(long)]
        node_id: u64,
    },
}

/// Runs `esker quorum ...`.
fn quorum_command(controllers: Vec<String>, action: QuorumAction) -> anyhow::Result<()> {
    use esker::raft::admin::{request, AdminRequest};
    let req = match action {
        QuorumAction::Describe => AdminRequest::Describe,
        QuorumAction::AddVoter {
            node_id,
            controller_address,
        } => AdminRequest::AddVoter {
            node_id,
            addr: controller_address,
        },
        QuorumAction::RemoveVoter { node_id } => AdminRequest::RemoveVoter { node_id },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    let timeout = std::time::Duration::from_secs(30);
    let out = rt.block_on(request(&controllers, req.clone(), timeout))?;
    match out {
        Some(d) => {
            println!("LeaderId:       {}", d.leader_id);
            println!("LeaderEpoch:    {}", d.term);
            println!("HighWatermark:  {}", d.high_watermark.map_or(0, |i| i + 1));
            println!(
                "{:<8} {:<24} {:<12} {:<16} Status",
                "NodeId", "Address", "LogEndOffset", "LastContactMs"
            );
            for (role, list) in [("Voter", &d.voters), ("Observer", &d.learners)] {
                for r in list {
                    println!(
                        "{:<8} {:<24} {:<12} {:<16} {}",
                        r.node_id,
                        r.addr,
                        r.matched_index.map_or(0, |i| i + 1),
                        r.last_contact_ms.map_or(-1, |t| t as i64),
                        if r.node_id == d.leader_id {
                            "Leader"
                        } else {
                            role
                        }
                    );
                }
            }
        }
        None => println!("done: {req:?}"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Admin(cmd)) = args.command {
        std::process::exit(esker::cli::run(cmd));
    }
    if let Some(Command::Quorum {
        controllers,
        action,
    }) = args.command
    {
        return quorum_command(controllers, action);
    }
    if let Some(Command::Certs {
        out,
        hostnames,
        ips,
        clients,
        ca_name,
    }) = args.command
    {
        let req = esker::tls::certs::CertsRequest {
            out,
            hostnames: hostnames
                .into_iter()
                .chain(ips.iter().map(|ip| ip.to_string()))
                .collect(),
            clients,
            ca_name,
        };
        let files = esker::tls::certs::generate(&req).context("cannot generate certificates")?;
        for f in files {
            println!("{}", f.display());
        }
        return Ok(());
    }
    if args.print_config {
        print!("{}", esker::config::render_properties());
        return Ok(());
    }
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    // Loading is pure (it logs nothing), so the log format can come from the configuration.
    let config = esker::Config::load(&text, &args.overrides).context("invalid configuration")?;
    init_logging(config.values.get("log.format").map(String::as_str))?;
    raise_open_file_limit();
    // The control runtime only waits for signals; shards bring their own runtimes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    rt.block_on(async move {
        // Installed before start-up (which replays __consumer_offsets once the listeners are
        // bound), so a signal that arrives meanwhile still means a clean shutdown.
        let signals = wait_for_signal()?;
        let broker = esker::Broker::start(config)
            .await
            .context("cannot start broker")?;
        signals.await;
        broker.shutdown().await.context("shutdown failed")?;
        anyhow::Ok(())
    })
}

/// The log filter without `RUST_LOG`: openraft's own lines (a refused connection while a peer
/// starts is logged as an error there) stay off; Esker logs quorum events itself.
const DEFAULT_LOG_FILTER: &str = "info,openraft=off";

/// Installs the log subscriber: the `RUST_LOG` filter (default `info`, openraft off; per-request spans and
/// lines with `esker::request=debug`), text or JSON lines on stdout. `ESKER_LOG_FORMAT`
/// overrides the `log.format` key.
fn init_logging(configured: Option<&str>) -> anyhow::Result<()> {
    let format = std::env::var("ESKER_LOG_FORMAT")
        .ok()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| configured.unwrap_or("text").to_string());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colour codes only on a terminal, not in files and pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format.as_str() {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        "text" => builder.init(),
        other => anyhow::bail!("invalid ESKER_LOG_FORMAT `{other}`: expected text or json"),
    }
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future resolving at the first
/// of them (a signal received before it is awaited is not lost).
fn wait_for_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Raises the soft limit on open files to the hard limit, as the JVM and Go runtimes do: every
/// partition keeps its active segment open, so the common default of 1024 caps a broker at
/// about a thousand partitions.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let before = limit.rlim_cur;
        if before >= limit.rlim_max {
            return;
        }
        limit.rlim_cur = limit.rlim_max;
        (libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0).then_some(before)
    };
    match raised {
        Some(before) => tracing::info!(
            from = before,
            to = limit.rlim_max,
            "raised the open file limit"
        ),
        None => tracing::warn!("cannot raise the open file limit"),
    }
}
