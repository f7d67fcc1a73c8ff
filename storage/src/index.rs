//! Sparse indexes beside each segment, kept in memory and appended to a
//! file: `.index` maps a batch's last offset (relative to the segment base)
//! to its byte position; `.timeindex` maps the largest timestamp seen so far
//! to the last offset of the batch that carried it. Both are derived data:
//! recovery rebuilds them from the log whenever they cannot be trusted.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::StorageError;

pub trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// `.index` entry: relative last offset of a batch, and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// `.timeindex` entry: max timestamp so far and the relative offset it is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        Self { timestamp: i64::from_be_bytes(ts), relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) }
    }
}

/// A write the caller must perform (through the ring) to persist a change.
pub struct PendingWrite {
    pub file: Rc<File>,
    pub bytes: Vec<u8>,
    pub position: u64,
}

pub struct Index<E: Entry> {
    path: PathBuf,
    file: Rc<File>,
    entries: Vec<E>,
}

impl<E: Entry> Index<E> {
    /// Reads an existing index file; `None` if it is missing or its length
    /// is not a whole number of entries (a torn write), so the caller rebuilds.
    pub fn load(path: &Path) -> Result<Option<Self>, StorageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read index", path)(e)),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        Ok(Some(Self { path: path.to_owned(), file: open_rw(path)?, entries }))
    }

    /// Writes a fresh index file holding exactly `entries`.
    pub fn create(path: &Path, entries: Vec<E>) -> Result<Self, StorageError> {
        let mut buf = Vec::with_capacity(entries.len() * E::SIZE);
        entries.iter().for_each(|e| e.encode(&mut buf));
        std::fs::write(path, &buf).map_err(StorageError::io("write index", path))?;
        Ok(Self { path: path.to_owned(), file: open_rw(path)?, entries })
    }

    /// Adds an entry in memory and returns the file write that persists it.
    pub fn push(&mut self, entry: E) -> PendingWrite {
        let position = (self.entries.len() * E::SIZE) as u64;
        let mut bytes = Vec::with_capacity(E::SIZE);
        entry.encode(&mut bytes);
        self.entries.push(entry);
        PendingWrite { file: self.file.clone(), bytes, position }
    }

    /// Drops entries from the first one `keep` rejects, in memory and on disk.
    pub fn truncate_where(&mut self, keep: impl Fn(&E) -> bool) -> Result<(), StorageError> {
        let n = self.entries.iter().position(|e| !keep(e)).unwrap_or(self.entries.len());
        self.entries.truncate(n);
        self.file.set_len((n * E::SIZE) as u64).map_err(StorageError::io("truncate index", &self.path))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    /// The last entry for which `before(entry)` holds, given entries sorted
    /// so that `before` is true for a prefix.
    pub fn floor(&self, before: impl Fn(&E) -> bool) -> Option<&E> {
        let n = self.entries.partition_point(before);
        n.checked_sub(1).map(|i| &self.entries[i])
    }

    pub fn file(&self) -> &Rc<File> {
        &self.file
    }
}

fn open_rw(path: &Path) -> Result<Rc<File>, StorageError> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(StorageError::io("open index", path))?;
    Ok(Rc::new(file))
}
