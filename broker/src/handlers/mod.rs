//! The Kafka APIs we serve: one file per API (families in folders), and
//! the one table, below, of each API's key, the versions we handle
//! completely and the call that serves it. ApiVersions advertises exactly
//! that table and dispatch refuses anything outside it, so advertising and
//! handling cannot drift apart; adding an API is adding a file and a row.

mod alter_partition_reassignments;
mod api;
mod api_versions;
mod config;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_log_dirs;
mod describe_producers;
mod elect_leaders;
mod fetch;
mod group;
mod init_producer_id;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod raft;
mod txn;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::{ApiSpec, HandleError, LaterReply, Reply};

use kafka_protocol::messages::{ApiKey, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use kafka_protocol::ResponseError;
use sluice_protocol::message::{encode_response, Request};

use crate::broker::Broker;
use crate::error::code;
use crate::runtime::shutdown::Shutdown;

/// Defines `SUPPORTED` and `serve` from one list of rows
/// `Key min..=max => expression`; each expression answers `req` with the
/// names the list opens with in scope.
macro_rules! apis {
    (|$broker:ident, $req:ident, $version:ident, $shutdown:ident, $peer:ident| {
        $($key:ident $min:literal ..= $max:literal => $serve:expr,)*
    }) => {
        pub const SUPPORTED: &[ApiSpec] = &[$(ApiSpec { key: ApiKey::$key, min: $min, max: $max },)*];

        async fn serve($broker: &Arc<Broker>, $req: Request, $version: i16, $shutdown: &Shutdown, $peer: SocketAddr) -> Reply {
            match $req.api_key {
                $(ApiKey::$key => $serve,)*
                other => Err(HandleError::UnsupportedApi(other)),
            }
        }
    };
}

apis!(|broker, req, version, shutdown, peer| {
    Produce 3..=13 => start_produce(broker, req).await?.await,
    Fetch 4..=18 => reply(&req, "Fetch", &fetch::handle(broker, req.decode("Fetch")?, version, shutdown).await),
    ListOffsets 1..=10 => reply(&req, "ListOffsets", &list_offsets::handle(broker, req.decode("ListOffsets")?, version).await),
    Metadata 0..=13 => reply(&req, "Metadata", &metadata::handle(broker, req.decode("Metadata")?, version).await),
    // KIP-511: any version is answered, unsupported ones with a v0 error.
    ApiVersions 0..=4 => api_versions::handle(&req, SUPPORTED).map(Some),
    CreateTopics 2..=7 => reply(&req, "CreateTopics", &create_topics::handle(broker, req.decode("CreateTopics")?, version).await),
    DeleteTopics 1..=6 => reply(&req, "DeleteTopics", &delete_topics::handle(broker, req.decode("DeleteTopics")?, version).await),
    DeleteRecords 0..=2 => reply(&req, "DeleteRecords", &delete_records::handle(broker, req.decode("DeleteRecords")?, version).await),
    FindCoordinator 0..=6 => reply(&req, "FindCoordinator", &group::find_coordinator::handle(broker, req.decode("FindCoordinator")?, version).await),
    JoinGroup 0..=9 => {
        let client_id = req.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
        let host = format!("/{}", peer.ip());
        let join = group::join_group::handle(broker, req.decode("JoinGroup")?, version, client_id, host);
        // A join can wait for a whole rebalance: do not hold shutdown up.
        let resp = tokio::select! {
            resp = join => resp,
            _ = shutdown.wait() => JoinGroupResponse::default()
                .with_error_code(code::of(ResponseError::CoordinatorNotAvailable))
                .with_generation_id(-1),
        };
        reply(&req, "JoinGroup", &resp)
    },
    SyncGroup 0..=5 => {
        let sync = group::sync_group::handle(broker, req.decode("SyncGroup")?, version);
        let resp = tokio::select! {
            resp = sync => resp,
            _ = shutdown.wait() => SyncGroupResponse::default()
                .with_error_code(code::of(ResponseError::CoordinatorNotAvailable)),
        };
        reply(&req, "SyncGroup", &resp)
    },
    Heartbeat 0..=4 => reply(&req, "Heartbeat", &group::heartbeat::handle(broker, req.decode("Heartbeat")?).await),
    LeaveGroup 0..=5 => reply(&req, "LeaveGroup", &group::leave_group::handle(broker, req.decode("LeaveGroup")?, version).await),
    OffsetCommit 2..=9 => reply(&req, "OffsetCommit", &group::offset_commit::handle(broker, req.decode("OffsetCommit")?, version).await),
    OffsetFetch 1..=9 => reply(&req, "OffsetFetch", &group::offset_fetch::handle(broker, req.decode("OffsetFetch")?, version).await),
    DescribeGroups 0..=6 => reply(&req, "DescribeGroups", &group::describe_groups::handle(broker, req.decode("DescribeGroups")?, version).await),
    ListGroups 0..=5 => reply(&req, "ListGroups", &group::list_groups::handle(broker, req.decode("ListGroups")?, version).await),
    DeleteGroups 0..=2 => reply(&req, "DeleteGroups", &group::delete_groups::handle(broker, req.decode("DeleteGroups")?).await),
    OffsetDelete 0..=0 => reply(&req, "OffsetDelete", &group::offset_delete::handle(broker, req.decode("OffsetDelete")?).await),
    OffsetForLeaderEpoch 0..=4 => reply(&req, "OffsetForLeaderEpoch", &offset_for_leader_epoch::handle(broker, req.decode("OffsetForLeaderEpoch")?).await),
    CreatePartitions 0..=3 => reply(&req, "CreatePartitions", &create_partitions::handle(broker, req.decode("CreatePartitions")?).await),
    DescribeCluster 0..=2 => reply(&req, "DescribeCluster", &describe_cluster::handle(broker, req.decode("DescribeCluster")?)),
    InitProducerId 0..=5 => reply(&req, "InitProducerId", &init_producer_id::handle(broker, req.decode("InitProducerId")?, version).await),
    DescribeProducers 0..=0 => reply(&req, "DescribeProducers", &describe_producers::handle(broker, req.decode("DescribeProducers")?).await),
    AddPartitionsToTxn 0..=4 => reply(&req, "AddPartitionsToTxn", &txn::add_partitions_to_txn::handle(broker, req.decode("AddPartitionsToTxn")?, version).await),
    AddOffsetsToTxn 0..=3 => reply(&req, "AddOffsetsToTxn", &txn::add_offsets_to_txn::handle(broker, req.decode("AddOffsetsToTxn")?, version).await),
    EndTxn 0..=4 => reply(&req, "EndTxn", &txn::end_txn::handle(broker, req.decode("EndTxn")?, version).await),
    WriteTxnMarkers 1..=1 => reply(&req, "WriteTxnMarkers", &txn::write_txn_markers::handle(broker, req.decode("WriteTxnMarkers")?).await),
    TxnOffsetCommit 0..=4 => reply(&req, "TxnOffsetCommit", &txn::txn_offset_commit::handle(broker, req.decode("TxnOffsetCommit")?).await),
    DescribeTransactions 0..=0 => reply(&req, "DescribeTransactions", &txn::describe_transactions::handle(broker, req.decode("DescribeTransactions")?).await),
    ListTransactions 0..=1 => reply(&req, "ListTransactions", &txn::list_transactions::handle(broker, req.decode("ListTransactions")?).await),
    DescribeLogDirs 1..=4 => reply(&req, "DescribeLogDirs", &describe_log_dirs::handle(broker, req.decode("DescribeLogDirs")?).await),
    DescribeConfigs 1..=4 => reply(&req, "DescribeConfigs", &config::describe_configs::handle(broker, req.decode("DescribeConfigs")?)),
    AlterConfigs 0..=2 => reply(&req, "AlterConfigs", &config::alter_configs::handle(broker, req.decode("AlterConfigs")?).await),
    IncrementalAlterConfigs 0..=1 => reply(&req, "IncrementalAlterConfigs", &config::incremental_alter_configs::handle(broker, req.decode("IncrementalAlterConfigs")?).await),
    ElectLeaders 0..=2 => reply(&req, "ElectLeaders", &elect_leaders::handle(broker, req.decode("ElectLeaders")?).await),
    AlterPartitionReassignments 0..=1 => reply(&req, "AlterPartitionReassignments", &alter_partition_reassignments::handle(broker, req.decode("AlterPartitionReassignments")?).await),
    ListPartitionReassignments 0..=0 => reply(&req, "ListPartitionReassignments", &list_partition_reassignments::handle(broker, req.decode("ListPartitionReassignments")?)),
    AddRaftVoter 0..=0 => reply(&req, "AddRaftVoter", &raft::add_raft_voter::handle(broker, req.decode("AddRaftVoter")?).await),
    RemoveRaftVoter 0..=0 => reply(&req, "RemoveRaftVoter", &raft::remove_raft_voter::handle(broker, req.decode("RemoveRaftVoter")?).await),
});

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
pub async fn dispatch(broker: &Arc<Broker>, req: Request, shutdown: &Shutdown, peer: SocketAddr) -> Reply {
    let version = check_version(&req)?;
    serve(broker, req, version, shutdown, peer).await
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
