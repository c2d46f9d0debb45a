"""Mesos frameworks: k8sm, Marathon and Spark register; Spark applications come and go.

k8sm is always the first framework (role ``*``, decline filter 5 s); then a
Marathon and a Spark dispatcher, then more Marathon-like frameworks (chronos,
aurora, ...) as ``--frameworks`` asks; all long-lived (a week's
``failover_timeout``). Every change to who is registered is followed by the
roles' ``role.updated``. A Spark application registers as a framework of its
own, wants a few executors (and its dispatcher a driver), and tears down
minutes later: its executors finish, its offers are rescinded, the framework
is removed (``spark_app``, drawn by weight, at most ``MAX_SPARK_APPS`` at
once). A removed framework's slot is reused by the next one, so the agents'
per-framework filter tables stay bounded.
"""

from __future__ import annotations

from kmevents.simulate.model import Framework
from kmevents.simulate.scenarios.offers import rescind
from kmevents.simulate.scenarios.tasks import GONE, status, unplace
from kmevents.simulate.scenarios.world import World

K8SM_REFUSE = 5.0
"""k8sm declines with Mesos' default filter, seconds."""
OTHER_REFUSE = 120.0
"""Marathon's ``decline_offer_duration`` default; Spark's ``rejectOfferDuration``."""
MAX_SPARK_APPS = 6
"""Concurrent Spark applications (each its own framework)."""

MARATHON_APPS: tuple[tuple[str, str, float, float], ...] = (
    ("/infra/jenkins", "jenkins:1.651", 1.0, 2048.0),
    ("/infra/chronos", "mesosphere/chronos:2.4.0", 0.5, 1024.0),
    ("/prod/payments", "registry.local/payments:3.2", 0.5, 768.0),
    ("/prod/search", "elasticsearch:2.2", 1.0, 2048.0),
    ("/ops/grafana", "grafana/grafana:2.6.0", 0.25, 256.0),
)
"""(app id, image, cpus, mem) of what a Marathon-like framework runs."""


def register_frameworks(w: World, n: int) -> None:
    """The ``n`` long-lived frameworks, k8sm first, with the work each non-k8sm one wants."""
    kinds = [("Kubernetes", "k8sm", "*", K8SM_REFUSE), ("marathon", "marathon", "marathon", OTHER_REFUSE),
             ("Spark Cluster", "spark", "spark", OTHER_REFUSE)]
    extra = ("chronos", "aurora", "jenkins", "cassandra", "kafka", "hdfs")
    for i in range(n):
        if i < len(kinds):
            name, kind, role, refuse = kinds[i]
        else:
            name, kind, role, refuse = extra[(i - 3) % len(extra)], "marathon", "marathon", OTHER_REFUSE
            if i - 3 >= len(extra):
                name = f"{name}-{i}"
        add_framework(w, name, kind, role, refuse, long_lived=True)
    for fw in w.frameworks:
        if fw.kind == "marathon":
            fw.apps = list(MARATHON_APPS)
            fw.want = max(2, w.cfg.agents * 3 // 2 // max(1, n - 2))
        elif fw.kind == "spark":
            fw.apps = [("spark-driver", "mesosphere/spark:1.6.0", 1.0, 1024.0)]
    roles_updated(w)


def add_framework(w: World, name: str, kind: str, role: str, refuse: float, *,
                  long_lived: bool) -> Framework:
    # A removed framework's slot is reused, so the per-agent filter table stays bounded.
    idx = next((f.idx for f in w.frameworks if not f.live and not f.tasks), len(w.frameworks))
    fid = f"{w.master.id}-{w.fw_counter:04d}"
    w.fw_counter += 1
    host = f"{name.split()[0].lower()}-{w.fw_counter}.{w.cfg.cluster}.local"
    fw = Framework(idx, fid, name, kind, role, host, 604800.0 if long_lived else 0.0, refuse)
    if idx == len(w.frameworks):
        w.frameworks.append(fw)
        for agent in w.agents.values():
            agent.refuse_until.append(0)
    else:
        w.frameworks[idx] = fw
        for agent in w.agents.values():
            agent.refuse_until[idx] = 0
    t = w.tick()
    w.emit("framework.registered", "SUBSCRIBED" if kind == "k8sm" else "FRAMEWORK_ADDED",
           "master", t, {"framework": fw.info}, f"framework.registered|{fid}",
           None, None, w.actor_master())
    return fw


def roles_updated(w: World) -> None:
    """One ``role.updated`` per role with the live frameworks in it."""
    roles: dict[str, list[str]] = {}
    for fw in w.frameworks:
        if fw.live:
            roles.setdefault(fw.roles[0], []).append(fw.id)
    for name, fids in roles.items():
        t = w.tick()
        w.emit("role.updated", "GET_ROLES", "master", t,
               {"role": {"name": name, "weight": 1.0, "frameworks": fids}},
               f"role.updated|{name}|{w.em.fmt(t)}", None, None, w.actor_master())


def spark_app(w: World) -> None:
    """A Spark application registers as its own framework, runs executors, then tears down."""
    if w.spark_apps >= MAX_SPARK_APPS:
        return
    w.spark_apps += 1
    name = ("Spark Pi", "PageRank", "Sessionize", "ALS training")[int(w.rng.random() * 4)]
    fw = add_framework(w, name, "spark", "spark", OTHER_REFUSE, long_lived=False)
    fw.apps = [("spark-executor", "mesosphere/spark:1.6.0", 2.0, 4096.0)]
    fw.want = 2 + int(w.rng.random() * 6)
    for dispatcher in w.frameworks:
        if dispatcher.kind == "spark" and dispatcher.apps and dispatcher.apps[0][0] == "spark-driver":
            dispatcher.want += 1  # the dispatcher launches the application's driver
            break
    roles_updated(w)
    w.after(w.uniform(60, 900), spark_app_done, fw)


def spark_app_done(w: World, fw: Framework) -> None:
    w.burst += 1
    for task in list(fw.tasks.values()):
        if task.agent.state == "active" and task.state not in GONE:
            status(w, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "executor exited")
        unplace(w, task)
    fw.live = False
    fw.want = 0
    for offer in [o for o in w.offers.values() if o.framework is fw]:
        rescind(w, offer)
    t = w.tick()
    w.emit("framework.removed", "FRAMEWORK_REMOVED", "master", t,
           {"framework_id": fw.id, "reason": "teardown"},
           f"framework.removed|{fw.id}", None, None, w.actor_master())
    w.burst -= 1
    w.spark_apps -= 1
    roles_updated(w)
