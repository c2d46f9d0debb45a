"""Derivation into etcd (issue 6): sustained rate and end-to-end freshness.

1. Sustained derive rate: a pre-loaded log (the simulator's event mix, one
   cluster, one partition) derived into etcd by one DeriveWorker, from the
   first record to the checkpoint at the last. Same-run reference: the raw
   cost of the two I/O halves the worker cannot avoid — consuming the same
   records with aiokafka, plus writing the same number of etcd keys the worker
   wrote in aetcd transactions of 100 — combined as 1 / (1/consume + 1/puts)
   events/s (both halves on the same machine, one after the other).
   Measured twice: with no snapshot nor delta (the figure comparable with the
   first measurements, 2026-11-26/27), and with the worker's default cadence.
2. Freshness at a fixed rate: events produced at R events/s for T seconds while
   ``kmevents process`` runs in its own process, as deployed (its defaults: snapshot
   cadence, entity versions, index); for each event, produce time -> the time the
   checkpoint covering its offset was seen in etcd (the checkpoint key polled every
   5 ms). Until 2026-12-07 the worker ran in the bench's own event loop, beside the
   producer and the poller, which took part of its core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from kmevents.processors.worker import DeriveWorker

from bench._stack import running_stack, stack_env
from bench.bench_raw import _consume as raw_consume
from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract import encode, validate_event
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.simulate import generate
from kmevents.store.checkpoint import Checkpoint


def _fresh(s: Settings) -> Settings:
    tag = uuid.uuid4().hex[:8]
    s = s.model_copy(deep=True)
    s.kafka.events_topic = f"bench{tag}.events"
    s.kafka.snapshots_topic = f"bench{tag}.snapshots"
    s.kafka.deadletter_topic = f"bench{tag}.dlq"
    s.etcd.prefix = f"/bench{tag}/kmevents/v1"
    s.cluster = f"bench{tag}"
    return s


async def _preload(s: Settings, n: int) -> None:
    async with Ingestor(s) as ing:
        buf = []
        for ev in generate(s.cluster, 1, n):
            buf.append(ev)
            if len(buf) == 10_000:
                await ing.submit(buf)
                buf = []
        if buf:
            await ing.submit(buf)


async def _ckpt_offset(s: Settings, c: etcd_adapter.EtcdClient) -> int:
    p = layout.checkpoints_prefix(f"{s.etcd.prefix}/{layout.live_generation()}")
    _, kvs = await etcd_adapter.range_at(c, p, range_end=etcd_adapter.prefix_end(p))
    return max((Checkpoint.from_bytes(kv.value).offset for kv in kvs), default=-1)


async def derive_until(s: Settings, n: int, **worker_kw: Any) -> tuple[float, DeriveWorker]:
    """One ``DeriveWorker`` (``worker_kw`` on top of 10,000 records a batch) from the first
    record until the checkpoint reaches offset ``n - 1``: the wall seconds, and the worker,
    stopped."""
    w = DeriveWorker(s, group_id=f"bench-{s.cluster}", **{"max_records": 10_000, **worker_kw})
    await w.start()
    async with etcd_adapter.client(s.etcd) as c:
        t0 = time.perf_counter()
        task = asyncio.create_task(w.run())
        while await _ckpt_offset(s, c) < n - 1:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - t0
    w.stop_requested.set()
    await task
    await w.stop()
    return took, w


#: A worker that stores no snapshot nor delta (before EARLY_EVENTS, ``snapshot_every_events=10**9``
#: alone made every delta point an early full snapshot, built in the worker's loop: this bench's
#: "no snapshots" worker built one every 4,000 events of its run)
NO_SNAPSHOTS = {"snapshot_every_events": 10**9, "delta_every_events": 0}


async def _derive(s: Settings, n: int, cadence: dict[str, int] = NO_SNAPSHOTS) -> tuple[float, int, int]:
    took, w = await derive_until(s, n, **cadence)
    sp = f"{s.etcd.prefix}/clusters/{s.cluster}/".encode()
    async with etcd_adapter.client(s.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp), limit=0)
    return took, w.stats.transactions, len(kvs)


async def _raw_puts(s: Settings, keys: int) -> float:
    value = b"v" * 400
    prefix = f"{s.etcd.prefix}/rawputs/".encode()
    async with etcd_adapter.client(s.etcd) as c:
        t0 = time.perf_counter()
        for i in range(0, keys, 100):
            ops = {prefix + b"%08d" % j: value for j in range(i, min(keys, i + 100))}
            await etcd_adapter.txn_if_unchanged(c, prefix + b"guard", 0, ops)
        return time.perf_counter() - t0


def _worker_process(s: Settings, group: str) -> subprocess.Popen:
    """``kmevents process`` on ``s``'s topics and prefix, in a process of its own (as deployed: the
    bench's producer and watcher then take none of its event loop nor of its core)."""
    env = {**os.environ, **stack_env(s)}
    return subprocess.Popen([sys.executable, "-m", "kmevents.cli", "process", "--engine", "plain", "--group", group,
                             "--metrics-port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far, from /proc (Linux; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def _freshness(s: Settings, rate: int, seconds: float) -> tuple[list[float], float]:
    """Produce ``rate`` events/s for ``seconds`` to a running ``kmevents process`` (its defaults:
    a full snapshot every 20,000 events, a delta every 4,000, entity versions, the index); each
    event's latency from its send to the first poll (every 5 ms) that sees the checkpoint cover
    it. A first event, not counted, waits until the worker has taken the partition. Also the
    share of one core the worker process used from the first timed send to the last event's
    checkpoint: near 1, its queue (and so p99) swings with the machine's speed."""
    events = [encode(validate_event(e)[0]) for e in generate(s.cluster, 9, int(rate * seconds) + 1)]
    proc = _worker_process(s, f"fresh-{s.cluster}")
    prod = kafka_adapter.producer(s.kafka, linger_ms=2)
    await prod.start()
    sent_at: dict[int, float] = {}
    lat: list[float] = []
    try:
        async with etcd_adapter.client(s.etcd) as c:
            await (await prod.send(s.kafka.events_topic, events[0], key=s.cluster.encode(), partition=0))
            deadline = time.monotonic() + 120
            while await _ckpt_offset(s, c) < 0:  # the worker is up and holds the partition
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not derive the first event (exit {proc.poll()})")
                await asyncio.sleep(0.1)
            ckey = layout.checkpoint_key(f"{s.etcd.prefix}/{layout.live_generation()}", 0)

            async def watcher() -> None:
                done_upto = 0
                while True:
                    _, kvs = await etcd_adapter.range_at(c, ckey)
                    now = time.perf_counter()
                    if kvs:
                        off = Checkpoint.from_bytes(kvs[0].value).offset
                        for o in range(done_upto + 1, off + 1):
                            if o in sent_at:
                                lat.append(now - sent_at.pop(o))
                        done_upto = max(done_upto, off)
                    if done_upto >= len(events) - 1:
                        return
                    await asyncio.sleep(0.005)

            wt = asyncio.create_task(watcher())
            t0 = time.perf_counter()
            cpu0 = _cpu_seconds(proc.pid)
            futs = []
            for i in range(1, len(events)):
                target = t0 + (i - 1) / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[i] = time.perf_counter()
                futs.append(await prod.send(s.kafka.events_topic, events[i], key=s.cluster.encode(), partition=0))
            await asyncio.gather(*futs)
            await asyncio.wait_for(wt, 120)
            busy = (_cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
    finally:
        await prod.stop()
        proc.send_signal(signal.SIGTERM)  # it commits its batch and leaves
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return lat, busy


def run(quick: bool) -> list[dict]:
    n = 50_000 if quick else 300_000
    rate, seconds = 5000, (10.0 if quick else 30.0)
    with running_stack() as base:
        s = _fresh(base)
        s.kafka.partitions = 1
        asyncio.run(kafka_adapter.ensure_topics(s.kafka))
        asyncio.run(_preload(s, n))
        took, txns, keys = asyncio.run(_derive(s, n))
        d = _fresh(base)  # the same records, with etcd keys and snapshots of its own
        d.kafka.events_topic, d.cluster, d.kafka.partitions = s.kafka.events_topic, s.cluster, 1
        asyncio.run(kafka_adapter.ensure_topics(d.kafka))
        took_default, _, _ = asyncio.run(_derive(d, n, {}))
        consume = asyncio.run(raw_consume(s, s.kafka.events_topic, n))
        puts = asyncio.run(_raw_puts(s, max(keys, txns * 100 // 2)))
        f = _fresh(base)
        f.kafka.partitions = 1
        asyncio.run(kafka_adapter.ensure_topics(f.kafka))
        lat, busy = asyncio.run(_freshness(f, rate, seconds))
    rate_derive = n / took
    rate_default = n / took_default
    baseline = 1 / (consume / n + puts / n)
    lat_ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(lat_ms)
    p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
    return [
        {"name": f"derive {n:,} pre-loaded events into etcd (1 worker, 1 partition)", "figure": rate_derive,
         "unit": "events/s", "baseline": "raw aiokafka consume + raw aetcd txn puts of the same volume, same run",
         "baseline_figure": baseline, "ratio": rate_derive / baseline, "aim": ">= 20,000 events/s",
         "met": rate_derive >= 20_000,
         "notes": f"{txns:,} transactions; {keys:,} live keys at the end; raw consume {n / consume:,.0f}/s; "
                  "no snapshot nor delta"},
        {"name": f"derive {n:,} pre-loaded events into etcd, the worker's default snapshot cadence",
         "figure": rate_default, "unit": "events/s",
         "baseline": "raw aiokafka consume + raw aetcd txn puts of the same volume, same run",
         "baseline_figure": baseline, "ratio": rate_default / baseline, "aim": ">= 20,000 events/s",
         "met": rate_default >= 20_000,
         "notes": "a full snapshot every 20,000 events and a delta every 4,000, as `kmevents process` takes them"},
        {"name": f"freshness p99 at {rate:,} events/s for {seconds:.0f}s (produce -> checkpoint in etcd), "
                 "`kmevents process` in its own process, its defaults",
         "figure": p99, "unit": "ms", "baseline": "p50 of the same run", "baseline_figure": p50,
         "ratio": p99 / p50 if p50 else 0.0, "aim": "p99 <= 500 ms", "met": p99 <= 500,
         "notes": f"p50 {p50:.0f} ms, max {lat_ms[-1]:.0f} ms over {len(lat_ms):,} events; the worker process "
                  f"used {busy:.2f} of a core (near 1: at capacity, its p99 swings with the machine's speed)"},
    ]
