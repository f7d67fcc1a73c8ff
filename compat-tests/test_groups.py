"""Consumer groups with real clients: partitions spread over members and
move when a member leaves or dies; committed records are never consumed
again and none is skipped; static members come back without a rebalance;
kafka-python and kafkajs groups; committed offsets survive broker restarts."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker

HERE = Path(__file__).resolve().parent


class Journal:
    """Every member's consumption and commits, in the order they arrived."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []  # (kind, (partition, offset))

    def add(self, kind, records):
        with self.lock:
            self.events.extend((kind, tuple(r)) for r in records)

    def consumed(self):
        with self.lock:
            return {r for kind, r in self.events if kind == "consumed"}

    def consumed_after_commit(self):
        """Records consumed again after a commit covering them succeeded."""
        committed, redone = set(), set()
        with self.lock:
            for kind, r in self.events:
                if kind == "committed":
                    committed.add(r)
                elif r in committed:
                    redone.add(r)
        return redone


class Member:
    """A group member process and what it reported."""

    def __init__(self, broker, topic, group, strategy, instance=None, journal=None):
        args = [sys.executable, str(HERE / "group_member.py"), broker.bootstrap, topic, group, strategy]
        self.proc = subprocess.Popen(args + ([instance] if instance else []), stdout=subprocess.PIPE, text=True)
        self.assignments = []  # every assignment it reported, in order
        self.journal = journal or Journal()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                if "assigned" in event:
                    self.assignments.append(event["assigned"])
            for kind in ("consumed", "committed"):
                if kind in event:
                    self.journal.add(kind, event[kind])

    def assigned(self):
        with self.lock:
            return self.assignments[-1] if self.assignments else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def create_topic(broker, name, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # alive until the future resolves
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def produce(broker, topic, start, count, partitions):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(start, start + count):
        p.produce(topic, value=str(i).encode(), partition=i % partitions)
    p.flush(30)


def end_offsets(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


@pytest.fixture
def group_broker(tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "broker.log", ["--group-initial-rebalance-delay-ms", "0"]).start()
    yield b
    if b.proc.poll() is None:
        b.stop()


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_partitions_move_on_leave_and_death_and_nothing_is_lost_or_redone(group_broker, strategy):
    broker, topic, group = group_broker, f"grp-{strategy}", f"g-{strategy}"
    create_topic(broker, topic, 6)
    produce(broker, topic, 0, 3000, 6)
    journal = Journal()
    members = [Member(broker, topic, group, strategy, journal=journal) for _ in range(3)]

    def owners():
        return [m.assigned() or [] for m in members if m.proc.poll() is None]

    def exactly_once_each():
        owned = [p for parts in owners() for p in parts]
        return sorted(owned) == list(range(6))

    wait_for(lambda: exactly_once_each() and all(owners()), 30, f"3 members sharing 6 partitions: {[m.assignments for m in members]}")
    assert all(len(parts) == 2 for parts in owners()), owners()

    members[0].stop()  # graceful: LeaveGroup
    wait_for(exactly_once_each, 10, "the leaver's partitions to move")
    produce(broker, topic, 3000, 3000, 6)
    members[1].kill()  # no goodbye: its session (6 s) must expire
    started = time.time()
    wait_for(lambda: members[2].assigned() == list(range(6)), 20, "the survivor to own every partition")
    assert time.time() - started < 6 + 5, "moved within session.timeout.ms plus a rebalance"

    ends = end_offsets(broker, topic, 6)
    everything = {(p, o) for p in range(6) for o in range(ends[p])}
    wait_for(lambda: journal.consumed() >= everything, 60, "every record to be consumed")
    members[2].stop()
    assert journal.consumed() == everything, "none skipped"
    redone = journal.consumed_after_commit()
    assert not redone, f"{len(redone)} records consumed again after a successful commit, e.g. {sorted(redone)[:5]}"


def test_static_member_returns_without_a_rebalance(group_broker):
    broker, topic, group = group_broker, "static", "g-static"
    create_topic(broker, topic, 4)
    others = [Member(broker, topic, group, "range", f"other-{i}") for i in range(2)]
    static = Member(broker, topic, group, "range", "static-1")
    everyone = others + [static]
    wait_for(lambda: sorted(p for m in everyone for p in (m.assigned() or [])) == [0, 1, 2, 3], 30, "a stable group")
    time.sleep(2)
    before = static.assigned()
    rebalances = [len(m.assignments) for m in others]
    static.kill()
    back = Member(broker, topic, group, "range", "static-1")  # well within session.timeout.ms
    wait_for(lambda: back.assigned() is not None, 20, "the static member to rejoin")
    time.sleep(2)
    assert back.assigned() == before, "same partitions back"
    assert [len(m.assignments) for m in others] == rebalances, "the other members saw no rebalance"
    for m in others + [back]:
        m.stop()


def test_committed_offsets_survive_broker_restarts(group_broker, tmp_path):
    broker, topic = group_broker, "durable-offsets"
    produce(broker, topic, 0, 100, 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keeper", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    deadline = time.time() + 30
    while got < 60 and time.time() < deadline:
        got += len([m for m in c.consume(10, 0.5) if not m.error()])
    c.commit(offsets=[TopicPartition(topic, 0, 60)], asynchronous=False)
    c.close()

    for how in ("kill", "term"):
        broker.kill9() if how == "kill" else broker.stop()
        broker = Broker(broker.data_dir, tmp_path / f"after-{how}.log", ["--group-initial-rebalance-delay-ms", "0"]).start()
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keeper", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=30)
        assert tp.offset == 60, f"after {how}: committed offset intact"
        c.subscribe([topic])
        first = None
        deadline = time.time() + 30
        while first is None and time.time() < deadline:
            msgs = [m for m in c.consume(1, 0.5) if not m.error()]
            first = msgs[0].offset() if msgs else None
        c.close()
        assert first == 60, f"after {how}: the group re-forms and resumes at the committed offset"
    broker.stop()


def test_kafka_python_group_consumes_and_commits(group_broker):
    from kafka import KafkaConsumer

    produce(group_broker, "kp-group", 0, 500, 1)
    consumer = KafkaConsumer("kp-group", bootstrap_servers=group_broker.bootstrap, group_id="kp",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
    values = []
    for msg in consumer:
        values.append(int(msg.value))
        if len(values) == 500:
            break
    consumer.commit()
    consumer.close()
    assert values == list(range(500))
    again = KafkaConsumer("kp-group", bootstrap_servers=group_broker.bootstrap, group_id="kp",
                          auto_offset_reset="earliest", consumer_timeout_ms=4000)
    assert list(again) == [], "the group resumes after its committed offset"
    again.close()


def test_kafkajs_group_consumes_and_commits(group_broker):
    produce(group_broker, "js-group", 0, 300, 1)
    out = subprocess.run(["node", str(HERE / "kafkajs" / "group.js"), group_broker.bootstrap, "js-group", "300"],
                         capture_output=True, timeout=120, cwd=HERE)
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert result["values"] == [str(i) for i in range(300)]
    assert result["committed"] == "300"
