"""A point by occurrence (``state --at T``) on real Kafka + etcd stops reading where the worker's
touched-entity index says nothing later happened by T (replay/occurrence.py): the same state as
reading to the log's end for late arrivals, with blocks in etcd, in groups, and in a group whose
chunks are gone."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from kmevents.replay import logsource
from kmevents.replay.engine import Target, replay

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store import touched
from kmevents.store.snapshots import SnapshotStore
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import all_records, cli, kafka_src
from tests.integration.test_touched_groups import GROUP, SMALL

FAR = "2100-01-01T00:00:00.000000Z"


class NoIndex(SnapshotStore):
    """The snapshot store without the index: a point by occurrence reads to the log's end."""

    def index_heads(self, cluster: str, at: str | None = None, *,
                    since: str | None = None) -> AsyncGenerator[touched.Block, None] | None:
        return None


async def _derived(s: Settings) -> tuple[int, list[Any]]:
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    return p, await all_records(kafka_src(s, p))


def _times(recs: list[Any]) -> list[str]:
    return [orjson.loads(r.value)["occurred_at"] for r in recs]


async def _compare(s: Settings, c: etcd_adapter.EtcdClient, p: int, point: str) -> tuple[Any, Any]:
    src_a, src_b = kafka_src(s, p), kafka_src(s, p)
    a = await replay(src_a, s.cluster, Target.parse(at=point), snapshots=SnapshotStore(s, c), progress=False)
    b = await replay(src_b, s.cluster, Target.parse(at=point), snapshots=NoIndex(s, c), progress=False)
    assert a.state.to_snapshot(chain_hash="x") == b.state.to_snapshot(chain_hash="x"), point
    assert a.applied == b.applied and a.from_snapshot == b.from_snapshot
    return a, b


async def test_heads_are_the_blocks_newest_first_and_groups_say_their_earliest_time(isolated: Settings) -> None:
    s = isolated
    _, recs = await _derived(s)
    times = _times(recs)
    async with etcd_adapter.client(s.etcd) as c:
        blocks = await touched.read_blocks(s, c, s.cluster)
        opened = touched.following(blocks, await touched.read_open(s, c, s.cluster))
        heads = [b async for b in SnapshotStore(s, c).index_heads(s.cluster)]  # type: ignore[union-attr]
        # a walk whose time the groups' entries decide reads none of their blocks: each comes as one span
        spans = [b async for b in SnapshotStore(s, c).index_heads(s.cluster, FAR)]  # type: ignore[union-attr]
        early = [b async for b in SnapshotStore(s, c).index_heads(s.cluster, since="2000-01-01T00:00:00Z")]  # type: ignore[union-attr]
        gen = f"{s.etcd.prefix}/{layout.live_generation()}"
        gp = layout.touched_group_prefix(gen, s.cluster)
        _, gkvs = await etcd_adapter.range_at(c, gp, range_end=etcd_adapter.prefix_end(gp))
    whole = [*blocks, *([opened] if opened is not None else [])]
    assert [(h.first, h.last) for h in heads] == [(b.first, b.last) for b in reversed(whole)]
    assert all(h.timed for h in heads)
    for h in heads:  # each block's earliest time is its records' (every record decodes here)
        assert h.min_occurred_at == min(times[o] for o in range(h.first, h.last + 1)), (h.first, h.last)
    groups = [orjson.loads(kv.value) for kv in gkvs]
    assert len(groups) >= 6
    for g in groups:
        assert g["min_occurred_at"] == min(times[o] for o in range(g["first"], g["last"] + 1))
        assert g["latest_occurred_at"] == max(times[o] for o in range(g["first"], g["last"] + 1))
    for walk in (spans, early):
        assert sorted((b.first, b.last) for b in walk if b.first >= groups[0]["first"] and b.last <= groups[-1]["last"]
                      and any(b.first == g["first"] and b.last == g["last"] for g in groups)) == sorted(
            (g["first"], g["last"]) for g in groups)


async def test_points_by_occurrence_read_only_what_may_have_happened_by_them(isolated: Settings) -> None:
    s = isolated
    p, recs = await _derived(s)
    times = _times(recs)
    late = sum(t < max(times[:i]) for i, t in enumerate(times) if i)
    assert late > 0  # late arrivals: why such a read reads on past its time
    last = recs[-1].offset
    async with etcd_adapter.client(s.etcd) as c:
        for share in (0.1, 0.4, 0.7, 0.95):
            point = sorted(times)[int(share * (len(times) - 1))]
            a, b = await _compare(s, c, p, point)
            assert b.end_offset == last and a.position()["log_last_offset"] == last
            assert a.end_offset <= last and a.scanned <= b.scanned
            if share < 0.9:
                assert a.end_offset < last - 200, share  # (blocks of 50, groups of 6 blocks)
            # nothing left unread happened by the point
            assert all(times[o] > point for o in range(a.end_offset + 1, last + 1))
        # a group whose chunks are gone reads as a range that may hold anything: still the same state
        gen = f"{s.etcd.prefix}/{layout.live_generation()}"
        gp = layout.touched_group_prefix(gen, s.cluster)
        _, gkvs = await etcd_adapter.range_at(c, gp, range_end=etcd_adapter.prefix_end(gp))
        g = orjson.loads(gkvs[0].value)
        point = times[g["first"]]
        before, _ = await _compare(s, c, p, point)
        for kv in gkvs:  # every group: its chunks past the topic's end, and no time in its entry
            e = orjson.loads(kv.value)
            e.pop("min_occurred_at")
            await c.put(kv.key, orjson.dumps({**e, "chunk_offsets": [10**9]}))
        after, _ = await _compare(s, c, p, point)
        assert after.end_offset >= before.end_offset


def test_state_at_says_what_it_left_unread(isolated: Settings) -> None:
    import asyncio

    s = isolated
    _, recs = asyncio.run(_derived(s))
    times = sorted(_times(recs))
    point = times[len(times) // 3]
    out = cli(s, "state", "--at", point, "--format", "json", "--no-progress")
    assert out.returncode == 0, out.stderr
    pos = json.loads(out.stdout)["position"]
    assert pos["log_last_offset"] == recs[-1].offset and pos["covered_to_offset"] < recs[-1].offset
    text = cli(s, "state", "--at", point, "--no-progress")
    assert text.returncode == 0, text.stderr
    assert f"offsets {pos['covered_to_offset'] + 1}..{recs[-1].offset} not read" in text.stdout


def test_a_report_of_a_window_in_the_middle_follows_it_and_stops_reading(isolated: Settings, tmp_path: Any) -> None:
    import asyncio

    s = isolated
    _, recs = asyncio.run(_derived(s))
    times = sorted(_times(recs))
    start, end = times[len(times) // 4], times[len(times) // 3]
    args = ["report", "--from", start, "--to", end, "--follow", "10s", "--format", "json", "--no-progress"]
    indexed = cli(s, *args)
    whole = cli(s, *args, "--no-snapshots")
    assert indexed.returncode == 0 and whole.returncode == 0, indexed.stderr + whole.stderr
    assert indexed.stdout == whole.stdout and json.loads(indexed.stdout)["events_in_window"] > 0
    out = cli(s, *args[:-3], "-o", str(tmp_path / "r.html"), "--no-progress")
    assert out.returncode == 0, out.stderr
    read_to = int(out.stdout.rsplit("read through record ", 1)[1].split(")")[0])
    assert read_to < recs[-1].offset - 200


async def test_the_apis_points_by_occurrence_stop_reading_too(isolated: Settings) -> None:
    from kmevents.api.timetravel import TimeTravel

    s = isolated
    p, recs = await _derived(s)
    times = _times(recs)
    point = sorted(times)[len(times) // 3]
    async with etcd_adapter.client(s.etcd) as c:
        tt = TimeTravel(s, c)
        try:
            got = await tt.state(s.cluster, p, Target.parse(at=point))
        finally:
            await tt.close()
        _, whole = await _compare(s, c, p, point)
    assert got.state.to_snapshot(chain_hash="x") == whole.state.to_snapshot(chain_hash="x")
    assert got.position()["log_last_offset"] == recs[-1].offset and got.end_offset < recs[-1].offset - 200


async def test_a_search_to_a_time_stops_reading_where_the_index_says_with_the_same_hits(isolated: Settings) -> None:
    from kmevents.replay import occurrence, search

    from kmevents.timespec import Point, parse_time

    s = isolated
    p, recs = await _derived(s)
    ordered = sorted(_times(recs))
    f = search.Filters(start=Point(time=parse_time(ordered[len(ordered) // 5])),
                       end=Point(time=parse_time(ordered[len(ordered) // 3])))
    async with etcd_adapter.client(s.etcd) as c:
        store = SnapshotStore(s, c)
        got = [h async for h in search.hits(kafka_src(s, p), f, index=store, cluster=s.cluster)]
        whole = [h async for h in search.hits(kafka_src(s, p), f)]
        assert f.end is not None and f.end.time is not None
        cut = await occurrence.cut_from(kafka_src(s, p), store, s.cluster, f.end.time.iso, recs[0].offset,
                                        recs[-1].offset)
        assert cut is not None
        end = cut.end
    assert got == whole and len(got) > 100
    assert end < recs[-1].offset - 200 and all(h["offset"] <= end for h in got)
