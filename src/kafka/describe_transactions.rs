//! DescribeTransactions (key 65, version 0) and ListTransactions (key 66, versions 0..=2): the
//! state of transactional ids this broker coordinates, each shown only to principals allowed to
//! DESCRIBE it (and topics only when they may DESCRIBE the topic).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Access;
use super::error::{txn_code, Code};
use crate::auth::{Operation, ResourceType};
use crate::context::BrokerContext;
use crate::txn::state::TxnState as State;

/// Supported DescribeTransactions versions.
pub const DESCRIBE_VERSIONS: (i16, i16) = (0, 0);
/// Supported ListTransactions versions.
pub const LIST_VERSIONS: (i16, i16) = (0, 2);

/// Handles DescribeTransactions.
pub fn describe(
    ctx: &BrokerContext,
    req: DescribeTransactionsRequest,
    access: &Access,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let out = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !access.allowed(ctx, Operation::Describe, ResourceType::TransactionalId, &id) {
                return out.with_error_code(Code::TransactionalIdAuthorizationFailed.code());
            }
            match ctx.transactions.describe(id.as_str()) {
                Err(None) => out.with_error_code(Code::TransactionalIdNotFound.code()),
                Err(Some(e)) => out.with_error_code(txn_code(&e, false).code()),
                Ok(r) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &r.partitions {
                        if !access.topic(ctx, Operation::Describe, t) {
                            continue;
                        }
                        match topics.last_mut() {
                            Some(last) if last.topic.as_str() == t => last.partitions.push(*p),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    out.with_transaction_state(StrBytes::from_static_str(r.state.name()))
                        .with_transaction_timeout_ms(r.timeout_ms)
                        .with_transaction_start_time_ms(r.start_ms)
                        .with_producer_id(ProducerId(r.producer_id))
                        .with_producer_epoch(r.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// Handles ListTransactions.
pub fn list(
    ctx: &BrokerContext,
    req: ListTransactionsRequest,
    access: &Access,
) -> ListTransactionsResponse {
    let all_states = [
        State::Empty,
        State::Ongoing,
        State::PrepareCommit,
        State::PrepareAbort,
        State::CompleteCommit,
        State::CompleteAbort,
        State::Dead,
        State::PrepareEpochFence,
    ];
    let mut unknown = Vec::new();
    let mut wanted = Vec::new();
    for f in &req.state_filters {
        match all_states.iter().find(|s| s.name() == f.as_str()) {
            Some(s) => wanted.push(*s),
            None => unknown.push(f.clone()),
        }
    }
    let pattern = match req
        .transactional_id_pattern
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{})$", p.as_str())) {
            Ok(r) => Some(r),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(Code::InvalidRegularExpression.code())
            }
        },
    };
    let now = BrokerContext::now_ms();
    let listed = ctx
        .transactions
        .list()
        .into_iter()
        .filter(|r| wanted.is_empty() || wanted.contains(&r.state))
        .filter(|r| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == r.producer_id)
        })
        .filter(|r| {
            req.duration_filter < 0 || (r.start_ms >= 0 && now - r.start_ms >= req.duration_filter)
        })
        .filter(|r| {
            pattern
                .as_ref()
                .map_or(true, |p| p.is_match(&r.transactional_id))
        })
        .filter(|r| {
            access.allowed(
                ctx,
                Operation::Describe,
                ResourceType::TransactionalId,
                &r.transactional_id,
            )
        })
        .map(|r| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(r.transactional_id)))
                .with_producer_id(ProducerId(r.producer_id))
                .with_transaction_state(StrBytes::from_static_str(r.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
