"""Handlers for the Mesos side: master, frameworks, agents, offers, tasks, executors, roles.

Every handler is ``h(st, ev, payload, occurred_at) -> None``. A handler works
in two phases: first it reads and checks everything it needs from the payload
(raising ``Malformed``/``KeyError``/``TypeError`` on a bad shape), then it
mutates. Nothing in the second phase can raise on bad input, which is what
lets ``apply`` promise "a malformed event changes nothing".
"""

from __future__ import annotations

from sys import intern
from typing import Any

import orjson

from kmevents.contract.enums import ACTIVE_TASK_STATES, PARKED_TASK_STATES, TERMINAL_TASK_STATES
from kmevents.reducer.aggregates import ensure_roles, offer_closed, offer_opened, task_counted
from kmevents.reducer.annotations import (
    AMBIGUOUS,
    DUPLICATE,
    IMPOSSIBLE,
    INVARIANT,
    SOURCE_PROBLEM,
    STALE,
    UNKNOWN_ENTITY,
    UNKNOWN_VALUE,
    note,
)
from kmevents.reducer.payload import opt_dict, opt_str, req_str
from kmevents.reducer.resources import Malformed, flatten, over, summarize_shared
from kmevents.reducer.retention import mark, unmark
from kmevents.reducer.state import ClusterState
from kmevents.reducer.taskids import forget_task, index_task

Ent = dict[str, Any]

# -- task states ---------------------------------------------------------------

#: States whose resources count as allocated and in which the task counts as running.
ALLOCATED = ACTIVE_TASK_STATES
#: Final states: nothing leaves them.
TERMINAL = TERMINAL_TASK_STATES
#: Not terminal (the task may come back: LOST -> RUNNING happens), but not
#: counted as allocated or running either.
INACTIVE = PARKED_TASK_STATES
KNOWN_STATES = ALLOCATED | TERMINAL | INACTIVE
#: Order of the active states: an update to a lower rank than the task's is stale
#: (RUNNING after KILLING is a late retry, not a resurrection).
RANK = {"TASK_STAGING": 0, "TASK_STARTING": 1, "TASK_RUNNING": 2, "TASK_KILLING": 3}
_INTERN = {s: s for s in KNOWN_STATES}
RECONCILIATION = "REASON_RECONCILIATION"


def _pod_id(ref: Any) -> str | None:
    if ref is None:
        return None
    return req_str(ref["namespace"], "pod.namespace") + "/" + req_str(ref["name"], "pod.name")


# -- cluster -------------------------------------------------------------------

def _cluster(st: ClusterState, t: str) -> Ent:
    cid = st.cluster
    c = st.clusters.get(cid)
    if c is None:
        c = st.clusters[cid] = {
            "id": cid, "leader": None, "since": t, "failovers": [], "failover_count": 0,
            "heartbeat": {"status": "ok", "since": t, "master_id": None, "missed": 0,
                          "interval_seconds": None},
            "last_error": None, "error_count": 0, "scheduler_leader": None,
            "observed": None, "source_problems": 0,
        }
    st._dirty.add(("cluster", cid))
    return c


def master_elected(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    m = pl["master"]
    mid = req_str(m["id"], "master.id")
    prev = opt_str(pl.get("previous_master_id"), "previous_master_id")
    info = {k: m.get(k) for k in ("id", "hostname", "ip", "port", "version")}
    c = _cluster(st, t)
    old = c["leader"]["id"] if c["leader"] is not None else prev
    c["heartbeat"] = {"status": "ok", "since": t, "master_id": mid, "missed": 0,
                      "interval_seconds": None}
    if c["leader"] is not None and c["leader"]["id"] == mid:
        c["leader"] = info  # the same master re-subscribed: refresh, no failover
        return
    c["leader"] = info
    c["since"] = t
    if old is not None and old != mid:
        hist = c["failovers"]
        hist.append({"at": t, "from": old, "to": mid})
        if len(hist) > st.retention.failover_history:
            del hist[0]
        c["failover_count"] += 1


def master_heartbeat_lost(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    mid = req_str(pl["master_id"], "master_id")
    missed = pl.get("missed")
    interval = pl.get("interval_seconds")
    c = _cluster(st, t)
    hb = c["heartbeat"]
    since = hb["since"] if hb["status"] == "lost" else t
    c["heartbeat"] = {"status": "lost", "since": since, "master_id": mid, "missed": missed,
                      "interval_seconds": interval}


def master_error(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    msg = req_str(pl["message"], "message")
    c = _cluster(st, t)
    c["last_error"] = {"message": msg, "at": t}
    c["error_count"] += 1


def scheduler_leader_elected(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    ident = req_str(pl["identity"], "identity")
    prev = opt_str(pl.get("previous"), "previous")
    c = st.clusters.get(st.cluster)
    cur = c["scheduler_leader"] if c is not None else None
    if cur is not None and cur["identity"] == ident:
        return  # the same leader renewed its lease
    c = _cluster(st, t)
    c["scheduler_leader"] = {"identity": ident, "previous": prev, "since": t}


def cluster_snapshot_observed(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    obs = {k: pl[k] for k in ("agents", "frameworks", "tasks", "digest")}
    c = _cluster(st, t)
    c["observed"] = dict(obs, at=t)


def source_problem(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    stream = req_str(pl["stream_id"], "stream_id")
    c = _cluster(st, t)
    c["source_problems"] += 1
    detail = {k: v for k, v in pl.items() if k != "stream_id"}
    note(st, SOURCE_PROBLEM, "cluster", st.cluster, f"{ev['type']} on stream {stream}: {detail}")


# -- frameworks ----------------------------------------------------------------

def _framework_fields(f: Ent) -> Ent:
    roles = f.get("roles") or []
    if type(roles) is not list:
        raise Malformed("framework.roles must be a list")
    return {"name": f.get("name"), "roles": roles, "principal": f.get("principal"),
            "hostname": f.get("hostname"), "failover_timeout": f.get("failover_timeout")}


def _framework_upsert(st: ClusterState, pl: Ent, t: str, re: bool) -> None:
    f = pl["framework"]
    fid = req_str(f["id"], "framework.id")
    fields = _framework_fields(f)
    cur = st.frameworks.get(fid)
    if cur is not None and cur["status"] == "removed":
        note(st, IMPOSSIBLE, "framework", fid, "a removed framework cannot register again; ignored")
        return
    if cur is None:
        cur = st.frameworks[fid] = {"id": fid, **fields, "status": "registered", "since": t,
                                    "registered_at": t, "reregistered_count": 0,
                                    "removed_reason": None}
    else:
        cur.update(fields)
    if re:
        cur["reregistered_count"] += 1
    st._dirty.add(("framework", fid))


def framework_registered(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _framework_upsert(st, pl, t, False)


def framework_reregistered(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _framework_upsert(st, pl, t, True)



def _remove(st: ClusterState, kind: str, eid: str, t: str, reason: Any) -> None:
    """Mark ``kind/eid`` removed (framework, agent): status, since, reason, retention."""
    cur = st._tables[kind].get(eid)
    if cur is None:
        note(st, UNKNOWN_ENTITY, kind, eid, f"removal of a {kind} not in state")
        return
    if cur["status"] == "removed":
        note(st, DUPLICATE, kind, eid, f"{kind} already removed")
        return
    cur["status"] = "removed"
    cur["since"] = t
    cur["removed_reason"] = reason
    st._dirty.add((kind, eid))
    mark(st, kind, eid, t)


def framework_removed(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _remove(st, "framework", req_str(pl["framework_id"], "framework_id"), t, pl.get("reason"))


# -- agents --------------------------------------------------------------------

def _agent_fields(a: Ent) -> tuple[str, Ent]:
    aid = req_str(a["id"], "agent.id")
    summ = summarize_shared(a.get("resources") or [])
    attrs = opt_dict(a.get("attributes"), "agent.attributes") or {}
    return aid, {"hostname": a.get("hostname"), "port": a.get("port"), "attributes": _shared(attrs),
                 "total": _shared(flatten(summ)), "total_by_role": summ}


#: equal read-only values of agents, by their JSON text: machines of one type share their
#: totals and attributes (12,500 agents held ~1.6 KB each of them at the large profile)
_SHARED: dict[bytes, Any] = {}
_SHARED_MAX = 4096


def _shared(v: Ent) -> Ent:
    """An agent's total or attributes (never mutated in place: the fold replaces them), as the
    value remembered for its JSON text (key order included) when there is one."""
    try:
        key = orjson.dumps(v)
    except TypeError:
        return v
    got = _SHARED.get(key)
    if got is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[b"".join((key, b""))] = got = v  # tight: orjson keeps its output buffer (resources.py)
    return got


def _new_agent(aid: str, fields: Ent, t: str) -> Ent:
    return {"id": aid, **fields, "status": "active", "since": t, "registered_at": t,
            "reregistered_count": 0, "removed_reason": None, "drain_grace_seconds": None,
            "allocated": {}, "allocated_by_role": {}, "offered": {}, "offered_by_role": {},
            "executors": []}


def agent_added(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    aid, fields = _agent_fields(pl["agent"])
    cur = st.agents.get(aid)
    if cur is not None:
        if cur["status"] == "removed":
            note(st, STALE, "agent", aid, "agent.added for a removed agent (Mesos never reuses agent ids); ignored")
        else:
            note(st, DUPLICATE, "agent", aid, "agent already registered")
        return
    st.agents[aid] = _new_agent(aid, fields, t)
    st._dirty.add(("agent", aid))
    st._stale.add(aid)


def agent_reregistered(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    aid, fields = _agent_fields(pl["agent"])
    cur = st.agents.get(aid)
    if cur is None:
        cur = st.agents[aid] = _new_agent(aid, fields, t)
    else:
        cur.update(fields)
        if cur["status"] == "removed":
            unmark(st, "agent", aid)
            cur["removed_reason"] = None
        if cur["status"] != "active":
            cur["status"] = "active"
            cur["since"] = t
    cur["reregistered_count"] += 1
    st._dirty.add(("agent", aid))
    st._stale.add(aid)
    bad = over(flatten(st._alloc.get(aid, {})), cur["total"])
    if bad:
        note(st, INVARIANT, "agent", aid, f"allocated over total after re-registration: {bad}")


def agent_removed(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    # Only the agent changes. Its tasks change through their own TASK_LOST /
    # TASK_GONE updates and its offers through offer.rescinded; Mesos sends
    # those in no fixed order relative to this event, and because none of the
    # three reads what the others write, any order folds to the same state.
    _remove(st, "agent", req_str(pl["agent_id"], "agent_id"), t, pl.get("reason"))


def _agent_condition(st: ClusterState, pl: Ent, t: str, status: str, grace: Any = None) -> None:
    aid = req_str(pl["agent_id"], "agent_id")
    cur = st.agents.get(aid)
    if cur is None:
        note(st, UNKNOWN_ENTITY, "agent", aid, f"agent {status} but not in state")
        return
    if cur["status"] == "removed":
        note(st, STALE, "agent", aid, f"agent {status} after its removal; ignored")
        return
    if status == "deactivated" and cur["status"] == "draining":
        return  # draining already implies deactivated
    if cur["status"] != status:
        cur["status"] = status
        cur["since"] = t
    if status == "draining":
        cur["drain_grace_seconds"] = grace
    st._dirty.add(("agent", aid))


def agent_draining(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _agent_condition(st, pl, t, "draining", pl.get("max_grace_period_seconds"))


def agent_deactivated(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _agent_condition(st, pl, t, "deactivated")


def agent_reactivated(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _agent_condition(st, pl, t, "active")


# -- roles ---------------------------------------------------------------------

def _role(st: ClusterState, name: str, t: str) -> Ent:
    ensure_roles(st, {name: {}}, t)
    st._dirty.add(("role", name))
    return st.roles[name]


def role_updated(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    r = pl["role"]
    name = req_str(r["name"], "role.name")
    weight = r.get("weight")
    fws = r.get("frameworks") or []
    if type(fws) is not list:
        raise Malformed("role.frameworks must be a list")
    role = _role(st, name, t)
    role["weight"] = weight
    role["frameworks"] = fws


# -- offers --------------------------------------------------------------------

def offer_offered(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    o = pl["offer"]
    oid = o["id"]
    aid = o["agent_id"]
    if type(oid) is not str or type(aid) is not str:
        raise Malformed("offer.id and offer.agent_id must be strings")
    summ = summarize_shared(o["resources"])  # shared by equal offers: read only
    if oid in st.offers:
        note(st, DUPLICATE, "offer", oid, "offer already known")
        return
    fw = o.get("framework_id")
    host = o.get("hostname")
    ag = st.agents.get(aid)
    if ag is not None:
        # the agent's own strings where the texts are equal, and one framework id string: a
        # closed offer stays in state for a while (10,000 of them: ~3 MiB of copies)
        aid = ag["id"]
        if host == ag["hostname"]:
            host = ag["hostname"]
    st.offers[oid] = {"id": oid, "framework_id": intern(fw) if type(fw) is str else fw, "agent_id": aid,
                      "hostname": host, "resources": summ,
                      "status": "outstanding", "since": t, "offered_at": t,
                      "decline_reason": None, "refuse_seconds": None, "task_ids": None}
    dirty = st._dirty
    dirty.add(("offer", oid))
    offer_opened(st, aid, oid)
    for role in summ:
        if role not in st.roles:
            ensure_roles(st, summ, t)
            break
    if ag is None:
        note(st, UNKNOWN_ENTITY, "agent", aid, f"offer {oid} on an agent not in state")
        return
    dirty.add(("agent", aid))
    if ag["status"] == "removed":
        note(st, INVARIANT, "offer", oid, f"offer on removed agent {aid}")


def _close_offer(st: ClusterState, oid: Any, t: str, status: str) -> Ent | None:
    if type(oid) is not str:
        raise Malformed("offer_id must be a string")
    o = st.offers.get(oid)
    if o is None:
        note(st, UNKNOWN_ENTITY, "offer", oid, f"offer {status} but not in state")
        return None
    cur = o["status"]
    if cur != "outstanding":
        if status == "accepted" and cur == "rescinded":
            note(st, INVARIANT, "offer", oid, "offer accepted after it was rescinded; ignored")
        elif cur == status:
            note(st, DUPLICATE, "offer", oid, f"offer already {cur}")
        else:
            note(st, STALE, "offer", oid, f"offer {status} but already {cur}; ignored")
        return None
    o["status"] = status
    o["since"] = t
    aid = o["agent_id"]
    offer_closed(st, aid, oid)
    dirty = st._dirty
    if aid in st.agents:
        dirty.add(("agent", aid))
    dirty.add(("offer", oid))
    mark(st, "offer", oid, t)
    return o


def offer_rescinded(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _close_offer(st, pl["offer_id"], t, "rescinded")


def offer_expired(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _close_offer(st, pl["offer_id"], t, "expired")


def offer_declined(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    reason = opt_str(pl.get("reason"), "reason")
    refuse = pl.get("refuse_seconds")
    oid = pl["offer_id"]
    o = st.offers.get(oid) if type(oid) is str else None
    if o is not None and o["status"] in ("expired", "rescinded") and reason == o["status"]:
        # k8sm's own protocol: when its offer TTL runs out (or Mesos rescinds the
        # offer) it still DECLINEs the offer, with that reason, to hand the
        # resources back. The offer is already closed; this is its normal epilogue,
        # not a stale event: record the decline, keep the status.
        if o.get("decline_reason") != reason or o.get("refuse_seconds") != refuse:
            o["decline_reason"] = o["status"]  # (equal to the reason: the status's one string)
            o["refuse_seconds"] = refuse
            st._dirty.add(("offer", oid))
        return
    o = _close_offer(st, oid, t, "declined")
    if o is not None:
        o["decline_reason"] = intern(reason) if reason is not None else None  # a few texts, many offers
        o["refuse_seconds"] = refuse


def offer_accepted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    tids = pl.get("task_ids") or []
    if type(tids) is not list:
        raise Malformed("task_ids must be a list")
    o = _close_offer(st, pl["offer_id"], t, "accepted")
    if o is not None:
        o["task_ids"] = tids


def inverse_offer_offered(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    io = pl["inverse_offer"]
    iid = req_str(io["id"], "inverse_offer.id")
    aid = opt_str(io.get("agent_id"), "inverse_offer.agent_id")
    unav = opt_dict(io.get("unavailability"), "unavailability")
    if iid in st.inverse_offers:
        note(st, DUPLICATE, "inverse_offer", iid, "inverse offer already known")
        return
    st.inverse_offers[iid] = {"id": iid, "framework_id": io.get("framework_id"), "agent_id": aid,
                              "unavailability": unav, "status": "outstanding", "since": t}
    st._dirty.add(("inverse_offer", iid))


def _close_inverse(st: ClusterState, pl: Ent, t: str, status: str) -> None:
    iid = req_str(pl["inverse_offer_id"], "inverse_offer_id")
    io = st.inverse_offers.get(iid)
    if io is None:
        note(st, UNKNOWN_ENTITY, "inverse_offer", iid, f"inverse offer {status} but not in state")
        return
    if io["status"] != "outstanding":
        kind = DUPLICATE if io["status"] == status else STALE
        note(st, kind, "inverse_offer", iid, f"inverse offer {status} but already {io['status']}")
        return
    io["status"] = status
    io["since"] = t
    st._dirty.add(("inverse_offer", iid))
    mark(st, "inverse_offer", iid, t)


def inverse_offer_rescinded(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _close_inverse(st, pl, t, "rescinded")


def inverse_offer_accepted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _close_inverse(st, pl, t, "accepted")


def inverse_offer_declined(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _close_inverse(st, pl, t, "declined")


# -- tasks ---------------------------------------------------------------------

#: The framework part of a task's id while the framework is not known.
UNKNOWN_FRAMEWORK = "-"


def task_key(framework_id: str | None, task_id: str) -> str:
    """A task entity's id: ``<framework_id>/<task_id>`` (a Mesos task id is unique only within
    its framework); ``-/<task_id>`` while the framework is not known."""
    return f"{framework_id or UNKNOWN_FRAMEWORK}/{task_id}"


def _new_task(st: ClusterState, framework_id: str | None, tid: str, t: str) -> Ent:
    """A new task entity, put in the state and the task-id index."""
    key = task_key(framework_id, tid)
    task: Ent = {"id": key, "task_id": tid, "name": None, "framework_id": framework_id, "agent_id": None,
            "executor_id": None, "resources": {}, "labels": None, "data": None, "pod": None,
            "offer_id": None, "state": None, "since": t, "status": None,
            "first_seen": t, "launched_at": None, "kill_requested": None, "recent_uuids": []}
    st.tasks[key] = task
    index_task(st, tid, key)
    st._dirty.add(("task", key))
    return task


def _find_task(st: ClusterState, framework_id: str | None, tid: str, what: str) -> tuple[str | None, Ent | None]:
    """The task an event names: ``(id, entity)``; entity None when the state does not hold it.

    With the framework: ``<framework_id>/<task_id>``; a task first seen without its
    framework (``-/<task_id>``) becomes that one now (its id moves). Without it: the one
    task entity with that task id; none known gives ``-/<task_id>``; several (two
    frameworks used the id) is ambiguous: annotated, and ``(None, None)``.

    Worked example: a status update without framework for ``t1`` creates ``-/t1``; the
    ``task.added`` of framework ``F`` for ``t1`` moves it to ``F/t1``; a launch of ``t1``
    by framework ``G`` makes ``G/t1``; a later update without framework for ``t1`` is
    ambiguous.
    """
    if framework_id is not None:
        key = (framework_id or UNKNOWN_FRAMEWORK) + "/" + tid  # task_key, inlined
        task = st.tasks.get(key)
        if task is None:
            anon = st.tasks.get(UNKNOWN_FRAMEWORK + "/" + tid)
            if anon is not None:
                _rekey(st, anon, key, framework_id)
                return key, anon
        return key, task
    keys = st.task_ids(tid)
    if len(keys) == 1:
        return keys[0], st.tasks[keys[0]]
    if not keys:
        return task_key(None, tid), None
    note(st, AMBIGUOUS, "task", tid,
         f"{what} names task {tid!r} without its framework, and {len(keys)} frameworks use that id "
         f"({', '.join(sorted(keys))}); nothing changed")
    return None, None


def _rekey(st: ClusterState, task: Ent, key: str, framework_id: str) -> None:
    """Move a task known without its framework to its full id."""
    old = task["id"]
    del st.tasks[old]
    st._dirty.add(("task", old))
    task["id"] = key
    task["framework_id"] = framework_id
    st.tasks[key] = task
    st._dirty.add(("task", key))
    forget_task(st, task["task_id"], old)
    index_task(st, task["task_id"], key)
    idx = st._terminal["task"]
    if old in idx:
        if st._base is None:
            idx[key] = idx.pop(old)
            return
        log = st._base.track.orders["task"]  # each change noted first (tracking.py)
        log.removing(idx, old)
        t = idx.pop(old)
        if key in idx:  # (not seen: an id in the order has its entity, and key had none)
            log.changing(idx, key)
        else:
            log.adding(key)
        idx[key] = t


def _account_task(st: ClusterState, task: Ent, sign: float, t: str) -> None:
    """Add (sign=1) or remove (sign=-1) the task's resources from its agent's allocation.

    Called exactly when the task crosses the ALLOCATED boundary (or its
    resources/agent change while inside it), so an agent's ``allocated`` is
    always the sum over its tasks in STAGING, STARTING, RUNNING or KILLING
    (aggregates.py turns the running sums into entity fields when read).
    """
    summ = task["resources"]
    aid = task["agent_id"]
    if not summ or aid is None:
        return
    ensure_roles(st, summ, t)
    if aid in st.agents:
        st._dirty.add(("agent", aid))
    bad = task_counted(st, aid, summ, sign)
    if bad:
        note(st, INVARIANT, "agent", aid,
             f"allocated over total for {bad} after task {task['id']} started counting")


def _transition(st: ClusterState, task: Ent, old: str | None, new: str, t: str) -> None:
    """Move ``task`` to state ``new`` (already known to be allowed)."""
    task["state"] = new
    task["since"] = t
    tid = task["id"]
    was = old in ALLOCATED
    now = new in ALLOCATED
    if was != now:
        _account_task(st, task, 1.0 if now else -1.0, t)
    if new in TERMINAL or new in INACTIVE:
        mark(st, "task", tid, t)
    elif old in INACTIVE:
        unmark(st, "task", tid)
    if now:
        aid = task["agent_id"]
        ag = st.agents.get(aid) if aid is not None else None
        if ag is not None and ag["status"] == "removed":
            note(st, INVARIANT, "task", tid, f"task {new} on removed agent {aid}")
    elif new not in KNOWN_STATES:
        note(st, UNKNOWN_VALUE, "task", tid, f"unknown task state {new!r} kept as given")


def _refused(st: ClusterState, tid: str, old: str | None, new: str) -> bool:
    """True (and annotated) when ``old -> new`` must not be applied."""
    if old is None or old == new:
        if old is not None and old in TERMINAL:
            note(st, DUPLICATE, "task", tid, f"task already {old}")
            return True
        return False
    if old in TERMINAL:
        note(st, IMPOSSIBLE, "task", tid, f"terminal task {old} cannot become {new}; ignored")
        return True
    ro = RANK.get(old)
    rn = RANK.get(new)
    if ro is not None and rn is not None and rn < ro:
        note(st, STALE, "task", tid, f"{new} after {old}; ignored")
        return True
    return False


def _retarget(st: ClusterState, task: Ent, agent_id: str | None, summ: Any, t: str) -> None:
    """Change a task's agent and/or resources, keeping the accounting exact."""
    counted = task["state"] in ALLOCATED
    if counted:
        _account_task(st, task, -1.0, t)
    if agent_id is not None:
        task["agent_id"] = agent_id
    if summ is not None:
        task["resources"] = summ
    if counted:
        _account_task(st, task, 1.0, t)


def task_status_updated(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    s = pl["status"]
    tid = s["task_id"]
    state = s["state"]
    uuid = s.get("uuid")
    fid = opt_str(pl.get("framework_id"), "framework_id")
    if type(tid) is not str or type(state) is not str or (uuid is not None and type(uuid) is not str):
        raise Malformed("status.task_id, status.state must be strings, status.uuid a string or null")
    key, task = _find_task(st, fid, tid, "status update")
    if key is None:
        return
    if task is None:
        aid = opt_str(s.get("agent_id"), "status.agent_id")
        xid = opt_str(s.get("executor_id"), "status.executor_id")
        task = _new_task(st, fid, tid, t)
        task["agent_id"] = aid
        task["executor_id"] = xid
        note(st, UNKNOWN_ENTITY, "task", key,
             "status update for a task not in state (never launched here, or pruned); created from it")
    elif uuid is not None and uuid in task["recent_uuids"]:
        note(st, DUPLICATE, "task", key, f"status uuid {uuid} already applied")
        return
    old = task["state"]
    if old != state:
        state = _INTERN.get(state, state)
        if old is not None and _refused(st, key, old, state):
            return
    elif old in TERMINAL:
        note(st, DUPLICATE, "task", key, f"task already {old}")
        return
    prev = task["status"]
    if s.get("reason") == RECONCILIATION and prev is not None:
        # A reconciliation update is the master's short answer ("the task is
        # RUNNING"): it carries no labels, data or health, and must not wipe
        # the ones the executor's own updates left on the task.
        s = dict(s, labels=prev.get("labels"), data=prev.get("data"),
                 healthy=prev.get("healthy") if s.get("healthy") is None else s["healthy"])
    task["status"] = s
    if uuid is not None:
        seen = task["recent_uuids"]
        if len(seen) >= st.retention.uuids_per_task:
            del seen[0]
        seen.append(uuid)
    st._dirty.add(("task", key))
    if old != state:
        _transition(st, task, old, state, t)


def _task_info(tk: Ent) -> tuple[str, str | None, Ent, Any]:
    tid = req_str(tk["task_id"], "task.task_id")
    fid = opt_str(tk.get("framework_id"), "task.framework_id")
    aid = req_str(tk["agent_id"], "task.agent_id")
    summ = summarize_shared(tk["resources"])  # shared by equal tasks: read only
    labels = opt_dict(tk.get("labels"), "task.labels")
    info = {"name": tk.get("name"), "executor_id": opt_str(tk.get("executor_id"), "task.executor_id"),
            "labels": labels, "data": tk.get("data"), "pod": _pod_id(tk.get("pod"))}
    return tid, fid, info, (aid, summ)


def _fill(task: Ent, info: Ent) -> bool:
    changed = False
    for k, v in info.items():
        if v is not None and task[k] is None:
            task[k] = v
            changed = True
    return changed


def task_launched(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    tid, fid, info, (aid, summ) = _task_info(pl["task"])
    offer_id = opt_str(pl.get("offer_id"), "offer_id")
    key, cur = _find_task(st, fid, tid, "task.launched")
    if key is None:
        return
    if cur is not None:
        if cur["launched_at"] is not None:
            note(st, DUPLICATE, "task", key, "task already launched")
            return
        # Known from an earlier status update or task.added: add the launch facts.
        _fill(cur, info)
        cur["launched_at"] = t
        cur["offer_id"] = offer_id
        if not cur["resources"] or cur["agent_id"] is None:
            _retarget(st, cur, aid, summ, t)
        st._dirty.add(("task", key))
        return
    task = _new_task(st, fid, tid, t)
    task.update(info)
    task["agent_id"] = aid
    task["resources"] = summ
    task["offer_id"] = offer_id
    task["launched_at"] = t
    _transition(st, task, None, "TASK_STAGING", t)


def task_added(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    # TASK_ADDED from the operator API: after a master failover every running
    # task is announced again. The task's id is the key, so a re-announcement
    # lands on the same entity; its resources count once because accounting
    # follows state transitions, not announcements.
    tk = pl["task"]
    tid, fid, info, (aid, summ) = _task_info(tk)
    state = req_str(tk["state"], "task.state")
    state = _INTERN.get(state, state)
    key, cur = _find_task(st, fid, tid, "task.added")
    if key is None:
        return
    if cur is None:
        task = _new_task(st, fid, tid, t)
        task.update(info)
        task["agent_id"] = aid
        task["resources"] = summ
        _transition(st, task, None, state, t)
        return
    changed = _fill(cur, info)
    if not cur["resources"] and summ or cur["agent_id"] is None:
        _retarget(st, cur, aid, summ, t)
        changed = True
    old = cur["state"]
    if old != state and not _refused(st, key, old, state):
        _transition(st, cur, old, state, t)
        changed = True
    if changed:
        st._dirty.add(("task", key))
    elif old == state:
        note(st, DUPLICATE, "task", key, "task re-announced (task.added), already known")


def task_kill_requested(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    tid = req_str(pl["task_id"], "task_id")
    fid = opt_str(pl.get("framework_id"), "framework_id")
    reason = opt_str(pl.get("reason"), "reason")
    key, task = _find_task(st, fid, tid, "task.kill_requested")
    if key is None:
        return
    if task is None:
        note(st, UNKNOWN_ENTITY, "task", key, "kill requested for a task not in state")
        return
    task["kill_requested"] = {"at": t, "reason": reason, "actor": ev.get("actor")}
    st._dirty.add(("task", key))


# -- executors -----------------------------------------------------------------

def _executor_ref(pl: Ent) -> tuple[str, str, str, Any]:
    e = pl["executor"]
    xid = req_str(e["executor_id"], "executor.executor_id")
    aid = req_str(e["agent_id"], "executor.agent_id")
    return aid + "/" + xid, xid, aid, e.get("framework_id")


def executor_added(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    key, xid, aid, fid = _executor_ref(pl)
    cur = st.executors.get(key)
    if cur is not None and cur["status"] == "active":
        note(st, DUPLICATE, "executor", key, "executor already running")
        return
    if cur is None:
        st.executors[key] = {"id": key, "executor_id": xid, "agent_id": aid, "framework_id": fid,
                             "status": "active", "since": t}
    else:  # k8sm reuses an executor id on an agent when it starts it again
        unmark(st, "executor", key)
        cur.update(status="active", since=t, framework_id=fid)
    st._dirty.add(("executor", key))
    ag = st.agents.get(aid)
    if ag is not None and xid not in ag["executors"]:
        ag["executors"].append(xid)
        st._dirty.add(("agent", aid))


def executor_removed(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    key, xid, aid, _ = _executor_ref(pl)
    cur = st.executors.get(key)
    if cur is None:
        note(st, UNKNOWN_ENTITY, "executor", key, "removal of an executor not in state")
        return
    if cur["status"] == "removed":
        note(st, DUPLICATE, "executor", key, "executor already removed")
        return
    cur["status"] = "removed"
    cur["since"] = t
    st._dirty.add(("executor", key))
    ag = st.agents.get(aid)
    if ag is not None and xid in ag["executors"]:
        ag["executors"].remove(xid)
        st._dirty.add(("agent", aid))
    mark(st, "executor", key, t)


HANDLERS = {
    "master.elected": master_elected,
    "master.heartbeat_lost": master_heartbeat_lost,
    "master.error": master_error,
    "scheduler.leader_elected": scheduler_leader_elected,
    "cluster.snapshot_observed": cluster_snapshot_observed,
    "source.gap": source_problem,
    "source.clock_skew": source_problem,
    "framework.registered": framework_registered,
    "framework.reregistered": framework_reregistered,
    "framework.removed": framework_removed,
    "agent.added": agent_added,
    "agent.reregistered": agent_reregistered,
    "agent.removed": agent_removed,
    "agent.draining": agent_draining,
    "agent.deactivated": agent_deactivated,
    "agent.reactivated": agent_reactivated,
    "role.updated": role_updated,
    "offer.offered": offer_offered,
    "offer.rescinded": offer_rescinded,
    "offer.declined": offer_declined,
    "offer.accepted": offer_accepted,
    "offer.expired": offer_expired,
    "inverse_offer.offered": inverse_offer_offered,
    "inverse_offer.rescinded": inverse_offer_rescinded,
    "inverse_offer.accepted": inverse_offer_accepted,
    "inverse_offer.declined": inverse_offer_declined,
    "task.launched": task_launched,
    "task.status_updated": task_status_updated,
    "task.added": task_added,
    "task.kill_requested": task_kill_requested,
    "executor.added": executor_added,
    "executor.removed": executor_removed,
}
