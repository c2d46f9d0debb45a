"""Replay on archives alone (no server): offsets, --at versus --known-at, chain heads."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kmevents.replay import archive
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import ArchiveSource

from kmevents import chain
from kmevents.reducer import ClusterState, apply
from kmevents.simulate import generate
from kmevents.timespec import micros_of, parse_time

CLUSTER = "c1"


def sim_records(n: int, seed: int = 3) -> list[LogRecord]:
    out = []
    for i, ev in enumerate(generate(CLUSTER, seed, n, agents=8)):
        # recorded 100 ms after it occurred; offsets interleave with another cluster's (odd ones)
        ts = micros_of(ev["occurred_at"]) // 1000 + 100
        out.append(LogRecord(2 * i, ts, CLUSTER.encode(), orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)))
    return out


def fold_prefix(rs: list[LogRecord], last_offset: int) -> bytes:
    st = ClusterState.empty(CLUSTER)
    for r in rs:
        if r.offset > last_offset:
            break
        apply(st, orjson.loads(r.value), partition=0, offset=r.offset)
    return st.to_snapshot()


def test_state_at_random_offsets_equals_the_fold_of_that_prefix(tmp_path: Path) -> None:
    rs = sim_records(3000)
    archive.write(tmp_path / "a.kmarch", rs, cluster=CLUSTER, partition=0, topic="ev", covers_from=0)
    src = ArchiveSource(tmp_path / "a.kmarch")
    rng = random.Random(5)
    for off in sorted(rng.sample(range(0, 6000), 6)) + [5998]:
        r = asyncio.run(replay(src, CLUSTER, Target(offset=off), progress=False))
        assert r.state.to_snapshot() == fold_prefix(rs, off), off
        expected_head = chain.GENESIS
        for x in rs:
            if x.offset <= off:
                expected_head = chain.link(expected_head, x.key, x.value)
        assert r.chain_head == expected_head


def _late_log() -> list[LogRecord]:
    """Three namespaces: a (10:00, logged 10:00), b (10:05, logged 10:05), c (10:01, logged 10:06: late)."""
    def ev(name: str, occurred: str, i: int) -> bytes:
        e = {"event_id": f"e{i}", "type": "namespace.upserted", "schema_version": 1, "cluster": CLUSTER,
             "source": {"kind": "simulator", "stream_id": "s", "seq": i}, "occurred_at": occurred,
             "clock": "apiserver", "raw_type": "ADDED", "actor": None, "correlation_id": None,
             "causation_id": None, "dedupe_key": f"ns|{name}", "redacted": [],
             "payload": {"namespace": {"name": name, "phase": "Active", "labels": {}}}}
        return orjson.dumps(e, option=orjson.OPT_SORT_KEYS)

    t = parse_time
    return [
        LogRecord(0, t("2026-01-01T10:00:00.100Z").ms, b"c1", ev("a", "2026-01-01T10:00:00.000000Z", 0)),
        LogRecord(1, t("2026-01-01T10:05:00.100Z").ms, b"c1", ev("b", "2026-01-01T10:05:00.000000Z", 1)),
        LogRecord(2, t("2026-01-01T10:06:00.000Z").ms, b"c1", ev("c", "2026-01-01T10:01:00.000000Z", 2)),
    ]


def names(r: object) -> list[str]:
    return sorted(i for i, _ in r.state.entities("namespace"))  # type: ignore[attr-defined]


def test_at_counts_what_happened_and_known_at_what_was_recorded(tmp_path: Path) -> None:
    archive.write(tmp_path / "late.kmarch", _late_log(), cluster=CLUSTER, partition=0, topic="ev", covers_from=0)
    src = ArchiveSource(tmp_path / "late.kmarch")
    at = asyncio.run(replay(src, CLUSTER, Target(at=parse_time("2026-01-01T10:05:30Z")), progress=False))
    known = asyncio.run(replay(src, CLUSTER, Target(known_at=parse_time("2026-01-01T10:05:30Z")), progress=False))
    assert names(at) == ["a", "b", "c"]  # c happened at 10:01 though logged at 10:06
    assert names(known) == ["a", "b"]  # at 10:05:30 the log did not hold c yet
    early_at = asyncio.run(replay(src, CLUSTER, Target(at=parse_time("2026-01-01T10:02:00Z")), progress=False))
    early_known = asyncio.run(replay(src, CLUSTER, Target(known_at=parse_time("2026-01-01T10:02:00Z")),
                                     progress=False))
    assert names(early_at) == ["a", "c"]
    assert names(early_known) == ["a"]
    assert early_at.skipped_later == 1
    assert early_at.last is not None and early_at.last["offset"] == 2
    assert early_at.last["occurred_at"] == "2026-01-01T10:01:00.000000Z"
    assert early_at.last["recorded_at"] == "2026-01-01T10:06:00.000000Z"
    assert early_at.last["ingest_lag_seconds"] == 300.0


def test_bounds_are_inclusive(tmp_path: Path) -> None:
    archive.write(tmp_path / "late.kmarch", _late_log(), cluster=CLUSTER, partition=0, topic="ev", covers_from=0)
    src = ArchiveSource(tmp_path / "late.kmarch")
    r = asyncio.run(replay(src, CLUSTER, Target(at=parse_time("2026-01-01T10:05:00Z")), progress=False))
    assert names(r) == ["a", "b", "c"]
    k = asyncio.run(replay(src, CLUSTER, Target(known_at=parse_time("2026-01-01T10:05:00.100Z")), progress=False))
    assert names(k) == ["a", "b"]


def test_an_empty_range_reads_no_batch_and_a_range_stops_at_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a read at a snapshot's own offset asks for (offset + 1, offset): it decoded every batch
    # after it (2.8 s of a 7.7 s cold read at the large profile's 1.5M events)
    rs = sim_records(3000)
    archive.write(tmp_path / "a.kmarch", rs, cluster=CLUSTER, partition=0, topic="ev", covers_from=0, frame_bytes=20_000)
    src = ArchiveSource(tmp_path / "a.kmarch")
    read_batches: list[int] = []
    real = archive.iter_batches

    def small(path: Path, *, batch: int = 20_000, start: int | None = None) -> Iterator[list[LogRecord]]:
        for b in real(path, batch=100, start=start):
            read_batches.append(b[0].offset)
            yield b

    monkeypatch.setattr(archive, "iter_batches", small)

    async def read(start: int, end: int) -> list[int]:
        return [r.offset for b in [b async for b in src.batches(start, end)] for r in b]

    o, p = rs[500].offset, rs[899].offset
    assert asyncio.run(read(o + 1, o)) == [] and read_batches == []
    assert asyncio.run(read(o, o)) == [o] and len(read_batches) <= 2
    read_batches.clear()
    assert asyncio.run(read(o, p)) == [r.offset for r in rs[500:900]] and len(read_batches) <= 6
