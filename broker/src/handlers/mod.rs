//! One module per API family. `SUPPORTED` is the single table of what we
//! serve: ApiVersions advertises exactly it, and dispatch refuses anything
//! outside it, so advertising and handling cannot drift apart.

mod api;
mod api_versions;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_log_dirs;
mod describe_producers;
mod elect_leaders;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod raft_voters;
mod reassignments;
mod transactions;

use std::sync::Arc;

pub use api::{ApiSpec, HandleError, LaterReply, Reply};

use kafka_protocol::messages::{ApiKey, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use kafka_protocol::ResponseError;
use sluice_protocol::message::{encode_response, Request};

use crate::broker::Broker;
use crate::error::code;
use crate::runtime::shutdown::Shutdown;

pub const SUPPORTED: &[ApiSpec] = &[
    ApiSpec { key: ApiKey::Produce, min: 3, max: 13 },
    ApiSpec { key: ApiKey::Fetch, min: 4, max: 18 },
    ApiSpec { key: ApiKey::ListOffsets, min: 1, max: 10 },
    ApiSpec { key: ApiKey::Metadata, min: 0, max: 13 },
    ApiSpec { key: ApiKey::ApiVersions, min: 0, max: 4 },
    ApiSpec { key: ApiKey::CreateTopics, min: 2, max: 7 },
    ApiSpec { key: ApiKey::DeleteTopics, min: 1, max: 6 },
    ApiSpec { key: ApiKey::DeleteRecords, min: 0, max: 2 },
    ApiSpec { key: ApiKey::FindCoordinator, min: 0, max: 6 },
    ApiSpec { key: ApiKey::JoinGroup, min: 0, max: 9 },
    ApiSpec { key: ApiKey::SyncGroup, min: 0, max: 5 },
    ApiSpec { key: ApiKey::Heartbeat, min: 0, max: 4 },
    ApiSpec { key: ApiKey::LeaveGroup, min: 0, max: 5 },
    ApiSpec { key: ApiKey::OffsetCommit, min: 2, max: 9 },
    ApiSpec { key: ApiKey::OffsetFetch, min: 1, max: 9 },
    ApiSpec { key: ApiKey::DescribeGroups, min: 0, max: 6 },
    ApiSpec { key: ApiKey::ListGroups, min: 0, max: 5 },
    ApiSpec { key: ApiKey::DeleteGroups, min: 0, max: 2 },
    ApiSpec { key: ApiKey::OffsetDelete, min: 0, max: 0 },
    ApiSpec { key: ApiKey::OffsetForLeaderEpoch, min: 0, max: 4 },
    ApiSpec { key: ApiKey::CreatePartitions, min: 0, max: 3 },
    ApiSpec { key: ApiKey::DescribeCluster, min: 0, max: 2 },
    ApiSpec { key: ApiKey::InitProducerId, min: 0, max: 5 },
    ApiSpec { key: ApiKey::DescribeProducers, min: 0, max: 0 },
    ApiSpec { key: ApiKey::AddPartitionsToTxn, min: 0, max: 4 },
    ApiSpec { key: ApiKey::AddOffsetsToTxn, min: 0, max: 3 },
    ApiSpec { key: ApiKey::EndTxn, min: 0, max: 4 },
    ApiSpec { key: ApiKey::WriteTxnMarkers, min: 1, max: 1 },
    ApiSpec { key: ApiKey::TxnOffsetCommit, min: 0, max: 4 },
    ApiSpec { key: ApiKey::DescribeTransactions, min: 0, max: 0 },
    ApiSpec { key: ApiKey::ListTransactions, min: 0, max: 1 },
    ApiSpec { key: ApiKey::DescribeLogDirs, min: 1, max: 4 },
    ApiSpec { key: ApiKey::DescribeConfigs, min: 1, max: 4 },
    ApiSpec { key: ApiKey::AlterConfigs, min: 0, max: 2 },
    ApiSpec { key: ApiKey::IncrementalAlterConfigs, min: 0, max: 1 },
    ApiSpec { key: ApiKey::ElectLeaders, min: 0, max: 2 },
    ApiSpec { key: ApiKey::AlterPartitionReassignments, min: 0, max: 1 },
    ApiSpec { key: ApiKey::ListPartitionReassignments, min: 0, max: 0 },
    ApiSpec { key: ApiKey::AddRaftVoter, min: 0, max: 0 },
    ApiSpec { key: ApiKey::RemoveRaftVoter, min: 0, max: 0 },
];

/// Starts a Produce: returns once its appends are queued in order (see
/// `produce::start`), with the answer still to come. The connection reads
/// the next request meanwhile and writes answers in request order, so a
/// client's pipelined produces share fsyncs instead of waiting one by one.
pub async fn start_produce(broker: &Arc<Broker>, req: Request) -> Result<LaterReply, HandleError> {
    let version = check_version(&req)?;
    let correlation_id = req.header.correlation_id;
    let started = produce::start(broker, req.decode("Produce")?, version).await;
    // The request (and its frame) is dropped here: only the answer waits.
    drop(req);
    Ok(Box::pin(async move {
        match started.finish().await {
            Some(resp) => Ok(Some(encode_response("Produce", correlation_id, version, &resp)?)),
            None => Ok(None),
        }
    }))
}

fn check_version(req: &Request) -> Result<i16, HandleError> {
    let Some(spec) = SUPPORTED.iter().find(|s| s.key == req.api_key) else {
        return Err(HandleError::UnsupportedApi(req.api_key));
    };
    let version = req.version();
    if req.api_key != ApiKey::ApiVersions && (version < spec.min || version > spec.max) {
        return Err(HandleError::UnsupportedVersion { api: spec.key, version, min: spec.min, max: spec.max });
    }
    Ok(version)
}

/// Runs one request. `Ok(None)` means no response is sent (acks=0 produce).
pub async fn dispatch(broker: &Arc<Broker>, req: Request, shutdown: &Shutdown, peer: std::net::SocketAddr) -> Reply {
    let version = check_version(&req)?;
    match req.api_key {
        // KIP-511: any version is answered, unsupported ones with a v0 error.
        ApiKey::ApiVersions => api_versions::handle(&req, SUPPORTED).map(Some),
        ApiKey::Metadata => {
            let resp = metadata::handle(broker, req.decode("Metadata")?, version).await;
            reply(&req, "Metadata", &resp)
        }
        ApiKey::Produce => start_produce(broker, req).await?.await,
        ApiKey::Fetch => {
            let resp = fetch::handle(broker, req.decode("Fetch")?, version, shutdown).await;
            reply(&req, "Fetch", &resp)
        }
        ApiKey::ListOffsets => {
            let resp = list_offsets::handle(broker, req.decode("ListOffsets")?, version).await;
            reply(&req, "ListOffsets", &resp)
        }
        ApiKey::CreateTopics => {
            let resp = create_topics::handle(broker, req.decode("CreateTopics")?, version).await;
            reply(&req, "CreateTopics", &resp)
        }
        ApiKey::DeleteTopics => {
            let resp = delete_topics::handle(broker, req.decode("DeleteTopics")?, version).await;
            reply(&req, "DeleteTopics", &resp)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let resp = offset_for_leader_epoch::handle(broker, req.decode("OffsetForLeaderEpoch")?).await;
            reply(&req, "OffsetForLeaderEpoch", &resp)
        }
        ApiKey::CreatePartitions => {
            let resp = create_partitions::handle(broker, req.decode("CreatePartitions")?).await;
            reply(&req, "CreatePartitions", &resp)
        }
        ApiKey::DescribeCluster => {
            let resp = describe_cluster::handle(broker, req.decode("DescribeCluster")?);
            reply(&req, "DescribeCluster", &resp)
        }
        ApiKey::DescribeConfigs => {
            reply(&req, "DescribeConfigs", &configs::describe(broker, req.decode("DescribeConfigs")?))
        }
        ApiKey::AlterConfigs => reply(&req, "AlterConfigs", &configs::alter(broker, req.decode("AlterConfigs")?).await),
        ApiKey::IncrementalAlterConfigs => {
            let resp = configs::incremental_alter(broker, req.decode("IncrementalAlterConfigs")?).await;
            reply(&req, "IncrementalAlterConfigs", &resp)
        }
        ApiKey::AlterPartitionReassignments => {
            let resp = reassignments::alter(broker, req.decode("AlterPartitionReassignments")?).await;
            reply(&req, "AlterPartitionReassignments", &resp)
        }
        ApiKey::ListPartitionReassignments => {
            let resp = reassignments::list(broker, req.decode("ListPartitionReassignments")?);
            reply(&req, "ListPartitionReassignments", &resp)
        }
        ApiKey::AddRaftVoter => {
            reply(&req, "AddRaftVoter", &raft_voters::add(broker, req.decode("AddRaftVoter")?).await)
        }
        ApiKey::RemoveRaftVoter => {
            reply(&req, "RemoveRaftVoter", &raft_voters::remove(broker, req.decode("RemoveRaftVoter")?).await)
        }
        ApiKey::ElectLeaders => {
            reply(&req, "ElectLeaders", &elect_leaders::handle(broker, req.decode("ElectLeaders")?).await)
        }
        ApiKey::DescribeLogDirs => {
            let resp = describe_log_dirs::handle(broker, req.decode("DescribeLogDirs")?).await;
            reply(&req, "DescribeLogDirs", &resp)
        }
        ApiKey::DescribeProducers => {
            let resp = describe_producers::handle(broker, req.decode("DescribeProducers")?).await;
            reply(&req, "DescribeProducers", &resp)
        }
        ApiKey::InitProducerId => {
            let resp = init_producer_id::handle(broker, req.decode("InitProducerId")?, version).await;
            reply(&req, "InitProducerId", &resp)
        }
        ApiKey::AddPartitionsToTxn => {
            let resp = transactions::add_partitions(broker, req.decode("AddPartitionsToTxn")?, version).await;
            reply(&req, "AddPartitionsToTxn", &resp)
        }
        ApiKey::AddOffsetsToTxn => {
            let resp = transactions::add_offsets(broker, req.decode("AddOffsetsToTxn")?, version).await;
            reply(&req, "AddOffsetsToTxn", &resp)
        }
        ApiKey::EndTxn => reply(&req, "EndTxn", &transactions::end_txn(broker, req.decode("EndTxn")?, version).await),
        ApiKey::WriteTxnMarkers => {
            let resp = transactions::write_markers(broker, req.decode("WriteTxnMarkers")?).await;
            reply(&req, "WriteTxnMarkers", &resp)
        }
        ApiKey::TxnOffsetCommit => {
            let resp = transactions::txn_offset_commit(broker, req.decode("TxnOffsetCommit")?).await;
            reply(&req, "TxnOffsetCommit", &resp)
        }
        ApiKey::DescribeTransactions => {
            let resp = transactions::describe(broker, req.decode("DescribeTransactions")?).await;
            reply(&req, "DescribeTransactions", &resp)
        }
        ApiKey::ListTransactions => {
            reply(&req, "ListTransactions", &transactions::list(broker, req.decode("ListTransactions")?).await)
        }
        ApiKey::DeleteRecords => {
            let resp = delete_records::handle(broker, req.decode("DeleteRecords")?, version).await;
            reply(&req, "DeleteRecords", &resp)
        }
        ApiKey::FindCoordinator => {
            let resp = groups::find_coordinator(broker, req.decode("FindCoordinator")?, version).await;
            reply(&req, "FindCoordinator", &resp)
        }
        ApiKey::JoinGroup => {
            let client_id = req.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            let host = format!("/{}", peer.ip());
            let join = groups::join_group(broker, req.decode("JoinGroup")?, version, client_id, host);
            // A join can wait for a whole rebalance: do not hold shutdown up.
            let resp = tokio::select! {
                resp = join => resp,
                _ = shutdown.wait() => JoinGroupResponse::default()
                    .with_error_code(code::of(ResponseError::CoordinatorNotAvailable))
                    .with_generation_id(-1),
            };
            reply(&req, "JoinGroup", &resp)
        }
        ApiKey::SyncGroup => {
            let sync = groups::sync_group(broker, req.decode("SyncGroup")?, version);
            let resp = tokio::select! {
                resp = sync => resp,
                _ = shutdown.wait() => SyncGroupResponse::default()
                    .with_error_code(code::of(ResponseError::CoordinatorNotAvailable)),
            };
            reply(&req, "SyncGroup", &resp)
        }
        ApiKey::Heartbeat => reply(&req, "Heartbeat", &groups::heartbeat(broker, req.decode("Heartbeat")?).await),
        ApiKey::LeaveGroup => {
            reply(&req, "LeaveGroup", &groups::leave_group(broker, req.decode("LeaveGroup")?, version).await)
        }
        ApiKey::OffsetCommit => {
            reply(&req, "OffsetCommit", &offsets::commit(broker, req.decode("OffsetCommit")?, version).await)
        }
        ApiKey::OffsetFetch => {
            reply(&req, "OffsetFetch", &offsets::fetch(broker, req.decode("OffsetFetch")?, version).await)
        }
        ApiKey::DescribeGroups => {
            let resp = groups::describe_groups(broker, req.decode("DescribeGroups")?, version).await;
            reply(&req, "DescribeGroups", &resp)
        }
        ApiKey::ListGroups => {
            reply(&req, "ListGroups", &groups::list_groups(broker, req.decode("ListGroups")?, version).await)
        }
        ApiKey::DeleteGroups => {
            reply(&req, "DeleteGroups", &groups::delete_groups(broker, req.decode("DeleteGroups")?).await)
        }
        ApiKey::OffsetDelete => {
            reply(&req, "OffsetDelete", &offsets::delete(broker, req.decode("OffsetDelete")?).await)
        }
        other => Err(HandleError::UnsupportedApi(other)),
    }
}

fn reply<T: Encodable + HeaderVersion>(req: &Request, what: &'static str, resp: &T) -> Reply {
    Ok(Some(encode_response(what, req.header.correlation_id, req.version(), resp)?))
}

#[cfg(test)]
mod tests {
    use super::SUPPORTED;

    #[test]
    fn ledger_lists_exactly_what_is_advertised() {
        let ledger = include_str!("../../../compat-tests/LEDGER.md");
        let mut rows: Vec<(i16, i16, i16)> = ledger
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key = cells.get(2)?.parse().ok()?;
                let (min, max) = cells.get(3)?.split_once('-')?;
                Some((key, min.parse().ok()?, max.parse().ok()?))
            })
            .collect();
        rows.sort();
        let mut advertised: Vec<_> = SUPPORTED.iter().map(|s| (s.key as i16, s.min, s.max)).collect();
        advertised.sort();
        assert_eq!(rows, advertised, "compat-tests/LEDGER.md must list every advertised API and range");
    }
}
