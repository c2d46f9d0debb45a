"""Old touched-index blocks moved out of etcd into groups (store/touched.py, ``group_oldest``), on real
Kafka + etcd: etcd keeps the newest blocks and an entry per group, readers get every block as before,
history's answers stay the scan's, and a group whose chunks are gone reads as a range with no index."""

from __future__ import annotations

import random
from typing import Any

import orjson
from kmevents.replay import history, verify_versions
from kmevents.replay.engine import replay
from kmevents.replay.opening import open_log

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings
from kmevents.store import touched, touched_runs
from tests.integration.test_history_index import _both
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli

#: blocks of 50 events; groups of 6 blocks once more than 4 + 6 are in etcd
SMALL = {"snapshot_every_events": 1500, "delta_every_events": 500, "touched_every_events": 50, "max_records": 300}
GROUP = (6, 4)


async def _etcd(s: Settings) -> tuple[list[bytes], list[dict[str, Any]], list[touched.Block]]:
    """The block keys left in etcd, the group entries, and every block as readers get them."""
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:
        bp, gp = layout.touched_index_prefix(gen, s.cluster), layout.touched_group_prefix(gen, s.cluster)
        _, blocks = await etcd_adapter.range_at(c, bp, range_end=etcd_adapter.prefix_end(bp))
        _, groups = await etcd_adapter.range_at(c, gp, range_end=etcd_adapter.prefix_end(gp))
        return [kv.key for kv in blocks], [orjson.loads(kv.value) for kv in groups], await touched.read_blocks(
            s, c, s.cluster)


async def test_a_worker_groups_old_blocks_and_readers_get_the_same_blocks_and_histories(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    w = await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    keys, groups, blocks = await _etcd(s)
    # the same log derived by a worker that never groups, into another prefix: the same blocks
    flat = s.model_copy(deep=True)
    flat.etcd.prefix = s.etcd.prefix.replace("/kmevents/", "-flat/kmevents/")
    flat.kafka.snapshots_topic = f"{s.kafka.snapshots_topic}-flat"
    await kafka_adapter.ensure_topics(flat.kafka)
    await run_worker_until_caught_up(flat, touched_group=(10**9, 0), **SMALL)
    flat_keys, flat_groups, flat_blocks = await _etcd(flat)
    assert flat_groups == [] and len(flat_keys) == len(flat_blocks) == 60
    assert blocks == flat_blocks  # every block, hashes and all
    assert w.stats.touched_groups == len(groups) >= 6 and w.stats.touched_group_failures == 0
    assert len(keys) + 6 * len(groups) == 60 and len(keys) <= 4 + 2 * 6
    for g in groups:
        assert g["blocks"] == 6 and g["kind"] == "touched" and g["codec"] == "none"
    assert [g["first"] for g in groups] == [blocks[6 * i].first for i in range(len(groups))]
    # etcd keeps the newest blocks: a restart resumes from the last one (touched.last_closed)
    async with etcd_adapter.client(s.etcd) as c:
        last = await touched.last_closed(s, c, s.cluster, blocks[-1].last)
    assert last == blocks[-1]
    # history reads the grouped blocks: the scan's answers, blocks skipped
    for kind in ("pod", "agent"):
        id = await _some(s, kind)
        indexed, scanned, idx = await _both(s, kind, id)
        assert idx.serves and indexed == scanned and scanned["events"], (kind, id)
        assert idx.folded + idx.served < idx.units


async def _some(s: Settings, kind: str) -> str:
    """An entity of ``kind`` from the log's last state (the first by id)."""
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
    return sorted(st.pods if kind == "pod" else st.agents)[0]


async def test_a_group_whose_chunks_are_gone_reads_as_a_range_with_no_index(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    _, groups, blocks = await _etcd(s)
    g = groups[0]
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:  # its entry pointed past the topic's end
        await c.put(layout.touched_group_key(gen, s.cluster, g["first"]),
                    orjson.dumps({**g, "chunk_offsets": [10**9]}))
        got = await touched.read_blocks(s, c, s.cluster)
    assert got == [b for b in blocks if not g["first"] <= b.first <= g["last"]]
    pod = await _some(s, "pod")
    indexed, scanned, idx = await _both(s, "pod", pod)
    assert idx.serves and indexed == scanned  # the range no block covers is folded


async def test_verify_versions_checks_grouped_blocks_like_the_others(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    keys, groups, blocks = await _etcd(s)
    assert groups and len(blocks) == 60
    async with open_log(s, snapshots=False) as o, etcd_adapter.client(s.etcd) as c:
        got = await verify_versions.check(s, o.source, o.cluster, c)
    assert got.differ == [] and got.blocks_checked >= 60 and got.checked == 60


async def _lazily(s: Settings, kind: str, id: str, *, first_asked: bool = True) -> tuple[dict, history.Indexed]:
    """The history of ``kind/id`` as ``kmevents history`` answers it: the groups the hash -> groups runs
    cover read only when they hold what the passes look for (``first_asked=False``: not even the
    groups holding the id asked for are read first, so the passes must run again)."""
    async with open_log(s) as o:
        idx = await history.open_index(o, lazy=True)
        if first_asked:
            rel, entries = await history.history_of(o.source, o.cluster, kind, [id], None, False, index=idx)
        else:
            while True:
                rel = await history.related(o.source, o.cluster, kind, [id], None, progress=False, index=idx)
                entries = await history.collect(o.source, o.cluster, rel, progress=False, index=idx)
                if not await idx.expand():
                    break
                idx.restart()
    return orjson.loads(orjson.dumps({"targets": sorted(rel.targets), "keys": sorted(rel.keys),
                                      "corr": sorted(rel.correlation), "events": entries})), idx


async def test_a_history_from_a_command_reads_only_the_groups_that_hold_what_it_looks_for(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    w = await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    _, groups, _ = await _etcd(s)
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:
        runs = await touched_runs.read_runs(c, gen, s.cluster)
    # a run per group written, merged four at a time: every group covered once, fewer runs than groups
    assert sorted(g for r in runs for g in r.groups) == [g["first"] for g in groups]
    assert w.stats.touched_run_merges >= 1 and any(r.level == 1 for r in runs) and len(runs) < len(groups)
    assert all("max_occurred_at" in g for g in groups) and [g["number"] for g in groups] == list(range(len(groups)))
    # the parts of the runs merged away are tombstoned (the compacted topic reclaims them); the others are not
    k = s.kafka
    part = int(groups[0]["snapshot_partition"])
    last: dict[bytes, bytes | None] = {}
    stem = f"{layout.live_generation()}/{s.cluster}/r".encode()  # (runs' parts: <gen>/<cluster>/r<level>/...)
    async for batch in kafka_adapter.iter_range(k, k.snapshots_topic, part, 0):
        last.update((r.key, r.value) for r in batch if r.key and r.key.startswith(stem))
    live = {key for r in runs for key in touched_runs.part_keys(layout.live_generation(), s.cluster, r)}
    assert live and all(last[key] is not None for key in live)
    gone = [key for key in last if key not in live]
    assert gone and all(last[key] is None for key in gone)
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
    rng = random.Random(3)
    cases = [("pod", i) for i in rng.sample(sorted(st.pods), 3)] + [("task", rng.choice(sorted(st.tasks)))]
    cases += [("agent", sorted(st.agents)[0]), ("pod", sorted(st.pods)[0].split("/", 1)[1])]
    not_read = 0
    for kind, id in cases:
        indexed, scanned, _ = await _both(s, kind, id)
        lazily, idx = await _lazily(s, kind, id)
        assert lazily == indexed == scanned and scanned["events"], (kind, id)
        assert idx.spans is not None
        not_read += len(idx.spans.entries) - idx.spans.read
        # asked nothing of its groups first: the passes ran again with the groups they named, the same answer
        again, idx2 = await _lazily(s, kind, id, first_asked=False)
        assert again == scanned and idx2.again >= (1 if idx.spans.read else 0), (kind, id)
    assert not_read > 0  # (some groups held nothing any of these looked for)
    # the command answers the same, and says which groups it read
    kind, id = cases[0]
    got = cli(s, "history", f"{kind}/{id}", "--format", "json")
    assert got.returncode == 0, got.stderr
    out = orjson.loads(got.stdout)
    indexed, _, _ = await _both(s, kind, id)
    assert out["events"] == indexed["events"]
    assert out["index"]["groups_not_read"] + out["index"]["groups_read_for_it"] == len(groups)
    assert out["index"]["groups_not_read"] > 0 and out["index"]["passed_again"] >= 0


async def test_a_run_whose_part_is_gone_makes_its_groups_read_whole(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:
        runs = await touched_runs.read_runs(c, gen, s.cluster)
        for r in runs:  # every part of every run pointed past the topic's end
            r.parts = [[10**9] for _ in r.parts]
            await c.put(r.key, orjson.dumps(r.entry(s.cluster)))
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
    pod = sorted(st.pods)[1]
    indexed, scanned, _ = await _both(s, "pod", pod)
    lazily, idx = await _lazily(s, "pod", pod)
    assert lazily == scanned == indexed
    assert idx.spans is not None and idx.spans.read == len(idx.spans.entries)  # every group read, none skipped


async def test_groups_written_before_runs_get_theirs_from_the_next_grouping(isolated: Settings) -> None:
    from kmevents.store.snapshots import SnapshotWriter

    s = isolated
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, touched_group=GROUP, **SMALL)
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    gp = layout.touched_group_prefix(gen, s.cluster)
    async with etcd_adapter.client(s.etcd) as c:  # as a worker before runs left them: no runs, no numbers
        rp = layout.touched_runs_prefix(gen, s.cluster)
        await etcd_adapter.delete_range(c, rp, etcd_adapter.prefix_end(rp))
        _, kvs = await etcd_adapter.range_at(c, gp, range_end=etcd_adapter.prefix_end(gp))
        for kv in kvs:
            e = orjson.loads(kv.value)
            del e["number"], e["max_occurred_at"]
            await c.put(kv.key, orjson.dumps(e))
    pod = sorted((await _state(s)).pods)[2]
    indexed, scanned, _ = await _both(s, "pod", pod)
    lazily, idx = await _lazily(s, "pod", pod)
    assert lazily == scanned == indexed and idx.spans is None  # every group read whole
    producer = kafka_adapter.producer(s.kafka, max_request_size=s.kafka.snapshot_max_message_bytes)
    await producer.start()
    try:
        async with etcd_adapter.client(s.etcd) as c:
            n, merges = await touched.group_and_merge(s, c, SnapshotWriter(s, producer, c), s.cluster,
                                                      layout.live_generation(), int(orjson.loads(kvs[0].value)[
                                                          "snapshot_partition"]), keep=GROUP[1], group=GROUP[0])
            runs = await touched_runs.read_runs(c, gen, s.cluster)
            _, after = await etcd_adapter.range_at(c, gp, range_end=etcd_adapter.prefix_end(gp))
    finally:
        await producer.stop()
    groups = [orjson.loads(kv.value) for kv in after]
    assert n == 0 and merges >= 1 and [g["number"] for g in groups] == list(range(len(groups)))
    assert sorted(g for r in runs for g in r.groups) == [g["first"] for g in groups]
    lazily, idx = await _lazily(s, "pod", pod)
    assert lazily == scanned and idx.spans is not None and idx.spans.read < len(idx.spans.entries)


async def _state(s: Settings) -> Any:
    async with open_log(s) as o:
        return (await replay(o.source, s.cluster, progress=False)).state
