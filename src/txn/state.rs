//! The transaction state machine of one transactional id, as Kafka's coordinator runs it:
//! pure decisions (no I/O) from the current state and a request to the next durable record or
//! an error. The coordinator ([`super`]) writes the records and sends the markers.
//!
//! ```text
//! Empty / CompleteCommit / CompleteAbort --AddPartitions--> Ongoing --EndTxn--> PrepareCommit
//!                                                             |                 PrepareAbort
//!                           InitProducerId or timeout (epoch bump, fencing) --> PrepareAbort
//! PrepareCommit --markers written--> CompleteCommit;  PrepareAbort --> CompleteAbort
//! ```

use std::collections::BTreeSet;

/// Kafka's transaction states (their codes are stored in `__transaction_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction yet (after InitProducerId).
    Empty,
    /// Partitions have been added; records may be in flight.
    Ongoing,
    /// EndTxn(commit) is durable; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId is durable; abort markers are being
    /// written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// The epoch is being bumped to fence a producer (Kafka writes this before aborting; this
    /// coordinator goes straight to PrepareAbort at the new epoch but reads the code).
    PrepareEpochFence,
}

impl TxnState {
    /// Kafka's code of the state.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a code.
    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's admin APIs use (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction is open or completing.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// The durable state of a transactional id (one `__transaction_state` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer's current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions of the open (or completing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the record was written (ms since the epoch).
    pub last_update_ms: i64,
    /// When the open transaction began (-1 if none).
    pub start_ms: i64,
}

/// A transactional id as the coordinator holds it.
#[derive(Debug, Clone)]
pub struct TxnMetadata {
    /// The last durable state.
    pub record: TxnRecord,
    /// The producer id and epoch before the last bump, so a retried InitProducerId (KIP-360)
    /// is recognised; in memory only.
    pub last_producer: Option<(i64, i16)>,
    /// A transition is being written: other requests answer CONCURRENT_TRANSACTIONS.
    pub pending: bool,
}

impl TxnMetadata {
    /// Metadata from a durable record (replay).
    pub fn from_record(record: TxnRecord) -> TxnMetadata {
        TxnMetadata {
            record,
            last_producer: None,
            pending: false,
        }
    }
}

/// Refusals, as Kafka names them (mapped to protocol codes by the handlers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// The transactional id or producer id is not known here.
    #[error("invalid producer id mapping")]
    InvalidProducerIdMapping,
    /// A newer producer with the same transactional id exists.
    #[error("producer fenced")]
    ProducerFenced,
    /// Another transition is in progress: retry.
    #[error("concurrent transactions")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state.
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// The timeout is not in 1..=`transaction.max.timeout.ms`.
    #[error("invalid transaction timeout")]
    InvalidTransactionTimeout,
    /// This broker does not coordinate the id.
    #[error("not coordinator")]
    NotCoordinator,
    /// The coordinator is replaying its partition.
    #[error("coordinator load in progress")]
    CoordinatorLoadInProgress,
    /// The state could not be written.
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// A fresh producer id is needed to continue (internal; the coordinator allocates it).
    #[error("a producer id is needed")]
    NeedProducerId,
}

/// What a request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write: answer with the current state.
    Done,
    /// Write this record, then answer.
    Write(TxnRecord),
    /// Write this record (an abort at a bumped epoch) and answer the request with the error.
    WriteThenFail(TxnRecord, TxnError),
}

/// The highest epoch a producer id is used with; the next bump takes a new producer id.
const MAX_EPOCH: i16 = i16::MAX - 1;

fn bumped(r: &TxnRecord) -> Option<i16> {
    (r.producer_epoch < MAX_EPOCH).then(|| r.producer_epoch.max(-1) + 1)
}

/// InitProducerId with a transactional id. `expected` is the producer id and epoch the client
/// sent (KIP-360; `None` for -1/-1); `fresh` a newly allocated producer id, needed for a new id
/// or an exhausted epoch ([`TxnError::NeedProducerId`] asks for one).
pub fn init(
    meta: Option<&TxnMetadata>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    fresh: Option<i64>,
    now: i64,
) -> Result<Step, TxnError> {
    let Some(meta) = meta else {
        let producer_id = fresh.ok_or(TxnError::NeedProducerId)?;
        return Ok(Step::Write(TxnRecord {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now,
            start_ms: -1,
        }));
    };
    if meta.pending {
        return Err(TxnError::ConcurrentTransactions);
    }
    let r = &meta.record;
    if let Some((pid, epoch)) = expected {
        let current = pid == r.producer_id && epoch == r.producer_epoch;
        let retried = meta.last_producer == Some((pid, epoch));
        if retried && r.state.is_idle() {
            // The bump this client asked for already happened; answer it again.
            return Ok(Step::Done);
        }
        if !current {
            return Err(TxnError::ProducerFenced);
        }
    }
    match r.state {
        TxnState::Ongoing => {
            // Fence the current producer: abort its transaction at a bumped epoch; the client
            // retries and gets its own bump once the abort completes.
            let mut next = r.clone();
            next.producer_epoch = bumped(r).unwrap_or(r.producer_epoch);
            next.state = TxnState::PrepareAbort;
            next.last_update_ms = now;
            Ok(Step::WriteThenFail(next, TxnError::ConcurrentTransactions))
        }
        s if s.is_idle() => {
            let mut next = r.clone();
            match bumped(r) {
                Some(e) => next.producer_epoch = e,
                None => {
                    next.producer_id = fresh.ok_or(TxnError::NeedProducerId)?;
                    next.producer_epoch = 0;
                }
            }
            next.state = TxnState::Empty;
            next.partitions.clear();
            next.timeout_ms = timeout_ms;
            next.last_update_ms = now;
            next.start_ms = -1;
            Ok(Step::Write(next))
        }
        _ => Err(TxnError::ConcurrentTransactions),
    }
}

fn check_producer(
    meta: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
) -> Result<&TxnMetadata, TxnError> {
    let meta = meta.ok_or(TxnError::InvalidProducerIdMapping)?;
    if meta.record.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if meta.record.producer_epoch != epoch {
        return Err(TxnError::ProducerFenced);
    }
    if meta.pending {
        return Err(TxnError::ConcurrentTransactions);
    }
    Ok(meta)
}

/// AddPartitionsToTxn (and AddOffsetsToTxn with the group's `__consumer_offsets` partition).
pub fn add_partitions(
    meta: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    now: i64,
) -> Result<Step, TxnError> {
    let meta = check_producer(meta, producer_id, epoch)?;
    let r = &meta.record;
    match r.state {
        TxnState::Ongoing if partitions.iter().all(|p| r.partitions.contains(p)) => Ok(Step::Done),
        TxnState::Ongoing
        | TxnState::Empty
        | TxnState::CompleteCommit
        | TxnState::CompleteAbort => {
            let mut next = r.clone();
            if r.state != TxnState::Ongoing {
                next.partitions.clear();
                next.start_ms = now;
            }
            next.partitions.extend(partitions.iter().cloned());
            next.state = TxnState::Ongoing;
            next.last_update_ms = now;
            Ok(Step::Write(next))
        }
        _ => Err(TxnError::ConcurrentTransactions),
    }
}

/// Whether an AddPartitionsToTxn v4+ `verify_only` check passes: the transaction is open at
/// this epoch and holds every partition.
pub fn verify(
    meta: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    partition: &(String, i32),
) -> Result<(), TxnError> {
    let meta = meta.ok_or(TxnError::InvalidProducerIdMapping)?;
    let r = &meta.record;
    if r.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if r.producer_epoch != epoch {
        return Err(TxnError::ProducerFenced);
    }
    if r.state == TxnState::Ongoing && r.partitions.contains(partition) {
        Ok(())
    } else {
        Err(TxnError::InvalidTxnState)
    }
}

/// EndTxn.
pub fn end(
    meta: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now: i64,
) -> Result<Step, TxnError> {
    let meta = check_producer(meta, producer_id, epoch)?;
    let r = &meta.record;
    match (r.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut next = r.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.last_update_ms = now;
            Ok(Step::Write(next))
        }
        // A retry of an EndTxn that completed or is completing.
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(Step::Done),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::ConcurrentTransactions)
        }
        (TxnState::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The transition after every marker of a prepared transaction is written.
pub fn complete(meta: Option<&TxnMetadata>, prepared: &TxnRecord, now: i64) -> Option<TxnRecord> {
    let r = &meta?.record;
    if r.producer_id != prepared.producer_id
        || r.producer_epoch != prepared.producer_epoch
        || r.state != prepared.state
    {
        return None;
    }
    let mut next = r.clone();
    next.state = match r.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    next.partitions.clear();
    next.last_update_ms = now;
    Some(next)
}

/// A transaction open past its timeout: the abort (at a bumped epoch, fencing the producer).
pub fn timed_out(meta: &TxnMetadata, now: i64) -> Option<TxnRecord> {
    let r = &meta.record;
    if meta.pending
        || r.state != TxnState::Ongoing
        || r.start_ms.saturating_add(i64::from(r.timeout_ms)) > now
    {
        return None;
    }
    let mut next = r.clone();
    next.producer_epoch = bumped(r).unwrap_or(r.producer_epoch);
    next.state = TxnState::PrepareAbort;
    next.last_update_ms = now;
    Some(next)
}

/// Whether an idle id has been unused for longer than `expiration_ms`.
pub fn expired(meta: &TxnMetadata, now: i64, expiration_ms: i64) -> bool {
    !meta.pending
        && meta.record.state.is_idle()
        && meta.record.last_update_ms.saturating_add(expiration_ms) <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(step: Step) -> TxnMetadata {
        match step {
            Step::Write(r) | Step::WriteThenFail(r, _) => TxnMetadata::from_record(r),
            Step::Done => panic!("expected a write"),
        }
    }

    fn parts(p: &[(&str, i32)]) -> Vec<(String, i32)> {
        p.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn a_transaction_commits() {
        assert_eq!(
            init(None, "t", 1000, None, None, 0),
            Err(TxnError::NeedProducerId)
        );
        let m = meta(init(None, "t", 1000, None, Some(7), 0).unwrap());
        assert_eq!((m.record.producer_id, m.record.producer_epoch), (7, 0));
        let m = meta(add_partitions(Some(&m), 7, 0, &parts(&[("a", 0)]), 5).unwrap());
        assert_eq!(m.record.state, TxnState::Ongoing);
        assert_eq!(m.record.start_ms, 5);
        assert_eq!(
            add_partitions(Some(&m), 7, 0, &parts(&[("a", 0)]), 6),
            Ok(Step::Done)
        );
        let m = meta(add_partitions(Some(&m), 7, 0, &parts(&[("b", 1)]), 6).unwrap());
        assert_eq!(m.record.partitions.len(), 2);
        let prepared = meta(end(Some(&m), 7, 0, true, 9).unwrap());
        assert_eq!(prepared.record.state, TxnState::PrepareCommit);
        assert_eq!(
            end(Some(&prepared), 7, 0, true, 9),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            end(Some(&prepared), 7, 0, false, 9),
            Err(TxnError::InvalidTxnState)
        );
        let done =
            TxnMetadata::from_record(complete(Some(&prepared), &prepared.record, 10).unwrap());
        assert_eq!(done.record.state, TxnState::CompleteCommit);
        assert!(done.record.partitions.is_empty());
        assert_eq!(end(Some(&done), 7, 0, true, 11), Ok(Step::Done));
        assert_eq!(
            end(Some(&done), 7, 0, false, 11),
            Err(TxnError::InvalidTxnState)
        );
    }

    #[test]
    fn producers_are_checked_and_fenced() {
        let m = meta(init(None, "t", 1000, None, Some(7), 0).unwrap());
        assert_eq!(
            add_partitions(Some(&m), 8, 0, &parts(&[("a", 0)]), 1),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            end(None, 7, 0, true, 1),
            Err(TxnError::InvalidProducerIdMapping)
        );
        let m = meta(add_partitions(Some(&m), 7, 0, &parts(&[("a", 0)]), 1).unwrap());
        // A second producer with the same id: the open transaction is aborted at epoch 1.
        let Step::WriteThenFail(fence, TxnError::ConcurrentTransactions) =
            init(Some(&m), "t", 1000, None, None, 2).unwrap()
        else {
            panic!("expected a fencing abort");
        };
        assert_eq!(
            (fence.state, fence.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        let fenced = TxnMetadata::from_record(fence.clone());
        assert_eq!(
            add_partitions(Some(&fenced), 7, 0, &parts(&[("a", 0)]), 3),
            Err(TxnError::ProducerFenced)
        );
        let aborted = TxnMetadata::from_record(complete(Some(&fenced), &fence, 4).unwrap());
        let again = meta(init(Some(&aborted), "t", 1000, None, None, 5).unwrap());
        assert_eq!(
            (again.record.producer_epoch, again.record.state),
            (2, TxnState::Empty)
        );
        // KIP-360: a client presenting an old epoch is fenced.
        assert_eq!(
            init(Some(&again), "t", 1000, Some((7, 0)), None, 6),
            Err(TxnError::ProducerFenced)
        );
        assert!(matches!(
            init(Some(&again), "t", 1000, Some((7, 2)), None, 6),
            Ok(Step::Write(_))
        ));
    }

    #[test]
    fn epochs_roll_over_to_a_new_producer_id() {
        let mut m = meta(init(None, "t", 1000, None, Some(7), 0).unwrap());
        m.record.producer_epoch = MAX_EPOCH;
        assert_eq!(
            init(Some(&m), "t", 1000, None, None, 1),
            Err(TxnError::NeedProducerId)
        );
        let n = meta(init(Some(&m), "t", 1000, None, Some(9), 1).unwrap());
        assert_eq!((n.record.producer_id, n.record.producer_epoch), (9, 0));
    }

    #[test]
    fn timeouts_and_expiry() {
        let m = meta(init(None, "t", 1000, None, Some(7), 0).unwrap());
        assert!(timed_out(&m, 10_000).is_none(), "nothing open");
        assert!(!expired(&m, 500, 1000));
        assert!(expired(&m, 1000, 1000));
        let m = meta(add_partitions(Some(&m), 7, 0, &parts(&[("a", 0)]), 100).unwrap());
        assert!(timed_out(&m, 1099).is_none());
        let abort = timed_out(&m, 1100).unwrap();
        assert_eq!(
            (abort.state, abort.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert!(
            !expired(&m, 1_000_000, 1000),
            "open transactions never expire"
        );
    }

    #[test]
    fn state_codes_round_trip() {
        for c in 0..8 {
            assert_eq!(TxnState::from_code(c).unwrap().code(), c);
        }
        assert!(TxnState::from_code(8).is_none());
    }
}
