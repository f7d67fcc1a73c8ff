//! The small checkpoint files kept beside a partition's segments (log
//! start offset, recovery point, high watermark), each replaced atomically.

use std::fs::File;
use std::path::Path;

use crate::error::StorageError;

/// Kept beside the segments: the log start offset when DeleteRecords moved
/// it inside the first segment (Kafka's log-start-offset checkpoint).
const LOG_START_FILE: &str = "log-start-offset";
/// Kept beside the segments: the offset below which everything was durable
/// when last checkpointed, and whether the broker then stopped cleanly
/// (Kafka's recovery-point checkpoint and clean-shutdown marker in one).
const RECOVERY_FILE: &str = "recovery-point";

/// Where recovery may start trusting the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryPoint {
    pub offset: i64,
    pub clean: bool,
}

/// A checkpoint file's text, or `None` when it was never written.
fn read_checkpoint(dir: &Path, name: &str, what: &'static str) -> Result<Option<String>, StorageError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(what, &path)(e)),
    }
}

pub(crate) fn read_log_start(dir: &Path) -> Result<Option<i64>, StorageError> {
    Ok(read_checkpoint(dir, LOG_START_FILE, "read log start offset")?.and_then(|t| t.trim().parse().ok()))
}

pub(crate) fn read_recovery_point(dir: &Path) -> Result<RecoveryPoint, StorageError> {
    let Some(text) = read_checkpoint(dir, RECOVERY_FILE, "read recovery point")? else {
        return Ok(RecoveryPoint::default());
    };
    let mut words = text.split_whitespace();
    let offset = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    Ok(RecoveryPoint { offset, clean: words.next() == Some("clean") })
}

const HIGH_WATERMARK: &str = "high-watermark";

/// The replication high watermark last checkpointed (Kafka's
/// replication-offset-checkpoint, kept per partition here).
pub(crate) fn read_high_watermark(dir: &Path) -> Result<Option<i64>, StorageError> {
    Ok(read_checkpoint(dir, HIGH_WATERMARK, "read high watermark")?.and_then(|t| t.trim().parse().ok()))
}

pub(crate) fn write_high_watermark(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_atomically(dir, HIGH_WATERMARK, offset.to_string())
}

pub(crate) fn write_recovery_point(dir: &Path, point: RecoveryPoint) -> Result<(), StorageError> {
    let text = format!("{} {}", point.offset, if point.clean { "clean" } else { "dirty" });
    write_atomically(dir, RECOVERY_FILE, &text)
}

pub(crate) fn write_log_start(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_atomically(dir, LOG_START_FILE, offset.to_string())
}

/// Replaces a small checkpoint file atomically: temp file, fsync, rename,
/// fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> Result<(), StorageError> {
    use std::io::Write;
    let (tmp, path) = (dir.join(format!("{name}.tmp")), dir.join(name));
    let mut f = File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    f.write_all(bytes.as_ref()).map_err(StorageError::io("write", &tmp))?;
    f.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(StorageError::io("rename", &path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("fsync", dir))
}
