//! `esker group list|describe|reset-offsets|delete`: groups from every broker's ListGroups,
//! a group's members (consumer-protocol assignments decoded) and per-partition lag, offset
//! resets planned as kafka-consumer-groups.sh does (dry run unless --execute, refused while
//! the group has members), committed with generation -1 as an admin client does.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::Serialize;

use super::output::{list_offsets, or_dash, parse_time, print_json, topics, Deletions, Table};
use super::{usage, CliResult, GroupAction, ResetTo};
use crate::client::{check, Client, ClientError, Target};

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

fn group_what(group: &str, code: i16, op: &str) -> String {
    match code {
        30 => format!("not authorized to {op} group '{group}'"),
        69 => format!("group '{group}' does not exist"),
        68 => format!("group '{group}' is not empty"),
        _ => format!("cannot {} group '{group}'", op.to_lowercase()),
    }
}

#[derive(Serialize)]
struct ListedGroup {
    group: String,
    state: String,
    protocol_type: String,
}

#[derive(Serialize, Clone)]
struct Member {
    member_id: String,
    client_id: String,
    host: String,
    assignment: Vec<(String, i32)>,
}

#[derive(Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    log_end_offset: i64,
    lag: Option<i64>,
    member_id: Option<String>,
}

#[derive(Serialize)]
struct DescribedGroup {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    coordinator: i32,
    members: Vec<Member>,
    offsets: Vec<PartitionLag>,
}

/// State, protocol type, protocol and members of a group (DescribeGroups at its coordinator).
async fn describe_group(
    client: &mut Client,
    group: &str,
) -> CliResult<(i32, String, String, String, Vec<Member>)> {
    let coord = client.coordinator(group).await?;
    let resp = client
        .send(Target::Node(coord), |_| {
            DescribeGroupsRequest::default().with_groups(vec![gid(group)])
        })
        .await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Protocol("DescribeGroups answered no group".into()))?;
    check(g.error_code, g.error_message.as_deref(), || {
        group_what(group, g.error_code, "DESCRIBE")
    })?;
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| Member {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if consumer {
                decode_assignment(m.member_assignment.clone())
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok((
        coord,
        g.group_state.to_string(),
        g.protocol_type.to_string(),
        g.protocol_data.to_string(),
        members,
    ))
}

/// The partitions of a consumer-protocol assignment (empty when it does not decode).
fn decode_assignment(mut b: Bytes) -> Vec<(String, i32)> {
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut b, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.0.to_string(), *p)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Committed offsets of a group: (topic, partition) → offset (-1 none).
async fn committed(
    client: &mut Client,
    coord: i32,
    group: &str,
) -> CliResult<BTreeMap<(String, i32), i64>> {
    let resp = client
        .send_capped(Target::Node(coord), 7, |_| {
            OffsetFetchRequest::default()
                .with_group_id(gid(group))
                .with_topics(None)
        })
        .await?;
    check(resp.error_code, None, || {
        group_what(group, resp.error_code, "DESCRIBE")
    })?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// Leaders of the partitions of `names`: (topic, partition) → leader.
async fn leaders(
    client: &mut Client,
    names: &BTreeSet<String>,
) -> CliResult<BTreeMap<(String, i32), i32>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list: Vec<String> = names.iter().cloned().collect();
    Ok(topics(client, Some(&list))
        .await?
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| ((t.name.clone(), p.index), p.leader))
        })
        .collect())
}

/// Runs a group action.
pub async fn run(client: &mut Client, action: GroupAction, json: bool) -> CliResult<()> {
    match action {
        GroupAction::List => {
            let mut groups = Vec::new();
            let nodes: Vec<i32> = client.brokers.keys().copied().collect();
            for node in nodes {
                let resp = client
                    .send(Target::Node(node), |_| ListGroupsRequest::default())
                    .await?;
                check(resp.error_code, None, || {
                    "not authorized to list groups".to_string()
                })?;
                groups.extend(resp.groups.into_iter().map(|g| ListedGroup {
                    group: g.group_id.0.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                }));
            }
            groups.sort_by(|a, b| a.group.cmp(&b.group));
            groups.dedup_by(|a, b| a.group == b.group);
            if json {
                return print_json(&groups);
            }
            let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for g in &groups {
                table.row(vec![
                    g.group.clone(),
                    or_dash(Some(&g.state).filter(|s| !s.is_empty())),
                    or_dash(Some(&g.protocol_type).filter(|s| !s.is_empty())),
                ]);
            }
            table.print();
            Ok(())
        }
        GroupAction::Describe { group } => describe(client, &group, json).await,
        GroupAction::ResetOffsets {
            group,
            topic,
            all_topics,
            to,
            execute,
        } => reset(client, &group, &topic, all_topics, &to, execute, json).await,
        GroupAction::Delete { groups } => {
            let mut report = Deletions::new("group");
            for g in &groups {
                let result = async {
                    let coord = client.coordinator(g).await?;
                    let resp = client
                        .send(Target::Node(coord), |_| {
                            DeleteGroupsRequest::default().with_groups_names(vec![gid(g)])
                        })
                        .await?;
                    for r in &resp.results {
                        check(r.error_code, None, || group_what(g, r.error_code, "DELETE"))?;
                    }
                    Ok::<(), ClientError>(())
                }
                .await;
                report.record(g.clone(), result);
            }
            report.finish(json)
        }
    }
}

async fn describe(client: &mut Client, group: &str, json: bool) -> CliResult<()> {
    let (coord, state, protocol_type, protocol, members) = describe_group(client, group).await?;
    if state == "Dead" {
        return Err(ClientError::Response {
            what: group_what(group, 69, "DESCRIBE"),
            code: 69,
            message: None,
        }
        .into());
    }
    let committed = committed(client, coord, group).await?;
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m.member_id.clone());
        }
    }
    let partitions: BTreeSet<(String, i32)> =
        committed.keys().chain(owner.keys()).cloned().collect();
    let names: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    let leaders = leaders(client, &names).await?;
    let with_leader: Vec<(String, i32, i32)> = partitions
        .iter()
        .filter_map(|tp| leaders.get(tp).map(|l| (tp.0.clone(), tp.1, *l)))
        .collect();
    let ends = list_offsets(client, &with_leader, -1).await?;
    let offsets: Vec<PartitionLag> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).copied();
            let end = ends.get(tp).copied().unwrap_or(-1);
            PartitionLag {
                topic: tp.0.clone(),
                partition: tp.1,
                current_offset: current,
                log_end_offset: end,
                lag: current.map(|c| (end - c).max(0)),
                member_id: owner.get(tp).cloned(),
            }
        })
        .collect();
    let out = DescribedGroup {
        group: group.to_string(),
        state,
        protocol_type,
        protocol,
        coordinator: coord,
        members,
        offsets,
    };
    if json {
        return print_json(&out);
    }
    println!(
        "Group: {}  State: {}  ProtocolType: {}  Protocol: {}  Coordinator: {}  Members: {}",
        out.group,
        out.state,
        or_dash(Some(&out.protocol_type).filter(|s| !s.is_empty())),
        or_dash(Some(&out.protocol).filter(|s| !s.is_empty())),
        out.coordinator,
        out.members.len()
    );
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ]);
    for o in &out.offsets {
        table.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            or_dash(o.current_offset),
            o.log_end_offset.to_string(),
            or_dash(o.lag),
            or_dash(o.member_id.clone()),
        ]);
    }
    table.print();
    if !out.members.is_empty() {
        println!();
        let mut table = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for m in &out.members {
            let a: Vec<String> = m
                .assignment
                .iter()
                .map(|(t, p)| format!("{t}:{p}"))
                .collect();
            table.row(vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.host.clone(),
                or_dash(Some(a.join(",")).filter(|s| !s.is_empty())),
            ]);
        }
        table.print();
    }
    Ok(())
}

#[derive(Serialize)]
struct PlannedReset {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
}

/// Parses `TOPIC` or `TOPIC:0,1`.
fn topic_spec(s: &str) -> CliResult<(String, Option<Vec<i32>>)> {
    match s.rsplit_once(':') {
        None => Ok((s.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| usage(format!("--topic `{s}`: expected TOPIC or TOPIC:0,1,2")))?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

async fn reset(
    client: &mut Client,
    group: &str,
    topic_args: &[String],
    all_topics: bool,
    to: &ResetTo,
    execute: bool,
    json: bool,
) -> CliResult<()> {
    if topic_args.is_empty() && !all_topics {
        return Err(usage("reset-offsets needs --topic or --all-topics"));
    }
    let (coord, state, _, _, members) = describe_group(client, group).await?;
    if !(state == "Empty" || state == "Dead") {
        return Err(ClientError::Request(format!(
            "group '{group}' is {state} with {} member(s): offsets can only be reset while it has no members (stop its consumers first)",
            members.len()
        ))
        .into());
    }
    let committed = committed(client, coord, group).await?;
    // The partitions to reset.
    let mut wanted: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut specs = Vec::new();
    if all_topics {
        names.extend(committed.keys().map(|(t, _)| t.clone()));
        wanted.extend(committed.keys().cloned());
    } else {
        for s in topic_args {
            let (t, ps) = topic_spec(s)?;
            names.insert(t.clone());
            specs.push((t, ps));
        }
    }
    let leaders = leaders(client, &names).await?;
    for (t, ps) in specs {
        match ps {
            Some(ps) => {
                for p in ps {
                    if !leaders.contains_key(&(t.clone(), p)) {
                        return Err(ClientError::Response {
                            what: format!("partition {p} of topic '{t}' does not exist"),
                            code: 3,
                            message: None,
                        }
                        .into());
                    }
                    wanted.insert((t.clone(), p));
                }
            }
            None => wanted.extend(leaders.keys().filter(|(lt, _)| *lt == t).cloned()),
        }
    }
    let parts: Vec<(String, i32, i32)> = wanted
        .iter()
        .filter_map(|tp| leaders.get(tp).map(|l| (tp.0.clone(), tp.1, *l)))
        .collect();
    let earliest = list_offsets(client, &parts, -2).await?;
    let latest = list_offsets(client, &parts, -1).await?;
    let at_time = match &to.to_datetime {
        Some(t) => Some(list_offsets(client, &parts, parse_time(t)?).await?),
        None => None,
    };
    let mut plan = Vec::new();
    for tp in &wanted {
        let lo = earliest.get(tp).copied().unwrap_or(0);
        let hi = latest.get(tp).copied().unwrap_or(0);
        let current = committed.get(tp).copied();
        let target = if to.to_earliest {
            lo
        } else if to.to_latest {
            hi
        } else if let Some(found) = &at_time {
            // No record that late: the log end, as Kafka's tool does.
            match found.get(tp).copied() {
                Some(o) if o >= 0 => o,
                _ => hi,
            }
        } else if let Some(n) = to.shift_by {
            current.unwrap_or(hi).saturating_add(n)
        } else {
            to.to_offset.unwrap_or(hi)
        };
        plan.push(PlannedReset {
            topic: tp.0.clone(),
            partition: tp.1,
            current_offset: current,
            new_offset: target.clamp(lo, hi.max(lo)),
        });
    }
    if execute && !plan.is_empty() {
        let mut by_topic: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for p in &plan {
            by_topic.entry(p.topic.clone()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(p.partition)
                    .with_committed_offset(p.new_offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let resp = client
            .send_capped(Target::Node(coord), 9, |v| {
                let r = OffsetCommitRequest::default()
                    .with_group_id(gid(group))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(StrBytes::from_static_str(""))
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetCommitRequestTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    );
                if (2..=4).contains(&v) {
                    r.with_retention_time_ms(-1)
                } else {
                    r
                }
            })
            .await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    let what = group_what(group, p.error_code, "READ");
                    if p.error_code == 29 {
                        format!("not authorized to READ topic '{}'", t.name.0.as_str())
                    } else {
                        format!(
                            "{what}: commit of {}:{} failed",
                            t.name.0.as_str(),
                            p.partition_index
                        )
                    }
                })?;
            }
        }
    }
    if json {
        return print_json(&serde_json::json!({
            "group": group, "executed": execute, "partitions": plan
        }));
    }
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]);
    for p in &plan {
        table.row(vec![
            group.to_string(),
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(p.current_offset),
            p.new_offset.to_string(),
        ]);
    }
    table.print();
    if !execute {
        eprintln!("dry run: nothing changed; add --execute to apply these offsets");
    }
    Ok(())
}
