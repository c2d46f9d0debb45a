"""``kmevents_processor_lag_seconds`` says in time how stale the derived state is: 0 while the
worker has derived every record, the age of the oldest underived record once records wait (a
real Kafka + etcd, the API scraped over HTTP)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

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


def test_a_kafka_that_does_not_answer_costs_a_scrape_one_deadline_not_one_per_partition(
        isolated: Settings, monkeypatch) -> None:
    """Sixteen partitions behind and a "Kafka" that accepts connections and never answers (a
    silent listener on 127.0.0.1): the reads run side by side and all end at one deadline, the
    partitions not read are left out (not shown fresh), and the caught-up one still shows 0."""
    from kmevents.api import observe

    monkeypatch.setattr(observe, "LAG_READ_SECONDS", 1.0)
    s = isolated.model_copy(deep=True)

    async def scrape() -> tuple[float, Any]:
        held: list[asyncio.StreamWriter] = []

        async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            held.append(w)  # keep the connection open, say nothing

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        s.kafka.bootstrap = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            m = observe.Metrics(s, client=None)  # type: ignore[arg-type]
            began = time.monotonic()
            g = await m._lag_seconds({p: 5 for p in range(16)} | {16: 0}, {})
            return time.monotonic() - began, g
        finally:
            for w in held:
                w.close()
            server.close()

    took, family = asyncio.run(scrape())
    assert took < 4.0, took  # one deadline (1 s) and the cancellations; one per partition would be 16 s
    assert [(sm.labels["partition"], sm.value) for sm in family.samples] == [("16", 0.0)]
