"""Prometheus metrics and health of one worker, served on 127.0.0.1 only."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class WorkerCollector:
    """Reads the worker's counters at scrape time (no double bookkeeping)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def collect(self) -> Any:
        s = self.worker.stats
        for name, value, doc in (
            ("kmevents_worker_events_total", s.events, "events folded into etcd"),
            ("kmevents_worker_batches_total", s.batches, "batches processed"),
            ("kmevents_worker_transactions_total", s.transactions, "etcd transactions committed"),
            ("kmevents_worker_dead_letters_total", s.dead_letters, "records sent to the dead-letter topic"),
            ("kmevents_worker_fenced_total", s.fenced, "partitions given up after a failed checkpoint compare"),
            ("kmevents_worker_snapshots_total", s.snapshots, "snapshots written"),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        lag = GaugeMetricFamily("kmevents_worker_lag", "records not yet in etcd, per partition", labels=["partition"])
        for p, v in sorted(s.lag.items()):
            lag.add_metric([str(p)], v)
        yield lag
        owned = GaugeMetricFamily("kmevents_worker_partitions", "partitions this worker owns")
        owned.add_metric([], len(self.worker.derivers))
        yield owned


def registry_for(worker: Any) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(WorkerCollector(worker))  # type: ignore[arg-type]
    return reg


def render(worker: Any) -> bytes:
    return generate_latest(registry_for(worker))


def serve(worker: Any, port: int) -> Any:
    """Serve ``/metrics`` on 127.0.0.1:port in a thread (the plain engine)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry_for(worker))
    return server
