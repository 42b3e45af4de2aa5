//! Multi-node tests of the quorum on loopback: elections, forwarding, failover, restarts,
//! snapshots, torn logs, membership changes and malformed frames. Each node runs its own
//! "esker-raft" thread; the tests drive them from their own tokio runtime and wait for
//! conditions with deadlines, never for fixed delays.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::store::Store;
use super::{LeaderHandler, Quorum, QuorumConfig, StateMachine};

/// Upper bound of every test.
const TEST_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound of one awaited condition.
const WAIT: Duration = Duration::from_secs(20);

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Runs a test body under [`TEST_DEADLINE`].
async fn bounded(body: impl Future<Output = ()>) {
    init_tracing();
    if tokio::time::timeout(TEST_DEADLINE, body).await.is_err() {
        panic!("test did not finish within {TEST_DEADLINE:?}");
    }
}

/// Polls `condition` until it holds, failing after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The toy state machine: an append-only list of strings; the reply is the new length.
struct Strings {
    items: Arc<Mutex<Vec<String>>>,
}

impl StateMachine for Strings {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let mut items = self.items.lock().unwrap();
        items.push(String::from_utf8_lossy(command).into_owned());
        items.len().to_string().into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.items.lock().unwrap()).unwrap()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let items: Vec<String> = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        *self.items.lock().unwrap() = items;
        Ok(())
    }
}

/// A leader handler answering `"<node id>:<request>"`.
fn echo_handler(id: u64) -> LeaderHandler {
    Arc::new(move |request: Vec<u8>| {
        Box::pin(async move {
            let mut reply = format!("{id}:").into_bytes();
            reply.extend_from_slice(&request);
            reply
        })
    })
}

struct TestNode {
    addr: String,
    dir: PathBuf,
    voters: BTreeMap<u64, String>,
    items: Arc<Mutex<Vec<String>>>,
    quorum: Option<Quorum>,
}

struct Cluster {
    _tmp: tempfile::TempDir,
    nodes: BTreeMap<u64, TestNode>,
    tune: fn(&mut QuorumConfig),
}

fn no_tuning(_: &mut QuorumConfig) {}

fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

impl Cluster {
    /// Starts voters `1..=n`.
    fn start(n: u64, tune: fn(&mut QuorumConfig)) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let listeners: BTreeMap<u64, TcpListener> = (1..=n).map(|id| (id, bind())).collect();
        let voters: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
            .collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            tune,
            _tmp: tmp,
        };
        for (id, listener) in listeners {
            cluster.add_node(id, listener, voters.clone());
        }
        cluster
    }

    /// Starts node `id` on `listener` with the given initial voters.
    fn add_node(&mut self, id: u64, listener: TcpListener, voters: BTreeMap<u64, String>) {
        let node = TestNode {
            addr: listener.local_addr().unwrap().to_string(),
            dir: self._tmp.path().join(format!("node-{id}")),
            voters,
            items: Arc::new(Mutex::new(Vec::new())),
            quorum: None,
        };
        self.nodes.insert(id, node);
        self.launch(id, listener);
    }

    fn launch(&mut self, id: u64, listener: TcpListener) {
        let tune = self.tune;
        let node = self.nodes.get_mut(&id).unwrap();
        let mut config = QuorumConfig::new(id, node.voters.clone(), node.dir.clone());
        tune(&mut config);
        // A restarted node starts from its files only.
        node.items = Arc::new(Mutex::new(Vec::new()));
        let machine = Box::new(Strings {
            items: Arc::clone(&node.items),
        });
        node.quorum = Some(Quorum::start(config, listener, machine, echo_handler(id)).unwrap());
    }

    /// Restarts a stopped node on its old address.
    fn restart(&mut self, id: u64) {
        let listener = TcpListener::bind(&self.nodes[&id].addr).unwrap();
        self.launch(id, listener);
    }

    async fn stop(&mut self, id: u64) {
        let quorum = self.nodes.get_mut(&id).unwrap().quorum.take().unwrap();
        quorum.shutdown().await.unwrap();
    }

    fn q(&self, id: u64) -> &Quorum {
        self.nodes[&id].quorum.as_ref().unwrap()
    }

    fn items(&self, id: u64) -> Vec<String> {
        self.nodes[&id].items.lock().unwrap().clone()
    }

    fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.quorum.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Waits until every running node agrees on one leader among them, which alone says it
    /// leads.
    async fn leader(&self) -> u64 {
        let running = self.running();
        let mut found = 0;
        eventually("one agreed leader", || {
            let statuses: Vec<_> = running.iter().map(|id| self.q(*id).status()).collect();
            let leaders: Vec<u64> = statuses
                .iter()
                .filter(|s| s.is_leader)
                .map(|s| s.node_id)
                .collect();
            match leaders.as_slice() {
                [leader] if statuses.iter().all(|s| s.leader_id == Some(*leader)) => {
                    found = *leader;
                    true
                }
                _ => false,
            }
        })
        .await;
        found
    }

    /// Waits until every running node's state machine holds `expected`.
    async fn converged(&self, expected: &[String]) {
        for id in self.running() {
            eventually(&format!("node {id} holds {} items", expected.len()), || {
                self.items(id) == expected
            })
            .await;
        }
    }

    async fn shutdown_all(&mut self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn follower_of(cluster: &Cluster, leader: u64) -> u64 {
    cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap()
}

#[tokio::test]
async fn three_nodes_elect_one_leader_and_a_follower_write_is_forwarded() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let leader = cluster.leader().await;
        let follower = follower_of(&cluster, leader);

        let reply = cluster.q(follower).write(b"a".to_vec()).await.unwrap();
        assert_eq!(reply, b"1");
        // Applied on the writing follower before `write` returned.
        assert_eq!(cluster.items(follower), strings(&["a"]));
        let reply = cluster.q(leader).write(b"b".to_vec()).await.unwrap();
        assert_eq!(reply, b"2");
        cluster.converged(&strings(&["a", "b"])).await;

        let status = cluster.q(follower).status();
        assert_eq!(status.leader_id, Some(leader));
        assert!(!status.is_leader);
        assert_eq!(status.voters.len(), 3);
        assert!(status.last_applied.is_some());
        assert!(status.committed >= status.last_applied);
        assert_eq!(*cluster.q(follower).leader_watch().borrow(), Some(leader));
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn leader_shutdown_elects_a_new_leader_and_the_old_one_catches_up() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let old = cluster.leader().await;
        cluster.q(old).write(b"a".to_vec()).await.unwrap();
        cluster
            .q(follower_of(&cluster, old))
            .write(b"b".to_vec())
            .await
            .unwrap();

        cluster.stop(old).await;
        let new = cluster.leader().await;
        assert_ne!(new, old);
        let survivor = follower_of(&cluster, new);
        assert_eq!(
            cluster.q(survivor).write(b"c".to_vec()).await.unwrap(),
            b"3"
        );

        cluster.restart(old);
        cluster.converged(&strings(&["a", "b", "c"])).await;
        cluster.q(old).write(b"d".to_vec()).await.unwrap();
        cluster.converged(&strings(&["a", "b", "c", "d"])).await;
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn a_full_restart_keeps_the_state() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let leader = cluster.leader().await;
        let mut expected = Vec::new();
        for i in 0..5 {
            let command = format!("x{i}");
            cluster
                .q(leader)
                .write(command.clone().into_bytes())
                .await
                .unwrap();
            expected.push(command);
        }
        cluster.converged(&expected).await;

        cluster.shutdown_all().await;
        for id in 1..=3 {
            cluster.restart(id);
        }
        cluster.converged(&expected).await;
        let leader = cluster.leader().await;
        let follower = follower_of(&cluster, leader);
        let reply = cluster.q(follower).write(b"after".to_vec()).await.unwrap();
        assert_eq!(reply, b"6");
        expected.push("after".to_string());
        cluster.converged(&expected).await;
        cluster.shutdown_all().await;
    })
    .await;
}

fn snapshot_often(config: &mut QuorumConfig) {
    config.snapshot_every = 5;
    config.logs_to_keep = 0;
}

#[tokio::test]
async fn a_follower_behind_the_purged_log_catches_up_by_snapshot() {
    bounded(async {
        let mut cluster = Cluster::start(3, snapshot_often);
        let leader = cluster.leader().await;
        let lagging = follower_of(&cluster, leader);
        cluster.stop(lagging).await;

        let mut expected = Vec::new();
        for i in 0..50 {
            let command = format!("c{i}");
            cluster
                .q(leader)
                .write(command.clone().into_bytes())
                .await
                .unwrap();
            expected.push(command);
        }
        cluster.converged(&expected).await;

        // The leader snapshots every 5 entries and purges everything the snapshot covers.
        let leader_dir = cluster.nodes[&leader].dir.clone();
        let last = cluster.q(leader).status().last_log_index.unwrap();
        eventually("the leader's log is purged", || {
            Store::inspect_log(&leader_dir)
                .is_ok_and(|log| log.purged.is_some_and(|p| p + 5 >= last))
        })
        .await;
        let log = Store::inspect_log(&leader_dir).unwrap();
        assert!(log.first.map_or(true, |first| first > 40), "{log:?}");
        assert!(log.file_len < 4096, "{log:?}");

        // The lagging node's entries are gone from every log: only a snapshot can bring it up.
        cluster.restart(lagging);
        cluster.converged(&expected).await;
        assert!(Store::snapshot_path(&cluster.nodes[&lagging].dir).exists());
        cluster.q(lagging).write(b"more".to_vec()).await.unwrap();
        expected.push("more".to_string());
        cluster.converged(&expected).await;
        cluster.shutdown_all().await;
    })
    .await;
}

/// Appends to `raft.log` in `dir` what a crash in the middle of an append leaves: the first
/// half of a frame (header and part of the payload) followed by junk.
fn tear_log_tail(dir: &std::path::Path) {
    let path = Store::log_path(dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let first_len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    let torn = bytes[..(8 + first_len) / 2].to_vec();
    bytes.extend_from_slice(&torn);
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    std::fs::write(&path, &bytes).unwrap();
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_the_node_catches_up() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let leader = cluster.leader().await;
        let mut expected = Vec::new();
        for i in 0..5 {
            let command = format!("t{i}");
            cluster
                .q(leader)
                .write(command.clone().into_bytes())
                .await
                .unwrap();
            expected.push(command);
        }
        cluster.converged(&expected).await;

        let victim = follower_of(&cluster, leader);
        cluster.stop(victim).await;
        let dir = cluster.nodes[&victim].dir.clone();
        let before = Store::inspect_log(&dir).unwrap();
        assert_eq!(before.valid_len, before.file_len);
        tear_log_tail(&dir);
        let torn = Store::inspect_log(&dir).unwrap();
        assert_eq!(torn.last, before.last);
        assert_eq!(torn.valid_len, before.valid_len);
        assert!(torn.file_len > torn.valid_len);

        // Start-up cuts the file back to its last whole frame (with a warning) and goes on.
        cluster.restart(victim);
        cluster.converged(&expected).await;
        cluster.q(victim).write(b"after".to_vec()).await.unwrap();
        expected.push("after".to_string());
        cluster.converged(&expected).await;
        let log = Store::inspect_log(&dir).unwrap();
        assert_eq!(log.valid_len, log.file_len);
        assert!(log.last > before.last);
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn a_log_that_lost_acknowledged_entries_refuses_to_start() {
    bounded(async {
        let mut cluster = Cluster::start(1, no_tuning);
        cluster.leader().await;
        for i in 0..3 {
            cluster
                .q(1)
                .write(format!("l{i}").into_bytes())
                .await
                .unwrap();
        }
        let committed = cluster.q(1).status().committed;
        cluster.stop(1).await;
        let dir = cluster.nodes[&1].dir.clone();
        let before = Store::inspect_log(&dir).unwrap();
        assert_eq!(before.last, committed);

        // Cut the last (committed, acknowledged) frame short.
        let path = Store::log_path(&dir);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();

        let node = &cluster.nodes[&1];
        let config = QuorumConfig::new(1, node.voters.clone(), node.dir.clone());
        let machine = Box::new(Strings {
            items: Arc::new(Mutex::new(Vec::new())),
        });
        let listener = TcpListener::bind(&node.addr).unwrap();
        match Quorum::start(config, listener, machine, echo_handler(1)) {
            Ok(_) => panic!("a store missing committed entries started"),
            Err(e) => assert!(
                e.to_string().contains("acknowledged entries were lost"),
                "{e}"
            ),
        }
    })
    .await;
}

#[tokio::test]
async fn call_leader_and_describe_from_a_follower_reach_the_leader() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let leader = cluster.leader().await;
        let follower = follower_of(&cluster, leader);

        let reply = cluster
            .q(follower)
            .call_leader(b"ping".to_vec())
            .await
            .unwrap();
        assert_eq!(reply, format!("{leader}:ping").into_bytes());
        let reply = cluster
            .q(leader)
            .call_leader(b"local".to_vec())
            .await
            .unwrap();
        assert_eq!(reply, format!("{leader}:local").into_bytes());

        for i in 0..3 {
            cluster
                .q(follower)
                .write(format!("d{i}").into_bytes())
                .await
                .unwrap();
        }
        let deadline = Instant::now() + WAIT;
        let description = loop {
            let description = cluster.q(follower).describe().await.unwrap();
            let settled = description.high_watermark.is_some()
                && description
                    .voters
                    .iter()
                    .all(|v| v.matched_index == description.high_watermark);
            if settled {
                break description;
            }
            assert!(
                Instant::now() < deadline,
                "replication did not settle: {description:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(description.leader_id, leader);
        assert_eq!(description.term, cluster.q(leader).status().term);
        assert_eq!(
            description
                .voters
                .iter()
                .map(|v| v.node_id)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(description.learners.is_empty());
        assert!(description
            .voters
            .iter()
            .all(|v| v.last_contact_ms.is_some()));
        assert!(description
            .voters
            .iter()
            .all(|v| v.addr == cluster.nodes[&v.node_id].addr));
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn a_fourth_node_is_added_as_voter_and_removed_again() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tuning);
        let leader = cluster.leader().await;
        cluster.q(leader).write(b"a".to_vec()).await.unwrap();

        // Not among the voters: it must not initialize a cluster of its own.
        let listener = bind();
        let addr = listener.local_addr().unwrap().to_string();
        cluster.add_node(4, listener, BTreeMap::new());
        let status = cluster.q(4).status();
        assert!(status.voters.is_empty() && !status.is_leader, "{status:?}");

        let follower = follower_of(&cluster, leader);
        cluster.q(follower).add_voter(4, addr).await.unwrap();
        eventually("node 4 is a voter everywhere", || {
            (1..=4).all(|id| {
                cluster
                    .q(id)
                    .status()
                    .voters
                    .into_iter()
                    .collect::<Vec<_>>()
                    == vec![1, 2, 3, 4]
            })
        })
        .await;
        cluster.q(4).write(b"b".to_vec()).await.unwrap();
        assert_eq!(cluster.items(4), strings(&["a", "b"]));
        cluster.converged(&strings(&["a", "b"])).await;

        cluster.q(4).remove_voter(4).await.unwrap();
        let leader = cluster.leader().await;
        assert_ne!(leader, 4);
        eventually("node 4 out of the membership", || {
            (1..=3).all(|id| {
                cluster
                    .q(id)
                    .status()
                    .voters
                    .into_iter()
                    .collect::<Vec<_>>()
                    == vec![1, 2, 3]
            })
        })
        .await;
        cluster.stop(4).await;
        cluster.nodes.remove(&4);
        let follower = follower_of(&cluster, leader);
        cluster.q(follower).write(b"c".to_vec()).await.unwrap();
        cluster.converged(&strings(&["a", "b", "c"])).await;
        cluster.shutdown_all().await;
    })
    .await;
}

/// Expects the server to close `stream` (EOF or reset) soon.
async fn assert_closed(stream: &mut tokio::net::TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: got {n} bytes instead of a closed connection"),
        Err(_) => panic!("{what}: the connection stayed open"),
    }
}

#[tokio::test]
async fn malformed_frames_close_the_connection_and_the_node_keeps_working() {
    bounded(async {
        let mut cluster = Cluster::start(1, no_tuning);
        let leader = cluster.leader().await;
        assert_eq!(leader, 1);
        cluster.q(1).write(b"before".to_vec()).await.unwrap();
        let addr = cluster.nodes[&1].addr.clone();

        // Random bytes, then end of stream: a torn frame.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(&noise).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_closed(&mut stream, "random bytes").await;

        // Oversized and zero lengths.
        for header in [
            [0xff, 0xff, 0xff, 0xff],
            [0x04, 0x00, 0x00, 0x01],
            [0, 0, 0, 0],
        ] {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.write_all(&header).await.unwrap();
            assert_closed(&mut stream, &format!("length {header:?}")).await;
        }

        // Whole frames that are not requests: unknown kind, bad JSON for a known kind.
        for (kind, body) in [
            (200u8, &b"{}"[..]),
            (1, &b"not json"[..]),
            (5, &b"[1,2"[..]),
        ] {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
            frame.push(kind);
            frame.extend_from_slice(body);
            stream.write_all(&frame).await.unwrap();
            assert_closed(&mut stream, &format!("kind {kind}")).await;
        }

        // A well-formed request on a raw connection still gets its answer.
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(&[0, 0, 0, 5, 7, b'n', b'u', b'l', b'l'])
            .await
            .unwrap();
        let mut header = [0u8; 5];
        tokio::time::timeout(WAIT, stream.read_exact(&mut header))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(header[4], 7 | 0x80);

        assert_eq!(cluster.q(1).write(b"after".to_vec()).await.unwrap(), b"2");
        assert_eq!(cluster.items(1), strings(&["before", "after"]));
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn writes_fail_within_the_deadline_without_a_quorum() {
    bounded(async {
        fn short_requests(config: &mut QuorumConfig) {
            config.request_timeout = Duration::from_secs(1);
        }
        let mut cluster = Cluster::start(3, short_requests);
        let leader = cluster.leader().await;
        cluster.q(leader).write(b"a".to_vec()).await.unwrap();
        let survivor = follower_of(&cluster, leader);
        for id in cluster.running() {
            if id != survivor {
                cluster.stop(id).await;
            }
        }
        let started = Instant::now();
        let error = cluster.q(survivor).write(b"b".to_vec()).await.unwrap_err();
        assert!(
            matches!(error, super::QuorumError::NoLeader { .. }),
            "{error}"
        );
        let error = cluster
            .q(survivor)
            .call_leader(b"x".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(error, super::QuorumError::NoLeader { .. }),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let quorum = cluster.q(survivor).clone();
        cluster.shutdown_all().await;
        let error = quorum.write(b"c".to_vec()).await.unwrap_err();
        assert!(matches!(error, super::QuorumError::Shutdown), "{error}");
        quorum.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_rpc_to_a_peer_that_never_answers_times_out() {
    bounded(async {
        use super::network::{kind, CallError, Pool};
        // Accepted by the kernel's backlog, never read: like a SIGSTOPped peer.
        let silent = bind();
        let addr = silent.local_addr().unwrap().to_string();
        let pool = Pool::default();
        let started = Instant::now();
        let result = pool
            .call(
                9,
                &addr,
                kind::DESCRIBE,
                b"null",
                Duration::from_millis(300),
            )
            .await;
        assert!(
            matches!(result, Err(CallError::Timeout { sent: true, .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));

        // Nobody listening: not delivered, so safe to retry elsewhere.
        drop(silent);
        let result = pool
            .call(
                9,
                &addr,
                kind::DESCRIBE,
                b"null",
                Duration::from_millis(300),
            )
            .await;
        assert!(matches!(result, Err(CallError::NotSent(_))), "{result:?}");
    })
    .await;
}

#[tokio::test]
async fn a_store_directory_serves_one_node_at_a_time() {
    bounded(async {
        let mut cluster = Cluster::start(1, no_tuning);
        cluster.leader().await;
        cluster.q(1).write(b"a".to_vec()).await.unwrap();

        let node = &cluster.nodes[&1];
        let config = QuorumConfig::new(1, node.voters.clone(), node.dir.clone());
        let machine = Box::new(Strings {
            items: Arc::new(Mutex::new(Vec::new())),
        });
        match Quorum::start(config, bind(), machine, echo_handler(1)) {
            Ok(_) => panic!("two nodes opened one store"),
            Err(e) => assert!(
                e.to_string().contains("in use by another quorum node"),
                "{e}"
            ),
        }

        // Once shut down, the directory (and the address) can be used again at once.
        cluster.stop(1).await;
        cluster.restart(1);
        cluster.converged(&strings(&["a"])).await;
        cluster.shutdown_all().await;
    })
    .await;
}

#[tokio::test]
async fn a_leader_handler_can_write_through_the_quorum() {
    bounded(async {
        let tmp = tempfile::tempdir().unwrap();
        let listener = bind();
        let voters = BTreeMap::from([(1, listener.local_addr().unwrap().to_string())]);
        let slot: Arc<std::sync::OnceLock<Quorum>> = Arc::new(std::sync::OnceLock::new());
        let handler_slot = Arc::clone(&slot);
        let handler: LeaderHandler = Arc::new(move |request: Vec<u8>| {
            let slot = Arc::clone(&handler_slot);
            Box::pin(async move {
                match slot.get() {
                    Some(quorum) => quorum.write(request).await.unwrap_or_default(),
                    None => Vec::new(),
                }
            })
        });
        let items = Arc::new(Mutex::new(Vec::new()));
        let machine = Box::new(Strings {
            items: Arc::clone(&items),
        });
        let config = QuorumConfig::new(1, voters, tmp.path().join("node-1"));
        let quorum = Quorum::start(config, listener, machine, handler).unwrap();
        let _ = slot.set(quorum.clone());
        let reply = quorum.call_leader(b"registered".to_vec()).await.unwrap();
        assert_eq!(reply, b"1");
        assert_eq!(*items.lock().unwrap(), strings(&["registered"]));
        quorum.shutdown().await.unwrap();
    })
    .await;
}

#[test]
fn the_quorum_handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Quorum>();
}
