"""verify --repair end to end: rebuild under a fresh generation, switch, and workers follow it."""

from __future__ import annotations

import orjson
from kmevents.replay.repair import plan_and_stage, switch
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store.generations import current_generation
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up


async def test_repair_switches_readers_and_a_restarted_worker_keeps_writing_the_repaired_generation(
        isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    await run_worker_until_caught_up(s)
    live = layout.live_generation()
    sp = layout.state_prefix(s.etcd.prefix, s.cluster, live)
    async with etcd_adapter.client(s.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
        victim = next(kv for kv in kvs if b"/agent/" in kv.key)
        bad = orjson.loads(victim.value) | {"hostname": "tampered.example"}
        await c.put(victim.key, orjson.dumps(bad, option=orjson.OPT_SORT_KEYS))
    assert not (await verify(s, [s.cluster])).clean

    plan = await plan_and_stage(s, s.cluster, group_id=f"g-{s.cluster}", force_fenced=False)
    assert plan.new_generation.startswith(f"{live}.repair-")
    await switch(s, plan)
    async with etcd_adapter.client(s.etcd) as c:
        assert await current_generation(c, s.etcd.prefix, s.cluster) == plan.new_generation
    assert (await verify(s, [s.cluster])).clean

    # New events after the switch land in the repaired generation; readers stay consistent.
    await ingest_sim(s, s.cluster, 1500, seed=2)
    await run_worker_until_caught_up(s)
    async with etcd_adapter.client(s.etcd) as c:
        assert await current_generation(c, s.etcd.prefix, s.cluster) == plan.new_generation
    report = await verify(s, [s.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_current_pointed_at_a_generation_the_workers_do_not_keep_is_drift_and_repair_mends_it(
        isolated: Settings) -> None:
    """Issue 14 H5: `current` pointed at generation r1 made verify exit 0 ("older reducer, not
    drift") while the API served an empty state."""
    s = isolated
    await ingest_sim(s, s.cluster, 800)
    await run_worker_until_caught_up(s)
    async with etcd_adapter.client(s.etcd) as c:
        await c.put(layout.current_key(s.etcd.prefix, s.cluster), orjson.dumps({"generation": "r1"}))
    report = await verify(s, [s.cluster])
    assert not report.clean
    assert [f.kind for f in report.drift] == ["current"], [f.as_dict() for f in report.drift]
    plan = await plan_and_stage(s, s.cluster, group_id=f"g-{s.cluster}", force_fenced=False)
    await switch(s, plan)
    assert (await verify(s, [s.cluster])).clean


async def test_a_second_verify_folds_from_the_snapshot_the_first_found_equal_and_still_catches_drift(
        isolated: Settings) -> None:
    """Issue 17: verify refolded the whole log every time. A clean run records the newest
    snapshot it checked equal to its fold; the next folds from there (the chain still from
    the start), and a change to etcd or to the log is still found."""
    from kmevents.store.verified import read_point

    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, snapshot_every_events=700)
    first = await verify(s, [s.cluster])
    assert first.clean and first.resumed_from[s.cluster] is None
    async with etcd_adapter.client(s.etcd) as c:
        point = await read_point(c, s.etcd.prefix, layout.live_generation(), s.cluster)
    assert point is not None and point.snapshot_offset >= 2000
    await ingest_sim(s, s.cluster, 500, seed=2)
    await run_worker_until_caught_up(s, snapshot_every_events=700)
    second = await verify(s, [s.cluster])
    assert second.clean and second.resumed_from[s.cluster] == point.snapshot_offset
    assert second.records == first.records + 500, "the chain is still read from the start"
    full = await verify(s, [s.cluster], full=True)
    assert full.clean and full.resumed_from[s.cluster] is None
    # drift is found by a resumed run too
    live = layout.live_generation()
    sp = layout.state_prefix(s.etcd.prefix, s.cluster, live)
    async with etcd_adapter.client(s.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
        victim = next(kv for kv in kvs if b"/agent/" in kv.key)
        await c.put(victim.key, orjson.dumps(orjson.loads(victim.value) | {"hostname": "tampered"},
                                             option=orjson.OPT_SORT_KEYS))
    tampered = await verify(s, [s.cluster])
    assert tampered.resumed_from[s.cluster] is not None
    assert [f.kind for f in tampered.drift] == ["different"]


async def test_a_verified_point_whose_chain_the_log_no_longer_gives_is_not_trusted(isolated: Settings) -> None:
    from kmevents.store.snapshots import index_entries
    from kmevents.store.verified import read_point, write_point

    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    await run_worker_until_caught_up(s, snapshot_every_events=700)
    assert (await verify(s, [s.cluster])).clean
    async with etcd_adapter.client(s.etcd) as c:
        point = await read_point(c, s.etcd.prefix, layout.live_generation(), s.cluster)
        assert point is not None
        # as if the log before the point had been rewritten since: the recorded chain is not the log's
        snaps = [e for e in await index_entries(s, c, s.cluster) if e["offset"] == point.snapshot_offset]
        await c.put(snaps[0]["_key"].encode(), orjson.dumps({**{k: v for k, v in snaps[0].items() if k != "_key"},
                                                              "chain": "f" * 64}))
        await write_point(c, s.etcd.prefix, layout.live_generation(), s.cluster, snapshot_offset=point.snapshot_offset,
                          chain="f" * 64, checkpoint_offset=point.checkpoint_offset,
                          reducer_version=point.reducer_version)
    again = await verify(s, [s.cluster])
    assert again.resumed_from[s.cluster] is None, "folded from the start"
    assert any(f.kind == "snapshot" for f in again.drift), "and the forged index chain is found"
