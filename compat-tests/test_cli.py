"""The `sluice` admin CLI against a running broker: topic, group and
cluster commands, cross-checked with confluent-kafka, and one readable
line with a non-zero exit for a bad topic name or an unreachable broker."""

import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import BINARY
from helpers import consume_range, produce_all


def sluice(broker, *args, stdin=None, ok=True):
    out = subprocess.run(
        [str(BINARY), *args, "--brokers", broker.bootstrap],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert out.returncode == 0, f"{args}: {out.stderr}"
    return out


def test_topic_commands_create_describe_alter_grow_produce_consume_and_delete(broker):
    sluice(broker, "topic", "create", "orders", "-p", "2", "-c", "retention.ms=3600000")
    listed = sluice(broker, "topic", "list").stdout.split("\n")
    assert listed[0].split() == ["NAME", "PARTITIONS", "REPLICAS"]
    assert ["orders", "2", "1"] in [line.split() for line in listed]

    produced = sluice(broker, "topic", "produce", "orders", "-p", "1", stdin="one\ntwo\nthree\n").stdout
    assert produced.splitlines() == [f"Produced to partition 1 at offset {i}" for i in range(3)]
    got = consume_range(broker.bootstrap, "orders", 1, 0, 3)
    assert [m.value() for m in got] == [b"one", b"two", b"three"], "a real client reads what the CLI wrote"

    produce_all(broker.bootstrap, "orders", [(b"k", f"v{i}".encode(), None) for i in range(5)], partitioner="murmur2_random")
    # The CLI partitions keyed records as Kafka's clients do (murmur2).
    keyed = sluice(broker, "topic", "produce", "orders", "-k", "k", stdin="v5\n").stdout
    partition_of_k = int(keyed.split()[3])
    consumed = sluice(broker, "topic", "consume", "orders", "-p", str(partition_of_k), "-f", "%k=%v").stdout
    assert consumed.splitlines()[-6:] == [f"k=v{i}" for i in range(6)]
    assert sluice(broker, "topic", "consume", "orders", "-p", "1", "-o", "1", "-n", "1").stdout == "two\n"

    described = sluice(broker, "topic", "describe", "orders").stdout
    assert "retention.ms  3600000" in described
    rows = [line.split() for line in described.splitlines()]
    assert ["1", "0", "0", "0", "0", "0", "3"] in rows, described

    sluice(broker, "topic", "alter-config", "orders", "--set", "cleanup.policy=compact", "--delete", "retention.ms")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (fut,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "orders")]).values()
    configs = fut.result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "604800000"

    assert "orders now has 4 partitions" in sluice(broker, "topic", "add-partitions", "orders", "-n", "2").stdout
    assert len(admin.list_topics(timeout=10).topics["orders"].partitions) == 4

    sluice(broker, "topic", "delete", "orders")
    assert "orders" not in sluice(broker, "topic", "list").stdout


def test_group_commands_list_describe_seek_and_delete(broker):
    produce_all(broker.bootstrap, "events", [(None, f"e{i}".encode(), None) for i in range(10)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "readers", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["events"])
    seen, deadline = 0, time.time() + 30
    while seen < 10 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen += 1
    c.commit(asynchronous=False)
    c.close()

    assert ["readers", "0", "Empty", "consumer"] == sluice(broker, "group", "list").stdout.splitlines()[1].split()
    described = sluice(broker, "group", "describe", "readers").stdout
    assert ["events", "0", "10", "10", "0"] in [line.split() for line in described.splitlines()]

    sluice(broker, "group", "seek", "readers", "--topic", "events", "--to", "4")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "readers"})
    (tp,) = c.committed([TopicPartition("events", 0)], timeout=10)
    c.close()
    assert tp.offset == 4, "a real client sees the moved offset"
    described = sluice(broker, "group", "describe", "readers").stdout
    assert ["events", "0", "4", "10", "6"] in [line.split() for line in described.splitlines()]

    sluice(broker, "group", "delete", "readers")
    gone = sluice(broker, "group", "describe", "readers", ok=False)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_cluster_info_and_clear_errors(broker):
    info = sluice(broker, "cluster", "info").stdout
    assert "CONTROLLER  0" in info
    assert ["0*", "127.0.0.1", str(broker.port)] == info.splitlines()[-1].split()

    # A node started alone has no raft network: its quorum cannot change.
    for change in (["add-voter", "--node", "1", "--address", "127.0.0.1:1"], ["remove-voter", "--node", "0"]):
        refused = sluice(broker, "cluster", *change, ok=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert "UnsupportedVersion" in refused.stderr and "without a raft network" in refused.stderr, refused.stderr

    bad = sluice(broker, "topic", "create", "bad name", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "InvalidTopicException" in bad.stderr, bad.stderr

    unreachable = subprocess.run(
        [str(BINARY), "topic", "list", "--brokers", "127.0.0.1:1"], capture_output=True, text=True, timeout=60
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.count("\n") == 1 and "cannot reach any broker" in unreachable.stderr, unreachable.stderr
