//! The floor everything else stands on: the shard threads and their
//! per-shard state, the shutdown flag, and the periodic work each shard
//! runs on its own (housekeeping, compaction).

pub mod compaction;
pub mod housekeeping;
pub mod shard;
pub mod shutdown;
