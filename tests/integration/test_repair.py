"""verify --repair end to end: rebuild under a fresh generation, switch, and workers follow it."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from kmevents.replay.repair import plan_and_stage, switch
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store.generations import current_generation
from tests.integration.test_ingest_api import Server, _with_tokens
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_query_api import _gauge
from tests.integration.test_replay import cli


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


# -- issue 18: a preview writes nothing, leftovers are listed and discarded, the API after a repair --


async def _keys_under(s: Settings) -> int:
    p = f"{s.etcd.prefix}/".encode()
    async with etcd_adapter.client(s.etcd) as c:
        return await etcd_adapter.count_range(c, p, etcd_adapter.prefix_end(p))


def test_a_repair_preview_writes_nothing_and_discard_removes_a_staged_copy_left_behind(isolated: Settings) -> None:
    """Each `verify --repair` without --yes left a full staged copy (19,296 keys per run)."""
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 800))
    asyncio.run(run_worker_until_caught_up(s))
    before = asyncio.run(_keys_under(s))
    for _ in range(2):
        r = cli(s, "verify", "--repair", "--group", f"g-{s.cluster}")
        assert r.returncode == 0, r.stderr
        assert "preview:" in r.stdout and "nothing was written" in r.stdout and "NOT switched" in r.stdout
    assert asyncio.run(_keys_under(s)) == before
    # what a preview of an earlier version left behind: a whole staged generation
    left = asyncio.run(plan_and_stage(s, s.cluster, group_id=f"g-{s.cluster}", force_fenced=False))
    assert asyncio.run(_keys_under(s)) > before
    r = cli(s, "verify", "--repair", "--group", f"g-{s.cluster}")
    assert f"{left.new_generation} ({left.staged:,} keys)" in r.stdout and "--discard" in r.stdout, r.stdout
    r = cli(s, "verify", "--discard", "--format", "json")
    assert r.returncode == 0, r.stderr
    gone = orjson.loads(r.stdout)["discarded"]
    assert [g["generation"] for g in gone] == [left.new_generation] and gone[0]["deleted"] == left.staged + 1
    assert asyncio.run(_keys_under(s)) == before
    assert asyncio.run(verify(s, [s.cluster])).clean


def test_after_a_real_repair_the_api_marks_no_key_ahead_of_the_checkpoint(isolated: Settings) -> None:
    """X-Kmevents-Ahead was the item count and kmevents_keys_ahead_of_checkpoint every key: the
    staged keys are newer than the live checkpoint, and only the repaired generation's own
    checkpoint vouches for them."""
    s = _with_tokens(isolated, metrics_cache_seconds=0)
    asyncio.run(ingest_sim(s, s.cluster, 1200))
    asyncio.run(run_worker_until_caught_up(s))
    r = cli(s, "verify", "--repair", "--yes", "--group", f"g-{s.cluster}")
    assert r.returncode == 0 and "switched readers to" in r.stdout, r.stdout + r.stderr
    read = {"Authorization": "Bearer read-token"}

    def check(url: str) -> int:
        lst = httpx.get(f"{url}/v1/clusters/{s.cluster}/tasks", params={"limit": 1000}, headers=read, timeout=60)
        assert lst.status_code == 200, lst.text
        assert lst.headers["X-Kmevents-Generation"].startswith(f"{layout.live_generation()}.repair-")
        assert lst.json()["count"] > 10
        assert lst.headers["X-Kmevents-Ahead"] == "0" and lst.json()["ahead_of_checkpoint"] == []
        agent = httpx.get(f"{url}/v1/clusters/{s.cluster}/agents", headers=read, timeout=60).json()["items"][0]
        one = httpx.get(f"{url}/v1/clusters/{s.cluster}/agents/{agent['id']}", headers=read, timeout=60)
        assert one.json()["ahead_of_checkpoint"] is False and one.headers["X-Kmevents-Ahead"] == "0"
        metrics = httpx.get(f"{url}/metrics", timeout=60).text
        assert _gauge(metrics, "kmevents_keys_ahead_of_checkpoint") == 0.0
        return int(lst.headers["X-Kmevents-Offset"])

    with Server(s) as url:
        first = check(url)
        # a worker writes on in the repaired generation and the live checkpoint: still nothing ahead
        asyncio.run(ingest_sim(s, s.cluster, 600, seed=2))
        asyncio.run(run_worker_until_caught_up(s))
        assert check(url) > first


def test_verify_all_clusters_needs_no_cluster(isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 500))
    asyncio.run(run_worker_until_caught_up(s))
    nobody = s.model_copy(deep=True)
    nobody.cluster = "never-ingested"  # the default cluster (demo) of a real install, not in the map
    r = cli(nobody, "verify", "--all-clusters", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [h["cluster"] for h in orjson.loads(r.stdout)["chain_heads"]] == [s.cluster]
