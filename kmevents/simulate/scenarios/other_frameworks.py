"""The work of the frameworks beside k8sm: Marathon apps, Spark drivers and executors.

A framework that still wants tasks takes up to three from an offer
(``other_offer``; otherwise it declines with its 120 s filter): Marathon's
task ids are ``<app>.<uuid>``, Spark's ``<framework>-<app>-<n>``. Their tasks
go STAGING -> STARTING -> RUNNING on timers; Marathon's then report HTTP
check and health check results (a few unhealthy). Now and then a running one
ends (``other_task_end``, drawn by weight): a Marathon task fails (command
exit or memory limit) or is scaled away (KILLING, KILLED) and Marathon wants
a replacement; a Spark task finishes.
"""

from __future__ import annotations

from kmevents.simulate.model import Offer, Task
from kmevents.simulate.scenarios.offers import decline, drop_offer
from kmevents.simulate.scenarios.tasks import alive, place, status, unplace
from kmevents.simulate.scenarios.world import World


def other_offer(w: World, offer: Offer) -> None:
    """The framework launches up to three of the tasks it wants on the offer, or declines it."""
    if offer.id not in w.offers:
        return
    fw = offer.framework
    if not fw.live or fw.want <= 0 or not fw.apps:
        decline(w, offer, "no-demand", None)
        return
    cpus, mem = offer.cpus, offer.mem
    launched: list[tuple[str, str, float, float]] = []
    ids: list[str] = []
    while fw.want > 0 and len(launched) < 3:
        app, image, c, m = fw.apps[int(w.rng.random() * len(fw.apps))]
        if c > cpus or m > mem:
            break
        cpus -= c
        mem -= m
        fw.want -= 1
        fw.counter += 1
        if fw.kind == "marathon":
            tid = f"{app.strip('/').replace('/', '_')}.{w.uid()}"
        else:
            tid = f"{fw.id[-4:]}-{app}-{fw.counter}"
        launched.append((tid, app, c, m))
        ids.append(tid)
    if not launched:
        decline(w, offer, "no-demand", None)
        return
    drop_offer(w, offer)
    actor = {"kind": "scheduler", "name": fw.name}
    t = w.tick()
    acc = w.emit("offer.accepted", "ACCEPT", "scheduler", t,
                 {"offer_id": offer.id, "task_ids": ids},
                 f"offer.accepted|{offer.id}", offer.id, offer.event_id, actor)
    agent = offer.agent
    for tid, app, c, m in launched:
        labels = {"app": app} if fw.kind == "marathon" else {"spark-app": fw.name}
        task = Task(tid, app, fw, agent, None, c, m, 0.0, None, labels)
        port = agent.next_port
        agent.next_port = 31000 + (port - 31000 + 1) % 1000
        task.info = {"task_id": tid, "name": app, "framework_id": fw.id, "agent_id": agent.id,
                     "executor_id": None,
                     "resources": [{"name": "cpus", "role": "*", "scalar": c, "ranges": None},
                                   {"name": "mem", "role": "*", "scalar": m, "ranges": None},
                                   {"name": "ports", "role": "*", "scalar": None,
                                    "ranges": [[port, port]]}],
                     "labels": labels, "pod": None, "data": None}
        t = w.tick()
        task.launch_eid = w.emit("task.launched", "ACCEPT", "scheduler", t,
                                 {"offer_id": offer.id, "task": task.info},
                                 f"task.launched|{fw.id}|{tid}", None, acc, actor, version=2)
        place(task)
        w.after(w.uniform(0.5, 3.0), other_starting, task, agent.generation)


def other_starting(w: World, task: Task, gen: int) -> None:
    if not alive(task, "TASK_STAGING", gen):
        return
    status(w, task, "TASK_STARTING", "SOURCE_EXECUTOR")
    w.after(w.uniform(1.0, 10.0), other_running, task, gen)


def other_running(w: World, task: Task, gen: int) -> None:
    if not alive(task, "TASK_STARTING", gen):
        return
    status(w, task, "TASK_RUNNING", "SOURCE_EXECUTOR")
    w.other_tasks.add(task)
    if task.framework.kind == "marathon":
        w.after(w.uniform(10, 40), health_checked, task, gen)


def health_checked(w: World, task: Task, gen: int) -> None:
    if not alive(task, "TASK_RUNNING", gen):
        return
    task.healthy = w.rng.random() < 0.97
    if w.rng.random() < 0.5:
        status(w, task, "TASK_RUNNING", "SOURCE_EXECUTOR", "REASON_TASK_CHECK_STATUS_UPDATED",
               None, check={"type": "HTTP", "command": None, "tcp": None,
                            "http": {"status_code": 200 if task.healthy else 503}})
    status(w, task, "TASK_RUNNING", "SOURCE_EXECUTOR", "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
           None if task.healthy else "health check failed: HTTP 503", healthy=task.healthy)


def other_task_end(w: World) -> None:
    task = w.other_tasks.choice(w.rng)
    if task is None or task.agent.state != "active" or task.state != "TASK_RUNNING":
        return
    fw = task.framework
    r = w.rng.random()
    if fw.kind == "marathon":
        if r < 0.4:
            status(w, task, "TASK_FAILED", "SOURCE_EXECUTOR", "REASON_COMMAND_EXECUTOR_FAILED",
                   "Command exited with status 1", healthy=task.healthy)
        elif r < 0.6:
            status(w, task, "TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LIMITATION_MEMORY",
                   "Memory limit exceeded: Requested: 1024MB Maximum Used: 1024MB",
                   healthy=task.healthy)
        else:
            t = w.tick()
            kill = w.emit("task.kill_requested", "KILL", "scheduler", t,
                          {"framework_id": fw.id, "task_id": task.id, "agent_id": task.agent.id, "reason": "scale"},
                          f"task.kill_requested|{fw.id}|{task.id}|{w.em.fmt(t)}", None, None,
                          {"kind": "scheduler", "name": fw.name}, version=2)
            status(w, task, "TASK_KILLING", "SOURCE_EXECUTOR", cause=kill)
            status(w, task, "TASK_KILLED", "SOURCE_EXECUTOR", None, "Command terminated with signal Terminated",
                   cause=kill)
        fw.want += 1
    else:
        status(w, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "executor exited")
    unplace(w, task)
