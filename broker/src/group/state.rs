//! One consumer group's state machine, as Kafka's classic GroupCoordinator
//! runs it: Empty → PreparingRebalance → CompletingRebalance → Stable, with
//! member ids (KIP-394), generations, session and rebalance timeouts, and
//! static membership (KIP-345). Joins and syncs that must wait for the rest
//! of the group get a receiver that resolves when the group moves on.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::GroupConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups / ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ clients accept MEMBER_ID_REQUIRED (KIP-394).
    pub requires_known_member_id: bool,
}

#[derive(Debug, Clone, Default)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member and its metadata.
    pub members: Vec<MemberSnapshot>,
    /// A static leader that rejoined a stable group keeps the current
    /// assignment instead of computing one (JoinGroup v9, KIP-814).
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    heartbeat_deadline: Instant,
    /// Join order: the longest-standing member leads, as in Kafka.
    joined: u64,
    join: Option<oneshot::Sender<JoinOutcome>>,
    sync: Option<oneshot::Sender<SyncOutcome>>,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending: HashMap<String, Instant>,
    /// group.instance.id → current member id.
    static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), Committed>,
    /// Bumped on every new rebalance so stale timers do nothing.
    rebalance_epoch: u64,
    joins: u64,
    /// The first rebalance of an empty group completes only at its deadline.
    initial_delay: bool,
    /// Wall-clock ms when a managed group last became empty; `None` for a
    /// group that never had members (standalone commits).
    empty_since_ms: Option<i64>,
}

fn error(e: E) -> i16 {
    e.code()
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            rebalance_epoch: 0,
            joins: 0,
            initial_delay: false,
            empty_since_ms: None,
        }
    }

    /// Offsets due to expire under `offsets.retention.minutes` (KIP-211):
    /// none while the group has members; for a managed group, all of them
    /// once it has been empty that long; for a standalone group, each one
    /// that long after its commit.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, c)| {
                now_ms - self.empty_since_ms.unwrap_or(c.commit_timestamp).max(c.commit_timestamp) > retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn members(&self) -> Vec<MemberSnapshot> {
        self.members
            .values()
            .map(|m| MemberSnapshot {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: self.metadata_of(m),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    fn metadata_of(&self, m: &Member) -> Bytes {
        let chosen = self.protocol.as_deref();
        m.protocols.iter().find(|(name, _)| Some(name.as_str()) == chosen).map(|(_, md)| md.clone()).unwrap_or_default()
    }

    /// The topics the group's consumers subscribe to are not tracked: the
    /// broker passes subscription metadata through untouched.
    pub fn check_member(&self, member_id: &str, instance_id: Option<&str>, generation: Option<i32>) -> i16 {
        if let Some(instance) = instance_id {
            if let Some(current) = self.static_members.get(instance) {
                if current != member_id {
                    return error(E::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return error(E::UnknownMemberId);
        }
        match generation {
            Some(g) if g != self.generation => error(E::IllegalGeneration),
            _ => 0,
        }
    }

    /// OffsetCommit's checks (Kafka's handleCommitOffsets).
    pub fn check_commit(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        if generation < 0 && member_id.is_empty() && self.state == GroupState::Empty {
            return 0; // a standalone consumer: no group management
        }
        if self.state == GroupState::CompletingRebalance && self.members.contains_key(member_id) {
            return error(E::RebalanceInProgress);
        }
        self.check_member(member_id, instance_id, Some(generation))
    }

    pub fn join(
        group: &Rc<RefCell<Group>>,
        config: &GroupConfig,
        req: JoinRequest,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let mut g = group.borrow_mut();
        let fail = |code: i16, member_id: &str| {
            Ok(JoinOutcome { error: code, generation: -1, member_id: member_id.to_string(), ..Default::default() })
        };
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return fail(error(E::InvalidSessionTimeout), &req.member_id);
        }
        let compatible = match &g.protocol_type {
            _ if g.members.is_empty() => !req.protocol_type.is_empty() && !req.protocols.is_empty(),
            // One of the newcomer's protocols must be supported by everyone.
            Some(t) => {
                *t == req.protocol_type
                    && req
                        .protocols
                        .iter()
                        .any(|(name, _)| g.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
            }
            None => true,
        };
        if !compatible {
            return fail(error(E::InconsistentGroupProtocol), &req.member_id);
        }
        let now = Instant::now();

        if req.member_id.is_empty() {
            let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old_id) = g.static_members.get(&instance).cloned() {
                    return g.replace_static_member(group, config, old_id, new_id, req);
                }
                g.static_members.insert(instance, new_id.clone());
            } else if req.requires_known_member_id {
                let deadline = now + Duration::from_millis(req.session_timeout_ms as u64);
                g.pending.insert(new_id.clone(), deadline);
                return fail(error(E::MemberIdRequired), &new_id);
            }
            return Err(g.add_member_and_rebalance(group, config, new_id, req));
        }

        if g.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return Err(g.add_member_and_rebalance(group, config, id, req));
        }
        let known = g.check_member(&req.member_id, req.instance_id.as_deref(), None);
        if known != 0 {
            return fail(known, &req.member_id);
        }
        let id = req.member_id.clone();
        let changed = g.members.get(&id).is_some_and(|m| m.protocols != req.protocols);
        let (tx, rx) = oneshot::channel();
        {
            let Some(m) = g.members.get_mut(&id) else {
                return fail(error(E::UnknownMemberId), &id);
            };
            m.protocols = req.protocols;
            m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
            m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
            m.heartbeat_deadline = now + m.session_timeout;
            if let Some(previous) = m.join.replace(tx) {
                // A second join from the same member supersedes the first.
                let superseded =
                    JoinOutcome { error: error(E::RebalanceInProgress), generation: -1, ..Default::default() };
                let _ = previous.send(superseded);
            }
        }
        match g.state {
            GroupState::PreparingRebalance => g.maybe_complete_join(),
            GroupState::CompletingRebalance | GroupState::Stable
                if !changed && (g.state == GroupState::CompletingRebalance || g.leader.as_deref() != Some(&id)) =>
            {
                // Same metadata: answer with the current generation.
                let outcome = g.join_outcome_for(&id);
                if let Some(tx) = g.members.get_mut(&id).and_then(|m| m.join.take()) {
                    let _ = tx.send(outcome);
                }
            }
            _ => g.prepare_rebalance(group, config),
        }
        Err(rx)
    }

    fn add_member_and_rebalance(
        &mut self,
        group: &Rc<RefCell<Group>>,
        config: &GroupConfig,
        id: String,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        self.joins += 1;
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout,
                rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
                protocols: req.protocols,
                assignment: Bytes::new(),
                heartbeat_deadline: Instant::now() + session_timeout,
                joined: self.joins,
                join: Some(tx),
                sync: None,
            },
        );
        if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join();
        } else {
            self.prepare_rebalance(group, config);
        }
        rx
    }

    /// A static member rejoined with a new member id: the old id is fenced.
    /// In a stable group with unchanged metadata the member gets its old
    /// assignment back without a rebalance (KIP-345).
    fn replace_static_member(
        &mut self,
        group: &Rc<RefCell<Group>>,
        config: &GroupConfig,
        old_id: String,
        new_id: String,
        req: JoinRequest,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let Some(mut member) = self.members.remove(&old_id) else {
            if let Some(instance) = &req.instance_id {
                self.static_members.insert(instance.clone(), new_id.clone());
            }
            return Err(self.add_member_and_rebalance(group, config, new_id, req));
        };
        if let Some(tx) = member.join.take() {
            let _ = tx.send(JoinOutcome { error: error(E::FencedInstanceId), generation: -1, ..Default::default() });
        }
        if let Some(tx) = member.sync.take() {
            let _ = tx.send(SyncOutcome { error: error(E::FencedInstanceId), ..Default::default() });
        }
        member.protocols = req.protocols;
        member.id = new_id.clone();
        member.heartbeat_deadline = Instant::now() + member.session_timeout;
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        // As Kafka does, only a change of the group's protocol rebalances:
        // the member's metadata (owned partitions, generation) differs on
        // every restart and is simply replaced.
        if self.state == GroupState::Stable && self.protocol == self.select_protocol() {
            let mut outcome = self.join_outcome_for(&new_id);
            // The leader learns the members again but must not reassign (KIP-814).
            outcome.skip_assignment = was_leader;
            return Ok(outcome);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&new_id) {
            m.join = Some(tx);
        }
        if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join();
        } else {
            self.prepare_rebalance(group, config);
        }
        Err(rx)
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            members: if leader == member_id { self.members() } else { Vec::new() },
            skip_assignment: false,
            leader,
            member_id: member_id.to_string(),
        }
    }

    /// Starts a rebalance: every member must rejoin before the deadline.
    fn prepare_rebalance(&mut self, group: &Rc<RefCell<Group>>, config: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(SyncOutcome { error: error(E::RebalanceInProgress), ..Default::default() });
                }
            }
        }
        let max_rebalance = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.initial_delay = self.state == GroupState::Empty && config.initial_rebalance_delay > Duration::ZERO;
        let wait = if self.initial_delay { config.initial_rebalance_delay.min(max_rebalance) } else { max_rebalance };
        self.state = GroupState::PreparingRebalance;
        self.rebalance_epoch += 1;
        let epoch = self.rebalance_epoch;
        let group = group.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(wait).await;
            let mut g = group.borrow_mut();
            if g.state == GroupState::PreparingRebalance && g.rebalance_epoch == epoch {
                g.on_rebalance_deadline();
            }
        });
        if !self.initial_delay {
            self.maybe_complete_join();
        }
    }

    /// The rebalance deadline passed: members that did not rejoin are out.
    fn on_rebalance_deadline(&mut self) {
        let stragglers: Vec<String> =
            self.members.values().filter(|m| m.join.is_none()).map(|m| m.id.clone()).collect();
        for id in stragglers {
            self.remove_member(&id);
        }
        self.initial_delay = false;
        self.complete_join();
    }

    fn maybe_complete_join(&mut self) {
        if self.state == GroupState::PreparingRebalance
            && !self.initial_delay
            && self.members.values().all(|m| m.join.is_some())
        {
            self.complete_join();
        }
    }

    /// Everyone is in: a new generation, a protocol, a leader; each member
    /// gets its JoinGroup answer and the leader gets the member list.
    fn complete_join(&mut self) {
        self.generation += 1;
        if self.members.is_empty() {
            // The protocol type stays (Kafka's initNextGeneration clears
            // only the protocol): an emptied consumer group is still one.
            self.state = GroupState::Empty;
            self.empty_since_ms = Some(crate::now_ms());
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.values().min_by_key(|m| m.joined).map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            let now = Instant::now();
            if let Some(m) = self.members.get_mut(&id) {
                m.heartbeat_deadline = now + m.session_timeout;
                if let Some(tx) = m.join.take() {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    /// Each member votes for its most preferred protocol that every member
    /// supports; the most votes win (ties: the earliest such protocol).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some(choice) = m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == choice) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes.into_iter().find(|(n, _)| *n == best).map(|(_, c)| c.clone())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<SyncOutcome, oneshot::Receiver<SyncOutcome>> {
        let fail = |code: i16| Ok(SyncOutcome { error: code, ..Default::default() });
        let checked = self.check_member(member_id, instance_id, Some(generation));
        if checked != 0 {
            return fail(checked);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return fail(error(E::InconsistentGroupProtocol));
        }
        let now = Instant::now();
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::Empty => fail(error(E::UnknownMemberId)),
            GroupState::PreparingRebalance => fail(error(E::RebalanceInProgress)),
            GroupState::Stable => Ok(self.sync_outcome(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(previous) = self.members.get_mut(member_id).and_then(|m| m.sync.replace(tx)) {
                    let _ = previous.send(SyncOutcome { error: error(E::RebalanceInProgress), ..Default::default() });
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assigned.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome(&id);
                        if let Some(m) = self.members.get_mut(&id) {
                            // Sessions restart with the assignment, as in Kafka.
                            m.heartbeat_deadline = now + m.session_timeout;
                            if let Some(tx) = m.sync.take() {
                                let _ = tx.send(outcome);
                            }
                        }
                    }
                }
                Err(rx)
            }
        }
    }

    fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        if self.state == GroupState::Empty {
            return error(E::UnknownMemberId);
        }
        let checked = self.check_member(member_id, instance_id, Some(generation));
        if checked != 0 {
            return checked;
        }
        let now = Instant::now();
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        if self.state == GroupState::PreparingRebalance {
            error(E::RebalanceInProgress)
        } else {
            0
        }
    }

    /// LeaveGroup for one member (by id, or by instance id for static members).
    pub fn leave(group: &Rc<RefCell<Group>>, config: &GroupConfig, member_id: &str, instance_id: Option<&str>) -> i16 {
        let mut g = group.borrow_mut();
        let id = match instance_id {
            Some(instance) => match g.static_members.get(instance) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return error(E::FencedInstanceId),
                None => return error(E::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if g.pending.remove(&id).is_some() {
            return 0;
        }
        if !g.members.contains_key(&id) {
            return error(E::UnknownMemberId);
        }
        g.remove_member(&id);
        g.on_membership_change(group, config);
        0
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).is_some_and(|cur| cur == id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(tx) = m.join.take() {
                let _ = tx.send(JoinOutcome { error: error(E::UnknownMemberId), generation: -1, ..Default::default() });
            }
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncOutcome { error: error(E::UnknownMemberId), ..Default::default() });
            }
        }
    }

    fn on_membership_change(&mut self, group: &Rc<RefCell<Group>>, config: &GroupConfig) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(group, config),
            GroupState::PreparingRebalance => self.maybe_complete_join(),
            GroupState::Empty => {}
        }
    }

    /// Removes members whose session timed out (unless they are waiting in
    /// a join or sync, which keeps them alive) and stale pending ids.
    pub fn expire(group: &Rc<RefCell<Group>>, config: &GroupConfig) {
        let mut g = group.borrow_mut();
        let now = Instant::now();
        g.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join.is_none() && m.sync.is_none() && m.heartbeat_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            tracing::info!(group = %g.id, member = %id, "member session expired");
            g.remove_member(id);
        }
        g.on_membership_change(group, config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(at: i64) -> Committed {
        Committed { offset: 1, leader_epoch: -1, metadata: None, commit_timestamp: at }
    }

    #[test]
    fn offsets_expire_by_commit_time_or_empty_time() {
        let mut g = Group::new("g");
        g.offsets.insert(("t".into(), 0), committed(1_000));
        g.offsets.insert(("t".into(), 1), committed(5_000));
        assert_eq!(g.expired_offsets(5_999, 1_000), vec![("t".to_string(), 0)], "standalone: per commit");
        g.empty_since_ms = Some(10_000);
        assert!(g.expired_offsets(10_500, 1_000).is_empty(), "managed: counted from when it became empty");
        assert_eq!(g.expired_offsets(11_001, 1_000).len(), 2);
        g.state = GroupState::Stable;
        assert!(g.expired_offsets(i64::MAX / 2, 1_000).is_empty(), "never while the group is active");
    }
}
