//! Connection and memory bounds shared by every listener (Kafka's `max.connections`,
//! `max.connections.per.ip` and its overrides, `connections.max.idle.ms`, `queued.max.requests`,
//! `queued.max.request.bytes`, and Esker's `socket.request.read.timeout.ms`).
//!
//! - [`ConnectionLimiter`]: counts open connections, broker-wide and per client address, and
//!   refuses the one over a limit right after `accept` (touched only at accept and close, under
//!   one small lock); refusals are logged at most once a second with the count suppressed. The
//!   inter-broker listener's connections are exempt from `max.connections` when the broker has
//!   other Kafka listeners, as in Kafka ([`NetLimits::try_open_kafka`]).
//! - [`MemoryPool`]: `queued.max.request.bytes`. A reader reserves a frame's size before reading
//!   its body and waits (back-pressure, FIFO) while the pool is short; a frame larger than the
//!   whole pool waits until the pool is full and is then served alone, so it cannot deadlock.
//!   The reservation is released when the request's handler has finished with it. Kinesis
//!   request bodies draw on the same pool, and take a place in the same queue, as Kafka frames
//!   (see [`crate::kinesis::server`]).
//! - [`RequestQueue`]: `queued.max.requests`, requests read but not yet answered, broker-wide.
//!   A request still waiting after [`PARKED_AFTER`] (a long-poll fetch, a JoinGroup waiting for
//!   the other members, an acks=all produce waiting for replicas) leaves the count, as Kafka
//!   moves such requests from its request queue to its purgatory.
//!
//! Idle and slow-frame deadlines are per connection, checked by the connection's own reader
//! (see [`crate::net`] and the HTTP servers), never by a scan over all connections.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A request still running after this long counts as parked and leaves `queued.max.requests`.
pub const PARKED_AFTER: Duration = Duration::from_millis(100);

/// Bytes per permit of the memory pool's semaphore (sizes are rounded up to it).
const POOL_UNIT: u64 = 1024;

/// The connection and request bounds, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLimitsConfig {
    /// `max.connections`: open connections, broker-wide (per limiter).
    pub max_connections: usize,
    /// `max.connections.per.ip`: open connections from one address.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `(host or address, limit)` pairs.
    pub per_ip_overrides: Vec<(String, usize)>,
    /// `connections.max.idle.ms`; `None` (-1) never closes idle connections.
    pub idle_timeout: Option<Duration>,
    /// `socket.request.read.timeout.ms`: how long a started frame may take to arrive; `None`
    /// (-1) waits forever.
    pub request_read_timeout: Option<Duration>,
    /// `queued.max.requests`.
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes`; `None` (-1) is unbounded.
    pub queued_max_request_bytes: Option<u64>,
}

impl Default for NetLimitsConfig {
    fn default() -> Self {
        NetLimitsConfig {
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            per_ip_overrides: Vec::new(),
            idle_timeout: Some(Duration::from_millis(600_000)),
            request_read_timeout: Some(Duration::from_millis(30_000)),
            queued_max_requests: 500,
            queued_max_request_bytes: None,
        }
    }
}

impl NetLimitsConfig {
    /// Builds the settings from the keys' validated values (`get` returns a key's text).
    pub fn from_values(get: impl Fn(&str) -> String) -> Result<Self, String> {
        let int = |k: &str| get(k).trim().parse::<i64>().unwrap_or(0);
        let ms = |k: &str| u64::try_from(int(k)).ok().map(Duration::from_millis);
        let max_connections_per_ip = int("max.connections.per.ip").max(0) as usize;
        let per_ip_overrides = parse_overrides(&get("max.connections.per.ip.overrides"))?;
        if max_connections_per_ip == 0 && per_ip_overrides.is_empty() {
            // Kafka's rule: 0 refuses every address without an override, so one is required.
            return Err(
                "max.connections.per.ip is 0 but max.connections.per.ip.overrides is \
                        empty: every connection would be refused"
                    .into(),
            );
        }
        Ok(NetLimitsConfig {
            max_connections: int("max.connections").max(0) as usize,
            max_connections_per_ip,
            per_ip_overrides,
            idle_timeout: ms("connections.max.idle.ms"),
            request_read_timeout: ms("socket.request.read.timeout.ms"),
            queued_max_requests: int("queued.max.requests").max(1) as usize,
            queued_max_request_bytes: u64::try_from(int("queued.max.request.bytes")).ok(),
        })
    }
}

/// Parses `host:count,ip:count` (IPv6 addresses as `[::1]:count` or `::1:count`, the count
/// after the last colon).
pub fn parse_overrides(text: &str) -> Result<Vec<(String, usize)>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("`{entry}` is not `host:count`"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{entry}` has no host"));
        }
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("`{entry}`: the count is not a non-negative integer"))?;
        out.push((host.to_string(), count));
    }
    Ok(out)
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The limiter's `max.connections` is reached.
    #[error("max.connections ({0}) reached")]
    MaxConnections(usize),
    /// The address's `max.connections.per.ip` (or override) is reached.
    #[error("max.connections.per.ip for this address ({0}) reached")]
    PerIp(usize),
}

impl Refusal {
    /// The `reason` label of the rejected-connections counter.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::MaxConnections(_) => "max_connections",
            Refusal::PerIp(_) => "per_ip",
        }
    }
}

#[derive(Default)]
struct Counts {
    /// Connections counted against `max.connections`.
    total: usize,
    /// Connections of the inter-broker listener, which `max.connections` leaves out.
    exempt: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Open connections of a group of listeners, broker-wide and per client address.
pub struct ConnectionLimiter {
    max_total: usize,
    per_ip_default: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Mutex<Counts>,
    log: RateLimitedLog,
}

impl ConnectionLimiter {
    /// A limiter; override hosts are resolved now (a host that does not resolve is logged and
    /// skipped).
    pub fn new(config: &NetLimitsConfig) -> Arc<Self> {
        let mut overrides = HashMap::new();
        for (host, count) in &config.per_ip_overrides {
            match resolve(host) {
                Ok(addrs) => {
                    for ip in addrs {
                        overrides.insert(ip, *count);
                    }
                }
                Err(e) => tracing::warn!(
                    host,
                    error = %e,
                    "max.connections.per.ip.overrides: cannot resolve the host; its override is ignored"
                ),
            }
        }
        Arc::new(ConnectionLimiter {
            max_total: config.max_connections,
            per_ip_default: config.max_connections_per_ip,
            overrides,
            counts: Mutex::new(Counts::default()),
            log: RateLimitedLog::default(),
        })
    }

    /// The limit for one address.
    pub fn limit_for(&self, ip: IpAddr) -> usize {
        *self
            .overrides
            .get(&ip.to_canonical())
            .unwrap_or(&self.per_ip_default)
    }

    /// Counts a new connection from `ip`, or refuses it; the permit uncounts it when dropped.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        self.open_counted(ip, true)
    }

    /// Counts a new connection of the inter-broker listener: refused only by the per-address
    /// limit, and left out of the `max.connections` count (see [`NetLimits::try_open_kafka`]).
    pub fn try_open_exempt(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        self.open_counted(ip, false)
    }

    fn open_counted(
        self: &Arc<Self>,
        ip: IpAddr,
        in_total: bool,
    ) -> Result<ConnectionPermit, Refusal> {
        let ip = ip.to_canonical();
        let per_ip = self.limit_for(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= per_ip {
            return Err(Refusal::PerIp(per_ip));
        }
        if in_total {
            if counts.total >= self.max_total {
                return Err(Refusal::MaxConnections(self.max_total));
            }
            counts.total += 1;
        } else {
            counts.exempt += 1;
        }
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnectionPermit {
            limiter: self.clone(),
            ip,
            in_total,
        })
    }

    /// Open connections counted against `max.connections` here.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Open connections of the inter-broker listener, left out of [`ConnectionLimiter::open`].
    pub fn open_exempt(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).exempt
    }

    /// Logs a refused connection, at most once a second (with how many were not logged).
    pub fn log_refusal(&self, listener: &str, peer: std::net::SocketAddr, why: Refusal) {
        if let Some(suppressed) = self.log.allow() {
            tracing::warn!(
                listener,
                %peer,
                reason = %why,
                suppressed,
                "connection refused (further refusals within a second are counted, not logged)"
            );
        }
    }

    fn close(&self, ip: IpAddr, in_total: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if in_total {
            counts.total = counts.total.saturating_sub(1);
        } else {
            counts.exempt = counts.exempt.saturating_sub(1);
        }
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

fn resolve(host: &str) -> std::io::Result<Vec<IpAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip.to_canonical()]);
    }
    use std::net::ToSocketAddrs;
    Ok((host, 0)
        .to_socket_addrs()?
        .map(|a| a.ip().to_canonical())
        .collect())
}

/// One counted connection; dropping it uncounts it.
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
    /// Counted against `max.connections` (not an inter-broker listener's connection).
    in_total: bool,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limiter.close(self.ip, self.in_total);
    }
}

/// Allows one log line a second; counts the ones it refuses.
#[derive(Default)]
struct RateLimitedLog {
    /// Milliseconds since `origin` of the last line logged, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
    origin: std::sync::OnceLock<Instant>,
}

impl RateLimitedLog {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&self) -> Option<u64> {
        let origin = *self.origin.get_or_init(Instant::now);
        let now = origin.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + 1000 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// `queued.max.request.bytes`: request bytes that may be held at once.
pub struct MemoryPool {
    semaphore: Arc<Semaphore>,
    /// Permits of the whole pool.
    units: u32,
    /// Nanoseconds readers spent waiting for the pool.
    waited_ns: AtomicU64,
}

impl MemoryPool {
    /// A pool of `bytes` (rounded up to whole KiB, at least one).
    pub fn new(bytes: u64) -> Self {
        let units = bytes
            .div_ceil(POOL_UNIT)
            .clamp(1, u64::from(u32::MAX).min(Semaphore::MAX_PERMITS as u64))
            as u32;
        MemoryPool {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
            waited_ns: AtomicU64::new(0),
        }
    }

    /// The pool's size in bytes.
    pub fn capacity(&self) -> u64 {
        u64::from(self.units) * POOL_UNIT
    }

    /// Bytes not reserved.
    pub fn available(&self) -> u64 {
        self.semaphore.available_permits() as u64 * POOL_UNIT
    }

    /// Total time readers waited for the pool.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed))
    }

    /// Reserves `bytes` (as the allocator will round them, see [`allocation_size`]), waiting
    /// (in arrival order) until they are free. A request larger than the pool waits for the
    /// whole pool and holds it alone.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let units = units_for(bytes).min(u64::from(self.units)) as u32;
        if let Ok(p) = self.semaphore.clone().try_acquire_many_owned(units) {
            return Reservation { permit: Some(p) };
        }
        let started = Instant::now();
        let permit = self.semaphore.clone().acquire_many_owned(units).await;
        self.waited_ns.fetch_add(
            started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        // The semaphore is never closed; a closed one would only mean "no limit".
        Reservation {
            permit: permit.ok(),
        }
    }
}

/// Permits of the pool an allocation of `bytes` takes (at least one).
fn units_for(bytes: usize) -> u64 {
    allocation_size(bytes as u64).div_ceil(POOL_UNIT).max(1)
}

/// What an allocation of `bytes` really takes: jemalloc (the binary's allocator) rounds a
/// large allocation up to one of four size classes per doubling, so a frame of 1 MiB and a few
/// bytes occupies 1.25 MiB. The pool counts that, not the frame's size.
pub fn allocation_size(bytes: u64) -> u64 {
    if bytes <= 4096 {
        return bytes.next_power_of_two().max(8);
    }
    let k = 63 - (bytes - 1).leading_zeros(); // 2^k < bytes <= 2^(k+1)
    let spacing = 1u64 << (k - 2);
    bytes.div_ceil(spacing) * spacing
}

/// Bytes reserved in the [`MemoryPool`] (or nothing, when unbounded); released on drop.
#[derive(Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Gives back to the pool what exceeds `bytes` (as the allocator rounds them): a body of
    /// unknown length reserves the most it may take, then keeps what its buffer really holds.
    /// A reservation already at or below that size is left as it is.
    pub fn shrink_to(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.permit {
            let keep = units_for(bytes).min(permit.num_permits() as u64) as usize;
            drop(permit.split(permit.num_permits() - keep));
        }
    }
}

/// `queued.max.requests`: requests read and not yet answered (or parked), broker-wide.
pub struct RequestQueue {
    semaphore: Arc<Semaphore>,
    max: usize,
}

impl RequestQueue {
    /// A queue bound of `max` requests.
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        RequestQueue {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Requests counted now.
    pub fn queued(&self) -> usize {
        self.max - self.semaphore.available_permits().min(self.max)
    }

    /// Waits for a place in the queue.
    pub async fn enter(&self) -> QueuePlace {
        QueuePlace(self.semaphore.clone().acquire_owned().await.ok())
    }
}

/// A request's place in the [`RequestQueue`]; given back on drop.
#[derive(Default)]
pub struct QueuePlace(Option<OwnedSemaphorePermit>);

/// Runs a request's handler holding its queue place and memory: the place is given back when
/// the handler finishes or has waited [`PARKED_AFTER`], the memory when it finishes.
pub async fn run_request<F: Future>(fut: F, place: QueuePlace, memory: Reservation) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let out = if place.0.is_some() {
        tokio::select! {
            biased;
            out = &mut fut => out,
            _ = tokio::time::sleep(PARKED_AFTER) => {
                drop(place);
                fut.await
            }
        }
    } else {
        fut.await
    };
    drop(memory);
    out
}

/// Everything the listeners share: the connection limiters, the request queue and the pool.
pub struct NetLimits {
    /// The settings.
    pub config: NetLimitsConfig,
    /// Kafka and Kinesis listeners' connections.
    pub clients: Arc<ConnectionLimiter>,
    /// The metrics listener's connections, counted apart so that a flood of client
    /// connections cannot lock monitoring out.
    pub monitoring: Arc<ConnectionLimiter>,
    /// `console.listener`'s connections, counted apart likewise (a browser left open on the
    /// console cannot lock out the metrics scrape, nor the other way round).
    pub console: Arc<ConnectionLimiter>,
    /// `queued.max.requests`.
    pub queue: RequestQueue,
    /// `queued.max.request.bytes`, when set.
    pub pool: Option<MemoryPool>,
    /// The inter-broker listener, when its connections are exempt from `max.connections`
    /// (it is one of several Kafka listeners; see [`NetLimits::try_open_kafka`]).
    pub exempt_listener: Option<String>,
}

impl NetLimits {
    /// Builds the shared state from the settings.
    pub fn new(config: NetLimitsConfig) -> Self {
        NetLimits {
            clients: ConnectionLimiter::new(&config),
            monitoring: ConnectionLimiter::new(&config),
            console: ConnectionLimiter::new(&config),
            queue: RequestQueue::new(config.queued_max_requests),
            pool: config.queued_max_request_bytes.map(MemoryPool::new),
            exempt_listener: None,
            config,
        }
    }

    /// Exempts `inter_broker` from `max.connections` when the broker has other Kafka
    /// listeners (`kafka_listeners`, the controller listener left out), as Kafka does: a broker
    /// whose client listeners are full can still be reached by the other brokers. With a
    /// single listener nothing is exempt (else `max.connections` would bound nothing).
    pub fn with_inter_broker_listener<'a>(
        mut self,
        inter_broker: &str,
        kafka_listeners: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let names: std::collections::BTreeSet<&str> = kafka_listeners.into_iter().collect();
        self.exempt_listener =
            (names.len() > 1 && names.contains(inter_broker)).then(|| inter_broker.to_string());
        self
    }

    /// Counts a new connection on the Kafka listener `listener`. Kafka's rule for the
    /// inter-broker listener (KIP-402): its connections are accepted even when
    /// `max.connections` is reached (the per-address limits still apply). Kafka counts them
    /// and closes the least recently used connection of another listener to make room; Esker
    /// leaves them out of the count instead, so no client connection is closed for them
    /// (there are a few per broker of the cluster).
    pub fn try_open_kafka(&self, listener: &str, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        if self.exempt_listener.as_deref() == Some(listener) {
            self.clients.try_open_exempt(ip)
        } else {
            self.clients.try_open(ip)
        }
    }

    /// Reserves a frame's bytes in the pool (nothing when it is unbounded).
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        match &self.pool {
            Some(p) => p.reserve(bytes).await,
            None => Reservation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(total: usize, per_ip: usize, overrides: &str) -> NetLimitsConfig {
        NetLimitsConfig {
            max_connections: total,
            max_connections_per_ip: per_ip,
            per_ip_overrides: parse_overrides(overrides).expect("overrides"),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn per_ip_limit_and_overrides() {
        let l = ConnectionLimiter::new(&config(100, 2, "127.0.0.2:3,[::1]:0,localhost:5"));
        assert_eq!(l.limit_for(ip("10.0.0.1")), 2);
        assert_eq!(l.limit_for(ip("127.0.0.2")), 3);
        assert_eq!(l.limit_for(ip("::1")), 0);
        assert_eq!(l.limit_for(ip("127.0.0.1")), 5, "localhost resolved");
        let a: Vec<_> = (0..2).map(|_| l.try_open(ip("10.0.0.1"))).collect();
        assert!(a.iter().all(Result::is_ok));
        assert_eq!(l.try_open(ip("10.0.0.1")).err(), Some(Refusal::PerIp(2)));
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(
            l.try_open(ip("::ffff:10.0.0.1")).err(),
            Some(Refusal::PerIp(2))
        );
        let b: Vec<_> = (0..3).map(|_| l.try_open(ip("127.0.0.2"))).collect();
        assert!(b.iter().all(Result::is_ok));
        assert!(l.try_open(ip("127.0.0.2")).is_err());
        assert_eq!(l.try_open(ip("::1")).err(), Some(Refusal::PerIp(0)));
        assert_eq!(l.open(), 5);
        drop(a);
        assert_eq!(l.open(), 3);
        let again = l.try_open(ip("10.0.0.1"));
        assert!(again.is_ok());
        drop((b, again));
        assert_eq!(l.open(), 0);
        let counts = l.counts.lock().expect("lock");
        assert!(counts.per_ip.is_empty(), "no entry left behind");
    }

    #[test]
    fn broker_wide_limit() {
        let l = ConnectionLimiter::new(&config(3, 100, ""));
        let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| l.try_open(ip(a)).expect("open"))
            .collect();
        assert_eq!(
            l.try_open(ip("10.0.0.4")).err(),
            Some(Refusal::MaxConnections(3))
        );
        drop(held);
        assert!(l.try_open(ip("10.0.0.4")).is_ok());
    }

    #[test]
    fn the_inter_broker_listener_is_exempt_from_max_connections_when_there_are_others() {
        let limits = NetLimits::new(config(1, 2, ""))
            .with_inter_broker_listener("INTERNAL", ["CLIENT", "INTERNAL", "INTERNAL"]);
        let client = limits
            .try_open_kafka("CLIENT", ip("10.0.0.1"))
            .expect("open");
        assert_eq!(
            limits.try_open_kafka("CLIENT", ip("10.0.0.2")).err(),
            Some(Refusal::MaxConnections(1))
        );
        let brokers: Vec<_> = ["10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| limits.try_open_kafka("INTERNAL", ip(a)).expect("exempt"))
            .collect();
        assert_eq!(
            (limits.clients.open(), limits.clients.open_exempt()),
            (1, 2)
        );
        // The per-address limit still applies to it.
        let second = limits
            .try_open_kafka("INTERNAL", ip("10.0.0.1"))
            .expect("2nd");
        assert_eq!(
            limits.try_open_kafka("INTERNAL", ip("10.0.0.1")).err(),
            Some(Refusal::PerIp(2))
        );
        drop((brokers, second));
        assert_eq!(limits.clients.open_exempt(), 0);
        drop(client);
        assert_eq!(limits.clients.open(), 0);
        assert!(limits
            .clients
            .counts
            .lock()
            .expect("lock")
            .per_ip
            .is_empty());
        // With one listener, the inter-broker listener is the clients' one: not exempt.
        let single = NetLimits::new(config(1, 100, ""))
            .with_inter_broker_listener("PLAINTEXT", ["PLAINTEXT"]);
        let _held = single
            .try_open_kafka("PLAINTEXT", ip("10.0.0.1"))
            .expect("open");
        assert!(single.try_open_kafka("PLAINTEXT", ip("10.0.0.2")).is_err());
        assert_eq!(single.exempt_listener, None);
    }

    #[test]
    fn overrides_syntax() {
        assert_eq!(
            parse_overrides(" a:1 , 10.0.0.1:0,[::1]:7 ,").expect("ok"),
            vec![
                ("a".to_string(), 1),
                ("10.0.0.1".to_string(), 0),
                ("::1".to_string(), 7)
            ]
        );
        assert!(parse_overrides("a").is_err());
        assert!(parse_overrides("a:-1").is_err());
        assert!(parse_overrides(":3").is_err());
        let zero = NetLimitsConfig::from_values(|k| {
            match k {
                "max.connections.per.ip" => "0",
                _ => "",
            }
            .to_string()
        });
        assert!(zero.is_err(), "0 per ip without overrides is refused");
    }

    #[test]
    fn refusal_log_is_rate_limited() {
        let log = RateLimitedLog::default();
        assert_eq!(log.allow(), Some(0));
        for _ in 0..50 {
            assert_eq!(log.allow(), None);
        }
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn allocation_sizes_follow_the_size_classes() {
        assert_eq!(allocation_size(1 << 20), 1 << 20);
        assert_eq!(allocation_size((1 << 20) + 100), 5 << 18);
        assert_eq!(allocation_size((5 << 18) + 1), 6 << 18);
        assert_eq!(allocation_size(100_000), 112 << 10);
        assert_eq!(allocation_size(3000), 4096);
    }

    #[tokio::test]
    async fn pool_blocks_when_empty_and_releases_on_drop() {
        let pool = Arc::new(MemoryPool::new(10 * 1024));
        assert_eq!(pool.capacity(), 10 * 1024);
        let a = pool.reserve(6 * 1024).await;
        let b = pool.reserve(3 * 1024 + 1).await; // rounds up to 4 KiB
        assert_eq!(pool.available(), 0);
        let p = pool.clone();
        let mut waiter = tokio::spawn(async move { p.reserve(1).await });
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiter)
                .await
                .is_err(),
            "a reader waits while the pool is empty"
        );
        drop(b);
        let c = waiter.await.expect("waiter");
        assert_eq!(pool.available(), 3 * 1024);
        assert!(pool.waited() > Duration::ZERO);
        drop((a, c));
        assert_eq!(pool.available(), pool.capacity());
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_pool_is_served_alone() {
        let pool = Arc::new(MemoryPool::new(8 * 1024));
        let small = pool.reserve(100).await;
        let p = pool.clone();
        let big = tokio::spawn(async move { p.reserve(1 << 20).await });
        tokio::task::yield_now().await;
        assert!(!big.is_finished(), "waits for the whole pool");
        // Arrivals after the big frame queue behind it (FIFO), so it cannot starve.
        let p = pool.clone();
        let later = tokio::spawn(async move { p.reserve(100).await });
        tokio::task::yield_now().await;
        assert!(!later.is_finished());
        drop(small);
        let big = big.await.expect("big");
        assert_eq!(pool.available(), 0, "it holds the whole pool");
        drop(big);
        let later = later.await.expect("later");
        assert_eq!(pool.available(), 7 * 1024);
        drop(later);
    }

    #[tokio::test]
    async fn a_reservation_shrinks_to_what_its_buffer_holds() {
        let pool = MemoryPool::new(64 * 1024);
        let mut r = pool.reserve(64 * 1024).await;
        assert_eq!(pool.available(), 0);
        r.shrink_to(10_000); // 10 KiB as allocated
        assert_eq!(pool.available(), 54 * 1024);
        r.shrink_to(50_000); // never grows
        assert_eq!(pool.available(), 54 * 1024);
        r.shrink_to(0);
        assert_eq!(pool.available(), 63 * 1024, "at least one unit kept");
        drop(r);
        assert_eq!(pool.available(), pool.capacity());
        let mut unbounded = Reservation::default();
        unbounded.shrink_to(0);
    }

    #[tokio::test]
    async fn a_parked_request_leaves_the_queue_but_keeps_its_memory() {
        let queue = RequestQueue::new(2);
        let pool = MemoryPool::new(4096);
        let place = queue.enter().await;
        let memory = pool.reserve(4096).await;
        assert_eq!(queue.queued(), 1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(run_request(async move { rx.await.is_ok() }, place, memory));
        tokio::task::yield_now().await;
        assert_eq!(queue.queued(), 1, "still counted while running");
        let started = Instant::now();
        while queue.queued() != 0 {
            assert!(started.elapsed() < PARKED_AFTER * 20, "never parked");
            tokio::time::sleep(PARKED_AFTER / 10).await;
        }
        assert!(started.elapsed() >= PARKED_AFTER / 2, "parked too early");
        assert_eq!(pool.available(), 0, "memory held until the handler ends");
        tx.send(()).expect("send");
        assert!(run.await.expect("run"));
        assert_eq!(pool.available(), 4096);
    }
}
