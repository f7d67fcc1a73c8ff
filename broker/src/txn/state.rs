//! The transaction coordinator's state: each transactional id's metadata
//! and its state machine, and the ids one shard coordinates.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use kafka_protocol::ResponseError;

pub const TXN_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.num.partitions` default.
pub const TXN_PARTITIONS: i32 = 50;
/// Kafka's `transaction.max.timeout.ms` default: the longest a producer
/// may ask for.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// Kafka's `transactional.id.expiration.ms` default: an id unused this
/// long (and not in a transaction) is forgotten.
pub const ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The `__transaction_state` partition coordinating `transactional_id`.
pub fn partition_for(transactional_id: &str) -> i32 {
    crate::group::kafka_partition(transactional_id, TXN_PARTITIONS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The status byte Kafka stores in TransactionLogValue.
    pub fn code(self) -> i8 {
        self as i8
    }

    pub fn from_code(code: i8) -> Option<Self> {
        use TxnState::*;
        [Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence]
            .get(usize::try_from(code).ok()?)
            .copied()
    }

    /// The name DescribeTransactions and ListTransactions report.
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

    /// Markers are being written: requests wait (CONCURRENT_TRANSACTIONS).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }
}

/// One transactional id's state, as `__transaction_state` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last KIP-360 bump, so a retried bump whose
    /// answer was lost gets the same epoch (-1: none). Not in the log, as
    /// in Kafka: it does not survive a coordinator change.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) in the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// The request's producer must be the current one: another id is
    /// unknown here, an older epoch has been fenced by a newer producer.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the state with `added` in the
    /// transaction (starting one if none is open), or `None` if they are
    /// all in it already.
    pub fn add_partitions(
        &self,
        added: impl IntoIterator<Item = (String, i32)>,
        now_ms: i64,
    ) -> Result<Option<Self>, ResponseError> {
        if self.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if self.state == TxnState::Dead {
            return Err(ResponseError::InvalidTxnState);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.partitions.extend(added);
        if self.state == TxnState::Ongoing && next.partitions == self.partitions {
            return Ok(None);
        }
        next.state = TxnState::Ongoing;
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn: the prepared state to write, or `None` when the same outcome
    /// is already complete (a retried EndTxn).
    pub fn end(&self, commit: bool, now_ms: i64) -> Result<Option<Self>, ResponseError> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(Some(Self {
                state: if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort },
                last_update_ms: now_ms,
                ..self.clone()
            })),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(ResponseError::ConcurrentTransactions),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// An abort decided by the coordinator (timeout, or a new producer
    /// taking over the id): the epoch is bumped, so markers fence the
    /// producer that left the transaction open.
    pub fn fence_and_abort(&self, now_ms: i64) -> Self {
        Self {
            producer_epoch: self.producer_epoch.saturating_add(1),
            last_producer_epoch: -1,
            state: TxnState::PrepareAbort,
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// The state once every marker is written.
    pub fn completed(&self, now_ms: i64) -> Self {
        Self {
            state: if self.state == TxnState::PrepareCommit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms - self.start_ms > i64::from(self.timeout_ms)
    }
}

/// The transactions coordinated by one shard.
#[derive(Default)]
pub struct TxnCoordinator {
    txns: RefCell<HashMap<String, TxnMetadata>>,
    /// Ids with a state change being written: others wait for it.
    pending: RefCell<HashSet<String>>,
    /// `__transaction_state` partitions being replayed after this shard
    /// became their leader.
    pub loading: crate::group::Loading,
    /// `__transaction_state`'s `min.insync.replicas`: state changes are
    /// written to at least this many replicas.
    pub min_isr: std::cell::Cell<usize>,
}

impl TxnCoordinator {
    pub fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(id).cloned()
    }

    pub fn all(&self) -> Vec<(String, TxnMetadata)> {
        self.txns.borrow().iter().map(|(id, m)| (id.clone(), m.clone())).collect()
    }

    pub fn put(&self, id: &str, meta: TxnMetadata) {
        self.txns.borrow_mut().insert(id.to_string(), meta);
    }

    pub fn remove(&self, id: &str) {
        self.txns.borrow_mut().remove(id);
    }

    /// Marks `id` as having a change in flight; false if one already is.
    pub fn begin_change(&self, id: &str) -> bool {
        self.pending.borrow_mut().insert(id.to_string())
    }

    pub fn end_change(&self, id: &str) {
        self.pending.borrow_mut().remove(id);
    }

    /// Forgets the transactions of a partition this shard no longer leads.
    pub fn unload_partition(&self, partition: i32) {
        self.txns.borrow_mut().retain(|id, _| partition_for(id) != partition);
    }

    /// Applies one replayed `__transaction_state` record.
    pub fn replay(&self, id: String, meta: Option<TxnMetadata>) {
        match meta {
            Some(meta) => drop(self.txns.borrow_mut().insert(id, meta)),
            None => drop(self.txns.borrow_mut().remove(&id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        TxnMetadata {
            producer_id: 7,
            producer_epoch: 2,
            last_producer_epoch: -1,
            timeout_ms: 1000,
            state: TxnState::Ongoing,
            partitions: [("t".to_string(), 0)].into(),
            start_ms: 100,
            last_update_ms: 100,
        }
    }

    #[test]
    fn transitions_follow_kafkas_state_machine() {
        let m = ongoing();
        assert_eq!(m.check_producer(7, 1), Err(ResponseError::ProducerFenced));
        assert_eq!(m.check_producer(8, 2), Err(ResponseError::InvalidProducerIdMapping));
        assert_eq!(m.add_partitions([("t".to_string(), 0)], 200), Ok(None), "already in the transaction");
        let more = m.add_partitions([("u".to_string(), 1)], 200).unwrap().unwrap();
        assert_eq!((more.partitions.len(), more.start_ms), (2, 100));

        let prepared = m.end(true, 300).unwrap().unwrap();
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(prepared.end(true, 301), Err(ResponseError::ConcurrentTransactions));
        assert_eq!(prepared.add_partitions([], 301), Err(ResponseError::ConcurrentTransactions));
        let done = prepared.completed(400);
        assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(done.end(true, 401), Ok(None), "a retried commit");
        assert_eq!(done.end(false, 401), Err(ResponseError::InvalidTxnState));
        let next = done.add_partitions([("t".to_string(), 0)], 500).unwrap().unwrap();
        assert_eq!((next.state, next.start_ms), (TxnState::Ongoing, 500));

        assert!(m.timed_out(1101) && !m.timed_out(1100));
        let fenced = m.fence_and_abort(1200);
        assert_eq!((fenced.state, fenced.producer_epoch), (TxnState::PrepareAbort, 3));
        assert_eq!(fenced.completed(1300).state, TxnState::CompleteAbort);
    }

    #[test]
    fn status_codes_match_kafka() {
        assert_eq!(TxnState::PrepareAbort.code(), 3);
        assert_eq!(TxnState::from_code(5), Some(TxnState::CompleteAbort));
        assert_eq!(TxnState::from_code(8), None);
    }
}
