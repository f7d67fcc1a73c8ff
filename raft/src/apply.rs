//! How each [`Command`] changes [`ClusterMetadata`]. `apply` is
//! deterministic: every node applies the same commands in the same order
//! and reaches the same state, so leader elections and replica assignments
//! are decided here, not by the proposer.

use crate::command::{Command, Election, Outcome, Reply, MAX_PARTITIONS, PRODUCER_ID_BLOCK};
use crate::election::{elect, finish_reassignment, reassign};
use crate::error::ApplyError;
use crate::model::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata, NO_LEADER};

impl ClusterMetadata {
    pub fn apply(&mut self, command: Command) -> Outcome {
        match command {
            Command::ClaimVoterStorage { node, storage, replace } => match self.voter_storage.get(&node) {
                Some(&known) if known != storage && !replace => Err(ApplyError::StorageMismatch { node, known }),
                _ => {
                    self.voter_storage.insert(node, storage);
                    Ok(Reply::Done)
                }
            },
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id;
                }
                Ok(Reply::Done)
            }
            Command::RegisterBroker { id, host, port, rack, incarnation } => {
                let lost_logs = self.brokers.get(&id).is_some_and(|b| b.incarnation != incarnation);
                // Every registration is a new broker epoch (Kafka's, KIP-903).
                let epoch = self.brokers.get(&id).map_or(1, |b| b.epoch + 1);
                self.brokers.insert(id, BrokerInfo { id, host, port, rack, incarnation, epoch, fenced: false });
                if lost_logs {
                    // Its replicas are empty now: it must not be trusted as
                    // in sync, not even as the last ISR member, nor lead.
                    for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
                        // A sole replica has no better copy anywhere: it
                        // stays, empty, rather than leave the partition dead.
                        if p.isr.contains(&id) && p.replicas != [id] {
                            p.isr.retain(|&r| r != id);
                            p.partition_epoch += 1;
                        }
                    }
                    self.elect_where(|p| p.leader == id || p.leader == NO_LEADER);
                } else {
                    // A restarted leader starts a new epoch, so its followers
                    // check their logs against it again.
                    for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()).filter(|p| p.leader == id) {
                        p.leader_epoch += 1;
                        p.partition_epoch += 1;
                    }
                    self.elect_where(|p| p.leader == NO_LEADER);
                }
                Ok(Reply::Done)
            }
            Command::FenceBroker { id } => {
                let broker = self.brokers.get_mut(&id).ok_or(ApplyError::UnknownBroker(id))?;
                broker.fenced = true;
                self.remove_from_isrs(id);
                self.elect_where(|p| p.leader == id);
                Ok(Reply::Done)
            }
            Command::UnfenceBroker { id } => {
                let broker = self.brokers.get_mut(&id).ok_or(ApplyError::UnknownBroker(id))?;
                broker.fenced = false;
                self.elect_where(|p| p.leader == NO_LEADER);
                Ok(Reply::Done)
            }
            Command::ElectLeaders { partitions, unclean } => {
                let wanted: Vec<(String, i32)> = match partitions {
                    Some(ps) => ps,
                    None => self
                        .topics
                        .values()
                        .flat_map(|t| (0..t.partition_count()).map(|i| (t.name.clone(), i)))
                        .collect(),
                };
                let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
                let results = wanted
                    .into_iter()
                    .map(|(topic, index)| {
                        let p = self
                            .topics
                            .get_mut(&topic)
                            .and_then(|t| usize::try_from(index).ok().and_then(|i| t.partitions.get_mut(i)));
                        let outcome = match p {
                            None => Election::UnknownPartition,
                            Some(p) => elect(p, &live, unclean),
                        };
                        (topic, index, outcome)
                    })
                    .collect();
                Ok(Reply::Elections(results))
            }
            Command::ReassignPartitions { partitions } => {
                let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
                let registered: Vec<i32> = self.brokers.keys().copied().collect();
                let results = partitions
                    .into_iter()
                    .map(|(topic, index, target)| {
                        let t = self.topics.get_mut(&topic);
                        let unclean = t.as_ref().is_some_and(|t| t.unclean_election());
                        let p = t.and_then(|t| usize::try_from(index).ok().and_then(|i| t.partitions.get_mut(i)));
                        let refused = match p {
                            None => Some(ApplyError::UnknownPartition),
                            Some(p) => reassign(p, target, &registered, &live, unclean).err(),
                        };
                        (topic, index, refused)
                    })
                    .collect();
                Ok(Reply::Reassignments(results))
            }
            Command::AlterTopicConfigs { name, replace, changes, expected } => {
                let topic = self.topics.get_mut(&name).ok_or(ApplyError::UnknownTopic(name))?;
                if let Some((key, _)) = expected.iter().find(|(k, v)| topic.configs.get(*k) != v.as_ref()) {
                    return Err(ApplyError::ConfigChanged(key.clone()));
                }
                if replace {
                    topic.configs.clear();
                }
                for (key, value) in changes {
                    match value {
                        Some(v) => topic.configs.insert(key, v),
                        None => topic.configs.remove(&key),
                    };
                }
                // Turning on unclean election lets offline partitions elect
                // any live replica now, as Kafka's controller does.
                if topic.unclean_election() {
                    self.elect_where(|p| p.leader == NO_LEADER);
                }
                Ok(Reply::Done)
            }
            Command::CreateTopic { name, id, partitions, replication_factor, assignments, configs } => {
                match self.topics.get(&name) {
                    // The same proposal applied twice (a retried forward).
                    Some(t) if t.id == id => return Ok(Reply::Topic(t.clone())),
                    Some(_) => return Err(ApplyError::TopicExists(name)),
                    None => {}
                }
                if !(1..=MAX_PARTITIONS).contains(&partitions) || assignments.len() > MAX_PARTITIONS as usize {
                    return Err(ApplyError::InvalidPartitions(format!(
                        "number of partitions must be between 1 and {MAX_PARTITIONS}, was {partitions}"
                    )));
                }
                let assignments = if assignments.is_empty() {
                    crate::assign::assign_replicas(self, &name, partitions, replication_factor)?
                } else {
                    crate::assign::check_assignments(self, assignments)?
                };
                let partitions = assignments
                    .into_iter()
                    .map(|replicas| {
                        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
                        PartitionState::new(replicas, leader)
                    })
                    .collect();
                let topic = TopicMetadata { name: name.clone(), id, partitions, configs };
                self.topics.insert(name, topic.clone());
                Ok(Reply::Topic(topic))
            }
            Command::CreatePartitions { name, count, assignments } => {
                let topic = self.topics.get(&name).ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                let current = topic.partition_count();
                if count <= current {
                    return Err(ApplyError::InvalidPartitions(format!(
                        "Topic currently has {current} partitions, which is higher than the requested {count}."
                    )));
                }
                if count > MAX_PARTITIONS {
                    return Err(ApplyError::InvalidPartitions(format!(
                        "number of partitions must be at most {MAX_PARTITIONS}, was {count}"
                    )));
                }
                let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
                let added = if assignments.is_empty() {
                    let placed = crate::assign::assign_replicas(self, &name, count, rf)?;
                    placed.into_iter().skip(current as usize).collect()
                } else if assignments.len() != (count - current) as usize
                    || assignments.iter().any(|a| a.len() != rf as usize)
                {
                    return Err(ApplyError::InvalidReplicaAssignment(format!(
                        "{} new partitions need as many replica lists of {rf} brokers each",
                        count - current
                    )));
                } else {
                    crate::assign::check_assignments(self, assignments)?
                };
                let topic = self.topics.get_mut(&name).ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                topic.partitions.extend(added.into_iter().map(|replicas| {
                    let leader = replicas.first().copied().unwrap_or(NO_LEADER);
                    PartitionState::new(replicas, leader)
                }));
                Ok(Reply::Topic(topic.clone()))
            }
            Command::DeleteTopic { name } => {
                self.topics.remove(&name).map(Reply::Topic).ok_or(ApplyError::UnknownTopic(name))
            }
            Command::AlterIsr { topic, partition, leader, leader_epoch, partition_epoch, isr, joiner_epochs } => {
                let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
                let t = self.topics.values_mut().find(|t| t.id == topic);
                let t = t.ok_or_else(|| ApplyError::UnknownTopic(topic.to_string()))?;
                let p = usize::try_from(partition).ok().and_then(|i| t.partitions.get_mut(i));
                let p = p.ok_or_else(|| ApplyError::UnknownTopic(format!("{topic}-{partition}")))?;
                if p.leader != leader || p.leader_epoch != leader_epoch || p.partition_epoch != partition_epoch {
                    return Err(ApplyError::FencedLeaderEpoch);
                }
                if !isr.contains(&leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
                    return Err(ApplyError::InvalidIsr(format!("ISR {isr:?} must hold the leader and only replicas")));
                }
                if isr.iter().any(|r| !p.isr.contains(r) && !live.contains(r)) {
                    return Err(ApplyError::InvalidIsr("a fenced broker cannot join the ISR".into()));
                }
                let registered = |r: &i32| self.brokers.get(r).map(|b| b.epoch);
                if let Some((&r, _)) = joiner_epochs.iter().find(|&(r, &e)| registered(r) != Some(e)) {
                    return Err(ApplyError::IneligibleReplica(r));
                }
                p.isr = isr;
                p.partition_epoch += 1;
                finish_reassignment(p, &live);
                Ok(Reply::Partition(p.clone()))
            }
            Command::AllocateProducerIds { broker } => {
                if !self.brokers.contains_key(&broker) {
                    return Err(ApplyError::UnknownBroker(broker));
                }
                let first = self.next_producer_id;
                self.next_producer_id = first.checked_add(PRODUCER_ID_BLOCK).ok_or(ApplyError::ProducerIdsExhausted)?;
                Ok(Reply::ProducerIds { first })
            }
        }
    }

    /// Takes `broker` out of every ISR it is in, unless it is the last
    /// member (Kafka keeps the last one, so the partition knows whose data
    /// is the latest should that broker come back).
    fn remove_from_isrs(&mut self, broker: i32) {
        for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.isr.len() > 1 && p.isr.contains(&broker) {
                p.isr.retain(|&r| r != broker);
                p.partition_epoch += 1;
            }
        }
    }

    /// Re-elects the leader of every partition matching `needs`: the first
    /// live replica in the ISR, or with `unclean.leader.election.enable`
    /// the first live replica at all; otherwise the partition is offline.
    fn elect_where(&mut self, needs: impl Fn(&PartitionState) -> bool) {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            let unclean = t.unclean_election();
            for p in t.partitions.iter_mut().filter(|p| needs(p)) {
                let clean = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live.contains(r));
                let leader = match clean {
                    Some(r) => r,
                    None if unclean => match p.replicas.iter().copied().find(|r| live.contains(r)) {
                        Some(r) => {
                            p.isr = vec![r];
                            r
                        }
                        None => NO_LEADER,
                    },
                    None => NO_LEADER,
                };
                if leader != p.leader {
                    p.leader = leader;
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_reassignment_adds_replicas_first_and_drops_the_old_ones_once_the_new_are_in_sync() {
        let mut m = cluster(3);
        create(&mut m, "t", 1, 1).unwrap();
        let old = m.topics["t"].partitions[0].replicas[0];
        let new: Vec<i32> = (1..=3).filter(|&b| b != old).collect();
        let reassign = |m: &mut ClusterMetadata, target: Option<Vec<i32>>| match m
            .apply(Command::ReassignPartitions { partitions: vec![("t".into(), 0, target)] })
        {
            Ok(Reply::Reassignments(r)) => r[0].2.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(reassign(&mut m, None), Some(ApplyError::NoReassignmentInProgress));
        assert!(matches!(reassign(&mut m, Some(vec![new[0], new[0]])), Some(ApplyError::InvalidReplicaAssignment(_))));
        assert!(matches!(reassign(&mut m, Some(vec![9])), Some(ApplyError::InvalidReplicaAssignment(_))));
        assert_eq!(reassign(&mut m, Some(new.clone())), None);
        let p = m.topics["t"].partitions[0].clone();
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            ([new.clone(), vec![old]].concat(), new.clone(), vec![old])
        );
        assert_eq!(p.leader, old, "the old replica leads until the new ones catch up");

        // The new replicas catch up: the leader adds them to the ISR, and the move completes.
        m.apply(isr_change(&m, "t", vec![old, new[0], new[1]])).unwrap();
        let done = &m.topics["t"].partitions[0];
        assert_eq!(done.replicas, new);
        assert!(!done.is_reassigning());
        assert_eq!(done.leader, new[0], "leadership leaves the removed replica");
        assert_eq!(done.leader_epoch, p.leader_epoch + 1);

        // A new target while one runs: the current replicas (earlier
        // additions too) stay until it completes; the leader keeps leading.
        let mut m2 = cluster(4);
        create(&mut m2, "u", 1, 1).unwrap();
        let first = m2.topics["u"].partitions[0].replicas[0];
        let others: Vec<i32> = (1..=4).filter(|&b| b != first).collect();
        m2.apply(Command::ReassignPartitions { partitions: vec![("u".into(), 0, Some(vec![others[0], others[1]]))] })
            .unwrap();
        m2.apply(isr_change(&m2, "u", vec![first, others[0]])).unwrap();
        m2.apply(Command::FenceBroker { id: first }).unwrap();
        assert_eq!(m2.topics["u"].partitions[0].leader, others[0]);
        let replace = Command::ReassignPartitions { partitions: vec![("u".into(), 0, Some(vec![first, others[2]]))] };
        m2.apply(replace).unwrap();
        let r = &m2.topics["u"].partitions[0];
        assert_eq!((r.leader, r.isr.clone()), (others[0], vec![others[0]]), "leader and ISR untouched");
        assert!(r.replicas.contains(&others[0]) && r.removing.contains(&others[0]));
        // Cancelling goes back to the replicas before this target's additions.
        let cancel = Command::ReassignPartitions { partitions: vec![("u".into(), 0, None)] };
        m2.apply(cancel).unwrap();
        let r = &m2.topics["u"].partitions[0];
        assert_eq!((r.leader, r.replicas.len(), r.is_reassigning()), (others[0], 3, false));
        assert!(!r.replicas.contains(&others[2]));

        // A cancelled reassignment returns to the original replicas.
        assert_eq!(reassign(&mut m, Some(vec![old])), None);
        assert_eq!(reassign(&mut m, None), None);
        let back = &m.topics["t"].partitions[0];
        assert_eq!((back.replicas.clone(), back.isr.clone(), back.is_reassigning()), (new.clone(), new.clone(), false));
    }

    #[test]
    fn elect_leaders_moves_leadership_to_the_preferred_replica_or_any_live_one() {
        let mut m = cluster(2);
        create(&mut m, "t", 1, 2).unwrap();
        let p = m.topics["t"].partitions[0].clone();
        let (preferred, other) = (p.replicas[0], p.replicas[1]);
        let elect = |m: &mut ClusterMetadata, unclean| {
            let cmd = Command::ElectLeaders { partitions: Some(vec![("t".into(), 0), ("t".into(), 7)]), unclean };
            match m.apply(cmd) {
                Ok(Reply::Elections(r)) => r.into_iter().map(|(_, _, e)| e).collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(elect(&mut m, false), vec![Election::NotNeeded, Election::UnknownPartition]);
        // The preferred replica fenced: leadership moves; back, it is not in the ISR yet.
        m.apply(Command::FenceBroker { id: preferred }).unwrap();
        m.apply(Command::UnfenceBroker { id: preferred }).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, other);
        assert_eq!(elect(&mut m, false)[0], Election::PreferredNotAvailable);
        let q = m.topics["t"].partitions[0].clone();
        m.apply(isr_change(&m, "t", vec![other, preferred])).unwrap();
        assert_eq!(elect(&mut m, false)[0], Election::Elected);
        let after = &m.topics["t"].partitions[0];
        assert_eq!((after.leader, after.leader_epoch), (preferred, q.leader_epoch + 1));
        // Unclean: only for a partition without a leader.
        assert_eq!(elect(&mut m, true)[0], Election::NotNeeded);
        m.apply(Command::FenceBroker { id: other }).unwrap();
        m.apply(Command::FenceBroker { id: preferred }).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, NO_LEADER);
        assert_eq!(elect(&mut m, true)[0], Election::EligibleNotAvailable);
        m.apply(Command::UnfenceBroker { id: other }).unwrap();
        assert_eq!(elect(&mut m, true)[0], Election::Elected);
        assert_eq!(m.topics["t"].partitions[0].isr, vec![other]);
    }

    fn cluster(brokers: i32) -> ClusterMetadata {
        let mut m = ClusterMetadata::default();
        for id in 1..=brokers {
            let register = Command::RegisterBroker {
                id,
                host: "h".into(),
                port: 9092,
                rack: None,
                incarnation: Uuid::from_u128(id as u128),
            };
            m.apply(register).unwrap();
        }
        m
    }

    /// The current leader's ISR change for partition 0 of `topic`.
    fn isr_change(m: &ClusterMetadata, topic: &str, isr: Vec<i32>) -> Command {
        let (t, p) = (&m.topics[topic], &m.topics[topic].partitions[0]);
        Command::AlterIsr {
            topic: t.id,
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
            joiner_epochs: BTreeMap::new(),
        }
    }

    fn create(m: &mut ClusterMetadata, name: &str, partitions: i32, rf: i16) -> Outcome {
        m.apply(Command::CreateTopic {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        })
    }

    #[test]
    fn config_changes_replace_or_patch_the_overrides() {
        let mut m = cluster(2);
        create(&mut m, "t", 1, 2).unwrap();
        let alter = |replace, changes: &[(&str, Option<&str>)]| Command::AlterTopicConfigs {
            name: "t".into(),
            replace,
            changes: changes.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect(),
            expected: BTreeMap::new(),
        };
        m.apply(alter(false, &[("retention.ms", Some("1000")), ("segment.ms", Some("5"))])).unwrap();
        m.apply(alter(false, &[("segment.ms", None)])).unwrap();
        assert_eq!(m.topics["t"].configs, BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]));
        m.apply(alter(true, &[("cleanup.policy", Some("compact"))])).unwrap();
        assert_eq!(m.topics["t"].configs, BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]));
        let unknown = Command::AlterTopicConfigs {
            name: "x".into(),
            replace: true,
            changes: BTreeMap::new(),
            expected: BTreeMap::new(),
        };
        assert_eq!(m.apply(unknown), Err(ApplyError::UnknownTopic("x".into())));
        // An APPEND computed from a value that changed meanwhile is refused.
        let stale = Command::AlterTopicConfigs {
            name: "t".into(),
            replace: false,
            changes: BTreeMap::from([("cleanup.policy".to_string(), Some("delete,compact".to_string()))]),
            expected: BTreeMap::from([("cleanup.policy".to_string(), None)]),
        };
        assert_eq!(m.apply(stale), Err(ApplyError::ConfigChanged("cleanup.policy".into())));

        // Both replicas out of the ISR: offline until unclean election is allowed.
        let p = m.topics["t"].partitions[0].clone();
        m.apply(Command::FenceBroker { id: p.replicas[1] }).unwrap();
        m.apply(Command::FenceBroker { id: p.replicas[0] }).unwrap();
        m.apply(Command::UnfenceBroker { id: p.replicas[1] }).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, NO_LEADER);
        m.apply(alter(false, &[("unclean.leader.election.enable", Some("true"))])).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, p.replicas[1]);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut m = cluster(2);
        let first = m.apply(Command::AllocateProducerIds { broker: 1 });
        let second = m.apply(Command::AllocateProducerIds { broker: 2 });
        assert_eq!(first, Ok(Reply::ProducerIds { first: 0 }));
        assert_eq!(second, Ok(Reply::ProducerIds { first: PRODUCER_ID_BLOCK }));
        assert_eq!(m.apply(Command::AllocateProducerIds { broker: 9 }), Err(ApplyError::UnknownBroker(9)));
        assert_eq!(m.next_producer_id, 2 * PRODUCER_ID_BLOCK);
    }

    #[test]
    fn fencing_the_leader_elects_from_the_isr_and_bumps_the_epoch() {
        let mut m = cluster(3);
        create(&mut m, "t", 3, 3).unwrap();
        let leaders: Vec<i32> = m.topics["t"].partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders.iter().collect::<std::collections::HashSet<_>>().len(), 3, "leaders spread: {leaders:?}");
        let p0 = m.topics["t"].partitions[0].clone();
        m.apply(Command::FenceBroker { id: p0.leader }).unwrap();
        let after = &m.topics["t"].partitions[0];
        assert_ne!(after.leader, p0.leader);
        assert_eq!(after.leader_epoch, p0.leader_epoch + 1);
        assert!(!after.isr.contains(&p0.leader));
        assert!(after.isr.contains(&after.leader));
    }

    #[test]
    fn last_isr_member_gone_leaves_the_partition_offline_until_it_returns() {
        let mut m = cluster(2);
        create(&mut m, "t", 1, 2).unwrap();
        let first = m.topics["t"].partitions[0].leader;
        let second = 3 - first;
        m.apply(Command::FenceBroker { id: second }).unwrap();
        m.apply(Command::FenceBroker { id: first }).unwrap();
        let p = &m.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![first]));
        // The out-of-sync replica coming back does not lead (clean election only).
        m.apply(Command::UnfenceBroker { id: second }).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, NO_LEADER);
        m.apply(Command::UnfenceBroker { id: first }).unwrap();
        assert_eq!(m.topics["t"].partitions[0].leader, first);
    }

    #[test]
    fn isr_changes_need_the_current_epochs_and_live_joiners() {
        let mut m = cluster(3);
        create(&mut m, "t", 1, 3).unwrap();
        let p = m.topics["t"].partitions[0].clone();
        let id = m.topics["t"].id;
        let shrink = Command::AlterIsr {
            topic: id,
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![p.leader],
            joiner_epochs: BTreeMap::new(),
        };
        assert!(matches!(m.apply(shrink.clone()), Ok(Reply::Partition(s)) if s.isr == vec![p.leader]));
        assert_eq!(m.apply(shrink), Err(ApplyError::FencedLeaderEpoch), "stale partition epoch");
        let other = p.replicas.iter().copied().find(|&r| r != p.leader).unwrap();
        m.apply(Command::FenceBroker { id: other }).unwrap();
        let expand = Command::AlterIsr {
            topic: id,
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch + 1,
            isr: vec![p.leader, other],
            joiner_epochs: BTreeMap::new(),
        };
        assert!(matches!(m.apply(expand), Err(ApplyError::InvalidIsr(_))));
    }

    /// KIP-903: the leader saw broker 2 fetch, then broker 2 came back with
    /// an empty disk (not in the ISR, so no partition epoch moved): the
    /// join the leader proposed from what it saw must not be committed.
    #[test]
    fn a_joiner_registered_again_since_its_fetch_is_ineligible() {
        let mut m = cluster(3);
        create(&mut m, "t", 1, 3).unwrap();
        let p = m.topics["t"].partitions[0].clone();
        let joiner = p.replicas.iter().copied().find(|&r| r != p.leader).unwrap();
        m.apply(isr_change(&m, "t", p.isr.iter().copied().filter(|&r| r != joiner).collect())).unwrap();
        let seen_epoch = m.brokers[&joiner].epoch;
        let mut join = isr_change(&m, "t", p.isr.clone());
        let Command::AlterIsr { joiner_epochs, .. } = &mut join else { unreachable!() };
        joiner_epochs.insert(joiner, seen_epoch);

        let wiped = Command::RegisterBroker {
            id: joiner,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: Uuid::new_v4(),
        };
        m.apply(wiped).unwrap();
        assert_eq!(m.brokers[&joiner].epoch, seen_epoch + 1, "a new broker epoch");
        assert_eq!(m.apply(join.clone()), Err(ApplyError::IneligibleReplica(joiner)));
        assert!(!m.topics["t"].partitions[0].isr.contains(&joiner));

        // Fetching again in its new epoch, it may join.
        let Command::AlterIsr { joiner_epochs, .. } = &mut join else { unreachable!() };
        joiner_epochs.insert(joiner, seen_epoch + 1);
        assert!(matches!(m.apply(join), Ok(Reply::Partition(s)) if s.isr.contains(&joiner)));
    }

    #[test]
    fn a_broker_back_with_an_empty_disk_leaves_every_isr_and_leads_nothing() {
        let mut m = cluster(3);
        create(&mut m, "t", 1, 3).unwrap();
        let leader = m.topics["t"].partitions[0].leader;
        let wiped = Command::RegisterBroker {
            id: leader,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: Uuid::new_v4(),
        };
        m.apply(wiped).unwrap();
        let p = &m.topics["t"].partitions[0];
        assert!(p.leader != leader && !p.isr.contains(&leader), "{p:?}");
        let follower = m.topics["t"].partitions[0].replicas[1];
        let register = Command::RegisterBroker {
            id: follower,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: Uuid::new_v4(),
        };
        m.apply(register).unwrap();
        assert!(!m.topics["t"].partitions[0].isr.contains(&follower));
    }

    /// KIP-853: a voter's storage id, once pinned, is not taken over by a
    /// node on another data directory claiming the same id; only an
    /// operator's AddRaftVoter (`replace`) changes it.
    #[test]
    fn a_pinned_storage_id_is_only_replaced_by_an_explicit_add() {
        let mut m = cluster(3);
        let (first, wiped) = (Uuid::new_v4(), Uuid::new_v4());
        let claim = |storage, replace| Command::ClaimVoterStorage { node: 3, storage, replace };
        assert_eq!(m.apply(claim(first, false)), Ok(Reply::Done));
        assert_eq!(m.apply(claim(first, false)), Ok(Reply::Done), "claiming again is harmless");
        assert_eq!(m.apply(claim(wiped, false)), Err(ApplyError::StorageMismatch { node: 3, known: first }));
        assert_eq!(m.voter_storage[&3], first);
        assert_eq!(m.apply(claim(wiped, true)), Ok(Reply::Done));
        assert_eq!(m.voter_storage[&3], wiped);
    }

    #[test]
    fn partitions_only_grow() {
        let mut m = cluster(3);
        create(&mut m, "t", 2, 2).unwrap();
        let grow = |count| Command::CreatePartitions { name: "t".into(), count, assignments: Vec::new() };
        assert!(matches!(m.apply(grow(2)), Err(ApplyError::InvalidPartitions(_))));
        let Ok(Reply::Topic(t)) = m.apply(grow(5)) else { panic!("grows") };
        assert_eq!(t.partition_count(), 5);
        assert!(t.partitions.iter().all(|p| p.replicas.len() == 2 && p.isr == p.replicas));
        let bad = Command::CreatePartitions { name: "t".into(), count: 6, assignments: vec![vec![1]] };
        assert!(matches!(m.apply(bad), Err(ApplyError::InvalidReplicaAssignment(_))));
    }

    #[test]
    fn replication_factor_above_live_brokers_is_refused() {
        let mut m = cluster(2);
        assert!(matches!(create(&mut m, "t", 1, 3), Err(ApplyError::InvalidReplicationFactor(_))));
        assert!(create(&mut m, "t", 1, 2).is_ok());
        assert!(matches!(create(&mut m, "t", 1, 2), Err(ApplyError::TopicExists(_))));
    }
}
