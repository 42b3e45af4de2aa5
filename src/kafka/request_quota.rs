//! Request quotas (KIP-124, the `request_percentage` client quota): the time spent handling a
//! request (its first phase in the connection's read loop plus every poll of its response
//! future, so waiting for fsyncs, long polls or a byte-quota delay is not counted) is charged
//! to the caller's (user, client-id) quota, a percentage of one thread's time. Over the quota,
//! the response carries `throttle_time_ms` and is held back that long, which mutes the
//! connection as the byte quotas do (responses leave in request order).
//!
//! Runs on the connection's task: [`meter`] wraps a response future in a task-local
//! [`Meter`]; the response's encoding (`kafka::encode`) calls [`charged_ms`] and puts the
//! throttle in `throttle_time_ms`. A response encoded before the future runs (a whole
//! denial) or never (acks=0) is charged when the future ends and only held back.
//! ApiVersions, SASL and followers' fetches are exempt, as in Kafka.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Reply, ResponseFuture};
use crate::context::BrokerContext;
use crate::quota;

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// A response type's `throttle_time_ms` (a no-op for the few without one).
pub trait Throttle {
    /// The throttle time it carries.
    fn throttle_time_ms(&self) -> i32;
    /// Sets its throttle time.
    fn set_throttle_time_ms(&mut self, ms: i32);
}

macro_rules! throttled {
    ($($t:ident),* $(,)?) => {$(
        impl Throttle for kafka_protocol::messages::$t {
            fn throttle_time_ms(&self) -> i32 {
                self.throttle_time_ms
            }
            fn set_throttle_time_ms(&mut self, ms: i32) {
                self.throttle_time_ms = ms;
            }
        }
    )*};
}

macro_rules! unthrottled {
    ($($t:ident),* $(,)?) => {$(
        impl Throttle for kafka_protocol::messages::$t {
            fn throttle_time_ms(&self) -> i32 {
                0
            }
            fn set_throttle_time_ms(&mut self, _ms: i32) {}
        }
    )*};
}

throttled!(
    ProduceResponse,
    FetchResponse,
    ListOffsetsResponse,
    MetadataResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    SyncGroupResponse,
    DescribeGroupsResponse,
    ListGroupsResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    DeleteRecordsResponse,
    InitProducerIdResponse,
    OffsetForLeaderEpochResponse,
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    TxnOffsetCommitResponse,
    DescribeAclsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    DescribeConfigsResponse,
    AlterConfigsResponse,
    DescribeLogDirsResponse,
    CreatePartitionsResponse,
    DeleteGroupsResponse,
    ElectLeadersResponse,
    IncrementalAlterConfigsResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
    OffsetDeleteResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
    DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse,
    DescribeClusterResponse,
    DescribeProducersResponse,
    DescribeTransactionsResponse,
    ListTransactionsResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    DescribeTopicPartitionsResponse,
    CreateDelegationTokenResponse,
    RenewDelegationTokenResponse,
    ExpireDelegationTokenResponse,
    DescribeDelegationTokenResponse,
    GetTelemetrySubscriptionsResponse,
    PushTelemetryResponse,
    ListConfigResourcesResponse,
);

unthrottled!(
    SaslHandshakeResponse,
    SaslAuthenticateResponse,
    WriteTxnMarkersResponse,
    DescribeQuorumResponse,
);

/// One request's handler time and, once charged, its throttle.
pub struct Meter {
    ctx: Arc<BrokerContext>,
    user: String,
    client_id: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    busy: Duration,
    polling_since: Option<Instant>,
    /// Set once the time was charged (or the request exempted).
    delay: Option<Duration>,
}

impl Meter {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Charges the time so far (once) and returns the throttle.
    fn finish(&self) -> Duration {
        let mut s = self.state();
        if let Some(d) = s.delay {
            return d;
        }
        let mut busy = s.busy;
        if let Some(since) = s.polling_since {
            busy += since.elapsed();
        }
        let delay = self
            .ctx
            .quotas
            .record_request_time(&self.user, &self.client_id, busy);
        self.ctx
            .metrics
            .observe_throttle(quota::Kind::Request, delay);
        if !delay.is_zero() {
            tracing::debug!(client_id = %self.client_id, user = %self.user,
                busy_us = busy.as_micros() as u64, delay_ms = delay.as_millis() as u64,
                "request quota exceeded");
        }
        s.delay = Some(delay);
        delay
    }
}

/// Wraps a response future so that its handling time is charged to the caller's request
/// quota; `phase_one` is the time the read loop already spent on it. Unchanged when no entity
/// has a `request_percentage`.
pub(super) fn meter(
    ctx: &Arc<BrokerContext>,
    user: String,
    client_id: String,
    phase_one: Duration,
    fut: ResponseFuture,
) -> ResponseFuture {
    if !ctx.quotas.has_request_quotas() {
        return fut;
    }
    let meter = Arc::new(Meter {
        ctx: ctx.clone(),
        user,
        client_id,
        state: Mutex::new(State {
            busy: phase_one,
            ..State::default()
        }),
    });
    let timed = Timed {
        inner: fut,
        meter: meter.clone(),
    };
    Box::pin(async move {
        let reply = METER.scope(meter.clone(), timed).await;
        // Responses that were not encoded here (acks=0) are charged now.
        let delay = meter.finish();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        reply
    })
}

/// Charges the current request's time (if it is metered) and puts its throttle in `resp`
/// when larger than the one already there (a byte quota's).
pub(super) fn charge<R: Throttle>(resp: &mut R) {
    let ms = charged_ms();
    if ms > resp.throttle_time_ms() {
        resp.set_throttle_time_ms(ms);
    }
}

/// Charges the current request's time (if it is metered) and returns its throttle in
/// milliseconds (0 when not metered or within quota).
pub(super) fn charged_ms() -> i32 {
    METER
        .try_with(|m| m.finish().as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(0)
}

/// Exempts the current request (a follower's fetch).
pub(super) fn exempt() {
    let _ = METER.try_with(|m| m.state().delay = Some(Duration::ZERO));
}

/// A response future whose polls are timed.
struct Timed {
    inner: ResponseFuture,
    meter: Arc<Meter>,
}

impl Future for Timed {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        self.meter.state().polling_since = Some(Instant::now());
        let out = self.inner.as_mut().poll(cx);
        let mut s = self.meter.state();
        if let Some(since) = s.polling_since.take() {
            s.busy += since.elapsed();
        }
        out
    }
}
