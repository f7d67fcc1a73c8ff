"""kafka-python (pure-Python client, its own protocol code) producing with
its defaults (idempotent, acks=all) and fetching back by assign/seek."""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def test_produce_and_fetch_round_trip(broker):
    # kafka-python 3.x defaults to the idempotent producer (InitProducerId first).
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip", linger_ms=5)
    assert producer.config["enable_idempotence"]
    futures = [
        producer.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("n", str(i).encode())])
        for i in range(5000)
    ]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    assert offsets == list(range(5000))
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition("kp", 0)
    consumer.assign([tp])
    assert consumer.end_offsets([tp])[tp] == 5000
    assert consumer.beginning_offsets([tp])[tp] == 0
    consumer.seek(tp, 100)
    got = []
    for msg in consumer:
        got.append(msg)
        if len(got) == 4900:
            break
    consumer.close()
    assert [m.offset for m in got] == list(range(100, 5000))
    assert all(m.key == f"k{m.offset}".encode() and m.value == f"v{m.offset}".encode() for m in got)
    assert got[0].headers == [("n", b"100")]


def test_metadata_lists_partitions(broker):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp-admin", num_partitions=4, replication_factor=1)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    assert consumer.partitions_for_topic("kp-admin") == {0, 1, 2, 3}
    consumer.close()
    admin.delete_topics(["kp-admin"])
    admin.close()
