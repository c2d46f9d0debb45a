"""A Mesos cluster listing (operator ``GET_STATE`` or ``/master/state``) and the
diff events derived from it against what the adapter has seen so far.

Both Mesos dialects are first turned into one :class:`Snapshot`; then
:class:`Differ` compares it with its *known* state (what earlier snapshots and
stream events told it) and emits, in this order:

1. ``cluster.snapshot_observed`` (the checkpoint; every diff event names it as
   its ``causation_id``);
2. ``master.elected`` when the listing names a leading master other than the known one;
3. ``framework.registered`` (a framework not known, registered or only recovered) /
   ``framework.reregistered`` (info changed, or back after awaiting re-registration, then at
   its ``reregistered_time`` when listed);
4. ``agent.added``; ``agent.reregistered`` for a known agent back after awaiting
   re-registration (or listed as re-registered in a new master's first listing), at its
   ``reregistered_time`` (the master's clock) when listed; ``agent.deactivated`` / ``agent.reactivated`` (the ``active``
   flag moved, or the agent now awaits re-registration);
5. ``task.added`` for tasks not known (live or completed);
   ``task.status_updated`` for known tasks whose state moved (at the listed
   status' own time when the listing has it: the agent's clock, or the master's
   for a ``SOURCE_MASTER`` status);
6. outstanding offers (``/master/state`` only, when asked): ``offer.offered``
   for new ones; for known ones gone from the listing ``offer.accepted`` when
   the same listing shows new tasks of its framework on its agent,
   ``offer.rescinded`` when its agent is gone or deactivated, else
   ``offer.expired`` (declined, or rescinded by ``--offer_timeout``: the
   listing cannot say which);
7. vanished tasks — known, not terminal, and absent from the listing (live and
   completed): they are **not** dropped. A ``task.status_updated`` with state
   ``TASK_UNKNOWN``, source ``SOURCE_MASTER``, reason ``REASON_RECONCILIATION``
   says so (Mesos' own answer when a master knows nothing of a task). The
   fold keeps the task, marked inactive, and a later listing or update can
   bring it back (LOST/UNKNOWN -> RUNNING happens);
8. ``agent.removed`` for known agents absent from the listing (reason
   ``vanished``; ``reregister_timeout`` when it was awaiting re-registration);
9. ``framework.removed`` for known frameworks absent from the listing: reason
   ``teardown`` when the listing shows them completed, else ``vanished``.

Tasks are known by ``(framework_id, task_id)``: Mesos task ids are unique only
within a framework (two frameworks' ``web-1`` are two tasks).

**Awaiting re-registration is not removal.** After a master failover the new
master knows the agents from its registry but not yet their tasks, and the
frameworks only once they (or an agent running their tasks) come back. Mesos
says so in the listing: ``recovered_agents`` (operator API 1.2+),
``recovered_slaves`` (``/master/state`` 1.2+), frameworks with
``recovered: true`` (1.2+), ``recovered_frameworks`` (1.0-1.1),
``unregistered_frameworks`` and ``orphan_tasks`` (0.20-1.2). Older listings
say nothing: then an agent or framework absent from the first listing of a
new master is *presumed* awaiting re-registration while the master's
re-registration window is open (``Snapshot.since_election`` against its
``elected_time`` plus ``agent_reregister_timeout``, 10 minutes unless set,
or the framework's ``failover_timeout``) or, for the operator stream, until
the next listing of the same master. An agent awaiting re-registration is
deactivated (it offers nothing), never removed, and its tasks are left as they
were (no ``TASK_UNKNOWN``): the master learns them back when the agent
re-registers (operator ``AGENT_ADDED`` + ``TASK_ADDED``, or the next poll).

Worked example: the adapter knew tasks A (RUNNING) and B (RUNNING) on agent
S1, and C (RUNNING) on agent S2; it was disconnected while A finished and B's
agent was lost, and the master failed over. The new listing has A in
``completed_tasks`` as FINISHED, S2 in ``recovered_agents``, and neither B nor
S1. The diff is: snapshot_observed, A -> TASK_FINISHED (at the status' time),
S2 deactivated, B -> TASK_UNKNOWN (vanished), S1 removed (vanished). C is
untouched: S2 has not re-registered yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmevents.contract.enums import TERMINAL_TASK_STATES
from kmevents.sources import mesos_values as mv
from kmevents.sources._common import Event, Stream, at_seconds, digest, event_id_of
from kmevents.sources.mesos_values import TaskKey

Obj = dict[str, Any]
TERMINAL = frozenset(TERMINAL_TASK_STATES)
VANISHED_MESSAGE = ("task absent from the master's listing after the adapter resubscribed; "
                    "its fate while the adapter was disconnected is unknown")


@dataclass
class TaskView:
    """A task and its latest status as a listing shows them."""

    task: Obj
    """Contract ``TaskWithState``."""
    status: Obj | None = None
    """Contract ``TaskStatus`` of the latest status, when the listing has one."""


@dataclass
class Snapshot:
    """One listing of the cluster, in contract shapes, whatever the Mesos dialect."""

    frameworks: dict[str, Obj] = field(default_factory=dict)
    agents: dict[str, Obj] = field(default_factory=dict)
    agent_active: dict[str, bool] = field(default_factory=dict)
    agent_reregistered_at: dict[str, float] = field(default_factory=dict)
    """``reregistered_time`` by agent (the master's clock), when listed."""
    framework_reregistered_at: dict[str, float] = field(default_factory=dict)
    """``reregistered_time`` by framework (the master's clock), when listed."""
    tasks: dict[TaskKey, TaskView] = field(default_factory=dict)
    completed_frameworks: set[str] = field(default_factory=set)
    completed_tasks: dict[TaskKey, TaskView] = field(default_factory=dict)
    recovered_agents: dict[str, Obj] = field(default_factory=dict)
    """Agents the master recovered from its registry that have not re-registered yet."""
    recovered_frameworks: dict[str, Obj | None] = field(default_factory=dict)
    """Frameworks awaiting re-registration after a failover (their info when listed)."""
    recovery_listed: bool = False
    """The listing says which agents await re-registration (1.2+): absence is then removal."""
    since_election: float | None = None
    """Seconds since the master's election, when the listing gives it (``/master/state``)."""
    agent_reregister_timeout: float = 600.0
    """The master's ``agent_reregister_timeout`` (``slave_reregister_timeout``)."""
    offers: dict[str, Obj] | None = None
    """Outstanding offers by id (``/master/state``); None: the listing is not read for offers."""
    master: Obj | None = None

    @property
    def recovering(self) -> bool:
        """The listing itself shows a master recovering from a failover (it lists agents or
        frameworks that have not re-registered yet)."""
        return bool(self.recovered_agents or self.recovered_frameworks)

    def digest(self) -> str:
        """Digest of what the listing says (ids, states, activity), to recognise an identical one."""
        return digest({
            "frameworks": sorted(self.frameworks), "completed_frameworks": sorted(self.completed_frameworks),
            "agents": sorted((a, self.agent_active.get(a, True)) for a in self.agents),
            "tasks": sorted((list(k), v.task["state"]) for k, v in self.tasks.items()),
            "completed_tasks": sorted((list(k), v.task["state"]) for k, v in self.completed_tasks.items()),
        })


def _reconciled(task: Obj, state: str, now: float, message: str | None) -> Obj:
    return {"task_id": task["task_id"], "state": state, "source": "SOURCE_MASTER",
            "reason": "REASON_RECONCILIATION", "message": message, "uuid": None, "healthy": None,
            "timestamp": now, "agent_id": task.get("agent_id"), "executor_id": task.get("executor_id"),
            "labels": None, "data": None, "check_status": None}


Emit = Callable[..., None]


class Differ:
    """What the adapter has seen of one cluster, and the events a new listing implies."""

    def __init__(self) -> None:
        self.frameworks: dict[str, Obj] = {}
        self.agents: dict[str, Obj] = {}
        self.agent_active: dict[str, bool] = {}
        self.tasks: dict[TaskKey, Obj] = {}
        self.offers: dict[str, Obj] = {}
        self.master_id: str | None = None
        self.awaiting_agents: set[str] = set()
        """Known agents awaiting re-registration after a failover (deactivated, not removed)."""
        self.awaiting_frameworks: set[str] = set()
        """Known frameworks awaiting re-registration after a failover."""
        self.master_changed = False
        """A new leading master was seen since the last listing (cleared by ``observe``)."""

    # -- incremental updates from stream events ---------------------------------

    def note_master(self, master_id: str) -> str | None:
        """A leading master; returns the previous one when it changed (else the same id)."""
        prev = self.master_id
        if master_id != prev:
            self.master_changed = self.master_changed or prev is not None
            self.master_id = master_id
        return prev

    def note_task(self, task: Obj) -> None:
        self.tasks[mv.task_key(task)] = dict(task)

    def note_state(self, framework_id: str | None, task_id: str, state: str,
                   agent_id: str | None = None) -> None:
        key = self._key(framework_id, task_id)
        t = self.tasks.setdefault(key, {"task_id": task_id, "framework_id": key[0] or None,
                                        "agent_id": agent_id, "executor_id": None, "state": state})
        t["state"] = state

    def _key(self, framework_id: str | None, task_id: str) -> TaskKey:
        """The known task ``task_id`` of ``framework_id``; without a framework, the one known task
        of that id (if exactly one), else a key of its own."""
        if framework_id:
            return (framework_id, task_id)
        same = [k for k in self.tasks if k[1] == task_id]
        return same[0] if len(same) == 1 else ("", task_id)

    def framework_of(self, task_id: str) -> str | None:
        """The framework of the one known task ``task_id``; None when unknown or ambiguous."""
        return self._key(None, task_id)[0] or None

    def note_agent(self, agent: Obj, active: bool = True) -> None:
        self.agents[agent["id"]] = agent
        self.agent_active[agent["id"]] = active
        self.awaiting_agents.discard(agent["id"])

    def drop_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)
        self.agent_active.pop(agent_id, None)
        self.awaiting_agents.discard(agent_id)

    def note_framework(self, fw: Obj) -> None:
        self.frameworks[fw["id"]] = fw
        self.awaiting_frameworks.discard(fw["id"])

    def drop_framework(self, framework_id: str) -> None:
        self.frameworks.pop(framework_id, None)
        self.awaiting_frameworks.discard(framework_id)

    # -- a whole listing ------------------------------------------------------------

    def observe(self, snap: Snapshot, stream: Stream, raw_type: str) -> list[Event]:
        """The events ``snap`` implies; updates the known state to match it."""
        at = stream.adapter_time()
        now = stream.now()
        summary = {"agents": len(snap.agents), "frameworks": len(snap.frameworks),
                   "tasks": len(snap.tasks), "digest": snap.digest()}
        out = [stream.event("cluster.snapshot_observed", summary, occurred_at=at, clock="adapter",
                            raw_type=raw_type)]
        cause = event_id_of(stream.cluster, f"cluster.snapshot_observed|{at}")

        def ev(type_: str, payload: Obj, corr: str | None = None, when: tuple[str, str] | None = None) -> None:
            occurred, clock = when or (at, "adapter")
            out.append(stream.event(type_, payload, occurred_at=occurred, clock=clock, raw_type=raw_type,
                                    causation_id=cause, correlation_id=corr))

        if snap.master is not None and snap.master["id"] != self.master_id:
            prev = self.note_master(snap.master["id"])
            ev("master.elected", {"master": snap.master, "previous_master_id": prev})
        self._frameworks(snap, ev)
        removals = self._agents(snap, ev)
        new_tasks: list[Obj] = []
        for views in (snap.tasks, snap.completed_tasks):
            for view in views.values():
                self._task(view, ev, now, new_tasks)
        if snap.offers is not None:
            self._offers(snap, ev, new_tasks)
        self._vanished_tasks(snap, ev, now)
        for aid, reason in removals:
            ev("agent.removed", {"agent_id": aid, "reason": reason})
        self._removed_frameworks(snap, ev)
        self.master_changed = False
        return out

    def _may_await(self, snap: Snapshot, eid: str, awaiting: set[str], grace: float) -> bool:
        """Whether a known agent or framework absent from ``snap`` (and not listed as recovered)
        may still be awaiting re-registration, when the listing does not say (module docstring):
        only after a failover (a new master seen, or a listing that shows recovery) or while it
        already awaited, and while the master's re-registration window (``grace`` seconds from
        its election) is open; without an election time, only while the failover is fresh."""
        fresh = self.master_changed or snap.recovering
        if not (fresh or eid in awaiting):
            return False
        window = snap.since_election
        if window is None:
            return fresh
        return window < grace

    def _frameworks(self, snap: Snapshot, ev: Emit) -> None:
        for fid, fw in snap.frameworks.items():
            old = self.frameworks.get(fid)
            if old is None:
                ev("framework.registered", {"framework": fw})
            elif fid in self.awaiting_frameworks:
                t = snap.framework_reregistered_at.get(fid)
                ev("framework.reregistered", {"framework": fw}, when=(at_seconds(t), "master") if t else None)
            elif old != fw:
                ev("framework.reregistered", {"framework": fw})
            self.note_framework(fw)
        for fid, info in snap.recovered_frameworks.items():
            if fid in snap.frameworks:
                continue
            if fid not in self.frameworks and info is not None:
                ev("framework.registered", {"framework": info})
                self.frameworks[fid] = info
            if fid in self.frameworks:
                self.awaiting_frameworks.add(fid)

    def _agents(self, snap: Snapshot, ev: Emit) -> list[tuple[str, str]]:
        """Agents added, back, (de)activated or now awaiting re-registration; returns the
        removals (emitted after the vanished tasks)."""
        for aid, agent in snap.agents.items():
            active = snap.agent_active.get(aid, True)
            if aid not in self.agents:
                ev("agent.added", {"agent": agent})
                if not active:
                    ev("agent.deactivated", {"agent_id": aid})
            elif aid in self.awaiting_agents or (self.master_changed and aid in snap.agent_reregistered_at):
                # back after a failover (a new master's first listing names it re-registered)
                t = snap.agent_reregistered_at.get(aid)
                ev("agent.reregistered", {"agent": agent},
                   when=(at_seconds(t), "master") if t else None)
                if not active:
                    ev("agent.deactivated", {"agent_id": aid})
            elif self.agent_active.get(aid, True) != active:
                ev("agent.reactivated" if active else "agent.deactivated", {"agent_id": aid})
            self.note_agent(agent, active)
        awaiting = {a: info for a, info in snap.recovered_agents.items() if a not in snap.agents}
        removals: list[tuple[str, str]] = []
        for aid in [a for a in self.agents if a not in snap.agents and a not in awaiting]:
            if not snap.recovery_listed and self._may_await(snap, aid, self.awaiting_agents,
                                                            snap.agent_reregister_timeout):
                awaiting[aid] = self.agents[aid]
            else:
                removals.append((aid, "reregister_timeout" if aid in self.awaiting_agents else "vanished"))
                self.drop_agent(aid)
        for aid, info in awaiting.items():
            if aid not in self.agents:
                ev("agent.added", {"agent": info})
                self.note_agent(info, True)
            if self.agent_active.get(aid, True):
                ev("agent.deactivated", {"agent_id": aid})
                self.agent_active[aid] = False
            self.awaiting_agents.add(aid)
        return removals

    def _task(self, view: TaskView, ev: Emit, now: float, new: list[Obj]) -> None:
        task = view.task
        key = mv.task_key(task)
        known = self.tasks.get(key)
        if known is None:
            ev("task.added", {"task": task})
            self.note_task(task)
            new.append(task)
            return
        if known["state"] == task["state"] or known["state"] in TERMINAL:
            return
        status = view.status
        when = None
        if status is None or status.get("state") != task["state"]:
            status = _reconciled(task, task["state"], now, None)
        elif status.get("timestamp") is not None:
            when = (at_seconds(status["timestamp"]), mv.status_clock(status))
        ev("task.status_updated", mv.status_payload(status, task.get("framework_id")), when=when)
        known["state"] = task["state"]

    def _offers(self, snap: Snapshot, ev: Emit, new_tasks: list[Obj]) -> None:
        listed = snap.offers or {}
        launched: dict[tuple[str, str], list[str]] = {}
        for t in new_tasks:
            launched.setdefault((t.get("framework_id") or "", t.get("agent_id") or ""), []).append(t["task_id"])
        for oid in [o for o in self.offers if o not in listed]:
            offer = self.offers.pop(oid)
            aid = offer["agent_id"]
            task_ids = launched.get((offer["framework_id"], aid))
            if task_ids:
                ev("offer.accepted", {"offer_id": oid, "task_ids": sorted(task_ids)}, oid)
            elif aid not in snap.agents or not snap.agent_active.get(aid, True):
                ev("offer.rescinded", {"offer_id": oid}, oid)
            else:
                ev("offer.expired", {"offer_id": oid}, oid)
        for oid, offer in listed.items():
            if oid not in self.offers:
                ev("offer.offered", {"offer": offer}, oid)
                self.offers[oid] = offer

    def _vanished_tasks(self, snap: Snapshot, ev: Emit, now: float) -> None:
        for key, known in list(self.tasks.items()):
            if key in snap.tasks or key in snap.completed_tasks:
                continue
            if known["state"] in TERMINAL:
                del self.tasks[key]  # completed and garbage-collected by the master: nothing new
                continue
            if known.get("agent_id") in self.awaiting_agents:
                continue  # the master learns its tasks when the agent re-registers
            if known["state"] != "TASK_UNKNOWN":
                status = _reconciled(known, "TASK_UNKNOWN", now, VANISHED_MESSAGE)
                ev("task.status_updated", mv.status_payload(status, known.get("framework_id")))
                known["state"] = "TASK_UNKNOWN"

    def _removed_frameworks(self, snap: Snapshot, ev: Emit) -> None:
        for fid in [f for f in self.frameworks if f not in snap.frameworks and f not in snap.recovered_frameworks]:
            completed = fid in snap.completed_frameworks
            grace = max(snap.agent_reregister_timeout, float(self.frameworks[fid].get("failover_timeout") or 0))
            if not completed and self._may_await(snap, fid, self.awaiting_frameworks, grace):
                self.awaiting_frameworks.add(fid)
                continue
            ev("framework.removed", {"framework_id": fid, "reason": "teardown" if completed else "vanished"})
            self.drop_framework(fid)
