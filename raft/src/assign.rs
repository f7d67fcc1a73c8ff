//! Replica placement for new partitions: Kafka's round-robin layout over
//! the live brokers, with brokers interleaved by rack when racks are set so
//! consecutive replicas of a partition land on different racks. Leaders
//! (first replicas) rotate across brokers. Deterministic for a given state
//! and topic name, as every node must compute the same placement.

use std::collections::BTreeMap;

use crate::error::ApplyError;
use crate::model::ClusterMetadata;

pub fn assign_replicas(
    state: &ClusterMetadata,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ApplyError> {
    if partitions < 1 {
        return Err(ApplyError::InvalidPartitions(format!(
            "number of partitions must be at least 1, was {partitions}"
        )));
    }
    let brokers = rack_interleaved(state);
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 {
        return Err(ApplyError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, was {replication_factor}"
        )));
    }
    if rf > brokers.len() {
        return Err(ApplyError::InvalidReplicationFactor(format!(
            "replication factor: {rf} larger than available brokers: {}",
            brokers.len()
        )));
    }
    // A per-topic starting point, so leaders of many small topics do not
    // all pile onto the first broker.
    let start = topic.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % brokers.len();
    Ok((0..partitions as usize).map(|p| (0..rf).map(|r| brokers[(start + p + r) % brokers.len()]).collect()).collect())
}

/// Checks explicit assignments: every partition on distinct live brokers,
/// all with the same number of replicas.
pub fn check_assignments(state: &ClusterMetadata, assignments: Vec<Vec<i32>>) -> Result<Vec<Vec<i32>>, ApplyError> {
    let width = assignments.first().map_or(0, Vec::len);
    for (p, replicas) in assignments.iter().enumerate() {
        let distinct: std::collections::BTreeSet<&i32> = replicas.iter().collect();
        if replicas.is_empty() || replicas.len() != width || distinct.len() != width {
            return Err(ApplyError::InvalidReplicaAssignment(format!(
                "partition {p}: replicas {replicas:?} are empty, repeated or of uneven count"
            )));
        }
        if let Some(b) = replicas.iter().find(|&&b| !state.is_live(b)) {
            return Err(ApplyError::InvalidReplicaAssignment(format!(
                "partition {p}: broker {b} is not a live broker"
            )));
        }
    }
    Ok(assignments)
}

/// Live brokers ordered so that neighbours are on different racks: one
/// broker from each rack in turn (Kafka's "rack alternated" list).
fn rack_interleaved(state: &ClusterMetadata) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in state.live_brokers() {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    #[test]
    fn replicas_spread_over_racks_and_leaders_rotate() {
        let mut m = ClusterMetadata::default();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            let register = Command::RegisterBroker {
                id,
                host: "h".into(),
                port: 1,
                rack: Some(rack.into()),
                incarnation: uuid::Uuid::nil(),
            };
            m.apply(register).unwrap();
        }
        let rack = |id: i32| if id <= 2 { "a" } else { "b" };
        let assignment = assign_replicas(&m, "orders", 8, 2).unwrap();
        for replicas in &assignment {
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{replicas:?} on one rack");
        }
        let leaders: std::collections::BTreeSet<i32> = assignment.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 4);
        assert!(matches!(assign_replicas(&m, "x", 0, 1), Err(ApplyError::InvalidPartitions(_))));
        assert!(matches!(assign_replicas(&m, "x", 1, 0), Err(ApplyError::InvalidReplicationFactor(_))));
    }
}
