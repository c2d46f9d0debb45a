"""Query API latency under concurrent load on loopback.

    python -m bench.run api [--quick]

A simulated cluster (quick 5,000 events, full 50,000; 50 agents) is ingested
and derived into etcd by the real worker on a real stack; ``kmevents api``
runs in uvicorn on 127.0.0.1 in a thread of this process; an httpx async
client sends a bounded number of requests with ``CONCURRENCY`` in flight:

- list: ``GET /v1/clusters/C/pods?limit=100`` (etcd at one revision + checkpoint);
- get: ``GET /v1/clusters/C/tasks/<id>`` for random task ids;
- list with a label selector over all pods (``?labelSelector=app=...&limit=1000``);
- time travel: ``GET /v1/clusters/C/pods?at=T&limit=100`` for distinct source
  times T (a replay from the start per T: no snapshot is written in this run),
  then the same T again (the replay cache);
- baseline, same run: ``GET /healthz`` (the HTTP stack and auth-free routing alone).

Figures are p50 and p99 in milliseconds; notes carry requests/s and counts.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench._stats import percentile

CONCURRENCY = 16


async def _load(client: Any, paths: list[str], headers: dict[str, str]) -> tuple[list[float], float, int]:
    """Latencies (ms) of every request, the wall time, and the non-200 count."""
    lat: list[float] = []
    bad = 0
    queue = list(paths)

    async def worker() -> None:
        nonlocal bad
        while queue:
            p = queue.pop()
            t = time.perf_counter()
            r = await client.get(p, headers=headers)
            lat.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                bad += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return lat, time.perf_counter() - t0, bad


def _result(name: str, lat: list[float], wall: float, bad: int, base: list[float] | None, notes: str) -> list[dict]:
    out = []
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        fig = percentile(lat, q)
        b = percentile(base, q) if base else None
        out.append({"name": f"{name} {label}", "figure": round(fig, 3), "unit": "ms",
                    "baseline": f"GET /healthz {label}" if base else "", "baseline_figure": round(b, 3) if b else None,
                    "ratio": round(fig / b, 2) if b else None, "aim": "", "met": None,
                    "notes": f"{len(lat)} requests, {CONCURRENCY} in flight, {len(lat) / wall:,.0f} req/s, "
                             f"{bad} non-200; {notes}"})
    return out


def run(quick: bool) -> list[dict]:
    from bench._stack import running_stack

    with running_stack() as s:
        return asyncio.run(_main(s, quick))


async def _main(s: Any, quick: bool) -> list[dict]:
    import httpx

    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.settings import ApiToken
    from kmevents.simulate import generate
    from tests.integration.test_ingest_api import Server
    from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up

    n_events = 5_000 if quick else 50_000
    n_req = 300 if quick else 2_000
    s = s.model_copy(deep=True)
    s.cluster = f"bench-api-{int(time.time())}"
    s.etcd.prefix = f"/bench-api-{int(time.time())}/kmevents/v1"
    for t in ("events", "snapshots", "deadletter", "alerts"):
        setattr(s.kafka, f"{t}_topic", f"{s.cluster}.{t}")
    s.api.tokens = [ApiToken(token="bench", name="bench", scopes=["read"])]
    await kafka_adapter.ensure_topics(s.kafka)
    await ingest_sim(s, s.cluster, n_events, seed=9)
    await run_worker_until_caught_up(s)
    events = list(generate(s.cluster, 9, n_events, agents=20))
    task_ids = sorted({e["payload"]["task"]["task_id"] for e in events if e["type"] == "task.launched"})
    apps = sorted({(e["payload"]["pod"].get("labels") or {}).get("app") for e in events
                   if e["type"] == "pod.upserted"} - {None})
    rng = random.Random(1)
    auth = {"Authorization": "Bearer bench"}
    c = s.cluster
    results: list[dict] = []
    loop = asyncio.get_running_loop()
    server = Server(s)
    url = await loop.run_in_executor(None, server.__enter__)
    try:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            await client.get("/healthz")
            base, wall, bad = await _load(client, ["/healthz"] * n_req, {})
            results += _result("GET /healthz", base, wall, bad, None, "baseline")
            lat, wall, bad = await _load(client, [f"/v1/clusters/{c}/pods?limit=100"] * n_req, auth)
            results += _result("list pods (limit 100)", lat, wall, bad, base, f"{n_events:,} events derived")
            paths = [f"/v1/clusters/{c}/tasks/{rng.choice(task_ids)}" for _ in range(n_req)]
            lat, wall, bad = await _load(client, paths, auth)
            results += _result("get task", lat, wall, bad, base, "random ids; retired tasks answer 404")
            paths = [f"/v1/clusters/{c}/pods?limit=1000&labelSelector=app%3D{rng.choice(apps)}"
                     for _ in range(max(50, n_req // 4))]
            lat, wall, bad = await _load(client, paths, auth)
            results += _result("list pods by label selector (scan)", lat, wall, bad, base, "")
            times = sorted(e["occurred_at"] for e in rng.sample(events, min(12, len(events))))
            cold = [f"/v1/clusters/{c}/pods?limit=100&at={t}" for t in times]
            lat, wall, bad = await _load(client, cold, auth)
            results += _result("?at= cold (replay from the start)", lat, wall, bad, base,
                               f"{len(times)} distinct source times over {n_events:,} events, no snapshot")
            warm = [cold[-1]] * max(50, n_req // 4)
            lat, wall, bad = await _load(client, warm, auth)
            results += _result("?at= repeated (replay cache)", lat, wall, bad, base,
                               "the same time again; the log end is checked per request")
            r = await client.get(f"/v1/clusters/{c}/pods?limit=1", headers=auth)
            results[-1]["notes"] += f"; checkpoint offset {r.headers.get('X-Kmevents-Offset')}"
    finally:
        await loop.run_in_executor(None, server.__exit__, None, None, None)
    return results
