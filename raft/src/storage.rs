//! The quorum's durable state in one RocksDB database: the raft log (one
//! key per entry, big-endian index so keys sort by index), the vote and
//! commit marks, and the applied state machine. Every write that raft must
//! not lose is synced before it is acknowledged. The state machine is
//! persisted on every apply (metadata changes are rare and small), so a
//! snapshot is simply the current state serialised.

// openraft's storage traits fix the (large) error type these helpers return.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::command::Outcome;
use crate::model::ClusterMetadata;
use crate::TypeConfig;

type NodeId = u64;
type StorageResult<T> = Result<T, StorageError<NodeId>>;

const LOGS: &str = "logs";
const META: &str = "meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
const NODE_ID: &[u8] = b"node_id";
const STORAGE_ID: &[u8] = b"storage_id";
const STATE: &[u8] = b"state_machine";

/// Opens (creating) the database under `dir`.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Metadata is tiny; keep RocksDB's memory and files small.
    options.set_max_background_jobs(1);
    options.set_keep_log_file_num(2);
    let families = [LOGS, META].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&options, dir, families)?))
}

/// The node id this database was created for, recording `id` on first use.
pub fn claim_node_id(db: &DB, id: u64) -> Result<u64, rocksdb::Error> {
    let meta = db.cf_handle(META).expect("column family created at open");
    match db.get_cf(meta, NODE_ID)? {
        Some(bytes) if bytes.len() == 8 => Ok(u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default())),
        _ => {
            db.put_cf_opt(meta, NODE_ID, id.to_be_bytes(), &synced())?;
            Ok(id)
        }
    }
}

/// This data directory's storage id (KIP-853's directory id), created on
/// first use: a wiped or replaced directory gets a new one, so the quorum
/// can tell it is not the voter it replaced.
pub fn claim_storage_id(db: &DB) -> Result<Uuid, rocksdb::Error> {
    let meta = db.cf_handle(META).expect("column family created at open");
    if let Some(id) = db.get_cf(meta, STORAGE_ID)?.and_then(|b| Uuid::from_slice(&b).ok()) {
        return Ok(id);
    }
    let id = Uuid::new_v4();
    db.put_cf_opt(meta, STORAGE_ID, id.as_bytes(), &synced())?;
    Ok(id)
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

/// The raft log in RocksDB.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.db.get_cf(self.cf(META), key).map_err(read_err)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }

    fn put_json<T: Serialize>(&self, key: &[u8], value: &T) -> StorageResult<()> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        self.db.put_cf_opt(self.cf(META), key, bytes, &synced()).map_err(write_err)
    }

    fn delete_logs(&self, from: u64, to: u64) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(LOGS), from.to_be_bytes(), to.to_be_bytes());
        self.db.write_opt(batch, &synced()).map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            std::ops::Bound::Included(&i) => i,
            std::ops::Bound::Excluded(&i) => i + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let from = start.to_be_bytes();
        let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(LOGS), mode) {
            let (key, value) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(key[..8].try_into().map_err(read_err)?);
            if !range.contains(&index) {
                break;
            }
            entries.push(serde_json::from_slice(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_json(LAST_PURGED)?;
        let last = match self.db.iterator_cf(self.cf(LOGS), rocksdb::IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                let entry: Entry<TypeConfig> = serde_json::from_slice(&value).map_err(read_err)?;
                Some(entry.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.put_json(VOTE, vote)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.get_json(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        self.put_json(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.get_json::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
            batch.put_cf(self.cf(LOGS), entry.log_id.index.to_be_bytes(), bytes);
        }
        let written = self.db.write_opt(batch, &synced());
        let reported = written.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(reported);
        written.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.delete_logs(log_id.index, u64::MAX)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.put_json(LAST_PURGED, &log_id)?;
        self.delete_logs(0, log_id.index + 1)
    }
}

/// What the state machine holds and persists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    pub metadata: ClusterMetadata,
}

/// The metadata as of one applied raft index: what every reader sees.
#[derive(Debug, Clone, Default)]
pub struct MetadataView {
    pub applied_index: u64,
    pub metadata: Arc<ClusterMetadata>,
}

pub struct StateMachine {
    db: Arc<DB>,
    state: Applied,
    published: watch::Sender<MetadataView>,
}

impl StateMachine {
    pub fn open(db: Arc<DB>) -> Result<(Self, watch::Receiver<MetadataView>), StorageError<NodeId>> {
        let meta = db.cf_handle(META).expect("column family created at open");
        let state: Applied = match db.get_cf(meta, STATE).map_err(read_err)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(read_err)?,
            None => Applied::default(),
        };
        let (published, view) = watch::channel(view_of(&state));
        Ok((Self { db, state, published }, view))
    }

    fn persist_and_publish(&self) -> StorageResult<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(|e| StorageIOError::write_state_machine(&e))?;
        let meta = self.db.cf_handle(META).expect("column family created at open");
        self.db.put_cf_opt(meta, STATE, bytes, &synced()).map_err(|e| StorageIOError::write_state_machine(&e))?;
        self.published.send_replace(view_of(&self.state));
        Ok(())
    }

    fn snapshot_of(state: &Applied) -> StorageResult<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(state).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let snapshot_id = match state.last_applied {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_string(),
        };
        let meta =
            SnapshotMeta { last_log_id: state.last_applied, last_membership: state.membership.clone(), snapshot_id };
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

fn view_of(state: &Applied) -> MetadataView {
    MetadataView {
        applied_index: state.last_applied.map(|id| id.index).unwrap_or(0),
        metadata: Arc::new(state.metadata.clone()),
    }
}

/// Builds snapshots from a copy of the state taken when asked.
pub struct SnapshotBuilder(Applied);

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        StateMachine::snapshot_of(&self.0)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.state.last_applied = Some(entry.log_id);
            replies.push(match entry.payload {
                EntryPayload::Blank => Ok(crate::command::Reply::Done),
                EntryPayload::Normal(command) => {
                    let outcome = self.state.metadata.apply(command.clone());
                    if let Err(e) = &outcome {
                        tracing::debug!(?command, error = %e, "metadata command refused");
                    }
                    outcome
                }
                EntryPayload::Membership(m) => {
                    // A node that left gives up its storage id: whatever
                    // joins under its id later is a new voter.
                    self.state.metadata.voter_storage.retain(|id, _| m.get_node(id).is_some());
                    self.state.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(crate::command::Reply::Done)
                }
            });
        }
        self.persist_and_publish()?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder(self.state.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let state: Applied = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.state = state;
        self.persist_and_publish()
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        if self.state.last_applied.is_none() {
            return Ok(None);
        }
        Self::snapshot_of(&self.state).map(Some)
    }
}
