//! DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), versions 0..=1: the quota
//! entities (`user`, `client-id`, each named or `<default>`) and their values, stored by
//! [`crate::quota::Quotas`].

use std::sync::Arc;

use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::error::Code;
use crate::context::BrokerContext;
use crate::quota::{Entity, Part, KEYS};

/// Supported versions of both APIs.
pub const VERSIONS: (i16, i16) = (0, 1);

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const ANY: i8 = 2;

fn part_matches(part: &Part, match_type: i8, name: Option<&str>) -> bool {
    match (match_type, part) {
        (EXACT, Some(Some(n))) => Some(n.as_str()) == name,
        (DEFAULT, Some(None)) => true,
        (ANY, Some(_)) => true,
        _ => false,
    }
}

/// Handles DescribeClientQuotas.
pub async fn describe(
    ctx: Arc<BrokerContext>,
    req: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    use kafka_protocol::messages::describe_client_quotas_response::{
        EntityData, EntryData, ValueData,
    };
    for c in &req.components {
        if !matches!(c.entity_type.as_str(), "user" | "client-id")
            || !(EXACT..=ANY).contains(&c.match_type)
        {
            return DescribeClientQuotasResponse::default()
                .with_error_code(Code::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "unsupported quota filter component {} (match type {})",
                    c.entity_type.as_str(),
                    c.match_type
                ))));
        }
    }
    let entries = ctx
        .quotas
        .all()
        .into_iter()
        .filter(|(e, _)| {
            let mut matched_user = false;
            let mut matched_client = false;
            for c in &req.components {
                let name = c._match.as_ref().map(|m| m.as_str());
                let ok = match c.entity_type.as_str() {
                    "user" => {
                        matched_user = true;
                        part_matches(&e.user, c.match_type, name)
                    }
                    _ => {
                        matched_client = true;
                        part_matches(&e.client_id, c.match_type, name)
                    }
                };
                if !ok {
                    return false;
                }
            }
            // strict: no components besides the filtered ones.
            !req.strict
                || ((matched_user || e.user.is_none()) && (matched_client || e.client_id.is_none()))
        })
        .map(|(e, values)| {
            let mut entity = Vec::new();
            for (ty, part) in [("user", &e.user), ("client-id", &e.client_id)] {
                if let Some(name) = part {
                    entity.push(
                        EntityData::default()
                            .with_entity_type(StrBytes::from_static_str(ty))
                            .with_entity_name(name.clone().map(StrBytes::from_string)),
                    );
                }
            }
            EntryData::default().with_entity(entity).with_values(
                values
                    .into_iter()
                    .map(|(k, v)| {
                        ValueData::default()
                            .with_key(StrBytes::from_string(k))
                            .with_value(v)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// Handles AlterClientQuotas.
pub async fn alter(
    ctx: Arc<BrokerContext>,
    req: AlterClientQuotasRequest,
    _version: i16,
) -> AlterClientQuotasResponse {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    let mut out = Vec::with_capacity(req.entries.len());
    for e in req.entries {
        let echo: Vec<EntityData> = e
            .entity
            .iter()
            .map(|d| {
                EntityData::default()
                    .with_entity_type(d.entity_type.clone())
                    .with_entity_name(d.entity_name.clone())
            })
            .collect();
        let outcome: Result<_, (Code, String)> = (|| {
            let mut entity = Entity {
                user: None,
                client_id: None,
            };
            for d in &e.entity {
                let name = Some(d.entity_name.as_ref().map(|n| n.to_string()));
                match d.entity_type.as_str() {
                    "user" if entity.user.is_none() => entity.user = name,
                    "client-id" if entity.client_id.is_none() => entity.client_id = name,
                    other => {
                        return Err((
                            Code::InvalidRequest,
                            format!("unsupported or repeated quota entity type `{other}`"),
                        ))
                    }
                }
            }
            if entity.user.is_none() && entity.client_id.is_none() {
                return Err((
                    Code::InvalidRequest,
                    "a quota entity needs a user or a client-id".into(),
                ));
            }
            let mut ops = Vec::with_capacity(e.ops.len());
            for op in &e.ops {
                let key = op.key.as_str();
                if !KEYS.contains(&key) {
                    return Err((Code::InvalidRequest, format!("unknown quota key `{key}`")));
                }
                if !op.remove && (!op.value.is_finite() || op.value <= 0.0) {
                    return Err((
                        Code::InvalidRequest,
                        format!("quota `{key}` must be a positive number"),
                    ));
                }
                ops.push((key.to_string(), (!op.remove).then_some(op.value)));
            }
            Ok((entity, ops))
        })();
        let outcome = match outcome {
            Ok(_) if req.validate_only => Ok(()),
            Ok((entity, ops)) => ctx.alter_quota(entity, ops).await.map_err(|err| {
                (
                    Code::KafkaStorageError,
                    format!("cannot store quotas: {err}"),
                )
            }),
            Err(e) => Err(e),
        };
        let mut entry = EntryData::default().with_entity(echo);
        if let Err((code, msg)) = outcome {
            tracing::info!(error = %msg, "client quota change refused");
            entry.error_code = code.code();
            entry.error_message = Some(StrBytes::from_string(msg));
        }
        out.push(entry);
    }
    AlterClientQuotasResponse::default().with_entries(out)
}
