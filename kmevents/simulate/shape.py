"""What a simulated log looks like: agents, running pod tasks, how tasks ended, its pace.

Read from the events alone (never from the simulator's world), so it measures a
log file as well as a run in memory::

    shape = Shape(bootstrap=sim.bootstrap_events)   # or 0: no start to set apart
    for event in events:
        shape.add(event)
    shape.report()   # a dict, ready for orjson

A *pod task* is a task launched or announced (``task.added``) with a pod. How one
ended: ``EVICTED`` when its pod was evicted (``pod.evicted``: by the kubelet its task
then FAILs, by the eviction API or the node controller it is KILLED), else its
terminal state (``FINISHED``, ``KILLED``, ``FAILED``), or ``LOST`` when the log ends
while it is lost. The shares are of the pod tasks seen, so ``running through`` is
what is left. ``events_per_second`` is over the source time after the start:
from the first event after ``bootstrap`` to the latest ``occurred_at``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kmevents.contract.enums import TERMINAL_TASK_STATES

RUNNING = "TASK_RUNNING"
ENDS = ("FINISHED", "KILLED", "EVICTED", "FAILED", "LOST")


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Shape:
    """Counts taken from a log one event at a time (``add``), summed up by ``report``."""

    def __init__(self, bootstrap: int = 0) -> None:
        self.bootstrap = bootstrap
        """Events of the start: the steady window's pace is measured after them."""
        self.events = 0
        self.by_type: dict[str, int] = {}
        self.agents: set[str] = set()
        self.max_agents = 0
        self.tasks: dict[str, list[Any]] = {}
        """Pod tasks by ``<framework>/<task>``: [state, pod uid]."""
        self.running = 0
        self.max_running = 0
        self.evicted: set[str] = set()
        self.window_first: str | None = None
        self.window_last = ""
        self.first = ""

    def add(self, ev: dict[str, Any]) -> None:
        self.events += 1
        type_ = ev["type"]
        self.by_type[type_] = self.by_type.get(type_, 0) + 1
        at = ev["occurred_at"]
        if self.events == 1:
            self.first = at
        if self.events > self.bootstrap:
            if self.window_first is None:
                self.window_first = at
            if at > self.window_last:
                self.window_last = at
        pl = ev["payload"]
        if type_ == "task.status_updated":
            s = pl["status"]
            task = self.tasks.get(f"{pl['framework_id']}/{s['task_id']}")
            if task is not None:
                self._move(task, s["state"])
        elif type_ == "task.launched" or type_ == "task.added":
            info = pl["task"]
            if info.get("pod") is None:
                return
            key = f"{info['framework_id']}/{info['task_id']}"
            task = self.tasks.get(key)
            if task is None:
                task = self.tasks[key] = [None, info["pod"]["uid"]]
            self._move(task, info.get("state", "TASK_STAGING"))
        elif type_ == "pod.evicted":
            self.evicted.add(pl["pod"]["uid"])
        elif type_ == "agent.added" or type_ == "agent.reregistered":
            self.agents.add(pl["agent"]["id"])
            self.max_agents = max(self.max_agents, len(self.agents))
        elif type_ == "agent.removed":
            self.agents.discard(pl["agent_id"])

    def _move(self, task: list[Any], state: str) -> None:
        old = task[0]
        if old == state or old in TERMINAL_TASK_STATES:
            return
        task[0] = state
        if state == RUNNING:
            self.running += 1
            if self.running > self.max_running:
                self.max_running = self.running
        elif old == RUNNING:
            self.running -= 1

    def ends(self) -> dict[str, int]:
        """How the pod tasks seen ended, by ``ENDS``; those still going are not counted."""
        out = dict.fromkeys(ENDS, 0)
        for state, uid in self.tasks.values():
            if state in TERMINAL_TASK_STATES:
                kind = "EVICTED" if uid in self.evicted else state.removeprefix("TASK_")
                out[kind] = out.get(kind, 0) + 1
            elif state == "TASK_LOST":
                out["LOST"] += 1
        return out

    def report(self) -> dict[str, Any]:
        seen = len(self.tasks)
        ends = self.ends()
        steady = self.events - self.bootstrap
        span = (_seconds(self.window_last) - _seconds(self.window_first)
                if self.window_first is not None and steady > 1 else 0.0)
        offers = sum(n for t, n in self.by_type.items() if t.startswith("offer."))
        return {
            "events": self.events,
            "bootstrap_events": min(self.bootstrap, self.events),
            "agents_at_end": len(self.agents),
            "max_agents": self.max_agents,
            "pod_tasks_seen": seen,
            "max_running_pod_tasks": self.max_running,
            "running_pod_tasks_at_end": self.running,
            "ends": ends,
            "end_shares": {k: round(v / seen, 5) if seen else 0.0 for k, v in ends.items()},
            "running_through_share": round(1 - sum(ends.values()) / seen, 5) if seen else 0.0,
            "source_seconds": round(span, 3),
            "events_per_second": round((steady - 1) / span, 3) if span > 0 else None,
            "offer_share": round(offers / self.events, 5) if self.events else 0.0,
            "by_type": dict(sorted(self.by_type.items())),
        }
