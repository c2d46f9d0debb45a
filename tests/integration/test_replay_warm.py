"""The API's warm point-in-time reads (kept consumers, held states, record cache) on a real
Kafka + etcd give exactly what an uncached read gives: across snapshot boundaries, in any
order of reads, and after new events arrive."""

from __future__ import annotations

import asyncio
import random

from kmevents.replay.engine import Target, replay

from kmevents.adapters import etcd as etcd_adapter
from kmevents.api.timetravel import TimeTravel
from kmevents.settings import Settings
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
