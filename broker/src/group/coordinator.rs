//! One shard's groups: finding and creating them, their offsets held by
//! open transactions, and expiring offsets and empty groups.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::offsets_log::{OffsetRecord, Replayed};
use super::state::{Committed, Group, GroupState};
use crate::config::GroupConfig;

/// A committed offset for (topic, partition).
pub type OffsetEntry = (String, i32, Committed);

/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
pub const OFFSETS_PARTITIONS: i32 = 50;
/// Kafka's `offset.metadata.max.bytes`.
pub const MAX_METADATA_BYTES: usize = 4096;

/// The `__consumer_offsets` partition that coordinates `group`:
/// `abs(javaStringHashCode(group)) % partitions`, as Kafka computes it.
pub fn partition_for(group: &str) -> i32 {
    kafka_partition(group, OFFSETS_PARTITIONS)
}

/// `abs(javaStringHashCode(key)) % partitions`: how Kafka places a group
/// or a transactional id on its internal topic's partitions.
pub fn kafka_partition(key: &str, partitions: i32) -> i32 {
    // Java's String.hashCode over UTF-16 code units, then Kafka's Utils.abs.
    let hash = key.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    (hash & 0x7fff_ffff) % partitions
}

/// Partitions of an internal topic being replayed after this shard became
/// their leader: what they hold is not served until done.
#[derive(Default)]
pub struct Loading(RefCell<std::collections::HashSet<i32>>);

impl Loading {
    pub fn set(&self, partition: i32, loading: bool) {
        if loading {
            self.0.borrow_mut().insert(partition);
        } else {
            self.0.borrow_mut().remove(&partition);
        }
    }

    pub fn contains(&self, partition: i32) -> bool {
        self.0.borrow().contains(&partition)
    }
}

/// The groups coordinated by one shard.
pub struct Coordinator {
    pub config: GroupConfig,
    groups: RefCell<HashMap<String, Rc<RefCell<Group>>>>,
    /// `__consumer_offsets` partitions being replayed after this shard
    /// became their leader: their groups are not served until done.
    pub loading: Loading,
    /// Offsets committed inside open transactions, by producer id, then
    /// group: they count once the transaction's COMMIT marker is written.
    txn_offsets: RefCell<HashMap<i64, HashMap<String, PendingOffsets>>>,
}

/// A transaction's offsets for one group, by (topic, partition).
type PendingOffsets = HashMap<(String, i32), Committed>;

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            groups: RefCell::new(HashMap::new()),
            loading: Loading::default(),
            txn_offsets: RefCell::new(HashMap::new()),
        }
    }

    /// Holds offsets producer `producer_id` commits in its transaction.
    /// Registered before they are written (as Kafka does), so a marker
    /// written right after them cannot miss them.
    pub fn add_txn_offsets(&self, producer_id: i64, group: &str, entries: Vec<OffsetEntry>) {
        let mut all = self.txn_offsets.borrow_mut();
        let pending = all.entry(producer_id).or_default().entry(group.to_string()).or_default();
        pending.extend(entries.into_iter().map(|(t, p, c)| ((t, p), c)));
    }

    /// Forgets offsets whose write failed (unless replaced meanwhile).
    pub fn discard_txn_offsets(&self, producer_id: i64, group: &str, entries: &[OffsetEntry]) {
        let mut all = self.txn_offsets.borrow_mut();
        let Some(groups) = all.get_mut(&producer_id) else { return };
        if let Some(pending) = groups.get_mut(group) {
            for (t, p, c) in entries {
                if pending.get(&(t.clone(), *p)) == Some(c) {
                    pending.remove(&(t.clone(), *p));
                }
            }
            if pending.is_empty() {
                groups.remove(group);
            }
        }
        if groups.is_empty() {
            all.remove(&producer_id);
        }
    }

    /// Whether a transaction holds an offset for this group and partition
    /// not yet committed or aborted (KIP-447: UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txn_offsets
            .borrow()
            .values()
            .filter_map(|groups| groups.get(group))
            .any(|pending| pending.contains_key(&(topic.to_string(), partition)))
    }

    /// A transaction's marker reached `__consumer_offsets` partition
    /// `partition`: its offsets for groups there are applied (COMMIT) or
    /// dropped (ABORT).
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let settled: Vec<(String, PendingOffsets)> = {
            let mut all = self.txn_offsets.borrow_mut();
            let Some(groups) = all.get_mut(&producer_id) else { return };
            let ids: Vec<String> = groups.keys().filter(|g| partition_for(g) == partition).cloned().collect();
            let settled = ids.into_iter().filter_map(|g| groups.remove_entry(&g)).collect();
            if groups.is_empty() {
                all.remove(&producer_id);
            }
            settled
        };
        if !commit {
            return;
        }
        for (group, entries) in settled {
            let g = self.get_or_create(&group);
            let mut g = g.borrow_mut();
            g.offsets.extend(entries);
        }
    }

    pub fn get(&self, id: &str) -> Option<Rc<RefCell<Group>>> {
        self.groups.borrow().get(id).cloned()
    }

    /// The group, created empty if it does not exist yet.
    pub fn get_or_create(&self, id: &str) -> Rc<RefCell<Group>> {
        self.groups.borrow_mut().entry(id.to_string()).or_insert_with(|| Rc::new(RefCell::new(Group::new(id)))).clone()
    }

    pub fn remove(&self, id: &str) {
        self.groups.borrow_mut().remove(id);
    }

    /// Puts back a group removed by a deletion that could not be written,
    /// unless a new group of that name appeared meanwhile.
    pub fn restore(&self, group: Rc<RefCell<Group>>) {
        let id = group.borrow().id.clone();
        self.groups.borrow_mut().entry(id).or_insert(group);
    }

    /// Forgets the groups of `__consumer_offsets` partition `partition`:
    /// this shard no longer leads it, so another broker coordinates them.
    pub fn unload_partition(&self, partition: i32) {
        self.groups.borrow_mut().retain(|id, _| partition_for(id) != partition);
        let mut txns = self.txn_offsets.borrow_mut();
        txns.values_mut().for_each(|groups| groups.retain(|id, _| partition_for(id) != partition));
        txns.retain(|_, groups| !groups.is_empty());
    }

    pub fn all(&self) -> Vec<Rc<RefCell<Group>>> {
        self.groups.borrow().values().cloned().collect()
    }

    /// Applies one replayed record of `__consumer_offsets` partition `partition`.
    pub fn replay(&self, partition: i32, replayed: Replayed) {
        let record = match replayed {
            Replayed::Offset(record) => record,
            Replayed::TxnOffset {
                producer_id,
                record: OffsetRecord::Commit { group, topic, partition, committed },
            } => {
                return self.add_txn_offsets(producer_id, &group, vec![(topic, partition, committed)]);
            }
            Replayed::TxnOffset { .. } => return,
            Replayed::Marker { producer_id, commit } => return self.complete_txn(partition, producer_id, commit),
        };
        match record {
            OffsetRecord::Commit { group, topic, partition, committed } => {
                self.get_or_create(&group).borrow_mut().offsets.insert((topic, partition), committed);
            }
            OffsetRecord::Tombstone { group, topic, partition } => {
                if let Some(g) = self.get(&group) {
                    g.borrow_mut().offsets.remove(&(topic, partition));
                }
            }
        }
    }

    /// Offsets past `offsets.retention.minutes`, per group; the caller
    /// writes tombstones for them and then calls [`Coordinator::forget`].
    pub fn expired_offsets(&self, now_ms: i64) -> Vec<(String, Vec<(String, i32)>)> {
        self.all()
            .iter()
            .map(|g| {
                let g = g.borrow();
                (g.id.clone(), g.expired_offsets(now_ms, self.config.offsets_retention_ms))
            })
            .filter(|(_, expired)| !expired.is_empty())
            .collect()
    }

    /// Drops expired offsets, and the group itself once it holds nothing.
    pub fn forget(&self, group: &str, expired: &[(String, i32)]) {
        let Some(g) = self.get(group) else { return };
        let now_empty = {
            let mut g = g.borrow_mut();
            expired.iter().for_each(|k| drop(g.offsets.remove(k)));
            g.offsets.is_empty() && g.state == GroupState::Empty
        };
        if now_empty {
            self.remove(group);
        }
    }

    /// Expires members whose session ran out and pending member ids never
    /// confirmed; called periodically on the shard.
    pub fn expire_sessions(self: &Rc<Self>) {
        for group in self.all() {
            Group::expire(&group, &self.config);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partition_matches_kafka() {
        // Utils.abs(groupId.hashCode) % 50, as a Kafka broker computes it.
        assert_eq!(partition_for("test-group"), 12);
        assert_eq!(partition_for("my-consumer-group"), 13);
        assert_eq!(partition_for("g"), 3);
        assert_eq!(partition_for("ü-grüppe"), 47);
        assert_eq!(partition_for(""), 0);
    }
}
