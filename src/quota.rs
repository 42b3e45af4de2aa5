//! Client quotas: the configured rates per user and client id (Kafka's entity model with
//! `<default>` entries and its precedence), stored durably in
//! `<log.dirs>/.esker-config/quotas`, and the per-entity token buckets that turn a rate into a
//! throttle time: byte rates for Produce and Fetch responses, and `request_percentage`
//! (KIP-124: the time spent handling an entity's requests, as a percentage of one thread) for
//! every response.
//!
//! Shared by every connection; the map of quotas is read-mostly and the buckets sit behind one
//! short mutex, touched once per request.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The quota keys the broker accepts.
pub const KEYS: &[&str] = &[
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

/// One side of an entity: absent, `<default>` (name `None`), or a name.
pub type Part = Option<Option<String>>;

/// A quota entity: (user, client-id), each absent, default or named.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Entity {
    /// The `user` component.
    pub user: Part,
    /// The `client-id` component.
    pub client_id: Part,
}

/// Which rate a request is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `producer_byte_rate`.
    Produce,
    /// `consumer_byte_rate`.
    Fetch,
    /// `request_percentage`: handler time, in seconds, against `percentage / 100` seconds per
    /// second (100 = one thread's whole time).
    Request,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => "producer_byte_rate",
            Kind::Fetch => "consumer_byte_rate",
            Kind::Request => "request_percentage",
        }
    }

    /// The rate per second a configured value stands for (bytes, or seconds of handler time).
    fn rate(self, configured: f64) -> f64 {
        match self {
            Kind::Request => configured / 100.0,
            Kind::Produce | Kind::Fetch => configured,
        }
    }

    /// The name in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::Request => "request",
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Applies changes to one entity (`None` removes the key); an entity left without keys goes
/// (shared by the local store and the cluster's metadata image).
pub fn apply_alteration(
    entries: &mut BTreeMap<Entity, BTreeMap<String, f64>>,
    entity: Entity,
    ops: &[(String, Option<f64>)],
) {
    let values = entries.entry(entity.clone()).or_default();
    for (k, v) in ops {
        match v {
            Some(v) => {
                values.insert(k.clone(), *v);
            }
            None => {
                values.remove(k);
            }
        }
    }
    if values.is_empty() {
        entries.remove(&entity);
    }
}

/// The quota store and the rate meters.
pub struct Quotas {
    path: PathBuf,
    entries: RwLock<BTreeMap<Entity, BTreeMap<String, f64>>>,
    buckets: Mutex<HashMap<(Entity, Kind), Bucket>>,
    /// Whether any entity has a `request_percentage` (so requests need timing at all).
    request_quotas: AtomicBool,
}

impl Quotas {
    /// Loads the stored quotas (none if the file is absent).
    pub fn open(log_dir: &Path) -> std::io::Result<Quotas> {
        let dir = log_dir.join(".esker-config");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("quotas");
        let mut entries = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                // user<TAB>client<TAB>key<TAB>value, with "-" absent and "<default>" default.
                let f: Vec<&str> = line.split('\t').collect();
                let [user, client, key, value] = f[..] else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                let entity = Entity {
                    user: decode_part(user),
                    client_id: decode_part(client),
                };
                entries
                    .entry(entity)
                    .or_insert_with(BTreeMap::new)
                    .insert(key.to_string(), value);
            }
        }
        let request_quotas = AtomicBool::new(has_key(&entries, Kind::Request));
        Ok(Quotas {
            path,
            entries: RwLock::new(entries),
            buckets: Mutex::new(HashMap::new()),
            request_quotas,
        })
    }

    /// Every entity with its values.
    pub fn all(&self) -> Vec<(Entity, BTreeMap<String, f64>)> {
        self.read()
            .iter()
            .map(|(e, v)| (e.clone(), v.clone()))
            .collect()
    }

    /// Applies changes to one entity (`None` removes the key) and stores the result durably.
    pub fn alter(&self, entity: Entity, ops: &[(String, Option<f64>)]) -> std::io::Result<()> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        apply_alteration(&mut entries, entity, ops);
        self.store(entries)
    }

    /// Replaces every quota (a cluster node following the metadata log) and stores them.
    pub fn replace(&self, all: &[(Entity, BTreeMap<String, f64>)]) -> std::io::Result<()> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        *entries = all.iter().cloned().collect();
        self.store(entries)
    }

    /// Writes the entries durably and restarts the meters.
    fn store(
        &self,
        entries: std::sync::RwLockWriteGuard<'_, BTreeMap<Entity, BTreeMap<String, f64>>>,
    ) -> std::io::Result<()> {
        let mut text = String::new();
        for (e, values) in entries.iter() {
            for (k, v) in values {
                text.push_str(&format!(
                    "{}\t{}\t{k}\t{v}\n",
                    encode_part(&e.user),
                    encode_part(&e.client_id)
                ));
            }
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.request_quotas
            .store(has_key(&entries, Kind::Request), Ordering::Release);
        drop(entries);
        // Rates changed: start the meters afresh.
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// The quota entity and rate (bytes/s) that apply to `user`/`client_id` for `kind`, in
    /// Kafka's order of precedence.
    fn lookup(&self, user: &str, client_id: &str, kind: Kind) -> Option<(Entity, f64)> {
        let entries = self.read();
        if entries.is_empty() {
            return None;
        }
        let named = |s: &str| Some(Some(s.to_string()));
        let default: Part = Some(None);
        let order = [
            (named(user), named(client_id)),
            (named(user), default.clone()),
            (named(user), None),
            (default.clone(), named(client_id)),
            (default.clone(), default.clone()),
            (default.clone(), None),
            (None, named(client_id)),
            (None, default.clone()),
        ];
        for (u, c) in order {
            let e = Entity {
                user: u,
                client_id: c,
            };
            if let Some(rate) = entries.get(&e).and_then(|v| v.get(kind.key())) {
                return Some((e, *rate));
            }
        }
        None
    }

    /// Whether some entity has a `request_percentage` quota.
    pub fn has_request_quotas(&self) -> bool {
        self.request_quotas.load(Ordering::Acquire)
    }

    /// Records `bytes` for the caller and returns how long its next response must be held back
    /// so that it stays within its rate (zero when no quota applies).
    pub fn record(&self, user: &str, client_id: &str, kind: Kind, bytes: usize) -> Duration {
        self.record_amount(user, client_id, kind, bytes as f64)
    }

    /// Records handler time for the caller against its `request_percentage` and returns how
    /// long its response must be held back (zero when no quota applies).
    pub fn record_request_time(&self, user: &str, client_id: &str, busy: Duration) -> Duration {
        if !self.has_request_quotas() {
            return Duration::ZERO;
        }
        self.record_amount(user, client_id, Kind::Request, busy.as_secs_f64())
    }

    fn record_amount(&self, user: &str, client_id: &str, kind: Kind, amount: f64) -> Duration {
        let Some((entity, configured)) = self.lookup(user, client_id, kind) else {
            return Duration::ZERO;
        };
        let rate = kind.rate(configured);
        if rate <= 0.0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // A token bucket with one second of burst: sustained use converges on `rate`.
        let b = buckets.entry((entity, kind)).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate) - amount;
        b.last = now;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-b.tokens / rate).min(30.0))
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Entity, BTreeMap<String, f64>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn has_key(entries: &BTreeMap<Entity, BTreeMap<String, f64>>, kind: Kind) -> bool {
    entries.values().any(|v| v.contains_key(kind.key()))
}

fn encode_part(p: &Part) -> String {
    match p {
        None => "-".into(),
        Some(None) => "<default>".into(),
        Some(Some(n)) => n.replace(['\t', '\n'], " "),
    }
}

fn decode_part(s: &str) -> Part {
    match s {
        "-" => None,
        "<default>" => Some(None),
        n => Some(Some(n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_storage_and_throttle() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quotas::open(dir.path()).unwrap();
        assert_eq!(q.record("u", "c", Kind::Produce, 1 << 30), Duration::ZERO);
        q.alter(
            Entity {
                user: None,
                client_id: Some(None),
            },
            &[("producer_byte_rate".into(), Some(1000.0))],
        )
        .unwrap();
        q.alter(
            Entity {
                user: None,
                client_id: Some(Some("fast".into())),
            },
            &[("producer_byte_rate".into(), Some(1e9))],
        )
        .unwrap();
        // The default client quota applies to "slow": 1000 bytes of burst, then 2 s of debt.
        assert_eq!(q.record("u", "slow", Kind::Produce, 1000), Duration::ZERO);
        let t = q.record("u", "slow", Kind::Produce, 2000);
        assert!(
            t > Duration::from_millis(1900) && t <= Duration::from_millis(2000),
            "{t:?}"
        );
        assert_eq!(
            q.record("u", "fast", Kind::Produce, 100_000),
            Duration::ZERO
        );
        assert_eq!(q.record("u", "slow", Kind::Fetch, 1 << 30), Duration::ZERO);
        let reopened = Quotas::open(dir.path()).unwrap();
        assert_eq!(reopened.all().len(), 2);
        reopened
            .alter(
                Entity {
                    user: None,
                    client_id: Some(None),
                },
                &[("producer_byte_rate".into(), None)],
            )
            .unwrap();
        assert_eq!(Quotas::open(dir.path()).unwrap().all().len(), 1);
    }

    #[test]
    fn request_percentage_meters_handler_time() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quotas::open(dir.path()).unwrap();
        assert!(!q.has_request_quotas());
        let ms = Duration::from_millis;
        assert_eq!(q.record_request_time("u", "c", ms(500)), Duration::ZERO);
        q.alter(
            Entity {
                user: Some(Some("u".into())),
                client_id: None,
            },
            &[("request_percentage".into(), Some(10.0))],
        )
        .unwrap();
        assert!(q.has_request_quotas());
        // 10% of a thread: 100 ms of burst, then 50 ms more is 0.5 s of debt.
        assert_eq!(q.record_request_time("u", "c", ms(100)), Duration::ZERO);
        let t = q.record_request_time("u", "c", ms(50));
        assert!(t > ms(450) && t <= ms(500), "{t:?}");
        // Another user has no quota.
        assert_eq!(q.record_request_time("v", "c", ms(500)), Duration::ZERO);
        assert!(Quotas::open(dir.path()).unwrap().has_request_quotas());
    }
}
