"""Transactions with confluent-kafka (librdkafka 2.x): commit and abort
visibility for read_committed and read_uncommitted consumers, an open
transaction holding read_committed consumers at the last stable offset,
fencing of a zombie producer, the coordinator aborting an abandoned
transaction at its timeout, and a consume-transform-produce loop with
send_offsets_to_transaction that crashes mid-transaction and resumes."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(bootstrap, *topics, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        f.result(timeout=30)


def txn_producer(bootstrap, txn_id, **config):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **config})
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, isolation, partitions=1, idle=3.0, timeout=30):
    """Every message readable now under `isolation`, as (key, value), read by
    assign() until `idle` seconds pass without one."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last, start = [], time.time(), time.time()
    try:
        while time.time() - last < idle and time.time() - start < timeout:
            for m in c.consume(1000, 0.2):
                if m.error():
                    raise KafkaException(m.error())
                out.append((m.key(), m.value()))
                last = time.time()
    finally:
        c.close()
    return out


def end_offsets(bootstrap, topic, isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def test_committed_records_are_visible_only_after_commit_and_aborted_ones_never(broker):
    create(broker.bootstrap, "tx")
    p = txn_producer(broker.bootstrap, "tx-vis")
    p.begin_transaction()
    for i in range(10):
        p.produce("tx", key=b"c", value=str(i).encode())
    p.flush(30)
    # Written but undecided: held back at the last stable offset.
    assert read_all(broker.bootstrap, "tx", "read_committed", idle=1.5) == []
    assert len(read_all(broker.bootstrap, "tx", "read_uncommitted", idle=1.5)) == 10
    assert end_offsets(broker.bootstrap, "tx", "read_committed") == 0
    p.commit_transaction(30)

    p.begin_transaction()
    for i in range(5):
        p.produce("tx", key=b"a", value=str(i).encode())
    p.flush(30)  # in the log before the abort (abort_transaction purges what was not sent)
    p.abort_transaction(30)

    p.begin_transaction()
    p.produce("tx", key=b"c", value=b"after")
    p.commit_transaction(30)

    committed = read_all(broker.bootstrap, "tx", "read_committed")
    assert committed == [(b"c", str(i).encode()) for i in range(10)] + [(b"c", b"after")]
    # read_uncommitted sees the aborted records too; control records never.
    uncommitted = read_all(broker.bootstrap, "tx", "read_uncommitted")
    assert len(uncommitted) == 16 and (b"a", b"0") in uncommitted
    # 10 + 5 + 1 records and three markers.
    assert end_offsets(broker.bootstrap, "tx", "read_committed") == 19
    assert end_offsets(broker.bootstrap, "tx", "read_uncommitted") == 19


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker):
    create(broker.bootstrap, "fence")
    zombie = txn_producer(broker.bootstrap, "tx-fence")
    zombie.begin_transaction()
    zombie.produce("fence", value=b"zombie")
    zombie.flush(30)

    successor = txn_producer(broker.bootstrap, "tx-fence")  # aborts the zombie's transaction
    successor.begin_transaction()
    successor.produce("fence", value=b"successor")
    successor.commit_transaction(30)

    with pytest.raises(KafkaException) as fenced:
        zombie.produce("fence", value=b"late")
        zombie.commit_transaction(30)
    assert fenced.value.args[0].code() == KafkaError._FENCED, fenced.value
    assert read_all(broker.bootstrap, "fence", "read_committed") == [(None, b"successor")]


def test_an_abandoned_transaction_is_aborted_at_its_timeout(broker):
    create(broker.bootstrap, "abandon")
    p = txn_producer(broker.bootstrap, "tx-abandon", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce("abandon", value=b"never")
    p.flush(30)
    del p  # never commits: the coordinator must abort it

    after = txn_producer(broker.bootstrap, "tx-other")
    after.begin_transaction()
    after.produce("abandon", value=b"later")
    after.commit_transaction(30)
    deadline = time.time() + 20
    while time.time() < deadline and end_offsets(broker.bootstrap, "abandon", "read_committed") < 4:
        time.sleep(0.5)
    # The abort marker let the last stable offset move past both transactions.
    assert end_offsets(broker.bootstrap, "abandon", "read_committed") == 4
    assert read_all(broker.bootstrap, "abandon", "read_committed") == [(None, b"later")]


TRANSFORM = Path(__file__).with_name("txn_transform.py")


def test_consume_transform_produce_crashing_mid_transaction_outputs_each_input_once(broker):
    create(broker.bootstrap, "input", "output", partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(2000):
        producer.produce("input", key=str(i).encode(), value=str(i).encode(), partition=i % 2)
    assert producer.flush(30) == 0
    # First run: killed with SIGKILL part-way (in the middle of a transaction).
    first = subprocess.Popen([sys.executable, str(TRANSFORM), broker.bootstrap, "crash-after-300"])
    assert first.wait(timeout=120) == -9
    # Second run with the same transactional id: fences the dead one, aborts
    # its open transaction, resumes from the committed offsets.
    second = subprocess.run([sys.executable, str(TRANSFORM), broker.bootstrap, "until-idle"], timeout=180)
    assert second.returncode == 0
    out = read_all(broker.bootstrap, "output", "read_committed", partitions=2)
    values = sorted(int(v) for _, v in out)
    assert values == [i * 10 for i in range(2000)], f"{len(values)} outputs, {len(set(values))} distinct"
