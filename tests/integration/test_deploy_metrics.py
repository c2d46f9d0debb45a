"""deploy/'s dashboard and alerting rules read only metrics and labels that a real /metrics serves: the API's
(with and without per-entity labels, with its background verify on), a derivation worker's and a backfill
follower's, scraped over HTTP on a real Kafka + etcd."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
import urllib.request

import httpx
from kmevents.processors import metrics as worker_metrics
from kmevents.processors.worker import DeriveWorker

from kmevents.settings import Settings
from kmevents.stack.process import free_port
from tests import dashboards
from tests.integration.test_ingest_api import Server
from tests.integration.test_processors import ingest_sim, wait_caught_up


async def _worker_scrape(s: Settings) -> str:
    w = DeriveWorker(s, group_id=f"g-{s.cluster}")
    await w.start()
    task = asyncio.create_task(w.run())
    port = free_port()
    server = worker_metrics.serve(w, port)
    try:
        await wait_caught_up(s)
        return await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())
    finally:
        server.shutdown()
        w.stop_requested.set()
        await task
        await w.stop()


def _follower_scrape(s: Settings) -> str:
    """``kmevents snapshots backfill --follow --metrics-port P`` after its first pass."""
    from tests.integration.test_versions_backfill import _cli, _env, _until

    port = free_port()
    proc = subprocess.Popen(_cli(s, "--follow", "--interval", "0.3", "--metrics-port", str(port)), env=_env(s),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def scrape() -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        except OSError:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            return ""

    try:
        return str(_until(scrape, lambda text: "kmevents_backfill_passes_total{" in text, timeout=60))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def _api_scrape(s: Settings) -> str:
    """Two scrapes (events/s needs a previous one), the second once the background verify has run."""
    with Server(s) as url:
        httpx.get(f"{url}/metrics", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            text = httpx.get(f"{url}/metrics", timeout=30).text
            if re.search(r"^kmevents_verify_drift_findings[ {]", text, re.M) and "kmevents_events_per_second{" in text:
                return text
            assert time.monotonic() < deadline, "the background verify did not run within a minute"
            time.sleep(0.5)


def test_every_metric_and_label_the_dashboard_and_the_rules_read_is_in_a_real_scrape(isolated: Settings) -> None:
    asyncio.run(ingest_sim(isolated, isolated.cluster, 1500))
    worker = asyncio.run(_worker_scrape(isolated))
    follower = _follower_scrape(isolated)
    s = isolated.model_copy(deep=True)
    s.api.metrics_cache_seconds = 0
    s.api.verify_interval_seconds = 0.5
    totals = _api_scrape(s)
    s.api.metrics_entity_labels = True
    per_entity = _api_scrape(s)
    metrics: set[str] = set()
    labels: set[str] = set()
    for text in (worker, follower, totals, per_entity):
        m, lb = dashboards.exposition_names(text)
        metrics |= m
        labels |= lb
    assert "kmevents_worker_events_total" in metrics and "kmevents_processor_lag" in metrics
    assert "kmevents_backfill_failing_seconds" in metrics
    assert {"hostname", "role", "cluster"} <= labels  # the per-entity scrape names them
    for where, expr in dashboards.expressions():
        want, want_labels = dashboards.names(expr)
        assert want <= metrics, f"{where}: {sorted(want - metrics)} are in no scrape"
        assert want_labels <= labels | dashboards.TARGET_LABELS, f"{where}: labels {sorted(want_labels - labels)}"
