//! A small async Kafka admin client for the `esker` CLI: bootstrap and Metadata, ApiVersions
//! negotiation per connection (the highest version both sides support, so it also talks to
//! Apache Kafka), routing to the controller, a group's coordinator or a partition's leader,
//! SASL PLAIN and SCRAM-SHA-256/512, and TLS with rustls (CA file, client certificate).
//!
//! Why not a client crate: `rdkafka` wraps librdkafka (C, with its own OpenSSL/SASL builds),
//! which would put C client code into the broker binary; it stays a dev-dependency for the
//! tests. The pure-Rust Kafka client crates cover produce/consume but not the admin APIs this
//! CLI needs (ACLs, SCRAM users, IncrementalAlterConfigs, group offsets). The broker already
//! depends on `kafka-protocol` for every message type, so the client is those same types plus
//! a socket, a version pick and SASL.
//!
//! Runs on the caller's tokio runtime (the CLI uses a current-thread one); every request has
//! the `request.timeout.ms` deadline.

mod conn;
pub mod error;
pub mod scram;
pub mod settings;

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

pub use conn::Connection;
pub use error::{check, error_name, ClientError};
pub use settings::ClientSettings;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any broker (the bootstrap connection).
    Any,
    /// The broker with this node id.
    Node(i32),
    /// The active controller as Metadata names it.
    Controller,
}

/// A connected admin client.
pub struct Client {
    settings: ClientSettings,
    /// Open connections by `host:port`.
    conns: HashMap<String, Connection>,
    bootstrap_addr: String,
    /// Broker node ids and their `host:port`, from the last Metadata answer.
    pub brokers: BTreeMap<i32, String>,
    /// Racks of the brokers that have one.
    pub racks: BTreeMap<i32, String>,
    /// The controller id from the last Metadata answer (-1 when unknown).
    pub controller_id: i32,
    /// The cluster id from the last Metadata answer.
    pub cluster_id: Option<String>,
}

impl Client {
    /// Connects to the first reachable bootstrap broker and reads the cluster's brokers.
    pub async fn connect(settings: ClientSettings) -> Result<Client, ClientError> {
        let mut last = None;
        for addr in &settings.bootstrap {
            match Connection::open(addr, &settings).await {
                Ok(conn) => {
                    let mut client = Client {
                        conns: HashMap::from([(addr.clone(), conn)]),
                        bootstrap_addr: addr.clone(),
                        settings,
                        brokers: BTreeMap::new(),
                        racks: BTreeMap::new(),
                        controller_id: -1,
                        cluster_id: None,
                    };
                    client.metadata(Some(&[])).await?;
                    return Ok(client);
                }
                // Authentication and TLS failures are the same on every broker: stop there.
                Err(
                    e @ (ClientError::Auth(_) | ClientError::Tls(_) | ClientError::Settings(_)),
                ) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Settings("no bootstrap servers".into())))
    }

    /// The settings this client connected with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: none, brokers only); updates
    /// the broker table.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        let topics = topics.map(|t| {
            t.iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                })
                .collect::<Vec<_>>()
        });
        let resp = self
            .send_capped(Target::Any, 12, |_| {
                MetadataRequest::default()
                    .with_topics(topics)
                    .with_allow_auto_topic_creation(false)
            })
            .await?;
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.racks = resp
            .brokers
            .iter()
            .filter_map(|b| b.rack.as_ref().map(|r| (b.node_id.0, r.to_string())))
            .collect();
        self.controller_id = resp.controller_id.0;
        self.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        Ok(resp)
    }

    /// The connection for `target`, opened on first use.
    pub async fn connection(&mut self, target: Target) -> Result<&mut Connection, ClientError> {
        let addr = match target {
            Target::Any => self.bootstrap_addr.clone(),
            Target::Node(id) => self.node_addr(id)?,
            Target::Controller => {
                if self.controller_id < 0 {
                    self.bootstrap_addr.clone()
                } else {
                    self.node_addr(self.controller_id)?
                }
            }
        };
        if !self.conns.contains_key(&addr) {
            let conn = Connection::open(&addr, &self.settings).await?;
            self.conns.insert(addr.clone(), conn);
        }
        self.conns
            .get_mut(&addr)
            .ok_or_else(|| ClientError::Connection(format!("no connection to {addr}")))
    }

    fn node_addr(&self, id: i32) -> Result<String, ClientError> {
        self.brokers.get(&id).cloned().ok_or_else(|| {
            ClientError::Connection(format!("broker {id} is not in the cluster's metadata"))
        })
    }

    /// Sends the request `build(version)` to `target` at the highest common version.
    pub async fn send<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        self.send_capped(target, i16::MAX, build).await
    }

    /// As [`Client::send`], with the version at most `cap`.
    pub async fn send_capped<R: Request>(
        &mut self,
        target: Target,
        cap: i16,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        let conn = self.connection(target).await?;
        let v = conn.version_capped::<R>(cap)?;
        let req = build(v);
        conn.call(&req, v).await
    }

    /// The node id of `group`'s coordinator (FindCoordinator).
    pub async fn coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        let key = StrBytes::from_string(group.to_string());
        let resp = self
            .send(Target::Any, |v| {
                let r = FindCoordinatorRequest::default().with_key_type(0);
                if v >= 4 {
                    r.with_coordinator_keys(vec![key])
                } else {
                    r.with_key(key)
                }
            })
            .await?;
        let (node, code, msg) = match resp.coordinators.first() {
            Some(c) => (c.node_id, c.error_code, c.error_message.clone()),
            None => (resp.node_id, resp.error_code, resp.error_message.clone()),
        };
        check(code, msg.as_deref(), || {
            format!("cannot find the coordinator of group '{group}'")
        })?;
        if !self.brokers.contains_key(&node.0) {
            self.metadata(Some(&[])).await?;
        }
        Ok(node.0)
    }
}

/// A broker id newtype from a plain id.
pub fn broker(id: i32) -> BrokerId {
    BrokerId(id)
}
