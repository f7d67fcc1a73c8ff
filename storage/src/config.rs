//! A partition log's settings: segment rolling, retention, indexing,
//! fsync policy and compaction, as the broker derives them from topic
//! configs.

use crate::cleaner::Compaction;

/// When appends become durable, as the broker's `--fsync` setting says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Acknowledge once written to the page cache; the OS flushes later.
    Never,
    /// Acknowledge after an fdatasync that may cover many appends (group commit).
    #[default]
    Batch,
    /// Acknowledge after an fdatasync issued for this append alone.
    Always,
}

/// One partition log's settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment once the active one would exceed this.
    pub segment_bytes: u64,
    /// Roll once the active segment is this old (`segment.ms`, wall clock).
    pub segment_ms: i64,
    /// Delete closed segments whose newest record is older (`retention.ms`; < 0: never).
    pub retention_ms: i64,
    /// Delete the oldest closed segments while the log is larger (`retention.bytes`; < 0: never).
    pub retention_bytes: i64,
    /// Bytes of log between sparse index entries.
    pub index_interval_bytes: usize,
    pub fsync: FsyncPolicy,
    /// Set when `cleanup.policy` includes `compact`.
    pub compaction: Option<Compaction>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::default(),
            compaction: None,
        }
    }
}
