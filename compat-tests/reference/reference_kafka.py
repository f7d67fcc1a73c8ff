"""A real Apache Kafka 4.4 broker beside Sluice, as the reference its
answers are compared with. Kafka and its runtime dependencies come from
Maven (`pom.xml` here, cached in ~/.m2). Each node combines broker and
controller (KRaft), is formatted in its own directory and listens on free
loopback ports.

From a test: `with ReferenceKafka(tmp_path, nodes=1) as kafka: kafka.bootstrap`.
From a shell: `python3 compat-tests/reference/reference_kafka.py start DIR [--nodes 3]`
prints the bootstrap address and leaves the nodes running; `... stop DIR`
stops them."""

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "4.4.0"
CLASSPATH_CACHE = Path.home() / ".cache" / "sluice" / f"kafka-{VERSION}.classpath"
HEAP = os.environ.get("REFERENCE_KAFKA_HEAP", "384m")
START_TIMEOUT = 60


class ReferenceError(RuntimeError):
    pass


def classpath():
    """Kafka's runtime classpath, resolved once with Maven."""
    if CLASSPATH_CACHE.exists():
        cached = CLASSPATH_CACHE.read_text().strip()
        if cached and all(Path(jar).exists() for jar in cached.split(os.pathsep)):
            return cached
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise ReferenceError(f"the reference Kafka needs Java 17 and Maven on PATH; not found: {', '.join(missing)}")
    CLASSPATH_CACHE.parent.mkdir(parents=True, exist_ok=True)
    out = CLASSPATH_CACHE.with_suffix(".tmp")
    done = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not out.exists():
        last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ReferenceError(f"mvn could not resolve org.apache.kafka:kafka_2.13:{VERSION}: {last[0]}")
    out.replace(CLASSPATH_CACHE)
    return CLASSPATH_CACHE.read_text().strip()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class ReferenceKafka:
    """`nodes` combined broker+controller nodes under `directory`."""

    def __init__(self, directory, nodes=1):
        self.directory = Path(directory)
        self.count = nodes
        self.procs = []
        self.ports = []

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self):
        cp = classpath()
        ports = free_ports(2 * self.count)
        self.ports, controllers = ports[: self.count], ports[self.count :]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(controllers))
        cluster_id = uuid_for_kafka()
        replication = min(3, self.count)
        for i in range(self.count):
            node = self.directory / f"node-{i + 1}"
            (node / "data").mkdir(parents=True, exist_ok=True)
            props = node / "server.properties"
            props.write_text(
                "\n".join(
                    [
                        "process.roles=broker,controller",
                        f"node.id={i + 1}",
                        f"controller.quorum.voters={voters}",
                        f"listeners=PLAINTEXT://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{controllers[i]}",
                        f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.ports[i]}",
                        "controller.listener.names=CONTROLLER",
                        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                        "inter.broker.listener.name=PLAINTEXT",
                        f"log.dirs={node / 'data'}",
                        f"offsets.topic.replication.factor={replication}",
                        f"transaction.state.log.replication.factor={replication}",
                        f"transaction.state.log.min.isr={min(2, replication)}",
                        f"default.replication.factor={replication}",
                        "group.initial.rebalance.delay.ms=0",
                        "",
                    ]
                )
            )
            java = ["java", f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-cp", cp]
            fmt = subprocess.run(
                # "=": a random id may start with "-", which would read as an option.
                java + ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise ReferenceError(f"formatting reference node {i + 1} failed: {fmt.stderr.strip()[-300:]}")
            log = open(node / "kafka.log", "wb")
            self.procs.append(
                subprocess.Popen(java + ["kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT)
            )
        (self.directory / "pids").write_text(" ".join(str(p.pid) for p in self.procs))
        deadline = time.monotonic() + START_TIMEOUT
        for i, port in enumerate(self.ports):
            while not answers(port):
                if self.procs[i].poll() is not None:
                    self.stop()
                    raise ReferenceError(f"reference node {i + 1} exited; see {self.directory}/node-{i + 1}/kafka.log")
                if time.monotonic() > deadline:
                    self.stop()
                    raise ReferenceError(f"reference node {i + 1} did not listen within {START_TIMEOUT}s")
                time.sleep(0.2)
        return self

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def stop_pids(pids, timeout=30):
    """SIGTERM (Kafka shuts down cleanly), then SIGKILL what is left after `timeout`."""

    def alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def uuid_for_kafka():
    """A cluster id as Kafka's `random-uuid` prints it (base64url, 22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def main():
    parser = argparse.ArgumentParser(description="Start or stop a reference Apache Kafka broker")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory")
    parser.add_argument("--nodes", type=int, choices=[1, 3], default=1)
    args = parser.parse_args()
    try:
        if args.action == "start":
            kafka = ReferenceKafka(args.directory, args.nodes).start()
            print(kafka.bootstrap)
        else:
            pids = Path(args.directory, "pids")
            stop_pids([int(p) for p in pids.read_text().split()] if pids.exists() else [])
    except ReferenceError as e:
        print(f"reference kafka: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
