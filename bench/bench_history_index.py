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
        return asyncio.run(_run(s, (300, 1_500) if quick else (1_500, 6_000)))


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
    # the aim: a warm history's index read flat in the log's length (the largest index's within 2x the smallest's)
    flat = out[-1]["figure"] <= 2 * out[0]["figure"]
    out[-1].update(aim=f"flat in the log's length: <= 2x the {sizes[0]:,}-block index's", met=flat)
    return out
