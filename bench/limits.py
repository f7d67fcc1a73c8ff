"""This machine's limits, measured by standard tools for the benchmarks to
print beside their own numbers: fio for the disk, iperf3 for loopback TCP."""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path


def fio(directory: Path, bs: str, mib: int, sync_every: int) -> dict:
    """Sequential writes of `bs` into `directory`: buffered and ending with
    one fsync when `sync_every` is 0, else an fdatasync after every
    `sync_every` writes. Returns MB/s and the p99 of one write (plus its
    fdatasync when there is one per write), in microseconds."""
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        "fio", "--name=seq", "--rw=write", f"--bs={bs}", f"--size={mib}m", f"--directory={directory}",
        "--ioengine=psync", "--output-format=json",
    ]
    args += [f"--fdatasync={sync_every}"] if sync_every else ["--end_fsync=1"]
    out = subprocess.run(args, capture_output=True, check=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    shutil.rmtree(directory, ignore_errors=True)
    p99 = lambda lat: lat.get("percentile", {}).get("99.000000", 0) / 1e3
    write_p99 = p99(job["write"]["clat_ns"])
    sync_p99 = p99(job.get("sync", {}).get("lat_ns", {})) if sync_every == 1 else 0
    return {"mb_per_s": job["write"]["bw_bytes"] / 1e6, "op_p99_us": write_p99 + sync_p99}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_mb_per_s(seconds: int = 5) -> float:
    """One iperf3 TCP stream over 127.0.0.1."""
    port = str(free_port())
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", port, "-t", str(seconds), "-J"],
                                 capture_output=True, text=True)
            received = json.loads(out.stdout or "{}").get("end", {}).get("sum_received")
            if received:
                return received["bits_per_second"] / 8e6
            time.sleep(0.1)  # the server is not listening yet
        raise RuntimeError(f"iperf3 failed: {out.stdout.strip()[-300:]}")
    finally:
        server.kill()
        server.wait()
