"""The worker's entity-versions records on real Kafka + etcd (store/versions.py): one per closed
block of the touched-entity index, each equal to a plain fold's capture of the block; none for a
block a restart resumed, none with ``--no-versions``; the derived entities and blocks unchanged."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import pytest
from kmevents.replay import logsource
from kmevents.replay.verify import verify

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings
from kmevents.store import touched, versions
from kmevents.store.snapshots import read_bytes
from tests.integration.test_processors import (
    _spawn_worker,
    checkpoints,
    end_offsets,
    ingest_sim,
    run_worker_until_caught_up,
    spawned_until_caught_up,
)
from tests.unit.processors.test_versions_capture import oracle

#: small blocks, batches and snapshot intervals: blocks close inside batches and at their ends
SMALL = {"snapshot_every_events": 1500, "delta_every_events": 500, "touched_every_events": 200, "max_records": 300}


async def _log(s: Settings) -> tuple[int, list[Any]]:
    """The cluster's partition and its records, from the log's start."""
    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    end = (await end_offsets(s))[p]
    out: list[Any] = []
    async for batch in kafka_adapter.iter_range(s.kafka, s.kafka.events_topic, p, 0, end):
        out += batch
    return p, out


async def _stored(s: Settings) -> tuple[list[touched.Block], dict[tuple[int, int], dict[str, Any]]]:
    async with etcd_adapter.client(s.etcd) as c:
        return (await touched.read_blocks(s, c, s.cluster), await versions.read_entries(s, c, s.cluster))


async def _check_against_the_fold(s: Settings, blocks: list[touched.Block],
                                  entries: dict[tuple[int, int], dict[str, Any]]) -> None:
    """Every entry is a block's, and its record's bytes are the plain fold's capture of it."""
    p, records = await _log(s)
    want = oracle([r for r in records if r.key == s.cluster.encode()], [(b.first, b.last) for b in blocks],
                  s.cluster, p)
    assert set(entries) <= {(b.first, b.last) for b in blocks}
    for (first, last), e in entries.items():
        assert e["kind"] == "versions" and e["snapshot_partition"] == p and e["stored_bytes"] < e["bytes"]
        assert await read_bytes(s, e) == want[first], (first, last)
        got = await versions.read(s, e)
        assert got is not None and (got.first, got.last) == (first, last) and got.applied


async def test_every_closed_block_has_a_versions_record_equal_to_a_plain_folds_capture(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    w = await run_worker_until_caught_up(s, **SMALL)
    blocks, entries = await _stored(s)
    assert len(blocks) == 15, [(b.first, b.last) for b in blocks]
    assert set(entries) == {(b.first, b.last) for b in blocks}
    assert (w.stats.versions_written, w.stats.versions_failures) == (len(blocks), 0)
    await _check_against_the_fold(s, blocks, entries)


async def test_the_derived_entities_and_touched_blocks_are_the_same_with_versions_off(isolated: Settings) -> None:
    """The same log derived into another etcd prefix by a worker with ``versions=False``: every
    key but the versions entries, the checkpoints (the worker's id) and the snapshot entries (chunk
    offsets in the topic the versions records share) holds the same value."""
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, **SMALL)
    off = s.model_copy(deep=True)
    off.etcd.prefix = s.etcd.prefix.replace("/kmevents/", "-off/kmevents/")
    off.kafka.snapshots_topic = f"{s.kafka.snapshots_topic}-off"
    await kafka_adapter.ensure_topics(off.kafka)
    await run_worker_until_caught_up(off, versions=False, **SMALL)

    async def keys(t: Settings) -> dict[bytes, bytes]:
        p = f"{t.etcd.prefix}/".encode()
        async with etcd_adapter.client(t.etcd) as c:
            _, kvs = await etcd_adapter.range_at(c, p, range_end=etcd_adapter.prefix_end(p))
        return {kv.key[len(p):]: kv.value for kv in kvs
                if not any(part in kv.key for part in (b"/_versions/", b"/_checkpoints/", b"/_snapshots/"))}

    on_keys, off_keys = await keys(s), await keys(off)
    assert len(on_keys) > 500 and any(b"/_touched/" in k for k in on_keys)
    assert on_keys == off_keys
    assert (await _stored(off))[1] == {}


async def test_a_restart_mid_block_gives_the_resumed_block_no_record_and_every_other_its_own(
        isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 1130)
    await run_worker_until_caught_up(s, snapshot_every_events=550, delta_every_events=0, touched_every_events=200,
                                     max_records=100)
    ckpt = (await checkpoints(s))[await logsource.partition_of(s, s.cluster) or 0].offset
    closed = (await _stored(s))[0][-1].last
    assert closed < ckpt  # stopped with a block open
    await ingest_sim(s, s.cluster, 700, seed=2)
    await run_worker_until_caught_up(s, snapshot_every_events=550, delta_every_events=0, touched_every_events=200,
                                     max_records=100)
    blocks, entries = await _stored(s)
    across = next(b for b in blocks if b.first <= ckpt < b.last)
    assert across.first == closed + 1
    assert set(entries) == {(b.first, b.last) for b in blocks if b is not across}
    await _check_against_the_fold(s, blocks, entries)


async def test_a_record_whose_store_fails_is_counted_and_left_out_and_derivation_goes_on(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 1500)
    real = versions.write

    async def flaky(writer: Any, **kw: Any) -> dict[str, Any]:
        if kw["first"] in (200, 800):
            raise RuntimeError("the broker said no")
        return await real(writer, **kw)

    monkeypatch.setattr(versions, "write", flaky)
    w = await run_worker_until_caught_up(s, **SMALL)
    blocks, entries = await _stored(s)
    assert (w.stats.versions_written, w.stats.versions_failures) == (len(blocks) - 2, 2)
    assert set(entries) == {(b.first, b.last) for b in blocks if b.first not in (200, 800)}
    assert [r.first for r in caplog.records if r.getMessage() == "versions record not written"] == [200, 800]
    assert (await verify(s, [s.cluster])).clean
    await _check_against_the_fold(s, blocks, entries)


async def _open_parts(s: Settings) -> tuple[touched.Block | None, dict[int, list[int]]]:
    """The open block, and every stored part's first offset by the open block's first it was written for."""
    from kmevents import layout

    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    prefix = layout.versions_open_prefix(gen, s.cluster)
    out: dict[int, list[int]] = {}
    async with etcd_adapter.client(s.etcd) as c:
        opened = await touched.read_open(s, c, s.cluster)
        async for _, kvs in etcd_adapter.range_pages(c, prefix, etcd_adapter.prefix_end(prefix)):
            for kv in kvs:
                first, start = (int(x) for x in kv.key[len(prefix):].split(b"/"))
                out.setdefault(first, []).append(start)
        return opened, out


async def test_a_live_workers_open_block_parts_equal_the_fold_and_a_successor_deletes_them_with_the_close(
        isolated: Settings) -> None:
    """The batch that reaches the log's end writes the open block's part; a worker that takes the
    partition over resumes that block without parts of its own (its first records are re-folded),
    and the close that ends it deletes the earlier worker's."""
    s = isolated
    kw = {"snapshot_every_events": 550, "delta_every_events": 0, "touched_every_events": 200, "max_records": 100}
    await ingest_sim(s, s.cluster, 1130)
    w = await run_worker_until_caught_up(s, **kw)
    assert w.stats.versions_open_parts == 1
    opened, parts = await _open_parts(s)
    assert opened is not None and (opened.first, opened.last) == (1000, 1129)
    assert parts == {1000: [1000]}  # only the last batch (1100..1129) was live: its part covers the block so far
    p, records = await _log(s)
    want = versions.decode(oracle([r for r in records if r.key == s.cluster.encode()],
                                  [(b.first, b.last) for b in (await _stored(s))[0]] + [(1000, 1129)],
                                  s.cluster, p)[1000])
    async with etcd_adapter.client(s.etcd) as c:
        got = await versions.read_open(s, c, s.cluster, 1000, 1129)
    assert got is not None and (got.applied, got.anns, got.values) == (want.applied, want.anns, want.values)
    await ingest_sim(s, s.cluster, 700, seed=2)
    await run_worker_until_caught_up(s, **kw)
    opened, parts = await _open_parts(s)
    blocks, _ = await _stored(s)
    assert opened is not None and opened.first == blocks[-1].last + 1 and opened.last == 1829
    assert list(parts) == [opened.first], parts  # the resumed block's parts went with its close
    p, records = await _log(s)
    want = versions.decode(oracle([r for r in records if r.key == s.cluster.encode()],
                                  [(b.first, b.last) for b in blocks] + [(opened.first, opened.last)],
                                  s.cluster, p)[opened.first])
    async with etcd_adapter.client(s.etcd) as c:
        got = await versions.read_open(s, c, s.cluster, opened.first, opened.last)
    assert got is not None and (got.applied, got.anns, got.values) == (want.applied, want.anns, want.values)


def _kill_once_past(s: Settings, proc: Any, offset: int, timeout: float = 60.0) -> int:
    """SIGKILL the worker as soon as its checkpoint passes ``offset``; the checkpoint then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = max((c.offset for c in asyncio.run(checkpoints(s)).values()), default=-1)
        if got > offset:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return max((c.offset for c in asyncio.run(checkpoints(s)).values()), default=-1)


def test_workers_killed_mid_log_leave_only_records_equal_to_the_fold(isolated: Settings) -> None:
    """A kill can lose a record being stored (history folds that block), and the block a successor
    resumes has none; never a wrong one."""
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 20_000))
    rng = random.Random(11)
    group = f"g-{s.cluster}"
    killed_at = []
    for past in (rng.randrange(3000, 7000), rng.randrange(10_000, 14_000)):
        killed_at.append(_kill_once_past(s, _spawn_worker(s, group), past))
    assert 0 < killed_at[0] < killed_at[1] < 19_999, killed_at  # killed mid-log, twice
    spawned_until_caught_up(s, group)
    blocks, entries = asyncio.run(_stored(s))
    resumed = [b for b in blocks if any(b.first <= k < b.last for k in killed_at)]
    assert resumed and not any((b.first, b.last) in entries for b in resumed)
    assert len(entries) >= len(blocks) - 6, (len(entries), len(blocks))
    asyncio.run(_check_against_the_fold(s, blocks, entries))


def test_no_versions_writes_none(isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 2500))
    spawned_until_caught_up(s, f"g-{s.cluster}", "--no-versions")
    blocks, entries = asyncio.run(_stored(s))
    assert len(blocks) == 2 and entries == {}
