"""The same admin requests, sent by the same client (confluent-kafka's
AdminClient), to Sluice and to a real Apache Kafka 4.4 broker started beside
it: both must give the same answer, error code included. One reference
broker serves the whole module (a JVM is heavy on two cores)."""

import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from reference_kafka import ReferenceKafka  # noqa: E402

from conftest import Broker  # noqa: E402

TIMEOUT = 20


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    """{"kafka": bootstrap, "sluice": bootstrap} for one module."""
    base = tmp_path_factory.mktemp("reference")
    kafka = ReferenceKafka(base / "kafka", nodes=1).start()
    sluice = Broker(base / "sluice-data", base / "sluice.log").start()
    try:
        yield {"kafka": kafka.bootstrap, "sluice": sluice.bootstrap}
    finally:
        kafka.stop()
        if sluice.proc.poll() is None:
            sluice.proc.kill()
            sluice.proc.wait()


def error_of(future):
    """The Kafka error code a request's future ended in (0: none)."""
    try:
        future.result(timeout=TIMEOUT)
        return 0
    except KafkaException as e:
        return e.args[0].code()


def on_both(brokers, ask):
    """What `ask(admin, bootstrap)` answers on each broker, as
    {"kafka": ..., "sluice": ...}."""
    return {name: ask(AdminClient({"bootstrap.servers": b}), b) for name, b in brokers.items()}


def create(admin, *topics):
    return [error_of(f) for f in admin.create_topics(list(topics), operation_timeout=10).values()]


def test_create_topics_answers_as_kafka_does(brokers):
    answers = on_both(
        brokers,
        lambda admin, _: {
            "new": create(admin, NewTopic("ref-new", 2, 1)),
            "again": create(admin, NewTopic("ref-new", 2, 1)),
            "bad name": create(admin, NewTopic("bad/name", 1, 1)),
            "too long": create(admin, NewTopic("x" * 250, 1, 1)),
            "no partitions": create(admin, NewTopic("ref-zero", 0, 1)),
            "replication above brokers": create(admin, NewTopic("ref-rf3", 1, 3)),
            "unknown config": create(admin, NewTopic("ref-cfg", 1, 1, config={"no.such.config": "1"})),
            "bad config value": create(admin, NewTopic("ref-cfg2", 1, 1, config={"retention.ms": "soon"})),
        },
    )
    assert answers["sluice"] == answers["kafka"]
    assert answers["kafka"]["again"] == [KafkaError.TOPIC_ALREADY_EXISTS]


def test_delete_records_and_configs_of_missing_things_answer_as_kafka_does(brokers):
    def ask(admin, bootstrap):
        name = "ref-records"
        assert create(admin, NewTopic(name, 1, 1)) == [0]
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(10):
            producer.produce(name, value=b"v%d" % i)
        assert producer.flush(TIMEOUT) == 0
        deleted = admin.delete_records([TopicPartition(name, 0, 4)])
        above = admin.delete_records([TopicPartition(name, 0, 11)])
        missing_topic = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "ref-missing")])
        return {
            "below the high watermark": [error_of(f) for f in deleted.values()],
            "above the high watermark": [error_of(f) for f in above.values()],
            "configs of a missing topic": [error_of(f) for f in missing_topic.values()],
        }

    answers = on_both(brokers, ask)
    assert answers["sluice"] == answers["kafka"]
    assert answers["kafka"]["above the high watermark"] == [KafkaError.OFFSET_OUT_OF_RANGE]


def test_partitions_offsets_and_missing_things_answer_as_kafka_does(brokers):
    def ask(admin, bootstrap):
        name = "ref-offsets"
        assert create(admin, NewTopic(name, 2, 1)) == [0]
        producer = Producer({"bootstrap.servers": bootstrap})
        for _ in range(5):
            producer.produce(name, value=b"x", partition=0)
        assert producer.flush(TIMEOUT) == 0
        for f in admin.delete_records([TopicPartition(name, 0, 2)]).values():
            f.result(timeout=TIMEOUT)
        # A committed offset first, so the group coordinator is loaded on
        # both (a cold Kafka answers NOT_COORDINATOR while it creates
        # __consumer_offsets, a transient Sluice does not mimic).
        warm = Consumer({"bootstrap.servers": bootstrap, "group.id": "ref-warm", "enable.auto.commit": False})
        warm.commit(offsets=[TopicPartition(name, 0, 1)], asynchronous=False)
        answers = {
            "same partition count": [error_of(f) for f in admin.create_partitions([NewPartitions(name, 2)]).values()],
            "fewer partitions": [error_of(f) for f in admin.create_partitions([NewPartitions(name, 1)]).values()],
            "partitions of a missing topic": [
                error_of(f) for f in admin.create_partitions([NewPartitions("ref-missing", 3)]).values()
            ],
            "delete a missing topic": [
                error_of(f) for f in admin.delete_topics(["ref-missing"], operation_timeout=10).values()
            ],
            "watermarks after DeleteRecords": warm.get_watermark_offsets(TopicPartition(name, 0), timeout=TIMEOUT),
            "offsets for time 0": [
                (t.offset, t.error)
                for t in warm.offsets_for_times(
                    [TopicPartition(name, 0, 0), TopicPartition(name, 1, 0)], timeout=TIMEOUT
                )
            ],
            "delete a missing group": [error_of(f) for f in admin.delete_consumer_groups(["ref-nogroup"]).values()],
        }
        warm.close()
        return answers

    answers = on_both(brokers, ask)
    assert answers["sluice"] == answers["kafka"]
    assert answers["kafka"]["delete a missing group"] == [KafkaError.GROUP_ID_NOT_FOUND]
