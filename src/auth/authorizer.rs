//! The authorizer: Kafka's StandardAuthorizer semantics over an in-memory ACL set that is
//! durable in `<log.dirs>/.esker-config/acls` (JSON, replaced atomically on every change).
//!
//! Decision order: super users are allowed; otherwise the bindings covering the resource
//! (LITERAL name or `*`, PREFIXED prefix) whose principal is the caller's or `User:*` and whose
//! host is the caller's or `*` are considered: any DENY for the operation (or ALL) denies; an
//! ALLOW for the operation, ALL or an operation implying it allows; if no binding at all covers
//! the resource, `allow.everyone.if.no.acl.found` decides; else deny. Denials are logged on the
//! `esker::audit` target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::acl::{AclBinding, AclFilter, Operation, Permission, ResourceType};
use super::{AuthError, Principal};

/// The ACL file, relative to the log directory.
pub const ACL_FILE: &str = ".esker-config/acls";

/// Authorization settings from the broker configuration.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` is set: decisions are enforced.
    pub enabled: bool,
    /// `super.users`, e.g. `User:admin`.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// Decides whether a principal may perform an operation on a resource; owns the ACLs.
pub struct Authorizer {
    config: AuthorizerConfig,
    path: PathBuf,
    acls: RwLock<BTreeSet<AclBinding>>,
    /// Serializes changes so the file always matches the memory.
    write: std::sync::Mutex<()>,
}

impl Authorizer {
    /// Loads the ACLs of a data directory (none if the file does not exist).
    pub fn open(log_dir: &Path, config: AuthorizerConfig) -> Result<Authorizer, AuthError> {
        let path = log_dir.join(ACL_FILE);
        let acls = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<AclBinding>>(&bytes)
                .map_err(|e| AuthError::Store(format!("{}: {e}", path.display())))?
                .into_iter()
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(AuthError::Store(format!("{}: {e}", path.display()))),
        };
        if config.enabled {
            tracing::info!(acls = acls.len(), super_users = ?config.super_users, "authorizer enabled");
        }
        Ok(Authorizer {
            config,
            path,
            acls: RwLock::new(acls),
            write: std::sync::Mutex::new(()),
        })
    }

    /// Whether decisions are enforced (`authorizer.class.name` set).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The decision, without logging. Always true when the authorizer is off.
    pub fn allowed(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.config.enabled {
            return true;
        }
        let p = principal.to_string();
        if self.config.super_users.contains(&p) {
            return true;
        }
        let acls = self.acls.read().unwrap_or_else(|e| e.into_inner());
        let mut any_for_resource = false;
        let mut allow = false;
        for b in acls.iter().filter(|b| b.covers(resource_type, name)) {
            any_for_resource = true;
            if !(b.principal == p || b.principal == "User:*") {
                continue;
            }
            if !(b.host == "*" || b.host == host) {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation == Operation::All || b.operation == op => {
                    return false
                }
                Permission::Allow if b.operation.allows(op) => allow = true,
                _ => {}
            }
        }
        allow || (!any_for_resource && self.config.allow_if_no_acl)
    }

    /// The decision, with an audit line (target `esker::audit`) for a denial. This is the hook
    /// every front end (Kafka handlers, Kinesis) calls.
    pub fn authorize(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let ok = self.allowed(principal, host, op, resource_type, name);
        if !ok {
            tracing::info!(
                target: "esker::audit",
                principal = %principal,
                host,
                operation = %op,
                resource_type = %resource_type,
                resource = name,
                "denied"
            );
        }
        ok
    }

    /// Adds bindings (existing ones are kept once) and persists the set.
    pub fn create(&self, bindings: Vec<AclBinding>) -> Result<(), AuthError> {
        self.change(|set| {
            for b in bindings {
                set.insert(b);
            }
        })
    }

    /// Bindings matching a filter.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let acls = self.acls.read().unwrap_or_else(|e| e.into_inner());
        acls.iter().filter(|b| filter.matches(b)).cloned().collect()
    }

    /// Removes the bindings matching each filter; returns what each filter removed.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AuthError> {
        let mut out = Vec::new();
        self.change(|set| {
            for f in filters {
                let gone: Vec<AclBinding> = set.iter().filter(|b| f.matches(b)).cloned().collect();
                for b in &gone {
                    set.remove(b);
                }
                out.push(gone);
            }
        })?;
        Ok(out)
    }

    /// Replaces every binding (a cluster node following the metadata log) and persists the set.
    pub fn replace(&self, bindings: BTreeSet<AclBinding>) -> Result<(), AuthError> {
        self.change(|set| *set = bindings)
    }

    /// Every binding.
    pub fn all(&self) -> BTreeSet<AclBinding> {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a change to a copy, writes the copy (tmp file, fsync, rename, directory fsync),
    /// then publishes it: a failed write changes nothing.
    fn change<F: FnOnce(&mut BTreeSet<AclBinding>)>(&self, f: F) -> Result<(), AuthError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut copy = self.acls.read().unwrap_or_else(|e| e.into_inner()).clone();
        f(&mut copy);
        let list: Vec<&AclBinding> = copy.iter().collect();
        let bytes =
            serde_json::to_vec_pretty(&list).map_err(|e| AuthError::Store(e.to_string()))?;
        super::write_atomically(&self.path, &bytes)
            .map_err(|e| AuthError::Store(format!("{}: {e}", self.path.display())))?;
        *self.acls.write().unwrap_or_else(|e| e.into_inner()) = copy;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::PatternType;

    fn binding(
        rt: ResourceType,
        pt: PatternType,
        name: &str,
        p: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            pattern_type: pt,
            resource_name: name.into(),
            principal: p.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn authorizer(dir: &Path, allow_if_no_acl: bool) -> Authorizer {
        Authorizer::open(
            dir,
            AuthorizerConfig {
                enabled: true,
                super_users: vec!["User:admin".into()],
                allow_if_no_acl,
            },
        )
        .unwrap()
    }

    #[test]
    fn standard_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path(), false);
        let alice = Principal::user("alice");
        let bob = Principal::user("bob");
        use Operation::*;
        use ResourceType::*;
        a.create(vec![
            binding(
                Topic,
                PatternType::Prefixed,
                "orders-",
                "User:alice",
                Read,
                Permission::Allow,
            ),
            binding(
                Topic,
                PatternType::Literal,
                "orders-secret",
                "User:alice",
                All,
                Permission::Deny,
            ),
            binding(
                Topic,
                PatternType::Literal,
                "*",
                "User:*",
                Describe,
                Permission::Allow,
            ),
            binding(
                Group,
                PatternType::Literal,
                "g",
                "User:alice",
                Read,
                Permission::Allow,
            ),
        ])
        .unwrap();
        assert!(a.allowed(&alice, "1.2.3.4", Read, Topic, "orders-1"));
        assert!(a.allowed(&alice, "1.2.3.4", Describe, Topic, "orders-1"));
        assert!(!a.allowed(&alice, "1.2.3.4", Write, Topic, "orders-1"));
        assert!(
            !a.allowed(&alice, "1.2.3.4", Read, Topic, "orders-secret"),
            "deny wins"
        );
        assert!(
            a.allowed(&bob, "h", Describe, Topic, "anything"),
            "User:* and *"
        );
        assert!(!a.allowed(&bob, "h", Read, Group, "g"));
        assert!(
            a.allowed(&alice, "h", Describe, Group, "g"),
            "read implies describe"
        );
        assert!(
            !a.allowed(&alice, "h", Create, Cluster, "kafka-cluster"),
            "no acl: deny"
        );
        assert!(a.allowed(&Principal::user("admin"), "h", Read, Topic, "orders-secret"));
        // durable
        let b = authorizer(dir.path(), true);
        assert_eq!(
            b.describe(&AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap())
                .len(),
            4
        );
        assert!(
            b.allowed(&bob, "h", Create, Cluster, "kafka-cluster"),
            "no acl: allow-everyone"
        );
        assert!(!b.allowed(&bob, "h", Read, Group, "g"), "acls exist for g");
        let gone = b
            .delete(&[AclFilter::from_wire(2, Some("orders-secret"), 2, None, None, 1, 1).unwrap()])
            .unwrap();
        assert_eq!(
            gone[0].len(),
            3,
            "MATCH: literal, prefixed and wildcard bindings"
        );
    }
}
