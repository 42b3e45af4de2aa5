//! Output and lookups shared by the subcommands: aligned tables, JSON, the report of a
//! deletion of several things, times (RFC 3339 in and out, UTC), topic metadata with clear errors, and ListOffsets routed to partition leaders.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::{usage, CliResult};
use crate::client::{check, Client, ClientError, Target};

/// A table printed with columns aligned by two spaces.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(c.chars().count());
                line.extend(std::iter::repeat(' ').take(pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    println!("{text}");
    Ok(())
}

/// What a command deleting several things (topics, groups) reports: the names deleted, as
/// `{"deleted": [...]}` or a line each, and the first failure as the command's error (later
/// failures are printed on stderr as they come).
pub struct Deletions {
    kind: &'static str,
    deleted: Vec<String>,
    first_err: Option<ClientError>,
}

impl Deletions {
    /// An empty report for things of `kind` (`topic`, `group`).
    pub fn new(kind: &'static str) -> Deletions {
        Deletions {
            kind,
            deleted: Vec::new(),
            first_err: None,
        }
    }

    /// Records how deleting `name` went.
    pub fn record(&mut self, name: String, result: Result<(), ClientError>) {
        match result {
            Ok(()) => self.deleted.push(name),
            Err(e) if self.first_err.is_some() => eprintln!("error: {e}"),
            Err(e) => self.first_err = Some(e),
        }
    }

    /// Prints what was deleted; the first failure is the command's error.
    pub fn finish(self, json: bool) -> CliResult<()> {
        if json {
            print_json(&serde_json::json!({ "deleted": self.deleted }))?;
        } else {
            for name in &self.deleted {
                println!("deleted {} '{name}'", self.kind);
            }
        }
        match self.first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// `-` for a missing value.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Epoch milliseconds as `2024-05-01T12:00:00.000Z`.
pub fn format_time(ms: i64) -> String {
    if ms < 0 {
        return "-".to_string();
    }
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (min, rem) = (rem / 60_000, rem % 60_000);
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{:02}.{:03}Z",
        rem / 1000,
        rem % 1000
    )
}

/// Parses `YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM]` (UTC without a zone) or epoch milliseconds.
pub fn parse_time(s: &str) -> CliResult<i64> {
    let bad = || {
        usage(format!(
            "invalid time `{s}`: expected 2024-05-01T12:00:00Z or epoch milliseconds"
        ))
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let (date, time) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 {
        return Err(bad());
    }
    let (y, mo, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    // Split off the zone.
    let (clock, offset_min) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        (c, sign * (num(zh)? * 60 + num(zm)?))
    } else {
        (time, 0)
    };
    let cp: Vec<&str> = clock.split(':').collect();
    if cp.len() < 2 || cp.len() > 3 {
        return Err(bad());
    }
    let (h, mi) = (num(cp[0])?, num(cp[1])?);
    let (sec, ms) = match cp.get(2) {
        Some(sp) => match sp.split_once('.') {
            Some((s, f)) => {
                let frac = format!("{f:0<3}");
                (num(s)?, num(&frac[..3])?)
            }
            None => (num(sp)?, 0),
        },
        None => (0, 0),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + ms)
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    /// Partition index.
    pub index: i32,
    /// Leader node id (-1 none).
    pub leader: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: String,
    /// Internal topic.
    pub internal: bool,
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
}

/// The message for a topic-level error code: "topic 'x' does not exist" for 3, "not
/// authorized to OP topic 'x'" for 29.
pub fn topic_what(topic: &str, code: i16, op: &str) -> String {
    match code {
        3 => format!("topic '{topic}' does not exist"),
        29 => format!("not authorized to {op} topic '{topic}'"),
        _ => format!("cannot {} topic '{topic}'", op.to_lowercase()),
    }
}

/// As [`topic_what`] for a partition-level error: the partition is named unless the code is
/// about the whole topic (unknown, not authorized).
pub fn partition_what(topic: &str, partition: i32, code: i16, op: &str) -> String {
    match code {
        3 | 29 => topic_what(topic, code, op),
        _ => format!("{} (partition {partition})", topic_what(topic, code, op)),
    }
}

/// Metadata of the named topics (every topic for `None`), failing on the first topic error.
pub async fn topics(client: &mut Client, names: Option<&[String]>) -> CliResult<Vec<TopicInfo>> {
    let resp = client.metadata(names).await?;
    let mut out = Vec::new();
    for t in resp.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        check(t.error_code, None, || {
            topic_what(&name, t.error_code, "DESCRIBE")
        })?;
        let mut partitions: Vec<PartitionInfo> = t
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                index: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
            .collect();
        partitions.sort_by_key(|p| p.index);
        out.push(TopicInfo {
            name,
            id: t.topic_id.to_string(),
            internal: t.is_internal,
            partitions,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// ListOffsets for `(topic, partition, leader)` at `timestamp` (-1 latest, -2 earliest),
/// each sent to its leader. Returns (topic, partition) → offset (-1 when no record is that
/// late).
pub async fn list_offsets(
    client: &mut Client,
    parts: &[(String, i32, i32)],
    timestamp: i64,
) -> CliResult<BTreeMap<(String, i32), i64>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (t, p, leader) in parts {
        by_leader
            .entry(*leader)
            .or_default()
            .entry(t.clone())
            .or_default()
            .push(*p);
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        if leader < 0 {
            return Err(ClientError::Request(format!(
                "partitions of {} have no leader",
                topics.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
        let req_topics: Vec<ListOffsetsTopic> = topics
            .iter()
            .map(|(t, ps)| {
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(
                        ps.iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = client
            .send(Target::Node(leader), |_| {
                ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(req_topics)
            })
            .await?;
        for t in resp.topics {
            let name = t.name.0.to_string();
            for p in t.partitions {
                check(p.error_code, None, || {
                    partition_what(&name, p.partition_index, p.error_code, "DESCRIBE")
                })?;
                out.insert((name.clone(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_report_keeps_the_deleted_and_the_first_failure() {
        let refused = |name: &str| ClientError::Response {
            what: format!("topic '{name}'"),
            code: 3,
            message: None,
        };
        let mut report = Deletions::new("topic");
        report.record("a".into(), Ok(()));
        report.record("b".into(), Err(refused("b")));
        report.record("c".into(), Err(refused("c")));
        report.record("d".into(), Ok(()));
        assert_eq!(report.deleted, ["a", "d"]);
        let e = report.finish(true).expect_err("b failed");
        assert!(e.to_string().contains("topic 'b'"), "{e}");
        assert!(Deletions::new("group").finish(false).is_ok());
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2024-05-01T12:00:00Z").unwrap(),
            1_714_564_800_000
        );
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00").unwrap(),
            1_714_564_800_000
        );
        assert_eq!(
            parse_time("2024-05-01T12:00:00.5").unwrap(),
            1_714_564_800_500
        );
        assert_eq!(parse_time("1714564800000").unwrap(), 1_714_564_800_000);
        assert_eq!(format_time(1_714_564_800_500), "2024-05-01T12:00:00.500Z");
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-13-01T00:00").is_err());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "A    LONGER\nxyz  1\n");
    }
}
