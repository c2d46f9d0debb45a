"""What a backfill follower (``kmevents snapshots backfill --follow --metrics-port P``) has done, for
Prometheus and for a supervisor's probes (served by kmevents/adapters/metrics_http.py).

Per cluster: the records built and their bytes, the records folded and the stored states loaded to
build them, passes and failed passes, the blocks still without a record after the last pass (those
left to the worker included), and when the last pass ended well. A follower that stopped keeping up
shows as ``kmevents_backfill_last_pass_timestamp_seconds`` falling behind the clock, or as
``kmevents_backfill_failing_seconds`` growing; ``/readyz`` is 503 while any cluster's passes fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kmevents.replay.versions_backfill import Pass
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


@dataclass
class ClusterFollow:
    """One cluster's follower so far."""

    total: Pass
    passes: int = 0
    failures: int = 0
    #: the blocks without a record after the last pass (built ones excepted)
    waiting: int = 0
    #: wall time the last pass that ended well ended (0: none yet)
    last_ok: float = 0.0
    #: since when its passes fail, on the monotonic clock (None: the last one ended well)
    failing_since: float | None = None
    last_error: str | None = None


@dataclass
class FollowStats:
    """Every followed cluster's :class:`ClusterFollow`, updated by the follow loop (one thread) and
    read at scrape time (another)."""

    clusters: dict[str, ClusterFollow] = field(default_factory=dict)
    running: bool = True

    def _of(self, cluster: str) -> ClusterFollow:
        got = self.clusters.get(cluster)
        if got is None:
            got = self.clusters[cluster] = ClusterFollow(Pass(cluster))
        return got

    def passed(self, p: Pass) -> None:
        """A pass over ``p.cluster`` that ended well."""
        c = self._of(p.cluster)
        c.total.add(p)
        c.passes += 1
        c.waiting = p.left_to_worker + max(0, len(p.missing) - p.built)
        c.last_ok, c.failing_since, c.last_error = time.time(), None, None

    def failed(self, cluster: str, error: str) -> float:
        """A pass over ``cluster`` that failed (it is retried); for how many seconds its passes have
        failed (the follow loop gives up after ``FAIL_FOR_SECONDS``)."""
        c = self._of(cluster)
        c.passes += 1
        c.failures += 1
        now = time.monotonic()
        if c.failing_since is None:
            c.failing_since = now
        c.last_error = error
        return now - c.failing_since


class FollowCollector:
    """Reads a :class:`FollowStats` at scrape time."""

    def __init__(self, stats: FollowStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        rows = list(self.stats.clusters.items())
        now = time.monotonic()
        counters = (
            ("kmevents_backfill_records_built_total", "entity-versions records built (history reads them instead of "
             "folding their blocks)", lambda c: c.total.built),
            ("kmevents_backfill_stored_bytes_total", "bytes of the records built, as stored (compressed)",
             lambda c: c.total.stored_bytes),
            ("kmevents_backfill_records_folded_total", "log records folded to build them", lambda c: c.total.folded),
            ("kmevents_backfill_states_loaded_total", "stored states (snapshots, deltas) loaded to fold from",
             lambda c: c.total.loads),
            ("kmevents_backfill_passes_total", "passes over the cluster's index", lambda c: c.passes),
            ("kmevents_backfill_pass_failures_total", "passes that failed (Kafka or etcd not answering; retried)",
             lambda c: c.failures),
        )
        for name, doc, value in counters:
            m = CounterMetricFamily(name, doc, labels=["cluster"])
            for cluster, c in rows:
                m.add_metric([cluster], value(c))
            yield m
        gauges = (
            ("kmevents_backfill_blocks_waiting", "closed blocks still without a record after the last pass (the "
             "newest, left to the worker by --skip-newest, included)", lambda c: c.waiting),
            ("kmevents_backfill_last_pass_timestamp_seconds", "when the last pass that ended well ended (Unix time; "
             "0: none yet)", lambda c: c.last_ok),
            ("kmevents_backfill_failing_seconds", "for how long the cluster's passes have failed (0: the last one "
             "ended well)", lambda c: 0.0 if c.failing_since is None else now - c.failing_since),
        )
        for name, doc, value in gauges:
            g = GaugeMetricFamily(name, doc, labels=["cluster"])
            for cluster, c in rows:
                g.add_metric([cluster], value(c))
            yield g


def render(stats: FollowStats) -> bytes:
    reg = CollectorRegistry()
    reg.register(FollowCollector(stats))
    return generate_latest(reg)


def health(stats: FollowStats) -> tuple[dict[str, Any], bool, bool]:
    """``(document, alive, ready)``: alive while the follower runs; ready when every cluster's last
    pass ended well."""
    rows = list(stats.clusters.items())
    failing = sorted(cluster for cluster, c in rows if c.failing_since is not None)
    alive = stats.running
    ready = alive and not failing
    reason = "" if ready else ("stopped" if not alive else "passes failing for " + ", ".join(failing))
    doc = {"ok": alive, "ready": ready, "reason": reason,
           "clusters": {cluster: {"passes": c.passes, "failures": c.failures, "built": c.total.built,
                                  "blocks_waiting": c.waiting, "last_ok": c.last_ok,
                                  "last_error": c.last_error} for cluster, c in rows}}
    return doc, alive, ready


__all__ = ["ClusterFollow", "FollowCollector", "FollowStats", "health", "render"]
