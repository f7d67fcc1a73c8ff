"""kafkajs producing (acks=-1, gzip, headers), listing offsets and fetching;
the records are also read back with librdkafka to prove they arrived intact."""

import json
import subprocess
from pathlib import Path

from helpers import consume_range

HERE = Path(__file__).resolve().parent


def test_kafkajs_produces_and_lists_offsets(broker):
    out = subprocess.run(
        ["node", str(HERE / "kafkajs" / "produce.js"), broker.bootstrap, "js", "1000"],
        capture_output=True,
        timeout=120,
        cwd=HERE,
    )
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert result["created"] is True
    assert all(r["error"] == 0 for r in result["baseOffsets"])
    highs = {o["partition"]: (int(o["low"]), int(o["high"])) for o in result["offsets"]}
    assert highs == {0: (0, 500), 1: (0, 500)}
    assert {int(o["offset"]) for o in result["byTime"]} == {500}, "a future timestamp resolves to the log end"

    for partition in (0, 1):
        got = consume_range(broker.bootstrap, "js", partition, 0, 500)
        for n, m in enumerate(got):
            i = 2 * n + partition
            assert (m.key(), m.value(), m.headers()) == (f"k{i}".encode(), f"v{i}".encode(), [("idx", str(i).encode())])

    fetched = subprocess.run(
        ["node", str(HERE / "kafkajs" / "fetch.js"), broker.bootstrap, "js", "2", "500"],
        capture_output=True,
        timeout=120,
        cwd=HERE,
    )
    assert fetched.returncode == 0, fetched.stderr.decode()
    by_partition = json.loads(fetched.stdout.decode().strip().splitlines()[-1])
    for partition in (0, 1):
        records = by_partition[str(partition)]
        assert [r["offset"] for r in records] == list(range(500))
        for n, r in enumerate(records):
            i = 2 * n + partition
            assert (r["key"], r["value"], r["idx"]) == (f"k{i}", f"v{i}", str(i))


def test_kafkajs_transactions_commit_abort_and_send_offsets(broker):
    out = subprocess.run(
        ["node", str(HERE / "kafkajs" / "transactions.js"), broker.bootstrap],
        capture_output=True,
        timeout=120,
        cwd=HERE,
    )
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert result["values"] == ["committed-1", "committed-2", "with-offsets"]
    assert result["committed"] == [3]
