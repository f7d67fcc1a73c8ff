"""confluent-kafka (librdkafka 2.1x) against a live broker: bulk produce in
every codec with acks=all and read back by assign/seek; admin calls; record
shapes; offsets by time."""

import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import consume_range, produce_all

N = 100_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_100k_records_acks_all_round_trip_in_each_codec(broker, codec):
    topic = f"bulk-{codec}"
    records = [(f"k{i}".encode(), f"value-{codec}-{i}".encode() * 3, None) for i in range(N)]
    reports = produce_all(broker.bootstrap, topic, records, **{"compression.type": codec, "batch.num.messages": 2000})
    assert [offset for _, offset in reports] == list(range(N)), "offsets are assigned in send order"

    got = consume_range(broker.bootstrap, topic, 0, 0, N)
    assert [m.offset() for m in got] == list(range(N))
    for (key, value, _), m in zip(records, got):
        assert (m.key(), m.value()) == (key, value)


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def wait_all(futures):
    return {name: f.result(timeout=30) for name, f in futures.items()}


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(timeout=30)
    return e.value.args[0].code()


def test_headers_null_key_null_value_and_a_1mib_value_round_trip(broker):
    a = admin(broker)  # keep the client alive until its futures resolve
    wait_all(a.create_topics([NewTopic("shapes", 1, 1, config={"max.message.bytes": str(2 << 20)})]))
    big = bytes(range(256)) * 4096  # 1 MiB
    records = [
        (b"k", b"v", [("h1", b"one"), ("h2", None), ("h1", b"again")]),
        (None, b"no key", None),
        (b"tombstone", None, None),
        (b"big", big, [("size", b"1MiB")]),
    ]
    produce_all(broker.bootstrap, "shapes", records, **{"message.max.bytes": 3 << 20})
    got = consume_range(broker.bootstrap, "shapes", 0, 0, len(records))
    assert got[0].headers() == [("h1", b"one"), ("h2", None), ("h1", b"again")]
    assert (got[1].key(), got[1].value()) == (None, b"no key")
    assert (got[2].key(), got[2].value()) == (b"tombstone", None)
    assert got[3].value() == big and got[3].headers() == [("size", b"1MiB")]


def test_oversized_batch_is_refused_with_message_too_large(broker):
    from confluent_kafka import Producer

    a = admin(broker)
    wait_all(a.create_topics([NewTopic("small", 1, 1, config={"max.message.bytes": "2000"})]))
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 1 << 20})
    errors = []
    p.produce("small", value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_create_and_delete_topics_with_kafka_errors(broker):
    a = admin(broker)
    assert error_of(a.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"]) == KafkaError.TOPIC_EXCEPTION
    assert error_of(a.create_topics([NewTopic("p0", 0, 1)])["p0"]) == KafkaError.INVALID_PARTITIONS
    assert error_of(a.create_topics([NewTopic("rf3", 1, 3)])["rf3"]) == KafkaError.INVALID_REPLICATION_FACTOR
    bad_config = NewTopic("cfg", 1, 1, config={"retention.ms": "soon"})
    assert error_of(a.create_topics([bad_config])["cfg"]) == KafkaError.INVALID_CONFIG
    unknown_config = NewTopic("cfg2", 1, 1, config={"no.such.setting": "1"})
    assert error_of(a.create_topics([unknown_config])["cfg2"]) == KafkaError.INVALID_CONFIG

    wait_all(a.create_topics([NewTopic("dry", 3, 1)], validate_only=True))
    assert "dry" not in a.list_topics(timeout=10).topics, "validate_only creates nothing"

    wait_all(a.create_topics([NewTopic("real", 3, 1, config={"cleanup.policy": "compact"})]))
    md = a.list_topics(timeout=10)
    assert sorted(md.topics["real"].partitions) == [0, 1, 2]
    assert error_of(a.create_topics([NewTopic("real", 1, 1)])["real"]) == KafkaError.TOPIC_ALREADY_EXISTS

    wait_all(a.delete_topics(["real"]))
    assert "real" not in a.list_topics(timeout=10).topics
    assert error_of(a.delete_topics(["real"])["real"]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_watermarks_and_offsets_for_times(broker):
    from confluent_kafka import Consumer

    base = int(time.time() * 1000) - 100_000
    records = [(None, f"r{i}".encode(), None) for i in range(10)]
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for i, (k, v, _) in enumerate(records):
        p.produce("times", value=v, timestamp=base + i * 1000)
        p.flush(10)  # one batch per record, so lookups land inside batches too
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition("times", 0), timeout=10) == (0, 10)
        found = c.offsets_for_times([TopicPartition("times", 0, base + 4500)], timeout=10)
        assert found[0].offset == 5
        found = c.offsets_for_times([TopicPartition("times", 0, base + 999_999)], timeout=10)
        assert found[0].offset == -1, "no record that late: end of log"
    finally:
        c.close()


def test_log_append_time_topic_stamps_records_with_broker_time(broker):
    a = admin(broker)
    wait_all(a.create_topics([NewTopic("lat", 1, 1, config={"message.timestamp.type": "LogAppendTime"})]))
    before = int(time.time() * 1000)
    produce_all(broker.bootstrap, "lat", [(None, b"x", None)], **{"linger.ms": 0})
    (msg,) = consume_range(broker.bootstrap, "lat", 0, 0, 1)
    kind, ts = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= int(time.time() * 1000) + 1000
