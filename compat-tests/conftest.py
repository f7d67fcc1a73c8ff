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

    def __init__(self, data_dir: Path, log_path: Path, extra_args=()):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = None
        self.extra_args = list(extra_args)
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        skip = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=log,
            stderr=log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}; see {self.log_path}")
            started = re.search(r"sluice broker started listen=127\.0\.0\.1:(\d+)", self.log()[skip:])
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
