//! ListGroups: the groups this broker coordinates, filtered by state.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;

use super::s;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
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
