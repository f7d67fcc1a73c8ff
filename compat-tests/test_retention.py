"""Segment lifecycle seen from a client: DeleteRecords moves the low
watermark (and consumers below it are reset), retention.ms removes whole
old segments rolled by segment.ms, and both survive a restart."""

import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker
from helpers import consume_range, produce_all


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_delete_records_moves_the_low_watermark(broker, tmp_path):
    produce_all(broker.bootstrap, "dr", [(None, f"r{i}".encode(), None) for i in range(100)], **{"linger.ms": 0})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (result,) = admin.delete_records([TopicPartition("dr", 0, 40)]).values()
    assert result.result(timeout=30).low_watermark == 40
    assert watermarks(broker.bootstrap, "dr") == (40, 100)
    # A consumer positioned below the log start is reset (auto.offset.reset).
    got = consume_range(broker.bootstrap, "dr", 0, 10, 60, **{"auto.offset.reset": "earliest"})
    assert [m.offset() for m in got] == list(range(40, 100))

    assert broker.stop() == 0
    again = Broker(broker.data_dir, tmp_path / "again.log").start()
    try:
        assert watermarks(again.bootstrap, "dr") == (40, 100), "the low watermark survives restart"
    finally:
        again.stop()


def test_retention_ms_deletes_old_segments(tmp_path):
    broker = Broker(tmp_path / "data", tmp_path / "broker.log", ["--retention-check-interval-ms", "200"]).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        config = {"segment.ms": "100", "retention.ms": "1500"}
        admin.create_topics([NewTopic("aging", 1, 1, config=config)])["aging"].result(timeout=30)
        produce_all(broker.bootstrap, "aging", [(None, b"old", None)] * 10)
        time.sleep(2)  # older than retention.ms, and the segment is older than segment.ms
        produce_all(broker.bootstrap, "aging", [(None, b"new", None)] * 5)  # rolls a new segment
        deadline = time.time() + 10
        while time.time() < deadline and watermarks(broker.bootstrap, "aging")[0] == 0:
            time.sleep(0.2)
        assert watermarks(broker.bootstrap, "aging") == (10, 15)
        got = consume_range(broker.bootstrap, "aging", 0, 10, 5)
        assert [m.value() for m in got] == [b"new"] * 5
    finally:
        broker.stop()
