"""Mesos masters: the first election, lost heartbeats, failover, and reconciliation.

A failover (``master_failover``, recurring about every 40 simulated minutes)
is a burst, as a new leader produces it: ``master.elected`` with the previous
master's id, every outstanding offer rescinded, every live framework and
active agent re-registered, every non-terminal task replayed
(``task.added``), and a ``cluster.snapshot_observed`` with the counts and a
digest of the task ids. Half the time the operator stream's heartbeats were
missed first (``master.heartbeat_lost``, also on its own now and then).
Fifteen seconds later k8sm reconciles explicitly: the master answers with
each of k8sm's tasks' latest state (REASON_RECONCILIATION, no uuid, not
retried); k8sm also reconciles implicitly every ten minutes.
"""

from __future__ import annotations

import hashlib

from kmevents.simulate.model import Task
from kmevents.simulate.scenarios.offers import rescind
from kmevents.simulate.scenarios.tasks import TERMINAL, status
from kmevents.simulate.scenarios.world import World

INITIAL_RECONCILIATION_DELAY = 15.0
IMPLICIT_RECONCILIATION_EVERY = 600.0


def elect_first_master(w: World) -> None:
    """The leading master at the start of the simulation (no previous master)."""
    t = w.tick()
    w.emit("master.elected", "SUBSCRIBED", "master", t,
           {"master": w.master.info, "previous_master_id": None},
           f"master.elected|{w.master.id}", None, None, w.actor_master())


def heartbeat_lost(w: World) -> None:
    """The adapter missed the leading master's heartbeats (15 s apart) two to four times."""
    t = w.tick()
    w.emit("master.heartbeat_lost", "HEARTBEAT", "adapter", t,
           {"master_id": w.master.id, "missed": 2 + int(w.rng.random() * 3),
            "interval_seconds": 15.0},
           f"master.heartbeat_lost|{w.master.id}|{w.em.fmt(t)}", None, None, None)


def master_failover(w: World) -> None:
    """A new leading master: offers are gone, everyone re-registers, tasks are replayed."""
    old = w.master
    if w.rng.random() < 0.5:
        heartbeat_lost(w)
    w.master = w.new_master()
    w.burst += 1
    t = w.tick()
    elected = w.emit("master.elected", "SUBSCRIBED", "master", t,
                     {"master": w.master.info, "previous_master_id": old.id},
                     f"master.elected|{w.master.id}", None, None, w.actor_master())
    for offer in list(w.offers.values()):
        rescind(w, offer, elected)
    for fw in w.frameworks:
        if fw.live:
            t = w.tick()
            w.emit("framework.reregistered", "FRAMEWORK_UPDATED", "master", t,
                   {"framework": fw.info}, f"framework.reregistered|{fw.id}|{w.em.fmt(t)}",
                   None, elected, w.actor_master())
    n_tasks = 0
    digest = hashlib.sha256()
    for agent in list(w.active_agents.items):
        t = w.tick()
        w.emit("agent.reregistered", "AGENT_ADDED", "master", t, {"agent": agent.info},
               f"agent.reregistered|{agent.id}|{w.em.fmt(t)}", None, elected,
               w.actor_master())
        for task in agent.tasks.values():
            if task.state in TERMINAL:
                continue
            n_tasks += 1
            digest.update(task.id.encode())
            task_added(w, task, elected)
    t = w.tick()
    w.emit("cluster.snapshot_observed", "GET_STATE", "master", t,
           {"agents": len(w.active_agents), "frameworks": sum(f.live for f in w.frameworks),
            "tasks": n_tasks, "digest": digest.hexdigest()},
           f"cluster.snapshot_observed|{w.em.fmt(t)}", None, elected, w.actor_master())
    w.burst -= 1
    w.after(INITIAL_RECONCILIATION_DELAY, reconcile)


def task_added(w: World, task: Task, cause: str | None) -> None:
    """The master announces a task it knows (``TASK_ADDED``), in the state it is in."""
    t = w.tick()
    w.emit("task.added", "TASK_ADDED", "master", t,
           {"task": {**task.info, "state": task.state}},
           f"task.added|{task.framework.id}|{task.id}|{w.em.fmt(t)}",
           task.pod.uid if task.pod is not None else None, cause,
           w.actor_master(), version=2)


def reconcile(w: World) -> None:
    """Explicit reconciliation: the master answers with each k8sm task's latest state."""
    w.burst += 1
    for task in list(w.frameworks[0].tasks.values()):
        if task.state in TERMINAL:
            continue
        status(w, task, task.state, "SOURCE_MASTER", "REASON_RECONCILIATION",
               "Reconciliation: Latest task state", reliable=False, master_clock=True)
    w.burst -= 1


def implicit_reconciliation(w: World) -> None:
    """k8sm's periodic implicit reconciliation, every ``IMPLICIT_RECONCILIATION_EVERY`` s."""
    w.after(IMPLICIT_RECONCILIATION_EVERY, implicit_reconciliation)
    reconcile(w)
