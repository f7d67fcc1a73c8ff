"""Idempotent producers (enable.idempotence=true, as the Java client and
kafka-python 3 default to): the broker is killed with SIGKILL mid-stream
and restarted on the same port and data; the producer retries what was in
flight. Every record must land exactly once, in order per key, and every
acknowledged record must be there."""

import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_ports
from helpers import consume_range

TOTAL = 100_000
PARTITIONS = 4


def test_idempotent_producer_across_kill_9_has_no_duplicates_and_no_gaps(tmp_path):
    (port,) = free_ports(1)
    listen = f"127.0.0.1:{port}"
    broker = Broker(tmp_path / "data", tmp_path / "broker.log", listen=listen).start()
    brokers = [broker]
    try:
        check_exactly_once(tmp_path, listen, broker, brokers)
    finally:
        for b in brokers:  # also when the test fails: no broker outlives it
            if b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()


def check_exactly_once(tmp_path, listen, broker, brokers):
    """Produces across a kill -9 of `broker`; appends the restarted broker to `brokers`."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("idem", PARTITIONS, 1)])["idem"].result(timeout=30)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.max.ms": 200,
        }
    )
    acked, failed = [], []

    def on_delivery(err, msg):
        (failed if err else acked).append((msg.key(), msg.value()))

    def produce_all():
        for i in range(TOTAL):
            while True:
                try:
                    producer.produce("idem", key=f"k{i % 97}".encode(), value=str(i).encode(), on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)

    sender = threading.Thread(target=produce_all, daemon=True)
    sender.start()
    deadline = time.time() + 60
    while len(acked) < TOTAL // 3 and time.time() < deadline:
        producer.poll(0.01)  # delivery callbacks run in poll()
    assert len(acked) >= TOTAL // 3, "the producer was running when the broker died"
    broker.kill9()  # mid-stream: batches are in flight
    time.sleep(1)
    restarted = Broker(broker.data_dir, tmp_path / "restart.log", listen=listen).start()
    brokers.append(restarted)
    sender.join()
    assert producer.flush(120) == 0, "every record is delivered after the restart"
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[0]}"
    assert len(acked) == TOTAL

    per_key = defaultdict(list)
    watermarks = Consumer({"bootstrap.servers": restarted.bootstrap, "group.id": "check"})
    for p in range(PARTITIONS):
        _, high = watermarks.get_watermark_offsets(TopicPartition("idem", p), timeout=10)
        for m in consume_range(restarted.bootstrap, "idem", p, 0, high):
            per_key[m.key()].append(int(m.value()))
    watermarks.close()
    seen = [v for values in per_key.values() for v in values]
    assert len(seen) == len(set(seen)), f"{len(seen) - len(set(seen))} duplicates"
    assert sorted(seen) == list(range(TOTAL)), "every record is there"
    for key, values in per_key.items():
        assert values == sorted(values), f"key {key!r} out of order"
    assert restarted.stop() == 0
