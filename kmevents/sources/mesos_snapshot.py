"""A Mesos cluster listing (operator ``GET_STATE`` or ``/master/state``) and the
diff events derived from it against what the adapter has seen so far.

Both Mesos dialects are first turned into one :class:`Snapshot`; then
:class:`Differ` compares it with its *known* state (what earlier snapshots and
stream events told it) and emits, in this order:

1. ``cluster.snapshot_observed`` (the checkpoint; every diff event names it as
   its ``causation_id``);
2. ``master.elected`` when the listing names a leading master other than the known one;
3. ``framework.registered`` / ``framework.reregistered`` (info changed);
4. ``agent.added``, ``agent.deactivated`` / ``agent.reactivated`` (the ``active`` flag moved);
5. ``task.added`` for tasks not known (live or completed);
   ``task.status_updated`` for known tasks whose state moved;
6. vanished tasks — known, not terminal, and absent from the listing (live and
   completed): they are **not** dropped. A ``task.status_updated`` with state
   ``TASK_UNKNOWN``, source ``SOURCE_MASTER``, reason ``REASON_RECONCILIATION``
   says so (Mesos' own answer when a master knows nothing of a task). The
   fold keeps the task, marked inactive, and a later listing or update can
   bring it back (LOST/UNKNOWN -> RUNNING happens);
7. ``agent.removed`` (reason ``vanished``) for known agents absent from the listing;
8. ``framework.removed`` for known frameworks absent from the listing (and not
   listed as unregistered, i.e. awaiting re-registration after a failover): reason
   ``teardown`` when the listing shows them completed, else ``vanished``.

Worked example: the adapter knew tasks A (RUNNING) and B (RUNNING) on agent
S1; it was disconnected while A finished and B's agent was lost; the new
listing has A in ``completed_tasks`` as FINISHED and neither B nor S1. The
diff is: snapshot_observed, A -> TASK_FINISHED (the completed status),
B -> TASK_UNKNOWN (vanished), S1 removed (vanished).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kmevents.contract.enums import TERMINAL_TASK_STATES
from kmevents.sources._common import Event, Stream, digest, event_id_of

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
    tasks: dict[str, TaskView] = field(default_factory=dict)
    completed_frameworks: set[str] = field(default_factory=set)
    completed_tasks: dict[str, TaskView] = field(default_factory=dict)
    unregistered_frameworks: set[str] = field(default_factory=set)
    """Frameworks with tasks that have not re-registered since a failover (v0 listing): not removed."""
    master: Obj | None = None

    def digest(self) -> str:
        """Digest of what the listing says (ids, states, activity), to recognise an identical one."""
        return digest({
            "frameworks": sorted(self.frameworks), "completed_frameworks": sorted(self.completed_frameworks),
            "agents": sorted((a, self.agent_active.get(a, True)) for a in self.agents),
            "tasks": sorted((t, v.task["state"]) for t, v in self.tasks.items()),
            "completed_tasks": sorted((t, v.task["state"]) for t, v in self.completed_tasks.items()),
        })


def _reconciled(task: Obj, state: str, now: float, message: str | None) -> Obj:
    return {"task_id": task["task_id"], "state": state, "source": "SOURCE_MASTER",
            "reason": "REASON_RECONCILIATION", "message": message, "uuid": None, "healthy": None,
            "timestamp": now, "agent_id": task.get("agent_id"), "executor_id": task.get("executor_id"),
            "labels": None, "data": None, "check_status": None}


class Differ:
    """What the adapter has seen of one cluster, and the events a new listing implies."""

    def __init__(self) -> None:
        self.frameworks: dict[str, Obj] = {}
        self.agents: dict[str, Obj] = {}
        self.agent_active: dict[str, bool] = {}
        self.tasks: dict[str, Obj] = {}
        self.master_id: str | None = None

    # -- incremental updates from stream events ---------------------------------

    def note_task(self, task: Obj) -> None:
        self.tasks[task["task_id"]] = dict(task)

    def note_state(self, task_id: str, state: str, agent_id: str | None = None) -> None:
        t = self.tasks.setdefault(task_id, {"task_id": task_id, "agent_id": agent_id,
                                            "executor_id": None, "state": state})
        t["state"] = state

    def note_agent(self, agent: Obj, active: bool = True) -> None:
        self.agents[agent["id"]] = agent
        self.agent_active[agent["id"]] = active

    def drop_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)
        self.agent_active.pop(agent_id, None)

    def note_framework(self, fw: Obj) -> None:
        self.frameworks[fw["id"]] = fw

    def drop_framework(self, framework_id: str) -> None:
        self.frameworks.pop(framework_id, None)

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

        def ev(type_: str, payload: Obj, corr: str | None = None) -> None:
            out.append(stream.event(type_, payload, occurred_at=at, clock="adapter", raw_type=raw_type,
                                    causation_id=cause, correlation_id=corr))

        if snap.master is not None and snap.master["id"] != self.master_id:
            ev("master.elected", {"master": snap.master, "previous_master_id": self.master_id})
            self.master_id = snap.master["id"]
        for fid, fw in snap.frameworks.items():
            old = self.frameworks.get(fid)
            if old is None:
                ev("framework.registered", {"framework": fw})
            elif old != fw:
                ev("framework.reregistered", {"framework": fw})
            self.frameworks[fid] = fw
        for aid, agent in snap.agents.items():
            active = snap.agent_active.get(aid, True)
            if aid not in self.agents:
                ev("agent.added", {"agent": agent})
                if not active:
                    ev("agent.deactivated", {"agent_id": aid})
            elif self.agent_active.get(aid, True) != active:
                ev("agent.reactivated" if active else "agent.deactivated", {"agent_id": aid})
            self.note_agent(agent, active)
        for views in (snap.tasks, snap.completed_tasks):
            for view in views.values():
                self._task(view, ev, now)
        for tid, known in list(self.tasks.items()):
            if tid in snap.tasks or tid in snap.completed_tasks:
                continue
            if known["state"] in TERMINAL:
                del self.tasks[tid]  # completed and garbage-collected by the master: nothing new
                continue
            if known["state"] != "TASK_UNKNOWN":
                ev("task.status_updated",
                   {"status": _reconciled(known, "TASK_UNKNOWN", now, VANISHED_MESSAGE)})
                known["state"] = "TASK_UNKNOWN"
        for aid in [a for a in self.agents if a not in snap.agents]:
            ev("agent.removed", {"agent_id": aid, "reason": "vanished"})
            self.drop_agent(aid)
        for fid in [f for f in self.frameworks
                    if f not in snap.frameworks and f not in snap.unregistered_frameworks]:
            reason = "teardown" if fid in snap.completed_frameworks else "vanished"
            ev("framework.removed", {"framework_id": fid, "reason": reason})
            self.drop_framework(fid)
        return out

    def _task(self, view: TaskView, ev: Any, now: float) -> None:
        task = view.task
        tid = task["task_id"]
        known = self.tasks.get(tid)
        if known is None:
            ev("task.added", {"task": task})
            self.note_task(task)
            return
        if known["state"] == task["state"] or known["state"] in TERMINAL:
            return
        status = view.status
        if status is None or status.get("state") != task["state"]:
            status = _reconciled(task, task["state"], now, None)
        ev("task.status_updated", {"status": status})
        known["state"] = task["state"]
