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
    HEARTBEAT           none (liveness: counted in ``heartbeats``)
    anything else       none, counted in ``skipped`` by type
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
    Skipped,
    Stream,
    TypedEventParser,
    at_nanos,
    at_seconds,
)
from kmevents.sources.mesos_snapshot import Differ, Snapshot, TaskView

Obj = dict[str, Any]


def master_info_v1(m: Obj) -> Obj:
    """v1 ``MasterInfo`` -> contract ``MasterInfo`` (the packed ``ip`` decoded as Mesos packs it)."""
    addr = m.get("address") or {}
    ip = addr.get("ip")
    if ip is None and isinstance(m.get("ip"), int):
        ip = socket.inet_ntoa(struct.pack("<I", m["ip"] & 0xFFFFFFFF))
    return {"id": m["id"], "hostname": addr.get("hostname") or m.get("hostname"), "ip": ip,
            "port": int(addr.get("port") or m.get("port") or 5050), "version": m.get("version")}


def snapshot_v1(get_state: Obj) -> Snapshot:
    """``GET_STATE`` (v1) -> :class:`Snapshot`."""
    snap = Snapshot()
    for a in (get_state.get("get_agents") or {}).get("agents", []):
        agent = mv.agent_v1(a["agent_info"])
        snap.agents[agent["id"]] = agent
        snap.agent_active[agent["id"]] = bool(a.get("active", True))
    fws = get_state.get("get_frameworks") or {}
    for f in fws.get("frameworks", []):
        fw = mv.framework_v1(f["framework_info"])
        snap.frameworks[fw["id"]] = fw
    for f in fws.get("completed_frameworks", []):
        snap.completed_frameworks.add(mv.vid(f["framework_info"].get("id")) or "")
    tasks = get_state.get("get_tasks") or {}
    for key, into in (("pending_tasks", snap.tasks), ("tasks", snap.tasks),
                      ("unreachable_tasks", snap.tasks), ("completed_tasks", snap.completed_tasks)):
        for t in tasks.get(key, []):
            task = mv.task_v1(t)
            statuses = t.get("statuses") or []
            status = mv.status_v1(statuses[-1], agent_id=task["agent_id"],
                                  executor_id=task["executor_id"]) if statuses else None
            into[task["task_id"]] = TaskView(task, status)
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
        """``heartbeat_interval_seconds`` of the last ``SUBSCRIBED`` (Mesos sends 15 s)."""
        self.heartbeats = 0
        self.skipped = Skipped()

    def new_stream(self, stream_id: str) -> None:
        """A new connection: positions restart from 0 under ``stream_id``; the known state stays."""
        self.stream = Stream(self.cluster, "mesos.operator", stream_id, now=self.now,
                             skew_threshold=self.skew_threshold)

    # -- events built outside the stream (the live client) --------------------------

    def master(self, master_info: Obj, raw_type: str = "GET_MASTER") -> list[Event]:
        """``master.elected`` when the leading master (from ``GET_MASTER``) is not the known one."""
        info = master_info_v1(master_info)
        if info["id"] == self.differ.master_id:
            return []
        prev = self.differ.master_id
        self.differ.master_id = info["id"]
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

    def _subscribed(self, body: Obj) -> list[Event]:
        hb = body.get("heartbeat_interval_seconds")
        if isinstance(hb, (int, float)):
            self.heartbeat_interval = float(hb)
        return self.differ.observe(snapshot_v1(body.get("get_state") or {}), self.stream, "SUBSCRIBED")

    def _task_added(self, body: Obj) -> list[Event]:
        task = mv.task_v1(body["task"])
        self.differ.note_task(task)
        return [self.stream.event("task.added", {"task": task}, occurred_at=self._at(),
                                  clock="adapter", raw_type="TASK_ADDED")]

    def _task_updated(self, body: Obj) -> list[Event]:
        status = mv.status_v1(body.get("status") or {})
        state = body.get("state") or status["state"]
        if status["state"] != state:
            # ``status`` is the last acknowledged update, ``state`` the latest one:
            # the latest state wins, without the other update's uuid.
            status = dict(status, state=state, uuid=None)
        self.differ.note_state(status["task_id"], state, status["agent_id"])
        out: list[Event] = []
        if status["timestamp"] is not None:
            at = at_seconds(status["timestamp"])
            clock = "master" if status["source"] == "SOURCE_MASTER" else "agent"
            out.extend(self.stream.check_clock(at))
        else:
            at, clock = self._at(), "adapter"
        out.append(self.stream.event("task.status_updated", {"status": status}, occurred_at=at,
                                     clock=clock, raw_type="TASK_UPDATED"))
        return out

    def _agent_added(self, body: Obj) -> list[Event]:
        a = body["agent"]
        agent = mv.agent_v1(a["agent_info"])
        known = agent["id"] in self.differ.agents
        self.differ.note_agent(agent, bool(a.get("active", True)))
        t = mv.nanos(a.get("reregistered_time")) or mv.nanos(a.get("registered_time"))
        at, clock = (at_nanos(t), "master") if t else (self._at(), "adapter")
        return [self.stream.event("agent.reregistered" if known else "agent.added", {"agent": agent},
                                  occurred_at=at, clock=clock, raw_type="AGENT_ADDED")]

    def _agent_removed(self, body: Obj) -> list[Event]:
        aid = mv.vid(body["agent_id"]) or ""
        self.differ.drop_agent(aid)
        return [self.stream.event("agent.removed", {"agent_id": aid, "reason": "removed"},
                                  occurred_at=self._at(), clock="adapter", raw_type="AGENT_REMOVED")]

    def _framework(self, body: Obj, type_: str, raw: str, when: str) -> list[Event]:
        f = body["framework"]
        fw = mv.framework_v1(f["framework_info"])
        self.differ.note_framework(fw)
        t = mv.nanos(f.get(when)) or mv.nanos(f.get("registered_time"))
        at, clock = (at_nanos(t), "master") if t else (self._at(), "adapter")
        return [self.stream.event(type_, {"framework": fw}, occurred_at=at, clock=clock, raw_type=raw)]

    def _framework_added(self, body: Obj) -> list[Event]:
        return self._framework(body, "framework.registered", "FRAMEWORK_ADDED", "registered_time")

    def _framework_updated(self, body: Obj) -> list[Event]:
        return self._framework(body, "framework.reregistered", "FRAMEWORK_UPDATED", "reregistered_time")

    def _framework_removed(self, body: Obj) -> list[Event]:
        fid = mv.vid(body["framework_info"].get("id")) or ""
        self.differ.drop_framework(fid)
        return [self.stream.event("framework.removed", {"framework_id": fid, "reason": "removed"},
                                  occurred_at=self._at(), clock="adapter", raw_type="FRAMEWORK_REMOVED")]

    def _heartbeat(self, body: Obj) -> list[Event]:
        self.heartbeats += 1
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
