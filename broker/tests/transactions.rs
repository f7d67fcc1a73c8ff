//! Transactions on the wire, checked against Kafka's answers: the
//! coordinator's state machine and error codes (fencing by epoch and
//! request version, INVALID_TXN_STATE, CONCURRENT_TRANSACTIONS-free
//! retries), KIP-890 verification of transactional produce, read_committed
//! Fetch and ListOffsets at the last stable offset with aborted
//! transactions, Describe/ListTransactions, WriteTxnMarkers, and the
//! coordinator's state surviving kill -9.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{transactional_batch, Broker, Client};
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

const TXN: &str = "t1";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn init(c: &mut Client, id: &str, version: i16) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = c.call(ApiKey::InitProducerId, version, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// AddPartitionsToTxn v0-3: the error of each (topic, partition) asked for.
fn add_partitions(c: &mut Client, version: i16, pid: i64, epoch: i16, parts: &[(&str, i32)]) -> Vec<i16> {
    let topics = parts
        .iter()
        .map(|(t, p)| AddPartitionsToTxnTopic::default().with_name(TopicName(s(t))).with_partitions(vec![*p]))
        .collect();
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(TXN)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let resp: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, version, &req);
    resp.results_by_topic_v3_and_below.iter().map(|t| t.results_by_partition[0].partition_error_code).collect()
}

fn end_txn(c: &mut Client, version: i16, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = c.call(ApiKey::EndTxn, version, &req);
    resp.error_code
}

fn produce(c: &mut Client, partition: i32, transactional_id: Option<&str>, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(s("txn"))).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ])]);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A read_committed fetch of partition 0 from offset 0: (high watermark,
/// last stable offset, bytes returned, aborted (producer, first offset)).
fn fetch_committed(c: &mut Client) -> (i64, i64, usize, Vec<(i64, i64)>) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(s("txn"))).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
        ])]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p.aborted_transactions.iter().flatten().map(|a| (a.producer_id.0, a.first_offset)).collect();
    (p.high_watermark, p.last_stable_offset, p.records.as_ref().map_or(0, |r| r.len()), aborted)
}

fn latest_committed_offset(c: &mut Client) -> i64 {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(1).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(s("txn")))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &req);
    resp.topics[0].partitions[0].offset
}

/// Waits for the markers (written after EndTxn is answered) to land.
fn wait_stable(c: &mut Client, offset: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest_committed_offset(c) != offset {
        assert!(Instant::now() < deadline, "last stable offset never reached {offset}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe(c: &mut Client, id: &str) -> describe_transactions_response::TransactionState {
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let resp: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req);
    resp.transaction_states[0].clone()
}

fn setup(c: &mut Client) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("txn")))
        .with_num_partitions(2)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

/// Creates topic `txn` and a transaction holding one record at offset 0
/// of its partition 0; returns the producer id (epoch 0).
fn open_transaction(c: &mut Client) -> i64 {
    setup(c);
    let (_, pid, _) = init(c, TXN, 4);
    assert_eq!(add_partitions(c, 3, pid, 0, &[("txn", 0)]), [0]);
    assert_eq!(produce(c, 0, Some(TXN), transactional_batch(pid, 0, 0, &[b"x"])), (0, 0));
    pid
}

#[test]
fn a_transaction_is_verified_held_at_the_lso_and_aborted_as_kafka_does() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    setup(&mut c);
    let (error, pid, epoch) = init(&mut c, TXN, 4);
    assert_eq!((error, epoch), (0, 0));

    // KIP-890: not added to the transaction yet, so refused.
    let batch = || transactional_batch(pid, 0, 0, &[b"a", b"b"]);
    assert_eq!(produce(&mut c, 0, Some(TXN), batch()).0, E::InvalidTxnState.code());
    let unknown = add_partitions(&mut c, 3, pid, 0, &[("txn", 0), ("nope", 0)]);
    assert_eq!(unknown, [E::OperationNotAttempted.code(), E::UnknownTopicOrPartition.code()]);
    assert_eq!(add_partitions(&mut c, 3, pid, 0, &[("txn", 0)]), [0]);
    assert_eq!(produce(&mut c, 0, Some(TXN), batch()), (0, 0));

    // v4 verify-only, as a partition leader asks the coordinator.
    let verify = |c: &mut Client, partition: i32| {
        let req =
            AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s(TXN)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s("txn")))
                    .with_partitions(vec![partition])])]);
        let resp: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 4, &req);
        resp.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code
    };
    assert_eq!(verify(&mut c, 0), 0);
    assert_eq!(verify(&mut c, 1), E::InvalidTxnState.code(), "verify-only never adds");

    // Undecided: read_committed readers stop before it.
    assert_eq!(fetch_committed(&mut c), (2, 0, 0, vec![]));
    assert_eq!(latest_committed_offset(&mut c), 0);
    let d = describe(&mut c, TXN);
    assert_eq!((d.error_code, d.transaction_state.as_str(), d.topics.len()), (0, "Ongoing", 1));
    assert_eq!(describe(&mut c, "nobody").error_code, E::TransactionalIdNotFound.code());
    let listed: ListTransactionsResponse = c.call(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]).with_duration_filter(-1),
    );
    assert_eq!(listed.transaction_states.iter().map(|t| t.transactional_id.0.as_str()).collect::<Vec<_>>(), [TXN]);
    assert_eq!(listed.unknown_state_filters, [s("Bogus")]);

    // Abort: the marker moves the LSO past the transaction, and
    // read_committed fetches learn which records to drop.
    assert_eq!(end_txn(&mut c, 3, pid, 0, false), 0);
    wait_stable(&mut c, 3);
    let (hw, lso, bytes, aborted) = fetch_committed(&mut c);
    assert_eq!((hw, lso, aborted), (3, 3, vec![(pid, 0)]));
    assert!(bytes > 0);
    assert_eq!(end_txn(&mut c, 3, pid, 0, false), 0, "a retried abort");
    assert_eq!(end_txn(&mut c, 3, pid, 0, true), E::InvalidTxnState.code());

    // A new producer instance fences the old epoch, with the error each
    // request version knows (KIP-588).
    let (_, same_pid, epoch) = init(&mut c, TXN, 4);
    assert_eq!((same_pid, epoch), (pid, 1));
    assert_eq!(add_partitions(&mut c, 3, pid, 0, &[("txn", 0)]), [E::ProducerFenced.code()]);
    assert_eq!(add_partitions(&mut c, 1, pid, 0, &[("txn", 0)]), [E::InvalidProducerEpoch.code()]);
    assert_eq!(end_txn(&mut c, 3, pid, 0, true), E::ProducerFenced.code());
    assert_eq!(add_partitions(&mut c, 3, pid + 1, 1, &[("txn", 0)]), [E::InvalidProducerIdMapping.code()]);
}

#[test]
fn coordinator_state_and_open_transactions_survive_kill_9() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    let pid = open_transaction(&mut c);
    let dir = broker.kill9();

    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let d = describe(&mut c, TXN);
        if d.error_code == 0 || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50)); // the coordinator is loading
    };
    assert_eq!((d.error_code, d.transaction_state.as_str(), d.producer_epoch), (0, "Ongoing", 0));
    assert_eq!(latest_committed_offset(&mut c), 0, "still open after the restart");
    // The partition still knows the transaction is open: no new verification.
    assert_eq!(produce(&mut c, 0, Some(TXN), transactional_batch(pid, 0, 1, &[b"y"])), (0, 1));
    assert_eq!(end_txn(&mut c, 4, pid, 0, true), 0);
    wait_stable(&mut c, 3);
    let (_, _, _, aborted) = fetch_committed(&mut c);
    assert!(aborted.is_empty());
}

#[test]
fn write_txn_markers_end_a_producers_transaction_on_a_partition() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    // An open transaction, then a marker as a coordinator would send it.
    let pid = open_transaction(&mut c);
    let marker = |topic: &str| {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0])])])
    };
    let resp: WriteTxnMarkersResponse = c.call(ApiKey::WriteTxnMarkers, 1, &marker("txn"));
    assert_eq!(resp.markers[0].topics[0].partitions[0].error_code, 0);
    assert_eq!(latest_committed_offset(&mut c), 2);
    assert_eq!(fetch_committed(&mut c).3, vec![(pid, 0)]);
    let resp: WriteTxnMarkersResponse = c.call(ApiKey::WriteTxnMarkers, 1, &marker("nope"));
    assert_eq!(resp.markers[0].topics[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
}

#[test]
fn offsets_committed_in_a_transaction_count_only_once_it_commits() {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    setup(&mut c);
    let (_, pid, _) = init(&mut c, TXN, 4);
    let add: AddOffsetsToTxnResponse = c.call(
        ApiKey::AddOffsetsToTxn,
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(TXN)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_group_id(GroupId(s("g"))),
    );
    assert_eq!(add.error_code, 0);
    let commit: TxnOffsetCommitResponse = c.call(
        ApiKey::TxnOffsetCommit,
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(TXN)))
            .with_group_id(GroupId(s("g")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(TopicName(s("txn"))).with_partitions(
                vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42)],
            )]),
    );
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    let fetch = |c: &mut Client, require_stable: bool| {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_require_stable(require_stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("txn")))
                .with_partition_indexes(vec![0])]));
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(fetch(&mut c, false), (0, -1), "not committed yet");
    assert_eq!(fetch(&mut c, true), (E::UnstableOffsetCommit.code(), -1));
    assert_eq!(end_txn(&mut c, 4, pid, 0, true), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&mut c, true) != (0, 42) {
        assert!(Instant::now() < deadline, "the committed transaction's offset never became visible");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Replayed from __consumer_offsets after a crash: still committed.
    let broker = Broker::start_in(broker.kill9(), &[]);
    let mut c = broker.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&mut c, true) != (0, 42) {
        assert!(Instant::now() < deadline, "the offset was lost in the restart");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kip_360_epoch_bumps_and_their_retries_as_kafka_answers_them() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    let bump = |c: &mut Client, pid: i64, epoch: i16| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(TXN))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
        let resp: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req);
        (resp.error_code, resp.producer_id.0, resp.producer_epoch)
    };
    let (_, pid, _) = init(&mut c, TXN, 4);
    assert_eq!(bump(&mut c, pid, 0), (0, pid, 1));
    assert_eq!(bump(&mut c, pid, 0), (0, pid, 1), "a retry whose answer was lost gets the same epoch");
    assert_eq!(bump(&mut c, pid, 1), (0, pid, 2));
    assert_eq!(bump(&mut c, pid, 0).0, E::ProducerFenced.code());
    assert_eq!(bump(&mut c, pid + 7, 2).0, E::ProducerFenced.code());
    let long = "x".repeat(40_000);
    assert_eq!(init(&mut c, &long, 4).0, E::InvalidRequest.code());
}

#[test]
fn a_prepared_commit_is_resumed_by_the_next_coordinator_after_kill_9() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    // min.insync.replicas above the replication factor: the marker cannot
    // be written, so the transaction stays prepared (acks=1 data can be).
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("txn")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("min.insync.replicas"))
            .with_value(Some(s("2")))])]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
    let (_, pid, _) = init(&mut c, TXN, 4);
    assert_eq!(add_partitions(&mut c, 3, pid, 0, &[("txn", 0)]), [0]);
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(TXN))))
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(s("txn"))).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(transactional_batch(pid, 0, 0, &[b"x"]))),
        ])]);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(end_txn(&mut c, 4, pid, 0, true), 0);
    assert_eq!(describe(&mut c, TXN).transaction_state.as_str(), "PrepareCommit");
    assert_eq!(end_txn(&mut c, 4, pid, 0, true), E::ConcurrentTransactions.code());
    let dir = broker.kill9();

    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    let state = |c: &mut Client| describe(c, TXN).transaction_state.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&mut c) != "PrepareCommit" {
        assert!(Instant::now() < deadline, "the prepared commit was not loaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The resumed marker delivery finishes once the partition is gone.
    let del: DeleteTopicsResponse =
        c.call(ApiKey::DeleteTopics, 4, &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("txn"))]));
    assert_eq!(del.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&mut c) != "CompleteCommit" {
        assert!(Instant::now() < deadline, "the resumed commit never completed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
