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
    // The control runtime only waits for signals; shards bring their own runtimes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    rt.block_on(async move {
        let broker = esker::Broker::start(config)
            .await
            .context("cannot start broker")?;
        wait_for_signal().await?;
        broker.shutdown().await.context("shutdown failed")?;
        anyhow::Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot install SIGINT handler")?,
        _ = term.recv() => {}
    }
    Ok(())
}
