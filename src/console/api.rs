//! The console's JSON API, one function per route, each authorized like the Kafka request that
//! does the same (KafkaApis' operations): listings drop what the caller may not DESCRIBE;
//! records need READ on the topic; creating a topic CREATE on the cluster or the topic;
//! deleting one DELETE on the topic; ACLs and users DESCRIBE on the cluster; the broker's
//! configuration DESCRIBE_CONFIGS on the cluster. Changes are logged on `esker::audit`.
//!
//! | route | answers |
//! |---|---|
//! | `GET session` | the caller, whether authentication is on, what this node is |
//! | `GET topics` / `GET topics/<t>` | topics with partitions, leaders, offsets and sizes |
//! | `GET topics/<t>/records?partition=&offset=\|timestamp=&limit=` | a page of records |
//! | `POST topics` `{name, partitions, configs}` / `DELETE topics/<t>` | create / delete |
//! | `GET groups` / `GET groups/<g>` | groups; members and lag per partition |
//! | `GET acls`, `GET users` | ACL bindings; SCRAM users and mechanisms (no secrets) |
//! | `GET streams` | Kinesis streams with shards and hash-key ranges |
//! | `GET config` | the broker's configuration, secrets masked |
//! | `GET throughput` | bytes in/out and messages in per second, last minutes |

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::records::{self, Start};
use super::{Caller, Console, ConsoleError};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{Operation, ResourceType};
use crate::catalog::TopicMeta;
use crate::context::{BrokerContext, CreateTopicError};
use crate::shard::ShardState;

type Answer = Result<(StatusCode, Value), ConsoleError>;

/// Dispatches an API call (`route` is the path after `/ui/api/`).
pub(super) async fn route(
    console: &Console,
    caller: &Caller,
    method: &Method,
    route: &str,
    query: &str,
    body: &Bytes,
) -> Answer {
    let ctx = &*console.ctx;
    let parts: Vec<String> = route
        .split('/')
        .map(|s| percent_decode(s).ok_or_else(|| bad("malformed percent-encoding in the path")))
        .collect::<Result<_, _>>()?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let ok = |v: Value| Ok((StatusCode::OK, v));
    match (method, parts.as_slice()) {
        (&Method::GET, ["session"]) => ok(session(ctx, caller)),
        (&Method::GET, ["topics"]) => ok(topics(ctx, caller).await),
        (&Method::POST, ["topics"]) => create_topic(ctx, caller, body).await,
        (&Method::GET, ["topics", name]) => ok(topic(ctx, caller, name).await?),
        (&Method::DELETE, ["topics", name]) => delete_topic(ctx, caller, name).await,
        (&Method::GET, ["topics", name, "records"]) => {
            ok(topic_records(ctx, caller, name, query).await?)
        }
        (&Method::GET, ["groups"]) => ok(groups(ctx, caller).await?),
        (&Method::GET, ["groups", id]) => ok(group(ctx, caller, id).await?),
        (&Method::GET, ["acls"]) => ok(acls(ctx, caller)?),
        (&Method::GET, ["users"]) => ok(users(ctx, caller)?),
        (&Method::GET, ["streams"]) => ok(streams(ctx, caller)?),
        (&Method::GET, ["config"]) => ok(config(ctx, caller)?),
        (&Method::GET, ["throughput"]) => ok(json!({
            "interval_ms": super::SAMPLE_INTERVAL.as_millis() as u64,
            "samples": console.samples(),
        })),
        (
            _,
            ["session" | "topics" | "groups" | "acls" | "users" | "streams" | "config"
            | "throughput", ..],
        ) => Err(ConsoleError::BadRequest(format!(
            "{method} is not supported here"
        ))),
        _ => Err(ConsoleError::NotFound(format!("no API route `{route}`"))),
    }
}

fn bad(msg: &str) -> ConsoleError {
    ConsoleError::BadRequest(msg.to_string())
}

/// The decision without a log line (listings filter silently, as Kafka's do).
fn may(ctx: &BrokerContext, c: &Caller, op: Operation, rt: ResourceType, name: &str) -> bool {
    ctx.security
        .authorizer
        .allowed(&c.principal, &c.host, op, rt, name)
}

/// The decision for an explicit action: a denial is logged on `esker::audit`.
fn check(
    ctx: &BrokerContext,
    c: &Caller,
    op: Operation,
    rt: ResourceType,
    name: &str,
) -> Result<(), ConsoleError> {
    if ctx
        .security
        .authorizer
        .authorize(&c.principal, &c.host, op, rt, name)
    {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(format!(
            "{} may not {op} {rt} `{name}`",
            c.principal
        )))
    }
}

fn may_describe_topic(ctx: &BrokerContext, c: &Caller, name: &str) -> bool {
    may(ctx, c, Operation::Describe, ResourceType::Topic, name)
}

fn session(ctx: &BrokerContext, c: &Caller) -> Value {
    json!({
        "principal": c.principal.to_string(),
        "authentication_required": super::auth::required(ctx),
        "authorizer": ctx.security.authorizer.enabled(),
        "node_id": ctx.config.node_id,
        "cluster_id": ctx.cluster_id,
        "cluster": ctx.cluster.is_some(),
        "can_create_topics": may(ctx, c, Operation::Create, ResourceType::Cluster, CLUSTER_NAME),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// A topic's partitions as this node sees them.
async fn partitions(ctx: &BrokerContext, meta: &TopicMeta) -> Vec<Value> {
    let image = ctx.cluster.as_ref().map(|c| c.image());
    let mut out = Vec::with_capacity(meta.partitions.max(0) as usize);
    for p in 0..meta.partitions {
        let (leader, replicas, isr) = match image.as_ref().and_then(|i| i.partition(&meta.name, p))
        {
            Some(pi) => (pi.leader, pi.replicas.clone(), pi.isr.clone()),
            None => (
                ctx.config.node_id,
                vec![ctx.config.node_id],
                vec![ctx.config.node_id],
            ),
        };
        let local = ctx.is_replica(&meta.name, p);
        let snap = if local {
            let t = meta.name.to_string();
            ctx.shard(&meta.name, p)
                .call(move |s: &mut ShardState| s.snapshot(&t, p))
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        out.push(json!({
            "partition": p,
            "leader": leader,
            "replicas": replicas,
            "isr": isr,
            "local": snap.is_some(),
            "log_start_offset": snap.as_ref().map(|s| s.log_start_offset),
            "log_end_offset": snap.as_ref().map(|s| s.high_watermark),
            "size_bytes": snap.as_ref().map(|s| s.size_bytes),
        }));
    }
    out
}

fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

async fn topic_summary(ctx: &BrokerContext, meta: &TopicMeta) -> Value {
    let parts = partitions(ctx, meta).await;
    let sum = |key: &str| -> i64 { parts.iter().filter_map(|p| p[key].as_i64()).sum() };
    let records = sum("log_end_offset") - sum("log_start_offset");
    json!({
        "name": &*meta.name,
        "id": meta.id.to_string(),
        "internal": is_internal(&meta.name),
        "partition_count": meta.partitions,
        "size_bytes": sum("size_bytes"),
        "records": records,
        "configs": &*meta.configs,
        "partitions": parts,
    })
}

async fn topics(ctx: &BrokerContext, c: &Caller) -> Value {
    let mut out = Vec::new();
    for meta in ctx.catalog.all() {
        if may_describe_topic(ctx, c, &meta.name) {
            out.push(topic_summary(ctx, &meta).await);
        }
    }
    Value::Array(out)
}

/// The topic, or 404 when it does not exist or may not be described (existence is not leaked).
fn described_topic(ctx: &BrokerContext, c: &Caller, name: &str) -> Result<TopicMeta, ConsoleError> {
    ctx.catalog
        .get(name)
        .filter(|_| may_describe_topic(ctx, c, name))
        .ok_or_else(|| ConsoleError::NotFound(format!("topic `{name}` does not exist")))
}

async fn topic(ctx: &BrokerContext, c: &Caller, name: &str) -> Result<Value, ConsoleError> {
    let meta = described_topic(ctx, c, name)?;
    let mut v = topic_summary(ctx, &meta).await;
    v["can_delete"] =
        json!(!is_internal(name) && may(ctx, c, Operation::Delete, ResourceType::Topic, name));
    v["can_read"] = json!(may(ctx, c, Operation::Read, ResourceType::Topic, name));
    v["stream"] = json!(crate::kinesis::naming::stream_of(name));
    Ok(v)
}

/// `a=1&b=2` → map (values percent-decoded).
fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ConsoleError> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_decode(&v.replace('+', " "))
                .ok_or_else(|| bad("malformed percent-encoding in the query"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

fn int_param(q: &BTreeMap<String, String>, key: &str) -> Result<Option<i64>, ConsoleError> {
    q.get(key)
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ConsoleError::BadRequest(format!("`{key}` must be an integer")))
        })
        .transpose()
}

async fn topic_records(
    ctx: &BrokerContext,
    c: &Caller,
    name: &str,
    query: &str,
) -> Result<Value, ConsoleError> {
    let meta = described_topic(ctx, c, name)?;
    check(ctx, c, Operation::Read, ResourceType::Topic, name)?;
    let q = parse_query(query)?;
    let partition = int_param(&q, "partition")?.unwrap_or(0);
    if partition < 0 || partition >= i64::from(meta.partitions) {
        return Err(ConsoleError::NotFound(format!(
            "topic `{name}` has no partition {partition}"
        )));
    }
    let partition = partition as i32;
    if !ctx.is_replica(name, partition) {
        return Err(ConsoleError::Unavailable(format!(
            "partition {partition} has no replica on this node; open the console of one of its replicas"
        )));
    }
    let limit = int_param(&q, "limit")?.unwrap_or(20);
    if limit < 1 || limit > records::MAX_LIMIT as i64 {
        return Err(ConsoleError::BadRequest(format!(
            "`limit` must be between 1 and {}",
            records::MAX_LIMIT
        )));
    }
    let start = match (int_param(&q, "offset")?, int_param(&q, "timestamp")?) {
        (Some(_), Some(_)) => return Err(bad("give `offset` or `timestamp`, not both")),
        (Some(o), None) => Start::Offset(o),
        (None, Some(ts)) => Start::Timestamp(ts),
        (None, None) => Start::Latest,
    };
    let page = records::page(ctx, name, partition, start, limit as usize).await?;
    serde_json::to_value(page).map_err(|e| ConsoleError::Unavailable(e.to_string()))
}

#[derive(serde::Deserialize)]
struct CreateTopic {
    name: String,
    #[serde(default = "one")]
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

fn one() -> i32 {
    1
}

fn audit(c: &Caller, action: &str, resource: &str, outcome: &str) {
    tracing::info!(
        target: "esker::audit",
        principal = %c.principal,
        host = %c.host,
        source = "console",
        action,
        resource,
        outcome,
        "console change"
    );
}

async fn create_topic(ctx: &BrokerContext, c: &Caller, body: &Bytes) -> Answer {
    let req: CreateTopic = serde_json::from_slice(body)
        .map_err(|e| ConsoleError::BadRequest(format!("invalid body: {e}")))?;
    let name = req.name.trim().to_string();
    let resource = format!("Topic:{name}");
    let allowed = may(
        ctx,
        c,
        Operation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || ctx.security.authorizer.authorize(
        &c.principal,
        &c.host,
        Operation::Create,
        ResourceType::Topic,
        &name,
    );
    if !allowed {
        audit(c, "CreateTopic", &resource, "denied");
        return Err(ConsoleError::Forbidden(format!(
            "{} may not CREATE topic `{name}`",
            c.principal
        )));
    }
    let result = async {
        for (k, v) in &req.configs {
            crate::topic_config::validate(k, v)
                .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
        }
        ctx.create_topic(&name, req.partitions, req.configs.clone())
            .await
            .map_err(|e| match e {
                CreateTopicError::AlreadyExists(_) => ConsoleError::Conflict(e.to_string()),
                CreateTopicError::InvalidName(_)
                | CreateTopicError::InvalidPartitions
                | CreateTopicError::InvalidReplicationFactor(_)
                | CreateTopicError::InvalidReplicaAssignment(_) => {
                    ConsoleError::BadRequest(e.to_string())
                }
                CreateTopicError::Storage(_) | CreateTopicError::Unavailable(_) => {
                    ConsoleError::Unavailable(e.to_string())
                }
            })
    }
    .await;
    match result {
        Ok(meta) => {
            audit(c, "CreateTopic", &resource, "created");
            Ok((StatusCode::CREATED, topic_summary(ctx, &meta).await))
        }
        Err(e) => {
            audit(c, "CreateTopic", &resource, &format!("failed: {e}"));
            Err(e)
        }
    }
}

async fn delete_topic(ctx: &BrokerContext, c: &Caller, name: &str) -> Answer {
    let resource = format!("Topic:{name}");
    let described = described_topic(ctx, c, name);
    if let Err(e) = described {
        audit(c, "DeleteTopic", &resource, "unknown topic");
        return Err(e);
    }
    if let Err(e) = check(ctx, c, Operation::Delete, ResourceType::Topic, name) {
        audit(c, "DeleteTopic", &resource, "denied");
        return Err(e);
    }
    if is_internal(name) {
        audit(c, "DeleteTopic", &resource, "refused: internal topic");
        return Err(ConsoleError::BadRequest(format!(
            "`{name}` is an internal topic"
        )));
    }
    match ctx.delete_topic(name).await {
        Some(_) => {
            audit(c, "DeleteTopic", &resource, "deleted");
            Ok((StatusCode::OK, json!({ "deleted": name })))
        }
        None => {
            audit(c, "DeleteTopic", &resource, "failed");
            Err(ConsoleError::Unavailable(format!(
                "topic `{name}` could not be deleted"
            )))
        }
    }
}

fn group_error(e: crate::coordinator::GroupError) -> ConsoleError {
    ConsoleError::Unavailable(format!("group coordinator: {e}"))
}

/// Committed offsets of a group with each partition's log end offset and lag (partitions of
/// topics the caller may not describe are left out, as OffsetFetch does).
async fn lag(ctx: &BrokerContext, c: &Caller, id: &str) -> Result<Vec<Value>, ConsoleError> {
    let offsets = ctx
        .coordinator
        .fetch_offsets(id, None, None, false)
        .await
        .map_err(group_error)?;
    let mut out = Vec::with_capacity(offsets.len());
    for o in offsets {
        if o.offset < 0 || !may_describe_topic(ctx, c, &o.topic) {
            continue;
        }
        let end = if ctx.catalog.get(&o.topic).is_some() && ctx.is_replica(&o.topic, o.partition) {
            let t = o.topic.clone();
            let p = o.partition;
            ctx.shard(&o.topic, p)
                .call(move |s: &mut ShardState| s.snapshot(&t, p))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|s| s.high_watermark)
        } else {
            None
        };
        out.push(json!({
            "topic": o.topic,
            "partition": o.partition,
            "committed_offset": o.offset,
            "log_end_offset": end,
            "lag": end.map(|e| (e - o.offset).max(0)),
            "metadata": o.metadata,
        }));
    }
    Ok(out)
}

async fn groups(ctx: &BrokerContext, c: &Caller) -> Result<Value, ConsoleError> {
    let list = ctx.coordinator.list().await.map_err(group_error)?;
    let mut out = Vec::new();
    for g in list {
        if !may(
            ctx,
            c,
            Operation::Describe,
            ResourceType::Group,
            &g.group_id,
        ) {
            continue;
        }
        let members = match ctx.coordinator.describe(&g.group_id).await {
            Ok(Some(d)) => d.members.len(),
            _ => 0,
        };
        let lags = lag(ctx, c, &g.group_id).await.unwrap_or_default();
        let total: i64 = lags.iter().filter_map(|l| l["lag"].as_i64()).sum();
        out.push(json!({
            "group_id": g.group_id,
            "state": g.state,
            "protocol_type": g.protocol_type,
            "type": g.group_type,
            "members": members,
            "lag": total,
        }));
    }
    Ok(Value::Array(out))
}

async fn group(ctx: &BrokerContext, c: &Caller, id: &str) -> Result<Value, ConsoleError> {
    let not_found = || ConsoleError::NotFound(format!("group `{id}` does not exist"));
    if !may(ctx, c, Operation::Describe, ResourceType::Group, id) {
        return Err(not_found());
    }
    let described = ctx.coordinator.describe(id).await.map_err(group_error)?;
    let offsets = lag(ctx, c, id).await?;
    let Some(d) = described else {
        if offsets.is_empty() {
            return Err(not_found());
        }
        return Ok(json!({ "group_id": id, "state": "Empty", "members": [], "offsets": offsets }));
    };
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": assignment(&m.assignment),
            })
        })
        .collect();
    Ok(json!({
        "group_id": id,
        "state": d.state,
        "protocol_type": d.protocol_type,
        "protocol": d.protocol,
        "members": members,
        "offsets": offsets,
    }))
}

/// A classic consumer's assignment bytes as `[{topic, partitions}]` (empty if not one).
fn assignment(bytes: &Bytes) -> Value {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return json!([]);
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => Value::Array(
            a.assigned_partitions
                .iter()
                .map(|t| json!({ "topic": t.topic.as_str(), "partitions": t.partitions }))
                .collect(),
        ),
        Err(_) => json!([]),
    }
}

fn acls(ctx: &BrokerContext, c: &Caller) -> Result<Value, ConsoleError> {
    check(
        ctx,
        c,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let all: Vec<Value> = ctx
        .security
        .authorizer
        .all()
        .into_iter()
        .map(|b| {
            json!({
                "resource_type": b.resource_type.to_string(),
                "pattern_type": b.pattern_type.to_string(),
                "resource_name": b.resource_name,
                "principal": b.principal,
                "host": b.host,
                "operation": b.operation.to_string(),
                "permission": b.permission.to_string(),
            })
        })
        .collect();
    Ok(json!({ "enabled": ctx.security.authorizer.enabled(), "acls": all }))
}

fn users(ctx: &BrokerContext, c: &Caller) -> Result<Value, ConsoleError> {
    check(
        ctx,
        c,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let scram: Vec<Value> = ctx
        .security
        .credentials
        .describe()
        .into_iter()
        .map(|(user, mechs)| {
            let mechs: Vec<Value> = mechs
                .into_iter()
                .map(|(m, iterations)| json!({ "mechanism": m.name(), "iterations": iterations }))
                .collect();
            json!({ "user": user, "mechanisms": mechs })
        })
        .collect();
    let plain: Vec<&String> = ctx.security.config.plain_users.keys().collect();
    Ok(json!({ "scram": scram, "plain": plain }))
}

fn streams(ctx: &BrokerContext, c: &Caller) -> Result<Value, ConsoleError> {
    use crate::kinesis::store::StreamStore;
    let store = match &ctx.cluster {
        Some(controller) => StreamStore::cluster(controller.clone()),
        None => StreamStore::open(StreamStore::dir_of(&ctx.config.log_dir))
            .map_err(|e| ConsoleError::Unavailable(format!("kinesis stream metadata: {e}")))?,
    };
    let now = BrokerContext::now_ms();
    let mut out = Vec::new();
    for topic in ctx.catalog.all() {
        let Some(stream) = crate::kinesis::naming::stream_of(&topic.name) else {
            continue;
        };
        if !may_describe_topic(ctx, c, &topic.name) {
            continue;
        }
        let meta = store.get(&topic, now);
        let shards: Vec<Value> = meta
            .shards
            .iter()
            .map(|s| {
                json!({
                    "shard_id": format!("shardId-{:012}", s.partition),
                    "partition": s.partition,
                    "starting_hash_key": s.start,
                    "ending_hash_key": s.end,
                    "parent": s.parent.map(|p| format!("shardId-{p:012}")),
                    "adjacent_parent": s.adjacent_parent.map(|p| format!("shardId-{p:012}")),
                    "open": s.is_open(),
                })
            })
            .collect();
        out.push(json!({
            "stream": stream,
            "topic": &*topic.name,
            "mode": meta.mode,
            "created_ms": meta.created_ms,
            "derived": meta.derived,
            "open_shards": meta.open_shards(),
            "shards": shards,
        }));
    }
    Ok(json!({
        "endpoint": ctx.config.kinesis.listener.is_some(),
        "streams": out,
    }))
}

/// Whether a key holds a secret: Kafka's sensitive keys, and anything named like a password.
fn sensitive(key: &str) -> bool {
    crate::config::SENSITIVE_KEYS.contains(&key)
        || ["password", "secret", "credentials"]
            .iter()
            .any(|w| key.contains(w))
}

fn config(ctx: &BrokerContext, c: &Caller) -> Result<Value, ConsoleError> {
    check(
        ctx,
        c,
        Operation::DescribeConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let dynamic = ctx.config.dynamic_configs();
    let out: Vec<Value> = crate::config::KEYS
        .iter()
        .map(|d| {
            let (value, source) = if let Some(v) = dynamic.per_broker.get(d.name) {
                (v.clone(), "DYNAMIC_BROKER_CONFIG")
            } else if let Some(v) = dynamic.cluster_default.get(d.name) {
                (v.clone(), "DYNAMIC_DEFAULT_BROKER_CONFIG")
            } else if ctx.config.explicit.contains(d.name) {
                (
                    ctx.config.values.get(d.name).cloned().unwrap_or_default(),
                    "STATIC_BROKER_CONFIG",
                )
            } else {
                (
                    ctx.config
                        .values
                        .get(d.name)
                        .cloned()
                        .unwrap_or_else(|| d.default.to_string()),
                    "DEFAULT_CONFIG",
                )
            };
            let hidden = sensitive(d.name);
            json!({
                "name": d.name,
                "value": if hidden { Value::Null } else { Value::String(value) },
                "sensitive": hidden,
                "source": source,
                "dynamic": crate::config::DYNAMIC_KEYS.contains(&d.name),
                "doc": d.doc,
            })
        })
        .collect();
    Ok(Value::Array(out))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn masks_secrets() {
        assert!(sensitive("sasl.plain.users"));
        assert!(sensitive("kinesis.credentials"));
        assert!(sensitive("ssl.keystore.password"));
        assert!(!sensitive("log.dirs"));
    }

    #[test]
    fn parses_queries() {
        let q = parse_query("partition=1&timestamp=&limit=5&x=a+b").unwrap();
        assert_eq!(int_param(&q, "partition").unwrap(), Some(1));
        assert_eq!(int_param(&q, "timestamp").unwrap(), None);
        assert_eq!(q["x"], "a b");
        assert!(int_param(&parse_query("limit=x").unwrap(), "limit").is_err());
    }
}
