//! One node's membership in the metadata quorum: starts the openraft node
//! on its RocksDB store, serves peers' RPCs, forwards proposals to the
//! controller (the raft leader), and — while this node is the controller —
//! tracks broker heartbeats, fencing brokers that go silent and unfencing
//! them when they return. Readers get the applied metadata through a watch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::command::{Command, Outcome};
use crate::error::ApplyError;
use crate::network::{
    read_frame, write_frame, Envelope, ForwardError, Identity, NetworkFactory, Peer, Request, Response, VoterChange,
    VoterChangeError, Voters,
};
use crate::storage::{claim_node_id, claim_storage_id, open_db, LogStore, MetadataView, StateMachine};
use crate::TypeConfig;

/// How long a proposal may wait for a controller before giving up.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one RPC to a peer may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const CONTROLLER_TICK: Duration = Duration::from_millis(250);

pub struct QuorumConfig {
    pub node_id: u64,
    pub dir: PathBuf,
    /// Where peers reach this node; `None` for a one-node cluster.
    pub listen: Option<SocketAddr>,
    /// Every voter, this node included.
    pub voters: Voters,
    /// A broker not heard from for this long is fenced.
    pub session_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("metadata store: {0}")]
    Storage(String),
    #[error("data directory belongs to node {stored}, not node {configured}")]
    NodeIdMismatch { stored: u64, configured: u64 },
    #[error("voters {configured} disagree with the cluster's voters {stored} recorded in the data directory")]
    VotersMismatch { configured: String, stored: String },
    #[error("node {configured} is not among the voters {voters}")]
    NotAVoter { configured: u64, voters: String },
    #[error("peer {peer} refused this node: {reason}")]
    PeerRefused { peer: String, reason: String },
    #[error("cannot listen for raft peers on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster knows node {node} by storage id {known}, not this data directory's {ours}: {}", replace_advice(*.node))]
    StorageReplaced { node: u64, known: Uuid, ours: Uuid },
    #[error("no controller answered within {}s", PROPOSE_TIMEOUT.as_secs())]
    NoController,
    #[error("metadata quorum: {0}")]
    Raft(String),
}

pub struct MetadataQuorum {
    id: u64,
    raft: Raft<TypeConfig>,
    /// The voters this node was started with: where peers are found until
    /// the raft log's membership says otherwise.
    configured: Voters,
    /// Whether this node takes raft peers (false for a one-node cluster).
    networked: bool,
    me: Identity,
    view: watch::Receiver<MetadataView>,
    session_timeout: Duration,
    /// While this node is the controller: when each broker was last heard from.
    heartbeats: Mutex<HashMap<i32, Instant>>,
    /// Set once this node has said that its peers know another data
    /// directory under its id, so it says so once, not on every RPC.
    replaced_said: AtomicBool,
}

/// "1@host:port,2@host:port" for messages.
fn format_voters(voters: &Voters) -> String {
    voters.iter().map(|(id, addr)| format!("{id}@{addr}")).collect::<Vec<_>>().join(",")
}

/// Why a peer's message is not acted on.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The sender expects another data directory under this node's id.
    NotThisDirectory { expected: Uuid },
    /// The sender's data directory is not the one pinned for its node id.
    SenderReplaced { known: Uuid },
}

impl Refusal {
    /// `ours` is this node's storage id, `known` the one this node's applied
    /// metadata pins for the sender. Raft's own messages (append, snapshot,
    /// vote) are not refused for `known`: this node's metadata may predate
    /// the sender's replacement, and a follower catching up must accept the
    /// replaced leader that brings it the replacement, as KIP-853 voters
    /// grant votes whatever their possibly stale voter set says. They stay
    /// safe without it: a wiped node has an empty log, so it wins no
    /// election, and it cannot act as the old voter (the first rule).
    fn of(ours: Uuid, known: Option<Uuid>, envelope: &Envelope) -> Option<Self> {
        if let Some(expected) = envelope.to_storage.filter(|s| *s != ours) {
            return Some(Refusal::NotThisDirectory { expected });
        }
        if envelope.body.is_raft() {
            return None;
        }
        known.filter(|k| envelope.storage != Some(*k)).map(|known| Refusal::SenderReplaced { known })
    }
}

/// What an operator does about a voter whose data directory is not the one
/// the cluster knows.
fn replace_advice(node: u64) -> String {
    format!(
        "the directory was wiped or replaced, so it is not that voter; \
         run `sluice cluster remove-voter --node {node}`, then start it as a joining node and \
         run `sluice cluster add-voter --node {node}` (README, \"Replacing a node\")"
    )
}

impl MetadataQuorum {
    pub async fn start(config: QuorumConfig) -> Result<Arc<Self>, QuorumError> {
        let QuorumConfig { node_id, dir, listen, voters, session_timeout } = config;
        // A node not among the voters it was given joins an existing
        // cluster: it waits to be added (AddRaftVoter) instead of bootstrapping.
        let joining = !voters.contains_key(&node_id);
        if joining && listen.is_none() {
            return Err(QuorumError::NotAVoter { configured: node_id, voters: format_voters(&voters) });
        }
        std::fs::create_dir_all(&dir).map_err(|e| QuorumError::Storage(format!("{}: {e}", dir.display())))?;
        let db = open_db(&dir).map_err(|source| QuorumError::Db { path: dir.clone(), source })?;
        let stored = claim_node_id(&db, node_id).map_err(|source| QuorumError::Db { path: dir.clone(), source })?;
        if stored != node_id {
            return Err(QuorumError::NodeIdMismatch { stored, configured: node_id });
        }
        let storage = claim_storage_id(&db).map_err(|source| QuorumError::Db { path: dir.clone(), source })?;
        let (state_machine, view) = StateMachine::open(db.clone()).map_err(|e| QuorumError::Storage(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: 150,
            election_timeout_min: 800,
            election_timeout_max: 1600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            install_snapshot_timeout: RPC_TIMEOUT.as_millis() as u64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let me = Identity { id: node_id, storage, view: view.clone() };
        let network = NetworkFactory { me: me.clone() };
        let raft = Raft::new(node_id, Arc::new(raft_config), network, LogStore::new(db), state_machine)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;

        // The members may have changed since (add-voter, remove-voter), but
        // an address this node was given must be the one the cluster has.
        let recorded: Voters = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config.nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        if voters.iter().any(|(id, addr)| recorded.get(id).is_some_and(|a| a != addr)) {
            return Err(QuorumError::VotersMismatch {
                configured: format_voters(&voters),
                stored: format_voters(&recorded),
            });
        }
        let bootstrapping = recorded.is_empty() && !joining;

        let quorum = Arc::new(Self {
            id: node_id,
            raft,
            configured: voters,
            networked: listen.is_some(),
            me,
            view,
            session_timeout,
            heartbeats: Mutex::new(HashMap::new()),
            replaced_said: AtomicBool::new(false),
        });
        if let Some(addr) = listen {
            let listener = TcpListener::bind(addr).await.map_err(|source| QuorumError::Listen { addr, source })?;
            tokio::spawn(quorum.clone().serve(listener));
            quorum.greet_peers(bootstrapping).await?;
        }
        if bootstrapping {
            let members: BTreeMap<u64, BasicNode> =
                quorum.configured.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
            match quorum.raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Raft(e.to_string())),
            }
        } else if !quorum.is_member() {
            let listen = listen.map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(
                "node {node_id} is not a member of the metadata quorum: waiting to be added \
                 (`sluice cluster add-voter --node {node_id} --address {listen}`)"
            );
            let mut metrics = quorum.raft.metrics();
            metrics
                .wait_for(|m| m.membership_config.membership().get_node(&node_id).is_some())
                .await
                .map_err(|e| QuorumError::Raft(e.to_string()))?;
        }
        tokio::spawn(quorum.clone().control());
        Ok(quorum)
    }

    /// Asks every reachable peer this node was told of whether it is the
    /// node expected there and agrees on the voters when bootstrapping; a
    /// peer that refuses (another node, other voters, or another data
    /// directory known under this node's id) stops the start-up.
    /// Unreachable peers are fine: they may not be up yet.
    async fn greet_peers(&self, bootstrapping: bool) -> Result<(), QuorumError> {
        let bootstrap = bootstrapping.then(|| self.configured.clone());
        for (&id, addr) in self.configured.iter().filter(|(&id, _)| id != self.id) {
            let mut peer = Peer::new(addr.clone(), self.me.clone(), Some(id));
            match peer.call(Request::Hello { bootstrap: bootstrap.clone() }, Duration::from_secs(1)).await {
                Ok(Response::Hello { node, .. }) if node == id => {}
                Ok(Response::Hello { node, .. }) => {
                    let reason = format!("it is node {node}, but the voters list says node {id} is there");
                    return Err(QuorumError::PeerRefused { peer: addr.clone(), reason });
                }
                Ok(Response::Refused(reason)) => return Err(QuorumError::PeerRefused { peer: addr.clone(), reason }),
                Ok(other) => tracing::warn!(peer = %addr, ?other, "unexpected answer to hello"),
                Err(e) => tracing::info!(peer = %addr, error = %e, "peer not reachable yet"),
            }
        }
        Ok(())
    }

    /// Pins this node's storage id in the metadata (through the
    /// controller), so peers can tell a wiped directory from this one; a
    /// node the cluster knows by another storage id may not go on. The
    /// controller decides, not this node's view: a node just added may not
    /// have applied its own replacement yet and still see the old id.
    pub async fn pin_storage_id(&self) -> Result<(), QuorumError> {
        let claim = Command::ClaimVoterStorage { node: self.id, storage: self.me.storage, replace: false };
        match self.propose(claim).await?.0 {
            Ok(_) => Ok(()),
            Err(ApplyError::StorageMismatch { known, .. }) => {
                Err(QuorumError::StorageReplaced { node: self.id, known, ours: self.me.storage })
            }
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// Whether this node takes raft peers: a one-node cluster started
    /// without --voters does not, so its quorum cannot change.
    pub fn networked(&self) -> bool {
        self.networked
    }

    /// Whether the raft membership (voters and learners) includes this node.
    fn is_member(&self) -> bool {
        self.raft.metrics().borrow().membership_config.membership().get_node(&self.id).is_some()
    }

    /// The current voters and their raft addresses, or the configured ones
    /// while this node's log has no membership yet.
    fn current_voters(&self) -> Voters {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: Voters =
            membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone()))).collect();
        if voters.is_empty() {
            self.configured.clone()
        } else {
            voters
        }
    }

    /// Where node `id` takes raft RPCs: its membership entry, else the
    /// address this node was started with.
    fn address_of(&self, id: u64) -> Option<String> {
        let recorded = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
        };
        recorded.or_else(|| self.configured.get(&id).cloned())
    }

    /// The latest applied metadata.
    pub fn current(&self) -> MetadataView {
        self.view.borrow().clone()
    }

    /// A receiver that sees every newly applied metadata version.
    pub fn subscribe(&self) -> watch::Receiver<MetadataView> {
        self.view.clone()
    }

    /// The controller's node id, if one is known.
    pub fn controller(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    fn is_controller(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Commits `command` through the controller and returns its outcome and
    /// raft index once this node has applied it too.
    pub async fn propose(&self, command: Command) -> Result<(Outcome, u64), QuorumError> {
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        match self.at_controller(Request::Propose(command), deadline).await {
            Ok(Response::Proposed(Ok((outcome, index)))) => {
                let mut view = self.view.clone();
                let applied = view.wait_for(|v| v.applied_index >= index);
                tokio::time::timeout_at(deadline, applied).await.map_err(|_| QuorumError::NoController)?.ok();
                Ok((outcome, index))
            }
            Ok(other) => Err(QuorumError::Raft(format!("controller answered {other:?}"))),
            Err(ForwardError::Failed(e)) => Err(QuorumError::Raft(e)),
            Err(ForwardError::NotController(_)) => Err(QuorumError::NoController),
        }
    }

    /// Has the controller (this node or the one it forwards to) serve
    /// `body`, retrying while none is known or it moved, until `deadline`.
    /// A controller-side "not the controller" also means try again.
    async fn at_controller(&self, body: Request, deadline: Instant) -> Result<Response, ForwardError> {
        loop {
            let attempt = match self.controller() {
                Some(leader) if leader == self.id => Ok(self.dispatch(self.id, body.clone()).await),
                Some(leader) => self.forward(leader, body.clone()).await,
                None => Err(ForwardError::NotController(None)),
            };
            let attempt = attempt.and_then(|r| match r {
                Response::Proposed(Err(e)) | Response::VoterChanged(Err(e)) => Err(e),
                r => Ok(r),
            });
            match attempt {
                Err(ForwardError::NotController(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn propose_here(&self, command: Command) -> Result<(Outcome, u64), ForwardError> {
        if let Command::RegisterBroker { id, .. } = command {
            // A registering broker is alive: it must not be fenced before its
            // first heartbeat arrives.
            let _ = self.record_heartbeat(id);
        }
        match self.raft.client_write(command).await {
            Ok(r) => Ok((r.data, r.log_id.index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ForwardError::NotController(f.leader_id))
            }
            Err(e) => Err(ForwardError::Failed(e.to_string())),
        }
    }

    /// Sends a request to node `to`; transport failures read as "no
    /// controller there", so callers retry once a leader is known again.
    async fn forward(&self, to: u64, body: Request) -> Result<Response, ForwardError> {
        let addr = self.address_of(to).ok_or(ForwardError::NotController(None))?;
        let mut peer = Peer::new(addr, self.me.clone(), Some(to));
        match peer.call(body, RPC_TIMEOUT).await {
            Ok(Response::Refused(reason)) => Err(ForwardError::Failed(reason)),
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::debug!(node = to, error = %e, "controller unreachable");
                Err(ForwardError::NotController(None))
            }
        }
    }

    /// Tells the controller broker `broker` is alive; runs until the
    /// process stops (a stopped or killed process simply goes silent).
    pub async fn send_heartbeats(self: Arc<Self>, broker: i32) {
        let every = (self.session_timeout / 4).max(Duration::from_millis(100));
        let mut peer: Option<(u64, Peer)> = None;
        loop {
            let mut delivered = false;
            match self.controller() {
                Some(c) if c == self.id => {
                    delivered = self.record_heartbeat(broker).is_ok();
                }
                Some(c) => {
                    if peer.as_ref().is_none_or(|(id, _)| *id != c) {
                        peer = self.address_of(c).map(|a| (c, Peer::new(a, self.me.clone(), Some(c))));
                    }
                    if let Some((_, p)) = peer.as_mut() {
                        match p.call(Request::Heartbeat { broker }, every).await {
                            Ok(Response::Heartbeat(Ok(()))) => delivered = true,
                            Ok(other) => tracing::debug!(controller = c, ?other, "heartbeat refused"),
                            Err(e) => tracing::debug!(controller = c, error = %e, "heartbeat failed"),
                        }
                    }
                }
                None => {}
            }
            // Undelivered (no controller yet, or it moved): try again soon.
            tokio::time::sleep(if delivered { every } else { every.min(Duration::from_millis(200)) }).await;
        }
    }

    fn record_heartbeat(&self, broker: i32) -> Result<(), ForwardError> {
        if !self.is_controller() {
            return Err(ForwardError::NotController(self.controller()));
        }
        self.heartbeats.lock().unwrap_or_else(|p| p.into_inner()).insert(broker, Instant::now());
        Ok(())
    }

    /// The controller's duties, checked on every node but acted on only by
    /// the leader: fence silent brokers, unfence returning ones.
    async fn control(self: Arc<Self>) {
        let mut led_term = None;
        let mut fenced_at: HashMap<i32, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(CONTROLLER_TICK).await;
            if !self.is_controller() {
                led_term = None;
                continue;
            }
            let term = self.raft.metrics().borrow().current_term;
            let state = self.current().metadata;
            if led_term != Some(term) {
                // A new controller gives every broker a full session to check in.
                led_term = Some(term);
                let now = Instant::now();
                let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
                beats.clear();
                beats.extend(state.live_brokers().map(|b| (b.id, now)));
                fenced_at.clear();
            }
            // A fenced broker is unfenced only by a heartbeat sent after the
            // fence (not by one from before a controlled shutdown).
            for b in state.brokers.values() {
                if b.fenced {
                    fenced_at.entry(b.id).or_insert_with(Instant::now);
                } else {
                    fenced_at.remove(&b.id);
                }
            }
            let (to_fence, to_unfence): (Vec<i32>, Vec<i32>) = {
                let beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
                let alive = |id: &i32| beats.get(id).is_some_and(|t| t.elapsed() < self.session_timeout);
                let back = |id: &i32| beats.get(id).zip(fenced_at.get(id)).is_some_and(|(beat, fence)| beat > fence);
                let fence = state.brokers.values().filter(|b| !b.fenced && !alive(&b.id)).map(|b| b.id).collect();
                let unfence = state.brokers.values().filter(|b| b.fenced && back(&b.id)).map(|b| b.id).collect();
                (fence, unfence)
            };
            for id in to_fence {
                tracing::warn!(broker = id, "broker missed its heartbeats: fencing it");
                self.propose_logged(Command::FenceBroker { id }).await;
            }
            for id in to_unfence {
                tracing::info!(broker = id, "fenced broker is back: unfencing it");
                self.propose_logged(Command::UnfenceBroker { id }).await;
            }
        }
    }

    async fn propose_logged(&self, command: Command) {
        match self.propose(command.clone()).await {
            Ok((Ok(_), _)) => {}
            Ok((Err(e), _)) => tracing::warn!(?command, error = %e, "controller command refused"),
            Err(e) => tracing::warn!(?command, error = %e, "controller command failed"),
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(self.clone().serve_peer(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "raft accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_peer(self: Arc<Self>, mut stream: TcpStream) {
        while let Ok(envelope) = read_frame::<Envelope>(&mut stream).await {
            let response = self.handle(envelope).await;
            if write_frame(&mut stream, &response).await.is_err() {
                break;
            }
        }
    }

    async fn handle(&self, envelope: Envelope) -> Response {
        match self.check_identities(&envelope) {
            Some(refused) => Response::Refused(refused),
            None => self.dispatch(envelope.from, envelope.body).await,
        }
    }

    /// Serves one request from node `from` (possibly this node itself).
    async fn dispatch(&self, from: u64, body: Request) -> Response {
        match body {
            Request::Append(r) => Response::Append(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::Snapshot(r) => Response::Snapshot(self.raft.install_snapshot(r).await),
            Request::Propose(command) => Response::Proposed(self.propose_here(command).await),
            Request::Heartbeat { broker } => Response::Heartbeat(self.record_heartbeat(broker)),
            Request::ChangeVoters(change) => Response::VoterChanged(self.change_voters_here(change).await),
            Request::Hello { bootstrap } => {
                let ours = self.current_voters();
                match bootstrap.filter(|theirs| *theirs != ours) {
                    None => Response::Hello { node: self.id, storage: Some(self.me.storage) },
                    Some(theirs) => {
                        let reason = format!(
                            "node {from} was started with voters {} but node {} has {}",
                            format_voters(&theirs),
                            self.id,
                            format_voters(&ours)
                        );
                        tracing::error!("{reason}");
                        Response::Refused(reason)
                    }
                }
            }
        }
    }

    /// KIP-853's rule: a voter is a node id *and* a data directory. Refuses
    /// to act as this node at all (no vote, no append) when the sender
    /// expects another storage id here, saying why once; refuses a sender
    /// whose storage id is not the one pinned for it (see [`Refusal::of`]).
    fn check_identities(&self, envelope: &Envelope) -> Option<String> {
        match Refusal::of(self.me.storage, self.me.known_storage(envelope.from), envelope)? {
            Refusal::NotThisDirectory { expected } => {
                let reason = format!(
                    "node {} knows node {} by storage id {expected}, not this data directory's {}: {}",
                    envelope.from,
                    self.id,
                    self.me.storage,
                    replace_advice(self.id)
                );
                if !self.replaced_said.swap(true, Ordering::Relaxed) {
                    tracing::error!("{reason}");
                }
                Some(reason)
            }
            Refusal::SenderReplaced { known } => {
                let theirs = envelope.storage.map_or_else(|| "none".to_string(), |s| s.to_string());
                let reason = format!(
                    "the cluster knows node {} by storage id {known}, not its data directory's {theirs}: {}",
                    envelope.from,
                    replace_advice(envelope.from)
                );
                tracing::debug!("{reason}");
                Some(reason)
            }
        }
    }

    /// Adds or removes a voter (AddRaftVoter / RemoveRaftVoter), through
    /// the controller.
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), VoterChangeError> {
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        match self.at_controller(Request::ChangeVoters(change), deadline).await {
            Ok(Response::VoterChanged(Ok(result))) => result,
            Ok(other) => Err(VoterChangeError::TimedOut(format!("controller answered {other:?}"))),
            Err(e) => Err(VoterChangeError::TimedOut(e.to_string())),
        }
    }

    async fn change_voters_here(&self, change: VoterChange) -> Result<Result<(), VoterChangeError>, ForwardError> {
        if !self.is_controller() {
            return Err(ForwardError::NotController(self.controller()));
        }
        let voters = self.current_voters();
        let result = match change {
            VoterChange::Add { node, addr, storage, timeout_ms } => {
                if voters.contains_key(&node) {
                    return Ok(Err(VoterChangeError::DuplicateVoter(format!(
                        "node {node} is already a voter of {}",
                        format_voters(&voters)
                    ))));
                }
                let timeout = Duration::from_millis(timeout_ms.max(1));
                match self.added_as_learner(node, &addr, storage, timeout).await {
                    Ok(storage) => {
                        let pin = Command::ClaimVoterStorage { node, storage, replace: true };
                        match self.raft.client_write(pin).await {
                            Ok(_) => {
                                let change = ChangeMembers::AddVoterIds(BTreeSet::from([node]));
                                tokio::time::timeout(timeout, self.raft.change_membership(change, false)).await
                            }
                            Err(e) => Ok(Err(e)),
                        }
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            VoterChange::Remove { node, storage } => {
                let known = self.me.known_storage(node);
                if !voters.contains_key(&node) || storage.is_some_and(|s| known.is_some_and(|k| k != s)) {
                    let known = known.map_or_else(String::new, |k| format!(" with storage id {k}"));
                    return Ok(Err(VoterChangeError::VoterNotFound(format!(
                        "no voter {node}{known} among {}",
                        format_voters(&voters)
                    ))));
                }
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([node]));
                tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.change_membership(change, false)).await
            }
        };
        match result {
            Err(_) => Ok(Err(VoterChangeError::TimedOut("the membership change did not commit in time".into()))),
            Ok(Ok(_)) => Ok(Ok(())),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ForwardError::NotController(f.leader_id))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(e),
            )))) => Ok(Err(VoterChangeError::TimedOut(format!("another membership change is in progress: {e}")))),
            Ok(Err(e)) => Ok(Err(VoterChangeError::InvalidRequest(e.to_string()))),
        }
    }

    /// Checks that `node` answers at `addr` (with `storage`, if given) and
    /// replicates the log to it as a learner until it has caught up, as
    /// Kafka requires of a new voter. Returns its storage id.
    async fn added_as_learner(
        &self,
        node: u64,
        addr: &str,
        storage: Option<Uuid>,
        timeout: Duration,
    ) -> Result<Uuid, VoterChangeError> {
        let mut peer = Peer::new(addr.to_string(), self.me.clone(), None);
        let reported = match peer.call(Request::Hello { bootstrap: None }, RPC_TIMEOUT.min(timeout)).await {
            Ok(Response::Hello { node: n, storage: Some(s) }) if n == node => s,
            Ok(Response::Hello { node: n, .. }) if n != node => {
                return Err(VoterChangeError::InvalidRequest(format!("{addr} is node {n}, not node {node}")));
            }
            Ok(Response::Refused(reason)) => return Err(VoterChangeError::InvalidRequest(reason)),
            Ok(other) => {
                return Err(VoterChangeError::InvalidRequest(format!("node {node} at {addr} answered {other:?}")));
            }
            Err(e) => return Err(VoterChangeError::TimedOut(format!("node {node} at {addr} does not answer: {e}"))),
        };
        if let Some(expected) = storage.filter(|s| *s != reported) {
            return Err(VoterChangeError::InvalidRequest(format!(
                "node {node} at {addr} has storage id {reported}, not {expected}"
            )));
        }
        let learner = self.raft.add_learner(node, BasicNode { addr: addr.to_string() }, true);
        match tokio::time::timeout(timeout, learner).await {
            Ok(Ok(_)) => Ok(reported),
            Ok(Err(e)) => Err(VoterChangeError::InvalidRequest(e.to_string())),
            Err(_) => Err(VoterChangeError::TimedOut(format!(
                "node {node} did not catch up with the metadata log within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 0x3f) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use openraft::raft::AppendEntriesRequest;
    use openraft::Vote;

    use super::*;

    fn envelope(storage: Uuid, to_storage: Option<Uuid>, body: Request) -> Envelope {
        Envelope { from: 1, storage: Some(storage), to_storage, body }
    }

    fn append() -> Request {
        Request::Append(AppendEntriesRequest {
            vote: Vote::new(8, 1),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        })
    }

    #[test]
    fn a_follower_whose_metadata_predates_a_replacement_still_follows_the_replaced_leader() {
        let (ours, old, new) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        // This node's metadata still pins node 1's old directory; node 1 was
        // replaced and now leads: its appends are what bring the replacement.
        assert_eq!(Refusal::of(ours, Some(old), &envelope(new, Some(ours), append())), None);
        // Outside raft's messages the pinned id still decides.
        let hello = Request::Hello { bootstrap: None };
        assert_eq!(
            Refusal::of(ours, Some(old), &envelope(new, None, hello)),
            Some(Refusal::SenderReplaced { known: old })
        );
        // Whatever the message, a sender expecting another directory here is refused.
        assert_eq!(
            Refusal::of(ours, Some(new), &envelope(new, Some(old), append())),
            Some(Refusal::NotThisDirectory { expected: old })
        );
        assert_eq!(Refusal::of(ours, Some(new), &envelope(new, Some(ours), append())), None);
    }
}
