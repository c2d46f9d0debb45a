"""Prometheus metrics and health of one worker, served on 127.0.0.1 only.

Two health answers, as a supervisor (systemd, Kubernetes probes) reads them:

- ``/healthz`` (liveness): 200 while the worker's loop runs; 503 once it failed
  or stopped (the process then exits non-zero, but a probe may ask first).
- ``/readyz`` (readiness): 200 when the worker owns at least one partition and
  restores none; 503 with the reason otherwise ("no partitions assigned": a
  restarted worker waiting for the group to rebalance, or more workers than
  partitions; "restoring partition 2").

Both bodies are the same JSON document (:func:`health`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from kmevents.processors.worker import DeriveWorker


class WorkerCollector:
    """Reads the worker's counters at scrape time (no double bookkeeping)."""

    def __init__(self, worker: DeriveWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        s = self.worker.stats
        for name, value, doc in (
            ("kmevents_worker_events_total", s.events, "events folded into etcd"),
            ("kmevents_worker_batches_total", s.batches, "batches processed"),
            ("kmevents_worker_transactions_total", s.transactions, "etcd transactions committed"),
            ("kmevents_worker_dead_letters_total", s.dead_letters, "records sent to the dead-letter topic"),
            ("kmevents_worker_fenced_total", s.fenced, "partitions given up after a failed checkpoint compare"),
            ("kmevents_worker_snapshots_total", s.snapshots, "snapshots written"),
            ("kmevents_worker_snapshot_deltas_total", s.deltas, "snapshot deltas written (what changed since the last snapshot)"),
            ("kmevents_worker_snapshot_failures_total", s.snapshot_failures, "snapshots and deltas not stored "
             "(point-in-time reads fold further from the ones before)"),
            ("kmevents_worker_snapshots_pruned_total", s.snapshots_pruned, "old snapshots and deltas removed by "
             "the worker's retention (kmevents process --prune-snapshots)"),
            ("kmevents_worker_versions_total", s.versions_written, "entity-versions records written (one per "
             "block of the touched-entity index; history reads them instead of folding the block)"),
            ("kmevents_worker_versions_failures_total", s.versions_failures, "entity-versions records not "
             "stored (history folds those blocks instead)"),
            ("kmevents_worker_versions_open_parts_total", s.versions_open_parts, "parts of the open blocks' "
             "entity-versions records written by batches that reached the partition's end (history reads the "
             "open block from them)"),
            ("kmevents_worker_touched_groups_total", s.touched_groups, "groups of old touched-index blocks "
             "moved from etcd into the snapshots topic (etcd keeps the newest blocks and an entry per group)"),
            ("kmevents_worker_touched_group_failures_total", s.touched_group_failures, "groupings of old "
             "touched-index blocks that failed (the blocks stay in etcd; retried with a later block)"),
            ("kmevents_worker_touched_run_merges_total", s.touched_run_merges, "merges of the touched index's "
             "hash -> groups runs (a history from a command reads only the groups holding what it looks for)"),
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


def registry_for(worker: DeriveWorker) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(WorkerCollector(worker))
    return reg


def render(worker: DeriveWorker) -> bytes:
    return generate_latest(registry_for(worker))


def health(worker: DeriveWorker) -> tuple[dict[str, Any], bool, bool]:
    """``(document, alive, ready)`` of the worker (see the module docstring)."""
    alive = worker.failure is None and worker.running
    parts = sorted(worker.derivers)
    restoring = sorted(worker.restoring)
    if not alive:
        reason = f"worker failed: {worker.failure}" if worker.failure is not None else "worker stopped"
    elif restoring:
        reason = "restoring partition " + ", ".join(map(str, restoring))
    elif not parts:
        reason = "no partitions assigned"
    else:
        reason = ""
    ready = alive and not reason
    doc = {"ok": alive, "ready": ready, "reason": reason, "worker": worker.worker_id, "partitions": parts,
           "restoring": restoring, "lag": {str(p): v for p, v in sorted(worker.stats.lag.items())}}
    return doc, alive, ready


def serve(worker: DeriveWorker, port: int) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on 127.0.0.1:port in a thread (the plain engine).

    Returns the server; ``shutdown()`` stops it."""
    from kmevents.adapters import metrics_http

    return metrics_http.serve(port, lambda: render(worker), lambda: health(worker))
