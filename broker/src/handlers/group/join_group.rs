//! JoinGroup: a member joins, and waits for the rebalance to complete.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use super::{opt, s};
use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{Group, JoinRequest};

pub async fn handle(
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
        .with_members(members)
        .with_skip_assignment(version >= 9 && o.skip_assignment);
    if version >= 7 {
        resp.with_protocol_type(opt(o.protocol_type))
    } else {
        resp
    }
}
