//! `esker acl list|add|remove` (DescribeAcls, CreateAcls, DeleteAcls), with Kafka's names for
//! resource types, pattern types, operations and permissions.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::output::{print_json, Table};
use super::{usage, AclAction, AclArgs, CliResult};
use crate::client::{check, Client, Target};

const RESOURCE_TYPES: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "TOPIC"),
    (3, "GROUP"),
    (4, "CLUSTER"),
    (5, "TRANSACTIONAL_ID"),
    (6, "DELEGATION_TOKEN"),
    (7, "USER"),
];
const PATTERNS: &[(i8, &str)] = &[(1, "ANY"), (2, "MATCH"), (3, "LITERAL"), (4, "PREFIXED")];
const OPERATIONS: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
    (13, "CREATE_TOKENS"),
    (14, "DESCRIBE_TOKENS"),
    (15, "TWO_PHASE_COMMIT"),
];
const PERMISSIONS: &[(i8, &str)] = &[(1, "ANY"), (2, "DENY"), (3, "ALLOW")];

fn name_of(table: &[(i8, &'static str)], code: i8) -> String {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("UNKNOWN({code})"))
}

/// Accepts `DESCRIBE_CONFIGS`, `describe-configs` or `DescribeConfigs`.
fn code_of(table: &[(i8, &'static str)], what: &str, s: &str) -> CliResult<i8> {
    let norm = |x: &str| x.replace(['_', '-'], "").to_ascii_uppercase();
    table
        .iter()
        .find(|(_, n)| norm(n) == norm(s))
        .map(|(c, _)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(_, n)| *n).collect();
            usage(format!(
                "{what} `{s}`: expected one of {}",
                names.join(", ")
            ))
        })
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One ACL binding as printed.
#[derive(Serialize, Clone)]
struct Binding {
    principal: String,
    host: String,
    operation: String,
    permission: String,
    resource_type: String,
    resource_name: String,
    pattern_type: String,
}

impl AclArgs {
    /// (resource type, name) when a resource flag is given.
    fn resource(&self) -> Option<(i8, String)> {
        if let Some(t) = &self.topic {
            Some((2, t.clone()))
        } else if let Some(g) = &self.group {
            Some((3, g.clone()))
        } else if self.cluster {
            Some((4, "kafka-cluster".to_string()))
        } else if let Some(t) = &self.transactional_id {
            Some((5, t.clone()))
        } else {
            self.user.as_ref().map(|u| (7, u.clone()))
        }
    }

    /// Filters: one per operation (one ANY filter without --operation).
    fn filters(&self) -> CliResult<Vec<DeleteAclsFilter>> {
        let (rtype, name) = match self.resource() {
            Some((t, n)) => (t, Some(sb(&n))),
            None => (1, None),
        };
        let pattern = match &self.pattern {
            Some(p) => code_of(PATTERNS, "--pattern", p)?,
            None => 1,
        };
        let permission = match &self.permission {
            Some(p) => code_of(PERMISSIONS, "--permission", p)?,
            None => 1,
        };
        let ops = if self.operation.is_empty() {
            vec![1]
        } else {
            self.operation
                .iter()
                .map(|o| code_of(OPERATIONS, "--operation", o))
                .collect::<CliResult<Vec<_>>>()?
        };
        Ok(ops
            .into_iter()
            .map(|op| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(rtype)
                    .with_resource_name_filter(name.clone())
                    .with_pattern_type_filter(pattern)
                    .with_principal_filter(self.principal.as_deref().map(sb))
                    .with_host_filter(self.host.as_deref().map(sb))
                    .with_operation(op)
                    .with_permission_type(permission)
            })
            .collect())
    }
}

fn print_bindings(bindings: &[Binding], json: bool, empty: &str) -> CliResult<()> {
    if json {
        return print_json(&bindings);
    }
    if bindings.is_empty() {
        println!("{empty}");
        return Ok(());
    }
    let mut table = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
        "RESOURCE-TYPE",
        "RESOURCE-NAME",
        "PATTERN",
    ]);
    for b in bindings {
        table.row(vec![
            b.principal.clone(),
            b.host.clone(),
            b.operation.clone(),
            b.permission.clone(),
            b.resource_type.clone(),
            b.resource_name.clone(),
            b.pattern_type.clone(),
        ]);
    }
    table.print();
    Ok(())
}

fn denied(code: i16, op: &str) -> String {
    if code == 31 {
        format!("not authorized to {op} the cluster (needed for ACLs)")
    } else {
        format!("cannot {} ACLs", op.to_lowercase())
    }
}

/// Runs an ACL action.
pub async fn run(client: &mut Client, action: AclAction, json: bool) -> CliResult<()> {
    match action {
        AclAction::List { acl } => {
            let f = acl
                .filters()?
                .into_iter()
                .next()
                .ok_or_else(|| usage("no filter"))?;
            if acl.operation.len() > 1 {
                return Err(usage("acl list takes at most one --operation"));
            }
            let resp = client
                .send(Target::Any, |_| {
                    DescribeAclsRequest::default()
                        .with_resource_type_filter(f.resource_type_filter)
                        .with_resource_name_filter(f.resource_name_filter)
                        .with_pattern_type_filter(f.pattern_type_filter)
                        .with_principal_filter(f.principal_filter)
                        .with_host_filter(f.host_filter)
                        .with_operation(f.operation)
                        .with_permission_type(f.permission_type)
                })
                .await?;
            check(resp.error_code, resp.error_message.as_deref(), || {
                denied(resp.error_code, "DESCRIBE")
            })?;
            let mut bindings: Vec<Binding> = resp
                .resources
                .iter()
                .flat_map(|r| {
                    r.acls.iter().map(move |a| Binding {
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: name_of(OPERATIONS, a.operation),
                        permission: name_of(PERMISSIONS, a.permission_type),
                        resource_type: name_of(RESOURCE_TYPES, r.resource_type),
                        resource_name: r.resource_name.to_string(),
                        pattern_type: name_of(PATTERNS, r.pattern_type),
                    })
                })
                .collect();
            bindings.sort_by(|a, b| {
                (
                    &a.resource_type,
                    &a.resource_name,
                    &a.principal,
                    &a.operation,
                )
                    .cmp(&(
                        &b.resource_type,
                        &b.resource_name,
                        &b.principal,
                        &b.operation,
                    ))
            });
            print_bindings(&bindings, json, "no ACLs")
        }
        AclAction::Add { acl } => {
            let (rtype, name) = acl
                .resource()
                .ok_or_else(|| usage("acl add needs a resource: --topic, --group, --cluster, --transactional-id or --user"))?;
            let principal = acl
                .principal
                .clone()
                .ok_or_else(|| usage("acl add needs --principal (e.g. User:alice)"))?;
            if acl.operation.is_empty() {
                return Err(usage("acl add needs at least one --operation"));
            }
            let pattern = code_of(
                PATTERNS,
                "--pattern",
                acl.pattern.as_deref().unwrap_or("LITERAL"),
            )?;
            if pattern != 3 && pattern != 4 {
                return Err(usage("--pattern for acl add: LITERAL or PREFIXED"));
            }
            let permission = code_of(
                PERMISSIONS,
                "--permission",
                acl.permission.as_deref().unwrap_or("ALLOW"),
            )?;
            let host = acl.host.clone().unwrap_or_else(|| "*".to_string());
            let mut creations = Vec::new();
            let mut bindings = Vec::new();
            for op in &acl.operation {
                let code = code_of(OPERATIONS, "--operation", op)?;
                creations.push(
                    AclCreation::default()
                        .with_resource_type(rtype)
                        .with_resource_name(sb(&name))
                        .with_resource_pattern_type(pattern)
                        .with_principal(sb(&principal))
                        .with_host(sb(&host))
                        .with_operation(code)
                        .with_permission_type(permission),
                );
                bindings.push(Binding {
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: name_of(OPERATIONS, code),
                    permission: name_of(PERMISSIONS, permission),
                    resource_type: name_of(RESOURCE_TYPES, rtype),
                    resource_name: name.clone(),
                    pattern_type: name_of(PATTERNS, pattern),
                });
            }
            let resp = client
                .send(Target::Controller, |_| {
                    CreateAclsRequest::default().with_creations(creations)
                })
                .await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_deref(), || {
                    denied(r.error_code, "ALTER")
                })?;
            }
            if !json {
                println!("added {} ACL(s):", bindings.len());
            }
            print_bindings(&bindings, json, "")
        }
        AclAction::Remove { acl } => {
            if acl.resource().is_none() {
                return Err(usage(
                    "acl remove needs a resource: --topic, --group, --cluster, --transactional-id or --user",
                ));
            }
            let filters = acl.filters()?;
            let resp = client
                .send(Target::Controller, |_| {
                    DeleteAclsRequest::default().with_filters(filters)
                })
                .await?;
            let mut removed = Vec::new();
            for fr in &resp.filter_results {
                check(fr.error_code, fr.error_message.as_deref(), || {
                    denied(fr.error_code, "ALTER")
                })?;
                for m in &fr.matching_acls {
                    removed.push(Binding {
                        principal: m.principal.to_string(),
                        host: m.host.to_string(),
                        operation: name_of(OPERATIONS, m.operation),
                        permission: name_of(PERMISSIONS, m.permission_type),
                        resource_type: name_of(RESOURCE_TYPES, m.resource_type),
                        resource_name: m.resource_name.to_string(),
                        pattern_type: name_of(PATTERNS, m.pattern_type),
                    });
                }
            }
            if !json && !removed.is_empty() {
                println!("removed {} ACL(s):", removed.len());
            }
            print_bindings(&removed, json, "no ACL matched")
        }
    }
}
