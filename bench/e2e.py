#!/usr/bin/env python3
"""End-to-end benchmark: a real client (librdkafka, via bench/loadgen)
against a Kafka-compatible broker, beside this machine's limits measured in
the same run.

For 1 and 16 partitions, 100 B and 1 KiB records, acks=1 and acks=all: the
producer's maximum acknowledged throughput, then open-loop end-to-end
latency (produce call to consumer receipt, from the due time carried in
each record) at 25%, 50% and 75% of that maximum. Limits: loopback TCP
(iperf3) and the data disk's sequential 64 KiB writes (fio): buffered, and
with an fdatasync after every 16 writes (1 MiB), the batched sync a
group-committing broker does under load. Broker cost: CPU seconds per GB
produced and peak RSS, from /proc.

With BENCH_SOAK_SECONDS set, runs the soak instead: 16 partitions, 1 KiB,
acks=all at 50% of the maximum for that long, sampling the broker's RSS.

Prints a markdown table; writes the same as JSON under bench/results/.

usage: bench/e2e.py LOADGEN SLUICE_BINARY DATA_DIR
env:   BOOTSTRAP=host:port   benchmark that broker instead of starting one
       BROKER_PID=N          its process, for CPU and RSS (optional)
       BENCH_RF=1            replication factor of the benchmark topics
       BENCH_SECONDS=10      seconds per run
       BENCH_SCENARIOS=all   or "quick" (16 partitions, 1 KiB, acks=all)
       BENCH_LINGER_MS=5     the producer's linger.ms (librdkafka's default)
       BENCH_SOAK_SECONDS=   soak length (see above)
"""

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from limits import fio, free_port, loopback_mb_per_s

DISK_WRITE = "64k"
DISK_SYNC_EVERY = 16
SHARES = (25, 50, 75)


class Broker:
    """The broker under test: one we start, or an external one (BOOTSTRAP),
    optionally with its pid (BROKER_PID) for /proc figures."""

    def __init__(self, binary: str, data_dir: Path):
        self.proc = None
        self.pid = int(os.environ["BROKER_PID"]) if os.environ.get("BROKER_PID") else None
        self.bootstrap = os.environ.get("BOOTSTRAP")
        if self.bootstrap:
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        log = open(data_dir / "broker.log", "wb")
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", self.bootstrap, "--data-dir", str(data_dir / "data"),
             "--retention-check-interval-ms", "5000"],
            stdout=log, stderr=log)
        self.pid = self.proc.pid
        deadline = time.time() + 60
        while "sluice broker started" not in (data_dir / "broker.log").read_text(errors="replace"):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the broker did not start; see {data_dir / 'broker.log'}")
            time.sleep(0.1)

    def cpu_seconds(self):
        if self.pid is None:
            return None
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _status_mib(self, key: str):
        if self.pid is None:
            return None
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024

    def rss_mib(self):
        return self._status_mib("VmRSS")

    def peak_rss_mib(self):
        return self._status_mib("VmHWM")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=60)


class Loadgen:
    def __init__(self, binary: str, bootstrap: str):
        self.binary, self.bootstrap = binary, bootstrap
        self.rf = os.environ.get("BENCH_RF", "1")
        self.linger = os.environ.get("BENCH_LINGER_MS", "5")
        self.runs = 0

    def run(self, partitions: int, size: int, acks: str, rate: float, seconds: int, configs=()) -> dict:
        """One run on a new topic (deleted after it); `rate` 0 is the
        throughput mode; `configs` are topic configs, `name=value`."""
        self.runs += 1
        topic = f"bench-{int(time.time())}-{self.runs}"
        args = [self.binary, "--bootstrap", self.bootstrap, "--topic", topic, "--partitions", str(partitions),
                "--replication-factor", self.rf, "--record-size", str(size), "--acks", acks,
                "--rate", str(int(rate)), "--duration", str(seconds), "--linger-ms", self.linger,
                "--consumers", "1" if rate else "0"] + [a for c in configs for a in ("--topic-config", c)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds * 10 + 120)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def measure_limits(data_dir: Path) -> dict:
    """Each the best of two runs: a limit is what the machine can do, and
    this VM's disk swings widely from run to run."""
    best = lambda measure: max(measure() for _ in range(2))
    return {
        "loopback_mb_s": best(loopback_mb_per_s),
        "disk_buffered_mb_s": best(lambda: fio(data_dir / "fio", DISK_WRITE, 1024, 0)["mb_per_s"]),
        "disk_fdatasync_batched_mb_s": best(lambda: fio(data_dir / "fio", DISK_WRITE, 512, DISK_SYNC_EVERY)["mb_per_s"]),
    }


def maximum(broker: Broker, loadgen: Loadgen, partitions: int, size: int, acks: str, seconds: int) -> dict:
    cpu0 = broker.cpu_seconds()
    top = loadgen.run(partitions, size, acks, 0, seconds)
    cpu1 = broker.cpu_seconds()
    gb = top["acked"] * size / 1e9
    top["cpu_s_per_gb"] = (cpu1 - cpu0) / gb if cpu0 is not None and gb > 0 else None
    return top


def matrix(broker: Broker, loadgen: Loadgen, seconds: int, quick: bool) -> list:
    scenarios = [(16, 1024, "all")] if quick else [(p, s, a) for p in (1, 16) for s in (100, 1024) for a in ("1", "all")]
    rows = []
    for partitions, size, acks in scenarios:
        top = maximum(broker, loadgen, partitions, size, acks, seconds)
        latency = {share: loadgen.run(partitions, size, acks, max(1, top["records_per_s"] * share / 100), seconds)
                   for share in SHARES}
        rows.append({"partitions": partitions, "record_size": size, "acks": acks, "max": top, "latency": latency})
        print(f"done: {partitions} partitions, {size} B, acks={acks}", file=sys.stderr)
    return rows


def soak(broker: Broker, loadgen: Loadgen, seconds: int) -> dict:
    """50% of the maximum for `seconds`, sampling RSS every 10 s. Retention
    keeps 256 MiB per partition, so the disk holds a long run."""
    top = maximum(broker, loadgen, 16, 1024, "all", 10)
    samples = []
    done = threading.Event()

    def sample():
        start = time.time()
        while not done.wait(10):
            samples.append((round(time.time() - start), broker.rss_mib()))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        retention = ("retention.bytes=268435456", "segment.bytes=67108864")
        run = loadgen.run(16, 1024, "all", top["records_per_s"] / 2, seconds, retention)
    finally:
        done.set()
        sampler.join()
    return {"max": top, "run": run, "rss_samples_mib": samples}


def percent(value: float, limit: float) -> str:
    return f"{100 * value / limit:.0f}%" if limit else "-"


def latency_cell(run: dict) -> str:
    lat = run.get("latency_ms")
    if not lat:
        return "-"
    cell = f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['p999']:.1f} / {lat['max']:.0f}"
    return cell + (" (short)" if run["received"] < run["acked"] or run["errors"] else "")


def print_matrix(rows: list, limits: dict, linger: str):
    limit = min(limits["loopback_mb_s"], limits["disk_fdatasync_batched_mb_s"])
    print(f"| parts | size | acks | max rec/s | MB/s | % of limit | broker CPU s/GB | "
          f"latency ms p50 / p99 / p99.9 / max at {SHARES[0]}% | at {SHARES[1]}% | at {SHARES[2]}% |")
    print("|---:|---:|---|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        top = r["max"]
        cpu = f"{top['cpu_s_per_gb']:.1f}" if top.get("cpu_s_per_gb") is not None else "-"
        print(f"| {r['partitions']} | {r['record_size']} | {r['acks']} | {top['records_per_s']:.0f} | "
              f"{top['mb_per_s']:.1f} | {percent(top['mb_per_s'], limit)} | {cpu} | "
              + " | ".join(latency_cell(r["latency"][s]) for s in SHARES) + " |")
    print(f"\nMB/s counts record values. % of limit: of min(loopback TCP, disk with batched fdatasync) = "
          f"{limit:.0f} MB/s (the broker syncs before answering acks=1 and acks=all alike). Latency: produce call to "
          f"consumer receipt, open loop at the share of that row's maximum; producer linger.ms={linger}; "
          f"\"(short)\" marks a run that lost or failed records.")


def main():
    loadgen_bin, sluice_bin, data_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    soak_seconds = int(os.environ.get("BENCH_SOAK_SECONDS") or 0)
    limits = measure_limits(data_dir)
    broker = Broker(sluice_bin, data_dir / "broker")
    loadgen = Loadgen(loadgen_bin, broker.bootstrap)
    try:
        if soak_seconds:
            result = {"soak": soak(broker, loadgen, soak_seconds)}
        else:
            result = {"rows": matrix(broker, loadgen, seconds, os.environ.get("BENCH_SCENARIOS") == "quick")}
        peak_rss = broker.peak_rss_mib()
    finally:
        broker.stop()

    date = datetime.datetime.now(datetime.timezone.utc)
    print(f"\n{date:%Y-%m-%d}, {os.cpu_count()} cores; broker {broker.bootstrap}"
          + (f" (started by the benchmark, data in {data_dir / 'broker'})" if broker.proc else "")
          + f", replication factor {loadgen.rf}, {seconds} s per run")
    print(f"limits: loopback TCP {limits['loopback_mb_s']:.0f} MB/s; disk sequential {DISK_WRITE} writes "
          f"{limits['disk_buffered_mb_s']:.0f} MB/s buffered, {limits['disk_fdatasync_batched_mb_s']:.0f} MB/s "
          f"with an fdatasync every {DISK_SYNC_EVERY}")
    if peak_rss is not None:
        print(f"broker peak RSS: {peak_rss:.0f} MiB")
    print()
    if soak_seconds:
        s = result["soak"]
        rss = [mib for _, mib in s["rss_samples_mib"]]
        print(f"soak: {soak_seconds} s at 50% of {s['max']['records_per_s']:.0f} rec/s (16 partitions, 1 KiB, acks=all): "
              f"latency ms p50 / p99 / p99.9 / max {latency_cell(s['run'])}")
        settled = [mib for at, mib in s["rss_samples_mib"] if at >= 120]
        if settled:
            base = settled[0]
            print(f"broker RSS MiB: {', '.join(f'{mib:.0f}' for _, mib in s['rss_samples_mib'][:12])} in the first "
                  f"2 min; after that from {base:.0f} to {settled[-1]:.0f} at the end, max {max(settled):.0f} "
                  f"({percent(max(settled) - base, base)} above the 2-minute value)")
    else:
        print_matrix(result["rows"], limits, loadgen.linger)

    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    out = results / f"e2e-{'soak-' if soak_seconds else ''}{date:%Y-%m-%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"date": date.isoformat(), "bootstrap": broker.bootstrap, "seconds_per_run": seconds,
                               "replication_factor": loadgen.rf, "linger_ms": loadgen.linger, "limits": limits,
                               "broker_peak_rss_mib": peak_rss, **result}, indent=1))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
