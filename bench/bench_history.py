"""History of one entity: the full scan against the worker's touched-entity index, same run.

A real stack; the simulator's default cluster written to the events topic, folded by a real
worker (snapshots, deltas and the index at their defaults), then ``history pod/...`` of a pod
from the middle of the log, both ways (``KMEVENTS_BENCH_HISTORY_EVENTS``, default 100,000).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

CLUSTER = "bench-history"
#: runs of each way, alternated
ROUNDS = 3


def run(quick: bool) -> list[dict[str, Any]]:
    from bench._stack import running_stack

    n = int(os.environ.get("KMEVENTS_BENCH_HISTORY_EVENTS", 20_000 if quick else 100_000))
    with running_stack() as s:
        s.kafka.events_topic = f"benchh{int(time.time())}.events"
        s.kafka.snapshots_topic = s.kafka.events_topic.replace("events", "snapshots")
        s.etcd.prefix = f"/benchh{int(time.time())}/kmevents/v1"
        return asyncio.run(_run(s, n))


async def _run(s: Any, n: int) -> list[dict[str, Any]]:
    from kmevents.processors.worker import DeriveWorker
    from kmevents.replay import history
    from kmevents.replay.engine import replay
    from kmevents.replay.opening import open_log

    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.simulate import iter_lines
    from kmevents.store.checkpoint import read_checkpoint

    await kafka_adapter.ensure_topics(s.kafka)
    p = kafka_adapter.producer(s.kafka, linger_ms=20, max_batch_size=1 << 20)
    await p.start()
    try:
        futs = []
        for line in iter_lines(CLUSTER, 42, n):
            futs.append(await p.send(s.kafka.events_topic, line.rstrip(b"\n"), key=CLUSTER.encode(), partition=0))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    w = DeriveWorker(s, group_id=f"g-{CLUSTER}")
    await w.start()
    task = asyncio.create_task(w.run())
    t0 = time.perf_counter()
    async with etcd_adapter.client(s.etcd) as c:
        while True:
            ck = await read_checkpoint(c, s.etcd.prefix, layout.live_generation(), 0)
            if ck is not None and ck.offset >= n - 1:
                break
            await asyncio.sleep(0.5)
    derive_s = time.perf_counter() - t0
    w.stop_requested.set()
    await task
    await w.stop()
    out: list[dict[str, Any]] = []
    async with open_log(s, cluster=CLUSTER, partition=0) as o:
        mid = (await replay(o.source, CLUSTER, history_target(n // 2), progress=False)).state
        pod = sorted(mid.pods)[len(mid.pods) // 2]
        times: dict[str, list[float]] = {"scan": [], "indexed": []}
        found: dict[str, Any] = {}
        # alternated, ROUNDS times each: the machine is shared, so the medians are compared
        for _ in range(ROUNDS):
            for way in ("scan", "indexed"):
                t = time.perf_counter()
                idx = await history.open_index(o) if way == "indexed" else None
                rel = await history.related(o.source, CLUSTER, "pod", [pod], None, progress=False, index=idx)
                entries = await history.collect(o.source, CLUSTER, rel, progress=False, index=idx)
                times[way].append(time.perf_counter() - t)
                found[way] = (entries, idx)
        assert found["scan"][0] == found["indexed"][0], "indexed history differs from the scan"
        idx = found["indexed"][1]
        if os.environ.get("KMEVENTS_BENCH_HISTORY_DEBUG"):
            print([(b.first, b.last, b.events, len(b.hashes)) for b in idx.blocks])
        med = {w: statistics.median(v) for w, v in times.items()}
        out.append({"name": f"history of one pod, indexed ({n:,} events)", "figure": round(med["indexed"] * 1000, 1),
                    "unit": "ms", "baseline": f"the full scan of the same history, same run (medians of {ROUNDS})",
                    "baseline_figure": round(med["scan"] * 1000, 1),
                    "ratio": round(med["indexed"] / med["scan"], 4), "aim": "<= 1 s",
                    "met": med["indexed"] <= 1.0,
                    "notes": f"{len(found['scan'][0])} events in the history; {idx.folded} of {idx.units} units "
                             f"folded ({idx.events:,} records read over both passes), {idx.loads} snapshot loads; "
                             f"indexed runs {', '.join(f'{x * 1000:.0f}' for x in times['indexed'])} ms, "
                             f"scans {', '.join(f'{x * 1000:.0f}' for x in times['scan'])} ms; "
                             f"{len(idx.blocks)} index blocks; worker derived {n:,} events in {derive_s:.1f} s"})
    return out


def history_target(offset: int) -> Any:
    from kmevents.replay.engine import Target

    return Target(offset=offset)
