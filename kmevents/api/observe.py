"""``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus): open without a token.

- ``/healthz``: the process answers (liveness).
- ``/readyz``: Kafka answers metadata, etcd answers a read, and every
  partition's processor lag (records written to the events topic but not yet
  in etcd's checkpoint) is at most ``api.ready_max_lag``; 503 otherwise, with
  each check's result in the body.
- ``/metrics``: read at scrape time (cached ``api.metrics_cache_seconds``) from
  Kafka's offsets and etcd at one revision. It needs no token, so it names no
  cluster, agent, role, RC or service unless ``api.metrics_entity_labels`` is
  set: by default the derived gauges are totals over them (the labels below in
  brackets appear only with the setting; the others always):

  ========================================  ===================================================
  kmevents_log_end_offset{partition}        next offset of the events topic
  kmevents_events_per_second{partition}     log growth between two scrapes
  kmevents_checkpoint_offset{partition}     last offset whose effect is in etcd
  kmevents_processor_lag{partition}         records not yet derived
  kmevents_processor_lag_seconds{partition} how long the oldest record not yet derived has been in
                                            the log (its log time to now; 0 when none waits): how
                                            stale the derived state is, in time
  kmevents_dead_letters                     records in the dead-letter topic
  kmevents_derived_by_older_reducer         1 when a checkpoint was written by another reducer version
  kmevents_keys_ahead_of_checkpoint         keys written by an event in flight ([cluster])
  kmevents_chain_heads_known                clusters whose checkpoint carries their chain head
                                            (with the setting: kmevents_chain_head_known{cluster})
  kmevents_verify_*                         drift findings / chain status of the last background
                                            ``verify`` (api.verify_interval_seconds > 0; [cluster])
  kmevents_running_tasks                    derived state as gauges ([cluster]), and the same for
  kmevents_agent_resources{resource,kind}   total / allocated / offered ([cluster,agent,hostname,role])
  kmevents_role_resources{resource,kind}    allocated / offered ([cluster,role])
  kmevents_rc_replicas{which}               desired / observed ([cluster,rc])
  kmevents_service_endpoints{which}         observed / ready ([cluster,service])
  kmevents_replay_cache_bytes               replayed states the API holds (estimated upper bound),
  kmevents_replay_cache_limit_bytes         within api.replay_cache_bytes
  kmevents_replay_cache_states{use}         held states (``held``) and kept reads (``result``)
  kmevents_replay_record_cache_bytes        raw records held for replays
  kmevents_replays_running{gate}            replays folding now (``cold``, ``warm``)
  kmevents_replays_queued{gate}             replays waiting for a slot
  kmevents_replays_refused_total{gate,status}  refused with 429 (queue full) or 503 (waited too long)
  ========================================  ===================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kmevents import __version__, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.api.reads import staged_revision
from kmevents.monitor.consumer import checkpoints, lags
from kmevents.reducer import REDUCER_VERSION
from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint

log = logging.getLogger("kmevents.api.observe")
router = APIRouter(tags=["health"])

#: ``kmevents_processor_lag_seconds``: the reads of the records after the checkpoints, for
#: every partition behind, run this many at once and end together after this many seconds.
LAG_READS_AT_ONCE = 8
LAG_READ_SECONDS = 5.0


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, object]:
    return {"ok": True, "version": __version__}


@router.get("/readyz", summary="Readiness: Kafka and etcd reachable, processor lag under the threshold",
            responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    checks: dict[str, Any] = {}
    try:
        checks["kafka"] = bool(await asyncio.wait_for(kafka_adapter.healthy(settings.kafka, timeout=2.0), 5.0))
    except Exception as exc:  # noqa: BLE001
        from kmevents.api.backends import backend_down

        checks["kafka"] = False
        checks["kafka_error"] = backend_down(settings, exc) or f"{type(exc).__name__}: {exc}"
    cps: dict[int, Checkpoint] = {}
    try:
        _, cps = await asyncio.wait_for(checkpoints(settings, request.app.state.etcd), 5.0)
        checks["etcd"] = True
    except Exception as exc:  # noqa: BLE001
        from kmevents.api.backends import backend_down

        checks["etcd"] = False
        checks["etcd_error"] = backend_down(settings, exc) or f"{type(exc).__name__}: {exc}"
    if checks["kafka"] and checks["etcd"]:
        try:
            ends = await asyncio.wait_for(kafka_adapter.end_offsets(settings.kafka, settings.kafka.events_topic), 5.0)
            lag = lags(ends, cps)
            checks["lag"] = {str(p): v for p, v in sorted(lag.items())}
            checks["lag_ok"] = all(v <= settings.api.ready_max_lag for v in lag.values())
        except Exception as exc:  # noqa: BLE001
            checks["lag_ok"] = False
            checks["lag_error"] = str(exc)
    else:
        checks["lag_ok"] = False
    ready = bool(checks["kafka"] and checks["etcd"] and checks["lag_ok"])
    body: dict[str, Any] = {"ready": ready, "max_lag": settings.api.ready_max_lag, "checks": checks}
    if not ready:
        why = [f"Kafka at {settings.kafka.bootstrap} does not answer" if not checks["kafka"] else "",
               f"etcd at {settings.etcd.endpoint} does not answer" if not checks["etcd"] else "",
               (f"processor lag unknown ({checks['lag_error']})" if "lag_error" in checks else
                "processor lag above api.ready_max_lag") if checks["kafka"] and checks["etcd"] else ""]
        body["detail"] = "not ready: " + "; ".join(w for w in why if w)
    return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)


class Metrics:
    """Computes the metric families at scrape time, from Kafka offsets and etcd at one revision."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient, timetravel: Any = None) -> None:
        self.settings = settings
        self.client = client
        self.timetravel = timetravel
        self._last_ends: tuple[float, dict[int, int]] | None = None
        self._rates: dict[int, float] = {}
        self._cached: tuple[float, bytes] | None = None
        self._lock = asyncio.Lock()
        #: cluster -> {"drift": n, "chain_ok": 0/1, "at": epoch} from the background verify
        self.verified: dict[str, dict[str, float]] = {}

    async def render(self) -> bytes:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.settings.api.metrics_cache_seconds:
                return self._cached[1]
            reg = CollectorRegistry()
            reg.register(_Families(await self.families()))
            text = generate_latest(reg)
            self._cached = (now, text)
            return text

    async def families(self) -> list[Any]:
        s = self.settings
        fams: list[Any] = []
        ends: dict[int, int] = {}
        with contextlib.suppress(Exception):
            ends = await asyncio.wait_for(kafka_adapter.end_offsets(s.kafka, s.kafka.events_topic), 5.0)
        now = time.monotonic()
        if self._last_ends is not None and now > self._last_ends[0]:
            dt = now - self._last_ends[0]
            self._rates = {p: max(0, e - self._last_ends[1].get(p, e)) / dt for p, e in ends.items()}
        self._last_ends = (now, ends)
        g = GaugeMetricFamily("kmevents_log_end_offset", "next offset of the events topic", labels=["partition"])
        for p, e in sorted(ends.items()):
            g.add_metric([str(p)], e)
        fams.append(g)
        g = GaugeMetricFamily("kmevents_events_per_second", "events appended per second between scrapes",
                              labels=["partition"])
        for p, r in sorted(self._rates.items()):
            g.add_metric([str(p)], r)
        fams.append(g)
        dead = 0
        with contextlib.suppress(Exception):
            dead = sum((await asyncio.wait_for(kafka_adapter.end_offsets(s.kafka, s.kafka.deadletter_topic),
                                               5.0)).values())
        g = GaugeMetricFamily("kmevents_dead_letters", "records in the dead-letter topic")
        g.add_metric([], dead)
        fams.append(g)
        rev, cps = await checkpoints(s, self.client)
        g_ck = GaugeMetricFamily("kmevents_checkpoint_offset", "last offset whose effect is in etcd",
                                 labels=["partition"])
        g_lag = GaugeMetricFamily("kmevents_processor_lag", "records not yet derived", labels=["partition"])
        g_old = GaugeMetricFamily("kmevents_derived_by_older_reducer",
                                  f"1 when the checkpoint's reducer is not version {REDUCER_VERSION}",
                                  labels=["partition"])
        for p, ck in sorted(cps.items()):
            g_ck.add_metric([str(p)], ck.offset)
            g_old.add_metric([str(p)], 0 if ck.reducer_version == REDUCER_VERSION else 1)
        behind = lags(ends, cps)
        for p, v in sorted(behind.items()):
            g_lag.add_metric([str(p)], v)
        fams += [g_ck, g_lag, await self._lag_seconds(behind, cps), g_old]
        clusters = sorted({c for ck in cps.values() for c in ck.chains})
        if s.api.metrics_entity_labels:
            g = GaugeMetricFamily("kmevents_chain_head_known", "1 when the checkpoint carries the cluster's chain "
                                                               "head", labels=["cluster"])
            for c in clusters:
                g.add_metric([c], 1)
        else:
            g = GaugeMetricFamily("kmevents_chain_heads_known", "clusters whose checkpoint carries their chain head")
            g.add_metric([], len(clusters))
        fams.append(g)
        fams += self._verify_families()
        fams += await self._derived(rev, cps, clusters)
        fams += self._replay_families()
        return fams

    async def _lag_seconds(self, behind: dict[int, int], cps: dict[int, Checkpoint]) -> Any:
        """Per partition, the age of its oldest record not yet derived (the record after the
        checkpoint: one record read from Kafka for each partition behind; 0 when none is).

        The reads run side by side (at most ``LAG_READS_AT_ONCE``) within one deadline of
        ``LAG_READ_SECONDS`` for the whole scrape, so a slow Kafka costs a scrape that long, not
        that long per partition. A partition whose record was not read in time is left out of
        the scrape, not shown fresh."""
        g = GaugeMetricFamily("kmevents_processor_lag_seconds", "seconds since the oldest record not yet "
                              "derived was logged (0: caught up)", labels=["partition"])
        s = self.settings
        ages: dict[int, float] = {p: 0.0 for p, n in behind.items() if n <= 0}
        slots = asyncio.Semaphore(LAG_READS_AT_ONCE)

        async def age(p: int) -> None:
            first = (cps[p].offset if p in cps else -1) + 1
            async with slots:
                with contextlib.suppress(Exception):
                    recs = await kafka_adapter.read_range(s.kafka, s.kafka.events_topic, p, first, first,
                                                          max_bytes=1024 * 1024)
                    if recs:
                        ages[p] = max(0.0, time.time() - recs[0].timestamp / 1000)

        reads = [asyncio.ensure_future(age(p)) for p, n in behind.items() if n > 0]
        if reads:
            _, late = await asyncio.wait(reads, timeout=LAG_READ_SECONDS)
            for t in late:
                t.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
                log.warning("lag in seconds not read for every partition in time",
                            extra={"partitions_left_out": len(late), "deadline_seconds": LAG_READ_SECONDS})
        for p in sorted(ages):
            g.add_metric([str(p)], ages[p])
        return g

    def _replay_families(self) -> list[Any]:
        """The API's own replay work: what it holds (bytes, estimated) and what waits or was refused."""
        tt = self.timetravel
        if tt is None:
            return []
        held = GaugeMetricFamily("kmevents_replay_cache_bytes",
                                 "bytes of replayed states held (estimated upper bound; api.replay_cache_bytes)")
        held.add_metric([], tt.states.bytes)
        limit = GaugeMetricFamily("kmevents_replay_cache_limit_bytes", "api.replay_cache_bytes")
        limit.add_metric([], self.settings.api.replay_cache_bytes)
        states = GaugeMetricFamily("kmevents_replay_cache_states", "replayed states held, by use", labels=["use"])
        for use, n in sorted(tt.states.counts.items()):
            states.add_metric([use], n)
        records = GaugeMetricFamily("kmevents_replay_record_cache_bytes", "raw records held for replays")
        records.add_metric([], tt.records.bytes)
        running = GaugeMetricFamily("kmevents_replays_running", "replays folding now, per gate", labels=["gate"])
        queued = GaugeMetricFamily("kmevents_replays_queued", "replays waiting for a slot, per gate", labels=["gate"])
        refused = CounterMetricFamily("kmevents_replays_refused", "replays refused: 429 queue full, 503 waited "
                                                                  "too long", labels=["gate", "status"])
        for name, g in sorted(tt.gates.items()):
            running.add_metric([name], g.running)
            queued.add_metric([name], g.queued)
            for status, n in sorted(g.refused.items()):
                refused.add_metric([name, str(status)], n)
        return [held, limit, states, records, running, queued, refused]

    def _verify_families(self) -> list[Any]:
        per = self.settings.api.metrics_entity_labels
        labels = ["cluster"] if per else []
        d = GaugeMetricFamily("kmevents_verify_drift_findings", "drift findings of the last background verify",
                              labels=labels)
        c = GaugeMetricFamily("kmevents_verify_chain_ok", "1 when the last verify found the hash chain intact",
                              labels=labels)
        t = GaugeMetricFamily("kmevents_verify_last_run_timestamp_seconds", "when the last verify ran",
                              labels=labels)
        if per:
            for cl, r in sorted(self.verified.items()):
                d.add_metric([cl], r["drift"])
                c.add_metric([cl], r["chain_ok"])
                t.add_metric([cl], r["at"])
        elif self.verified:  # every cluster together: the sum, the worst, the oldest
            rs = self.verified.values()
            d.add_metric([], sum(r["drift"] for r in rs))
            c.add_metric([], min(r["chain_ok"] for r in rs))
            t.add_metric([], min(r["at"] for r in rs))
        return [d, c, t]

    async def _derived(self, rev: int, cps: dict[int, Checkpoint], clusters: list[str]) -> list[Any]:
        """Derived state as gauges. Per cluster, agent, role, RC and service only with
        ``api.metrics_entity_labels`` (``/metrics`` needs no token): else totals over them."""
        s = self.settings
        agg = _Sums(s.api.metrics_entity_labels)
        ckpt_rev = {c: ck.mod_revision for ck in cps.values() for c in ck.chains}
        for cl in clusters:
            _, cur = await etcd_adapter.range_at(self.client, layout.current_key(s.etcd.prefix, cl), revision=rev)
            gen = str(orjson.loads(cur[0].value).get("generation")) if cur else layout.live_generation()
            n_ahead = 0
            vouched = ckpt_rev.get(cl, 0)
            part = next((p for p, ck in cps.items() if cl in ck.chains), None)
            if part is not None and gen != layout.live_generation():  # a repaired generation (reads.py)
                vouched = max(vouched, await staged_revision(self.client, s.etcd.prefix, gen, part, rev))

            async def kind_values(kind: str, cl: str = cl, gen: str = gen, vouched: int = vouched) -> AsyncIterator[tuple[str, dict[str, Any]]]:
                """The kind's entities at ``rev``, a page at a time (a large cluster's tasks are
                hundreds of MB: never one request, never all in memory)."""
                nonlocal n_ahead
                base = layout.entity_key(s.etcd.prefix, cl, gen, kind, "")
                async for _, kvs in etcd_adapter.range_pages(self.client, base, etcd_adapter.prefix_end(base),
                                                             revision=rev):
                    n_ahead += sum(1 for kv in kvs if kv.mod_revision > vouched)
                    for kv in kvs:
                        yield kv.key[len(base):].decode(), orjson.loads(kv.value)

            running = 0
            async for _, t in kind_values("task"):
                running += t.get("state") == "TASK_RUNNING"
            agg.add("running", {"cluster": cl}, running)
            async for aid, a in kind_values("agent"):
                for kind, field in (("total", "total_by_role"), ("allocated", "allocated_by_role"),
                                    ("offered", "offered_by_role")):
                    for role, res in sorted((a.get(field) or {}).items()):
                        for name, val in sorted((res or {}).items()):
                            if isinstance(val, (int, float)):
                                agg.add("agent_res", {"cluster": cl, "agent": aid, "hostname": str(a.get("hostname")),
                                                      "role": role, "resource": name, "kind": kind}, val)
            async for rname, r in kind_values("role"):
                for kind in ("allocated", "offered"):
                    for name, val in sorted((r.get(kind) or {}).items()):
                        if isinstance(val, (int, float)):
                            agg.add("role_res", {"cluster": cl, "role": rname, "resource": name, "kind": kind}, val)
            async for rid, r in kind_values("rc"):
                agg.add("rc", {"cluster": cl, "rc": rid, "which": "desired"}, float(r.get("replicas") or 0))
                agg.add("rc", {"cluster": cl, "rc": rid, "which": "observed"}, float(r.get("observed_replicas") or 0))
            async for sid, sv in kind_values("service"):
                obs = len(((sv.get("endpoints_observed") or {}).get("addresses")) or [])
                agg.add("svc", {"cluster": cl, "service": sid, "which": "observed"}, obs)
                agg.add("svc", {"cluster": cl, "service": sid, "which": "ready"}, len(sv.get("endpoints_derived") or []))
            agg.add("ahead", {"cluster": cl}, n_ahead)
        return [
            agg.family("running", "kmevents_running_tasks", "tasks in TASK_RUNNING", ["cluster"]),
            agg.family("ahead", "kmevents_keys_ahead_of_checkpoint",
                       "keys written after the checkpoint by an event in flight", ["cluster"]),
            agg.family("agent_res", "kmevents_agent_resources", "resources per agent and role",
                       ["cluster", "agent", "hostname", "role", "resource", "kind"]),
            agg.family("role_res", "kmevents_role_resources", "resources per role",
                       ["cluster", "role", "resource", "kind"]),
            agg.family("rc", "kmevents_rc_replicas", "replicas per replication controller", ["cluster", "rc", "which"]),
            agg.family("svc", "kmevents_service_endpoints", "endpoints per service", ["cluster", "service", "which"]),
        ]


#: Labels that name no entity: kept when series are summed over entities.
_KIND_LABELS = frozenset({"resource", "kind", "which"})


class _Sums:
    """Gauge samples per entity (``per_entity``), or summed over the labels naming entities."""

    def __init__(self, per_entity: bool) -> None:
        self.per_entity = per_entity
        self.samples: dict[str, dict[tuple[str, ...], float]] = {}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        keep = labels if self.per_entity else {k: v for k, v in labels.items() if k in _KIND_LABELS}
        key = tuple(keep[k] for k in sorted(keep))
        d = self.samples.setdefault(name, {})
        d[key] = d.get(key, 0.0) + value

    def family(self, name: str, metric: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        shown = labels if self.per_entity else [x for x in labels if x in _KIND_LABELS]
        if not self.per_entity:
            doc += " (summed over clusters and entities; api.metrics_entity_labels shows each)"
        g = GaugeMetricFamily(metric, doc, labels=shown)
        order = sorted(shown)
        for key, value in self.samples.get(name, {}).items():
            by = dict(zip(order, key, strict=True))
            g.add_metric([by[x] for x in shown], value)
        return g


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    body = await request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def verify_loop(app: Any) -> None:
    """Run ``verify`` every ``api.verify_interval_seconds`` and keep its results for ``/metrics``."""
    from kmevents.replay.verify import clusters_of_live_checkpoints, verify

    s: Settings = app.state.settings
    while True:
        await asyncio.sleep(s.api.verify_interval_seconds)
        try:
            clusters = sorted(await clusters_of_live_checkpoints(app.state.etcd, s.etcd.prefix))
            for cl in clusters:
                report = await verify(s, [cl])
                chain_bad = [f for f in report.findings if "chain" in str(f.kind)]
                app.state.metrics.verified[cl] = {"drift": float(len(report.drift)),
                                                  "chain_ok": 0.0 if chain_bad else 1.0, "at": time.time()}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - metrics must never take the API down
            from kmevents.api.backends import backend_down

            reason = backend_down(s, exc)
            if reason is not None:
                log.warning("background verify skipped: %s", reason)
            else:
                log.exception("background verify failed")
