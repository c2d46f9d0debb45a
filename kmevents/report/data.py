"""What the report shows, collected in one replay of the cluster's log (the one reducer).

For the window ``[start, end]`` of SOURCE time:

- **timeline** (lanes and marks: ``timeline.py``): master failovers and k8sm
  leader changes, read from the folded cluster entity; the alerts the
  monitoring rules raised (``monitor/rules.py``) as intervals from firing to
  resolved, one lane per rule; notable events (agents lost/added/drained,
  evictions on the agent their pod ran on, tasks LOST/FAILED/UNREACHABLE,
  frameworks) counted into marks, nothing left out; every agent of the window
  with its down periods (removed, deactivated, draining: an agent id re-added
  under the same host name ends its host's down period); the axis's ticks in
  the reader's zone (``axis.py``);
- **service levels**: pod creation to Running latency (p50/p90/p99/max), time
  to reschedule after an agent is lost (until every RC that had pods on it is
  back to the replicas it ran before), endpoint availability per service (share
  of the window with at least one observed endpoint);
- **capacity** history per agent and per role: total, allocated and offered
  cpus and memory, sampled at regular steps of source time.

``ReportData.as_dict()`` is the report as JSON (``report --format json``); the
HTML page embeds the same document without its ``events`` list.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from kmevents.jsonobj import obj
from kmevents.monitor.rules import RuleEngine
from kmevents.reducer import ClusterState
from kmevents.reducer.conditions import condition
from kmevents.report import axis, timeline
from kmevents.settings import MonitorSettings
from kmevents.store.snapshots import Loaded, Snapshots
from kmevents.timespec import iso_of_micros, micros_of

log = logging.getLogger("kmevents.report")

NOTABLE = {"agent.added", "agent.removed", "agent.reregistered", "agent.draining", "agent.deactivated",
           "agent.reactivated", "master.elected", "master.heartbeat_lost", "master.error",
           "scheduler.leader_elected", "pod.evicted", "framework.registered", "framework.removed",
           "node.upserted"}
BAD_STATES = {"TASK_LOST", "TASK_FAILED", "TASK_UNREACHABLE", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"}
BAD_TYPES = {"agent.removed", "pod.evicted", "master.error", "master.heartbeat_lost", "framework.removed"}
#: Drawn as the failovers lane's own marks (from the cluster entity), not as counted events.
LEADER_TYPES = {"master.elected", "scheduler.leader_elected"}
#: Notable events listed one by one in the JSON (all of them are counted in the marks).
MAX_EVENTS = 20000
#: How long after its window a report follows what the window left open, by default (µs of source
#: time): pods created in it reaching Running, RCs recovering after an agent lost in it.
FOLLOW_US = 15 * 60 * 1_000_000


def lookback_us(t: MonitorSettings) -> int:
    """How long before its window a report that starts from a snapshot starts reading events
    (µs of source time): the rules' rate window (an event older than it at the window's start
    counts in none the rules evaluate in the window) or a source's silence that fires
    ``source_silent``, whichever is longer, and a second."""
    return int((max(t.window_seconds, t.silent_seconds) + 1) * 1_000_000)


def _since(item: tuple[str, dict[str, Any]]) -> str:
    return str(item[1].get("since") or "")


def _has_endpoints(svc: dict[str, Any] | None) -> bool:
    return bool(((svc or {}).get("endpoints_observed") or {}).get("addresses"))


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
    lo: int
    hi: int
    tz: dt.tzinfo = axis.UTC
    events: list[dict[str, Any]] = field(default_factory=list)
    events_listed_max: int = MAX_EVENTS
    notable: int = 0
    marks: timeline.Marks | None = None
    leaders: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    master_down: list[dict[str, Any]] = field(default_factory=list)
    pod_latency: list[float] = field(default_factory=list)
    reschedule: list[dict[str, Any]] = field(default_factory=list)
    availability: dict[str, float] = field(default_factory=dict)
    capacity_agents: dict[str, list[list[float]]] = field(default_factory=dict)
    capacity_roles: dict[str, list[list[float]]] = field(default_factory=dict)
    events_in_window: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    #: the offset of the snapshot the replay started from (:meth:`Collector.seed`); None: the log's start
    seeded_at: int | None = None
    #: the last offset the replay read (before the log's end when it followed the window for a while)
    read_to: int | None = None

    @property
    def start(self) -> str:
        return iso_of_micros(self.lo)

    @property
    def end(self) -> str:
        return iso_of_micros(self.hi)

    def as_dict(self, *, events: bool = True) -> dict[str, Any]:
        """The report as one JSON document; ``events=False`` leaves the list of notable events out."""
        marks = self.marks or timeline.Marks(self.lo, self.hi)
        rules: dict[str, int] = {}
        for a in self.alerts:
            rules[a["rule"]] = rules.get(a["rule"], 0) + 1
        out = {
            "cluster": self.cluster, "start": self.start, "end": self.end,
            "zone": {"name": axis.zone_name(self.tz), "caption": axis.caption(self.lo, self.hi, self.tz),
                     "start": axis.local_text(self.lo, self.tz), "end": axis.local_text(self.hi, self.tz)},
            "axis": axis.ticks(self.lo, self.hi, self.tz),
            "lanes": timeline.lanes(rules, self.agents, marks.per_lane()),
            "leaders": self.leaders, "master_down": self.master_down, "alerts": self.alerts,
            "marks": marks.as_list(), "agents": self.agents,
            "notable_events": self.notable,
            "pod_latency": percentiles(self.pod_latency),
            "pod_latency_samples": sorted(self.pod_latency)[:: max(1, len(self.pod_latency) // 400)],
            "reschedule": self.reschedule, "availability": self.availability,
            "capacity_columns": {"agents": ["seconds", "cpus total", "cpus allocated", "cpus offered", "mem total",
                                            "mem allocated", "mem offered"],
                                 "roles": ["seconds", "cpus allocated", "cpus offered", "mem allocated",
                                           "mem offered"]},
            "capacity_agents": self.capacity_agents, "capacity_roles": self.capacity_roles,
            "events_in_window": self.events_in_window, "offsets": [self.first_offset, self.last_offset],
        }
        if events:
            out["events"] = self.events
            out["events_not_listed"] = self.notable - len(self.events)
        return out


class Collector:
    """The replay hook: ``collector.hook(record, event, annotations, state)`` for every event in log order."""

    def __init__(self, cluster: str, start_us: int, end_us: int, *, samples: int = 120,
                 thresholds: MonitorSettings | None = None, tz: dt.tzinfo = axis.UTC) -> None:
        self.d = ReportData(cluster, start_us, end_us, tz, marks=timeline.Marks(start_us, end_us))
        self.lo, self.hi = start_us, end_us
        self.step = max(1, (end_us - start_us) // samples)
        self.next_sample = start_us
        self.engine = RuleEngine(cluster, thresholds or MonitorSettings())
        self.engine.track_pods()  # (the hook tells it of every pod changed)
        self.next_eval = start_us
        self.created: dict[str, str] = {}  # pod id -> created_at of the pod of that id seen last
        self.ran: set[str] = set()  # pods (of their latest creation) seen Running
        self.waiting: list[dict[str, Any]] = []  # agent lost -> RCs to recover
        self.svc_state: dict[str, tuple[int, bool]] = {}  # service -> (since µs, has endpoints)
        self.svc_up: dict[str, int] = {}
        self.svc_listed: set[str] = set()  # services that existed at some point of the window
        self.reached_window = False  # an event at or after the window's start was read
        self.hosts: dict[str, str] = {}  # agent id -> host name
        self.host_ids: dict[str, dict[str, str]] = {}  # host -> {agent id: status}
        self.down = timeline.Periods("active")  # per host
        self.seen_in_window: set[str] = set()  # hosts active at some point of the window
        self.master = timeline.Periods("ok")
        self.failover_count = 0
        self.leader_id: str | None = None
        self.scheduler_leader: str | None = None
        self.masters: dict[str, str] = {}  # master id -> host name
        self.firing: dict[str, dict[str, Any]] = {}  # alert fingerprint -> its interval
        #: agent id -> ids of its Running pods (_running_on); None until an agent is lost in the window
        self.running: dict[str, set[str]] | None = None
        self.running_agent: dict[str, str] = {}  # pod id -> the agent it runs on
        self.seen_lo: int | None = None  # the source times of the cluster's first and last events (µs)
        self.seen_hi: int | None = None

    def seed(self, st: ClusterState) -> None:
        """Start from ``st``, a snapshot's state, instead of the log's first event: what the
        collection keeps of the time before its window, derived from the entities.

        Every event ``st`` applied must have occurred before the window's start by more than
        the rules' rate window (:func:`lookback_us`): then none of them is in the window or in
        a rate window the rules evaluate in it, and what the report keeps of them is what the
        entities hold: each agent's host and status (down periods), the leading master and
        k8sm leader, the master's heartbeat, the services' endpoints, the time the rules have
        reached (their watermark). A pod's creation and whether it ran are taken when it next
        changes (every pod of ``st`` was created before the window, so none of them has a
        latency to measure); the Running pods per agent are read from the state when an
        agent is first lost in the window (:meth:`_running_on`). What is not in the entities
        is known from the snapshot on only: the source streams the ``source_silent`` rule
        watches (README, "kmevents report")."""
        st.take_dirty()
        t = micros_of(st.max_occurred_at) if st.max_occurred_at else self.lo - 1
        self.d.seeded_at = st.offset
        self.seen_lo = self.seen_hi = t  # (seen_lo: an upper bound of the first event's time)
        self.engine.watermark = t
        # agents in the order of their last change: each host's status as the log left it
        for aid, a in sorted(st.entities("agent"), key=_since):
            self._agent(aid, a, t)
        self._cluster(st, t, st.offset)
        for sid, svc in st.entities("service"):
            self.svc_state[sid] = (t, _has_endpoints(svc))

    def _lane(self, ev: dict[str, Any], st: ClusterState) -> str:
        pl = obj(ev, "payload")
        aid = pl.get("agent_id") or (pl.get("agent") or {}).get("id") or (pl.get("status") or {}).get("agent_id")
        if not aid and ev.get("type") == "pod.evicted" and isinstance(pl.get("pod"), dict):
            pod = st.pods.get(f"{pl['pod'].get('namespace')}/{pl['pod'].get('name')}")
            aid = (pod or {}).get("agent_id")  # the agent the pod ran on
        if aid:
            a = st.agents.get(str(aid))
            return str((a or {}).get("hostname") or self.hosts.get(str(aid)) or aid)
        actor = ev.get("actor") or {}
        if isinstance(actor, dict) and actor.get("kind") in ("agent", "node"):
            return str(actor.get("name"))
        return timeline.CLUSTER

    def _agent(self, aid: str, a: dict[str, Any], t: int) -> None:
        host = str(a.get("hostname") or aid)
        self.hosts[aid] = host
        ids = self.host_ids.setdefault(host, {})
        ids[aid] = str(a.get("status"))
        statuses = set(ids.values())
        # A host is up while any of its agent ids is: Mesos gives an agent re-added after removal a new id.
        status = next((x for x in ("active", "draining", "deactivated", "removed") if x in statuses), "removed")
        if self.down.status.get(host) != status:  # (a status time is parsed only when it changes: agents
            since = micros_of(str(a["since"])) if a.get("since") else t  # are dirty at every allocation)
            self.down.change(host, status, min(since, t), a.get("removed_reason") if status == "removed" else None)
        if status == "active" and self.lo <= t <= self.hi:
            self.seen_in_window.add(host)

    def _cluster(self, st: ClusterState, t: int, offset: int) -> None:
        c = st.clusters.get(st.cluster)
        if c is None:
            return
        leader = c.get("leader") or {}
        if leader.get("id"):
            self.masters[str(leader["id"])] = str(leader.get("hostname") or leader["id"])
        hb = c.get("heartbeat") or {}
        if hb.get("status"):
            why = f"{hb.get('missed')} heartbeats missed" if hb["status"] == "lost" else None
            if hb["status"] != self.master.status.get("master"):
                since = micros_of(str(hb["since"])) if hb.get("since") else t
                self.master.change("master", str(hb["status"]), since, why)
            elif t <= self.hi:  # (still lost: the period says the latest count by the window's end, as a
                self.master.retell("master", why)  # snapshot's entity does)
        count = int(c.get("failover_count") or 0)
        lid = str(leader["id"]) if leader.get("id") else None
        if lid is not None and lid != self.leader_id:
            at = micros_of(str(c["since"])) if c.get("since") else t
            if self.lo <= at <= self.hi:
                failover = count > self.failover_count and bool(c.get("failovers"))
                old = str(c["failovers"][-1]["from"]) if failover else ""
                self.d.leaders.append({
                    "t": iso_of_micros(at), "kind": "master", "failover": failover, "from": old or None, "to": lid,
                    "offset": offset, "label": f"master failover: {self.masters.get(old, old)} -> {self.masters[lid]}"
                    if failover else f"master elected: {self.masters[lid]}"})
            self.leader_id = lid
        self.failover_count = count
        sched = c.get("scheduler_leader") or {}
        ident = sched.get("identity")
        if ident and ident != self.scheduler_leader:
            at = micros_of(str(sched.get("since"))) if sched.get("since") else t
            if self.lo <= at <= self.hi:
                prev = self.scheduler_leader or sched.get("previous")
                self.d.leaders.append({"t": iso_of_micros(at), "kind": "scheduler", "failover": bool(prev),
                                       "from": prev, "to": ident, "offset": offset,
                                       "label": f"k8sm leader: {prev} -> {ident}" if prev
                                       else f"k8sm leader elected: {ident}"})
            self.scheduler_leader = ident

    def _event(self, rec: Any, ev: dict[str, Any], st: ClusterState, t: int) -> None:
        typ = str(ev.get("type"))
        pl = obj(ev, "payload")
        status = obj(pl, "status")
        if not (typ in NOTABLE or (typ == "task.status_updated" and status.get("state") in BAD_STATES)):
            return
        what = typ if typ != "task.status_updated" else str(status.get("state"))
        lane = timeline.FAILOVERS if typ.startswith("master.") or typ in LEADER_TYPES else self._lane(ev, st)
        bad = typ in BAD_TYPES or what in BAD_STATES
        self.d.notable += 1
        if typ not in LEADER_TYPES:  # those are the failovers lane's own marks
            assert self.d.marks is not None
            self.d.marks.add(lane, t, "bad" if bad else "ev", what, rec.offset)
        if len(self.d.events) < self.d.events_listed_max:
            pod = pl.get("pod")
            detail = " ".join(str(x) for x in (pl.get("reason"), status.get("reason"), status.get("task_id"),
                                                pod.get("name") if isinstance(pod, dict) else None) if x)
            self.d.events.append({"t": ev["occurred_at"], "lane": lane, "type": typ, "label": what, "detail": detail,
                                  "offset": rec.offset})

    def _alerts(self, rec: Any, occ: str, st: ClusterState) -> None:
        for alert in self.engine.evaluate(st, now_ms=rec.timestamp):
            fp = alert.fingerprint
            if alert.status == "firing":
                iv = {"rule": alert.rule, "severity": alert.severity, "key": alert.key, "summary": alert.summary,
                      "from": alert.started_at or occ, "to": None, "offset": rec.offset}
                self.firing[fp] = iv
                self.d.alerts.append(iv)
            else:
                known = self.firing.pop(fp) if fp in self.firing else None
                if known is not None:
                    iv = known
                else:  # fired before the window: it began at its start at the latest
                    iv = {"rule": alert.rule, "severity": alert.severity, "key": alert.key, "summary": alert.summary,
                          "from": alert.started_at or self.d.start, "to": None, "offset": rec.offset}
                    self.d.alerts.append(iv)
                iv["to"] = alert.ended_at or occ

    def hook(self, rec: Any, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        dirty = st.take_dirty()
        occ = ev.get("occurred_at")
        if type(occ) is not str:
            for k, i in dirty:  # (the pods by agent and the rules follow every change)
                if k == "pod":
                    self._running_on(i, st.pods.get(i))
                    self.engine.pod_changed(i)
            return
        t = micros_of(occ)
        if self.seen_lo is None or t < self.seen_lo:
            self.seen_lo = t
        if self.seen_hi is None or t > self.seen_hi:
            self.seen_hi = t
        for k, i in dirty:
            if k == "agent":
                a = st.agents.get(i)
                if a:
                    self._agent(i, a, t)
            elif k == "cluster":
                self._cluster(st, t, rec.offset)
        in_window = self.lo <= t <= self.hi
        self.engine.observe(ev, recorded_ms=rec.timestamp)
        if t >= self.lo and not self.reached_window:  # the services there at the window's start
            self.reached_window = True
            self.svc_listed.update(st.services)
        while self.next_sample <= min(t, self.hi):
            if self.next_sample >= self.lo:
                self._sample(st, self.next_sample)
            self.next_sample += self.step
        self._slo(ev, st, dirty, t, in_window)
        if not in_window:
            return
        if not self.seen_in_window:  # the window's first event: every agent up now is in the report
            for host, ids in self.host_ids.items():
                if "active" in ids.values():
                    self.seen_in_window.add(host)
        self.d.events_in_window += 1
        if self.d.first_offset is None:
            self.d.first_offset = rec.offset
        self.d.last_offset = rec.offset
        self._event(rec, ev, st, t)
        if t >= self.next_eval:
            self.next_eval = t + self.step
            self._alerts(rec, occ, st)

    def _slo(self, ev: dict[str, Any], st: ClusterState, dirty: set[tuple[str, str]], t: int, in_window: bool) -> None:
        for k, i in dirty:
            if k == "pod":
                p = st.pods.get(i)
                self._running_on(i, p)
                self.engine.pod_changed(i)
                if p is None:
                    continue
                made = p.get("created_at")
                if made and self.created.get(i) != made:  # created (again, after a deletion, under its name)
                    self.created[i] = made
                    self.ran.discard(i)
                if p.get("phase") == "Running" and i not in self.ran:
                    self.ran.add(i)
                    c = micros_of(str(self.created[i])) if i in self.created else None
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
                if in_window:
                    self.svc_listed.add(i)  # changed in the window: it existed before or after the change
                self._svc(i, t, _has_endpoints(st.services.get(i)))
        if ev.get("type") == "agent.removed" and in_window:
            aid = str((ev.get("payload") or {}).get("agent_id"))
            if self.running is None:
                self._read_running(st)
            assert self.running is not None
            on_agent = set(self.running.get(aid, ()))
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

    def _running_on(self, pid: str, p: dict[str, Any] | None) -> None:
        """Keep ``running`` (agent id -> its Running pods) as pod ``pid`` changed to ``p`` (None:
        gone). Every change of a pod marks it dirty, so this equals a scan of the state's pods,
        which the report did at each agent removal (each packed pod decoded: ~0.3 s per
        removal at the large profile). Kept from the first agent lost in the window on
        (:meth:`_read_running`, that scan once): before, nothing reads it."""
        if self.running is None:
            return
        was = self.running_agent.pop(pid, None)
        if was is not None:
            self.running[was].discard(pid)
        if p is not None and p.get("agent_id") and condition(p) == "Running":
            aid = str(p["agent_id"])
            self.running_agent[pid] = aid
            self.running.setdefault(aid, set()).add(pid)

    def _read_running(self, st: ClusterState) -> None:
        """``running`` from a scan of the state's pods (each read without being kept decoded)."""
        self.running, self.running_agent = {}, {}
        for pid, p in st.entities("pod"):
            self._running_on(pid, p)

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
        self.d.availability = {sid: round(self.svc_up.get(sid, 0) / span, 4) for sid in sorted(self.svc_listed)}
        self.d.reschedule = [{k: v for k, v in w.items() if k != "rcs"} | {"rcs_waiting": sorted(w["rcs"])}
                             for w in self.waiting]
        self.d.master_down = self.master.clipped("master", self.lo, self.hi)
        # in the order of hosts and roles, not of the state's tables (a state loaded from a snapshot
        # holds them in another order than the fold that made it)
        self.d.capacity_agents = {h: self.d.capacity_agents[h] for h in sorted(self.d.capacity_agents,
                                                                              key=timeline.host_key)}
        self.d.capacity_roles = dict(sorted(self.d.capacity_roles.items()))
        self.d.leaders.sort(key=lambda x: (x["t"], x["offset"]))
        # (alerts of one evaluation in the order of rule and key, not of the state's tables)
        self.d.alerts.sort(key=lambda x: (x["from"], x["offset"], x["rule"], x["key"]))
        per_lane = self.d.marks.per_lane() if self.d.marks else {}
        for host in sorted(self.host_ids, key=timeline.host_key):
            down = self.down.clipped(host, self.lo, self.hi)
            if host not in self.seen_in_window and (not down or self.down.gone_before(host, self.lo, "removed")):
                continue  # gone before the window (or first seen after it)
            series = self.d.capacity_agents.get(host) or []
            self.d.agents.append({
                "host": host, "ids": sorted(self.host_ids[host]),
                "status": self.down.status.get(host, "active"), "down": down,
                "down_seconds": round(sum(x["seconds"] for x in down), 3), "events": per_lane.get(host, 0),
                "cpus_total_max": max((r[1] for r in series), default=None),
                "cpus_allocated_max": max((r[2] for r in series), default=None)})
        return self.d


async def collect(src: Any, cluster: str, start: str | None, end: str | None, *,
                  thresholds: MonitorSettings | None = None, tz: dt.tzinfo = axis.UTC,
                  snapshots: Snapshots | None = None, progress: bool = False,
                  follow_us: int | None = FOLLOW_US) -> ReportData:
    """Replay the cluster's log once and collect the report's data.

    ``start``/``end``: canonical times (source time); None: the first/last event's time.
    ``tz``: the zone the axis and the window are written in (UTC by default).
    ``snapshots``: with a ``start``, the replay starts from the newest snapshot whose events all
    occurred before ``start`` by more than :func:`lookback_us` (:meth:`Collector.seed`), when
    there is one; else from the log's first event. ``progress``: a bar on a terminal.
    ``follow_us``: with an ``end``, what the window left open is followed for this long after it:
    the replay folds the events that occurred by ``end + follow_us`` (a point by occurrence: it
    stops reading where the snapshots' touched-entity index says nothing later happened by then,
    replay/occurrence.py); None: every event to the log's end.
    """
    from kmevents.replay.engine import Target, replay

    thresholds = thresholds or MonitorSettings()
    given = micros_of(start) if start else None
    loaded = None
    if given is not None and snapshots is not None:
        loaded = await _snapshot_before(src, cluster, given - lookback_us(thresholds), snapshots)
    if given is not None and end:  # the window is known: the log's span is learnt along the replay, not by a scan
        lo, hi = given, micros_of(end)
    elif given is not None and loaded is not None:  # the window ends with the log: its last time from the snapshot on
        lo = given
        ends = [micros_of(loaded.state.max_occurred_at)] if loaded.state.max_occurred_at else []
        tail = await _span(src, loaded.offset + 1)
        hi = max(ends + [tail[1]] if tail is not None else ends, default=lo)
    else:
        first_t, last_t = await _bounds(src)
        lo = given if given is not None else first_t
        hi = micros_of(end) if end else last_t
        _refuse_outside(lo, hi, first_t, last_t)
    col = Collector(cluster, lo, hi, thresholds=thresholds, tz=tz)
    target = Target.parse(at=iso_of_micros(hi + follow_us)) if end and follow_us is not None else Target()
    if loaded is not None:
        col.seed(loaded.state)
        r = await replay(src, cluster, target, start_state=loaded.state, start_offset=loaded.offset,
                         start_chain=loaded.chain, on_event=col.hook, progress=progress, label="report",
                         snapshots=snapshots)
    else:
        r = await replay(src, cluster, target, on_event=col.hook, progress=progress, label="report",
                         snapshots=snapshots)
    col.d.read_to = r.end_offset
    if col.seen_lo is None or col.seen_hi is None:
        from kmevents.errors import UsageError

        raise UsageError("the log holds no event of this cluster", hint="check --cluster")
    if loaded is not None and (lo > col.seen_hi or hi < col.seen_lo):
        first_t, last_t = await _bounds(src)  # (the snapshot did not say when the log starts)
        _refuse_outside(lo, hi, first_t, last_t)
    _refuse_outside(lo, hi, col.seen_lo, col.seen_hi)
    return col.finish(r.state)


async def _snapshot_before(src: Any, cluster: str, bound_us: int, snapshots: Snapshots) -> Loaded | None:
    """The newest snapshot of ``cluster`` whose every event occurred at or before ``bound_us``
    (None: none, or none the source continues: it starts after the snapshot's offset)."""
    first, last = await src.covers()
    try:
        loaded = await snapshots.best(cluster, at_or_before=last, occurred_bound=iso_of_micros(bound_us))
    except Exception as exc:  # noqa: BLE001 - a missing or broken snapshot only costs time: the whole log is read
        log.warning("no snapshot to start the report from: reading the whole log", extra={"error": str(exc)})
        return None
    finally:
        snapshots.drop_held()  # (a delta's base: a second whole state beside the one loaded)
    return loaded if loaded is not None and loaded.offset >= first - 1 else None


def _refuse_outside(lo: int, hi: int, first_t: int, last_t: int) -> None:
    if lo > last_t or hi < first_t:
        from kmevents.errors import UsageError

        raise UsageError(f"the window {iso_of_micros(lo)} .. {iso_of_micros(hi)} holds none of the log's events: "
                         f"they happened {iso_of_micros(first_t)} .. {iso_of_micros(last_t)} (source time)",
                         hint="give --from/--to inside that span, or leave them out for the whole log")


async def _bounds(src: Any) -> tuple[int, int]:
    """Source times of the first and last events (a scan of the source)."""
    span = await _span(src, None)
    if span is None:
        from kmevents.errors import UsageError

        raise UsageError("the log holds no event of this cluster", hint="check --cluster")
    return span


async def _span(src: Any, start: int | None) -> tuple[int, int] | None:
    """Source times of the first and last events from offset ``start`` on (None: the source's
    first), or None when there is none: a scan of the records' ``occurred_at`` only."""
    from kmevents.contract import DecodeError, decode_fast

    lo = hi = None
    first, last = await src.covers()
    async for batch in src.batches(first if start is None else max(first, start), last):
        for rec in batch:
            try:
                occ = decode_fast(rec.value or b"").get("occurred_at")
            except DecodeError:
                continue
            if type(occ) is str:
                t = micros_of(occ)
                lo = t if lo is None else min(lo, t)
                hi = t if hi is None else max(hi, t)
    return None if lo is None or hi is None else (lo, hi)
