"""Alert rules over the event stream and the derived state. Pure: no I/O, no clock.

One :class:`RuleEngine` per cluster. The consumer calls ``observe(event,
recorded_ms=...)`` for every event in log order and ``evaluate(state,
now_ms=..., ...)`` now and then; ``evaluate`` returns the *transitions*:
alerts that start firing and alerts that resolve.

Time. Windows run on SOURCE time: an event counts in the window of its
``occurred_at``, never of when it reached the log. The engine's "now" in source
time is its watermark, the newest ``occurred_at`` seen; an event older than
``watermark - window`` is too late to count. Wall time (``now_ms``) is only
used for what is about the pipeline itself (a source gone silent, dead
letters) and for the age of the events behind an alert.

Catching up. While the consumer works through a backlog (``catching_up=True``:
far behind the high watermark, or reading records logged long ago), rules are
evaluated but nothing fires: a worked example is a consumer down for an hour
during which a storm of evictions happened 40 minutes ago. Replaying the
backlog fills the eviction window at the storm's source time; by the time
the consumer has caught up the watermark is an hour later, the storm's events
have left the window and nothing fires, whereas counting by arrival time
would have fired a storm for an hour of events read in seconds. Conditions
still true once caught up (an RC still below its replicas) fire then.

Rules (thresholds in ``MonitorSettings``):

    master_failover            a new leading master (with a previous one), for one window
    scheduler_leader_change    the k8sm scheduler leadership moved, for one window
    task_lost_spike            TASK_LOST/TASK_UNREACHABLE per agent per window >= task_lost_per_agent
    eviction_storm             pod evictions per window >= evictions_per_window
    offer_starvation           pods Pending longer than pending_pod_seconds while no offer is
                               outstanding or declines per window >= offer_declines_per_window
    agent_flapping             agent removed/re-registered/(de)activated per window >= agent_flaps_per_window
    rc_below_desired           observed < desired replicas for >= rc_below_seconds (says for how long)
    service_without_endpoints  a service selecting ready pods has no observed endpoints
    service_endpoints_mismatch observed endpoints differ from the ready pods for >= service_mismatch_seconds
    volume_multi_attach        a read-write rbd / GCE PD / EBS / iSCSI volume used on two nodes at once
    kube_system_down           no running pod of a kube-system component (kube-dns, kube-ui)
    processor_lag              a partition's processor lag > processor_lag
    dead_letters               the dead-letter topic grew within the last window (wall time)
    source_silent              a source stream logged nothing for silent_seconds (wall time)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from kmevents.jsonobj import obj
from kmevents.reducer.conditions import condition
from kmevents.reducer.packed import PackedTable, decoded, value_of
from kmevents.timespec import iso_of_micros, micros_of

SEVERITY = {
    "master_failover": "warning", "scheduler_leader_change": "info", "task_lost_spike": "critical",
    "eviction_storm": "critical", "offer_starvation": "warning", "agent_flapping": "warning",
    "rc_below_desired": "warning", "service_without_endpoints": "critical", "service_endpoints_mismatch": "warning",
    "volume_multi_attach": "critical", "kube_system_down": "critical", "processor_lag": "warning",
    "dead_letters": "warning", "source_silent": "warning",
}
RULES = tuple(SEVERITY)
LOST_STATES = frozenset({"TASK_LOST", "TASK_UNREACHABLE"})
FLAP_TYPES = frozenset({"agent.removed", "agent.reregistered", "agent.deactivated", "agent.reactivated"})
EXCLUSIVE_VOLUMES = {"rbd": ("pool", "image"), "gcePersistentDisk": ("pdName",), "awsElasticBlockStore": ("volumeID",),
                     "iscsi": ("targetPortal", "iqn", "lun")}


class Thresholds(Protocol):
    window_seconds: float
    task_lost_per_agent: int
    evictions_per_window: int
    agent_flaps_per_window: int
    offer_declines_per_window: int
    pending_pod_seconds: float
    rc_below_seconds: float
    service_mismatch_seconds: float
    kube_system_components: list[str]
    processor_lag: int
    silent_seconds: float
    backlog_seconds: float
    backlog_records: int
    runbook_base: str


def _may_matter(pid: str, p: dict[str, Any]) -> bool:
    """Whether a state rule may read pod ``p`` (``RuleEngine._pods``): a kube-system pod, a
    pending one not bound (``offer_starvation`` then checks its age), or a live one with an
    exclusive volume (``volume_multi_attach``)."""
    if pid.startswith("kube-system/") or _unbound_pending(p):
        return True
    return _live(p) and any(str(v.get("kind")) in EXCLUSIVE_VOLUMES for v in p.get("volumes") or [])


def _unbound_pending(p: dict[str, Any]) -> bool:
    """A pending pod no host was bound for, with its creation time (``offer_starvation``'s)."""
    return bool(p.get("phase") == "Pending" and not p.get("binding_host") and p.get("created_at"))


def _endpoints_verdict(sid: str, svc: dict[str, Any]) -> tuple[str, str] | None:
    """``(rule, summary)`` when service ``svc``'s observed endpoints are not its ready pods
    (``service_without_endpoints``, ``service_endpoints_mismatch``), else None: what the rules
    derive from one service's value alone."""
    if not svc.get("selector"):
        return None
    obs_doc = svc.get("endpoints_observed")
    if obs_doc is None:
        return None  # the endpoints controller has not reported on it yet
    derived = set(svc.get("endpoints_derived") or [])
    observed = {f"{(a.get('pod') or {}).get('namespace')}/{(a.get('pod') or {}).get('name')}"
                for a in (obs_doc.get("addresses") or []) if a.get("pod")}
    if derived and not observed:
        return "service_without_endpoints", f"service {sid} has no endpoints while {len(derived)} pods are ready"
    if observed != derived:
        return "service_endpoints_mismatch", (f"service {sid}: endpoints differ from ready pods (missing "
                                              f"{len(derived - observed)}, extra {len(observed - derived)})")
    return None


def _if_it_may_matter(pid: str, p: dict[str, Any]) -> dict[str, Any] | None:
    return p if _may_matter(pid, p) else None


class _Remembered:
    """What was derived from each value of a packed table, remembered by the stored bytes it came
    from: a value at rest whose stored bytes are the very object of the last pass is not decoded
    again (the table replaces that object when the value changes; holding it keeps its identity
    from being reused). A hot value (a dict the fold may change in place) is derived every pass."""

    __slots__ = ("kept",)

    def __init__(self) -> None:
        self.kept: dict[str, tuple[bytes, Any]] = {}

    def derived(self, table: PackedTable, derive: Callable[[str, Any], Any]) -> Iterator[tuple[str, Any]]:
        """``(id, derive(id, value))`` of every entity of ``table``; read to its end, it remembers
        what it derived from those at rest (and forgets entities gone)."""
        memo, kept = self.kept, {}
        for i, stored in dict.items(table):
            if type(stored) is not bytes:
                yield i, derive(i, stored)
                continue
            hit = memo.get(i)
            if hit is None or hit[0] is not stored:
                hit = (stored, derive(i, decoded(table, stored)))
            kept[i] = hit
            yield i, hit[1]
        self.kept = kept


def _live(p: dict[str, Any]) -> bool:
    """Not deleted and not ended: a pod whose volumes count as attached (``volume_multi_attach``)."""
    return not (p.get("deleted") or p.get("phase") in ("Succeeded", "Failed"))


class StateView(Protocol):
    """What the state rules read: ``ClusterState`` satisfies it."""

    def entities(self, kind: str) -> Any: ...

    def entity(self, kind: str, id: str) -> Any: ...

    def condition_counts(self, kind: str) -> Any: ...


@dataclass
class Alert:
    """One alert: ``rule`` about ``key`` in ``cluster``; ``fingerprint`` identifies it across evaluations."""

    rule: str
    cluster: str
    key: str
    summary: str
    status: str = "firing"  # firing | resolved
    labels: dict[str, str] = field(default_factory=dict)
    started_at: str | None = None  # source time the condition began
    evidence_from: str | None = None  # occurred_at of the oldest event behind it
    evidence_to: str | None = None  # occurred_at of the newest event behind it
    value: float | None = None
    ended_at: str | None = None

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]

    @property
    def fingerprint(self) -> str:
        return f"{self.cluster}|{self.rule}|{self.key}"

    @property
    def grouping_key(self) -> str:
        return f"{self.cluster}/{self.rule}"

    def age_seconds(self, now_ms: int) -> float | None:
        """How old the newest event behind the alert is at wall time ``now_ms``."""
        if self.evidence_to is None:
            return None
        return round((now_ms * 1000 - micros_of(self.evidence_to)) / 1e6, 3)

    def as_dict(self, now_ms: int, runbook_base: str = "") -> dict[str, Any]:
        oldest = None
        if self.evidence_from is not None:
            oldest = round((now_ms * 1000 - micros_of(self.evidence_from)) / 1e6, 3)
        return {
            "rule": self.rule, "status": self.status, "severity": self.severity, "cluster": self.cluster,
            "key": self.key, "summary": self.summary, "labels": dict(self.labels), "value": self.value,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "evidence": {"from": self.evidence_from, "to": self.evidence_to},
            "events_age_seconds": self.age_seconds(now_ms), "oldest_event_age_seconds": oldest,
            "fingerprint": self.fingerprint, "grouping_key": self.grouping_key,
            "runbook": f"{runbook_base}{self.rule}",
        }


def is_catching_up(*, behind_records: int, last_recorded_ms: int | None, now_ms: int, t: Thresholds) -> bool:
    """A consumer far behind the high watermark, or reading records logged long ago, is catching up."""
    if behind_records > t.backlog_records:
        return True
    return last_recorded_ms is not None and (now_ms - last_recorded_ms) > t.backlog_seconds * 1000


class _Window:
    """Event times (µs, source time) per key; counts over ``[watermark - size, watermark]``."""

    def __init__(self, size_us: int) -> None:
        self.size = size_us
        self.by_key: dict[str, deque[int]] = {}

    def add(self, key: str, t: int) -> None:
        self.by_key.setdefault(key, deque()).append(t)

    def expire(self, watermark: int) -> None:
        lo = watermark - self.size
        for k in list(self.by_key):
            q = self.by_key[k]
            if min(q, default=lo) < lo:  # late events may be out of order: filter, keep order
                kept = deque(x for x in q if x >= lo)
                if kept:
                    self.by_key[k] = kept
                else:
                    del self.by_key[k]

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """key -> (count, oldest µs, newest µs)."""
        return {k: (len(q), min(q), max(q)) for k, q in self.by_key.items() if q}


class RuleEngine:
    """The rules of one cluster. ``observe`` every event in log order, ``evaluate`` now and then."""

    def __init__(self, cluster: str, thresholds: Thresholds) -> None:
        self.cluster = cluster
        self.t = thresholds
        w = int(thresholds.window_seconds * 1_000_000)
        self.window_us = w
        self.watermark = 0  # µs, newest occurred_at seen
        #: per pod, the value if a state rule may read it, else None: see ``_pods``
        self._pod_memo = _Remembered()
        #: with :meth:`track_pods`: pods changed since the last evaluation (None: not tracked), and
        #: the pods that may matter (``_may_matter``) by id, of the table ``_matter_of``
        self._changed: set[str] | None = None
        self._matter: dict[str, Any] | None = None
        self._matter_of: Any = None
        #: per service, what the endpoint rules found: see ``_services``
        self._svc_memo = _Remembered()
        self.lost = _Window(w)
        self.evictions = _Window(w)
        self.flaps = _Window(w)
        self.declines = _Window(w)
        self.one_shots: dict[str, tuple[int, str, dict[str, str]]] = {}  # rule|key -> (t, summary, labels)
        self.last_recorded: dict[str, int] = {}  # source stream -> last log-append ms
        self.firing: dict[str, Alert] = {}
        self.since: dict[str, int] = {}  # fingerprint -> µs the condition was first seen (source time)
        self.dead_letter_history: deque[tuple[int, int]] = deque()  # (wall ms, count)
        self.observed = 0
        self.held_back = 0

    # -- events ----------------------------------------------------------------
    def observe(self, ev: dict[str, Any], *, recorded_ms: int | None = None) -> None:
        occ = ev.get("occurred_at")
        if type(occ) is not str:
            return
        try:
            t = micros_of(occ)
        except ValueError:
            return
        self.observed += 1
        src = ev.get("source")
        if recorded_ms is not None and isinstance(src, dict) and src.get("stream_id"):
            sid = str(src["stream_id"])
            self.last_recorded[sid] = max(self.last_recorded.get(sid, 0), recorded_ms)
        if t > self.watermark:
            self.watermark = t
        if t < self.watermark - self.window_us:
            return  # too late for any window
        typ = ev.get("type")
        pl = obj(ev, "payload")
        if typ == "task.status_updated":
            st = pl.get("status") or {}
            if st.get("state") in LOST_STATES:
                self.lost.add(str(st.get("agent_id") or (ev.get("actor") or {}).get("name") or "?"), t)
        elif typ == "pod.evicted":
            self.evictions.add("cluster", t)
        elif typ in FLAP_TYPES:
            aid = pl.get("agent_id") or (pl.get("agent") or {}).get("id")
            if aid:
                self.flaps.add(str(aid), t)
        elif typ == "offer.declined":
            self.declines.add("cluster", t)
        elif typ == "master.elected" and pl.get("previous_master_id"):
            m = pl.get("master") or {}
            self.one_shots["master_failover|master"] = (
                t, f"master failover: {pl.get('previous_master_id')} -> {m.get('hostname') or m.get('id')}",
                {"master": str(m.get("hostname") or m.get("id"))})
        elif typ == "scheduler.leader_elected" and pl.get("previous"):
            self.one_shots["scheduler_leader_change|k8sm"] = (
                t, f"k8sm scheduler leader changed: {pl.get('previous')} -> {pl.get('identity')}",
                {"leader": str(pl.get("identity"))})

    # -- evaluation --------------------------------------------------------------
    def conditions(self, state: StateView | None, *, now_ms: int, lag: dict[int, int] | None = None,
                   dead_letters: int | None = None) -> list[Alert]:
        """Every alert whose condition holds now (no transitions, no hold-back)."""
        wm = self.watermark
        for w in (self.lost, self.evictions, self.flaps, self.declines):
            w.expire(wm)
        out: list[Alert] = []
        c = self.cluster
        for agent, (n, lo, hi) in self.lost.counts().items():
            if n >= self.t.task_lost_per_agent:
                out.append(self._a("task_lost_spike", agent, f"{n} tasks LOST/UNREACHABLE on agent {agent} "
                                   f"within {self.t.window_seconds:g}s", {"agent": agent}, lo, hi, n))
        n, lo, hi = self.evictions.counts().get("cluster", (0, 0, 0))
        if n >= self.t.evictions_per_window:
            out.append(self._a("eviction_storm", "cluster", f"{n} pods evicted within {self.t.window_seconds:g}s",
                               {}, lo, hi, n))
        for agent, (n, lo, hi) in self.flaps.counts().items():
            if n >= self.t.agent_flaps_per_window:
                out.append(self._a("agent_flapping", agent, f"agent {agent} changed condition {n} times within "
                                   f"{self.t.window_seconds:g}s", {"agent": agent}, lo, hi, n))
        for k, (t, summary, labels) in self.one_shots.items():
            if wm - t <= self.window_us:
                rule, key = k.split("|", 1)
                out.append(self._a(rule, key, summary, labels, t, t, 1))
        if state is not None:
            out += self._state_rules(state)
        if lag:
            for p, v in sorted(lag.items()):
                if v > self.t.processor_lag:
                    out.append(Alert("processor_lag", c, f"partition {p}", f"processor lag {v} records on "
                                     f"partition {p} (threshold {self.t.processor_lag})", labels={"partition": str(p)},
                                     value=float(v)))
        if dead_letters is not None:
            self.dead_letter_history.append((now_ms, dead_letters))
            while self.dead_letter_history and self.dead_letter_history[0][0] < now_ms - self.t.window_seconds * 1000:
                if len(self.dead_letter_history) == 1:
                    break
                self.dead_letter_history.popleft()
            grew = dead_letters - self.dead_letter_history[0][1]
            if grew > 0:
                out.append(Alert("dead_letters", c, "deadletter", f"{grew} records went to the dead-letter topic "
                                 f"within {self.t.window_seconds:g}s", value=float(grew)))
        for sid, ms in sorted(self.last_recorded.items()):
            silent = (now_ms - ms) / 1000
            if silent >= self.t.silent_seconds:
                out.append(Alert("source_silent", c, sid, f"source {sid} logged nothing for {silent:.0f}s",
                                 labels={"stream": sid}, value=round(silent, 3)))
        return out

    def _a(self, rule: str, key: str, summary: str, labels: dict[str, str], lo: int, hi: int,
           value: float) -> Alert:
        return Alert(rule, self.cluster, key, summary, labels=labels, evidence_from=iso_of_micros(lo) if lo else None,
                     evidence_to=iso_of_micros(hi) if hi else None, value=float(value))

    def _held(self, rule: str, key: str, since_iso: str | None, seconds: float) -> float | None:
        """Seconds a condition has held in source time (from ``since_iso``, else first seen), or None if too short."""
        fp = f"{self.cluster}|{rule}|{key}"
        start = self.since.setdefault(fp, micros_of(since_iso) if since_iso else self.watermark)
        held = (self.watermark - start) / 1e6
        return held if held >= seconds else None

    def _state_rules(self, st: StateView) -> list[Alert]:
        out: list[Alert] = []
        wm_iso = iso_of_micros(self.watermark) if self.watermark else None
        seen: set[str] = set()

        def add(rule: str, key: str, summary: str, labels: dict[str, str], since: str | None,
                value: float | None = None) -> None:
            out.append(Alert(rule, self.cluster, key, summary, labels=labels, started_at=since,
                             evidence_from=since, evidence_to=wm_iso, value=value))

        comps = [(comp, f"kube-system/{comp}-", f"kube-system/{comp}") for comp in self.t.kube_system_components]
        comp_rcs: set[str] = set()
        for rid, rc in st.entities("rc"):
            if rid.startswith("kube-system/"):
                comp_rcs.update(comp for comp, _, rc_prefix in comps if rid.startswith(rc_prefix))
            want, have = int(rc.get("replicas") or 0), int(rc.get("observed_replicas") or 0)
            if have < want:
                fp = f"{self.cluster}|rc_below_desired|{rid}"
                seen.add(fp)
                held = self._held("rc_below_desired", rid, None, self.t.rc_below_seconds)
                if held is not None:
                    add("rc_below_desired", rid, f"RC {rid} has {have} of {want} replicas for {held:.0f}s",
                        {"rc": rid}, iso_of_micros(self.since[fp]), held)
        for sid, verdict in self._services(st):
            if verdict is None:
                continue
            rule, summary = verdict
            fp = f"{self.cluster}|{rule}|{sid}"
            seen.add(fp)
            held = self._held(rule, sid, None, self.t.service_mismatch_seconds)
            if held is not None:
                add(rule, sid, summary + f" for {held:.0f}s", {"service": sid}, iso_of_micros(self.since[fp]), held)
        # One pass over the pods for the three rules that read them: each read of a packed pod
        # decodes it, and at the large profile (~160k pods) a pass per rule and component made
        # an evaluation cost seconds (BENCHMARKS.md, "The report at the large profile").
        attached: dict[str, dict[str, list[str]]] = {}
        comp_pods: dict[str, list[Any]] = {comp: [] for comp, _, _ in comps}
        pending = []
        for pid, p in self._pods(st):
            if pid.startswith("kube-system/"):
                for comp, pod_prefix, _ in comps:
                    if pid.startswith(pod_prefix):
                        comp_pods[comp].append(p)
            if (_unbound_pending(p)
                    and (self.watermark - micros_of(str(p["created_at"]))) / 1e6 >= self.t.pending_pod_seconds):
                pending.append(p)
            if not _live(p):
                continue
            for v in p.get("volumes") or []:
                fields = EXCLUSIVE_VOLUMES.get(str(v.get("kind")))
                src = v.get("source") or {}
                if fields is None or src.get("readOnly"):
                    continue
                node = v.get("node") or p.get("node_name") or p.get("binding_host")
                if not node:
                    continue
                vid = f"{v.get('kind')}:" + "/".join(str(src.get(f)) for f in fields)
                attached.setdefault(vid, {}).setdefault(str(node), []).append(pid)
        for vid, nodes in sorted(attached.items()):
            if len(nodes) > 1:
                add("volume_multi_attach", vid, f"volume {vid} attached on {len(nodes)} nodes: "
                    + ", ".join(f"{n} ({', '.join(sorted(ps))})" for n, ps in sorted(nodes.items())),
                    {"volume": vid}, None, float(len(nodes)))
        for comp, _, _ in comps:
            pods = comp_pods[comp]
            if not pods and comp not in comp_rcs:
                continue
            if not any(condition(p) == "Running" for p in pods):  # a deleted pod's last phase does not count
                since = max((str(p.get("since")) for p in pods if p.get("since")), default=None)
                add("kube_system_down", comp, f"kube-system component {comp} has no running pod", {"component": comp},
                    since)
        if pending:
            # counted from the offers' conditions (an offer's is its status): a packed table knows them
            # without decoding its values; each evaluation decoded every offer
            outstanding = st.condition_counts("offer").get("outstanding", 0)
            declines = self.declines.counts().get("cluster", (0, 0, 0))[0]
            if outstanding == 0 or declines >= self.t.offer_declines_per_window:
                why = "no offer outstanding" if outstanding == 0 else f"{declines} offers declined in the window"
                oldest = min(str(p["created_at"]) for p in pending)
                add("offer_starvation", "cluster", f"{len(pending)} pods pending for over "
                    f"{self.t.pending_pod_seconds:g}s while {why}", {}, oldest, float(len(pending)))
        for fp in [f for f in self.since if f not in seen]:
            del self.since[fp]  # the condition ended: a new occurrence starts its own clock
        return out

    def _services(self, st: StateView) -> Any:
        """``(id, _endpoints_verdict)`` of every service. From a packed table, a service at rest
        whose stored bytes are the very object of the last evaluation is not decoded again (its
        verdict is remembered): at the large profile the services' endpoint lists were a fifth
        of a report's evaluations (BENCHMARKS.md, "The report from the snapshot before its window")."""
        table = getattr(st, "services", None)
        if type(table) is not PackedTable:
            for sid, svc in st.entities("service"):
                yield sid, _endpoints_verdict(sid, svc)
            return
        yield from self._svc_memo.derived(table, _endpoints_verdict)

    def track_pods(self) -> None:
        """The caller will tell :meth:`pod_changed` of every pod the state's fold changes from
        now on (a report's collector and the monitor's consumer see every change): an evaluation
        then reads only the pods changed since the last one, not every pod of the state (~160k at
        the large profile)."""
        self._changed = set()

    def pod_changed(self, pid: str) -> None:
        if self._changed is not None and self._matter is not None:  # (before the first evaluation's
            self._changed.add(pid)  # read of every pod, nothing needs to be read again)

    def _pods(self, st: StateView) -> Any:
        """``(id, value)`` of every pod the state rules may fire on: the same as
        ``st.entities("pod")`` for them. From a packed table, a pod at rest whose stored bytes
        are the very object of the last evaluation is not decoded again: what it was found to
        be is remembered (``_pod_memo``), and only pods that may matter are given (kube-system
        ones, pending ones not bound, live ones with an exclusive volume: ``_may_matter``).
        A report evaluates ~120 times over a replay; each decoded every pod (~160k at the
        large profile)."""
        table = getattr(st, "pods", None)
        if type(table) is not PackedTable:
            yield from st.entities("pod")
            return
        if self._changed is not None:
            yield from self._tracked_pods(table)
            return
        for pid, p in self._pod_memo.derived(table, _if_it_may_matter):
            if p is not None:
                yield pid, p

    def _tracked_pods(self, table: PackedTable) -> Any:
        """``_pods`` with :meth:`track_pods`: the pods that may matter are kept by id, and only
        those changed since the last evaluation are read again (the first evaluation, or one of
        another table, reads them all). A value kept may be a hot dict the fold changes in
        place: every such change is a change told to :meth:`pod_changed`, read at the next one."""
        changed, matter = self._changed, self._matter
        assert changed is not None
        if matter is None or self._matter_of is not table:
            matter = {}
            for pid, stored in dict.items(table):
                p = decoded(table, stored)
                if _may_matter(pid, p):
                    matter[pid] = p
            self._matter, self._matter_of = matter, table
        else:
            for pid in changed:
                p = value_of(table, pid)
                if p is not None and _may_matter(pid, p):
                    matter[pid] = p
                else:
                    matter.pop(pid, None)
        changed.clear()
        yield from matter.items()

    def evaluate(self, state: StateView | None, *, now_ms: int, catching_up: bool = False,
                 lag: dict[int, int] | None = None, dead_letters: int | None = None) -> list[Alert]:
        """Transitions since the last evaluation: new alerts (firing) and ended ones (resolved).

        While ``catching_up`` nothing new fires (and nothing resolves): see the module docstring.
        """
        current = {a.fingerprint: a for a in self.conditions(state, now_ms=now_ms, lag=lag,
                                                              dead_letters=dead_letters)}
        if catching_up:
            self.held_back += sum(1 for fp in current if fp not in self.firing)
            return []
        out: list[Alert] = []
        for fp, a in current.items():
            if fp not in self.firing:
                if a.started_at is None:
                    a.started_at = a.evidence_from or (iso_of_micros(self.watermark) if self.watermark else None)
                self.firing[fp] = a
                out.append(a)
            else:
                prev = self.firing[fp]  # keep its start, refresh what it says now
                a.started_at = prev.started_at
                self.firing[fp] = a
        for fp in [f for f in self.firing if f not in current]:
            a = self.firing.pop(fp)
            a.status = "resolved"
            a.ended_at = iso_of_micros(self.watermark) if self.watermark else None
            out.append(a)
        return out
