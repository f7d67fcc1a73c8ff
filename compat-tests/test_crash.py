"""Durability: every record acknowledged with acks=all survives kill -9 of
the broker mid-stream and a restart on the same data directory, at the
offset it was acknowledged with — on one shard and on several shards with
many partitions. Also: SIGTERM stops cleanly with exit 0."""

import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker
from helpers import consume_range, produce_all


@pytest.mark.parametrize("shards,partitions", [(1, 1), (4, 16)])
def test_acked_records_survive_kill_9_at_their_offsets(tmp_path, shards, partitions):
    broker = Broker(tmp_path / "data", tmp_path / "broker.log", ["--shards", str(shards)]).start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("durable", partitions, 1)])["durable"].result(timeout=30)
    acked = {}  # (partition, offset) -> value
    stop = threading.Event()
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 5000,
            "retries": 0,
        }
    )

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    def produce_forever():
        i = 0
        while not stop.is_set():
            try:
                producer.produce(
                    "durable", value=f"record-{i}".encode(), partition=i % partitions, on_delivery=on_delivery
                )
                i += 1
            except BufferError:
                pass
            producer.poll(0)

    t = threading.Thread(target=produce_forever)
    t.start()
    deadline = time.time() + 60
    while len(acked) < 20_000 and time.time() < deadline:
        time.sleep(0.01)
    broker.kill9()  # mid-stream: the producer is still sending
    time.sleep(0.5)
    stop.set()
    t.join()
    producer.flush(30)  # remaining sends fail against the dead broker
    assert len(acked) >= 20_000, "the producer was running when the broker died"

    restarted = Broker(broker.data_dir, tmp_path / "restart.log", ["--shards", str(shards)]).start()
    try:
        for partition in range(partitions):
            mine = {o: v for (p, o), v in acked.items() if p == partition}
            last = max(mine)
            got = consume_range(restarted.bootstrap, "durable", partition, 0, last + 1)
            stored = {m.offset(): m.value() for m in got}
            lost = [o for o in mine if stored.get(o) != mine[o]]
            assert not lost, f"partition {partition}: {len(lost)} acknowledged records lost or changed, e.g. {lost[0]}"
            assert [m.offset() for m in got] == list(range(last + 1)), "offsets are dense and in order"
        # New writes continue after the recovered end.
        ((partition, offset),) = produce_all(restarted.bootstrap, "durable", [(None, b"after", None)])
        assert offset > max(o for (p, o) in acked if p == partition)
    finally:
        restarted.stop()


def test_sigterm_exits_zero_and_keeps_data(broker, tmp_path):
    produce_all(broker.bootstrap, "graceful", [(None, f"g{i}".encode(), None) for i in range(1000)])
    assert broker.stop() == 0
    assert "sluice broker stopped" in broker.log()
    again = Broker(broker.data_dir, tmp_path / "again.log").start()
    try:
        got = consume_range(again.bootstrap, "graceful", 0, 0, 1000)
        assert [m.value() for m in got] == [f"g{i}".encode() for i in range(1000)]
    finally:
        again.stop()
