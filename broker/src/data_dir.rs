//! The broker's data directory: its incarnation id, where each partition's
//! directory is, and removing partition directories nothing hosts.

use std::path::{Path, PathBuf};

use sluice_raft::ClusterMetadata;
use sluice_storage::StorageError;
use uuid::Uuid;

/// Where a partition's segments live.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The id of this data directory, created with it.
pub fn load_incarnation(data_dir: &Path) -> Result<Uuid, StorageError> {
    let path = data_dir.join("incarnation");
    let io = |op| {
        let path = path.clone();
        move |source| StorageError::Io { op, path, source }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| io("parse")(std::io::Error::other(e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io("create data dir"))?;
            let id = Uuid::new_v4();
            let tmp = data_dir.join("incarnation.tmp");
            std::fs::write(&tmp, id.to_string()).map_err(io("write"))?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("fsync"))?;
            std::fs::rename(&tmp, &path).map_err(io("rename"))?;
            Ok(id)
        }
        Err(e) => Err(io("read")(e)),
    }
}

/// Whether `dir` looks like a partition (holds a `.log` segment), so that
/// nothing else that happens to be named `name-N` is ever removed.
fn holds_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().ends_with(".log")))
        .unwrap_or(false)
}

/// Removes partition directories this broker no longer hosts: left behind
/// by a deletion or reassignment that crashed before the files went.
pub fn remove_orphan_partition_dirs(data_dir: &Path, me: i32, metadata: &ClusterMetadata) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Some((topic, partition)) = name.rsplit_once('-') else { continue };
        let Ok(partition) = partition.parse::<i32>() else { continue };
        if !entry.path().is_dir() || sluice_raft::validate_topic_name(topic).is_err() || !holds_segments(&entry.path())
        {
            continue;
        }
        let hosted =
            metadata.topics.get(topic).and_then(|t| t.partition(partition)).is_some_and(|p| p.replicas.contains(&me));
        if !hosted {
            tracing::warn!(dir = %entry.path().display(), "removing partition directory of a deleted topic");
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove orphan partition");
            }
        }
    }
}
