"""History of one entity: the full scan against the worker's touched-entity index, same run.

A real stack; a log written to the events topic, folded by a real worker (snapshots, deltas
and the index at their defaults), then ``history pod/...`` of a pod live in the middle of the
log, both ways, alternated ``ROUNDS`` times in this process; the medians are compared (wall
and this process's CPU time: the machine is shared) and the answers checked equal.

- the simulator's default cluster, ``KMEVENTS_BENCH_HISTORY_EVENTS`` events (default 100,000;
  20,000 with ``--quick``);
- with ``KMEVENTS_BENCH_HISTORY_LARGE=quick`` (or ``full``) also the large profile
  (``bench/large_log.py``: 300,000 events at scale 0.2, or 1.5M): the indexed history only
  with ``KMEVENTS_BENCH_HISTORY_SCAN=0`` (the scan of 1.5M events is minutes).

``KMEVENTS_BENCH_HISTORY_PROFILE=FILE``: cProfile one more indexed run to FILE (pstats).
``KMEVENTS_BENCH_HISTORY_REUSE=TAG``: with ``KMEVENTS_BENCH_EXTERNAL=1``, the log and worker
output of an earlier run with that tag (printed by each run) instead of a new one.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

CLUSTER = "bench-history"
#: runs of each way, alternated
ROUNDS = 3


def run(quick: bool) -> list[dict[str, Any]]:
    from bench._stack import running_stack

    n = int(os.environ.get("KMEVENTS_BENCH_HISTORY_EVENTS", 20_000 if quick else 100_000))
    large = os.environ.get("KMEVENTS_BENCH_HISTORY_LARGE")
    out: list[dict[str, Any]] = []
    with running_stack() as base:
        if os.environ.get("KMEVENTS_BENCH_HISTORY_EVENTS") != "0":
            s = _settings(base, "d")
            if not _reused(s):
                asyncio.run(_prepare_default(s, n))
            out += asyncio.run(_measure(s, n, f"{n:,} events"))
        if large:
            from bench.large_log import large_log

            log = large_log(300_000, scale=0.2) if large == "quick" else large_log()
            s = _settings(base, "l")
            s.cluster = log.meta["recipe"]["cluster"]
            if not _reused(s):
                asyncio.run(_prepare_file(s, log.path))
            scan = os.environ.get("KMEVENTS_BENCH_HISTORY_SCAN", "1") != "0"
            out += asyncio.run(_measure(s, log.events, f"large profile, {log.events:,} events", scan=scan))
    return out


def _settings(base: Any, which: str) -> Any:
    """Fresh topics and prefix (or those of ``KMEVENTS_BENCH_HISTORY_REUSE``)."""
    tag = os.environ.get("KMEVENTS_BENCH_HISTORY_REUSE") or uuid.uuid4().hex[:8]
    s = base.model_copy(deep=True)
    s.kafka.events_topic = f"benchh{which}{tag}.events"
    s.kafka.snapshots_topic = f"benchh{which}{tag}.snapshots"
    s.kafka.deadletter_topic = f"benchh{which}{tag}.dlq"
    s.kafka.partitions = 1
    s.etcd.prefix = f"/benchh{which}{tag}/kmevents/v1"
    s.cluster = CLUSTER
    print(f"  (log tag {tag}: KMEVENTS_BENCH_HISTORY_REUSE={tag} KMEVENTS_BENCH_EXTERNAL=1 reuses it)", flush=True)
    return s


def _reused(s: Any) -> bool:
    return bool(os.environ.get("KMEVENTS_BENCH_HISTORY_REUSE"))


async def _prepare_default(s: Any, n: int) -> None:
    await produce_default(s, n)
    await _derive(s, n)


async def produce_default(s: Any, n: int) -> None:
    """``n`` events of the simulator's default cluster (seed 42) to ``s``'s events topic, partition 0."""
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.simulate import iter_lines

    await kafka_adapter.ensure_topics(s.kafka)
    p = kafka_adapter.producer(s.kafka, linger_ms=20, max_batch_size=1 << 20)
    await p.start()
    try:
        futs = []
        for line in iter_lines(s.cluster, 42, n):
            futs.append(await p.send(s.kafka.events_topic, line.rstrip(b"\n"), key=s.cluster.encode(), partition=0))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def _prepare_file(s: Any, path: Any) -> None:
    from bench.bench_large_derive import _ingest
    from kmevents.adapters import kafka as kafka_adapter

    await kafka_adapter.ensure_topics(s.kafka)
    n = await _ingest(s, path)
    await _derive(s, n)


async def _derive(s: Any, n: int) -> None:
    from bench.bench_derive import derive_until

    took, _ = await derive_until(s, n, max_records=5000)
    print(f"  worker derived {n:,} events in {took:.1f} s", flush=True)


async def _measure(s: Any, n: int, what: str, *, scan: bool = True) -> list[dict[str, Any]]:
    from kmevents.replay import history
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.opening import open_log

    async with open_log(s, cluster=s.cluster, partition=0) as o:
        mid = (await replay(o.source, s.cluster, Target(offset=n // 2), snapshots=o.snapshots,
                            progress=False)).state
        pod = sorted(mid.pods)[len(mid.pods) // 2]

        async def once(way: str) -> tuple[list[dict[str, Any]], history.Indexed | None]:
            # "indexed": as `kmevents history` reads (the groups the runs say hold nothing it asks for
            # not read); "whole": the whole index read first, as every history did before the runs
            idx = await history.open_index(o, lazy=way == "indexed") if way != "scan" else None
            _, entries = await history.history_of(o.source, s.cluster, "pod", [pod], None, False, index=idx)
            return entries, idx

        walls: dict[str, list[float]] = {"scan": [], "indexed": [], "whole": []}
        cpus: dict[str, list[float]] = {"scan": [], "indexed": [], "whole": []}
        found: dict[str, Any] = {}
        ways = ("scan", "indexed", "whole") if scan else ("indexed", "whole")
        # alternated, ROUNDS times each: the machine is shared, so the medians are compared
        for _ in range(ROUNDS):
            for way in ways:
                t, c = time.perf_counter(), time.process_time()
                found[way] = await once(way)
                walls[way].append(time.perf_counter() - t)
                cpus[way].append(time.process_time() - c)
        if scan:
            assert found["scan"][0] == found["indexed"][0], "indexed history differs from the scan"
        assert found["whole"][0] == found["indexed"][0], "the lazy index's history differs from the whole one's"
        idx = found["indexed"][1]
        assert idx is not None
        if os.environ.get("KMEVENTS_BENCH_HISTORY_PROFILE"):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
            await once("indexed")
            prof.disable()
            prof.dump_stats(os.environ["KMEVENTS_BENCH_HISTORY_PROFILE"])
    med = {w: statistics.median(v) for w, v in walls.items() if v}
    cmed = {w: statistics.median(v) for w, v in cpus.items() if v}
    base = {"baseline": f"the full scan of the same history, same run (medians of {ROUNDS})",
            "baseline_figure": round(med["scan"] * 1000, 1), "ratio": round(med["indexed"] / med["scan"], 4)} \
        if scan else {}
    cbase = {"baseline": "the full scan's CPU time, same run (medians)",
             "baseline_figure": round(cmed["scan"] * 1000, 1), "ratio": round(cmed["indexed"] / cmed["scan"], 4)} \
        if scan else {}
    notes = (f"pod {pod}: {len(found['indexed'][0])} events in the history; {idx.folded} of {idx.units} units "
             f"folded, {idx.served} read from versions records ({idx.lookups} more read to look up values), ({idx.events:,} records read over both passes), {idx.loads} snapshot/delta states decoded; "
             f"indexed runs {_ms(walls['indexed'])} ms wall, {_ms(cpus['indexed'])} ms CPU"
             + (f"; scans {_ms(walls['scan'])} ms wall, {_ms(cpus['scan'])} ms CPU" if scan else "")
             + f"; the whole index read first: {_ms(walls['whole'])} ms wall, {_ms(cpus['whole'])} ms CPU"
             + (f"; groups of blocks not read {len(idx.spans.entries) - idx.spans.read}, read for it "
                f"{idx.spans.read}, passes run again {idx.again}" if idx.spans is not None else "; no group has a run")
             + f"; {len(idx.blocks)} index blocks and groups; load average {os.getloadavg()[0]:.1f}")
    return [
        {"name": f"history of one pod, indexed, wall ({what})", "figure": round(med["indexed"] * 1000, 1), "unit": "ms",
         **base, "aim": "<= 1 s", "met": med["indexed"] <= 1.0, "notes": notes},
        {"name": f"history of one pod, indexed, CPU time of this process ({what})",
         "figure": round(cmed["indexed"] * 1000, 1), "unit": "ms", **cbase, "aim": "<= 1 s",
         "met": cmed["indexed"] <= 1.0, "notes": "the broker's and etcd's CPU not counted"},
    ]


def _ms(xs: list[float]) -> str:
    return " / ".join(f"{x * 1000:.0f}" for x in xs)
