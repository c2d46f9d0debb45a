"""A history's read of the touched-entity index, whole against kept (issue 17: history "whatever the
log's length").

    python -m bench.run history_index [--quick]

Every history used to read the cluster's whole index first (replay/history.py ``read_index``): ~25
bytes an event of the log, so that step grew with the log. The API's history route now keeps it
between requests (replay/history_cache.py ``IndexCache``) and reads only what the worker added since.
This measures both on indexes of N blocks (a block is ~1,000 events; 1,500 blocks are the large
profile's 1.5M events), written straight into a temporary stack's etcd as the worker writes them
(``touched.encode`` of 3,000 random hashes each: the large profile's ~24.5 KB a block). The worker
moves old blocks into groups in the snapshots topic; here they all stay in etcd (a whole read of
the large profile's 1,500 took 0.158 s from etcd alone against 0.122 s with its groups, BENCHMARKS.md).

Figure: the kept index's read, with one block closed since the last history (median of 9, wall).
Baseline, same run: the whole read (``read_index``, median of 5). Aim: the kept read flat in the
log's length (the largest index's within twice the smallest's).

A command's history (one process each: nothing kept) reads the index lazily since the hash -> groups
runs (store/touched_runs.py): the same blocks are then grouped as the worker groups them
(``touched.group_and_merge``: groups of 256 blocks with their runs, merged four at a time; its time is
in the notes), and the second figure is what a command's history reads of the index: the blocks left
in etcd, the runs' entries, one part of each run for each of 8 needles (4 hashes of one grouped block,
4 absent) and the group holding the 4 (``read_index(lazy=True)`` then ``Indexed.expand``), fresh readers
each time as a new process has (median of 5). Baseline, same run: the whole read of the same grouped
index (every group's chunks). Aim: flat in the log's length, as above.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from bench._stack import running_stack


def run(quick: bool) -> list[dict[str, Any]]:
    with running_stack() as s:
        return asyncio.run(_run(s, (600, 1_500) if quick else (1_500, 6_000)))


async def _run(s: Any, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    from kmevents.replay.history import read_index
    from kmevents.replay.history_cache import IndexCache

    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.store import touched

    rng = random.Random(5)
    gen_prefix = f"{s.etcd.prefix}/{layout.live_generation()}"
    out = []
    async with etcd_adapter.client(s.etcd) as client:
        for n in sizes:
            cluster = f"hix{n}"

            async def put_block(i: int, cluster: str = cluster) -> None:
                first = i * 1000
                value = touched.encode(first, first + 999, 1000, "2026-01-01T00:00:00.000000Z",
                                       (rng.getrandbits(64) for _ in range(3000)))
                await client.put(layout.touched_index_key(gen_prefix, cluster, first), value)

            for i in range(n):
                await put_block(i)
            whole = []
            for _ in range(5):
                t = time.perf_counter()
                idx = await read_index(s, client, cluster, None)
                whole.append(time.perf_counter() - t)
                assert len(idx.blocks) == n
            cache = IndexCache(s, client)
            await cache.index(cluster, None)
            kept = []
            for j in range(9):
                await put_block(n + j)  # a block closed since the last history
                t = time.perf_counter()
                idx = await cache.index(cluster, None)
                kept.append(time.perf_counter() - t)
                assert idx.kept and len(idx.blocks) == n + j + 1
            w, k = statistics.median(whole), statistics.median(kept)
            out.append({
                "name": f"history's index read, kept between histories, {n:,} blocks (~{n / 1000:g}M events)",
                "figure": k * 1000, "unit": "ms",
                "baseline": "the whole index read (read_index), same run, median of 5", "baseline_figure": w * 1000,
                "ratio": k / w, "aim": "", "met": None,
                "notes": f"kept: median of 9, one block closed since each ({min(kept) * 1000:.1f}-{max(kept) * 1000:.1f} "
                         f"ms); whole: {min(whole) * 1000:.0f}-{max(whole) * 1000:.0f} ms",
            })
            out.append(await _lazy(s, client, cluster, n + 9, rng))
    # the aim: a history's index read flat in the log's length (the largest index's within 2x the smallest's)
    for name in ("kept between histories", "from a command"):
        mine = [r for r in out if name in r["name"]]
        mine[-1].update(aim=f"flat in the log's length: <= 2x the {sizes[0]:,}-block index's",
                        met=mine[-1]["figure"] <= 2 * mine[0]["figure"])
    return out


async def _lazy(s: Any, client: Any, cluster: str, n: int, rng: random.Random) -> dict[str, Any]:
    """The ``n`` blocks grouped as the worker groups them, then a command's lazy read of the index with 8
    needles against the whole read of the same grouped index (see the module docstring)."""
    from kmevents.replay.history import read_index
    from kmevents.replay.opening import SNAPSHOT_PART_FETCH_BYTES, SNAPSHOT_POINT_FETCH_BYTES

    from kmevents import layout
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.store import touched, touched_runs
    from kmevents.store.snapshots import SnapshotWriter

    k = s.kafka
    producer = kafka_adapter.producer(k, max_request_size=k.snapshot_max_message_bytes)
    await producer.start()
    try:
        t, c = time.perf_counter(), time.process_time()
        groups, merges = await touched.group_and_merge(s, client, SnapshotWriter(s, producer, client), cluster,
                                                       layout.live_generation(), 0)
        grouping, grouping_cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        await producer.stop()
    runs = await touched_runs.read_runs(client, f"{s.etcd.prefix}/{layout.live_generation()}", cluster)

    async def timed(lazy: bool) -> tuple[float, Any]:
        readers: dict[tuple[int, int], Any] = {}

        def reader(p: int, fetch: int) -> Any:  # (as a command's Opened.snapshot_points and snapshot_parts)
            r = readers.get((p, fetch))
            if r is None:
                r = readers[(p, fetch)] = kafka_adapter.PartitionReader(k, k.snapshots_topic, p, max_bytes=fetch)
            return r

        def reader_of(p: int) -> Any:
            return reader(p, SNAPSHOT_POINT_FETCH_BYTES)

        def part_reader_of(p: int) -> Any:
            return reader(p, SNAPSHOT_PART_FETCH_BYTES)

        try:
            t = time.perf_counter()
            idx = await read_index(s, client, cluster, None, reader_of=reader_of, lazy=lazy,
                                   part_reader_of=part_reader_of)
            if lazy:
                old = rng.choice([b for b in idx.blocks if isinstance(b, touched.Span)])
                # 4 hashes of a block of that group (read here, outside the timing) and 4 absent ones
                entry = idx.spans.entries[old.first]  # type: ignore[union-attr]
                t0 = time.perf_counter()
                block = rng.choice(await touched._group_blocks(s, entry, reader_of, old.first))
                t += time.perf_counter() - t0
                needles = [*rng.sample(list(block.hashes), 4), *(rng.getrandbits(64) for _ in range(4))]
                await idx.expand(needles)
                assert idx.spans is not None and idx.spans.read == 1
            return time.perf_counter() - t, idx
        finally:
            for r in readers.values():
                await r.close()

    whole = [(await timed(False))[0] for _ in range(5)]
    lazy = []
    for _ in range(5):
        took, idx = await timed(True)
        lazy.append(took)
    parts = idx.spans.lookup.parts_read  # type: ignore[union-attr]
    w, z = statistics.median(whole), statistics.median(lazy)
    return {
        "name": f"history's index read from a command (lazy, 8 needles, one group read), {n:,} blocks "
                f"(~{n / 1000:g}M events)",
        "figure": z * 1000, "unit": "ms",
        "baseline": "the whole read of the same grouped index (read_index), same run, median of 5",
        "baseline_figure": w * 1000, "ratio": z / w, "aim": "", "met": None,
        "notes": f"lazy: median of 5 ({min(lazy) * 1000:.0f}-{max(lazy) * 1000:.0f} ms), {len(runs)} runs "
                 f"(levels {sorted(r.level for r in runs)}), {parts} parts read; whole: "
                 f"{min(whole) * 1000:.0f}-{max(whole) * 1000:.0f} ms; the worker's grouping of these blocks: "
                 f"{groups} groups, {merges} merges, {grouping:.1f} s wall, {grouping_cpu:.1f} s CPU",
    }
