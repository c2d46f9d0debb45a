"""``/master/state`` snapshots (masters older than the v1 API) -> catalogue events (pure parser).

Every poll is a full listing; :class:`StateParser` turns it into a
:class:`~kmevents.sources.mesos_snapshot.Snapshot` (v0 names: ``slaves`` /
``slave_id`` become agents) and emits the diff against the previous polls
(``cluster.snapshot_observed`` first, then the changes; see mesos_snapshot.py).
One poll is one record of the stream (``seq`` = poll number).

Read from the listing: ``frameworks[]`` (with ``tasks``, ``unreachable_tasks``,
``completed_tasks``), ``completed_frameworks[]``, ``orphan_tasks`` (tasks of
frameworks that have not re-registered since a failover; their ids are in
``unregistered_frameworks``), ``slaves[]`` (``active``), and the leader:
``leader_info`` when present, else this master's ``id``/``hostname`` when it
is the leader (``pid == leader``), else the leader's pid as its id.
"""

from __future__ import annotations

import time
from typing import Any

from kmevents.sources import mesos_values as mv
from kmevents.sources._common import DEFAULT_SKEW_SECONDS, Clock, Event, Stream
from kmevents.sources.mesos_operator import master_info_v1
from kmevents.sources.mesos_snapshot import Differ, Snapshot, TaskView

Obj = dict[str, Any]


def _view(t: Obj) -> TaskView:
    task = mv.task_v0(t)
    statuses = t.get("statuses") or []
    return TaskView(task, mv.status_v0(statuses[-1], task) if statuses else None)


def _leader(state: Obj) -> Obj | None:
    if isinstance(state.get("leader_info"), dict) and state["leader_info"].get("id"):
        return master_info_v1(state["leader_info"])
    leader = state.get("leader")
    if not leader:
        return None
    host, _, port = leader.rpartition("@")[2].partition(":")
    if leader == state.get("pid") and state.get("id"):
        return {"id": state["id"], "hostname": state.get("hostname"), "ip": host or None,
                "port": int(port or 5050), "version": state.get("version")}
    return {"id": leader, "hostname": None, "ip": host or None, "port": int(port or 5050),
            "version": None}


def snapshot_v0(state: Obj) -> Snapshot:
    """A ``/master/state`` JSON -> :class:`Snapshot`."""
    snap = Snapshot(master=_leader(state))
    for s in state.get("slaves") or []:
        agent = mv.agent_v0(s)
        snap.agents[agent["id"]] = agent
        snap.agent_active[agent["id"]] = bool(s.get("active", True))
    for f in state.get("frameworks") or []:
        fw = mv.framework_v0(f)
        snap.frameworks[fw["id"]] = fw
        for t in list(f.get("tasks") or []) + list(f.get("unreachable_tasks") or []):
            v = _view(t)
            snap.tasks[v.task["task_id"]] = v
        for t in f.get("completed_tasks") or []:
            v = _view(t)
            snap.completed_tasks[v.task["task_id"]] = v
    for f in state.get("completed_frameworks") or []:
        snap.completed_frameworks.add(f["id"])
        for t in list(f.get("tasks") or []) + list(f.get("completed_tasks") or []):
            v = _view(t)
            snap.completed_tasks[v.task["task_id"]] = v
    snap.unregistered_frameworks.update(str(f) for f in state.get("unregistered_frameworks") or [])
    for t in state.get("orphan_tasks") or []:
        v = _view(t)
        snap.tasks[v.task["task_id"]] = v
    return snap


class StateParser:
    """Successive ``/master/state`` documents in, catalogue envelopes out. No I/O."""

    def __init__(self, cluster: str, stream_id: str = "master-state", *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.differ = Differ()
        self.stream = Stream(cluster, "mesos.state", stream_id, now=now, skew_threshold=skew_threshold)

    def feed(self, state: Obj, seq: int | None = None) -> list[Event]:
        """One poll's JSON."""
        out = self.stream.record(seq)
        out.extend(self.differ.observe(snapshot_v0(state), self.stream, "MASTER_STATE"))
        return out
