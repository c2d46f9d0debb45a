"""Reading a cluster of the real trace's size (issue 17): the large profile's log.

    python -m bench.run large [--quick]

Input: ``bench.large_log`` (1,500,000 events of ``kmevents simulate --profile large``:
12,500 agents, ~140,000 running pod tasks; quick: 300,000 events at ``--scale 0.2``),
stored as an archive, as ``kmevents archive export`` writes it.

- fold rate: the reducer's ``apply`` over the whole log from the archive (CPU time of
  this process), against the same-run baseline ``orjson.loads`` + one dict update per
  record over the same bytes;
- a cold ``kmevents state --source ARCHIVE --no-snapshots`` (a whole-log rebuild in a
  child process: wall time and peak RSS), and the fold's memory per live pod;
- point in time: cold ``kmevents state --source ARCHIVE --offset N`` on an archive that
  keeps a snapshot every 20,000 offsets (the processors' interval), at random offsets
  and at the farthest from a snapshot; wall time and the child's peak RSS. ``state``
  prints its summary (the default; ``--format json`` of the whole state adds 2-3 s
  of encoding at the full size).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench._peak import run_kmevents
from bench.bench_replay import _baseline, _result, _snapshots_along, records_of
from bench.large_log import large_log

SNAP_EVERY = 20_000


def _cold(cluster: str, *argv: str) -> tuple[float, float]:
    """A ``kmevents state`` child: its wall seconds and its own peak RSS (MiB, through
    ``bench._peak``). Nothing may connect."""
    wall, peak, _ = run_kmevents(["state", "--cluster", cluster, "--no-progress", *argv],
                                 {"KMEVENTS_KAFKA__BOOTSTRAP": "127.0.0.1:9",
                                  "KMEVENTS_ETCD__ENDPOINT": "http://127.0.0.1:9"})
    return wall, peak


def run(quick: bool) -> list[dict[str, Any]]:
    from kmevents.replay import archive
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.sources import ArchiveSource

    from kmevents.reducer import REDUCER_VERSION, ClusterState, apply
    from kmevents.reducer.apply import collect_rarely
    from kmevents.reducer.conditions import condition

    log = large_log(300_000, scale=0.2) if quick else large_log()
    cluster = log.meta["recipe"]["cluster"]
    with log.path.open("rb") as f:
        recs = records_of(f, cluster)
    n = len(recs)
    what = f"{n:,} events, {log.meta['agents']:,} agents, {log.meta['pods']:,} pods aimed at"
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kmevents-bench-large-") as tmpd:
        tmp = Path(tmpd)
        plain = tmp / "plain.kmarch"
        archive.write(plain, recs, cluster=cluster, partition=0, topic="kmevents.events", covers_from=0)
        collect_rarely()  # the GC setting of the CLI commands that replay (commands._source.run); baseline too
        base = _baseline(recs)
        t = time.process_time()
        r = asyncio.run(replay(ArchiveSource(plain), cluster, Target(), progress=False))
        rate = n / (time.process_time() - t)
        assert r.applied == n
        out.append(_result(f"archive replay, fold included, large profile ({what})", rate, "events/s",
                           ">= 100k events/s; fold >= 0.5 of baseline", rate >= 100_000 and rate / base >= 0.5,
                           "CPU time of this process", "orjson.loads + one dict update per record, same bytes", base))
        st = ClusterState.empty(cluster)
        for rec in recs:
            apply(st, orjson.loads(rec.value), partition=0, offset=rec.offset)
        pods = sum(1 for _, p in st.entities("pod") if condition(p) not in ("Deleted", "Evicted"))
        del st, r
        wall, rss = _cold(cluster, "--source", str(plain), "--no-snapshots")
        out.append(_result("cold `state --source ARCHIVE --no-snapshots` (whole-log rebuild), wall", wall, "s",
                           "(a coffee, not a lunch)", None,
                           f"peak RSS {rss:.0f} MiB for {pods:,} live pods: {rss * 1024 / max(pods, 1):.1f} KiB "
                           "per live pod and its task (aim <= 2 KB)"))
        out.append(_result("cold whole-log rebuild, peak RSS", rss, "MiB", "<= 400 MiB", rss <= 400,
                           f"{pods:,} live pods at the end"))
        snap = tmp / "snapshots.kmarch"
        w = archive.ArchiveWriter(snap, cluster=cluster, partition=0, topic="kmevents.events", covers_from=0)
        t = time.perf_counter()
        for rec, h, data, _ in _snapshots_along(recs, SNAP_EVERY, cluster=cluster):
            w.add(rec)
            if data is not None:
                w.add_snapshot(data, offset=rec.offset, chain_head=h, reducer_version=REDUCER_VERSION)
        header = w.close()
        build = time.perf_counter() - t
        offs = [*random.Random(4).sample(range(n), 3), n - 2 - (n - 1) % SNAP_EVERY if n > SNAP_EVERY else n - 1]
        reads = [_cold(cluster, "--source", str(snap), "--offset", str(o)) for o in offs]
        worst = max(w for w, _ in reads)
        out.append(_result(f"point in time, cold CLI from an archive with a snapshot per {SNAP_EVERY:,} (max of 4)",
                           worst, "s", "<= 3 s at the large profile", worst <= 3,
                           f"offsets {', '.join(f'{o:,}' for o in offs)}: "
                           f"{', '.join(f'{w:.1f} s / {m:.0f} MiB' for w, m in reads)} (wall / peak RSS); "
                           f"{len(header['snapshots'])} snapshots, archive {snap.stat().st_size / 2**20:.0f} MiB "
                           f"(built in {build:.0f} s)", "the whole-log rebuild", wall))
        out.append(_result("point in time, cold CLI, peak RSS (max of 4)", max(m for _, m in reads), "MiB",
                           "<= 400 MiB", max(m for _, m in reads) <= 400, "the same reads"))
    return out
