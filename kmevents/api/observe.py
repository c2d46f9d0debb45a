"""``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus): open without a token.

- ``/healthz``: the process answers (liveness).
- ``/readyz``: Kafka answers metadata, etcd answers a read, and every
  partition's processor lag (records written to the events topic but not yet
  in etcd's checkpoint) is at most ``api.ready_max_lag``; 503 otherwise, with
  each check's result in the body.
- ``/metrics``: read at scrape time (cached ``api.metrics_cache_seconds``) from
  Kafka's offsets and etcd at one revision:

  ======================================  =====================================================
  kmevents_log_end_offset{partition}      next offset of the events topic
  kmevents_events_per_second{partition}   log growth between two scrapes
  kmevents_checkpoint_offset{partition}   last offset whose effect is in etcd
  kmevents_processor_lag{partition}       records not yet derived
  kmevents_dead_letters                   records in the dead-letter topic
  kmevents_derived_by_older_reducer       1 when a checkpoint was written by another reducer version
  kmevents_keys_ahead_of_checkpoint       keys written by an event in flight (per cluster)
  kmevents_chain_head_known{cluster}      1 when the checkpoint carries the cluster's chain head
  kmevents_verify_*                       drift findings / chain status of the last background
                                          ``verify`` (api.verify_interval_seconds > 0)
  kmevents_running_tasks{cluster}         derived state as gauges, and the same for resources
  kmevents_agent_resources{...}           total / allocated / offered per agent, role, resource
  kmevents_role_resources{...}            allocated / offered per role
  kmevents_rc_replicas{cluster,rc,which}  desired / observed
  kmevents_service_endpoints{...}         observed / ready per service
  ======================================  =====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from kmevents import __version__, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.monitor.consumer import checkpoints, lags
from kmevents.reducer import REDUCER_VERSION
from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint

log = logging.getLogger("kmevents.api.observe")
router = APIRouter(tags=["health"])


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
        checks["kafka"] = False
        checks["kafka_error"] = str(exc)
    cps: dict[int, Checkpoint] = {}
    try:
        _, cps = await asyncio.wait_for(checkpoints(settings, request.app.state.etcd), 5.0)
        checks["etcd"] = True
    except Exception as exc:  # noqa: BLE001
        checks["etcd"] = False
        checks["etcd_error"] = str(exc)
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
    return JSONResponse({"ready": ready, "max_lag": settings.api.ready_max_lag, "checks": checks},
                        status_code=200 if ready else 503)


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)


class Metrics:
    """Computes the metric families at scrape time, from Kafka offsets and etcd at one revision."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient) -> None:
        self.settings = settings
        self.client = client
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
            reg.register(_Families(await self.families()))  # type: ignore[arg-type]
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
        for p, v in sorted(lags(ends, cps).items()):
            g_lag.add_metric([str(p)], v)
        fams += [g_ck, g_lag, g_old]
        clusters = sorted({c for ck in cps.values() for c in ck.chains})
        g = GaugeMetricFamily("kmevents_chain_head_known", "1 when the checkpoint carries the cluster's chain head",
                              labels=["cluster"])
        for c in clusters:
            g.add_metric([c], 1)
        fams.append(g)
        fams += self._verify_families()
        fams += await self._derived(rev, cps, clusters)
        return fams

    def _verify_families(self) -> list[Any]:
        d = GaugeMetricFamily("kmevents_verify_drift_findings", "drift findings of the last background verify",
                              labels=["cluster"])
        c = GaugeMetricFamily("kmevents_verify_chain_ok", "1 when the last verify found the hash chain intact",
                              labels=["cluster"])
        t = GaugeMetricFamily("kmevents_verify_last_run_timestamp_seconds", "when the last verify ran",
                              labels=["cluster"])
        for cl, r in sorted(self.verified.items()):
            d.add_metric([cl], r["drift"])
            c.add_metric([cl], r["chain_ok"])
            t.add_metric([cl], r["at"])
        return [d, c, t]

    async def _derived(self, rev: int, cps: dict[int, Checkpoint], clusters: list[str]) -> list[Any]:
        s = self.settings
        running = GaugeMetricFamily("kmevents_running_tasks", "tasks in TASK_RUNNING", labels=["cluster"])
        ahead = GaugeMetricFamily("kmevents_keys_ahead_of_checkpoint",
                                  "keys written after the checkpoint by an event in flight", labels=["cluster"])
        agent_res = GaugeMetricFamily("kmevents_agent_resources", "resources per agent and role",
                                      labels=["cluster", "agent", "hostname", "role", "resource", "kind"])
        role_res = GaugeMetricFamily("kmevents_role_resources", "resources per role",
                                     labels=["cluster", "role", "resource", "kind"])
        rc = GaugeMetricFamily("kmevents_rc_replicas", "replicas per replication controller",
                               labels=["cluster", "rc", "which"])
        svc = GaugeMetricFamily("kmevents_service_endpoints", "endpoints per service",
                                labels=["cluster", "service", "which"])
        ckpt_rev = {c: ck.mod_revision for ck in cps.values() for c in ck.chains}
        for cl in clusters:
            _, cur = await etcd_adapter.range_at(self.client, layout.current_key(s.etcd.prefix, cl), revision=rev)
            gen = str(orjson.loads(cur[0].value).get("generation")) if cur else layout.live_generation()
            n_ahead = 0
            counts = {"running": 0}

            async def kind_values(kind: str, cl: str = cl, gen: str = gen) -> list[tuple[str, dict[str, Any]]]:
                nonlocal n_ahead
                base = layout.entity_key(s.etcd.prefix, cl, gen, kind, "")
                _, kvs = await etcd_adapter.range_at(self.client, base, range_end=etcd_adapter.prefix_end(base),
                                                     revision=rev)
                n_ahead += sum(1 for kv in kvs if kv.mod_revision > ckpt_rev.get(cl, 0))
                return [(kv.key[len(base):].decode(), orjson.loads(kv.value)) for kv in kvs]

            for _, t in await kind_values("task"):
                if t.get("state") == "TASK_RUNNING":
                    counts["running"] += 1
            running.add_metric([cl], counts["running"])
            for aid, a in await kind_values("agent"):
                for kind, field in (("total", "total_by_role"), ("allocated", "allocated_by_role"),
                                    ("offered", "offered_by_role")):
                    for role, res in sorted((a.get(field) or {}).items()):
                        for name, val in sorted((res or {}).items()):
                            if isinstance(val, (int, float)):
                                agent_res.add_metric([cl, aid, str(a.get("hostname")), role, name, kind], val)
            for rname, r in await kind_values("role"):
                for kind in ("allocated", "offered"):
                    for name, val in sorted((r.get(kind) or {}).items()):
                        if isinstance(val, (int, float)):
                            role_res.add_metric([cl, rname, name, kind], val)
            for rid, r in await kind_values("rc"):
                rc.add_metric([cl, rid, "desired"], float(r.get("replicas") or 0))
                rc.add_metric([cl, rid, "observed"], float(r.get("observed_replicas") or 0))
            for sid, sv in await kind_values("service"):
                obs = len(((sv.get("endpoints_observed") or {}).get("addresses")) or [])
                svc.add_metric([cl, sid, "observed"], obs)
                svc.add_metric([cl, sid, "ready"], len(sv.get("endpoints_derived") or []))
            ahead.add_metric([cl], n_ahead)
        return [running, ahead, agent_res, role_res, rc, svc]


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
        except Exception:  # noqa: BLE001 - metrics must never take the API down
            log.exception("background verify failed")
