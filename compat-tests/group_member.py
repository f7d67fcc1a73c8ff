"""One consumer-group member, run as its own process so tests can kill it.

Prints JSON lines: {"assigned": [partitions]} after every rebalance,
{"consumed": [[partition, offset], ...]} for each batch as soon as it is
read, and {"committed": [...]} for the records of that batch covered by a
commit that succeeded. Exits cleanly (closing the consumer) on SIGTERM.

usage: group_member.py BOOTSTRAP TOPIC GROUP STRATEGY [INSTANCE_ID]
"""

import json
import os
import signal
import sys

from confluent_kafka import Consumer, TopicPartition

bootstrap, topic, group, strategy = sys.argv[1:5]
instance = sys.argv[5] if len(sys.argv) > 5 else None
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
config = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "partition.assignment.strategy": strategy,
}
if instance:
    config["group.instance.id"] = instance
if os.environ.get("MEMBER_DEBUG"):
    config["debug"] = os.environ["MEMBER_DEBUG"]
consumer = Consumer(config)


owned = set()


def report():
    print(json.dumps({"assigned": sorted(owned)}), flush=True)


# The callbacks get the change (all of it when eager, the increment when
# cooperative); the library applies it after they return.
def on_assign(_c, partitions):
    owned.update(tp.partition for tp in partitions)
    report()


def on_revoke(_c, partitions):
    owned.difference_update(tp.partition for tp in partitions)
    report()


consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
while not stop:
    batch = [m for m in consumer.consume(200, 0.2) if not m.error()]
    if not batch:
        continue
    print(json.dumps({"consumed": [[m.partition(), m.offset()] for m in batch]}), flush=True)
    last = {}
    for m in batch:
        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
    try:
        results = consumer.commit(
            offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False
        )
    except Exception:  # a rebalance or fencing refused the commit: nothing is claimed
        continue
    ok = {r.partition for r in results if r.error is None}
    print(json.dumps({"committed": [[m.partition(), m.offset()] for m in batch if m.partition() in ok]}), flush=True)
consumer.close()
