//! Kafka's controller rules for a partition's leader and replicas: electing
//! a leader (from the ISR, or unclean when the topic allows it), and
//! starting, finishing or cancelling a reassignment.

use crate::command::Election;
use crate::error::ApplyError;
use crate::model::{PartitionState, NO_LEADER};

/// Starts, replaces or (`None`) cancels a partition's reassignment, as
/// Kafka's controller does: the partition keeps its current replicas plus
/// the target's until every target replica is in the ISR. A new target
/// counts every current replica (earlier additions included) as removable;
/// a cancel returns to the replicas before the additions, refused if that
/// would need an unclean election the topic does not allow.
pub(crate) fn reassign(
    p: &mut PartitionState,
    target: Option<Vec<i32>>,
    registered: &[i32],
    live: &[i32],
    unclean: bool,
) -> Result<(), ApplyError> {
    let Some(target) = target else {
        if !p.is_reassigning() {
            return Err(ApplyError::NoReassignmentInProgress);
        }
        let original: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding.contains(r)).collect();
        let isr: Vec<i32> = p.isr.iter().copied().filter(|r| original.contains(r)).collect();
        let isr = if !isr.is_empty() {
            isr
        } else if unclean {
            original.iter().copied().filter(|r| live.contains(r)).take(1).collect()
        } else {
            return Err(ApplyError::InvalidReplicaAssignment(
                "Unable to revert partition assignment because it would require an unclean leader election.".into(),
            ));
        };
        p.replicas = original;
        p.isr = isr;
        p.adding.clear();
        p.removing.clear();
        p.partition_epoch += 1;
        lead_from_isr(p, live);
        return Ok(());
    };
    let mut distinct = target.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if target.is_empty() || distinct.len() != target.len() {
        return Err(ApplyError::InvalidReplicaAssignment("the target replicas must be non-empty and distinct".into()));
    }
    if let Some(b) = target.iter().find(|b| !registered.contains(b)) {
        return Err(ApplyError::InvalidReplicaAssignment(format!(
            "The manual partition assignment includes broker {b}, but no such broker is registered."
        )));
    }
    if !p.is_reassigning() && target == p.replicas {
        return Ok(());
    }
    let current = p.replicas.clone();
    p.adding = target.iter().copied().filter(|r| !current.contains(r)).collect();
    p.removing = current.iter().copied().filter(|r| !target.contains(r)).collect();
    // Every current replica stays until the move completes, so the ISR
    // (a subset of them) and the leader stay valid.
    p.replicas = target.iter().chain(&p.removing).copied().collect();
    p.partition_epoch += 1;
    finish_reassignment(p, live);
    Ok(())
}

/// Completes a reassignment once every target replica is in the ISR: the
/// removed replicas leave (and lose leadership, if they had it).
pub(crate) fn finish_reassignment(p: &mut PartitionState, live: &[i32]) {
    if !p.is_reassigning() {
        return;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    p.replicas = target;
    p.isr.retain(|r| p.replicas.contains(r));
    p.adding.clear();
    p.removing.clear();
    p.partition_epoch += 1;
    lead_from_isr(p, live);
}

/// Keeps the leader if it is still a live ISR member, else elects the first
/// live ISR member (or none).
pub(crate) fn lead_from_isr(p: &mut PartitionState, live: &[i32]) {
    if p.isr.contains(&p.leader) && live.contains(&p.leader) {
        return;
    }
    let leader = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live.contains(r)).unwrap_or(NO_LEADER);
    if leader != p.leader {
        p.leader = leader;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
    }
}

/// One ElectLeaders election, by Kafka's rules: preferred makes the first
/// replica lead if it is live and in the ISR; unclean gives a leaderless
/// partition an ISR member if one is live, else any live replica.
pub(crate) fn elect(p: &mut PartitionState, live: &[i32], unclean: bool) -> Election {
    let leader = if unclean {
        if p.leader != NO_LEADER {
            return Election::NotNeeded;
        }
        let clean = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live.contains(r));
        match clean.or_else(|| p.replicas.iter().copied().find(|r| live.contains(r))) {
            Some(r) => {
                if !p.isr.contains(&r) {
                    p.isr = vec![r];
                }
                r
            }
            None => return Election::EligibleNotAvailable,
        }
    } else {
        let Some(&preferred) = p.replicas.first() else { return Election::PreferredNotAvailable };
        if p.leader == preferred {
            return Election::NotNeeded;
        }
        if !p.isr.contains(&preferred) || !live.contains(&preferred) {
            return Election::PreferredNotAvailable;
        }
        preferred
    };
    p.leader = leader;
    p.leader_epoch += 1;
    p.partition_epoch += 1;
    Election::Elected
}
