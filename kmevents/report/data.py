"""What the report shows, collected in one replay of the cluster's log (the one reducer).

For the window ``[start, end]`` of SOURCE time:

- **timeline**: notable events (agents lost/added/drained, master failovers,
  scheduler leadership, evictions, tasks LOST/FAILED/UNREACHABLE, frameworks)
  and the alerts the monitoring rules raised (``monitor/rules.py``), one lane
  per agent plus ``cluster`` and ``alerts`` lanes;
- **service levels**: pod creation to Running latency (p50/p90/p99/max), time
  to reschedule after an agent is lost (until every RC that had pods on it is
  back to the replicas it ran before), endpoint availability per service (share
  of the window with at least one observed endpoint);
- **capacity** history per agent and per role: total, allocated and offered
  cpus and memory, sampled at regular steps of source time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kmevents.jsonobj import obj
from kmevents.monitor.rules import RuleEngine
from kmevents.reducer import ClusterState
from kmevents.reducer.conditions import condition
from kmevents.settings import MonitorSettings
from kmevents.timespec import iso_of_micros, micros_of

NOTABLE = {"agent.added", "agent.removed", "agent.reregistered", "agent.draining", "agent.deactivated",
           "agent.reactivated", "master.elected", "master.heartbeat_lost", "master.error",
           "scheduler.leader_elected", "pod.evicted", "framework.registered", "framework.removed",
           "node.upserted"}
BAD_STATES = {"TASK_LOST", "TASK_FAILED", "TASK_UNREACHABLE", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"}
MAX_TIMELINE = 3000


def percentiles(xs: list[float]) -> dict[str, float | int | None]:
    if not xs:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    s = sorted(xs)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 3)

    return {"count": len(s), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(s[-1], 3)}


@dataclass
class ReportData:
    cluster: str
    start: str
    end: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    lanes: list[str] = field(default_factory=list)
    pod_latency: list[float] = field(default_factory=list)
    reschedule: list[dict[str, Any]] = field(default_factory=list)
    availability: dict[str, float] = field(default_factory=dict)
    capacity_agents: dict[str, list[list[float]]] = field(default_factory=dict)
    capacity_roles: dict[str, list[list[float]]] = field(default_factory=dict)
    events_in_window: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    truncated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "start": self.start, "end": self.end, "timeline": self.timeline,
                "lanes": self.lanes, "pod_latency": percentiles(self.pod_latency),
                "pod_latency_samples": sorted(self.pod_latency)[:: max(1, len(self.pod_latency) // 400)],
                "reschedule": self.reschedule, "availability": self.availability,
                "capacity_agents": self.capacity_agents, "capacity_roles": self.capacity_roles,
                "events_in_window": self.events_in_window, "offsets": [self.first_offset, self.last_offset],
                "timeline_truncated": self.truncated}


class Collector:
    """The replay hook: ``collector.hook(record, event, annotations, state)`` for every event in log order."""

    def __init__(self, cluster: str, start_us: int, end_us: int, *, samples: int = 120,
                 thresholds: MonitorSettings | None = None) -> None:
        self.d = ReportData(cluster, iso_of_micros(start_us), iso_of_micros(end_us))
        self.lo, self.hi = start_us, end_us
        self.step = max(1, (end_us - start_us) // samples)
        self.next_sample = start_us
        self.engine = RuleEngine(cluster, thresholds or MonitorSettings())
        self.next_eval = start_us
        self.created: dict[str, int] = {}
        self.ran: set[str] = set()
        self.waiting: list[dict[str, Any]] = []  # agent lost -> RCs to recover
        self.svc_state: dict[str, tuple[int, bool]] = {}  # service -> (since µs, has endpoints)
        self.svc_up: dict[str, int] = {}
        self.hosts: dict[str, str] = {}

    def _lane(self, ev: dict[str, Any], st: ClusterState) -> str:
        pl = obj(ev, "payload")
        aid = pl.get("agent_id") or (pl.get("agent") or {}).get("id") or (pl.get("status") or {}).get("agent_id")
        if aid:
            a = st.agents.get(str(aid))
            return str((a or {}).get("hostname") or self.hosts.get(str(aid)) or aid)
        actor = ev.get("actor") or {}
        if isinstance(actor, dict) and actor.get("kind") in ("agent", "node"):
            return str(actor.get("name"))
        return "cluster"

    def _add(self, item: dict[str, Any]) -> None:
        if len(self.d.timeline) >= MAX_TIMELINE:
            self.d.truncated += 1
            return
        self.d.timeline.append(item)
        if item["lane"] not in self.d.lanes:
            self.d.lanes.append(item["lane"])

    def hook(self, rec: Any, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        dirty = st.take_dirty()
        occ = ev.get("occurred_at")
        if type(occ) is not str:
            return
        t = micros_of(occ)
        for k, i in dirty:
            if k == "agent":
                a = st.agents.get(i)
                if a:
                    self.hosts[i] = str(a.get("hostname"))
        in_window = self.lo <= t <= self.hi
        self.engine.observe(ev, recorded_ms=rec.timestamp)
        while self.next_sample <= min(t, self.hi):
            if self.next_sample >= self.lo:
                self._sample(st, self.next_sample)
            self.next_sample += self.step
        self._slo(ev, st, dirty, t, in_window)
        if not in_window:
            return
        self.d.events_in_window += 1
        if self.d.first_offset is None:
            self.d.first_offset = rec.offset
        self.d.last_offset = rec.offset
        typ = str(ev.get("type"))
        pl = obj(ev, "payload")
        status = obj(pl, "status")
        if typ in NOTABLE or (typ == "task.status_updated" and status.get("state") in BAD_STATES):
            what = typ if typ != "task.status_updated" else str(status.get("state"))
            detail = " ".join(str(x) for x in (pl.get("reason"), status.get("reason"), status.get("task_id"),
                                                (pl.get("pod") or {}).get("name") if isinstance(pl.get("pod"), dict)
                                                else None) if x)
            self._add({"t": occ, "lane": self._lane(ev, st), "kind": "event", "type": typ, "label": what,
                       "detail": detail, "offset": rec.offset})
        if t >= self.next_eval:
            self.next_eval = t + self.step
            for alert in self.engine.evaluate(st, now_ms=rec.timestamp):
                self._add({"t": alert.ended_at or alert.started_at or occ, "lane": "alerts", "kind": "alert",
                           "type": alert.rule, "label": f"{alert.rule} {alert.status}", "detail": alert.summary,
                           "severity": alert.severity, "status": alert.status, "offset": rec.offset})

    def _slo(self, ev: dict[str, Any], st: ClusterState, dirty: set[tuple[str, str]], t: int, in_window: bool) -> None:
        for k, i in dirty:
            if k == "pod":
                p = st.pods.get(i)
                if p is None:
                    continue
                if i not in self.created and p.get("created_at"):
                    self.created[i] = micros_of(str(p["created_at"]))
                if p.get("phase") == "Running" and i not in self.ran:
                    self.ran.add(i)
                    c = self.created.get(i)
                    if c is not None and self.lo <= c <= self.hi:
                        self.d.pod_latency.append((micros_of(str(p.get("since") or ev["occurred_at"])) - c) / 1e6)
            elif k == "rc":
                rc = st.rcs.get(i)
                for w in self.waiting:
                    if i in w["rcs"] and rc is not None and int(rc.get("observed_replicas") or 0) >= w["rcs"][i]:
                        del w["rcs"][i]
                        if not w["rcs"]:
                            w["seconds"] = round((t - w["t"]) / 1e6, 3)
            elif k == "service":
                s = st.services.get(i)
                has = bool(((s or {}).get("endpoints_observed") or {}).get("addresses"))
                self._svc(i, t, has)
        if ev.get("type") == "agent.removed" and in_window:
            aid = str((ev.get("payload") or {}).get("agent_id"))
            on_agent = {pid for pid, p in st.pods.items() if p.get("agent_id") == aid and condition(p) == "Running"}
            rcs: dict[str, int] = {}
            for rid, rc in st.rcs.items():
                ns = rid.split("/", 1)[0]
                sel = rc.get("selector") or {}
                if any(pid.startswith(ns + "/") and sel and all(
                        (st.pods[pid].get("labels") or {}).get(k2) == v for k2, v in sel.items()) for pid in on_agent):
                    rcs[rid] = int(rc.get("observed_replicas") or 0)
            entry = {"agent": self.hosts.get(aid, aid), "t": t, "at": ev["occurred_at"], "rcs": rcs, "seconds": None}
            if not rcs:
                entry["seconds"] = 0.0
            self.waiting.append(entry)

    def _svc(self, sid: str, t: int, has: bool) -> None:
        since, had = self.svc_state.get(sid, (t, False))
        if had:
            lo, hi = max(since, self.lo), min(t, self.hi)
            if hi > lo:
                self.svc_up[sid] = self.svc_up.get(sid, 0) + (hi - lo)
        self.svc_state[sid] = (t, has)

    def _sample(self, st: ClusterState, t: int) -> None:
        x = round((t - self.lo) / 1e6, 3)
        for aid, a in st.entities("agent"):
            if a.get("status") == "removed":
                continue
            tot, al, of = a.get("total") or {}, a.get("allocated") or {}, a.get("offered") or {}
            host = str(a.get("hostname") or aid)
            self.d.capacity_agents.setdefault(host, []).append(
                [x, tot.get("cpus", 0), al.get("cpus", 0), of.get("cpus", 0),
                 tot.get("mem", 0), al.get("mem", 0), of.get("mem", 0)])
        for rname, r in st.entities("role"):
            al, of = r.get("allocated") or {}, r.get("offered") or {}
            self.d.capacity_roles.setdefault(rname, []).append(
                [x, al.get("cpus", 0), of.get("cpus", 0), al.get("mem", 0), of.get("mem", 0)])

    def finish(self, st: ClusterState) -> ReportData:
        while self.next_sample <= self.hi and self.next_sample >= self.lo:
            self._sample(st, self.next_sample)
            self.next_sample += self.step
        for sid in list(self.svc_state):
            self._svc(sid, self.hi, self.svc_state[sid][1])
        span = max(1, self.hi - self.lo)
        self.d.availability = {sid: round(self.svc_up.get(sid, 0) / span, 4) for sid in sorted(self.svc_state)}
        self.d.reschedule = [{k: v for k, v in w.items() if k != "rcs"} | {"rcs_waiting": sorted(w["rcs"])}
                             for w in self.waiting]
        return self.d


async def collect(src: Any, cluster: str, start: str | None, end: str | None, *,
                  thresholds: MonitorSettings | None = None) -> ReportData:
    """Replay the cluster's log once (to the end of the window) and collect the report's data.

    ``start``/``end``: canonical times (source time); None: the first/last event's time.
    """
    from kmevents.replay.engine import Target, replay

    first_t, last_t = await _bounds(src)
    lo = micros_of(start) if start else first_t
    hi = micros_of(end) if end else last_t
    col = Collector(cluster, lo, hi, thresholds=thresholds)
    r = await replay(src, cluster, Target(), on_event=col.hook, progress=False, label="report")
    return col.finish(r.state)


async def _bounds(src: Any) -> tuple[int, int]:
    """Source times of the first and last events (a scan of the source)."""
    from kmevents.contract import DecodeError, decode_fast

    lo = hi = None
    first, last = await src.covers()
    async for batch in src.batches(first, last):
        for rec in batch:
            try:
                occ = decode_fast(rec.value or b"").get("occurred_at")
            except DecodeError:
                continue
            if type(occ) is str:
                t = micros_of(occ)
                lo = t if lo is None else min(lo, t)
                hi = t if hi is None else max(hi, t)
    if lo is None or hi is None:
        from kmevents.errors import UsageError

        raise UsageError("the log holds no event of this cluster", hint="check --cluster")
    return lo, hi
