"""Starts the real `sluice` binary for each test on a free loopback port with
its own data directory, and offers kill -9 / restart for crash tests."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))


class Broker:
    """One broker process. It listens on port 0; the port it bound is read
    from its start-up log line, so concurrent brokers never race for one."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=(), listen="127.0.0.1:0", prefix=()):
        self.data_dir = data_dir
        self.prefix = list(prefix)  # runs the binary elsewhere, e.g. in a network namespace
        self.log_path = log_path
        self.port = None
        self.extra_args = list(extra_args)
        self.listen = listen
        self.proc = None
        self.skip = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        return self.launch().wait_started()

    def launch(self):
        """Starts the process without waiting for it to serve (a cluster
        node cannot serve until a quorum of its peers is up too)."""
        self.skip = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
        return self

    def command(self):
        serve = ["serve", "--listen", self.listen, "--data-dir", str(self.data_dir), *self.extra_args]
        return [*self.prefix, str(BINARY), *serve]

    def run_to_exit(self, timeout=60):
        """Runs it in the foreground (one that must refuse to start)."""
        return subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout)

    def become_joining(self, node_id) -> str:
        """From now on starts it the way a replaced voter is started: not
        among its own --voters, its raft address in --raft-listen (README,
        "Replacing a node"). Returns that address."""
        args = self.extra_args
        if "--raft-listen" in args:
            return args[args.index("--raft-listen") + 1]
        at = args.index("--voters") + 1
        entries = args[at].split(",")
        address = next(e for e in entries if e.startswith(f"{node_id}@")).split("@", 1)[1]
        others = ",".join(e for e in entries if not e.startswith(f"{node_id}@"))
        self.extra_args = [*args[:at], others, *args[at + 1 :], "--raft-listen", address]
        return address

    def wait_started(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}; see {self.log_path}")
            started = re.search(r"sluice broker started listen=[^\s]+:(\d+)", self.log()[self.skip :])
            if started:
                self.port = int(started.group(1))
                return self
            time.sleep(0.05)
        raise RuntimeError("broker did not start listening within 30s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "broker.log").start()
    yield b
    if b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()


def free_ports(count):
    """Ports the kernel just handed out, released for the nodes to bind."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Cluster:
    """Three (or more) nodes, each a raft voter and a broker, with fixed
    ports so a restarted node comes back where it was: on loopback, or each
    on its own host of a `netns.Network` (node i on host i)."""

    def __init__(self, root: Path, size=3, extra_args=(), network=None):
        if network:
            hosts = [network.address(i + 1) for i in range(size)]
            kafka, raft = [9092] * size, [9093] * size
        else:
            ports = free_ports(2 * size)
            hosts, kafka, raft = ["127.0.0.1"] * size, ports[:size], ports[size:]
        voters = ",".join(f"{i + 1}@{hosts[i]}:{raft[i]}" for i in range(size))
        self.nodes = {}
        for i in range(size):
            node_id = i + 1
            args = ["--node-id", str(node_id), "--voters", voters, *extra_args]
            self.nodes[node_id] = Broker(
                root / f"node-{node_id}",
                root / f"node-{node_id}.log",
                args,
                listen=f"{hosts[i]}:{kafka[i]}",
                prefix=network.exec_prefix(node_id) if network else (),
            )

    @property
    def bootstrap(self) -> str:
        return ",".join(n.listen for n in self.nodes.values())

    def start(self):
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_started()
        return self

    def running(self):
        return [n for n in self.nodes.values() if n.proc and n.proc.poll() is None]

    def cli(self, *args):
        """`sluice ARGS --brokers <the running nodes>`."""
        brokers = ",".join(n.listen for n in self.running())
        return subprocess.run([str(BINARY), *args, "--brokers", brokers], capture_output=True, text=True, timeout=60)

    def close(self):
        for n in self.nodes.values():
            if n.proc and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGCONT)
                n.proc.kill()
                n.proc.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(
        tmp_path,
        extra_args=["--broker-session-timeout-ms", "2000", "--replica-lag-time-max-ms", "3000", "--shards", "2"],
    ).start()
    yield c
    c.close()
