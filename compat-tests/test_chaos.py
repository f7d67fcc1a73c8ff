"""Fault injection, Jepsen-style, on a loopback cluster of raft voters.

While real clients write and read, faults chosen at random (seeded; the
seed is printed and CHAOS_SEED replays it) hit the cluster one after
another: SIGKILL and restart of a partition leader, of a follower, of the
raft leader (the controller); SIGSTOP/SIGCONT of a node (a long GC-like
pause); a network partition, cutting one node off from the others or one
link between two nodes (each node on its own host in a network namespace,
netns.py; clients reach every node throughout); wiping a node's data
directory, which it must refuse to start on until the operator replaces
it with remove-voter and add-voter; DeleteRecords on a partition. Then the
cluster heals and a checker reads everything back:

- every record a producer had acknowledged (acks=all, min.insync.replicas=2)
  is there exactly once, at the offset it was acknowledged with, in the
  order its producer wrote it (above the partition's final log start,
  where DeleteRecords asked the records to go);
- every replica's log is byte-identical batch for batch;
- a committed transaction is visible whole to read_committed, an aborted
  one not at all, one whose outcome the producer never learnt either whole
  or not at all; no read_committed consumer ever saw an aborted record;
- no offset the consumer group committed was lost or went backwards.

Workload: an idempotent confluent-kafka (librdkafka) producer and an
idempotent kafka-python producer on one topic, a transactional
confluent-kafka producer committing and aborting on another, and a
read_committed consumer group committing its offsets.

Knobs (environment): CHAOS_CYCLES (faults, default 5), CHAOS_SEED,
CHAOS_NODES (3 or 5), CHAOS_NETWORK: `auto` (network namespaces when this
machine can make them, else loopback without network partitions, said in
one line), `required` or `off`. `make chaos` runs 50 cycles, network
required."""

import gc
import os
import random
import shutil
import signal
import struct
import threading
import time
import traceback
from collections import defaultdict

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from conftest import Cluster
from netns import Network

CYCLES = int(os.environ.get("CHAOS_CYCLES", "5"))
SEED = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 32))
NODES = int(os.environ.get("CHAOS_NODES", "3"))
NETWORK = os.environ.get("CHAOS_NETWORK", "auto")

TOPIC, TXN_TOPIC, GROUP = "chaos", "chaos-txn", "chaos-readers"
PARTITIONS = 3
TXN_RECORDS = 6  # records per transaction, spread over TXN_TOPIC's partitions
RATE = 500  # records a second from each idempotent producer
# librdkafka logs every refused connection to a killed node: keep only the critical.
QUIET = {"log_level": 2}


def wait_for(what, predicate, timeout=60, every=0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
        except KafkaException:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"chaos seed={SEED}: timed out waiting for {what}")


class Stoppable(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.failure = None

    def run(self):
        try:
            self.work()
        except Exception as e:  # reported by the test, with the seed
            self.failure = e

    def finish(self, timeout=180):
        self.stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not finish"
        assert self.failure is None, f"{self.name}: {self.failure!r}"


class ConfluentWriter(Stoppable):
    """Idempotent librdkafka producer: values 'c-N', N increasing, round robin over partitions."""

    name = "confluent-writer"

    def __init__(self, bootstrap):
        super().__init__()
        self.bootstrap = bootstrap
        self.acked = {}  # value -> (partition, offset)
        self.failed = defaultdict(int)  # error name -> count

    def work(self):
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                **QUIET,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                "reconnect.backoff.max.ms": 500,
            }
        )

        def report(err, msg):
            if err:
                self.failed[err.name()] += 1
            else:
                self.acked[msg.value().decode()] = (msg.partition(), msg.offset())

        seq, started = 0, time.time()
        while not self.stopping.is_set():
            if seq > (time.time() - started) * RATE:
                producer.poll(0.01)
                continue
            try:
                producer.produce(TOPIC, value=f"c-{seq}".encode(), partition=seq % PARTITIONS, on_delivery=report)
                seq += 1
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)
        producer.flush(300)


class KafkaPythonWriter(Stoppable):
    """Idempotent kafka-python producer: values 'k-N'."""

    name = "kafka-python-writer"

    def __init__(self, bootstrap):
        super().__init__()
        self.bootstrap = bootstrap
        self.acked = {}
        self.failed = defaultdict(int)

    def work(self):
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            delivery_timeout_ms=300_000,
            request_timeout_ms=10_000,
            reconnect_backoff_max_ms=500,
        )
        seq, started = 0, time.time()
        while not self.stopping.is_set():
            if seq > (time.time() - started) * RATE:
                time.sleep(0.01)
                continue
            value = f"k-{seq}"
            future = producer.send(TOPIC, value=value.encode(), partition=seq % PARTITIONS)
            future.add_callback(lambda md, v=value: self.acked.__setitem__(v, (md.partition, md.offset)))
            future.add_errback(lambda e: self.failed.__setitem__(type(e).__name__, self.failed[type(e).__name__] + 1))
            seq += 1
        producer.flush(300)
        producer.close(30)


class TxnWriter(Stoppable):
    """A transactional producer: each transaction writes TXN_RECORDS values
    't-N-i' over TXN_TOPIC's partitions, then commits or aborts (at random).
    An outcome it cannot learn (a fatal error mid-commit) is 'unknown'."""

    name = "txn-writer"

    def __init__(self, bootstrap, rng):
        super().__init__()
        self.bootstrap = bootstrap
        self.rng = rng
        self.committed, self.aborted, self.unknown = set(), set(), set()

    def producer(self):
        p = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                **QUIET,
                "transactional.id": "chaos-txn",
                "transaction.timeout.ms": 60_000,
                "message.timeout.ms": 55_000,
                "linger.ms": 5,
            }
        )
        retry(lambda: p.init_transactions(30), "init_transactions")
        return p

    def work(self):
        p = self.producer()
        n = 0
        while not self.stopping.is_set():
            commit = self.rng.random() < 0.7
            try:
                p.begin_transaction()
                for i in range(TXN_RECORDS):
                    p.produce(TXN_TOPIC, value=f"t-{n}-{i}".encode(), partition=i % PARTITIONS)
                outcome = self.finish_txn(p, commit)
            except KafkaException as e:
                outcome = self.recover(p, e)
            if outcome == "fatal":
                self.unknown.add(n)
                p = self.producer()
            else:
                (self.committed if outcome == "committed" else self.aborted).add(n)
            n += 1
            time.sleep(0.05)

    def finish_txn(self, p, commit):
        while True:
            try:
                if commit:
                    p.commit_transaction(30)
                    return "committed"
                p.abort_transaction(30)
                return "aborted"
            except KafkaException as e:
                err = e.args[0]
                if err.retriable():
                    continue
                if err.txn_requires_abort():
                    commit = False
                    continue
                return "fatal"

    def recover(self, p, e):
        err = e.args[0]
        if err.fatal() or not err.txn_requires_abort() and not err.retriable():
            return "fatal"
        return self.finish_txn(p, False)


def retry(call, what, attempts=20):
    for i in range(attempts):
        try:
            return call()
        except KafkaException as e:
            if i == attempts - 1 or not (e.args[0].retriable() or "timed out" in str(e).lower()):
                raise AssertionError(f"{what}: {e}") from e
            time.sleep(1)


class GroupReader(Stoppable):
    """A read_committed consumer in a group, committing offsets as it goes."""

    name = "group-reader"

    def __init__(self, bootstrap):
        super().__init__()
        self.bootstrap = bootstrap
        self.txns_seen = set()
        self.seen = 0
        self.committed = {}  # partition -> highest offset a successful commit stored

    def work(self):
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                **QUIET,
                "group.id": GROUP,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
            }
        )
        consumer.subscribe([TXN_TOPIC])
        while not self.stopping.is_set():
            msgs = consumer.consume(200, timeout=0.5)
            for m in msgs:
                if m.error():
                    continue
                self.seen += 1
                self.txns_seen.add(int(m.value().decode().split("-")[1]))
            if msgs:
                try:
                    for tp in consumer.commit(asynchronous=False) or []:
                        if tp.error is None and tp.offset >= 0:
                            self.committed[tp.partition] = max(self.committed.get(tp.partition, -1), tp.offset)
                except KafkaException:
                    pass  # not acknowledged: claims nothing
        consumer.close()


class Faults:
    """Picks and applies one fault per cycle; every node is back after it."""

    def __init__(self, cluster, rng, log, network=None):
        self.cluster, self.rng, self.log, self.network = cluster, rng, log, network
        self.admin = AdminClient({"bootstrap.servers": cluster.bootstrap})

    def metadata(self):
        return self.admin.list_topics(TOPIC, timeout=10)

    def leader_of(self, partition):
        return self.metadata().topics[TOPIC].partitions[partition].leader

    def one(self, cycle):
        kinds = ["kill-leader", "kill-follower", "kill-controller", "pause", "delete-records", "wipe"]
        if self.network:
            kinds += ["isolate-node", "cut-link"]
        kind = self.rng.choice(kinds)
        partition = self.rng.randrange(PARTITIONS)
        md = self.metadata()
        leader = md.topics[TOPIC].partitions[partition].leader
        if kind == "kill-leader":
            victim = leader
        elif kind == "kill-follower":
            victim = self.rng.choice([n for n in md.topics[TOPIC].partitions[partition].replicas if n != leader])
        elif kind == "kill-controller":
            victim = md.controller_id
        elif kind in ("pause", "wipe", "isolate-node"):
            victim = self.rng.choice(sorted(self.cluster.nodes))
        elif kind == "cut-link":
            victim = tuple(self.rng.sample(sorted(self.cluster.nodes), 2))
        else:
            victim = None
        # Partitions last longer: past the session and replica-lag timeouts.
        down = self.rng.uniform(1, 6) if kind.startswith("kill") or kind == "pause" else self.rng.uniform(2, 10)
        self.log(f"cycle {cycle}: {kind} node={victim} partition={partition} for {down:.1f}s")
        if kind == "delete-records":
            self.delete_records(partition)
        elif kind == "wipe":
            self.wipe(victim)
        elif kind in ("isolate-node", "cut-link"):
            pairs = [victim] if kind == "cut-link" else [(victim, n) for n in self.cluster.nodes if n != victim]
            for a, b in pairs:
                self.network.cut(a, b)
            time.sleep(down)
            self.network.heal()
        elif kind == "pause":
            node = self.cluster.nodes[victim]
            node.proc.send_signal(signal.SIGSTOP)
            time.sleep(down)
            node.proc.send_signal(signal.SIGCONT)
        elif victim in self.cluster.nodes:
            node = self.cluster.nodes[victim]
            node.kill9()
            time.sleep(down)
            node.start()

    def wipe(self, victim):
        """Kills a node and empties its data directory. Started as before it
        must refuse (it is not the voter the cluster knows); the operator's
        procedure then replaces it (README, "Replacing a node")."""
        node = self.cluster.nodes[victim]
        node.kill9()
        shutil.rmtree(node.data_dir)
        if "--raft-listen" not in node.extra_args:  # a node replaced before joins, so it waits instead
            out = node.run_to_exit()
            last = (out.stderr.strip().splitlines() or [""])[-1]
            assert out.returncode != 0 and "storage id" in last, f"a wiped node started as the old voter: {last}"
            shutil.rmtree(node.data_dir, ignore_errors=True)
        raft_address = node.become_joining(victim)
        self.cli("remove-voter", "--node", str(victim), done_if="VoterNotFound")
        node.launch()
        wait_for("the wiped node to wait for add-voter", lambda: "waiting to be added" in node.log()[node.skip :])
        self.cli("add-voter", "--node", str(victim), "--address", raft_address, done_if="DuplicateVoter")
        node.wait_started()

    def cli(self, *args, done_if):
        """`sluice cluster ...`, retried while the controller moves; a retry
        answering `done_if` means an earlier attempt did it."""
        for attempt in range(10):
            out = self.cluster.cli("cluster", *args)
            if out.returncode == 0 or attempt > 0 and done_if in out.stderr:
                return
            time.sleep(1)
        raise AssertionError(f"sluice cluster {' '.join(args)}: {out.stderr.strip()}")

    def delete_records(self, partition):
        """Moves the log start up by half of what the partition holds."""
        tp = TopicPartition(TOPIC, partition)
        consumer = Consumer({"bootstrap.servers": self.cluster.bootstrap, "group.id": "chaos-watermarks"})
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
        finally:
            consumer.close()
        target = low + (high - low) // 2
        if target > low:
            tp.offset = target
            for done in self.admin.delete_records([tp]).values():
                done.result(30)

    def healthy(self):
        """Every node up and every partition of both topics with a full ISR."""
        if len(self.cluster.running()) != len(self.cluster.nodes):
            return False
        md = self.admin.list_topics(timeout=10)
        return all(
            sorted(p.isrs) == sorted(p.replicas) and p.leader >= 0
            for t in (TOPIC, TXN_TOPIC)
            for p in md.topics[t].partitions.values()
        )


def batches_on_disk(node, topic, partition):
    """base offset -> bytes of each whole batch in the replica's segments."""
    directory = node.data_dir / f"{topic}-{partition}"
    out = {}
    for f in sorted(directory.glob("*.log")):
        data = f.read_bytes()
        at = 0
        while at + 12 <= len(data):
            base, length = struct.unpack(">qi", data[at : at + 12])
            end = at + 12 + length
            if length <= 0 or end > len(data):
                break
            out[base] = data[at:end]
            at = end
    return out


def read_all(bootstrap, topic, isolation):
    """(partition, offset, value) of every record from each partition's
    log start to its end, and the log starts."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-check-{isolation}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    records, starts = [], {}
    try:
        ends = {}
        for p in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            starts[p], ends[p] = low, high
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in range(PARTITIONS)])
        done = {p for p in range(PARTITIONS) if starts[p] >= ends[p]}
        deadline = time.time() + 300
        while len(done) < PARTITIONS and time.time() < deadline:
            for m in consumer.consume(1000, timeout=1):
                if m.error():
                    continue
                records.append((m.partition(), m.offset(), m.value().decode()))
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
            for p in range(PARTITIONS):
                position = consumer.position([TopicPartition(topic, p)])[0].offset
                if position >= ends[p]:
                    done.add(p)
        assert len(done) == PARTITIONS, f"chaos seed={SEED}: could not read {topic} to its end"
    finally:
        consumer.close()
    return records, starts


def check_producers(writers, records, starts):
    """Counts of lost, duplicated, misplaced and reordered acknowledged records."""
    where = defaultdict(list)
    for partition, offset, value in records:
        where[value].append((partition, offset))
    counts = dict(acked=0, lost=0, duplicated=0, misplaced=0, reordered=0, deleted=0)
    examples = []
    for w in writers:
        last_seq = {}
        for value, (partition, offset) in sorted(w.acked.items(), key=lambda kv: int(kv[0].split("-")[1])):
            counts["acked"] += 1
            if offset < starts[partition]:
                counts["deleted"] += 1  # DeleteRecords asked for it to go
                continue
            found = where.get(value, [])
            if not found:
                counts["lost"] += 1
                examples.append(f"lost {value} at {partition}/{offset}")
            elif len(found) > 1:
                counts["duplicated"] += 1
                examples.append(f"duplicated {value} at {found}")
            elif found[0] != (partition, offset):
                counts["misplaced"] += 1
                examples.append(f"{value} acked at {partition}/{offset}, found at {found[0]}")
            seq = int(value.split("-")[1])
            if partition in last_seq and last_seq[partition][1] > offset:
                counts["reordered"] += 1
                examples.append(f"{value} (seq {seq}) before seq {last_seq[partition][0]} in partition {partition}")
            last_seq[partition] = (seq, offset)
    # Values never acknowledged (timed out) may be there, but at most once.
    for value, found in where.items():
        if len(found) > 1 and not any(value in w.acked for w in writers):
            counts["duplicated"] += 1
            examples.append(f"unacknowledged {value} written {len(found)} times")
    return counts, examples


def check_transactions(txn, records):
    by_txn = defaultdict(int)
    for _, _, value in records:
        by_txn[int(value.split("-")[1])] += 1
    partial = [n for n, c in by_txn.items() if c != TXN_RECORDS]
    missing = [n for n in txn.committed if by_txn.get(n, 0) != TXN_RECORDS]
    aborted_read = {n for n in txn.aborted if n in by_txn}
    return partial, missing, aborted_read


def test_chaos(tmp_path):
    rng = random.Random(SEED)
    lines = []

    def log(line):
        lines.append(line)
        print(f"chaos: {line}", flush=True)

    log(f"seed={SEED} cycles={CYCLES} nodes={NODES}")
    network = None
    if NETWORK != "off":
        why_not = Network.unavailable()
        assert not (why_not and NETWORK == "required"), f"CHAOS_NETWORK=required, but {why_not}"
        if why_not:
            log(f"no network partitions (loopback only): {why_not}")
        else:
            network = Network(range(1, NODES + 1)).create()
    cluster = None
    try:
        cluster = Cluster(
            tmp_path,
            size=NODES,
            extra_args=["--broker-session-timeout-ms", "2000", "--replica-lag-time-max-ms", "3000", "--shards", "2"],
            network=network,
        ).start()
        run(cluster, rng, log, network)
    except Exception as e:
        # Only text is kept: a traceback would keep the failed run's clients
        # alive past the network's removal, and they would then reconnect to
        # its addresses through the default route, off this machine.
        failure = f"chaos seed={SEED} (CHAOS_SEED={SEED} replays it): {e}\n{traceback.format_exc()}"
    else:
        failure = None
    finally:
        gc.collect()
        if cluster:
            cluster.close()
        if network:
            network.destroy()
    if failure:
        raise AssertionError(failure)


def run(cluster, rng, log, network):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topics = [NewTopic(t, PARTITIONS, 3, config={"min.insync.replicas": "2"}) for t in (TOPIC, TXN_TOPIC)]
    for f in admin.create_topics(topics).values():
        f.result(30)
    faults = Faults(cluster, rng, log, network)
    wait_for("a healthy cluster before the faults", faults.healthy)

    confluent, kpython = ConfluentWriter(cluster.bootstrap), KafkaPythonWriter(cluster.bootstrap)
    txn, reader = TxnWriter(cluster.bootstrap, random.Random(rng.random())), GroupReader(cluster.bootstrap)
    workload = [confluent, kpython, txn, reader]
    try:
        for w in workload:
            w.start()
        wait_for("the first acknowledged records", lambda: confluent.acked and kpython.acked and txn.committed)

        started = time.time()
        for cycle in range(1, CYCLES + 1):
            faults.one(cycle)
            wait_for(f"the cluster to heal after cycle {cycle}", faults.healthy, timeout=120)
            time.sleep(rng.uniform(0.5, 2))
            for w in workload:
                assert w.failure is None, f"{w.name} failed in cycle {cycle}: {w.failure!r}"
        log(f"{CYCLES} cycles in {time.time() - started:.0f}s")

        for w in workload:
            w.finish()
    finally:
        # After a failure too, the clients close while the cluster is up.
        for w in workload:
            w.stopping.set()
        for w in workload:
            if w.is_alive():
                w.join(60)

    # Every replica byte-identical once the followers have caught up (with
    # more nodes than the replication factor, only the partition's replicas).
    def identical(topic, p):
        replicas = admin.list_topics(topic, timeout=10).topics[topic].partitions[p].replicas
        logs = {n: batches_on_disk(cluster.nodes[n], topic, p) for n in replicas}
        common_start = max(min(b) if b else 0 for b in logs.values())
        views = {n: {o: b for o, b in batches.items() if o >= common_start} for n, batches in logs.items()}
        return len({tuple(sorted(v.items())) for v in views.values()}) == 1

    for topic in (TOPIC, TXN_TOPIC):
        for p in range(PARTITIONS):
            wait_for(f"identical replicas of {topic}-{p}", lambda: identical(topic, p), timeout=120)

    records, starts = read_all(cluster.bootstrap, TOPIC, "read_uncommitted")
    counts, examples = check_producers([confluent, kpython], records, starts)
    txn_records, _ = read_all(cluster.bootstrap, TXN_TOPIC, "read_committed")
    partial, missing, aborted_read = check_transactions(txn, txn_records)

    committed_now = {}
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": GROUP})
    try:
        for tp in consumer.committed([TopicPartition(TXN_TOPIC, p) for p in range(PARTITIONS)], timeout=30):
            committed_now[tp.partition] = tp.offset
    finally:
        consumer.close()
    offsets_lost = {p: (o, committed_now.get(p)) for p, o in reader.committed.items() if committed_now.get(p, -1) < o}
    group_aborted_read = reader.txns_seen & txn.aborted

    log(
        "acked={acked} lost={lost} duplicated={duplicated} misplaced={misplaced} reordered={reordered} "
        "deleted-by-request={deleted}".format(**counts)
        + f" txns committed={len(txn.committed)} aborted={len(txn.aborted)} unknown={len(txn.unknown)}"
        f" partial={len(partial)} committed-missing={len(missing)} aborted-read={len(aborted_read | group_aborted_read)}"
        f" group-read={reader.seen} group-offsets-lost={len(offsets_lost)}"
        f" delivery-failures={dict(confluent.failed)} {dict(kpython.failed)}"
    )
    assert not examples, examples[:10]
    assert not partial and not missing and not aborted_read, (partial[:5], missing[:5], aborted_read[:5])
    assert not group_aborted_read, sorted(group_aborted_read)[:5]
    assert not offsets_lost, offsets_lost
    assert counts["acked"] > 0 and txn.committed
