//! One local replica of a partition and its role, living on the partition's
//! owner shard. As leader it tracks each follower's log end offset, moves
//! the high watermark to the lowest log end in the ISR, and decides when a
//! follower should leave (lagging past `replica.lag.time.max.ms`) or join
//! (caught up) the ISR. As follower it only remembers whom it follows and
//! whether it must first truncate to match that leader.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use sluice_raft::{PartitionState, NO_LEADER};
use sluice_storage::{set_leader_epoch, AppendInfo, LogOffsets, Partition, SequenceError, StorageError};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::error::CommitError;

/// A follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Its log end offset; -1 until it first fetches in this epoch.
    log_end: i64,
    /// The last time it had everything the leader had.
    caught_up_at: Instant,
    last_fetch_at: Instant,
    /// The leader's log end at that fetch.
    leader_end_at_last_fetch: i64,
    /// The broker epoch it last fetched with (-1: not sent).
    broker_epoch: i64,
}

impl Progress {
    /// A follower not heard from yet in this epoch, the leader's log ending at `end`.
    fn new(end: i64) -> Self {
        let now = Instant::now();
        Self { log_end: -1, caught_up_at: now, last_fetch_at: now, leader_end_at_last_fetch: end, broker_epoch: -1 }
    }
}

#[derive(Debug, Clone)]
pub struct Leadership {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Where this epoch's data starts: followers must reach it to join the ISR.
    epoch_start: i64,
    followers: HashMap<i32, Progress>,
    /// An ISR change sent to the controller and not yet seen applied.
    pending_isr: Option<PendingIsr>,
}

/// An ISR change in flight (Kafka's pending partition state). Until the
/// metadata shows its outcome, the high watermark counts every member of
/// both the committed and the proposed ISR (Kafka's "maximal ISR"): the
/// controller may commit the change before this leader hears of it, so a
/// joiner must have everything below the HW from the moment it is proposed.
#[derive(Debug, Clone)]
struct PendingIsr {
    proposed: Vec<i32>,
    /// The partition epoch it was based on.
    partition_epoch: i32,
    sent_at: Instant,
    /// The controller decided it (committed it, or refused it as based on
    /// an old partition epoch): only new metadata ends the wait, and it is
    /// not sent again.
    decided: bool,
}

/// The controller's answer to an ISR change, as the proposer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrAnswer {
    /// Committed, or refused because the partition moved on: new metadata follows.
    Decided,
    /// Refused at the partition epoch it was based on (Kafka's
    /// INELIGIBLE_REPLICA): it was never applied, the committed ISR stands.
    Refused,
    /// No answer (no controller, a timeout): it may have been applied.
    Unknown,
}

#[derive(Debug, Clone)]
pub enum Role {
    Leader(Leadership),
    Follower {
        leader: i32,
        leader_epoch: i32,
        /// Must ask the leader where its log and ours diverge before fetching.
        needs_truncation: bool,
    },
    /// No live leader, or this broker is not serving it yet.
    Offline {
        leader_epoch: i32,
    },
}

/// What applying a new partition state did to this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    BecameLeader,
    /// Was leader, now is not.
    LostLeadership,
    Other,
}

/// How long an append waits: Kafka's acks (0 and 1 both wait for the
/// leader's own append only).
#[derive(Debug, Clone, Copy)]
pub enum Acks {
    Leader,
    /// acks=all: refused below `min_isr` (min.insync.replicas), answered
    /// once the high watermark passes the batch or after `timeout`.
    All {
        min_isr: usize,
        timeout: Duration,
    },
}

/// One batch to append as leader.
pub struct Append {
    pub batch: Vec<u8>,
    pub acks: Acks,
    /// A transactional batch's producer id and the KIP-890 verification
    /// guard its append must still hold (a marker in between voids it).
    pub transaction: Option<(i64, Option<u64>)>,
    /// Produce bytes reserved on the shard, released once written.
    pub budget: Option<OwnedSemaphorePermit>,
}

pub struct Replica {
    pub topic: String,
    pub index: i32,
    pub log: Rc<Partition>,
    role: RefCell<Role>,
    /// Fired when the high watermark or the role changes.
    changed: Notify,
    /// The topic's signal for this partition, fired when data arrives or
    /// the high watermark moves, waking long-polling fetches anywhere.
    progress: Arc<Notify>,
}

/// How long an unanswered ISR change is awaited before it is sent again.
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(5);

impl Leadership {
    /// Records `isr` as the change in flight and returns it to send.
    fn propose_isr(&mut self, isr: Vec<i32>) -> Vec<i32> {
        let partition_epoch = self.partition_epoch;
        self.pending_isr =
            Some(PendingIsr { proposed: isr.clone(), partition_epoch, sent_at: Instant::now(), decided: false });
        isr
    }

    /// The change in flight again, if it went unanswered for a while: it
    /// is only ever replaced by new metadata or a refusal, never dropped.
    fn resend_pending_isr(&mut self) -> Option<Vec<i32>> {
        let pending = self.pending_isr.as_mut().filter(|p| !p.decided && p.sent_at.elapsed() > ISR_CHANGE_RETRY)?;
        pending.sent_at = Instant::now();
        Some(pending.proposed.clone())
    }
}

impl Replica {
    pub fn new(topic: String, index: i32, log: Rc<Partition>, progress: Arc<Notify>) -> Self {
        let role = RefCell::new(Role::Offline { leader_epoch: -1 });
        Self { topic, index, log, role, changed: Notify::new(), progress }
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub fn is_leader(&self) -> bool {
        matches!(*self.role.borrow(), Role::Leader(_))
    }

    pub fn leader_epoch(&self) -> i32 {
        match &*self.role.borrow() {
            Role::Leader(l) => l.leader_epoch,
            Role::Follower { leader_epoch, .. } | Role::Offline { leader_epoch } => *leader_epoch,
        }
    }

    /// Checks that this replica leads in the epoch a client believes in
    /// (-1: the client does not say): Kafka's leader epoch fencing.
    pub fn check_leader(&self, client_epoch: i32) -> Result<(), ResponseError> {
        let role = self.role.borrow();
        let Role::Leader(l) = &*role else { return Err(ResponseError::NotLeaderOrFollower) };
        match client_epoch {
            e if e < 0 || e == l.leader_epoch => Ok(()),
            e if e < l.leader_epoch => Err(ResponseError::FencedLeaderEpoch),
            _ => Err(ResponseError::UnknownLeaderEpoch),
        }
    }

    /// Applies the controller's view of the partition.
    pub fn apply_state(&self, me: i32, state: &PartitionState) -> Result<Transition, StorageError> {
        let was_leader = self.is_leader();
        let current_epoch = self.leader_epoch();
        let transition = if state.leader == me {
            let mut role = self.role.borrow_mut();
            match &mut *role {
                Role::Leader(l) if l.leader_epoch == state.leader_epoch => {
                    l.replicas = state.replicas.clone();
                    // A reassignment adds and removes followers under the same leader.
                    l.followers.retain(|r, _| state.replicas.contains(r));
                    let end = self.log.offsets().log_end_offset;
                    for &r in state.replicas.iter().filter(|&&r| r != me) {
                        l.followers.entry(r).or_insert_with(|| Progress::new(end));
                    }
                    if l.isr != state.isr || l.partition_epoch != state.partition_epoch {
                        // Whatever was in flight was decided on the way here.
                        l.pending_isr = None;
                    }
                    l.partition_epoch = state.partition_epoch;
                    l.isr = state.isr.clone();
                    Transition::Unchanged
                }
                _ => {
                    drop(role);
                    self.log.assign_leader_epoch(state.leader_epoch)?;
                    let end = self.log.offsets().log_end_offset;
                    let followers =
                        state.replicas.iter().filter(|&&r| r != me).map(|&r| (r, Progress::new(end))).collect();
                    *self.role.borrow_mut() = Role::Leader(Leadership {
                        leader_epoch: state.leader_epoch,
                        partition_epoch: state.partition_epoch,
                        replicas: state.replicas.clone(),
                        isr: state.isr.clone(),
                        epoch_start: end,
                        followers,
                        pending_isr: None,
                    });
                    Transition::BecameLeader
                }
            }
        } else if state.leader == NO_LEADER {
            *self.role.borrow_mut() = Role::Offline { leader_epoch: state.leader_epoch };
            if was_leader {
                Transition::LostLeadership
            } else {
                Transition::Other
            }
        } else {
            let same = matches!(&*self.role.borrow(),
                Role::Follower { leader, leader_epoch, .. } if *leader == state.leader && *leader_epoch == state.leader_epoch);
            if same {
                Transition::Unchanged
            } else {
                *self.role.borrow_mut() =
                    Role::Follower { leader: state.leader, leader_epoch: state.leader_epoch, needs_truncation: true };
                if was_leader {
                    Transition::LostLeadership
                } else {
                    Transition::Other
                }
            }
        };
        if transition == Transition::BecameLeader || current_epoch != state.leader_epoch {
            tracing::info!(topic = %self.topic, partition = self.index, leader = state.leader,
                leader_epoch = state.leader_epoch, isr = ?state.isr, "partition role changed");
        }
        self.update_high_watermark();
        self.changed.notify_waiters();
        Ok(transition)
    }

    /// As leader: the high watermark is the lowest log end in the ISR; it
    /// never moves back. Wakes acks=all producers when it moves.
    pub fn update_high_watermark(&self) {
        let candidate = {
            let role = self.role.borrow();
            let Role::Leader(l) = &*role else { return };
            let mut hw = self.log.offsets().log_end_offset;
            let proposed = l.pending_isr.as_ref().map_or(&[][..], |p| &p.proposed[..]);
            for r in l.isr.iter().chain(proposed) {
                if let Some(p) = l.followers.get(r) {
                    hw = hw.min(p.log_end);
                }
            }
            hw
        };
        if candidate > self.log.offsets().high_watermark && self.log.set_high_watermark(candidate) {
            self.changed.notify_waiters();
            self.progress.notify_waiters();
        }
    }

    /// As follower: takes the leader's high watermark (bounded by our log).
    pub fn follow_high_watermark(&self, leader_hw: i64) {
        let hw = leader_hw.min(self.log.offsets().log_end_offset);
        if self.log.set_high_watermark(hw) {
            self.changed.notify_waiters();
            self.progress.notify_waiters();
        }
    }

    /// As follower: moves the log start up to the leader's (after its
    /// DeleteRecords), as far as this replica's committed data reaches.
    pub fn follow_log_start(&self, leader_log_start: i64) {
        let offsets = self.log.offsets();
        if leader_log_start > offsets.log_start_offset && leader_log_start <= offsets.high_watermark {
            let log = self.log.clone();
            tokio::task::spawn_local(async move {
                if let Err(e) = log.delete_records(leader_log_start).await {
                    tracing::warn!(error = %e, "cannot follow the leader's log start");
                }
            });
        }
    }

    /// As leader: whether the high watermark is still below where this
    /// leader's epoch began (it has not yet learnt all its predecessor committed).
    pub fn high_watermark_behind_epoch_start(&self) -> bool {
        matches!(&*self.role.borrow(), Role::Leader(l) if l.epoch_start > self.log.offsets().high_watermark)
    }

    /// As leader: whether `broker` is one of the partition's other replicas.
    pub fn has_follower(&self, broker: i32) -> bool {
        matches!(&*self.role.borrow(), Role::Leader(l) if l.followers.contains_key(&broker))
    }

    /// As leader: records a follower's fetch from `fetch_offset` (its log
    /// end) made with `broker_epoch`; `registration` is the broker epoch the
    /// metadata has for it, `None` if it is fenced. Returns an ISR change to
    /// propose: it caught up in its current registration (Kafka's ISR
    /// eligibility), or an earlier change went unanswered.
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        broker_epoch: i64,
        registration: Option<i64>,
    ) -> Option<Vec<i32>> {
        let proposal = {
            let mut role = self.role.borrow_mut();
            let Role::Leader(l) = &mut *role else { return None };
            let leader_end = self.log.offsets().log_end_offset;
            if fetch_offset > leader_end {
                // Past our log: it diverged and must truncate first.
                return None;
            }
            let now = Instant::now();
            let p = l.followers.get_mut(&follower)?;
            if fetch_offset >= leader_end {
                p.caught_up_at = now;
            } else if fetch_offset >= p.leader_end_at_last_fetch {
                p.caught_up_at = p.last_fetch_at;
            }
            p.log_end = fetch_offset;
            p.last_fetch_at = now;
            p.leader_end_at_last_fetch = leader_end;
            p.broker_epoch = broker_epoch;
            let eligible = registration.is_some_and(|e| broker_epoch < 0 || broker_epoch == e);
            let hw = self.log.offsets().high_watermark;
            let joins = eligible && !l.isr.contains(&follower) && fetch_offset >= hw && fetch_offset >= l.epoch_start;
            match l.resend_pending_isr() {
                Some(isr) => Some(isr),
                None if joins && l.pending_isr.is_none() => {
                    let mut isr = l.isr.clone();
                    isr.push(follower);
                    Some(l.propose_isr(isr))
                }
                None => None,
            }
        };
        self.update_high_watermark();
        proposal
    }

    /// As leader: the ISR without followers that have not caught up within
    /// `max_lag`, if any must leave.
    pub fn shrunk_isr(&self, me: i32, max_lag: Duration) -> Option<Vec<i32>> {
        let mut role = self.role.borrow_mut();
        let Role::Leader(l) = &mut *role else { return None };
        if l.pending_isr.is_some() {
            return l.resend_pending_isr();
        }
        let lagging = |r: &i32| *r != me && l.followers.get(r).is_some_and(|p| p.caught_up_at.elapsed() > max_lag);
        if !l.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<i32> = l.isr.iter().copied().filter(|r| !lagging(r)).collect();
        Some(l.propose_isr(isr))
    }

    /// As leader: what the controller answered to the ISR change `isr`
    /// based on `partition_epoch` (an answer to an earlier change is ignored).
    pub fn isr_change_answered(&self, partition_epoch: i32, isr: &[i32], answer: IsrAnswer) {
        {
            let mut role = self.role.borrow_mut();
            let Role::Leader(l) = &mut *role else { return };
            let current = |p: &&mut PendingIsr| p.partition_epoch == partition_epoch && p.proposed == isr;
            let Some(pending) = l.pending_isr.as_mut().filter(current) else { return };
            match answer {
                IsrAnswer::Decided => pending.decided = true,
                IsrAnswer::Refused => l.pending_isr = None,
                IsrAnswer::Unknown => {}
            }
        }
        self.update_high_watermark();
    }

    /// The ISR change command for `isr`, stamped with the epochs it is based on.
    pub fn isr_change(&self, me: i32, topic: uuid::Uuid, isr: Vec<i32>) -> Option<sluice_raft::Command> {
        let role = self.role.borrow();
        let Role::Leader(l) = &*role else { return None };
        // Joiners are vouched for by the registration they fetched in.
        let joiner_epochs = isr
            .iter()
            .filter(|r| !l.isr.contains(r))
            .filter_map(|r| l.followers.get(r).map(|p| (*r, p.broker_epoch)))
            .filter(|&(_, epoch)| epoch >= 0)
            .collect();
        Some(sluice_raft::Command::AlterIsr {
            topic,
            partition: self.index,
            leader: me,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            isr,
            joiner_epochs,
        })
    }

    pub fn isr_len(&self) -> usize {
        match &*self.role.borrow() {
            Role::Leader(l) => l.isr.len(),
            _ => 0,
        }
    }

    /// Appends a batch as leader, stamped with the leader epoch.
    async fn append_as_leader(&self, mut batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), CommitError> {
        let epoch = match &*self.role.borrow() {
            Role::Leader(l) => l.leader_epoch,
            _ => return Err(CommitError::Kafka(ResponseError::NotLeaderOrFollower)),
        };
        set_leader_epoch(&mut batch, epoch);
        let appended = self.log.append(batch).await.map_err(|e| match e {
            StorageError::Sequence(SequenceError::StaleEpoch { .. }) => {
                CommitError::Kafka(ResponseError::InvalidProducerEpoch)
            }
            StorageError::Sequence(SequenceError::OutOfOrder { .. }) => {
                CommitError::Kafka(ResponseError::OutOfOrderSequenceNumber)
            }
            StorageError::Sequence(SequenceError::NotTransactional { .. }) => {
                CommitError::Kafka(ResponseError::InvalidTxnState)
            }
            StorageError::Sequence(SequenceError::CoordinatorFenced { .. }) => {
                CommitError::Kafka(ResponseError::TransactionCoordinatorFenced)
            }
            e => CommitError::Storage(e),
        })?;
        // Wakes followers' fetches (and consumers', if the HW moved too).
        self.progress.notify_waiters();
        self.update_high_watermark();
        Ok(appended)
    }

    /// Waits until offsets below `end` are committed (the high watermark
    /// passed them), as acks=all requires; fails if leadership is lost, the
    /// ISR falls below `min_isr`, or `timeout` passes.
    pub async fn wait_committed(&self, end: i64, min_isr: usize, timeout: Duration) -> Result<(), ResponseError> {
        let deadline = Instant::now() + timeout;
        let epoch = self.leader_epoch();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.is_leader() || self.leader_epoch() != epoch {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            // As Kafka's checkEnoughReplicasReachOffset: committed is not
            // enough when the ISR that committed it is below min.insync
            // (the HW also moves when the ISR shrinks).
            if self.isr_len() < min_isr {
                return Err(ResponseError::NotEnoughReplicasAfterAppend);
            }
            if self.log.offsets().high_watermark >= end {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(ResponseError::RequestTimedOut);
            }
        }
    }

    /// Appends as leader, the one place Kafka's produce rules are applied
    /// (in Kafka's order): not the leader, then too few in the ISR for
    /// acks=all, then a transactional batch whose KIP-890 verification was
    /// voided, then the append, then (acks=all) the wait for the ISR.
    pub async fn append(&self, append: Append) -> Result<(AppendInfo, LogOffsets), CommitError> {
        let Append { batch, acks, transaction, budget } = append;
        if !self.is_leader() {
            return Err(CommitError::Kafka(ResponseError::NotLeaderOrFollower));
        }
        if let Acks::All { min_isr, .. } = acks {
            if self.isr_len() < min_isr {
                return Err(CommitError::Kafka(ResponseError::NotEnoughReplicas));
            }
        }
        if let Some((producer_id, guard)) = transaction {
            if !self.log.admit_transactional(producer_id, guard) {
                return Err(CommitError::Kafka(ResponseError::InvalidTxnState));
            }
        }
        let appended = self.append_as_leader(batch).await;
        drop(budget);
        let (info, _) = appended?;
        if let Acks::All { min_isr, timeout } = acks {
            self.wait_committed(info.last_offset + 1, min_isr, timeout).await.map_err(CommitError::Kafka)?;
        }
        Ok((info, self.log.offsets()))
    }

    /// Appends as leader and waits until the ISR has it (acks=all).
    pub async fn append_committed(
        &self,
        batch: Vec<u8>,
        min_isr: usize,
        timeout: Duration,
    ) -> Result<(AppendInfo, LogOffsets), CommitError> {
        self.append(Append { batch, acks: Acks::All { min_isr, timeout }, transaction: None, budget: None }).await
    }

    /// Reads a replica's whole log in order, handing each read to `apply`,
    /// which returns the offset after the last whole batch it took. Stops as
    /// soon as the replica no longer leads in `leader_epoch` (the state it
    /// loaded into was dropped, or a newer load started): `Ok(false)`.
    pub async fn replay(
        &self,
        leader_epoch: i32,
        mut apply: impl FnMut(Bytes) -> Option<i64>,
    ) -> Result<bool, StorageError> {
        let log = &self.log;
        let leading = || self.is_leader() && self.leader_epoch() == leader_epoch;
        let mut offset = log.offsets().log_start_offset;
        while offset < log.offsets().log_end_offset {
            let (read, _) = log.read(offset, 1 << 20, true, i64::MAX).await?;
            if !leading() {
                return Ok(false);
            }
            match apply(Bytes::from(read.bytes)) {
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
        Ok(leading())
    }

    /// Whether this replica still follows `leader` in `epoch`, so a fetch
    /// answer obtained for that role may be applied.
    pub fn follows(&self, leader: i32, epoch: i32) -> bool {
        matches!(*self.role.borrow(), Role::Follower { leader: l, leader_epoch: e, .. } if l == leader && e == epoch)
    }

    /// As follower: the log now matches the leader's up to its end.
    pub fn truncated(&self) {
        if let Role::Follower { needs_truncation, .. } = &mut *self.role.borrow_mut() {
            *needs_truncation = false;
        }
    }

    /// As follower: the logs disagree again; ask the leader before fetching.
    pub fn mark_needs_truncation(&self) {
        if let Role::Follower { needs_truncation, .. } = &mut *self.role.borrow_mut() {
            *needs_truncation = true;
        }
    }

    /// Writes a `__consumer_offsets` record as Kafka's coordinator does:
    /// acks=all within offsets.commit.timeout.ms.
    pub async fn append_group_record(&self, batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), CommitError> {
        self.append_committed(batch, 1, Duration::from_secs(5)).await
    }

    /// Wakes everything waiting on this replica (it is being closed).
    pub fn close(&self) {
        *self.role.borrow_mut() = Role::Offline { leader_epoch: -1 };
        self.changed.notify_waiters();
    }
}

/// Replicas of one shard, by partition.
/// Partitions are addressed by topic id, so a deleted and re-created topic
/// of the same name never reaches the old partition.
pub type TopicPartition = (uuid::Uuid, i32);

pub type Replicas = RefCell<HashMap<TopicPartition, Rc<Replica>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::{LogConfig, Ring};

    /// Runs `f` as a shard does: a current-thread runtime, a LocalSet, a ring.
    fn on_shard<F: std::future::Future<Output = ()>>(f: impl FnOnce(Rc<Ring>) -> F) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async move { f(Ring::new().unwrap()).await });
    }

    fn batch(records: usize) -> Vec<u8> {
        let now = crate::now_ms();
        let records: Vec<_> = (0..records)
            .map(|i| crate::internal_records::record(i, now, bytes::Bytes::from_static(b"k"), None))
            .collect();
        crate::internal_records::encode(&records)
    }

    /// Broker 1 leads, broker 2 is a replica outside the ISR.
    async fn leader_with_follower_out_of_isr(dir: &std::path::Path, ring: Rc<Ring>) -> Replica {
        let log = Partition::open(dir, LogConfig::default(), ring).await.unwrap();
        let replica = Replica::new("t".into(), 0, Rc::new(log), Arc::new(Notify::new()));
        let mut state = PartitionState::new(vec![1, 2], 1);
        state.isr = vec![1];
        replica.apply_state(1, &state).unwrap();
        replica
    }

    /// KIP-497's "maximal ISR": a joiner proposed to the controller counts
    /// for the high watermark until the metadata says what became of the
    /// proposal, however long that takes; the controller may commit it at
    /// any time, and then the new member must hold everything below the HW.
    #[test]
    fn a_proposed_joiner_holds_the_high_watermark_until_the_outcome_is_known() {
        on_shard(|ring| async move {
            let dir = tempfile::tempdir().unwrap();
            let replica = leader_with_follower_out_of_isr(dir.path(), ring).await;
            replica.append_as_leader(batch(3)).await.unwrap();
            assert_eq!(replica.log.offsets().high_watermark, 3, "the ISR is the leader alone");

            let proposal = replica.record_follower_fetch(2, 3, 1, Some(1));
            assert_eq!(proposal, Some(vec![1, 2]), "caught up: proposed to join");
            replica.append_as_leader(batch(3)).await.unwrap();
            assert_eq!(replica.log.offsets().high_watermark, 3, "the joiner has only 3");

            // No answer for longer than the resend window: still counted,
            // and the same change is sent again.
            tokio::time::sleep(ISR_CHANGE_RETRY + Duration::from_millis(200)).await;
            replica.update_high_watermark();
            assert_eq!(replica.log.offsets().high_watermark, 3);
            assert_eq!(replica.record_follower_fetch(2, 3, 1, Some(1)), Some(vec![1, 2]), "resent unanswered");
            assert_eq!(replica.log.offsets().high_watermark, 3);

            // Committed (or stale): nothing is resent, the joiner still counts
            // until the metadata arrives.
            replica.isr_change_answered(0, &[1, 2], IsrAnswer::Decided);
            tokio::time::sleep(ISR_CHANGE_RETRY + Duration::from_millis(200)).await;
            assert_eq!(replica.record_follower_fetch(2, 3, 1, Some(1)), None);
            assert_eq!(replica.log.offsets().high_watermark, 3);

            let mut state = PartitionState::new(vec![1, 2], 1);
            state.partition_epoch = 1;
            replica.apply_state(1, &state).unwrap();
            assert_eq!(replica.isr_len(), 2);
            assert_eq!(replica.log.offsets().high_watermark, 3, "the member has 3");
            assert_eq!(replica.record_follower_fetch(2, 6, 1, Some(1)), None);
            assert_eq!(replica.log.offsets().high_watermark, 6);
        });
    }

    /// A refusal at the epoch the change was based on (the controller
    /// applied nothing) returns the HW to the committed ISR; an answer to
    /// an older change changes nothing.
    #[test]
    fn a_refused_joiner_stops_counting_and_may_be_proposed_again() {
        on_shard(|ring| async move {
            let dir = tempfile::tempdir().unwrap();
            let replica = leader_with_follower_out_of_isr(dir.path(), ring).await;
            assert_eq!(replica.record_follower_fetch(2, 0, 1, Some(1)), Some(vec![1, 2]));
            replica.append_as_leader(batch(2)).await.unwrap();
            assert_eq!(replica.log.offsets().high_watermark, 0);
            replica.isr_change_answered(-7, &[1, 2], IsrAnswer::Refused);
            assert_eq!(replica.log.offsets().high_watermark, 0, "an answer to another change");
            replica.isr_change_answered(0, &[1, 2], IsrAnswer::Refused);
            assert_eq!(replica.log.offsets().high_watermark, 2);
            assert_eq!(replica.record_follower_fetch(2, 2, 1, Some(1)), Some(vec![1, 2]), "proposed anew");
        });
    }

    /// KIP-903: only a fetch made in the follower's current registration
    /// makes it eligible, and the proposal carries that broker epoch.
    #[test]
    fn a_joiner_is_proposed_with_the_broker_epoch_it_fetched_in() {
        on_shard(|ring| async move {
            let dir = tempfile::tempdir().unwrap();
            let replica = leader_with_follower_out_of_isr(dir.path(), ring).await;
            assert_eq!(replica.record_follower_fetch(2, 0, 4, Some(5)), None, "an older registration");
            assert_eq!(replica.record_follower_fetch(2, 0, 5, None), None, "fenced");
            assert_eq!(replica.record_follower_fetch(2, 0, 5, Some(5)), Some(vec![1, 2]));
            let Some(sluice_raft::Command::AlterIsr { joiner_epochs, .. }) =
                replica.isr_change(1, uuid::Uuid::nil(), vec![1, 2])
            else {
                panic!("leader proposes")
            };
            assert_eq!(joiner_epochs, std::collections::BTreeMap::from([(2, 5)]));
        });
    }

    /// A new leader's HW is what it last heard as a follower: until its
    /// followers prove the HW reached the start of its epoch, it may know
    /// less than its predecessor told clients (ListOffsets then answers
    /// OFFSET_NOT_AVAILABLE, as Kafka).
    #[test]
    fn a_new_leader_knows_when_its_high_watermark_lags_its_epoch_start() {
        on_shard(|ring| async move {
            let dir = tempfile::tempdir().unwrap();
            let log = Partition::open(dir.path(), LogConfig::default(), ring).await.unwrap();
            let replica = Replica::new("t".into(), 0, Rc::new(log), Arc::new(Notify::new()));
            let mut state = PartitionState::new(vec![1, 2], 2);
            replica.apply_state(1, &state).unwrap();
            let mut copied = batch(4);
            copied[0..8].copy_from_slice(&0i64.to_be_bytes());
            replica.log.append_replicated(copied).await.unwrap();
            replica.follow_high_watermark(1);
            assert!(!replica.high_watermark_behind_epoch_start(), "only leaders answer");

            state.leader = 1;
            state.leader_epoch = 1;
            replica.apply_state(1, &state).unwrap();
            assert_eq!(replica.log.offsets().high_watermark, 1);
            assert!(replica.high_watermark_behind_epoch_start());
            replica.record_follower_fetch(2, 4, 1, Some(1));
            assert_eq!(replica.log.offsets().high_watermark, 4);
            assert!(!replica.high_watermark_behind_epoch_start());
        });
    }

    /// Kafka answers a fetch from a broker that is not a replica without
    /// data: the leader knows it is no follower.
    #[test]
    fn only_replicas_are_followers() {
        on_shard(|ring| async move {
            let dir = tempfile::tempdir().unwrap();
            let replica = leader_with_follower_out_of_isr(dir.path(), ring).await;
            assert!(replica.has_follower(2));
            assert!(!replica.has_follower(3));
            assert!(!replica.has_follower(1), "the leader is not its own follower");
        });
    }
}
