//! Process and allocator series, read at scrape time: the standard `process_*` series of
//! Prometheus client libraries (CPU seconds, resident and virtual memory, open and maximum file
//! descriptors, threads, start time) from `/proc/self`, jemalloc's statistics through
//! `mallctl` (`esker_jemalloc_*_bytes`), and the CPU time of each shard thread from
//! `/proc/self/task`. On systems without `/proc` the `/proc` series stay at 0.

use prometheus::{Counter, Gauge, IntGauge, Registry};

/// The process and jemalloc series.
pub struct ProcessMetrics {
    cpu: Counter,
    rss: IntGauge,
    vsize: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    jemalloc: [IntGauge; 6],
}

/// Fields of `/proc/<pid>/stat` (or a task's), numbered as in proc(5).
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    threads: i64,
    start_ticks: u64,
    vsize: i64,
    rss_pages: i64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    Some(Stat {
        cpu_ticks: u64::try_from(num(14)? + num(15)?).ok()?,
        threads: num(20)?,
        start_ticks: u64::try_from(num(22)?).ok()?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> i64 {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as i64
    } else {
        4096
    }
}

/// Seconds since the Unix epoch at which the process started (boot time + start ticks).
fn start_time_seconds() -> Option<f64> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + stat.start_ticks as f64 / clock_ticks())
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .unwrap_or_else(|e| panic!("process metric: {e}"));
    m
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

impl ProcessMetrics {
    /// Registers the series; the start time is read once, now.
    pub fn new(r: &Registry) -> ProcessMetrics {
        let cpu = register(
            r,
            Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )
            .unwrap_or_else(|e| panic!("process_cpu_seconds_total: {e}")),
        );
        let start = register(
            r,
            Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )
            .unwrap_or_else(|e| panic!("process_start_time_seconds: {e}")),
        );
        start.set(start_time_seconds().unwrap_or(0.0));
        let jm = |name: &str, help: &str| int_gauge(r, name, help);
        ProcessMetrics {
            cpu,
            rss: int_gauge(
                r,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            vsize: int_gauge(
                r,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            open_fds: int_gauge(r, "process_open_fds", "Number of open file descriptors."),
            max_fds: int_gauge(
                r,
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            threads: int_gauge(r, "process_threads", "Number of OS threads in the process."),
            jemalloc: [
                jm(
                    "esker_jemalloc_allocated_bytes",
                    "Bytes allocated by the application (jemalloc stats.allocated).",
                ),
                jm(
                    "esker_jemalloc_active_bytes",
                    "Bytes in active pages (jemalloc stats.active).",
                ),
                jm(
                    "esker_jemalloc_resident_bytes",
                    "Bytes in physically resident data pages mapped by jemalloc (stats.resident).",
                ),
                jm(
                    "esker_jemalloc_mapped_bytes",
                    "Bytes in active extents mapped by jemalloc (stats.mapped).",
                ),
                jm(
                    "esker_jemalloc_metadata_bytes",
                    "Bytes of jemalloc metadata (stats.metadata).",
                ),
                jm(
                    "esker_jemalloc_retained_bytes",
                    "Bytes in virtual memory mappings retained by jemalloc (stats.retained).",
                ),
            ],
        }
    }

    /// Reads `/proc/self` and jemalloc's statistics into the series.
    pub fn refresh(&self) {
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            let seconds = stat.cpu_ticks as f64 / clock_ticks();
            let delta = seconds - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.threads.set(stat.threads);
            self.vsize.set(stat.vsize);
            self.rss.set(stat.rss_pages.saturating_mul(page_size()));
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            let n = dir.count().saturating_sub(1);
            self.open_fds.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed by pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            self.max_fds
                .set(i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX));
        }
        self.refresh_jemalloc();
    }

    fn refresh_jemalloc(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The statistics are a snapshot taken when the epoch advances.
        if epoch::advance().is_err() {
            return;
        }
        let values = [
            stats::allocated::read(),
            stats::active::read(),
            stats::resident::read(),
            stats::mapped::read(),
            stats::metadata::read(),
            stats::retained::read(),
        ];
        for (g, v) in self.jemalloc.iter().zip(values) {
            if let Ok(v) = v {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }
}

/// CPU seconds of every shard thread (`esker-shard-N`), by shard id. Threads of the same name
/// (several brokers in one process, as in tests) are summed.
pub fn shard_cpu_seconds() -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let ticks = clock_ticks();
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let Some(id) = comm
            .trim_end()
            .strip_prefix("esker-shard-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let Some(stat) = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        else {
            continue;
        };
        let seconds = stat.cpu_ticks as f64 / ticks;
        match out.iter_mut().find(|(s, _)| *s == id) {
            Some((_, total)) => *total += seconds,
            None => out.push((id, seconds)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (esker (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 \
                    7 0 123456 987654321 2048 18446744073709551615";
        let s = parse_stat(line).expect("parsed");
        assert_eq!(s.cpu_ticks, 200);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_ticks, 123_456);
        assert_eq!(s.vsize, 987_654_321);
        assert_eq!(s.rss_pages, 2048);
    }

    #[test]
    fn reads_this_process() {
        let r = Registry::new();
        let m = ProcessMetrics::new(&r);
        m.refresh();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(m.rss.get() > 0);
            assert!(m.open_fds.get() > 0);
            assert!(m.threads.get() >= 1);
        }
    }
}
