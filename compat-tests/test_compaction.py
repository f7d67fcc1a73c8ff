"""Compacted topics with confluent-kafka (librdkafka 2.1x): 100k records
over 1k keys with tombstones, cleaned while a producer writes and a
consumer reads; afterwards one record per live key, the latest, at its
original offset; tombstones gone after delete.retention.ms; aborted
transactions removed and committed ones kept; keyless records refused."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import Broker
from helpers import produce_all

COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": str(1024 * 1024),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3000",
}


@pytest.fixture
def cleaner_broker(tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "broker.log", ["--log-cleaner-backoff-ms", "300"]).start()
    yield b
    if b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()


def create(bootstrap, topic, **configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (f,) = admin.create_topics([NewTopic(topic, 1, 1, config={**COMPACTED, **configs})]).values()
    f.result(timeout=30)


def close_active_segment(bootstrap, topic):
    """Rolls the active segment (segment.ms, then one more record) so all
    earlier records lie in closed, cleanable segments."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("segment.ms", "100", incremental_operation=AlterConfigOpType.SET)
    (f,) = admin.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])]).values()
    f.result(timeout=30)
    time.sleep(0.3)
    produce_all(bootstrap, topic, [(b"roll", b"roll", None)], **{"linger.ms": 0})


def read_partition(bootstrap, topic, isolation="read_uncommitted", timeout=60):
    """Every record now in partition 0, as (offset, key, value)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(msg.error())
            out.append((msg.offset(), msg.key(), msg.value()))
        raise AssertionError("did not reach the end of the partition")
    finally:
        c.close()


def one_record_per_key(bootstrap, topic, timeout=60):
    """The partition's records once the cleaner has reached every closed
    segment (no key twice), or as they are when `timeout` passes."""
    deadline = time.time() + timeout
    while True:
        records = read_partition(bootstrap, topic)
        keys = [k for _, k, _ in records]
        if len(keys) == len(set(keys)) or time.time() > deadline:
            return records
        time.sleep(0.5)


def check_consistent(records):
    """A consistent log: offsets increase, and each key's values appear in
    the order they were written (values are 'key:sequence')."""
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets strictly increase"
    last_seq = {}
    for offset, key, value in records:
        if value is None or key == b"roll":
            continue
        seq = int(value.split(b":")[1])
        assert seq > last_seq.get(key, -1), f"{key} at {offset} goes back in time"
        last_seq[key] = seq


def test_a_compacted_topic_keeps_the_latest_value_per_key_under_concurrent_produce_and_fetch(cleaner_broker):
    bootstrap = cleaner_broker.bootstrap
    create(bootstrap, "changelog")
    latest = {}
    written = []
    for i in range(100_000):
        key = f"k{i % 1000}".encode()
        latest[key] = f"{key.decode()}:{i}".encode()
        written.append((key, latest[key], None))
    for k in range(100):
        key = f"k{k}".encode()
        latest[key] = None
        written.append((key, None, None))

    reads = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            reads.append(read_partition(bootstrap, "changelog"))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for start in range(0, len(written), 20_000):
            produce_all(bootstrap, "changelog", written[start : start + 20_000], **{"linger.ms": 20})
        close_active_segment(bootstrap, "changelog")
        final = one_record_per_key(bootstrap, "changelog")
    finally:
        done.set()
        t.join()

    assert len(reads) >= 2, "a consumer read the topic while it was written and cleaned"
    for r in reads:
        check_consistent(r)
    assert "compacted" in cleaner_broker.log()
    check_consistent(final)
    by_key = {k: v for _, k, v in final}
    assert len(final) == len(by_key), "one record per key"
    live = {k: v for k, v in latest.items() if v is not None}
    assert {k: v for k, v in by_key.items() if v is not None and k != b"roll"} == live
    assert final[-1][1] == b"roll"

    # Tombstones are served for delete.retention.ms (3 s) after cleaning, then go.
    deadline = time.time() + 30
    while time.time() < deadline:
        final = read_partition(bootstrap, "changelog")
        if not any(v is None for _, _, v in final):
            break
        time.sleep(0.5)
    assert not any(v is None for _, _, v in final), "tombstones removed after delete.retention.ms"
    assert {k: v for _, k, v in final if k != b"roll"} == live


def test_compaction_drops_aborted_transactions_and_keeps_committed_ones(cleaner_broker):
    bootstrap = cleaner_broker.bootstrap
    create(bootstrap, "txn-changelog")
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compacting", "linger.ms": 5})
    p.init_transactions(30)
    expected = {}
    for round in range(20):
        p.begin_transaction()
        for k in range(50):
            p.produce("txn-changelog", key=f"k{k}".encode(), value=f"k{k}:{round}".encode())
        if round % 3 == 2:
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
            expected.update({f"k{k}".encode(): f"k{k}:{round}".encode() for k in range(50)})
    close_active_segment(bootstrap, "txn-changelog")
    uncommitted = one_record_per_key(bootstrap, "txn-changelog")
    # Aborted records are gone even for read_uncommitted; committed ones stay, latest per key.
    assert {k: v for _, k, v in uncommitted if k != b"roll"} == expected
    committed = read_partition(bootstrap, "txn-changelog", "read_committed")
    assert {k: v for _, k, v in committed if k != b"roll"} == expected


def test_a_keyless_record_is_refused_by_a_compacted_topic(cleaner_broker):
    create(cleaner_broker.bootstrap, "keyed-only")
    p = Producer({"bootstrap.servers": cleaner_broker.bootstrap, "linger.ms": 0, "retries": 0})
    errors = []
    p.produce("keyed-only", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD
    produce_all(cleaner_broker.bootstrap, "keyed-only", [(b"k", b"v", None)], **{"linger.ms": 0})


def test_compacted_consumer_offsets_replay_to_the_last_commit_after_kill_9(cleaner_broker, tmp_path):
    bootstrap = cleaner_broker.bootstrap
    produce_all(bootstrap, "tracked", [(None, b"x", None)] * 10, **{"linger.ms": 0})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "committer", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("tracked", 0, 1)], asynchronous=False)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "__consumer_offsets",
        incremental_configs=[
            ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("segment.ms", "200", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    (f,) = admin.incremental_alter_configs([resource]).values()
    f.result(timeout=30)
    for i in range(2, 3000):
        c.commit(offsets=[TopicPartition("tracked", 0, i)], asynchronous=False)
        if i % 1000 == 0:
            time.sleep(0.3)  # let a segment roll (segment.ms)
    time.sleep(0.3)
    c.commit(offsets=[TopicPartition("tracked", 0, 3000)], asynchronous=False)
    c.close()
    deadline = time.time() + 30
    while "compacted topic=__consumer_offsets" not in cleaner_broker.log() and time.time() < deadline:
        time.sleep(0.3)
    assert "compacted topic=__consumer_offsets" in cleaner_broker.log()

    cleaner_broker.kill9()
    again = Broker(cleaner_broker.data_dir, tmp_path / "again.log", ["--log-cleaner-backoff-ms", "300"]).start()
    try:
        c = Consumer({"bootstrap.servers": again.bootstrap, "group.id": "committer"})
        (tp,) = c.committed([TopicPartition("tracked", 0)], timeout=30)
        c.close()
        assert tp.offset == 3000, "the latest commit survives compaction and replay"
    finally:
        again.stop()
