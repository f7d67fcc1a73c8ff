"""A consume-transform-produce loop (Kafka's exactly-once pattern): reads
`input` in group `transformer`, writes value*10 to `output` and commits the
input offsets with send_offsets_to_transaction, one transaction per poll.
`crash-after-N` SIGKILLs itself mid-transaction after N outputs;
`until-idle` stops 5 s after its last input (waiting up to 60 s for the
first: the dead predecessor's group session must expire first)."""

import os
import signal
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, mode = sys.argv[1], sys.argv[2]
crash_after = int(mode.split("-")[-1]) if mode.startswith("crash-after-") else None

consumer = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": "transformer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 6000,
    }
)
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "transformer-1", "linger.ms": 5})
producer.init_transactions(60)
consumer.subscribe(["input"])

produced, last_input, patience = 0, time.time(), 60
while time.time() - last_input < patience:
    msgs = [m for m in consumer.consume(100, 0.5) if not m.error()]
    if not msgs:
        continue
    last_input, patience = time.time(), 5
    producer.begin_transaction()
    for m in msgs:
        producer.produce("output", key=m.key(), value=str(int(m.value()) * 10).encode(), partition=m.partition())
        produced += 1
        if crash_after is not None and produced >= crash_after:
            producer.flush(30)  # outputs written, transaction open
            os.kill(os.getpid(), signal.SIGKILL)
    producer.send_offsets_to_transaction(
        consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
    )
    producer.commit_transaction(30)
consumer.close()
