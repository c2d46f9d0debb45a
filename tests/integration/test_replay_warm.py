"""The API's warm point-in-time reads (kept consumers, held states, record cache) on a real
Kafka + etcd give exactly what an uncached read gives: across snapshot boundaries, in any
order of reads, and after new events arrive."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from kmevents.replay import logsource
from kmevents.replay.engine import Target, replay

from kmevents.adapters import etcd as etcd_adapter
from kmevents.api.timetravel import TimeTravel
from kmevents.reducer.sizing import estimate_bytes
from kmevents.settings import Settings
from kmevents.store.snapshots import is_delta
from kmevents.timespec import parse_time
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import derived, kafka_src


def _tt(s: Settings, c: etcd_adapter.EtcdClient, *, warm: bool) -> TimeTravel:
    s = s.model_copy(deep=True)
    s.api.replay_cache_entries = 0  # every read replays: the warm caches are what is tested
    s.api.replay_state_cache_entries = 6 if warm else 0
    s.api.replay_record_cache_mib = 64 if warm else 0
    s.api.replay_state_every = 250
    tt = TimeTravel(s, c)
    tt.bounds_ttl_seconds = 0.0  # see new records at once
    return tt


async def _same(a: TimeTravel, b: TimeTravel, cluster: str, p: int, target: Target) -> int:
    ra = await a.state(cluster, p, target)
    rb = await b.state(cluster, p, target)
    assert ra.end_offset == rb.end_offset
    assert ra.state.to_snapshot() == rb.state.to_snapshot(), target.describe()
    assert ra.chain_head == rb.chain_head
    return ra.end_offset


async def test_warm_reads_equal_cold_reads_across_snapshots_and_after_new_events(isolated: Settings) -> None:
    s = isolated
    p = await derived(s, 2500)  # snapshots every 700 events
    async with etcd_adapter.client(s.etcd) as c:
        warm, cold = _tt(s, c, warm=True), _tt(s, c, warm=False)
        try:
            _, last = await kafka_src(s, p).covers()
            rng = random.Random(4)
            offsets = [rng.randrange(last + 1) for _ in range(14)] + [699, 700, 701, 1399, 1400, last, last - 1]
            for off in offsets:
                await _same(warm, cold, s.cluster, p, Target(offset=off))
            assert warm.states.hits > 0 and warm.records.hits > 0
            assert warm.snapshot_loads < len(offsets) // 2  # held, not reloaded per read
            assert warm.readers and all(r.consumers_started == 1 for r in warm.readers.values())
            # concurrent reads share the partition's one consumer
            offs = [rng.randrange(last + 1) for _ in range(5)]
            warm.states.clear()
            warm.records.clear()
            got = await asyncio.gather(*(warm.state(s.cluster, p, Target(offset=o)) for o in offs))
            for o, r in zip(offs, got, strict=True):
                want = await cold.state(s.cluster, p, Target(offset=o))
                assert r.state.to_snapshot() == want.state.to_snapshot(), o
            # a read equals the fold of the whole prefix, no snapshot at all
            full = await replay(kafka_src(s, p), s.cluster, Target(offset=offsets[0]), progress=False)
            got = await warm.state(s.cluster, p, Target(offset=offsets[0]))
            assert got.state.to_snapshot() == full.state.to_snapshot()

            # new events arrive (and new snapshots): reads beyond the old end, and before it, stay exact
            await ingest_sim(s, s.cluster, 1200, seed=2)
            await run_worker_until_caught_up(s, snapshot_every_events=700, max_records=400)
            _, last2 = await kafka_src(s, p).covers()
            assert last2 > last
            for off in [last, last + 1, rng.randrange(last, last2 + 1), last2, rng.randrange(last + 1), last2 - 3]:
                await _same(warm, cold, s.cluster, p, Target(offset=off))
            # at= and known_at= reads too
            mid = await warm.state(s.cluster, p, Target(offset=(last + last2) // 2))
            assert mid.last is not None
            t = parse_time(mid.last["occurred_at"])
            await _same(warm, cold, s.cluster, p, Target(at=t))
            await _same(warm, cold, s.cluster, p, Target(known_at=parse_time(mid.last["recorded_at"])))
        finally:
            await warm.close()
            await cold.close()


async def test_a_delta_is_applied_to_its_held_base_and_the_family_is_charged_once(
        isolated: Settings, caplog: pytest.LogCaptureFixture) -> None:
    s = isolated
    caplog.set_level(logging.DEBUG, logger="kmevents.api.timetravel")
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, snapshot_every_events=1200, delta_every_events=250, max_records=100)
    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    async with etcd_adapter.client(s.etcd) as c:
        warm, cold = _tt(s, c, warm=True), _tt(s, c, warm=False)
        try:
            entries = await warm.snapshots.entries(s.cluster)
            deltas = [e for e in entries if is_delta(e)]
            assert len(deltas) >= 3, entries
            base_off = int(deltas[0]["base"])
            base = next(e for e in entries if int(e["offset"]) == base_off and not is_delta(e))
            await _same(warm, cold, s.cluster, p, Target(offset=base_off))  # loads and holds the base
            loads = warm.snapshot_loads
            same_base = [e for e in deltas if int(e["base"]) == base_off]
            for e in same_base:
                await _same(warm, cold, s.cluster, p, Target(offset=int(e["offset"])))
                # each read says how it was built: the delta, loaded onto the held base
                assert warm.last_plan == {"end": int(e["offset"]), "from": "delta", "from_offset": int(e["offset"]),
                                          "records": 0, "loads": 1}, warm.last_plan
            # each delta was applied to a fork of the held base: no second load of the base
            assert warm.snapshot_loads == loads + len(same_base)
            # a read just after a held state folds on from it, loading nothing
            near = int(same_base[-1]["offset"]) + 7
            caplog.clear()
            got = await warm.state(s.cluster, p, Target(offset=near))
            assert warm.last_plan == {"end": near, "from": "held", "from_offset": near - 7, "records": 7,
                                      "loads": 0}, warm.last_plan
            assert {"fold", "fork", "freeze"} <= warm.last_timing.keys()
            # ... and logs it so (DEBUG; INFO when slower than SLOW_READ_SECONDS)
            (rec,) = [r for r in caplog.records if r.name == "kmevents.api.timetravel"]
            assert (rec.__dict__["end"], rec.__dict__["from"], rec.__dict__["records"]) == (near, "held", 7)
            assert "fold" in rec.__dict__["stages"] and rec.__dict__["seconds"] > 0
            want = await cold.state(s.cluster, p, Target(offset=near))
            assert got.state.to_snapshot() == want.state.to_snapshot()
            held = {h.offset: h for h in warm.states.held()}
            root = held[base_off]
            for e in same_base:
                h = held[int(e["offset"])]
                assert h.root is root and 0 < h.bytes < root.bytes  # charged for its own part only
            # the root once and each member for its own part: less than counting each whole
            members = [h for h in held.values() if h.root is root]
            assert warm.states.bytes == root.bytes + sum(h.bytes for h in members)
            assert warm.states.bytes < sum(estimate_bytes(h.state) for h in held.values())
            assert int(base["offset"]) == base_off
            # reads served at once (separate tasks) each log their own plan and stages
            caplog.clear()
            ends = [near + 3, base_off + 11, int(same_base[0]["offset"]) + 5]
            loads = warm.snapshot_loads
            await asyncio.gather(*(warm.state(s.cluster, p, Target(offset=o)) for o in ends))
            logged = [r.__dict__ for r in caplog.records if r.name == "kmevents.api.timetravel"]
            assert sorted(r["end"] for r in logged) == sorted(ends)
            for r in logged:  # (a held state, or a stored one's kept from an earlier read)
                assert r["from_offset"] + r["records"] == r["end"] and r["from"] in ("held", "delta", "snapshot"), r
                assert "fold" in r["stages"], r
            assert sum(r["loads"] for r in logged) == warm.snapshot_loads - loads  # each counts its own
        finally:
            await warm.close()
            await cold.close()


async def test_reads_at_once_each_count_their_own_loads(isolated: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Two reads past one stored snapshot nobody holds, at once: one loads it, the other waits for
    that load. The waiting one says it began from a held state and, having loaded nothing itself,
    folds in segments, holding a state every ``replay_state_every`` records (the process-wide count
    of loads once made it think it had loaded, and it held none)."""
    s = isolated
    caplog.set_level(logging.DEBUG, logger="kmevents.api.timetravel")
    p = await derived(s, 2500)  # snapshots every 700 events
    async with etcd_adapter.client(s.etcd) as c:
        warm, cold = _tt(s, c, warm=True), _tt(s, c, warm=False)
        try:
            _, last = await kafka_src(s, p).covers()
            entries = await warm.snapshots.entries(s.cluster)
            base = max(int(e["offset"]) for e in entries if not is_delta(e) and int(e["offset"]) + 650 <= last)
            ends = [base + 600, base + 650]
            caplog.clear()
            got = await asyncio.gather(*(warm.state(s.cluster, p, Target(offset=o)) for o in ends))
            logged = [r.__dict__ for r in caplog.records if r.name == "kmevents.api.timetravel"]
            assert sorted((r["from"], r["loads"]) for r in logged) == [("held", 0), ("snapshot", 1)], logged
            held = {h.offset for h in warm.states.held()}
            assert {base, base + 250, base + 500} <= held, sorted(held)  # the waiting read's segments
            for o, r in zip(ends, got, strict=True):
                want = await cold.state(s.cluster, p, Target(offset=o))
                assert r.state.to_snapshot() == want.state.to_snapshot(), o
        finally:
            await warm.close()
            await cold.close()
