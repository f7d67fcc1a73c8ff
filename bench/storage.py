#!/usr/bin/env python3
"""Storage benchmark: the sluice engine (storage-bench) beside fio on the
same disk, at the same write sizes, in one run. Prints one table.

Each row compares sluice appends with fio sequential writes of the same
size: without fsync against fio buffered (ending with one fsync, as the
sluice run ends with one flush), and with group commit against fio doing
an fdatasync after every write. The last column compares sluice's p99
append latency with the p99 of a single write + fdatasync in fio; it is
meaningful for the rows with one append in flight per partition (the
others are throughput runs whose latency includes queueing).

Then start-up (recovery) time over a 4 GiB, 1024-segment log.

usage: bench/storage.py STORAGE_BENCH_BINARY [DATA_DIR] [MIB_PER_RUN]
"""

import json
import subprocess
import sys
from pathlib import Path

from limits import fio


def main() -> int:
    binary = sys.argv[1]
    data = Path(sys.argv[2] if len(sys.argv) > 2 else "bench-data")
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    sizes = {16 << 10: "16k", 1 << 20: "1m"}
    limits = {(b, f): fio(data / "fio", sizes[b], mib, int(f)) for b in sizes for f in (False, True)}
    out = subprocess.run([binary, "--dir", str(data), "--mib-per-run", str(mib)], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    print(f"storage benchmark: {mib} MiB per run, 1 KiB records, one shard, data in {data}")
    header = ("parts", "batch", "fsync", "in flight", "MB/s", "fio MB/s", "% fio", "p50 us", "p99 us", "p999 us", "fio op p99", "p99/fio")
    rows = [header]
    for line in out.stdout.splitlines():
        r = json.loads(line)
        limit = limits[(r["batch_bytes"], r["fsync"] == "group")]
        rows.append((
            r["partitions"], sizes[r["batch_bytes"]], r["fsync"], r["inflight"], f"{r['mb_per_s']:.0f}", f"{limit['mb_per_s']:.0f}",
            f"{100 * r['mb_per_s'] / limit['mb_per_s']:.0f}%", r["p50_us"], r["p99_us"], r["p999_us"],
            f"{limit['op_p99_us']:.0f}" if r["fsync"] == "group" else "-",
            f"{r['p99_us'] / limit['op_p99_us']:.1f}x" if r["fsync"] == "group" and limit["op_p99_us"] else "-",
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))

    out = subprocess.run([binary, "--dir", str(data), "--recovery", "4"], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    print("\nstart-up over a 4 GiB log of 4 MiB segments (one partition):")
    for line in out.stdout.splitlines():
        r = json.loads(line)
        cache = "cold page cache" if r["cold_cache"] else "warm page cache"
        print(f"  after {r['recovery']}: {r['ms']:.0f} ms for {r['segments']} segments ({cache})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
