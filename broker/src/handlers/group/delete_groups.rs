//! DeleteGroups: empty groups and their committed offsets go.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::GroupState;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
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
