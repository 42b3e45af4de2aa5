//! Network namespaces for isolated cluster nodes ([`super::cluster::Cluster::start_isolated`]).
//!
//! A [`Network`] is one bridge in the test process's (root) namespace with an address the test
//! uses, and per node a namespace joined to the bridge by a veth pair: the node's end in its
//! namespace (with the node's address; `lo` up so the node reaches itself), the host's end a
//! port of the bridge. [`Network::cut`] sets the host end down, which cuts the node off from the
//! bridge both ways (its peers and the test process see silence, the node sees no carrier);
//! [`Network::heal`] sets it up again.
//!
//! Names carry the test process's pid and a per-process counter, so parallel tests (threads of
//! one process, or other test processes) never share one; link names stay within IFNAMSIZ (15).
//! Each network gets its own /24 in 10.128.0.0/9, picked from the pid and the counter and
//! moved on while an address of the host is already in it (under a lock file, so two test
//! processes never pick the same one at once). Before creating anything, leftovers of test
//! processes that died without cleaning up (names with a pid that no longer runs, or this
//! network's own names) are removed, with any process still running in those namespaces.
//! Dropping the network deletes the namespaces (and with them the veth pairs) and the bridge.
//!
//! Everything goes through iproute2's `ip`; creating namespaces needs root (CAP_SYS_ADMIN and
//! CAP_NET_ADMIN). Without it [`Network::create`] fails with an error naming the privilege.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Networks created in this process so far (part of every name).
static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Host byte of the bridge's address in its /24.
const BRIDGE_HOST: u8 = 254;
/// Serialises picking a subnet between test processes.
const LOCK_FILE: &str = "/tmp/esker-netns.lock";
/// Prefix of every namespace name.
const NS_PREFIX: &str = "esker-";
/// Prefix of every link name.
const LINK_PREFIX: &str = "ek";

/// Why a network could not be set up or changed.
#[derive(Debug)]
pub enum NetnsError {
    /// The process lacks the privilege to create namespaces or links.
    NotPermitted(String),
    /// `ip` is not installed.
    NoIp(std::io::Error),
    /// An `ip` command failed.
    Command { args: String, stderr: String },
}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsError::NotPermitted(detail) => write!(
                f,
                "isolated cluster tests need root (CAP_SYS_ADMIN and CAP_NET_ADMIN, to create \
                 network namespaces, veth pairs and a bridge); this process has effective uid {} \
                 ({detail})",
                // SAFETY: geteuid(2) has no preconditions and cannot fail.
                unsafe { libc::geteuid() }
            ),
            NetnsError::NoIp(e) => write!(
                f,
                "isolated cluster tests need iproute2's `ip` on the PATH: {e}"
            ),
            NetnsError::Command { args, stderr } => {
                write!(f, "`ip {args}` failed: {}", stderr.trim())
            }
        }
    }
}

impl std::error::Error for NetnsError {}

/// Runs `ip <args>`; its stdout, or why it failed.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetnsError::NoIp)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let args = args.join(" ");
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        return Err(NetnsError::NotPermitted(format!(
            "`ip {args}`: {}",
            stderr.trim()
        )));
    }
    Err(NetnsError::Command { args, stderr })
}

/// `ip <args>` where failing is fine (removing what may not exist).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// Whether a process with this pid runs.
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILLs every process in namespace `ns` (a leftover's broker), then deletes the namespace.
fn remove_namespace(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) with a pid read just now from the namespace; it may have exited
            // since, then the call fails harmlessly.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    ip_quiet(&["netns", "delete", ns]);
}

/// The pid part of a namespace name `esker-<pid>-<counter>-<node>` (decimal numbers).
fn namespace_pid(ns: &str) -> Option<u32> {
    let parts: Vec<&str> = ns.strip_prefix(NS_PREFIX)?.split('-').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return None;
    }
    parts[0].parse().ok()
}

/// The pid part of a link name `ek<pid hex>-<counter hex>b` (the bridge) or
/// `ek<pid hex>-<counter hex>{h,n}<node>` (a veth end).
fn link_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix(LINK_PREFIX)?.split_once('-')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let counter = rest.strip_suffix('b').or_else(|| {
        let (head, node) = rest.split_at(rest.len().checked_sub(1)?);
        node.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| head.strip_suffix(['h', 'n']))
            .flatten()
    })?;
    if !hex(pid) || !hex(counter) {
        return None;
    }
    u32::from_str_radix(pid, 16).ok()
}

/// Removes the namespaces and links of test processes that no longer run.
fn sweep_dead() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if namespace_pid(ns).is_some_and(|pid| !pid_alive(pid)) {
                remove_namespace(ns);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        // `<index>: <name>[@<peer>]: <flags> ...`
        for name in list
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            if link_pid(name).is_some_and(|pid| !pid_alive(pid)) {
                ip_quiet(&["link", "delete", name]);
            }
        }
    }
}

/// An exclusive lock on [`LOCK_FILE`], held until dropped.
struct HostLock(std::fs::File);

impl HostLock {
    fn take() -> HostLock {
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("open {LOCK_FILE}: {e}"));
        // SAFETY: flock(2) on a file descriptor owned by `f`, which outlives the lock.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "flock {LOCK_FILE}: {}",
            std::io::Error::last_os_error()
        );
        HostLock(f)
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // SAFETY: as in `take`; the descriptor is still open.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The /24s (as `10.X.Y.`) that an address of the host already lies in.
fn subnets_in_use() -> Result<Vec<String>, NetnsError> {
    let text = ip(&["-4", "-o", "addr", "show"])?;
    Ok(text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("10."))
        .filter_map(|rest| {
            let mut parts = rest.split('.');
            Some(format!("10.{}.{}.", parts.next()?, parts.next()?))
        })
        .collect())
}

/// One node's namespace and links.
struct Member {
    namespace: String,
    /// The veth end in the root namespace, a bridge port.
    host_link: String,
    /// The veth end in the node's namespace.
    node_link: String,
    addr: Ipv4Addr,
    cut: bool,
}

/// A bridge and one namespace per node; see the module doc.
pub struct Network {
    bridge: String,
    bridge_addr: Ipv4Addr,
    members: Vec<Member>,
}

impl Network {
    /// Creates the bridge and `n` namespaces (nodes 1..=n), each with its address.
    pub fn create(n: usize) -> Result<Network, NetnsError> {
        assert!((1..=9).contains(&n), "1 to 9 nodes per network");
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(NetnsError::NotPermitted("not root".into()));
        }
        let pid = std::process::id();
        let counter = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{LINK_PREFIX}{pid:x}-{:x}", counter % 0x100);
        let lock = HostLock::take();
        sweep_dead();
        // Where this network's /24 starts looking: spread over 10.128.0.0/9 by pid and counter.
        let used = subnets_in_use()?;
        let start = (pid.wrapping_mul(64).wrapping_add(counter)) % (128 * 256);
        let subnet = (0..128 * 256)
            .map(|i| (start + i) % (128 * 256))
            .map(|i| (128 + (i / 256) as u8, (i % 256) as u8))
            .find(|(x, y)| !used.contains(&format!("10.{x}.{y}.")))
            .expect("a free /24 in 10.128.0.0/9");
        let addr = |host: u8| Ipv4Addr::new(10, subnet.0, subnet.1, host);
        let net = Network {
            bridge: format!("{tag}b"),
            bridge_addr: addr(BRIDGE_HOST),
            members: (1..=n)
                .map(|k| Member {
                    namespace: format!("{NS_PREFIX}{pid}-{counter}-{k}"),
                    host_link: format!("{tag}h{k}"),
                    node_link: format!("{tag}n{k}"),
                    addr: addr(k as u8),
                    cut: false,
                })
                .collect(),
        };
        // Leftovers of an earlier process with this pid (the sweep keeps those of live pids).
        net.remove_all();
        // From here on a failure drops `net`, which removes what was created.
        let bridge = net.bridge.clone();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.bridge_addr),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        drop(lock);
        for m in &net.members {
            let ns = m.namespace.as_str();
            ip(&["netns", "add", ns])?;
            ip(&[
                "link",
                "add",
                &m.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &m.node_link,
            ])?;
            ip(&["link", "set", &m.node_link, "netns", ns])?;
            ip(&["link", "set", &m.host_link, "master", &bridge])?;
            ip(&["link", "set", &m.host_link, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", m.addr),
                "dev",
                &m.node_link,
            ])?;
            ip(&["-n", ns, "link", "set", &m.node_link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn member(&self, node: i32) -> &Member {
        usize::try_from(node - 1)
            .ok()
            .and_then(|i| self.members.get(i))
            .unwrap_or_else(|| panic!("no node {node} in the network"))
    }

    fn member_mut(&mut self, node: i32) -> &mut Member {
        let n = self.members.len();
        usize::try_from(node - 1)
            .ok()
            .and_then(|i| self.members.get_mut(i))
            .unwrap_or_else(|| panic!("no node {node} in the network (1..={n})"))
    }

    /// Node `node`'s address (in its namespace).
    pub fn addr(&self, node: i32) -> Ipv4Addr {
        self.member(node).addr
    }

    /// The bridge's address: the test process's address on the nodes' network.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        self.bridge_addr
    }

    /// Node `node`'s namespace name (for `ip netns exec`).
    pub fn namespace(&self, node: i32) -> &str {
        &self.member(node).namespace
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Every namespace name, node 1 first.
    pub fn namespaces(&self) -> Vec<String> {
        self.members.iter().map(|m| m.namespace.clone()).collect()
    }

    /// Whether node `node` is cut off.
    pub fn is_cut(&self, node: i32) -> bool {
        self.member(node).cut
    }

    /// Cuts node `node` off the bridge, both ways.
    pub fn cut(&mut self, node: i32) -> Result<(), NetnsError> {
        let link = self.member(node).host_link.clone();
        ip(&["link", "set", &link, "down"])?;
        self.member_mut(node).cut = true;
        Ok(())
    }

    /// Joins node `node` to the bridge again.
    pub fn heal(&mut self, node: i32) -> Result<(), NetnsError> {
        let link = self.member(node).host_link.clone();
        ip(&["link", "set", &link, "up"])?;
        self.member_mut(node).cut = false;
        Ok(())
    }

    /// Removes every namespace (killing what still runs in it) and link of this network,
    /// whether or not it exists.
    fn remove_all(&self) {
        for m in &self.members {
            remove_namespace(&m.namespace);
            // Deleting the namespace deleted the pair; these are for a half-made one.
            ip_quiet(&["link", "delete", &m.host_link]);
            ip_quiet(&["link", "delete", &m.node_link]);
        }
        ip_quiet(&["link", "delete", &self.bridge]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Whether namespace `ns` exists.
pub fn namespace_exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

/// Whether link `name` exists in the root namespace.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}
