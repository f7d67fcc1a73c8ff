//! The leader epoch cache (Kafka's `leader-epoch-checkpoint`): for each
//! leader epoch seen in this log, the offset its first batch got. It
//! answers OffsetForLeaderEpoch — where an epoch's data ends — which lets a
//! follower find the point where its log diverged from a new leader's.
//! Kept in a small text file ("epoch start_offset" per line), replaced
//! atomically on every change; changes happen only on leader changes.

use std::path::{Path, PathBuf};

use crate::error::StorageError;

const FILE_NAME: &str = "leader-epoch-checkpoint";

pub struct EpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Loads the cache of the log in `dir`, dropping entries past `log_end`
    /// (written just before a crash cut the log shorter).
    pub fn open(dir: &Path, log_end: i64) -> Result<Self, StorageError> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StorageError::io("read leader epochs", &path)(e)),
        };
        let mut entries: Vec<(i32, i64)> = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(Ok(epoch)), Some(Ok(start))) =
                (words.next().map(str::parse::<i32>), words.next().map(str::parse::<i64>))
            else {
                return Err(StorageError::InvalidBatch("unreadable leader-epoch-checkpoint line"));
            };
            if entries.last().is_none_or(|&(e, s)| epoch > e && start >= s) {
                entries.push((epoch, start));
            }
        }
        let mut cache = Self { path, entries };
        cache.truncate_from_end(log_end)?;
        Ok(cache)
    }

    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start`, if it is newer than the latest.
    pub fn assign(&mut self, epoch: i32, start: i64) -> Result<(), StorageError> {
        if epoch < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return Ok(());
        }
        self.entries.retain(|&(_, s)| s < start);
        self.entries.push((epoch, start));
        self.persist()
    }

    /// Forgets epochs that start at or past `end` (the log was cut there).
    pub fn truncate_from_end(&mut self, end: i64) -> Result<(), StorageError> {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets everything (the log was emptied and restarted elsewhere).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }

    /// The log now starts at `start`: epochs wholly before it go, and the
    /// one holding it starts there (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start: i64) -> Result<(), StorageError> {
        let Some(holding) = self.entries.iter().rposition(|&(_, s)| s <= start) else { return Ok(()) };
        if holding == 0 && self.entries[0].1 == start {
            return Ok(());
        }
        self.entries.drain(..holding);
        self.entries[0].1 = start;
        self.persist()
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `epoch` and the
    /// offset where the next epoch began (or `log_end` for the latest);
    /// (-1, -1) when this log knows no such epoch.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        match self.entries.last() {
            None => (-1, -1),
            Some(&(latest, _)) if latest == epoch => (epoch, log_end),
            Some(_) => {
                let Some(higher) = self.entries.iter().position(|&(e, _)| e > epoch) else { return (-1, -1) };
                let next_start = self.entries[higher].1;
                match higher.checked_sub(1).map(|i| self.entries[i].0) {
                    Some(floor) => (floor, next_start),
                    None => (epoch, next_start),
                }
            }
        }
    }

    fn persist(&self) -> Result<(), StorageError> {
        let text: String = self.entries.iter().map(|(e, s)| format!("{e} {s}\n")).collect();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::files::write_atomically(dir, FILE_NAME, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path(), 0).unwrap();
        assert_eq!(c.end_offset_for(0, 0), (-1, -1));
        c.assign(0, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(1, 5).unwrap(); // older than the latest: ignored
        c.assign(5, 20).unwrap();
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(0, 30), (0, 10));
        assert_eq!(c.end_offset_for(1, 30), (0, 10), "unknown epoch answers the floor epoch");
        assert_eq!(c.end_offset_for(3, 30), (2, 20));
        assert_eq!(c.end_offset_for(7, 30), (-1, -1));
        let mut reopened = EpochCache::open(dir.path(), 15).unwrap();
        assert_eq!(reopened.latest(), Some((2, 10)), "entries past the log end are dropped");
        reopened.truncate_from_start(12).unwrap();
        assert_eq!(reopened.end_offset_for(0, 15), (0, 12), "older epochs end where the log now starts");
        assert_eq!(reopened.end_offset_for(2, 15), (2, 15));
        reopened.clear().unwrap();
        assert_eq!(EpochCache::open(dir.path(), 15).unwrap().latest(), None);
    }
}
