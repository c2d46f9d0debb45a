"""``/master/state`` snapshots (every Mesos master, 0.19 to 1.x) -> catalogue events (pure parser).

Every poll is a full listing; :class:`StateParser` turns it into a
:class:`~kmevents.sources.mesos_snapshot.Snapshot` (v0 names: ``slaves`` /
``slave_id`` become agents) and emits the diff against the previous polls
(``cluster.snapshot_observed`` first, then the changes; see mesos_snapshot.py).
One poll is one record of the stream (``seq`` = poll number).

Read from the listing (each field's first Mesos version in brackets):
``frameworks[]`` with ``tasks``, ``completed_tasks``, ``unreachable_tasks``
[1.2] and ``offers``, ``recovered`` [1.2]; ``completed_frameworks[]``;
``orphan_tasks`` and ``unregistered_frameworks`` [0.20-1.2: tasks of
frameworks that have not re-registered since a failover]; ``slaves[]`` with
``active`` [0.21], ``reserved_resources`` by role [0.23],
``reregistered_time``; ``recovered_slaves`` [1.2: agents awaiting
re-registration]; the leader: ``leader_info`` [1.1] when present, else this
master's ``id``/``hostname`` when it is the leader (``pid == leader``);
``elected_time`` and the ``agent_reregister_timeout`` /
``slave_reregister_timeout`` flag (the re-registration window after a failover).

A listing from a master that is not the leader (masters before 1.0 answer
with their own, empty, state instead of redirecting) says nothing about the
cluster: it is skipped, counted, never diffed (it would read as everything
vanished).

Times: a status change found in a listing happens at the listed status'
``timestamp`` (``clock`` ``agent``: v0 statuses name no source, and the agent
stamps them); an agent back after a failover at its ``reregistered_time``
(``master``); everything else at the poll (``adapter``, the capture time for
an import).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from kmevents.sources import mesos_values as mv
from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    PARSE_ERRORS,
    Clock,
    Event,
    Outcomes,
    Stream,
    quarantined,
)
from kmevents.sources.mesos_snapshot import Differ, Snapshot, TaskView

Obj = dict[str, Any]


def _view(t: Obj) -> TaskView:
    task = mv.task_v0(t)
    statuses = [s for s in t.get("statuses") or [] if isinstance(s, dict)]
    return TaskView(task, mv.status_v0(statuses[-1], task) if statuses else None)


def leader_v0(state: Obj) -> Obj | None:
    """The leading master a listing names, as a contract ``MasterInfo``; None when it names none."""
    if isinstance(state.get("leader_info"), dict) and state["leader_info"].get("id"):
        return mv.master_info_v0(state["leader_info"])
    leader = state.get("leader")
    if not isinstance(leader, str) or not leader:
        return None
    host, port = mv.pid_address(leader)
    if leader == state.get("pid") and state.get("id"):
        return {"id": str(state["id"]), "hostname": state.get("hostname") or None, "ip": host,
                "port": port or 5050, "version": state.get("version")}
    return {"id": leader, "hostname": None, "ip": host, "port": port or 5050, "version": None}


def not_leading(state: Obj) -> bool:
    """True when the listing names its master (``pid``) and that master does not lead, or knows
    no leader (an election under way). A listing without ``pid`` (trimmed by whoever saved it)
    is taken as the leader's."""
    pid = state.get("pid")
    return isinstance(pid, str) and bool(pid) and pid != state.get("leader")


def snapshot_v0(state: Obj, now: float | None = None, *, offers: bool = False) -> Snapshot:
    """A ``/master/state`` JSON -> :class:`Snapshot`; ``now`` (epoch seconds) places the listing
    in the master's re-registration window; ``offers`` reads the outstanding offers."""
    if not isinstance(state, dict):
        raise TypeError(f"a master state is a JSON object, not {type(state).__name__}")
    snap = Snapshot(master=leader_v0(state))
    flags = mv.obj(state.get("flags"))
    snap.agent_reregister_timeout = mv.duration_seconds(
        flags.get("agent_reregister_timeout") or flags.get("slave_reregister_timeout"), 600.0)
    elected = state.get("elected_time")
    if now is not None and isinstance(elected, (int, float)) and not isinstance(elected, bool):
        snap.since_election = now - float(elected)
    hostnames: dict[str, str] = {}
    for s in state.get("slaves") or []:
        agent = mv.agent_v0(s)
        snap.agents[agent["id"]] = agent
        snap.agent_active[agent["id"]] = bool(s.get("active", True))
        hostnames[agent["id"]] = agent["hostname"]
        rt = mv.epoch_seconds(s.get("reregistered_time"), "slave.reregistered_time")
        if rt is not None:
            snap.agent_reregistered_at[agent["id"]] = rt
    if "recovered_slaves" in state:  # 1.2+: absence from both lists is removal
        snap.recovery_listed = True
        for s in state.get("recovered_slaves") or []:
            agent = mv.agent_v0(s)
            snap.recovered_agents[agent["id"]] = agent
            hostnames.setdefault(agent["id"], agent["hostname"])
    if offers:
        snap.offers = {}
    for f in state.get("frameworks") or []:
        fw = mv.framework_v0(f)
        if f.get("recovered") is True:
            snap.recovered_frameworks[fw["id"]] = fw
        else:
            snap.frameworks[fw["id"]] = fw
        rt = mv.epoch_seconds(f.get("reregistered_time"), "framework.reregistered_time")
        if rt is not None:
            snap.framework_reregistered_at[fw["id"]] = rt
        for t in list(f.get("tasks") or []) + list(f.get("unreachable_tasks") or []):
            v = _view(t)
            snap.tasks[mv.task_key(v.task)] = v
        for t in f.get("completed_tasks") or []:
            v = _view(t)
            snap.completed_tasks[mv.task_key(v.task)] = v
        if snap.offers is not None:
            for o in f.get("offers") or []:
                aid = mv.require(o.get("slave_id") or o.get("agent_id"), "offer.slave_id")
                if aid not in hostnames:
                    raise ValueError(f"offer {o.get('id')!r} is on agent {aid!r}, which the listing does not name")
                offer = mv.offer_v0(o, hostnames[aid])
                snap.offers[offer["id"]] = offer
    for f in state.get("completed_frameworks") or []:
        snap.completed_frameworks.add(mv.require(f.get("id"), "completed framework id"))
        for t in list(f.get("tasks") or []) + list(f.get("completed_tasks") or []):
            v = _view(t)
            snap.completed_tasks[mv.task_key(v.task)] = v
    for fid in state.get("unregistered_frameworks") or []:
        fid = mv.require(fid, "unregistered framework id")
        if fid not in snap.frameworks:
            snap.recovered_frameworks.setdefault(fid, None)
    for t in state.get("orphan_tasks") or []:
        v = _view(t)
        snap.tasks[mv.task_key(v.task)] = v
    return snap


class StateParser:
    """Successive ``/master/state`` documents in, catalogue envelopes out. No I/O.

    ``offers``: diff each framework's outstanding ``offers`` into offer events
    (mesos_snapshot.py, step 6) — for a cluster whose scheduler stream is not
    posted; a posted scheduler stream says more (accept, decline, rescind) and
    both together would report the offers twice.
    """

    def __init__(self, cluster: str, stream_id: str = "master-state", *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS, offers: bool = True) -> None:
        self.differ = Differ()
        self.offers = offers
        self.stream = Stream(cluster, "mesos.state", stream_id, now=now, skew_threshold=skew_threshold)
        self.outcomes = Outcomes()
        self.skipped = self.outcomes.skipped
        self.leader_elsewhere: str | None = None
        """The leader's pid named by the last listing when it came from a master that does not
        lead (the poller asks the leader next); None otherwise."""

    def feed_bytes(self, raw: bytes, seq: int | None = None) -> list[Event]:
        """One poll's body as received; a body that is not JSON is quarantined."""
        try:
            state = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return quarantined(self.stream, self.outcomes, seq, raw, f"not JSON: {exc}")
        return self.feed(state, seq, raw=raw)

    def feed(self, state: Obj, seq: int | None = None, *, raw: bytes | None = None) -> list[Event]:
        """One poll's JSON. A listing the parser cannot read is quarantined (and diffs nothing)."""
        out = self.stream.record(seq)
        if isinstance(state, dict) and not_leading(state):
            leader = state.get("leader")
            self.leader_elsewhere = leader if isinstance(leader, str) and leader else None
            self.skipped.add("listing of a master that does not lead")
            return out
        try:
            snap = snapshot_v0(state, self.stream.now(), offers=self.offers)
        except PARSE_ERRORS as exc:
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, raw if raw is not None else state,
                                     f"unreadable master state: {type(exc).__name__}: {exc}")
            return out
        out.extend(self.differ.observe(snap, self.stream, "MASTER_STATE"))
        return out
