"""librdkafka's own transactions example (examples/transactions.c, as
shipped with librdkafka 2.12, built by `make deps` against Debian's
librdkafka 2.0.2, the "old client"): a consume-process-produce loop in a
cooperative-sticky consumer group that commits a transaction every 100
messages or 5 seconds, with the input offsets sent to the transaction."""

import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

EXAMPLE = Path(__file__).with_name(".examples") / "transactions"
INPUTS = 300


def committed_outputs(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "isolation.level": "read_committed"})
    c.assign([TopicPartition("out", 0, 0)])
    values, last = [], time.time()
    while time.time() - last < 1.5:
        for m in c.consume(1000, 0.2):
            assert not m.error(), m.error()
            values.append(int(m.value()))
            last = time.time()
    c.close()
    return values


def test_librdkafkas_transactions_example_sums_every_input_exactly_once(broker, tmp_path):
    assert EXAMPLE.exists(), "run `make deps` to build librdkafka's example"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic("in", 1, 1), NewTopic("out", 1, 1)]).values():
        f.result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(1, INPUTS + 1):
        producer.produce("in", key=b"k", value=str(i).encode())
    assert producer.flush(30) == 0

    with open(tmp_path / "example.log", "wb") as log:
        example = subprocess.Popen([str(EXAMPLE), broker.bootstrap, "in", "out"], stdout=log, stderr=log)
        try:
            deadline = time.time() + 90
            while len(committed_outputs(broker.bootstrap)) < INPUTS and time.time() < deadline:
                time.sleep(1)
        finally:
            example.send_signal(signal.SIGINT)  # its clean shutdown
            code = example.wait(timeout=60)
    output = (tmp_path / "example.log").read_text(errors="replace")
    assert code == 0, output
    assert "FATAL" not in output, output
    # Each input number is one message; its "sum" is the number itself.
    assert sorted(committed_outputs(broker.bootstrap)) == list(range(1, INPUTS + 1)), output[-2000:]
