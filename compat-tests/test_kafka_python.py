"""kafka-python (pure-Python client, its own protocol code) producing with
its defaults (idempotent, acks=all) and fetching back by assign/seek."""

import time

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition


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


def test_transactions_as_in_the_kafka_python_readme(broker):
    # kafka-python's own transactional example, plus its exactly-once
    # consume-transform-produce step (send_offsets_to_transaction).
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="fizzbuzz")
    producer.init_transactions()
    producer.begin_transaction()
    future = producer.send("txn_topic", value=b"yes")
    future.get()  # wait for successful produce
    producer.commit_transaction()  # commit the transaction

    producer.begin_transaction()
    future = producer.send("txn_topic", value=b"no")
    future.get()  # wait for successful produce
    producer.abort_transaction()  # abort the transaction

    producer.begin_transaction()
    producer.send("txn_topic", value=b"offsets")
    tp = TopicPartition("txn_topic", 0)
    producer.send_offsets_to_transaction({tp: OffsetAndMetadata(1, "", -1)}, "kp-group")
    producer.commit_transaction()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    assert [m.value for m in consumer] == [b"yes", b"offsets"]
    assert consumer.end_offsets([tp])[tp] == 6  # three records, three markers
    consumer.close()
    group = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="kp-group", enable_auto_commit=False)
    assert group.committed(tp) == 1
    group.close()


def test_operators_see_transactions_with_kafka_pythons_admin_client(broker):
    # KIP-664's tooling: ListTransactions, DescribeTransactions and
    # DescribeProducers as kafka-python's KafkaAdminClient calls them.
    from kafka.admin import KafkaAdminClient

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="ops-txn")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send("ops_topic", value=b"open").get(timeout=30)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts]
        assert [(t.transactional_id, t.state.value) for t in listed] == [("ops-txn", "Ongoing")]
        described = admin.describe_transactions(["ops-txn"])["ops-txn"]
        assert described.state.value == "Ongoing"
        assert described.topic_partitions == {TopicPartition("ops_topic", 0)}
        assert described.producer_id == listed[0].producer_id and described.transaction_timeout_ms == 60000
        tp = TopicPartition("ops_topic", 0)
        active = admin.describe_producers([tp])[tp].active_producers
        assert [(p.producer_id, p.current_transaction_start_offset) for p in active] == [(described.producer_id, 0)]
        producer.commit_transaction()
        # The commit is answered once decided; markers follow (PrepareCommit
        # until every partition has one).
        deadline = time.time() + 10
        while time.time() < deadline:
            done = [t for ts in admin.list_transactions(state_filters=["CompleteCommit"]).values() for t in ts]
            if done:
                break
            time.sleep(0.1)
        assert [t.transactional_id for t in done] == ["ops-txn"]
        active = admin.describe_producers([tp])[tp].active_producers
        assert [p.current_transaction_start_offset for p in active] == [-1]
    finally:
        admin.close()
        producer.close()


def test_describe_log_dirs_reports_partition_sizes_and_disk_space(broker):
    from kafka.admin import KafkaAdminClient

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(100):
        producer.send("dirs", value=b"x" * 1000, partition=0)
    producer.flush(30)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (everything,) = admin.describe_log_dirs()
        (log_dir,) = everything["log_dirs"]
        assert log_dir["error_code"] == 0
        assert log_dir["log_dir"] == str(broker.data_dir.resolve())
        assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
        sizes = {(t["name"], p["partition_index"]): p for t in log_dir["topics"] for p in t["partitions"]}
        assert sizes[("dirs", 0)]["partition_size"] > 100_000  # 100 KB of values, plus batch overhead
        assert sizes[("dirs", 0)]["offset_lag"] == 0
        (only,) = admin.describe_log_dirs({"dirs": [0]})
        assert [t["name"] for t in only["log_dirs"][0]["topics"]] == ["dirs"]
    finally:
        admin.close()
