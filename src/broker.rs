//! The broker's life cycle: start-up (data directory, `meta.properties`, recovery of every
//! partition on its shard, listeners) and the graceful shutdown protocol (stop accepting, drain
//! in-flight requests, close the logs, write the clean-shutdown marker). It builds the
//! [`BrokerContext`] (`crate::context`) that request handlers use and wires the layers together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::context::{sync_dir, BrokerContext};
use crate::net::{self, Drain};
use crate::shard::{shard_for, ShardConfig, ShardError, ShardPool, ShardState, StorageError};

/// Kafka's name for the marker a clean shutdown leaves in the log directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// The metadata quorum's directory under `log.dirs` when `metadata.log.dir` is not set
/// (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Errors that stop the broker from starting or stopping cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The data directory or a file in it could not be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The path concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shard failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A TLS listener's certificate, key or CA could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The group coordinator could not create or load `__consumer_offsets`.
    #[error(transparent)]
    Coordinator(#[from] crate::coordinator::CoordinatorError),
    /// The transaction coordinator could not create or load `__transaction_state`.
    #[error("transaction coordinator: {0}")]
    Transactions(#[from] crate::txn::TxnStartError),
    /// The cluster settings or the metadata quorum failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A partition could not be opened or recovered.
    #[error("partition {topic}-{partition}: {source}")]
    Partition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The underlying error.
        source: StorageError,
    },
}

/// A running broker.
pub struct Broker {
    ctx: Arc<BrokerContext>,
    pool: ShardPool,
    addrs: Vec<SocketAddr>,
    kinesis_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    console_addr: Option<SocketAddr>,
    metrics_stop: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    drain: Drain,
}

impl Broker {
    /// Starts a broker: recovers the data directory, starts the shards and binds the listeners.
    pub async fn start(config: Config) -> Result<Broker, BrokerError> {
        let dir = config.log_dir.clone();
        let data_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| BrokerError::DataDir { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(data_err(&dir))?;
        let cluster_id = load_meta_properties(&dir, config.node_id).map_err(data_err(&dir))?;
        *config.dynamic.write().unwrap_or_else(|e| e.into_inner()) =
            crate::dynamic_config::DynamicConfigs::load(&dir);
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let topics = catalog::scan_log_dir(&dir).map_err(data_err(&dir))?;

        let shard_config = ShardConfig::from_config(&config);
        let pool = ShardPool::start(config.num_shards, move |id, me| {
            ShardState::new(id, me, shard_config.clone())
        })?;
        let shards = pool.handles();

        // Open (and, after a crash, recover) every partition on its shard, shards in parallel.
        let started = std::time::Instant::now();
        let catalog = Arc::new(Catalog::default());
        let clustered = config.cluster.enabled();
        let mut pending = Vec::new();
        let mut local = Vec::new();
        for t in &topics {
            let log_config = crate::topic_config::log_config(&config, &t.configs);
            for p in 0..t.partitions {
                let topic = t.name.clone();
                let missing =
                    catalog::read_partition_metadata(&ShardState::partition_dir(&dir, &t.name, p))
                        .is_none();
                // A cluster node holds only some partitions of a topic: open what is here.
                if clustered && missing {
                    continue;
                }
                local.push((t.name.to_string(), p));
                let id = missing.then_some(t.id);
                let shard = &shards[shard_for(&t.name, p, shards.len())];
                let log_config = log_config.clone();
                let rx = shard
                    .submit(move |s: &mut ShardState| {
                        s.open_partition_with(&topic, p, id, clean, log_config)
                    })
                    .await?;
                pending.push((t.name.clone(), p, rx));
            }
            catalog.insert(t.clone());
        }
        let partitions = pending.len();
        for (topic, partition, rx) in pending {
            let res = rx.await.map_err(|_| ShardError::Stopped(0))?;
            res.map_err(|source| BrokerError::Partition {
                topic: topic.to_string(),
                partition,
                source,
            })?;
        }
        tracing::info!(
            topics = topics.len(),
            partitions,
            clean_shutdown = clean,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "logs loaded"
        );
        if clean {
            std::fs::remove_file(&marker).map_err(data_err(&marker))?;
            sync_dir(&dir).map_err(data_err(&dir))?;
        }

        // Listeners: bind every address each listener resolves to; the controller listener
        // serves the metadata quorum, not Kafka clients.
        let mut listeners = Vec::new();
        let mut controller_listener = None;
        for l in &config.listeners {
            let addrs = crate::config::resolve(l).map_err(|source| BrokerError::Bind {
                addr: format!("{}:{}", l.host, l.port),
                source,
            })?;
            let mut port = l.port;
            for addr in addrs {
                let addr = SocketAddr::new(addr.ip(), port);
                let sock =
                    std::net::TcpListener::bind(addr).map_err(|source| BrokerError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?;
                sock.set_nonblocking(true)
                    .map_err(|source| BrokerError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?;
                let bound = sock.local_addr().map_err(|source| BrokerError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
                // A name bound on several addresses shares the port picked for the first.
                port = bound.port();
                if clustered && l.name == config.cluster.controller_listener {
                    controller_listener.get_or_insert(sock);
                    continue;
                }
                listeners.push((l.name.clone(), sock));
            }
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|(_, l)| l.local_addr().ok())
            .collect();
        let kinesis_listener = bind_kinesis(&config)?;
        let kinesis_addr = kinesis_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_listener =
            crate::metrics::server::bind(&config.metrics).map_err(|source| BrokerError::Bind {
                addr: config.metrics.listener.clone().unwrap_or_default(),
                source,
            })?;
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let console_listener =
            crate::console::server::bind(&config.console).map_err(|source| BrokerError::Bind {
                addr: config.console.listener.clone().unwrap_or_default(),
                source,
            })?;
        let console_addr = console_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics.clone()));
        for (id, shard) in shards.iter().enumerate() {
            let timer = metrics.flush_timer(id);
            // A shard that is gone fails the start-up soon enough elsewhere.
            let _ = shard
                .call(move |s: &mut ShardState| s.set_flush_timer(timer))
                .await;
        }
        let advertised = match config.advertised_listeners.first() {
            Some(a) => (a.host.clone(), i32::from(a.port)),
            None => {
                let first = config
                    .listeners
                    .first()
                    .map(|l| l.host.clone())
                    .unwrap_or_default();
                let host = if first.is_empty() || first == "0.0.0.0" || first == "::" {
                    "127.0.0.1".to_string()
                } else {
                    first
                };
                (
                    host,
                    addrs.first().map(|a| i32::from(a.port())).unwrap_or(9092),
                )
            }
        };
        let producer_ids = crate::producer_ids::ProducerIds::open(&dir).map_err(data_err(&dir))?;
        let quotas = crate::quota::Quotas::open(&dir).map_err(data_err(&dir))?;
        let telemetry = crate::telemetry::ClientTelemetry::open(&dir, config.telemetry.clone())
            .map_err(data_err(&dir))?;
        // An existing __consumer_offsets keeps its partition count (it decides where groups live).
        let coordinator = crate::coordinator::Coordinator::start(
            &shards,
            catalog.clone(),
            crate::coordinator::GroupConfig::from(&config),
            catalog
                .get(crate::coordinator::OFFSETS_TOPIC)
                .map_or(config.offsets_topic_num_partitions, |t| t.partitions),
            !clustered,
        );
        // An existing __transaction_state keeps its partition count too.
        let transactions = crate::txn::TxnCoordinator::new(
            config.transactions.clone(),
            catalog
                .get(crate::txn::TXN_TOPIC)
                .map_or(config.transactions.num_partitions, |t| t.partitions),
        );
        let security = crate::auth::Security::open(&dir, config.security.clone())
            .map_err(|e| data_err(&dir)(std::io::Error::other(e.to_string())))?;
        // What each listener advertises: its advertised.listeners entry (by name), else the
        // address it is bound to (the broker-wide default host for wildcard binds).
        let mut infos = Vec::new();
        for (name, sock) in &listeners {
            let bound = sock.local_addr().ok();
            let adv = match config.advertised_listeners.iter().find(|a| a.name == *name) {
                Some(a) => (a.host.clone(), i32::from(a.port)),
                None if config.advertised_listeners.is_empty() => {
                    let host = config
                        .listeners
                        .iter()
                        .find(|l| l.name == *name)
                        .map(|l| l.host.clone())
                        .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::")
                        .unwrap_or_else(|| advertised.0.clone());
                    (host, bound.map_or(advertised.1, |b| i32::from(b.port())))
                }
                None => advertised.clone(),
            };
            let protocol = config
                .security
                .protocol_of(name)
                .unwrap_or(crate::auth::SecurityProtocol::Plaintext);
            infos.push(Arc::new(crate::auth::ListenerInfo {
                name: name.clone(),
                protocol,
                advertised: adv,
            }));
        }
        // TLS acceptors, one per TLS listener name (shared by its addresses), and Kinesis HTTPS.
        let mut tls_by_name: BTreeMap<String, Arc<crate::tls::TlsServer>> = BTreeMap::new();
        let mut tls = Vec::with_capacity(infos.len());
        for info in &infos {
            if !info.protocol.tls() {
                tls.push(None);
                continue;
            }
            if !tls_by_name.contains_key(&info.name) {
                let settings = config
                    .security
                    .tls
                    .for_listener(&info.name, info.protocol)
                    .map_err(setting_error)?;
                let server = Arc::new(crate::tls::TlsServer::load(settings)?);
                tls_by_name.insert(info.name.clone(), server);
            }
            tls.push(tls_by_name.get(&info.name).cloned());
        }
        let kinesis_tls = match (&kinesis_listener, config.security.tls.kinesis_enabled) {
            (Some(_), true) => {
                let settings = config.security.tls.for_kinesis().map_err(setting_error)?;
                Some(Arc::new(crate::tls::TlsServer::load(settings)?))
            }
            _ => None,
        };
        if config.console.listener.is_none() && config.console.tls {
            tracing::warn!("console.ssl.enabled has no effect without console.listener (the metrics listener is plain HTTP)");
        }
        let console_tls = match (&console_listener, config.console.tls) {
            (Some(_), true) => {
                let settings = config
                    .security
                    .tls
                    .for_console(&config.console.client_auth)
                    .map_err(setting_error)?;
                Some(Arc::new(crate::tls::TlsServer::load(settings)?))
            }
            _ => None,
        };
        let reloadable: Vec<_> = tls_by_name
            .values()
            .chain(kinesis_tls.as_ref())
            .chain(console_tls.as_ref())
            .cloned()
            .collect();
        let cluster = match controller_listener {
            Some(sock) => {
                let endpoints = infos
                    .iter()
                    .map(|i| crate::metadata::Endpoint {
                        name: i.name.clone(),
                        host: i.advertised.0.clone(),
                        port: i.advertised.1 as u16,
                    })
                    .collect();
                let meta_dir = config
                    .cluster
                    .metadata_log_dir
                    .clone()
                    .unwrap_or_else(|| dir.join(METADATA_DIR));
                let controller = crate::controller::Controller::start(
                    config.cluster.clone(),
                    meta_dir,
                    sock,
                    endpoints,
                )
                .map_err(|e| BrokerError::Cluster(e.to_string()))?;
                Some(controller)
            }
            None if clustered => {
                return Err(BrokerError::Cluster(format!(
                    "no listener named {} to serve the metadata quorum",
                    config.cluster.controller_listener
                )))
            }
            None => None,
        };
        let (synced_tx, synced) = watch::channel(0u64);
        let net_limits = crate::net::limits::NetLimits::new(config.net.clone())
            .with_inter_broker_listener(
                &config.cluster.inter_broker_listener,
                listeners.iter().map(|(name, _)| name.as_str()),
            );
        let ctx = Arc::new(BrokerContext {
            net: net_limits,
            config,
            catalog,
            shards: shards.clone(),
            cluster_id,
            advertised,
            producer_ids,
            quotas,
            telemetry,
            coordinator,
            transactions,
            security,
            metrics,
            cluster: cluster.clone(),
            synced,
            cluster_producer_ids: tokio::sync::Mutex::new((0, 0)),
            replication_throttles: Default::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        match &cluster {
            // Groups and offsets are replayed before any connection is accepted.
            None => {
                crate::coordinator::start_up(&ctx).await?;
                crate::txn::start_up(&ctx).await?;
            }
            Some(controller) => {
                // Registering commits an entry, so afterwards this node's image holds at least
                // everything committed before it started; one pass then brings the local
                // catalog and logs in line before any client is served.
                tracing::info!(
                    node = ctx.config.node_id,
                    voters = ?ctx.config.cluster.voters,
                    "joining the metadata quorum"
                );
                // Waits as long as the quorum takes to form (the other nodes may start much
                // later); a year stands for "until stopped" without overflowing an Instant.
                controller
                    .register(std::time::Duration::from_secs(365 * 24 * 3600))
                    .await
                    .map_err(|e| BrokerError::Cluster(e.to_string()))?;
                let replication = crate::replication::Replication::new(
                    ctx.clone(),
                    controller.clone(),
                    stop_rx.clone(),
                );
                let mut replicas = crate::replicas::Replicas::new(local, replication);
                replicas
                    .reconcile(&ctx, controller, &controller.image(), &synced_tx)
                    .await;
                crate::txn::spawn_timers(&ctx);
                shards[0].spawn(crate::replicas::run(
                    ctx.clone(),
                    controller.clone(),
                    replicas,
                    synced_tx,
                    stop_rx.clone(),
                ));
                shards[0].spawn(controller.clone().run(stop_rx.clone()));
                shards[0].spawn(crate::replication::run_isr_changes(
                    ctx.clone(),
                    controller.clone(),
                    stop_rx.clone(),
                ));
            }
        }
        shards[0].spawn(token_expiry_loop(ctx.clone(), stop_rx.clone()));
        let drain = Drain::default();
        let reload_metrics = ctx.metrics.clone();
        shards[0].spawn(crate::tls::reload_loop(
            reloadable,
            ctx.config.security.tls.reload_interval,
            stop_rx.clone(),
            move |listener, ok| reload_metrics.tls_reload(listener, ok),
        ));
        for (((_, sock), info), tls) in listeners.into_iter().zip(infos).zip(tls) {
            let ctx = ctx.clone();
            let stop_rx = stop_rx.clone();
            let drain = drain.clone();
            shards[0].spawn(async move {
                match tokio::net::TcpListener::from_std(sock) {
                    Ok(l) => net::accept_loop(l, info, tls, ctx, stop_rx, drain).await,
                    Err(e) => tracing::error!(error = %e, "cannot register listener"),
                }
            });
        }
        if let Some(sock) = kinesis_listener {
            let kinesis =
                crate::kinesis::Kinesis::open(ctx.clone(), stop_rx.clone()).map_err(|source| {
                    BrokerError::DataDir {
                        path: crate::kinesis::store::StreamStore::dir_of(&ctx.config.log_dir)
                            .display()
                            .to_string(),
                        source,
                    }
                })?;
            let kinesis = Arc::new(kinesis);
            let stop_rx = stop_rx.clone();
            let drain = drain.clone();
            shards[0].spawn(async move {
                match tokio::net::TcpListener::from_std(sock) {
                    Ok(l) => {
                        crate::kinesis::accept_loop(l, kinesis, kinesis_tls, stop_rx, drain).await
                    }
                    Err(e) => tracing::error!(error = %e, "cannot register kinesis listener"),
                }
            });
            tracing::info!(addr = ?kinesis_addr, "kinesis endpoint listening");
        }
        let (metrics_stop, metrics_stop_rx) = watch::channel(false);
        let console = ctx
            .config
            .console
            .enabled()
            .then(|| crate::console::Console::new(ctx.clone()));
        if let Some(console) = &console {
            shards[0].spawn(console.clone().sample_loop(metrics_stop_rx.clone()));
        }
        if let (Some(sock), Some(console)) = (console_listener, &console) {
            let console = console.clone();
            let stop_rx = metrics_stop_rx.clone();
            shards[0].spawn(async move {
                match tokio::net::TcpListener::from_std(sock) {
                    Ok(l) => {
                        crate::console::server::accept_loop(l, console, console_tls, stop_rx).await
                    }
                    Err(e) => tracing::error!(error = %e, "cannot register console listener"),
                }
            });
            tracing::info!(addr = ?console_addr, "console listening under /ui");
        }
        if let Some(sock) = metrics_listener {
            let ctx = ctx.clone();
            let console = console.filter(|_| ctx.config.console.on_metrics);
            if console.is_some() {
                tracing::info!(addr = ?metrics_addr, "console served under /ui on the metrics listener");
            }
            shards[0].spawn(async move {
                match tokio::net::TcpListener::from_std(sock) {
                    Ok(l) => {
                        crate::metrics::server::accept_loop(l, ctx, console, metrics_stop_rx).await
                    }
                    Err(e) => tracing::error!(error = %e, "cannot register metrics listener"),
                }
            });
            tracing::info!(addr = ?metrics_addr, "metrics endpoint listening");
        }
        ctx.metrics.set_ready(true);
        tracing::info!(addrs = ?addrs, shards = shards.len(), "esker broker started");
        Ok(Broker {
            ctx,
            pool,
            addrs,
            kinesis_addr,
            metrics_addr,
            console_addr,
            metrics_stop,
            stop,
            drain,
        })
    }

    /// The addresses the Kafka listeners are bound to.
    pub fn kafka_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The address the Kinesis endpoint is bound to (`None` when disabled or not bound).
    pub fn kinesis_addr(&self) -> Option<SocketAddr> {
        self.kinesis_addr
    }

    /// The address the metrics endpoint is bound to (`None` when disabled or not bound).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address `console.listener` is bound to (`None` when unset).
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console_addr
    }

    /// `host:port` of the first Kafka listener, for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addrs
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// The shared context (for embedding and tests).
    pub fn context(&self) -> &Arc<BrokerContext> {
        &self.ctx
    }

    /// Graceful shutdown: stop accepting, let connections finish what they have read, close
    /// every log (flush, fsync) and write the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        tracing::info!("shutting down");
        self.ctx.metrics.set_ready(false);
        if let Some(controller) = &self.ctx.cluster {
            // Controlled shutdown: leadership moves to other in-sync replicas now rather than
            // after the session timeout.
            controller.controlled_shutdown().await;
        }
        let _ = self.stop.send(true);
        // Parked JoinGroup/SyncGroup requests are answered now rather than holding the drain.
        self.ctx.coordinator.shutdown().await;
        let timeout = self.ctx.config.shutdown_timeout;
        if tokio::time::timeout(timeout, self.drain.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.drain.count(),
                "connections still busy after shutdown.timeout.ms; closing them"
            );
        }
        let dir = self.ctx.config.log_dir.clone();
        if let Some(controller) = &self.ctx.cluster {
            controller.shutdown().await;
        }
        // The metrics endpoint answered `/readyz` 503 during the drain; it closes now.
        let _ = self.metrics_stop.send(true);
        drop(self.ctx);
        let errors = self.pool.stop().await;
        if errors.is_empty() {
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            let write = std::fs::File::create(&marker)
                .and_then(|f| f.sync_all())
                .and_then(|_| sync_dir(&dir));
            write.map_err(|source| BrokerError::DataDir {
                path: marker.display().to_string(),
                source,
            })?;
            tracing::info!("clean shutdown complete");
        } else {
            tracing::error!(
                errors = errors.len(),
                "logs not closed cleanly; recovery will run on next start"
            );
        }
        Ok(())
    }
}

/// Binds `kinesis.listener` (the first address it resolves to). A listener left at its default
/// is best effort: if its port is taken the broker runs without it, with a warning.
fn bind_kinesis(config: &Config) -> Result<Option<std::net::TcpListener>, BrokerError> {
    let Some(addr) = config.kinesis.listener.as_deref() else {
        return Ok(None);
    };
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let first = crate::kinesis::resolve_listener(addr)?
            .into_iter()
            .next()
            .ok_or_else(|| std::io::Error::other("resolves to no address"))?;
        let sock = std::net::TcpListener::bind(first)?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    };
    match bind() {
        Ok(sock) => Ok(Some(sock)),
        Err(source) if config.kinesis.listener_explicit => Err(BrokerError::Bind {
            addr: addr.to_string(),
            source,
        }),
        Err(e) => {
            tracing::warn!(addr, error = %e, "cannot bind the default kinesis.listener; the Kinesis API is disabled");
            Ok(None)
        }
    }
}

/// A TLS setting that does not hold (configs built in code skip `Config::load`'s checks).
fn setting_error(e: crate::tls::SettingError) -> crate::tls::TlsError {
    crate::tls::TlsError::Invalid {
        key: e.key,
        path: e.value,
        reason: e.reason,
    }
}

/// Reads `meta.properties` (creating it on first start) and returns the cluster id.
fn load_meta_properties(dir: &Path, node_id: i32) -> std::io::Result<String> {
    let path = dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("cluster.id="))
            .map(|s| s.trim().to_string())
        {
            return Ok(id);
        }
    }
    let id = catalog::uuid_to_base64(Uuid::new_v4());
    let tmp = dir.join("meta.properties.tmp");
    std::fs::write(
        &tmp,
        format!("#Written by esker\nversion=1\nnode.id={node_id}\ncluster.id={id}\n"),
    )?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(id)
}

/// Removes expired delegation tokens every `delegation.token.expiry.check.interval.ms` until
/// the broker stops.
async fn token_expiry_loop(ctx: Arc<BrokerContext>, mut stop: watch::Receiver<bool>) {
    let every = std::time::Duration::from_millis(
        ctx.config.security.tokens.check_interval_ms.max(1) as u64,
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        ctx.remove_expired_tokens().await;
    }
}
