"""Maintenance: inverse offers, then the agent is drained and removed.

An operator schedules an agent's maintenance (``agent_maintenance``): it
stops taking offers, and each framework with tasks there gets an inverse
offer for an hour's unavailability a minute from now; Marathon accepts,
Spark declines, k8sm never answers (the master rescinds its inverse offer at
the drain). A minute later the drain: ``agent.draining`` and
``agent.deactivated`` by ops, the outstanding offer rescinded, every task
killed (REASON_AGENT_DRAINING) within 30 s and its pod deleted; after 35 s
k8sm's executor is removed, then the agent, and a fresh agent joins later.
"""

from __future__ import annotations

from kmevents.simulate.clock import US
from kmevents.simulate.model import Agent, Framework, Task
from kmevents.simulate.scenarios.agents import add_agent, pick_agent
from kmevents.simulate.scenarios.apiserver import node_deleted
from kmevents.simulate.scenarios.offers import rescind
from kmevents.simulate.scenarios.pods import pod_deleted
from kmevents.simulate.scenarios.tasks import TERMINAL, status, unplace
from kmevents.simulate.scenarios.world import A_K8SM, World


def agent_maintenance(w: World) -> None:
    """Maintenance: inverse offers to the frameworks with tasks there, then a drain."""
    agent = pick_agent(w)
    if agent is None:
        return
    agent.state = "draining"
    w.active_agents.discard(agent)
    w.idle_agents.discard(agent)
    start = w.now + 60 * US
    fws: list[Framework] = []
    for task in agent.tasks.values():
        if task.framework not in fws:
            fws.append(task.framework)
    inverse: list[tuple[str, Framework]] = []
    for fw in fws:
        w.offer_seq += 1
        iid = f"{w.master.id}-O{w.offer_seq}"
        t = w.tick()
        w.emit("inverse_offer.offered", "INVERSE_OFFERS", "master", t,
               {"inverse_offer": {"id": iid, "framework_id": fw.id, "agent_id": agent.id,
                                  "unavailability": {"start": w.em.fmt(start),
                                                     "duration_seconds": 3600.0}}},
               f"inverse_offer.offered|{iid}", iid, None, w.actor_master())
        inverse.append((iid, fw))
        if fw.kind == "marathon":
            w.after(w.uniform(0.5, 5), inverse_reply, iid, "inverse_offer.accepted", fw)
        elif fw.kind == "spark":
            w.after(w.uniform(0.5, 5), inverse_reply, iid, "inverse_offer.declined", fw)
    w.after(60.0, drain_start, agent, agent.generation, inverse)


def inverse_reply(w: World, iid: str, type_: str, fw: Framework) -> None:
    t = w.tick()
    w.emit(type_, "ACCEPT" if type_.endswith("accepted") else "DECLINE", "scheduler", t,
           {"inverse_offer_id": iid}, f"{type_}|{iid}", iid, None,
           {"kind": "scheduler", "name": fw.name})


def drain_start(w: World, agent: Agent, gen: int, inverse: list[tuple[str, Framework]]) -> None:
    if agent.generation != gen or agent.state != "draining":
        return
    ops = {"kind": "user", "name": "ops-bot"}
    t = w.tick()
    drain = w.emit("agent.draining", "DRAIN_AGENT", "master", t,
                   {"agent_id": agent.id, "max_grace_period_seconds": 120.0},
                   f"agent.draining|{agent.id}|{w.em.fmt(t)}", None, None, ops)
    t = w.tick()
    w.emit("agent.deactivated", "DEACTIVATE_AGENT", "master", t, {"agent_id": agent.id},
           f"agent.deactivated|{agent.id}|{w.em.fmt(t)}", None, drain, ops)
    for iid, fw in inverse:
        if fw.kind == "k8sm":  # k8sm never answers inverse offers
            t = w.tick()
            w.emit("inverse_offer.rescinded", "RESCIND_INVERSE_OFFER", "master", t,
                   {"inverse_offer_id": iid}, f"inverse_offer.rescinded|{iid}", iid, drain,
                   w.actor_master())
    if agent.offer is not None:
        rescind(w, agent.offer, drain)
    for task in list(agent.tasks.values()):
        w.after(w.uniform(1, 30), drain_kill, task, gen, drain)
    w.after(35.0, drain_done, agent, gen, drain)


def drain_kill(w: World, task: Task, gen: int, drain: str) -> None:
    agent = task.agent
    if agent.generation != gen or agent.state != "draining" or task.state in TERMINAL:
        return
    status(w, task, "TASK_KILLED", "SOURCE_AGENT", "REASON_AGENT_DRAINING",
           "Agent is draining", cause=drain)
    unplace(w, task)
    pod = task.pod
    if pod is not None and pod.uid in w.pods:
        pod.ready = False
        pod_deleted(w, pod, A_K8SM, "agent-drained")
    elif pod is None and task.framework.live:
        task.framework.want += 1


def drain_done(w: World, agent: Agent, gen: int, drain: str) -> None:
    if agent.generation != gen or agent.state != "draining":
        return
    for task in list(agent.tasks.values()):
        drain_kill(w, task, gen, drain)
    if agent.executor:
        t = w.tick()
        w.emit("executor.removed", "EXECUTOR_REMOVED", "master", t,
               {"executor": {"executor_id": w.executor_id,
                             "framework_id": w.frameworks[0].id, "agent_id": agent.id}},
               f"executor.removed|{agent.id}|{w.executor_id}", None, drain,
               w.actor_master())
    t = w.tick()
    w.emit("agent.removed", "AGENT_REMOVED", "master", t,
           {"agent_id": agent.id, "reason": "drained"}, f"agent.removed|{agent.id}",
           None, drain, {"kind": "user", "name": "ops-bot"})
    agent.state = "gone"
    agent.generation += 1
    w.agents.pop(agent.id, None)
    node_deleted(w, agent)
    w.after(w.uniform(120, 600), add_agent)
