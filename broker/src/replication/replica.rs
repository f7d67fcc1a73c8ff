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

use kafka_protocol::ResponseError;
use sluice_raft::{PartitionState, NO_LEADER};
use sluice_storage::{set_leader_epoch, AppendInfo, LogOffsets, Partition, SequenceError, StorageError};
use tokio::sync::Notify;
use tokio::time::Instant;

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
}

impl Progress {
    /// A follower not heard from yet in this epoch, the leader's log ending at `end`.
    fn new(end: i64) -> Self {
        let now = Instant::now();
        Self { log_end: -1, caught_up_at: now, last_fetch_at: now, leader_end_at_last_fetch: end }
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
    /// When an ISR change was last proposed (not re-proposed for a while).
    isr_change_sent: Option<Instant>,
    /// A follower whose joining the ISR was proposed: it counts for the
    /// high watermark at once (Kafka's "maximal ISR"), since the
    /// controller may commit the change before this leader hears of it.
    joining: Option<i32>,
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

/// Why an append could not be confirmed as committed.
#[derive(Debug)]
pub enum CommitError {
    Kafka(ResponseError),
    Storage(StorageError),
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

/// How long an ISR change proposal is awaited before it may be sent again.
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(5);

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
                    l.partition_epoch = state.partition_epoch;
                    l.replicas = state.replicas.clone();
                    // A reassignment adds and removes followers under the same leader.
                    l.followers.retain(|r, _| state.replicas.contains(r));
                    let end = self.log.offsets().log_end_offset;
                    for &r in state.replicas.iter().filter(|&&r| r != me) {
                        l.followers.entry(r).or_insert_with(|| Progress::new(end));
                    }
                    if l.isr != state.isr {
                        l.isr = state.isr.clone();
                        l.isr_change_sent = None;
                        l.joining = None;
                    }
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
                        isr_change_sent: None,
                        joining: None,
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
            // A proposed joiner counts until the proposal is applied or its
            // retry window passes (it may have been refused).
            let joining = l.joining.filter(|_| l.isr_change_sent.is_some_and(|t| t.elapsed() <= ISR_CHANGE_RETRY));
            for r in l.isr.iter().chain(joining.as_ref()) {
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

    /// As leader: records a follower's fetch from `fetch_offset` (its log
    /// end). Returns an expanded ISR to propose when it has caught up.
    pub fn record_follower_fetch(&self, follower: i32, fetch_offset: i64, live: bool) -> Option<Vec<i32>> {
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
            let hw = self.log.offsets().high_watermark;
            let joins = live && !l.isr.contains(&follower) && fetch_offset >= hw && fetch_offset >= l.epoch_start;
            if joins && l.isr_change_sent.is_none_or(|t| t.elapsed() > ISR_CHANGE_RETRY) {
                l.isr_change_sent = Some(now);
                l.joining = Some(follower);
                let mut isr = l.isr.clone();
                isr.push(follower);
                Some(isr)
            } else {
                None
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
        let lagging = |r: &i32| *r != me && l.followers.get(r).is_some_and(|p| p.caught_up_at.elapsed() > max_lag);
        if !l.isr.iter().any(lagging) || l.isr_change_sent.is_some_and(|t| t.elapsed() <= ISR_CHANGE_RETRY) {
            return None;
        }
        let isr: Vec<i32> = l.isr.iter().copied().filter(|r| !lagging(r)).collect();
        l.isr_change_sent = Some(Instant::now());
        Some(isr)
    }

    /// The ISR change command for `isr`, stamped with the epochs it is based on.
    pub fn isr_change(&self, me: i32, topic: uuid::Uuid, isr: Vec<i32>) -> Option<sluice_raft::Command> {
        let role = self.role.borrow();
        let Role::Leader(l) = &*role else { return None };
        Some(sluice_raft::Command::AlterIsr {
            topic,
            partition: self.index,
            leader: me,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            isr,
        })
    }

    pub fn isr_len(&self) -> usize {
        match &*self.role.borrow() {
            Role::Leader(l) => l.isr.len(),
            _ => 0,
        }
    }

    /// Appends a batch as leader, stamped with the leader epoch.
    pub async fn append_as_leader(&self, mut batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), CommitError> {
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

    /// Appends as leader and waits until the ISR has it (acks=all).
    pub async fn append_committed(
        &self,
        batch: Vec<u8>,
        min_isr: usize,
        timeout: Duration,
    ) -> Result<(AppendInfo, LogOffsets), CommitError> {
        if self.isr_len() < min_isr {
            return Err(CommitError::Kafka(ResponseError::NotEnoughReplicas));
        }
        let (info, _) = self.append_as_leader(batch).await?;
        self.wait_committed(info.last_offset + 1, min_isr, timeout).await.map_err(CommitError::Kafka)?;
        Ok((info, self.log.offsets()))
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
pub type Replicas = RefCell<HashMap<crate::shard::TopicPartition, Rc<Replica>>>;
