//! The quorum's wire: raft RPCs, forwarded proposals and broker heartbeats
//! between nodes over TCP, one JSON message per length-prefixed frame.
//! Every request carries the sender's id and storage id and the storage id
//! it believes the receiver has, so a node whose data directory was wiped
//! or replaced is refused in both directions (KIP-853's directory ids).

// openraft's network trait fixes the (large) error type these helpers return.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

use crate::command::{Command, Outcome};
use crate::storage::MetadataView;
use crate::TypeConfig;

type NodeId = u64;

/// Snapshots travel in one frame; metadata is far below this.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Voter id to raft address: what every node must agree on.
pub type Voters = BTreeMap<NodeId, String>;

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    /// The sender's storage id.
    #[serde(default)]
    pub storage: Option<Uuid>,
    /// The receiver's storage id as the sender's metadata records it.
    #[serde(default)]
    pub to_storage: Option<Uuid>,
    pub body: Request,
}

/// Who is sending: this node's id and storage id, and its applied metadata
/// (where each peer's pinned storage id is read from).
#[derive(Clone)]
pub struct Identity {
    pub id: NodeId,
    pub storage: Uuid,
    pub view: watch::Receiver<MetadataView>,
}

impl Identity {
    /// The storage id the cluster has pinned for `node`, if any.
    pub fn known_storage(&self, node: NodeId) -> Option<Uuid> {
        self.view.borrow().metadata.voter_storage.get(&node).copied()
    }
}

/// Why a voter could not be added or removed; each is one Kafka error code.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum VoterChangeError {
    #[error("{0}")]
    DuplicateVoter(String),
    #[error("{0}")]
    VoterNotFound(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    TimedOut(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A metadata change for the controller to commit.
    Propose(Command),
    /// A broker tells the controller it is alive.
    Heartbeat {
        broker: i32,
    },
    /// Start-up check that this peer is the node expected there. A node
    /// bootstrapping a new cluster sends its voters, which must match.
    Hello {
        bootstrap: Option<Voters>,
    },
    /// For the controller: a membership change an operator asked for.
    ChangeVoters(VoterChange),
}

impl Request {
    /// Raft's own messages, as openraft exchanges them.
    pub fn is_raft(&self) -> bool {
        matches!(self, Request::Append(_) | Request::Vote(_) | Request::Snapshot(_))
    }
}

/// AddRaftVoter / RemoveRaftVoter, as the controller carries them out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum VoterChange {
    /// Make `node` (raft address `addr`) a voter; `storage`, if given, must
    /// be the storage id the node reports.
    Add { node: NodeId, addr: String, storage: Option<Uuid>, timeout_ms: u64 },
    /// Remove voter `node`; `storage`, if given, must be its pinned storage id.
    Remove { node: NodeId, storage: Option<Uuid> },
}

/// Why the controller could not take a proposal or heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("node is not the controller (leader: {0:?})")]
    NotController(Option<NodeId>),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The outcome and the raft index it was committed at.
    Proposed(Result<(Outcome, u64), ForwardError>),
    Heartbeat(Result<(), ForwardError>),
    Hello {
        node: NodeId,
        #[serde(default)]
        storage: Option<Uuid>,
    },
    VoterChanged(Result<Result<(), VoterChangeError>, ForwardError>),
    /// The sender is not who this node expected, or this node is not who
    /// the sender expected.
    Refused(String),
}

pub async fn write_frame<T: Serialize>(stream: &mut TcpStream, message: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

pub async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> std::io::Result<T> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes is too large")));
    }
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A connection to one peer, opened on first use and reopened after errors.
pub struct Peer {
    pub addr: String,
    me: Identity,
    /// The node expected at `addr`, when known.
    target: Option<NodeId>,
    conn: Option<TcpStream>,
}

impl Peer {
    pub fn new(addr: String, me: Identity, target: Option<NodeId>) -> Self {
        Self { addr, me, target, conn: None }
    }

    pub async fn call(&mut self, body: Request, timeout: Duration) -> std::io::Result<Response> {
        let to_storage = self.target.and_then(|t| self.me.known_storage(t));
        let envelope = Envelope { from: self.me.id, storage: Some(self.me.storage), to_storage, body };
        let result = tokio::time::timeout(timeout, self.exchange(&envelope)).await;
        let result = result.unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, envelope: &Envelope) -> std::io::Result<Response> {
        let stream = match &mut self.conn {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                self.conn.insert(s)
            }
        };
        write_frame(stream, envelope).await?;
        read_frame(stream).await
    }
}

/// Opens raft connections to the members.
pub struct NetworkFactory {
    pub me: Identity,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Network { target, peer: Peer::new(node.addr.clone(), self.me.clone(), Some(target)) }
    }
}

pub struct Network {
    target: NodeId,
    peer: Peer,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Network {
    async fn send(&mut self, body: Request, option: &RPCOption) -> Result<Response, Unreachable> {
        self.peer.call(body, option.hard_ttl()).await.map_err(|e| Unreachable::new(&e))
    }

    fn unexpected<T, E: std::error::Error>(&self, got: Response) -> RpcResult<T, E> {
        let e = std::io::Error::other(format!("node {} answered {got:?}", self.target));
        Err(RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.send(Request::Append(rpc), &option).await? {
            Response::Append(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => self.unexpected(other),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.send(Request::Snapshot(rpc), &option).await? {
            Response::Snapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => self.unexpected(other),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => self.unexpected(other),
        }
    }
}
