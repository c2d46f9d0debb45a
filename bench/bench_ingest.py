"""Ingest rate (issue 5): validate, redact, encode, pin and produce, in one process.

The same-run baseline is raw aiokafka producing the same pre-encoded bytes to
the same partition (idempotent, acks=all): what ingest would cost if the
events arrived already validated and encoded.

The generated input (300,000 event dicts, ~9 million Python objects) is
frozen out of the garbage collector before timing (``gc.freeze``): an ingest
process never holds its whole input, and walking it in every full collection
cost ingest ~12 us per event (the baseline's input is bytes, which the
collector never walks).

The broker is warmed up first (untimed: raw produce of 20,000 of the same
events to a scratch topic): on a fresh stack the first run met a cold JVM
and the second, the baseline, a warm one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid

from bench._stack import running_stack
from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract import encode, validate_event
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.simulate import generate


def _fresh(s: Settings, tag: str) -> Settings:
    s = s.model_copy(deep=True)
    s.kafka.events_topic = f"bench{tag}.events"
    s.etcd.prefix = f"/bench{tag}/kmevents/v1"
    s.kafka.partitions = 1
    return s


async def _ingest(s: Settings, events: list[dict], batch: int) -> float:
    async with Ingestor(s) as ing:
        t0 = time.perf_counter()
        for i in range(0, len(events), batch):
            results = await ing.submit(events[i:i + batch], start_index=i)
            assert all(r.ok for r in results)
        return time.perf_counter() - t0


async def _raw(s: Settings, payloads: list[bytes], key: bytes) -> float:
    await kafka_adapter.ensure_topics(s.kafka)
    p = kafka_adapter.producer(s.kafka, linger_ms=5, max_batch_size=512 * 1024)
    await p.start()
    try:
        t0 = time.perf_counter()
        futs = []
        for data in payloads:
            futs.append(await p.send(s.kafka.events_topic, data, key=key, partition=0))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
        return time.perf_counter() - t0
    finally:
        await p.stop()


def run(quick: bool) -> list[dict]:
    n = 50_000 if quick else 300_000
    cluster = "benchingest"
    events = list(generate(cluster, 5, n))
    payloads = [encode(validate_event(e)[0]) for e in events]
    gc.collect()
    gc.freeze()
    load_before = os.getloadavg()[0]
    try:
        with running_stack() as base:
            asyncio.run(_raw(_fresh(base, uuid.uuid4().hex[:8]), payloads[:20_000], cluster.encode()))
            took = asyncio.run(_ingest(_fresh(base, uuid.uuid4().hex[:8]), events, 5000))
            raw = asyncio.run(_raw(_fresh(base, uuid.uuid4().hex[:8]), payloads, cluster.encode()))
    finally:
        gc.unfreeze()
    rate, raw_rate = n / took, n / raw
    return [{
        "name": f"ingest {n:,} simulated events (validate, redact, encode, pin, produce; 1 process)",
        "figure": rate, "unit": "events/s",
        "baseline": "raw aiokafka produce of the same pre-encoded bytes, same run", "baseline_figure": raw_rate,
        "ratio": rate / raw_rate, "aim": ">= 25,000 events/s per process", "met": rate >= 25_000,
        "notes": f"mean {sum(map(len, payloads)) / n:,.0f} bytes per event; broker on the same 2 cores; "
                 f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
    }]
