//! Idempotent producers on the wire: producer ids from InitProducerId never
//! repeat (also across restarts), a retried batch is answered with its
//! original offsets and not written again, gaps and stale epochs get
//! Kafka's errors, and all of it survives a crash and restart.

mod common;

use bytes::Bytes;
use common::{producer_batch, transactional_batch, Broker, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn init_producer_id(c: &mut Client, transactional_id: Option<&str>) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

fn create_topic(c: &mut Client, name: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

/// Produces with acks=all; returns (error code, base offset).
fn produce(c: &mut Client, records: Bytes) -> (i16, i64) {
    let req =
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("idem")))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn describe_producers(c: &mut Client, topic: &str) -> (i16, Vec<(i64, i32, i32)>) {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partition_indexes(vec![0])]);
    let resp: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.active_producers.iter().map(|s| (s.producer_id.0, s.producer_epoch, s.last_sequence)).collect())
}

#[test]
fn producer_ids_are_never_handed_out_twice() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    let (e1, first, epoch) = init_producer_id(&mut c, None);
    let (e2, second, _) = init_producer_id(&mut c, None);
    assert_eq!((e1, e2, epoch), (0, 0, 0));
    assert_ne!(first, second);
    // Across block boundaries (1000 ids each; the next one is prefetched).
    let mut ids: Vec<i64> = (0..2100).map(|_| init_producer_id(&mut c, None).1).collect();
    ids.extend([first, second]);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2102, "no id handed out twice");
    let dir = broker.kill9();
    let broker = Broker::start_in(dir, &[]);
    let (_, after_restart, _) = init_producer_id(&mut broker.connect(), None);
    assert!(after_restart != first && after_restart != second, "ids repeat after a restart");
}

#[test]
fn retries_gaps_and_stale_epochs_as_kafka_answers_them() {
    let broker = Broker::start(&[]);
    let mut c = broker.connect();
    create_topic(&mut c, "idem");
    let (_, pid, _) = init_producer_id(&mut c, None);
    assert_eq!(produce(&mut c, producer_batch(pid, 0, 0, &[b"a", b"b"])), (0, 0));
    // A retry of the same batch: its original offset, nothing appended.
    assert_eq!(produce(&mut c, producer_batch(pid, 0, 0, &[b"a", b"b"])), (0, 0));
    assert_eq!(produce(&mut c, producer_batch(pid, 0, 5, &[b"c"])).0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(produce(&mut c, producer_batch(pid, 0, 2, &[b"c"])), (0, 2));
    // A new epoch starts again at sequence 0; the old epoch is fenced.
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 3, &[b"d"])).0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 0, &[b"d"])), (0, 3));
    assert_eq!(produce(&mut c, producer_batch(pid, 0, 3, &[b"e"])).0, ResponseError::InvalidProducerEpoch.code());
    // A producer id without a sequence is malformed, as Kafka's LogValidator says.
    assert_eq!(produce(&mut c, producer_batch(pid, 1, -1, &[b"x"])).0, ResponseError::InvalidRecord.code());
    // A transactional batch outside any transaction (no transactional id) is refused.
    assert_eq!(produce(&mut c, transactional_batch(pid, 1, 1, &[b"t"])).0, ResponseError::InvalidTxnState.code());
    // A producer the partition never saw may start anywhere (Kafka 2.5+).
    assert_eq!(produce(&mut c, producer_batch(pid + 1, 0, 7, &[b"f"])), (0, 4));

    let (error, producers) = describe_producers(&mut c, "idem");
    assert_eq!(error, 0);
    assert_eq!(producers, vec![(pid, 1, 0), (pid + 1, 0, 7)], "(id, epoch, last sequence) per producer");
    assert_eq!(describe_producers(&mut c, "nope").0, ResponseError::UnknownTopicOrPartition.code());

    // After a crash the state is rebuilt from the log: the last batch is
    // still recognised, the next sequence still expected.
    let dir = broker.kill9();
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 0, &[b"d"])), (0, 3));
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 2, &[b"g"])).0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 1, &[b"g"])), (0, 5));

    // And after a clean stop, from the snapshot written at shutdown.
    let (code, dir) = broker.terminate();
    assert_eq!(code, 0);
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.connect();
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 1, &[b"g"])), (0, 5));
    assert_eq!(produce(&mut c, producer_batch(pid, 1, 2, &[b"h"])), (0, 6));
}
