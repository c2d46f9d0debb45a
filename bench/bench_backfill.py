"""History's versions records built beside the worker (``kmevents snapshots backfill``), same run.

One temporary stack; ``KMEVENTS_BENCH_BACKFILL_EVENTS`` events of the simulator's default
cluster (default 100,000; 20,000 with ``--quick``), or with ``KMEVENTS_BENCH_BACKFILL_LARGE=quick``
(or ``full``) the large profile's log (``bench/large_log.py``: 300,000 events at scale 0.2, or
1.5M), on one topic, derived three times from the
first record, each into an etcd prefix and snapshots topic of its own, with the worker's default
cadence (snapshots, deltas, the touched index):

1. **with versions** (the worker's default): the worker captures every block's record itself;
2. **--no-versions**, then ``Backfill`` over the whole log (``skip_newest=0``), in this process:
   the worker's rate and CPU without the capture, and the backfill's own;
3. **--no-versions with a follower beside it**: ``kmevents snapshots backfill --follow`` in a
   child process while the worker derives, as deployed on two cores shared with Kafka and etcd:
   the worker's rate, and how long after it caught up the last record was stored.

Baselines in the same run: the worker with versions (1) for the worker's rate, and a plain fold
of the same log (the replay engine, no capture) for the backfill's rate. Every record the
backfill and the follower built is checked equal, byte for byte, to the one the worker with
versions stored for the same block.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

CLUSTER = "bench-backfill"


def run(quick: bool) -> list[dict[str, Any]]:
    from bench._stack import running_stack

    large = os.environ.get("KMEVENTS_BENCH_BACKFILL_LARGE")
    n = int(os.environ.get("KMEVENTS_BENCH_BACKFILL_EVENTS", 20_000 if quick else 100_000))
    with running_stack() as base:
        if large:
            from bench.large_log import large_log

            log = large_log(300_000, scale=0.2) if large == "quick" else large_log()
            return asyncio.run(_run(base, log.events, log=log))
        return asyncio.run(_run(base, n))


def _copy(base: Any, topic: str, which: str, cluster: str = CLUSTER) -> Any:
    tag = uuid.uuid4().hex[:8]
    s = base.model_copy(deep=True)
    s.kafka.events_topic = topic
    s.kafka.snapshots_topic = f"benchb{which}{tag}.snapshots"
    s.kafka.deadletter_topic = f"benchb{which}{tag}.dlq"
    s.kafka.partitions = 1
    s.etcd.prefix = f"/benchb{which}{tag}/kmevents/v1"
    s.cluster = cluster
    return s


async def _derive(s: Any, n: int, **kw: Any) -> tuple[float, float]:
    """Wall and this process's CPU seconds of a worker deriving the log (default cadence)."""
    from bench.bench_derive import derive_until
    from kmevents.adapters import kafka as kafka_adapter

    await kafka_adapter.ensure_topics(s.kafka)
    c0 = time.process_time()
    took, _ = await derive_until(s, n, **kw)
    return took, time.process_time() - c0


async def _records(s: Any) -> dict[tuple[int, int], bytes]:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.store import touched
    from kmevents.store import versions as versions_store
    from kmevents.store.snapshots import read_bytes

    async with etcd_adapter.client(s.etcd) as c:
        blocks = await touched.read_blocks(s, c, s.cluster)
        entries = await versions_store.read_entries(s, c, s.cluster)
    out = {}
    for key, e in entries.items():
        data = await read_bytes(s, e)
        assert data is not None, key
        out[key] = data
    assert set(out) <= {(b.first, b.last) for b in blocks}
    return out


async def _backfill(s: Any) -> tuple[float, float, Any]:
    from kmevents.replay.opening import open_log
    from kmevents.replay.versions_backfill import Backfill

    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.store.snapshots import SnapshotStore, SnapshotWriter

    k = s.kafka
    producer = kafka_adapter.producer(k, max_request_size=k.snapshot_max_message_bytes)
    await producer.start()
    try:
        async with open_log(s, cluster=s.cluster, partition=0) as o:
            b = Backfill(s, s.cluster, o.client, snapshots=SnapshotStore(s, o.client),
                         writer=SnapshotWriter(s, producer, o.client), partition=0, skip_newest=0)
            t, c = time.perf_counter(), time.process_time()
            got = await b.run(o.source)
            return time.perf_counter() - t, time.process_time() - c, got
    finally:
        await producer.stop()


async def _plain_fold(s: Any) -> tuple[float, int]:
    from kmevents.replay.engine import replay
    from kmevents.replay.opening import open_log

    async with open_log(s, cluster=s.cluster, partition=0, snapshots=False) as o:
        c = time.process_time()
        r = await replay(o.source, s.cluster, progress=False)
        return time.process_time() - c, r.scanned


async def _follow(s: Any, n: int, blocks_wanted: int) -> tuple[float, float, float]:
    """The worker (no versions) with a follower child beside it: the worker's wall seconds, this
    process's CPU, and the seconds from the worker's catching up to the follower's last record."""
    from bench._stack import stack_env
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.store import versions as versions_store

    await kafka_adapter.ensure_topics(s.kafka)
    child = subprocess.Popen([sys.executable, "-m", "kmevents.cli", "snapshots", "backfill", "--follow",
                              "--skip-newest", "0", "--interval", "1", "--no-progress", "--format", "json"],
                             env={**os.environ, **stack_env(s)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        took, cpu = await _derive(s, n, versions=False)
        caught = time.perf_counter()
        async with etcd_adapter.client(s.etcd) as c:
            while len(await versions_store.read_entries(s, c, s.cluster)) < blocks_wanted:
                if child.poll() is not None:
                    raise RuntimeError(f"the follower exited: {child.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
                if time.perf_counter() - caught > 600:
                    raise RuntimeError("the follower did not build every record in 600 s")
                await asyncio.sleep(0.1)
        lag = time.perf_counter() - caught
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    return took, cpu, lag


async def _run(base: Any, n: int, log: Any = None) -> list[dict[str, Any]]:
    topic = f"benchb{uuid.uuid4().hex[:8]}.events"
    cluster = log.meta["recipe"]["cluster"] if log is not None else CLUSTER
    on, off, fol = (_copy(base, topic, w, cluster) for w in "vnf")
    if log is None:
        from bench.bench_history import produce_default

        await produce_default(on, n)
    else:
        from bench.bench_large_derive import _ingest
        from kmevents.adapters import kafka as kafka_adapter

        await kafka_adapter.ensure_topics(on.kafka)
        n = await _ingest(on, log.path)
    on_wall, on_cpu = await _derive(on, n)
    off_wall, off_cpu = await _derive(off, n, versions=False)
    bf_wall, bf_cpu, got = await _backfill(off)
    fold_cpu, folded = await _plain_fold(off)
    want = await _records(on)
    built = await _records(off)
    # the worker with versions leaves its newest blocks' records to come just after its last batch,
    # and has none for the blocks it had open at restarts: compare the blocks both have
    both = set(want) & set(built)
    assert len(both) >= len(want) - 3, (len(want), len(built))
    assert all(want[k] == built[k] for k in both), "a backfilled record differs from the worker's"
    f_wall, f_cpu, lag = await _follow(fol, n, len(built))
    followed = await _records(fol)
    assert all(followed[k] == built[k] for k in followed), "a followed record differs from the backfill's"
    load = os.getloadavg()[0]
    what = "the default profile" if log is None else f"the large profile ({log.path.name})"
    notes = (f"{n:,} events of {what}; {got.built} records built ({got.stored_bytes / 1e6:.1f} MB "
             f"stored), {got.loads} stored states loaded, {got.folded:,} records folded; every record equal to the "
             f"worker-with-versions' ({len(both)} compared); worker CPU in this process: with versions "
             f"{on_cpu:.1f} s, --no-versions {off_cpu:.1f} s (snapshot children not counted); load {load:.1f}")
    return [
        {"name": "derive into etcd, the worker with --no-versions (records left to the backfill)",
         "figure": round(n / off_wall), "unit": "events/s",
         "baseline": "the same log derived by the worker with versions, same run",
         "baseline_figure": round(n / on_wall), "ratio": round(on_wall / off_wall, 3), "aim": ">= 20k events/s",
         "met": n / off_wall >= 20_000, "notes": notes},
        {"name": "the worker's CPU an event, --no-versions", "figure": round(off_cpu / n * 1e6, 1), "unit": "us",
         "baseline": "the worker with versions, same run", "baseline_figure": round(on_cpu / n * 1e6, 1),
         "ratio": round(off_cpu / on_cpu, 3), "aim": None, "met": None, "notes": "this process's CPU time"},
        {"name": "backfill of every block's versions record, whole log", "figure": round(folded / bf_wall),
         "unit": "events/s", "baseline": "a plain fold of the same log (replay engine, no capture), CPU, same run",
         "baseline_figure": round(folded / fold_cpu), "ratio": round(fold_cpu / bf_cpu, 3), "aim": None, "met": None,
         "notes": f"{bf_wall:.1f} s wall, {bf_cpu:.1f} s CPU (compression and writes included); the fold alone "
                  f"{fold_cpu:.1f} s CPU"},
        {"name": "derive with a backfill follower beside the --no-versions worker (two processes, 2 cores)",
         "figure": round(n / f_wall), "unit": "events/s", "baseline": "the worker with versions, same run",
         "baseline_figure": round(n / on_wall), "ratio": round(on_wall / f_wall, 3), "aim": ">= 20k events/s",
         "met": n / f_wall >= 20_000,
         "notes": f"the follower stored the last record {lag:.1f} s after the worker caught up "
                  f"({len(followed)} records, all equal to the backfill's); worker CPU {f_cpu:.1f} s"},
    ]
