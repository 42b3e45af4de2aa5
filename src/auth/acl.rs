//! ACL vocabulary with Kafka's wire codes: resource types, pattern types, operations,
//! permissions, the binding stored by the authorizer and the filters of DescribeAcls/DeleteAcls.

use serde::{Deserialize, Serialize};

use super::AuthError;

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// The Kafka wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$v => $code,)* }
            }

            /// From a Kafka wire code.
            pub fn from_code(code: i8) -> Result<$name, AuthError> {
                match code {
                    $($code => Ok($name::$v),)*
                    other => Err(AuthError::InvalidAcl(format!(
                        "unknown {} code {other}", stringify!($name)
                    ))),
                }
            }

            /// Kafka's upper-case name.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum!(
    /// What an ACL protects.
    ResourceType {
        /// Filters only: any type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (name `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user.
        User = 7, "USER";
    }
);

coded_enum!(
    /// How an ACL's resource name is matched.
    PatternType {
        /// Filters only: any pattern type, names taken literally.
        Any = 1, "ANY";
        /// Filters only: every binding that would apply to the named resource.
        Match = 2, "MATCH";
        /// The exact name (`*` matches every name).
        Literal = 3, "LITERAL";
        /// Every name starting with the pattern.
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// What a principal does to a resource.
    Operation {
        /// Filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Inter-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded_enum!(
    /// Allow or deny.
    Permission {
        /// Filters only: either.
        Any = 1, "ANY";
        /// Deny (wins over any allow).
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
);

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl Operation {
    /// Whether an ALLOW ACL for `self` allows `op` (ALL, the same, or an implied operation:
    /// DESCRIBE ⇐ READ, WRITE, DELETE, ALTER; DESCRIBE_CONFIGS ⇐ ALTER_CONFIGS).
    pub fn allows(self, op: Operation) -> bool {
        use Operation::*;
        self == All
            || self == op
            || (op == Describe && matches!(self, Read | Write | Delete | Alter))
            || (op == DescribeConfigs && self == AlterConfigs)
    }
}

/// A stored ACL: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// Resource type (never ANY).
    pub resource_type: ResourceType,
    /// Pattern type (LITERAL or PREFIXED).
    pub pattern_type: PatternType,
    /// Resource name or prefix (`*` with LITERAL for every name).
    pub resource_name: String,
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// Host (`*` for any).
    pub host: String,
    /// Operation (never ANY).
    pub operation: Operation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

impl AclBinding {
    /// Builds a binding from wire values, refusing filter-only values and malformed principals.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, AuthError> {
        let resource_type = ResourceType::from_code(resource_type)?;
        let pattern_type = PatternType::from_code(pattern_type)?;
        let operation = Operation::from_code(operation)?;
        let permission = Permission::from_code(permission)?;
        if resource_type == ResourceType::Any {
            return Err(AuthError::InvalidAcl(
                "resource type ANY is for filters only".into(),
            ));
        }
        if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Err(AuthError::InvalidAcl(format!(
                "pattern type {pattern_type} is for filters only"
            )));
        }
        if operation == Operation::Any || permission == Permission::Any {
            return Err(AuthError::InvalidAcl("ANY is for filters only".into()));
        }
        if resource_name.is_empty() {
            return Err(AuthError::InvalidAcl("empty resource name".into()));
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return Err(AuthError::InvalidAcl(format!(
                "the cluster resource is named `{CLUSTER_NAME}`"
            )));
        }
        if !principal
            .split_once(':')
            .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
        {
            return Err(AuthError::InvalidAcl(format!(
                "principal `{principal}` is not `Type:name`"
            )));
        }
        Ok(AclBinding {
            resource_type,
            pattern_type,
            resource_name: resource_name.to_string(),
            principal: principal.to_string(),
            host: if host.is_empty() {
                "*".into()
            } else {
                host.to_string()
            },
            operation,
            permission,
        })
    }

    /// Whether this binding's resource pattern covers the named resource.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// A DescribeAcls / DeleteAcls filter; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// Resource type (ANY matches every type).
    pub resource_type: ResourceType,
    /// Resource name; with MATCH, the resource whose applicable bindings are wanted.
    pub resource_name: Option<String>,
    /// Pattern type.
    pub pattern_type: PatternType,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation (ANY matches every operation).
    pub operation: Operation,
    /// Permission (ANY matches both).
    pub permission: Permission,
}

impl AclFilter {
    /// Builds a filter from wire values.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, AuthError> {
        Ok(AclFilter {
            resource_type: ResourceType::from_code(resource_type)?,
            resource_name: resource_name.map(str::to_string),
            pattern_type: PatternType::from_code(pattern_type)?,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: Operation::from_code(operation)?,
            permission: Permission::from_code(permission)?,
        })
    }

    /// Whether a stored binding matches this filter.
    pub fn matches(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        let name_ok = match (self.pattern_type, &self.resource_name) {
            (PatternType::Match, Some(n)) => match b.pattern_type {
                PatternType::Literal => b.resource_name == *n || b.resource_name == "*",
                PatternType::Prefixed => n.starts_with(&b.resource_name),
                _ => false,
            },
            (PatternType::Match, None) => true,
            (pt, name) => {
                (pt == PatternType::Any || pt == b.pattern_type)
                    && name.as_ref().map_or(true, |n| *n == b.resource_name)
            }
        };
        name_ok
            && self.principal.as_ref().map_or(true, |p| *p == b.principal)
            && self.host.as_ref().map_or(true, |h| *h == b.host)
            && (self.operation == Operation::Any || self.operation == b.operation)
            && (self.permission == Permission::Any || self.permission == b.permission)
    }
}
