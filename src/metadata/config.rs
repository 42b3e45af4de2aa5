//! The KRaft keys, parsed and checked against each other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Listener;

/// `process.roles`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// Serves Kafka clients.
    pub broker: bool,
    /// Is a member of the metadata quorum.
    pub controller: bool,
}

/// The cluster settings. With `process.roles` empty the broker runs alone, as before.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// `process.roles`; both false for the single-node broker.
    pub roles: Roles,
    /// `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`: node id → `host:port`.
    pub voters: BTreeMap<i32, String>,
    /// `controller.quorum.bootstrap.servers`.
    pub bootstrap_servers: Vec<String>,
    /// The controller listener's name (first of `controller.listener.names`).
    pub controller_listener: String,
    /// `inter.broker.listener.name`, resolved to a listener name.
    pub inter_broker_listener: String,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `offsets.topic.replication.factor`.
    pub offsets_replication_factor: i16,
    /// `metadata.log.dir` (empty: under `log.dirs`).
    pub metadata_log_dir: Option<PathBuf>,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout: Duration,
    /// `metadata.snapshot.interval.entries`.
    pub snapshot_every: u64,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff: Duration,
    /// `replica.socket.timeout.ms`.
    pub replica_socket_timeout: Duration,
    /// `replica.fsync.enable`.
    pub replica_fsync: bool,
    /// `unclean.leader.election.enable` (the broker default; topics may override it).
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_percentage: i64,
    /// `replica.selector.class` set: consumers are sent to replicas in their rack.
    pub rack_aware_selector: bool,
}

impl ClusterConfig {
    /// Whether this node is part of a cluster (any role set).
    pub fn enabled(&self) -> bool {
        self.roles.broker || self.roles.controller
    }

    /// Builds the settings from the key table; the error names the key at fault.
    pub fn from_values(
        get: &dyn Fn(&str) -> String,
        listeners: &[Listener],
        node_id: i64,
    ) -> Result<ClusterConfig, (&'static str, String)> {
        let mut roles = Roles::default();
        for r in get("process.roles")
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            match r {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => {
                    return Err((
                        "process.roles",
                        format!("unknown role `{other}`: expected broker and/or controller"),
                    ))
                }
            }
        }
        if roles.broker != roles.controller {
            return Err((
                "process.roles",
                "dedicated broker or controller nodes are not supported yet; run every cluster \
                 node as broker,controller"
                    .into(),
            ));
        }
        let voters = parse_voters(&get("controller.quorum.voters"))
            .map_err(|r| ("controller.quorum.voters", r))?;
        let bootstrap_servers: Vec<String> = get("controller.quorum.bootstrap.servers")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let controller_listener = get("controller.listener.names")
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "CONTROLLER".into());
        let int = |k: &str| get(k).trim().parse::<i64>().unwrap_or(0);
        let flag = |k: &str| get(k).trim().eq_ignore_ascii_case("true");
        let enabled = roles.broker || roles.controller;
        if !enabled && (!voters.is_empty() || !bootstrap_servers.is_empty()) {
            return Err((
                "process.roles",
                "controller.quorum.voters is set but process.roles is empty: set \
                 process.roles=broker,controller for a cluster node"
                    .into(),
            ));
        }
        if enabled {
            if voters.is_empty() && bootstrap_servers.is_empty() {
                return Err((
                    "controller.quorum.voters",
                    "a cluster node needs controller.quorum.voters (or \
                     controller.quorum.bootstrap.servers)"
                        .into(),
                ));
            }
            if !listeners.iter().any(|l| l.name == controller_listener) {
                return Err((
                    "controller.listener.names",
                    format!("no listener named `{controller_listener}` in listeners"),
                ));
            }
        }
        let inter = get("inter.broker.listener.name")
            .trim()
            .to_ascii_uppercase();
        let inter_broker_listener = if inter.is_empty() {
            listeners
                .iter()
                .find(|l| l.name != controller_listener)
                .map(|l| l.name.clone())
                .unwrap_or_default()
        } else if enabled && !listeners.iter().any(|l| l.name == inter) {
            return Err((
                "inter.broker.listener.name",
                format!("no listener named `{inter}` in listeners"),
            ));
        } else {
            inter
        };
        if enabled && roles.broker && inter_broker_listener.is_empty() {
            return Err((
                "listeners",
                "a broker needs a listener besides the controller listener".into(),
            ));
        }
        let rack = get("broker.rack").trim().to_string();
        let dir = get("metadata.log.dir").trim().to_string();
        Ok(ClusterConfig {
            roles,
            node_id: node_id as i32,
            voters,
            bootstrap_servers,
            controller_listener,
            inter_broker_listener,
            rack: (!rack.is_empty()).then_some(rack),
            default_replication_factor: int("default.replication.factor") as i16,
            offsets_replication_factor: int("offsets.topic.replication.factor") as i16,
            metadata_log_dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
            election_timeout: Duration::from_millis(
                int("controller.quorum.election.timeout.ms") as u64
            ),
            snapshot_every: int("metadata.snapshot.interval.entries") as u64,
            heartbeat_interval: Duration::from_millis(int("broker.heartbeat.interval.ms") as u64),
            session_timeout: Duration::from_millis(int("broker.session.timeout.ms") as u64),
            replica_lag_time_max: Duration::from_millis(int("replica.lag.time.max.ms") as u64),
            replica_fetch_max_bytes: int("replica.fetch.max.bytes") as i32,
            replica_fetch_response_max_bytes: int("replica.fetch.response.max.bytes") as i32,
            replica_fetch_wait_max: Duration::from_millis(int("replica.fetch.wait.max.ms") as u64),
            replica_fetch_backoff: Duration::from_millis(int("replica.fetch.backoff.ms") as u64),
            replica_socket_timeout: Duration::from_millis(int("replica.socket.timeout.ms") as u64),
            replica_fsync: flag("replica.fsync.enable"),
            unclean_leader_election: flag("unclean.leader.election.enable"),
            auto_leader_rebalance: flag("auto.leader.rebalance.enable"),
            leader_imbalance_check_interval: Duration::from_secs(int(
                "leader.imbalance.check.interval.seconds",
            ) as u64),
            leader_imbalance_percentage: int("leader.imbalance.per.broker.percentage"),
            rack_aware_selector: !get("replica.selector.class").trim().is_empty(),
        })
    }
}

/// Parses `id@host:port,...`.
pub fn parse_voters(s: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut voters = BTreeMap::new();
    for v in s.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, addr) = v
            .split_once('@')
            .ok_or_else(|| format!("`{v}` is not id@host:port"))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("`{id}` is not a node id"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("`{addr}` has no port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("`{addr}` is not host:port"));
        }
        if voters.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("node id {id} is listed twice"));
        }
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_refuse() {
        let v = parse_voters("1@127.0.0.1:19091, 2@localhost:19092").expect("valid");
        assert_eq!(v.len(), 2);
        assert_eq!(v[&2], "localhost:19092");
        assert!(parse_voters("1@x:1,1@y:2").is_err());
        assert!(parse_voters("a@x:1").is_err());
        assert!(parse_voters("1@x").is_err());
        assert!(parse_voters("1x:1").is_err());
    }

    #[test]
    fn single_node_by_default_and_cluster_checks() {
        let c = crate::Config::default();
        assert!(!c.cluster.enabled());
        let err = crate::Config::load("controller.quorum.voters=1@127.0.0.1:9093\n", &[])
            .expect_err("roles missing");
        assert!(err.to_string().contains("process.roles"), "{err}");
        let err = crate::Config::load(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\n",
            &[],
        )
        .expect_err("no controller listener");
        assert!(
            err.to_string().contains("controller.listener.names"),
            "{err}"
        );
        let ok = crate::Config::load(
            "process.roles=broker,controller\nnode.id=1\n\
             listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
             controller.quorum.voters=1@127.0.0.1:9093\nbroker.rack=r1\n",
            &[],
        )
        .expect("valid cluster config");
        assert!(ok.cluster.enabled());
        assert_eq!(ok.cluster.inter_broker_listener, "PLAINTEXT");
        assert_eq!(ok.cluster.rack.as_deref(), Some("r1"));
        for only in ["broker", "controller"] {
            let err = crate::Config::load(&format!("process.roles={only}\n"), &[])
                .expect_err("a single role");
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }
}
