//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups, DeleteGroups. Each group request
//! runs on the shard that coordinates the group (see `crate::group`).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{Group, GroupState, JoinRequest};

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn opt(v: Option<String>) -> Option<StrBytes> {
    v.map(StrBytes::from_string)
}

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 { req.coordinator_keys.clone() } else { vec![req.key.clone()] };
    // The coordinator of a group (transactional id) is the leader of its
    // partition of `__consumer_offsets` (`__transaction_state`).
    let internal = match req.key_type {
        GROUP_KEY => broker.offsets_topic().await.ok(),
        TRANSACTION_KEY => broker.txn_topic().await.ok(),
        _ => None,
    };
    let metadata = broker.metadata();
    let coordinator = |key: &str| {
        let index = match req.key_type {
            TRANSACTION_KEY => crate::txn::partition_for(key),
            _ => crate::group::partition_for(key),
        };
        let partition = internal.as_ref()?.meta.partition(index)?;
        metadata.brokers.get(&partition.leader).filter(|b| !b.fenced)
    };
    let entries: Vec<CoordinatorEntry> = keys
        .into_iter()
        .map(|key| {
            let entry = CoordinatorEntry::default().with_key(key.clone()).with_node_id(BrokerId(-1)).with_port(-1);
            let error = match (req.key_type, coordinator(&key)) {
                (GROUP_KEY | TRANSACTION_KEY, Some(b)) => {
                    return entry.with_node_id(BrokerId(b.id)).with_host(s(&b.host)).with_port(i32::from(b.port))
                }
                (GROUP_KEY | TRANSACTION_KEY, None) => E::CoordinatorNotAvailable,
                // Share groups (KIP-932) and unknown key types.
                _ => E::InvalidRequest,
            };
            entry.with_error_code(code::of(error)).with_error_message(Some(s(&error.to_string())))
        })
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(entries);
    }
    let first = entries.into_iter().next().unwrap_or_default();
    let resp = FindCoordinatorResponse::default()
        .with_error_code(first.error_code)
        .with_node_id(first.node_id)
        .with_host(first.host)
        .with_port(first.port);
    if version >= 1 {
        resp.with_error_message(first.error_message)
    } else {
        resp
    }
}

pub async fn join_group(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
    client_host: String,
) -> JoinGroupResponse {
    let fail = |code: i16, member_id: StrBytes| {
        JoinGroupResponse::default().with_error_code(code).with_generation_id(-1).with_member_id(member_id)
    };
    if req.group_id.is_empty() {
        return fail(code::of(E::InvalidGroupId), req.member_id);
    }
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id,
        client_host,
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it equals the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        requires_known_member_id: version >= 4,
    };
    let group_id = req.group_id.to_string();
    let outcome = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let group = coord.get_or_create(&group_id);
            let started = Group::join(&group, &coord.config, join);
            match started {
                Ok(outcome) => outcome,
                // The group dropped the waiter without an answer.
                Err(rx) => rx.await.unwrap_or_else(|_| crate::group::JoinOutcome {
                    error: code::of(E::UnknownMemberId),
                    generation: -1,
                    ..Default::default()
                }),
            }
        })
        .await;
    let o = match outcome {
        Ok(o) => o,
        Err(e) => return fail(route_error(&e), req.member_id),
    };
    let members = o
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(&m.member_id))
                .with_group_instance_id(if version >= 5 { opt(m.instance_id) } else { None })
                .with_metadata(m.metadata)
        })
        .collect();
    let resp = JoinGroupResponse::default()
        .with_error_code(o.error)
        .with_generation_id(o.generation)
        .with_protocol_name(if version >= 7 {
            opt(o.protocol_name)
        } else {
            Some(s(&o.protocol_name.unwrap_or_default()))
        })
        .with_leader(s(&o.leader))
        .with_member_id(s(&o.member_id))
        .with_members(members);
    if version >= 7 {
        resp.with_protocol_type(opt(o.protocol_type))
    } else {
        resp
    }
}

pub async fn sync_group(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    if req.group_id.is_empty() {
        return SyncGroupResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let group_id = req.group_id.to_string();
    let outcome = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let Some(group) = coord.get(&group_id) else {
                return crate::group::SyncOutcome { error: code::of(E::UnknownMemberId), ..Default::default() };
            };
            let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
            let started = group.borrow_mut().sync(
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
                req.protocol_type.as_deref(),
                req.protocol_name.as_deref(),
                assignments,
            );
            match started {
                Ok(o) => o,
                Err(rx) => rx.await.unwrap_or_else(|_| crate::group::SyncOutcome {
                    error: code::of(E::UnknownMemberId),
                    ..Default::default()
                }),
            }
        })
        .await;
    match outcome {
        Ok(o) => {
            let resp = SyncGroupResponse::default().with_error_code(o.error).with_assignment(o.assignment);
            if version >= 5 {
                resp.with_protocol_type(opt(o.protocol_type)).with_protocol_name(opt(o.protocol_name))
            } else {
                resp
            }
        }
        Err(e) => SyncGroupResponse::default().with_error_code(route_error(&e)),
    }
}

pub async fn heartbeat(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let group_id = req.group_id.to_string();
    let result = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            match coord.get(&group_id) {
                Some(g) => {
                    g.borrow_mut().heartbeat(&req.member_id, req.group_instance_id.as_deref(), req.generation_id)
                }
                None => code::of(E::UnknownMemberId),
            }
        })
        .await;
    HeartbeatResponse::default().with_error_code(result.unwrap_or_else(|e| route_error(&e)))
}

pub async fn leave_group(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let group_id = req.group_id.to_string();
    let asked = leaving.clone();
    let results = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let Some(group) = coord.get(&group_id) else {
                return asked.iter().map(|_| code::of(E::UnknownMemberId)).collect::<Vec<_>>();
            };
            asked.iter().map(|(id, instance)| Group::leave(&group, &coord.config, id, instance.as_deref())).collect()
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => return LeaveGroupResponse::default().with_error_code(route_error(&e)),
    };
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(results.first().copied().unwrap_or(0));
    }
    let members = leaving
        .into_iter()
        .zip(results)
        .map(|((id, instance), error)| {
            MemberResponse::default()
                .with_member_id(s(&id))
                .with_group_instance_id(opt(instance))
                .with_error_code(error)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub async fn describe_groups(broker: &Arc<Broker>, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for group_id in req.groups {
        let id = group_id.to_string();
        let described = broker
            .with_coordinator(&id.clone(), move |coord, _| async move {
                coord.get(&id).map(|g| {
                    let g = g.borrow();
                    (g.state, g.protocol_type.clone(), g.protocol.clone(), g.members())
                })
            })
            .await;
        let base = DescribedGroup::default().with_group_id(group_id).with_authorized_operations(i32::MIN);
        groups.push(match described {
            Err(e) => base.with_error_code(route_error(&e)),
            // Kafka describes an unknown group as Dead with no members, and
            // from v6 (KIP-1043) also says GROUP_ID_NOT_FOUND.
            Ok(None) if version >= 6 => {
                let message = format!("Group {} not found.", base.group_id.as_str());
                base.with_group_state(s("Dead"))
                    .with_error_code(code::of(E::GroupIdNotFound))
                    .with_error_message(Some(s(&message)))
            }
            Ok(None) => base.with_group_state(s("Dead")),
            Ok(Some((state, protocol_type, protocol, members))) => {
                let stable = state == GroupState::Stable;
                let members = members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(if version >= 4 { opt(m.instance_id) } else { None })
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(if stable { m.metadata } else { Default::default() })
                            .with_member_assignment(if stable { m.assignment } else { Default::default() })
                    })
                    .collect();
                base.with_group_state(s(state.name()))
                    .with_protocol_type(s(&protocol_type.unwrap_or_default()))
                    .with_protocol_data(s(&protocol.unwrap_or_default()))
                    .with_members(members)
            }
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list_groups(broker: &Arc<Broker>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let mut groups = Vec::new();
    for shard in 0..broker.shards.len() {
        let listed = broker
            .shards
            .run_on(shard, |ctx| async move {
                ctx.coordinator
                    .all()
                    .iter()
                    .map(|g| {
                        let g = g.borrow();
                        (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        for (id, protocol_type, state) in listed {
            if states.is_empty() || states.contains(&state.name().to_lowercase()) {
                let mut entry =
                    ListedGroup::default().with_group_id(GroupId(s(&id))).with_protocol_type(s(&protocol_type));
                if version >= 4 {
                    entry = entry.with_group_state(s(state.name()));
                }
                if version >= 5 {
                    entry = entry.with_group_type(s("classic"));
                }
                groups.push(entry);
            }
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let id = group_id.to_string();
        let outcome = broker
            .with_coordinator(&id.clone(), move |coord, offsets| async move {
                let Some(group) = coord.get(&id) else { return code::of(E::GroupIdNotFound) };
                let committed: Vec<(String, i32)> = {
                    let g = group.borrow();
                    if g.has_members() || g.state != GroupState::Empty {
                        return code::of(E::NonEmptyGroup);
                    }
                    g.offsets.keys().cloned().collect()
                };
                // Gone before the write: a join or commit arriving meanwhile
                // starts a new group instead of landing in this one.
                coord.remove(&id);
                if !committed.is_empty() {
                    let batch = crate::group::encode_offset_tombstone(&id, &committed, crate::now_ms());
                    if let Err(e) = offsets.append_group_record(batch).await {
                        coord.restore(group);
                        return crate::error::commit_error(&e);
                    }
                }
                0
            })
            .await;
        let error = outcome.unwrap_or_else(|e| route_error(&e));
        results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(error));
    }
    DeleteGroupsResponse::default().with_results(results)
}
