"""A full disk: the partition being written answers KAFKA_STORAGE_ERROR, no
partial batch becomes visible, the broker keeps serving other partitions,
and writes work again once space is freed. The data directory is a 4 MiB
tmpfs, so this needs root (as CI and the dev machines have)."""

import os
import subprocess

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker
from helpers import consume_range, produce_all


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_gives_storage_error_and_other_partitions_keep_working(small_disk, tmp_path):
    broker = Broker(small_disk / "data", tmp_path / "broker.log").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name in ("keep", "fill"):
            admin.create_topics([NewTopic(name, 1, 1, config={"segment.bytes": str(1 << 20)})])[name].result(30)
        produce_all(broker.bootstrap, "keep", [(None, f"k{i}".encode(), None) for i in range(10)])

        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0, "linger.ms": 0})
        acked, errors = {}, []

        def on_delivery(err, msg):
            if err:
                errors.append(err.code())
            else:
                acked[msg.offset()] = msg.value()

        value = os.urandom(60_000)
        for i in range(200):  # 12 MB into a 4 MiB disk
            producer.produce("fill", value=value + i.to_bytes(4, "big"), on_delivery=on_delivery)
            producer.flush(30)
            if errors:
                break
        assert errors and errors[0] == KafkaError.KAFKA_STORAGE_ERROR, errors
        assert broker.proc.poll() is None, "the broker stays up"

        # Everything acknowledged is intact; nothing partial is visible.
        got = consume_range(broker.bootstrap, "fill", 0, 0, len(acked))
        assert {m.offset(): m.value() for m in got} == acked
        # Other partitions keep serving.
        assert [m.value() for m in consume_range(broker.bootstrap, "keep", 0, 0, 10)] == [
            f"k{i}".encode() for i in range(10)
        ]

        # Free space by deleting old segments: the full partition takes writes again.
        admin.delete_records([TopicPartition("fill", 0, len(acked))])
        ((_, offset),) = produce_all(broker.bootstrap, "fill", [(None, b"after", None)])
        assert offset == len(acked), "appends continue right after the last acknowledged record"
    finally:
        broker.stop()
