"""Small helpers shared by the client suites: producing with delivery
reports and reading a partition back by assign/seek (no consumer groups)."""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def produce_all(bootstrap, topic, records, **config):
    """Produces (key, value, headers) tuples; returns delivery reports as
    (partition, offset) in send order, raising on any delivery error."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **config})
    reports = [None] * len(records)

    def on_delivery(i):
        def cb(err, msg):
            reports[i] = err if err else (msg.partition(), msg.offset())

        return cb

    for i, (key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery(i))
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records undelivered"
    errors = [r for r in reports if not isinstance(r, tuple)]
    assert not errors, f"delivery errors: {errors[:5]}"
    return reports


def consume_range(bootstrap, topic, partition, start, count, timeout=60, **config):
    """Reads `count` messages from `start` by assign(); returns the messages."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-assign-only",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            **config,
        }
    )
    consumer.assign([TopicPartition(topic, partition, start)])
    out = []
    deadline = time.time() + timeout
    try:
        while len(out) < count and time.time() < deadline:
            for msg in consumer.consume(num_messages=10000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                out.append(msg)
    finally:
        consumer.close()
    assert len(out) >= count, f"read {len(out)} of {count} records before the timeout"
    return out[:count]
