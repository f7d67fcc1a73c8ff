//! DescribeGroups: each group's state, protocol and members.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::{opt, s};
use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::GroupState;

pub async fn handle(broker: &Arc<Broker>, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
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
