"""Mesos v1 operator API ``SUBSCRIBE`` stream -> catalogue events (pure parser).

One :class:`OperatorParser` lives as long as the adapter; each connection is a
new stream (``new_stream(stream_id)``: the ``Mesos-Stream-Id``, or a
connection id when the master sends none), while the known state
(:class:`~kmevents.sources.mesos_snapshot.Differ`) carries over, so the
``SUBSCRIBED`` snapshot of a reconnection becomes diff events.

Mapping (raw ``type`` -> kmevents type; details in schemas/README.md):

    SUBSCRIBED          cluster.snapshot_observed + diff events (mesos_snapshot.py)
    TASK_ADDED          task.added
    TASK_UPDATED        task.status_updated
    AGENT_ADDED         agent.added (agent.reregistered when already known)
    AGENT_REMOVED       agent.removed (reason "removed")
    FRAMEWORK_ADDED     framework.registered
    FRAMEWORK_UPDATED   framework.reregistered
    FRAMEWORK_REMOVED   framework.removed (reason "removed")
    HEARTBEAT           none (liveness: counted in ``heartbeats`` and ``skipped``)
    anything else       none, counted in ``skipped`` by type

After a master failover, ``SUBSCRIBED`` lists agents that await
re-registration (``recovered_agents``): they are deactivated, not removed,
and their tasks stay as they were; each then comes back as ``AGENT_ADDED``
(``agent.reregistered``) followed by one ``TASK_ADDED`` per task it runs
(mesos_snapshot.py, "Awaiting re-registration is not removal").

Tasks are known by ``(framework_id, task_id)``. A record the parser cannot
map (a missing ``agent_info``, a task without its framework) is quarantined
with the reason; the stream goes on.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from kmevents.sources import mesos_values as mv
from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    Clock,
    Event,
    Outcomes,
    Stream,
    TypedEventParser,
    at_nanos,
    at_seconds,
)
from kmevents.sources.mesos_snapshot import Differ, Snapshot, TaskView

Obj = dict[str, Any]


def master_info_v1(m: Obj) -> Obj:
    """v1 ``MasterInfo`` -> contract ``MasterInfo`` (the packed ``ip`` decoded as Mesos packs it)."""
    addr = mv.obj(m.get("address"))
    ip = addr.get("ip")
    if ip is None and isinstance(m.get("ip"), int):
        ip = socket.inet_ntoa(struct.pack("<I", m["ip"] & 0xFFFFFFFF))
    if ip is None:
        ip = mv.pid_address(m.get("pid"))[0]
    return {"id": mv.require(m.get("id"), "master_info.id"), "hostname": addr.get("hostname") or m.get("hostname"),
            "ip": ip, "port": int(addr.get("port") or m.get("port") or 5050), "version": m.get("version")}


def _task_view(t: Obj) -> TaskView:
    task = mv.task_v1(t)
    statuses = [s for s in t.get("statuses") or [] if isinstance(s, dict)]
    status = mv.status_v1(statuses[-1], agent_id=task["agent_id"],
                          executor_id=task["executor_id"]) if statuses else None
    return TaskView(task, status)


def _seconds(nanoseconds: int, what: str) -> float:
    seconds = mv.epoch_seconds(nanoseconds / 1e9, what)
    assert seconds is not None
    return seconds


def snapshot_v1(get_state: Obj) -> Snapshot:
    """``GET_STATE`` (v1) -> :class:`Snapshot`.

    Read as Mesos writes it after a failover: ``get_agents.recovered_agents``
    (1.2+) await re-registration; frameworks with ``recovered: true`` (1.2+)
    and ``get_frameworks.recovered_frameworks`` (1.0-1.1) have not
    re-subscribed yet; ``get_tasks.orphan_tasks`` (1.0-1.2) and
    ``unreachable_tasks`` (1.2+) are tasks the master knows. Each framework's
    ``offers`` are not read: the operator stream never says when they close.
    """
    snap = Snapshot()
    agents = mv.obj(get_state.get("get_agents"))
    for a in agents.get("agents") or []:
        agent = mv.agent_v1(a.get("agent_info"))
        snap.agents[agent["id"]] = agent
        snap.agent_active[agent["id"]] = bool(a.get("active", True))
        rt = mv.nanos(a.get("reregistered_time"))
        if rt is not None:
            snap.agent_reregistered_at[agent["id"]] = _seconds(rt, "agent.reregistered_time")
    for info in agents.get("recovered_agents") or []:
        agent = mv.agent_v1(info)
        snap.recovered_agents[agent["id"]] = agent
    snap.recovery_listed = bool(snap.recovered_agents)
    fws = mv.obj(get_state.get("get_frameworks"))
    for f in fws.get("frameworks") or []:
        fw = mv.framework_v1(mv.obj(f.get("framework_info")))
        if f.get("recovered") is True:
            snap.recovered_frameworks[fw["id"]] = fw
        else:
            snap.frameworks[fw["id"]] = fw
        rt = mv.nanos(f.get("reregistered_time"))
        if rt is not None:
            snap.framework_reregistered_at[fw["id"]] = _seconds(rt, "framework.reregistered_time")
    for info in fws.get("recovered_frameworks") or []:
        fw = mv.framework_v1(info)
        snap.recovered_frameworks.setdefault(fw["id"], fw)
    for f in fws.get("completed_frameworks") or []:
        snap.completed_frameworks.add(mv.require(mv.obj(f.get("framework_info")).get("id"), "framework_info.id"))
    tasks = mv.obj(get_state.get("get_tasks"))
    for key in ("pending_tasks", "tasks", "unreachable_tasks", "orphan_tasks", "completed_tasks"):
        into = snap.completed_tasks if key == "completed_tasks" else snap.tasks
        for t in tasks.get(key) or []:
            v = _task_view(t)
            into[mv.task_key(v.task)] = v
    return snap


class OperatorParser(TypedEventParser):
    """Operator API events in, catalogue envelopes out. No I/O."""

    def __init__(self, cluster: str, stream_id: str = "operator-0", *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.now = now
        self.skew_threshold = skew_threshold
        self.differ = Differ()
        self.stream = Stream(cluster, "mesos.operator", stream_id, now=now, skew_threshold=skew_threshold)
        self.heartbeat_interval: float | None = None
        """``heartbeat_interval_seconds`` of the last ``SUBSCRIBED`` (Mesos 1.5+ sends 15 s; None:
        the master sends no heartbeats)."""
        self.heartbeats = 0
        self.outcomes = Outcomes()
        self.skipped = self.outcomes.skipped

    def new_stream(self, stream_id: str) -> None:
        """A new connection: positions restart from 0 under ``stream_id``; the known state stays."""
        self.stream = Stream(self.cluster, "mesos.operator", stream_id, now=self.now,
                             skew_threshold=self.skew_threshold)

    # -- events built outside the stream (the live client) --------------------------

    def master(self, master_info: Obj, raw_type: str = "GET_MASTER") -> list[Event]:
        """``master.elected`` when the leading master (from ``GET_MASTER``) is not the known one.

        A new master after a known one is a failover: the next ``SUBSCRIBED``
        is read knowing that agents and frameworks may await re-registration."""
        info = master_info_v1(master_info)
        if info["id"] == self.differ.master_id:
            return []
        prev = self.differ.note_master(info["id"])
        return [self.stream.event("master.elected", {"master": info, "previous_master_id": prev},
                                  occurred_at=self.stream.adapter_time(), clock="adapter",
                                  raw_type=raw_type)]

    def heartbeat_lost(self, missed: int, master_id: str | None = None) -> Event:
        """``master.heartbeat_lost`` (the live client saw no event for ``missed`` intervals)."""
        mid = master_id or self.differ.master_id or "unknown"
        return self.stream.event("master.heartbeat_lost",
                                 {"master_id": mid, "missed": missed,
                                  "interval_seconds": float(self.heartbeat_interval or 15.0)},
                                 occurred_at=self.stream.adapter_time(), clock="adapter",
                                 raw_type="HEARTBEAT")

    # -- handlers -------------------------------------------------------------------

    def _at(self) -> str:
        return self.stream.adapter_time()

    def _subscribed(self, event: Obj) -> list[Event]:
        body = self.body(event)
        snap = snapshot_v1(mv.obj(body.get("get_state")))
        hb = body.get("heartbeat_interval_seconds")
        self.heartbeat_interval = float(hb) if isinstance(hb, (int, float)) and hb > 0 else None
        return self.differ.observe(snap, self.stream, "SUBSCRIBED")

    def _task_added(self, event: Obj) -> list[Event]:
        task = mv.task_v1(mv.obj(self.body(event).get("task")))
        self.differ.note_task(task)
        return [self.stream.event("task.added", {"task": task}, occurred_at=self._at(),
                                  clock="adapter", raw_type="TASK_ADDED")]

    def _task_updated(self, event: Obj) -> list[Event]:
        body = self.body(event)
        if isinstance(body.get("status"), dict):  # master.proto: the acknowledged status + the latest state
            status = mv.status_v1(body["status"])
        else:  # the operator API guide's example: ids and the state at the top
            status = mv.status_v1({k: body.get(k) for k in ("task_id", "state", "agent_id", "executor_id")})
        state = body.get("state") or status["state"]
        if not isinstance(state, str):
            raise ValueError(f"task_updated.state is not a string: {state!r:.60}")
        if status["state"] != state:
            # ``status`` is the last acknowledged update, ``state`` the latest one: the
            # latest state wins, without the other update's uuid and time (unknown).
            status = dict(status, state=state, uuid=None, timestamp=None)
        fid = mv.vid(body.get("framework_id")) or self.differ.framework_of(status["task_id"])
        self.differ.note_state(fid, status["task_id"], state, status["agent_id"])
        out: list[Event] = []
        if status["timestamp"] is not None:
            at, clock = at_seconds(status["timestamp"]), mv.status_clock(status)
            out.extend(self.stream.check_clock(at))
        else:
            at, clock = self._at(), "adapter"
        out.append(self.stream.event("task.status_updated", mv.status_payload(status, fid), occurred_at=at,
                                     clock=clock, raw_type="TASK_UPDATED"))
        return out

    def _agent_added(self, event: Obj) -> list[Event]:
        a = mv.obj(self.body(event).get("agent"))
        agent = mv.agent_v1(a.get("agent_info"))
        known = agent["id"] in self.differ.agents
        self.differ.note_agent(agent, bool(a.get("active", True)))
        t = mv.nanos(a.get("reregistered_time")) or mv.nanos(a.get("registered_time"))
        at, clock = (at_nanos(t), "master") if t else (self._at(), "adapter")
        return [self.stream.event("agent.reregistered" if known else "agent.added", {"agent": agent},
                                  occurred_at=at, clock=clock, raw_type="AGENT_ADDED")]

    def _agent_removed(self, event: Obj) -> list[Event]:
        aid = mv.require(self.body(event).get("agent_id"), "agent_removed.agent_id")
        self.differ.drop_agent(aid)
        return [self.stream.event("agent.removed", {"agent_id": aid, "reason": "removed"},
                                  occurred_at=self._at(), clock="adapter", raw_type="AGENT_REMOVED")]

    def _framework(self, event: Obj, type_: str, raw: str, when: str) -> list[Event]:
        f = self.body(event).get("framework") or {}
        fw = mv.framework_v1(mv.obj(f.get("framework_info")))
        self.differ.note_framework(fw)
        t = mv.nanos(f.get(when)) or mv.nanos(f.get("registered_time"))
        at, clock = (at_nanos(t), "master") if t else (self._at(), "adapter")
        return [self.stream.event(type_, {"framework": fw}, occurred_at=at, clock=clock, raw_type=raw)]

    def _framework_added(self, event: Obj) -> list[Event]:
        return self._framework(event, "framework.registered", "FRAMEWORK_ADDED", "registered_time")

    def _framework_updated(self, event: Obj) -> list[Event]:
        return self._framework(event, "framework.reregistered", "FRAMEWORK_UPDATED", "reregistered_time")

    def _framework_removed(self, event: Obj) -> list[Event]:
        fid = mv.require(mv.obj(self.body(event).get("framework_info")).get("id"), "framework_info.id")
        self.differ.drop_framework(fid)
        return [self.stream.event("framework.removed", {"framework_id": fid, "reason": "removed"},
                                  occurred_at=self._at(), clock="adapter", raw_type="FRAMEWORK_REMOVED")]

    def _heartbeat(self, event: Obj) -> list[Event]:
        self.heartbeats += 1
        self.skipped.add("HEARTBEAT (liveness only)")
        return []


OperatorParser.HANDLERS = {
    "SUBSCRIBED": OperatorParser._subscribed,
    "TASK_ADDED": OperatorParser._task_added,
    "TASK_UPDATED": OperatorParser._task_updated,
    "AGENT_ADDED": OperatorParser._agent_added,
    "AGENT_REMOVED": OperatorParser._agent_removed,
    "FRAMEWORK_ADDED": OperatorParser._framework_added,
    "FRAMEWORK_UPDATED": OperatorParser._framework_updated,
    "FRAMEWORK_REMOVED": OperatorParser._framework_removed,
    "HEARTBEAT": OperatorParser._heartbeat,
}
