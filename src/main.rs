//! The `esker` binary: parses the command line, loads the configuration and runs the broker
//! until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_config {
        print!("{}", esker::config::render_properties());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    let config = esker::Config::load(&text, &args.overrides).context("invalid configuration")?;
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
