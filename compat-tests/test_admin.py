"""Operators' flows with confluent-kafka's AdminClient (librdkafka 2.1x):
describing topic and broker configs, changing them incrementally and by
replacement, the change taking effect at once and surviving a restart,
and Kafka's errors for bad names and values."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

from conftest import Broker
from helpers import produce_all


_admins = {}


def admin(bootstrap):
    """One AdminClient per broker, kept alive while its futures are pending."""
    if bootstrap not in _admins:
        _admins[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _admins[bootstrap]


def create(bootstrap, name, partitions=1, **configs):
    (fut,) = admin(bootstrap).create_topics([NewTopic(name, partitions, 1, config=configs)]).values()
    fut.result(timeout=30)


def describe(bootstrap, resource_type, name):
    (fut,) = admin(bootstrap).describe_configs([ConfigResource(resource_type, name)]).values()
    return fut.result(timeout=30)


def incremental_future(bootstrap, topic, *ops, validate_only=False):
    entries = [ConfigEntry(name, value, incremental_operation=op) for name, op, value in ops]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    (fut,) = admin(bootstrap).incremental_alter_configs([resource], validate_only=validate_only).values()
    return fut


def incremental(bootstrap, topic, *ops, validate_only=False):
    return incremental_future(bootstrap, topic, *ops, validate_only=validate_only).result(timeout=30)


def error_of(fut):
    with pytest.raises(KafkaException) as e:
        fut.result(timeout=30)
    return e.value.args[0].code()


def test_describe_configs_shows_kafkas_defaults_and_sources(broker):
    create(broker.bootstrap, "described", **{"retention.ms": "3600000"})
    configs = describe(broker.bootstrap, ConfigResource.Type.TOPIC, "described")
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    for name, default in [
        ("cleanup.policy", "delete"),
        ("segment.bytes", "1073741824"),
        ("max.message.bytes", "1048588"),
        ("min.insync.replicas", "1"),
        ("message.timestamp.type", "CreateTime"),
        ("compression.type", "producer"),
    ]:
        assert configs[name].value == default, name
        assert configs[name].source == ConfigSource.DEFAULT_CONFIG.value, name
        assert configs[name].is_default and not configs[name].is_read_only, name
    # librdkafka asks for synonyms: the override, then the broker default.
    chain = [(s.name, s.source) for s in configs["retention.ms"].synonyms.values()]
    assert chain == [
        ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
        ("log.retention.hours", ConfigSource.DEFAULT_CONFIG.value),
    ]

    brokers = describe(broker.bootstrap, ConfigResource.Type.BROKER, "0")
    assert brokers["num.partitions"].value == "1"
    assert brokers["num.partitions"].is_read_only
    assert brokers["log.retention.hours"].value == "168"
    assert brokers["node.id"].value == "0"
    assert brokers["node.id"].source == ConfigSource.STATIC_BROKER_CONFIG.value

    (fut,) = admin(broker.bootstrap).describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "nope")]).values()
    assert error_of(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_and_replacing_alters_take_effect_at_once_and_survive_restart(broker, tmp_path):
    bootstrap = broker.bootstrap
    create(bootstrap, "altered")
    incremental(
        bootstrap,
        "altered",
        ("max.message.bytes", AlterConfigOpType.SET, "2000"),
        ("cleanup.policy", AlterConfigOpType.APPEND, "compact"),
        ("message.timestamp.type", AlterConfigOpType.SET, "LogAppendTime"),
    )
    configs = describe(bootstrap, ConfigResource.Type.TOPIC, "altered")
    assert configs["max.message.bytes"].value == "2000"
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"

    # max.message.bytes applies to the next produce.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "compression.type": "none"})
    errors = []
    p.produce("altered", value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    # message.timestamp.type too: the broker stamps its own time.
    before = int(time.time() * 1000)
    produce_all(bootstrap, "altered", [(b"k", b"small", None)], **{"linger.ms": 0})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.partition.eof": False})
    c.assign([TopicPartition("altered", 0, 0)])
    msg = None
    deadline = time.time() + 30
    while msg is None and time.time() < deadline:
        msg = c.poll(0.5)
    c.close()
    assert msg is not None and not msg.error()
    kind, ts = msg.timestamp()
    assert kind == 2 and ts >= before, "LogAppendTime"

    incremental(
        bootstrap,
        "altered",
        ("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete"),
        ("message.timestamp.type", AlterConfigOpType.DELETE, None),
    )
    configs = describe(bootstrap, ConfigResource.Type.TOPIC, "altered")
    assert configs["cleanup.policy"].value == "compact"
    assert configs["message.timestamp.type"].source == ConfigSource.DEFAULT_CONFIG.value

    # AlterConfigs replaces every override with the ones given.
    resource = ConfigResource(ConfigResource.Type.TOPIC, "altered", set_config={"retention.ms": "86400000"})
    (fut,) = admin(bootstrap).alter_configs([resource]).values()
    fut.result(timeout=30)
    configs = describe(bootstrap, ConfigResource.Type.TOPIC, "altered")
    assert configs["retention.ms"].value == "86400000"
    assert configs["max.message.bytes"].value == "1048588", "the earlier override is gone"
    assert configs["cleanup.policy"].value == "delete"

    assert broker.stop() == 0
    again = Broker(broker.data_dir, tmp_path / "again.log").start()
    try:
        configs = describe(again.bootstrap, ConfigResource.Type.TOPIC, "altered")
        assert configs["retention.ms"].value == "86400000", "overrides survive a restart"
        assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    finally:
        again.stop()


def test_bad_config_changes_get_kafkas_errors_and_change_nothing(broker):
    bootstrap = broker.bootstrap
    create(bootstrap, "guarded")

    def alter(*ops, topic="guarded", validate_only=False):
        return incremental_future(bootstrap, topic, *ops, validate_only=validate_only)

    assert error_of(alter(("retention.ms", AlterConfigOpType.SET, "soon"))) == KafkaError.INVALID_CONFIG
    assert error_of(alter(("no.such.config", AlterConfigOpType.SET, "1"))) == KafkaError.INVALID_CONFIG
    assert error_of(alter(("segment.ms", AlterConfigOpType.APPEND, "1"))) == KafkaError.INVALID_CONFIG
    assert error_of(alter(("cleanup.policy", AlterConfigOpType.SET, "shred"))) == KafkaError.INVALID_CONFIG
    assert error_of(alter(("retention.ms", AlterConfigOpType.SET, "1"), topic="missing")) == (
        KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    # validate_only checks without changing.
    alter(("retention.ms", AlterConfigOpType.SET, "1000"), validate_only=True).result(timeout=30)
    configs = describe(bootstrap, ConfigResource.Type.TOPIC, "guarded")
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # Broker configs are static here: Kafka's answer for a non-dynamic config.
    entries = [ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)]
    resource = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=entries)
    (fut,) = admin(bootstrap).incremental_alter_configs([resource]).values()
    assert error_of(fut) == KafkaError.INVALID_CONFIG
    # Removing a dynamic value is a no-op (kafka-reassign-partitions clears throttles so).
    entries = [ConfigEntry("leader.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE)]
    resource = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=entries)
    (fut,) = admin(bootstrap).incremental_alter_configs([resource]).values()
    fut.result(timeout=30)


def test_delete_records_then_fetching_below_the_low_watermark_is_out_of_range(broker):
    produce_all(broker.bootstrap, "trimmed", [(None, f"r{i}".encode(), None) for i in range(50)], **{"linger.ms": 0})
    (fut,) = admin(broker.bootstrap).delete_records([TopicPartition("trimmed", 0, 20)]).values()
    assert fut.result(timeout=30).low_watermark == 20
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "unused",
            "auto.offset.reset": "error",
            "enable.partition.eof": False,
        }
    )
    c.assign([TopicPartition("trimmed", 0, 5)])
    err = None
    deadline = time.time() + 30
    while err is None and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is not None and msg.error():
            err = msg.error()
    c.close()
    # librdkafka reports the broker's OFFSET_OUT_OF_RANGE as a failed reset.
    assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET
    assert "out of range" in err.str().lower()


def test_timestamp_bounds_set_on_a_topic_refuse_records_outside_them(broker):
    bootstrap = broker.bootstrap
    create(bootstrap, "clocked")
    incremental(
        bootstrap,
        "clocked",
        ("message.timestamp.before.max.ms", AlterConfigOpType.SET, "3600000"),
        ("message.timestamp.after.max.ms", AlterConfigOpType.SET, "60000"),
    )
    now = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0})
    results = []
    for ts in (now - 2 * 3600_000, now + 3600_000, now):
        p.produce("clocked", value=b"x", timestamp=ts, on_delivery=lambda err, msg: results.append(err))
        p.flush(30)
    assert [e.code() if e else None for e in results] == [KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_TIMESTAMP, None]
