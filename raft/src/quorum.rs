//! One node's membership in the metadata quorum: starts the openraft node
//! on its RocksDB store, serves peers' RPCs, forwards proposals to the
//! controller (the raft leader), and — while this node is the controller —
//! tracks broker heartbeats, fencing brokers that go silent and unfencing
//! them when they return. Readers get the applied metadata through a watch.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::command::{Command, Outcome};
use crate::network::{
    read_frame, write_frame, Envelope, ForwardError, NetworkFactory, Peer, Request, Response, Voters,
};
use crate::storage::{claim_node_id, open_db, LogStore, MetadataView, StateMachine};
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
    #[error("no controller answered within {}s", PROPOSE_TIMEOUT.as_secs())]
    NoController,
    #[error("metadata quorum: {0}")]
    Raft(String),
}

pub struct MetadataQuorum {
    id: u64,
    raft: Raft<TypeConfig>,
    voters: Voters,
    view: watch::Receiver<MetadataView>,
    session_timeout: Duration,
    /// While this node is the controller: when each broker was last heard from.
    heartbeats: Mutex<HashMap<i32, Instant>>,
}

/// "1@host:port,2@host:port" for messages.
fn format_voters(voters: &Voters) -> String {
    voters.iter().map(|(id, addr)| format!("{id}@{addr}")).collect::<Vec<_>>().join(",")
}

impl MetadataQuorum {
    pub async fn start(config: QuorumConfig) -> Result<Arc<Self>, QuorumError> {
        let QuorumConfig { node_id, dir, listen, voters, session_timeout } = config;
        if !voters.contains_key(&node_id) {
            return Err(QuorumError::NotAVoter { configured: node_id, voters: format_voters(&voters) });
        }
        std::fs::create_dir_all(&dir).map_err(|e| QuorumError::Storage(format!("{}: {e}", dir.display())))?;
        let db = open_db(&dir).map_err(|source| QuorumError::Db { path: dir.clone(), source })?;
        let stored = claim_node_id(&db, node_id).map_err(|source| QuorumError::Db { path: dir.clone(), source })?;
        if stored != node_id {
            return Err(QuorumError::NodeIdMismatch { stored, configured: node_id });
        }
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
        let network = NetworkFactory { from: node_id, voters: voters.clone() };
        let raft = Raft::new(node_id, Arc::new(raft_config), network, LogStore::new(db), state_machine)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;

        let recorded: Voters = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config.nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        if !recorded.is_empty() && recorded != voters {
            return Err(QuorumError::VotersMismatch {
                configured: format_voters(&voters),
                stored: format_voters(&recorded),
            });
        }

        let quorum =
            Arc::new(Self { id: node_id, raft, voters, view, session_timeout, heartbeats: Mutex::new(HashMap::new()) });
        if let Some(addr) = listen {
            let listener = TcpListener::bind(addr).await.map_err(|source| QuorumError::Listen { addr, source })?;
            tokio::spawn(quorum.clone().serve(listener));
            quorum.greet_peers().await?;
        }
        let members: BTreeMap<u64, BasicNode> =
            quorum.voters.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
        match quorum.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(QuorumError::Raft(e.to_string())),
        }
        tokio::spawn(quorum.clone().control());
        Ok(quorum)
    }

    /// Asks every reachable peer whether it agrees on the voters; a peer
    /// that disagrees (or is not the node the voters list says) stops the
    /// start-up. Unreachable peers are fine: they may not be up yet.
    async fn greet_peers(&self) -> Result<(), QuorumError> {
        for (&id, addr) in self.voters.iter().filter(|(&id, _)| id != self.id) {
            let mut peer = Peer::new(addr.clone(), self.id, self.voters.clone());
            match peer.call(Request::Hello, Duration::from_secs(1)).await {
                Ok(Response::Hello { node }) if node == id => {}
                Ok(Response::Hello { node }) => {
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
        loop {
            let attempt = match self.controller() {
                Some(leader) if leader == self.id => self.propose_here(command.clone()).await,
                Some(leader) => self.forward(leader, Request::Propose(command.clone())).await.and_then(|r| match r {
                    Response::Proposed(r) => r,
                    other => Err(ForwardError::Failed(format!("controller answered {other:?}"))),
                }),
                None => Err(ForwardError::NotController(None)),
            };
            match attempt {
                Ok((outcome, index)) => {
                    let mut view = self.view.clone();
                    let applied = view.wait_for(|v| v.applied_index >= index);
                    tokio::time::timeout_at(deadline, applied).await.map_err(|_| QuorumError::NoController)?.ok();
                    return Ok((outcome, index));
                }
                Err(ForwardError::Failed(e)) => return Err(QuorumError::Raft(e)),
                Err(ForwardError::NotController(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(ForwardError::NotController(_)) => return Err(QuorumError::NoController),
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
        let addr = self.voters.get(&to).ok_or(ForwardError::NotController(None))?;
        let mut peer = Peer::new(addr.clone(), self.id, self.voters.clone());
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
                        peer = self.voters.get(&c).map(|a| (c, Peer::new(a.clone(), self.id, self.voters.clone())));
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
        if envelope.voters != self.voters {
            let reason = format!(
                "node {} was started with voters {} but node {} has {}",
                envelope.from,
                format_voters(&envelope.voters),
                self.id,
                format_voters(&self.voters)
            );
            tracing::error!("{reason}");
            return Response::Refused(reason);
        }
        match envelope.body {
            Request::Append(r) => Response::Append(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::Snapshot(r) => Response::Snapshot(self.raft.install_snapshot(r).await),
            Request::Propose(command) => Response::Proposed(self.propose_here(command).await),
            Request::Heartbeat { broker } => Response::Heartbeat(self.record_heartbeat(broker)),
            Request::Hello => Response::Hello { node: self.id },
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
