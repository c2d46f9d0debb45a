"""``kmevents_processor_lag_seconds`` says in time how stale the derived state is: 0 while the
worker has derived every record, the age of the oldest underived record once records wait (a
real Kafka + etcd, the API scraped over HTTP)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from kmevents.settings import Settings
from tests.integration.test_ingest_api import Server
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up


def _gauge(text: str, name: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(rf'^{name}{{partition="(\d+)"}} (\S+)$', text, re.M)}


def test_the_lag_in_seconds_is_zero_when_caught_up_and_the_oldest_waiting_records_age_after(
        isolated: Settings) -> None:
    s = isolated.model_copy(deep=True)
    s.api.metrics_cache_seconds = 0

    async def derive() -> None:
        await ingest_sim(s, s.cluster, 300)
        await run_worker_until_caught_up(s)  # (stopped once caught up)

    asyncio.run(derive())
    with Server(s) as url:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        assert set(_gauge(text, "kmevents_processor_lag").values()) == {0.0}, text
        caught_up = _gauge(text, "kmevents_processor_lag_seconds")
        assert caught_up and set(caught_up.values()) == {0.0}, text
        logged = time.time()
        asyncio.run(ingest_sim(s, s.cluster, 20, seed=2))  # the worker is stopped: they wait
        time.sleep(1.5)
        text = httpx.get(f"{url}/metrics", timeout=30).text
        scraped = time.time()
    lag, seconds = _gauge(text, "kmevents_processor_lag"), _gauge(text, "kmevents_processor_lag_seconds")
    waiting = {p for p, n in lag.items() if n > 0}
    assert waiting and seconds.keys() == lag.keys(), text
    for p in waiting:  # logged after `logged`, read before `scraped`
        assert 1.4 <= seconds[p] <= scraped - logged + 1, (p, seconds[p], scraped - logged)
    assert all(seconds[p] == 0.0 for p in lag.keys() - waiting)
