//! The scrape-time series: asked for when `/metrics` is scraped, never maintained on the hot
//! path. One message per shard (log offsets and sizes, fsync counters, queue depth), one per
//! coordinator partition (committed offsets, members, rebalances); lag is the log end offset
//! minus the committed offset, floored at 0.
//!
//! The high-cardinality families (per partition, per group) are not registry children: they are
//! formatted straight into the exposition from those answers, in the text format, so a scrape
//! costs no per-series allocation, hashing or protobuf round trip.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use super::Metrics;
use crate::context::BrokerContext;
use crate::coordinator::GroupMetrics;
use crate::shard::ShardState;

/// What a shard reports about one partition.
pub(super) struct PartitionStat {
    topic: Arc<str>,
    partition: i32,
    size: u64,
    start: i64,
    end: i64,
}

/// A directly written family: name, help and how a row gives its value.
type Family<T> = (&'static str, &'static str, fn(&T) -> i64);

/// Refreshes the registry's scrape-time series of `m` and writes the per-partition and
/// per-group families to `out`.
pub(super) async fn refresh(m: &Metrics, ctx: &BrokerContext, out: &mut String) {
    let cfg = &m.config;
    let topics = ctx.catalog.all();
    let mut per_shard: Vec<Vec<(Arc<str>, i32)>> = vec![Vec::new(); ctx.shards.len()];
    let mut partitions = 0i64;
    // Log end offsets are needed for the per-partition log series and for the lag.
    let want_offsets = cfg.partition_labels || cfg.group_labels;
    for t in &topics {
        for p in 0..t.partitions {
            partitions += 1;
            if want_offsets {
                per_shard[crate::shard::shard_for(&t.name, p, ctx.shards.len())]
                    .push((t.name.clone(), p));
            }
        }
    }
    match &ctx.cluster {
        None => {
            m.partition_count.set(partitions);
            m.leader_count.set(partitions);
        }
        Some(c) => {
            // In a cluster: the replicas held here, those led here, and (on the active
            // controller) the partitions without a leader.
            let me = c.node_id();
            let image = c.image();
            let all = image.topics.values().flat_map(|t| t.partitions.iter());
            let (mut held, mut led, mut offline) = (0i64, 0i64, 0i64);
            for p in all {
                held += i64::from(p.replicas.contains(&me));
                led += i64::from(p.leader == me);
                offline += i64::from(p.leader < 0);
            }
            let active = c.active_controller() == Some(me);
            m.partition_count.set(held);
            m.leader_count.set(led);
            m.active_controller.set(i64::from(active));
            m.offline_partitions.set(if active { offline } else { 0 });
        }
    }
    // Asked first, so the offsets are not newer than the log end offsets read after them.
    let groups = ctx.coordinator.metrics().await;
    let mut stats: Vec<PartitionStat> = Vec::new();
    let mut replication = crate::shard::ReplicationStats::default();
    let mut max_lso_lag = 0i64;
    let mut max_dirty = 0.0f64;
    let mut cleaner = None;
    for (id, list) in per_shard.into_iter().enumerate() {
        let shard = [id.to_string()];
        m.shard_queue
            .with_label_values(&shard)
            .set(i64::try_from(ctx.shards[id].queue_depth()).unwrap_or(i64::MAX));
        let answer = ctx.shards[id]
            .call(move |s: &mut ShardState| {
                let stats: Vec<PartitionStat> = list
                    .into_iter()
                    .filter_map(|(topic, partition)| {
                        let snap = s.snapshot(&topic, partition).ok()?;
                        Some(PartitionStat {
                            topic,
                            partition,
                            size: snap.size_bytes,
                            start: snap.log_start_offset,
                            end: snap.high_watermark,
                        })
                    })
                    .collect();
                (
                    stats,
                    s.sync_stats(),
                    s.replication_stats(),
                    s.max_lso_lag(),
                    s.cleaner_metrics(),
                )
            })
            .await;
        let Ok((shard_stats, sync, repl, lso_lag, (dirty, shared))) = answer else {
            continue;
        };
        max_dirty = max_dirty.max(dirty);
        cleaner = cleaner.or(shared);
        max_lso_lag = max_lso_lag.max(lso_lag);
        stats.extend(shard_stats);
        replication.under_replicated += repl.under_replicated;
        replication.under_min_isr += repl.under_min_isr;
        replication.max_lag = replication.max_lag.max(repl.max_lag);
        for (vec, value) in [
            (&m.flushes, sync.flushes),
            (&m.fsyncs, sync.fsyncs),
            (&m.fsync_waiters, sync.waiters),
        ] {
            let c = vec.with_label_values(&shard);
            c.inc_by(value.saturating_sub(c.get()));
        }
    }
    m.under_replicated
        .set(i64::try_from(replication.under_replicated).unwrap_or(i64::MAX));
    m.under_min_isr
        .set(i64::try_from(replication.under_min_isr).unwrap_or(i64::MAX));
    m.max_lag.set(replication.max_lag);
    for (shard, seconds) in super::process::shard_cpu_seconds() {
        let c = m.shard_cpu.with_label_values(&[shard.to_string().as_str()]);
        let delta = seconds - c.get();
        if delta > 0.0 {
            c.inc_by(delta);
        }
    }
    m.groups
        .set(i64::try_from(groups.groups.len()).unwrap_or(i64::MAX));
    m.rebalances
        .inc_by(groups.rebalances.saturating_sub(m.rebalances.get()));
    m.lso_lag.set(max_lso_lag);
    if let Some(c) = cleaner {
        m.cleaner.update(&c.stats, max_dirty);
    }
    let txn = &ctx.transactions;
    m.txn_open
        .set(i64::try_from(txn.open_transactions()).unwrap_or(i64::MAX));
    for (c, v) in [
        (&m.txn_committed, &txn.stats.commits),
        (&m.txn_aborted, &txn.stats.aborts),
        (&m.txn_timed_out, &txn.stats.timeouts),
    ] {
        let v = v.load(std::sync::atomic::Ordering::Relaxed);
        c.inc_by(v.saturating_sub(c.get()));
    }

    stats.sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    if cfg.partition_labels {
        write_partitions(out, &stats);
    }
    if cfg.group_labels {
        let mut log_end: HashMap<&str, HashMap<i32, i64>> = HashMap::new();
        for p in &stats {
            log_end
                .entry(&*p.topic)
                .or_default()
                .insert(p.partition, p.end);
        }
        let mut groups = groups.groups;
        groups.sort_unstable_by(|a, b| a.group_id.cmp(&b.group_id));
        write_groups(out, &groups, &log_end, cfg.partition_labels);
    }
    // Metrics clients pushed (KIP-714) and the telemetry counters.
    ctx.telemetry.render(out);
}

/// A label value escaped for the text format (`\`, `"` and newlines).
pub(crate) fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// `kafka_log_log_{size,logstartoffset,logendoffset}{topic,partition}`.
fn write_partitions(out: &mut String, stats: &[PartitionStat]) {
    if stats.is_empty() {
        return;
    }
    let families: [Family<PartitionStat>; 3] = [
        (
            "kafka_log_log_logendoffset",
            "A partition's log end offset (Log LogEndOffset).",
            |p| p.end,
        ),
        (
            "kafka_log_log_logstartoffset",
            "A partition's first offset (Log LogStartOffset).",
            |p| p.start,
        ),
        (
            "kafka_log_log_size",
            "Bytes on disk in a partition's segments (Log Size).",
            |p| i64::try_from(p.size).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, value) in families {
        header(out, name, help);
        for p in stats {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                escape(&p.topic),
                p.partition,
                value(p)
            );
        }
    }
}

/// One committed offset with its lag.
struct Row<'a> {
    group: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
    lag: i64,
}

/// `kafka_consumergroup_{lag,current_offset}{consumergroup,topic,partition}` (when
/// `per_partition`), `kafka_consumergroup_topic_lag{consumergroup,topic}` and
/// `kafka_consumergroup_members{consumergroup}`.
fn write_groups(
    out: &mut String,
    groups: &[GroupMetrics],
    log_end: &HashMap<&str, HashMap<i32, i64>>,
    per_partition: bool,
) {
    if groups.is_empty() {
        return;
    }
    let mut rows: Vec<Row<'_>> = Vec::new();
    for g in groups {
        for (topic, partition, offset) in &g.offsets {
            // Offsets of deleted topics (or partitions) have no log end: no lag.
            let Some(end) = log_end.get(topic.as_str()).and_then(|t| t.get(partition)) else {
                continue;
            };
            rows.push(Row {
                group: &g.group_id,
                topic,
                partition: *partition,
                offset: *offset,
                lag: (end - offset).max(0),
            });
        }
    }
    rows.sort_unstable_by(|a, b| {
        (a.group, a.topic, a.partition).cmp(&(b.group, b.topic, b.partition))
    });
    if per_partition && !rows.is_empty() {
        let families: [Family<Row<'_>>; 2] = [
            (
                "kafka_consumergroup_current_offset",
                "The group's committed offset, per partition (kafka_exporter).",
                |r| r.offset,
            ),
            (
                "kafka_consumergroup_lag",
                "Log end offset minus the group's committed offset, per partition (kafka_exporter).",
                |r| r.lag,
            ),
        ];
        for (name, help, value) in families {
            header(out, name, help);
            for r in &rows {
                let _ = writeln!(
                    out,
                    "{name}{{consumergroup=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                    escape(r.group),
                    escape(r.topic),
                    r.partition,
                    value(r)
                );
            }
        }
    }
    header(
        out,
        "kafka_consumergroup_members",
        "Members of a consumer group (kafka_exporter).",
    );
    for g in groups {
        let _ = writeln!(
            out,
            "kafka_consumergroup_members{{consumergroup=\"{}\"}} {}",
            escape(&g.group_id),
            g.members
        );
    }
    if rows.is_empty() {
        return;
    }
    header(
        out,
        "kafka_consumergroup_topic_lag",
        "Lag of a group summed over a topic's partitions (kafka_exporter's kafka_consumergroup_lag_sum).",
    );
    // Rows are sorted by group then topic: sum each run.
    let mut i = 0;
    while i < rows.len() {
        let (group, topic) = (rows[i].group, rows[i].topic);
        let mut sum = 0i64;
        while i < rows.len() && rows[i].group == group && rows[i].topic == topic {
            sum = sum.saturating_add(rows[i].lag);
            i += 1;
        }
        let _ = writeln!(
            out,
            "kafka_consumergroup_topic_lag{{consumergroup=\"{}\",topic=\"{}\"}} {sum}",
            escape(group),
            escape(topic)
        );
    }
}

/// One sample of every directly written family (for the dashboard test).
#[cfg(test)]
pub(super) fn write_examples(out: &mut String) {
    let stats = [PartitionStat {
        topic: Arc::from("t"),
        partition: 0,
        size: 1,
        start: 0,
        end: 5,
    }];
    write_partitions(out, &stats);
    let groups = [GroupMetrics {
        group_id: "g".into(),
        members: 1,
        offsets: vec![("t".into(), 0, 2)],
    }];
    let log_end = HashMap::from([("t", HashMap::from([(0, 5)]))]);
    write_groups(out, &groups, &log_end, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_families_are_well_formed() {
        let groups = [
            GroupMetrics {
                group_id: "b\"q\\".into(),
                members: 0,
                offsets: vec![
                    ("t".into(), 0, 7),
                    ("t".into(), 1, 3),
                    ("gone".into(), 0, 1),
                ],
            },
            GroupMetrics {
                group_id: "a".into(),
                members: 2,
                offsets: vec![("t".into(), 1, 20)],
            },
        ];
        let log_end = HashMap::from([("t", HashMap::from([(0, 10), (1, 12)]))]);
        let mut out = String::new();
        write_groups(&mut out, &groups, &log_end, true);
        assert!(out.contains(
            "kafka_consumergroup_lag{consumergroup=\"b\\\"q\\\\\",topic=\"t\",partition=\"0\"} 3\n"
        ));
        assert!(out.contains(
            "kafka_consumergroup_lag{consumergroup=\"b\\\"q\\\\\",topic=\"t\",partition=\"1\"} 9\n"
        ));
        // A commit past the log end (e.g. before a truncation) is no negative lag.
        assert!(out.contains(
            "kafka_consumergroup_lag{consumergroup=\"a\",topic=\"t\",partition=\"1\"} 0\n"
        ));
        assert!(out.contains(
            "kafka_consumergroup_topic_lag{consumergroup=\"b\\\"q\\\\\",topic=\"t\"} 12\n"
        ));
        assert!(out.contains("kafka_consumergroup_members{consumergroup=\"a\"} 2\n"));
        assert!(
            !out.contains("gone"),
            "offsets of deleted topics are skipped"
        );
        // Each family's samples are contiguous, after its TYPE line.
        for family in [
            "kafka_consumergroup_lag{",
            "kafka_consumergroup_current_offset{",
            "kafka_consumergroup_topic_lag{",
            "kafka_consumergroup_members{",
        ] {
            let lines: Vec<usize> = out
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with(family))
                .map(|(i, _)| i)
                .collect();
            assert!(!lines.is_empty(), "{family}");
            assert_eq!(lines.last().map(|l| l - lines[0] + 1), Some(lines.len()));
        }
        let mut off = String::new();
        write_groups(&mut off, &groups, &log_end, false);
        assert!(!off.contains("kafka_consumergroup_lag{"));
        assert!(off.contains("kafka_consumergroup_topic_lag{"));
    }
}
