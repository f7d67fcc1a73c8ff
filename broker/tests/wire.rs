//! The real binary on the wire: API negotiation (KIP-511), bad input that
//! must close only the offending connection, Kafka error codes for bad
//! batches, pipelined produces answered in order, and long-poll fetches
//! that wake on append.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const ADVERTISED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
];

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

#[test]
fn api_versions_answers_every_version_and_kip511_downgrade() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    for version in 0..=4 {
        let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, version, &api_versions_request());
        assert_eq!(resp.error_code, 0, "v{version}");
        let mut got: Vec<_> = resp.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
        got.sort();
        let mut want: Vec<_> = ADVERTISED.iter().map(|(k, lo, hi)| (*k as i16, *lo, *hi)).collect();
        want.sort();
        assert_eq!(got, want, "v{version} advertises exactly what is handled");
    }
    // A version from the future: v0-format answer with UNSUPPORTED_VERSION and our ranges.
    c.send(ApiKey::ApiVersions, 4, &api_versions_request()); // warm up ordering
    let _ = c.recv::<ApiVersionsResponse>(4);
    let mut raw = Vec::new();
    raw.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&77i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    raw.push(0); // header tagged fields
    c.send_raw(&raw);
    let (correlation, resp) = c.recv::<ApiVersionsResponse>(0);
    assert_eq!(correlation, 77);
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(resp.api_keys.len(), ADVERTISED.len());
}

#[test]
fn api_versions_rejects_invalid_client_software_name() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    let bad = api_versions_request().with_client_software_name(StrBytes::from_static_str("bad name!"));
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &bad);
    assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
}

#[test]
fn bad_frames_close_only_their_connection() {
    let mut broker = Broker::start(&[]);
    let mut healthy = broker.connect();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", (200 * 1024 * 1024i32).to_be_bytes().to_vec()),
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        (
            "unknown api key",
            [&10i32.to_be_bytes()[..], &999i16.to_be_bytes(), &0i16.to_be_bytes(), &1i32.to_be_bytes(), &[0xff, 0xff]]
                .concat(),
        ),
        (
            "garbage body",
            [
                &12i32.to_be_bytes()[..],
                &3i16.to_be_bytes(),
                &9i16.to_be_bytes(),
                &[0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0x42, 0x42],
            ]
            .concat(),
        ),
        (
            "unsupported produce version",
            [&10i32.to_be_bytes()[..], &0i16.to_be_bytes(), &2i16.to_be_bytes(), &1i32.to_be_bytes(), &[0xff, 0xff]]
                .concat(),
        ),
        // Metadata v4 claiming 2^31-1 topics in a 4-byte body: must not allocate for them.
        (
            "forged array count",
            [
                &16i32.to_be_bytes()[..],
                &3i16.to_be_bytes(),
                &4i16.to_be_bytes(),
                &1i32.to_be_bytes(),
                &[0xff, 0xff],
                &i32::MAX.to_be_bytes(),
                &[0, 0],
            ]
            .concat(),
        ),
    ];
    // A truncated frame: the size promises more than ever arrives.
    cases.push(("truncated", [&100i32.to_be_bytes()[..], &[0, 18, 0, 3]].concat()));
    for (name, bytes) in cases {
        let mut c = broker.connect();
        use std::io::Write;
        c.stream.write_all(&bytes).unwrap();
        if name == "truncated" {
            c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(c.is_closed_by_peer(), "{name}: connection closed");
        assert!(broker.is_running(), "{name}: broker still up");
        let resp: ApiVersionsResponse = healthy.call(ApiKey::ApiVersions, 3, &api_versions_request());
        assert_eq!(resp.error_code, 0, "{name}: other connections unaffected");
    }
}

fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])])
}

fn create_topic(c: &mut common::Client, name: &str, configs: &[(&str, &str)]) {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn latest_offset(c: &mut common::Client, topic: &str) -> i64 {
    let req =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    resp.topics[0].partitions[0].offset
}

fn produce_error(c: &mut common::Client, topic: &str, records: Bytes) -> i16 {
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request(topic, records, -1));
    resp.responses[0].partition_responses[0].error_code
}

#[test]
fn bad_batches_get_kafka_errors_and_append_nothing() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "t", &[("max.message.bytes", "5000")]);

    let good = batch(&[b"a", b"b"]);
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(produce_error(&mut c, "t", flipped.into()), ResponseError::CorruptMessage.code());

    let mut legacy = good.to_vec();
    legacy[16] = 1; // magic 1
    assert_eq!(produce_error(&mut c, "t", legacy.into()), ResponseError::InvalidRecord.code());
    assert_eq!(produce_error(&mut c, "t", good.slice(..30)), ResponseError::InvalidRecord.code());
    let big = vec![7u8; 6000];
    assert_eq!(produce_error(&mut c, "t", batch(&[&big])), ResponseError::MessageTooLarge.code());
    assert_eq!(produce_error(&mut c, "nope", good.clone()), ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(latest_offset(&mut c, "t"), 0, "nothing was appended");

    let resp: ProduceResponse = c.call(ApiKey::Produce, 3, &produce_request("t", good.clone(), 7));
    assert_eq!(resp.responses[0].partition_responses[0].error_code, ResponseError::InvalidRequiredAcks.code());

    assert_eq!(produce_error(&mut c, "t", good), 0);
    assert_eq!(latest_offset(&mut c, "t"), 2);
}

#[test]
fn acks_zero_gets_no_response_but_is_appended() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "z", &[]);
    c.send(ApiKey::Produce, 9, &produce_request("z", batch(&[b"x"]), 0));
    // The next answer on this connection belongs to the next request.
    let sent = c.send(ApiKey::ApiVersions, 3, &api_versions_request());
    let (got, _) = c.recv::<ApiVersionsResponse>(3);
    assert_eq!(got, sent);
    assert_eq!(latest_offset(&mut c, "z"), 1);
}

#[test]
fn pipelined_produces_append_and_answer_in_request_order() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "p", &[]);
    // 50 produces (and a Metadata request among them) sent before reading
    // any answer, as librdkafka pipelines them.
    let mut sent = Vec::new();
    for i in 0..50u8 {
        if i == 25 {
            sent.push((c.send(ApiKey::Metadata, 12, &MetadataRequest::default()), None));
        }
        let records = batch(&[&[i], &[i]]);
        sent.push((c.send(ApiKey::Produce, 9, &produce_request("p", records, -1)), Some(i64::from(i) * 2)));
    }
    for (correlation_id, base_offset) in sent {
        match base_offset {
            None => {
                let (got, _) = c.recv::<MetadataResponse>(12);
                assert_eq!(got, correlation_id);
            }
            Some(offset) => {
                let (got, resp) = c.recv::<ProduceResponse>(9);
                assert_eq!(got, correlation_id, "answers come in request order");
                let partition = &resp.responses[0].partition_responses[0];
                assert_eq!((partition.error_code, partition.base_offset), (0, offset), "appended in request order");
            }
        }
    }
    assert_eq!(latest_offset(&mut c, "p"), 100);
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ])])
}

#[test]
fn fetch_long_poll_wakes_on_append() {
    let broker = Broker::start(&[]);
    let mut setup = broker.connect();
    create_topic(&mut setup, "lp", &[]);
    let mut consumer = broker.connect();
    let started = Instant::now();
    consumer.send(ApiKey::Fetch, 12, &fetch_request("lp", 0, 10_000));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(produce_error(&mut setup, "lp", batch(&[b"wake"])), 0);
    let (_, resp) = consumer.recv::<FetchResponse>(12);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke on append after {waited:?}, not at max_wait");
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
    assert!(!p.records.as_ref().unwrap().is_empty());

    // Nothing to wait for: an empty answer after max_wait.
    let started = Instant::now();
    let resp: FetchResponse = consumer.call(ApiKey::Fetch, 12, &fetch_request("lp", 1, 300));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(resp.responses[0].partitions[0].records.as_ref().unwrap().is_empty());

    let resp: FetchResponse = consumer.call(ApiKey::Fetch, 12, &fetch_request("lp", 5, 300));
    assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
}

/// A fetch with a broker's replica id from a broker that is not a replica
/// reads nothing (before, it read up to the log end, past the HW): Kafka
/// answers UNKNOWN_LEADER_EPOCH when the fetch names the leader epoch and
/// NOT_LEADER_OR_FOLLOWER when it does not.
#[test]
fn a_fetch_from_a_broker_that_is_no_replica_reads_nothing() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "nr", &[]);
    assert_eq!(produce_error(&mut c, "nr", batch(&[b"a", b"b"])), 0);
    for (leader_epoch, expected) in [(0, ResponseError::UnknownLeaderEpoch), (-1, ResponseError::NotLeaderOrFollower)] {
        let mut req = fetch_request("nr", 0, 0).with_replica_id(BrokerId(7));
        req.topics[0].partitions[0].current_leader_epoch = leader_epoch;
        let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, expected.code(), "leader epoch {leader_epoch}");
        assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("nr", 0, 0));
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "consumers still read");
}

#[test]
fn metadata_auto_creates_only_when_enabled_and_names_are_valid() {
    let broker = Broker::start(&["--auto-create-topics", "false"]);
    let mut c = broker.connect();
    let ask = |names: &[&str]| {
        MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(
            names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect(),
        ))
    };
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &ask(&["missing", "bad name"]));
    assert_eq!(resp.topics[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(resp.topics[1].error_code, ResponseError::InvalidTopicException.code());
    drop(broker);

    let broker = Broker::start(&["--num-partitions", "3"]);
    let mut c = broker.connect();
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &ask(&["fresh"]));
    let t = &resp.topics[0];
    assert_eq!((t.error_code, t.partitions.len()), (0, 3));
    assert!(!t.topic_id.is_nil());
    // v0: an empty list means every topic.
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 0, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(resp.topics.len(), 1);
    // By topic id (v10+).
    let by_id = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(None).with_topic_id(t.topic_id)]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &by_id);
    assert_eq!(resp.topics[0].name.as_ref().map(|n| n.as_str()), Some("fresh"));
}

#[test]
fn sigterm_exits_zero_and_data_survives_restart() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "keep", &[]);
    assert_eq!(produce_error(&mut c, "keep", batch(&[b"1", b"2", b"3"])), 0);
    let (code, dir) = broker.terminate();
    assert_eq!(code, 0);
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    assert_eq!(latest_offset(&mut c, "keep"), 3);
}

#[test]
fn create_topics_refuses_absurd_partition_counts() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("huge"))
        .with_num_partitions(i32::MAX)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, ResponseError::InvalidPartitions.code());
    assert!(std::fs::read_dir(broker.data_dir()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("huge")));
}

fn epoch_end(c: &mut common::Client, topic: &str, current: i32, requested: i32) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
            OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(requested),
        ]),
    ]);
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[test]
fn offset_for_leader_epoch_answers_where_each_epoch_ends() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "epochs", &[]);
    assert_eq!(produce_error(&mut c, "epochs", batch(&[b"1", b"2", b"3"])), 0);
    assert_eq!(epoch_end(&mut c, "epochs", 0, 0), (0, 0, 3));
    // A restarted leader leads in a new epoch.
    let (_, dir) = broker.terminate();
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("epochs")))])),
    );
    assert_eq!(md.topics[0].partitions[0].leader_epoch, 1);
    assert_eq!(produce_error(&mut c, "epochs", batch(&[b"4", b"5"])), 0);
    assert_eq!(epoch_end(&mut c, "epochs", 1, 0), (0, 0, 3), "epoch 0 ends where epoch 1 began");
    assert_eq!(epoch_end(&mut c, "epochs", -1, 1), (0, 1, 5), "the current epoch ends at the log end");
    assert_eq!(epoch_end(&mut c, "epochs", 1, 7), (0, -1, -1), "an epoch from the future is unknown");
    assert_eq!(epoch_end(&mut c, "epochs", 0, 0).0, ResponseError::FencedLeaderEpoch.code());
    assert_eq!(epoch_end(&mut c, "epochs", 2, 0).0, ResponseError::UnknownLeaderEpoch.code());
    assert_eq!(epoch_end(&mut c, "nope", -1, 0).0, ResponseError::UnknownTopicOrPartition.code());
}
