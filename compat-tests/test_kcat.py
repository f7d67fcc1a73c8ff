"""kcat (Debian's, linking librdkafka 2.0.2 — the old client) against a live
broker: metadata listing, producing with keys and headers, consuming."""

import subprocess


def kcat(broker, *args, stdin=None):
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *args], input=stdin, capture_output=True, timeout=60, check=True
    )
    return out.stdout.decode()


def test_list_shows_broker_and_topics(broker):
    listing = kcat(broker, "-L")
    assert f"broker 0 at {broker.bootstrap} (controller)" in listing
    assert "0 topics" in listing
    kcat(broker, "-P", "-t", "listed", stdin=b"x\n")
    listing = kcat(broker, "-L", "-t", "listed")
    assert 'topic "listed" with 1 partitions' in listing
    assert "partition 0, leader 0, replicas: 0, isrs: 0" in listing


def test_produce_and_consume_keys_values_headers(broker):
    lines = "".join(f"key{i}:value {i}\n" for i in range(1000)).encode()
    kcat(broker, "-P", "-t", "words", "-K:", "-H", "origin=kcat", "-z", "gzip", stdin=lines)
    out = kcat(broker, "-C", "-t", "words", "-e", "-f", "%o|%k|%s|%h\n")
    rows = out.splitlines()
    assert len(rows) == 1000
    for i, row in enumerate(rows):
        assert row == f"{i}|key{i}|value {i}|origin=kcat"


def test_consume_from_offsets_and_query_by_time(broker):
    kcat(broker, "-P", "-t", "seek", stdin="".join(f"m{i}\n" for i in range(20)).encode())
    out = kcat(broker, "-C", "-t", "seek", "-o", "15", "-e", "-f", "%o:%s\n")
    assert out.splitlines() == [f"{i}:m{i}" for i in range(15, 20)]
    out = kcat(broker, "-C", "-t", "seek", "-o", "-3", "-e", "-f", "%s\n")
    assert out.splitlines() == ["m17", "m18", "m19"]
    assert "seek [0] offset 0" in kcat(broker, "-Q", "-t", "seek:0:0")


def test_group_consumer_resumes_at_committed_offset(broker):
    kcat(broker, "-P", "-t", "kgroup", stdin=b"a\nb\nc\n")
    first = kcat(broker, "-G", "kcat-group", "-o", "beginning", "kgroup", "-e", "-f", "%o:%s\n")
    assert first.splitlines() == ["0:a", "1:b", "2:c"]
    kcat(broker, "-P", "-t", "kgroup", stdin=b"d\n")
    again = kcat(broker, "-G", "kcat-group", "kgroup", "-e", "-f", "%o:%s\n")
    assert again.splitlines() == ["3:d"], "the group resumes after what it committed"
