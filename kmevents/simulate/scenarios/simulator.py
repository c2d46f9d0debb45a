"""The simulation: a seeded discrete-event model of a Kubernetes-on-Mesos cluster.

How time works. The clock advances by one random step per emitted event
(exponential, mean ``1/rate`` seconds), so ``rate`` is the number of events per
simulated second in the steady state; a burst (an agent lost with its tasks, a
master failover, a reconciliation) advances it by a few hundred microseconds
per event instead, because the source emits those together. Things that
happen *after a delay* (offer TTL, the steps of a task launch, backoffs,
retries) are timers on a heap, in simulated time; whenever no timer is due, a
spontaneous action is drawn with the weights in ``WEIGHTS``. Each live object
has at most a few timers, so the heap is bounded by the cluster's size.

One step = one timer or one action; it appends zero or more events to
``Emitter.out``. ``Simulator.step`` is all a driver calls.

The scenario families (see ``docs`` in the command's ``--help``):

    offers         allocator offers -> k8sm holds them ``offer_ttl`` (5 s) then expires and
                   declines with ``refuse_seconds`` (5 s); other frameworks accept or
                   decline with 120 s; k8sm ``compat`` declines; rescinds
    pods           RC sync creates pods; k8sm binds one pod per offer: offer.accepted,
                   task.launched (k8sm annotations), pod.scheduled; STAGING -> STARTING ->
                   RUNNING; FINISHED (batch), FAILED, KILLED (``pod-deleted``);
                   FailedScheduling with k8sm's pod backoff (1 s doubling to 60 s)
    containers     restarts inside running tasks (Error, OOMKilled), BackOff events
    agents         join; lost (FAILURE / UPDATE TASK_LOST REASON_AGENT_REMOVED / RESCIND in
                   shuffled order); partition healed (LOST -> RUNNING after re-registration);
                   maintenance (inverse offers) and drain
    evictions      node pressure (kubelet), API eviction (user), node controller after NotReady
    masters        failover: master.elected, framework.reregistered, agent.reregistered,
                   task.added replay, snapshot, k8sm reconciliation burst; k8sm leader change
    k8s objects    namespaces come and go; RCs scale and roll to a new image; services'
                   endpoints follow ready pods; NFS, Ceph rbd/cephfs, GCE PD volumes
    seed cases     kube-dns (skydns) and kube-ui in kube-system; MySQL master + replicas on rbd
    delivery       status updates re-delivered with the same uuid (Mesos retries until acked)
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect
from collections.abc import Callable
from typing import Any

from kmevents.simulate.clock import US
from kmevents.simulate.emit import K8S, K8SM
from kmevents.simulate.model import Agent, Framework, Pod, Task
from kmevents.simulate.scenarios.allocator import allocate
from kmevents.simulate.scenarios.apiserver import (
    NODE_MONITOR_GRACE,
    k8s_event,
    node_deleted,
    node_upsert,
    pod_upsert,
)
from kmevents.simulate.scenarios.containers import container_restart, task_fail
from kmevents.simulate.scenarios.frameworks import register_frameworks, spark_app
from kmevents.simulate.scenarios.k8sm_scheduler import k8sm_tick
from kmevents.simulate.scenarios.namespaces import namespace_lifecycle, namespace_upsert
from kmevents.simulate.scenarios.offers import (
    rescind,
)
from kmevents.simulate.scenarios.other_frameworks import other_task_end
from kmevents.simulate.scenarios.pods import (
    arm_rc_sync,
    delete_pod,
    gc_pod,
    pick_rc_pod,
    pod_deleted,
    rc_sync,
)
from kmevents.simulate.scenarios.replication import rc_roll, rc_scale
from kmevents.simulate.scenarios.services import (
    adhoc_service,
    endpoints_dirty,
)
from kmevents.simulate.scenarios.tasks import TERMINAL, status, unplace
from kmevents.simulate.scenarios.user_pods import batch_job, unschedulable_pod, user_delete_pod
from kmevents.simulate.scenarios.workloads import create_workloads
from kmevents.simulate.scenarios.world import (
    A_K8SM,
    A_NODECTL,
    SimConfig,
    World,
)

INITIAL_RECONCILIATION_DELAY = 15.0
IMPLICIT_RECONCILIATION_EVERY = 600.0



# Spontaneous actions and their relative weights (drawn when no timer is due).
# Per-entity happenings are weights, so they scale with the cluster (a cluster
# ten times larger emits ten times the events, with the same mix); the events
# they cause (status updates, pod upserts, endpoints) come from timers.
WEIGHTS: tuple[tuple[str, float], ...] = (
    ("allocate", 12.0),
    ("container_restart", 1.2),
    ("user_delete_pod", 0.6),
    ("task_fail", 0.4),
    ("batch_job", 1.0),
    ("other_task_end", 0.8),
    ("api_eviction", 0.12),
    ("node_pressure", 0.04),
    ("kubelet_down", 0.008),
    ("agent_lost", 0.008),
    ("agent_partition", 0.008),
    ("agent_maintenance", 0.006),
    ("rc_scale", 0.25),
    ("rc_roll", 0.03),
    ("namespace_lifecycle", 0.03),
    ("adhoc_service", 0.01),
    ("spark_app", 0.06),
    ("unschedulable_pod", 0.03),
)

# Cluster-wide happenings do not scale with the cluster: they recur on timers,
# exponentially distributed with these means (simulated seconds).
RECURRING: tuple[tuple[str, float], ...] = (
    ("master_failover", 2400.0),
    ("scheduler_failover", 1800.0),
    ("heartbeat_lost", 900.0),
)

# Rare families get a first occurrence early (seconds after bootstrap), so that
# even a short run shows every family; later ones come from WEIGHTS.
FIRST_INCIDENTS: tuple[tuple[str, float, float], ...] = (
    ("kubelet_down", 10, 40),
    ("agent_lost", 30, 90),
    ("agent_partition", 60, 150),
    ("agent_maintenance", 40, 120),
    ("master_failover", 90, 200),
    ("scheduler_failover", 120, 220),
    ("heartbeat_lost", 20, 200),
    ("node_pressure", 30, 150),
    ("api_eviction", 30, 150),
    ("rc_roll", 60, 160),
    ("rc_scale", 20, 100),
    ("namespace_lifecycle", 20, 120),
    ("adhoc_service", 20, 150),
    ("spark_app", 10, 60),
    ("unschedulable_pod", 15, 80),
)

class Simulator(World):
    """The world plus the rules that change it. Drive it with ``step()``; read ``em.out``."""

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg)
        self.actions: list[Callable[[Any], object]] = [ACTIONS[name] for name, _ in WEIGHTS]
        acc = 0.0
        self.cum: list[float] = []
        for _, w in WEIGHTS:
            acc += w
            self.cum.append(acc)
        self.total_w = acc
        self.bootstrap()

    # ------------------------------------------------------------------ plumbing

    def step(self) -> None:
        """Run one due timer, or one spontaneous action."""
        heap = self.heap
        if heap and heap[0][0] <= self.now:
            _, _, fn, args = heapq.heappop(heap)
            fn(self, *args)
            return
        before = len(self.out)
        self.actions[bisect(self.cum, self.rng.random() * self.total_w)](self)
        if len(self.out) == before:
            self.now += int(self.mean_step / 4) + 1

    # ------------------------------------------------------------------ bootstrap

    def bootstrap(self) -> None:
        cfg = self.cfg
        self.burst += 1
        t = self.tick()
        self.emit("master.elected", "SUBSCRIBED", "master", t,
                  {"master": self.master.info, "previous_master_id": None},
                  f"master.elected|{self.master.id}", None, None, self.actor_master())
        t = self.tick()
        self.emit("scheduler.leader_elected", "LEADER_ELECTED", "scheduler", t,
                  {"identity": self.k8sm_identity, "previous": None},
                  f"scheduler.leader_elected|{self.k8sm_identity}|{self.em.fmt(t)}",
                  None, None, A_K8SM, K8SM)
        register_frameworks(self, max(1, cfg.frameworks))
        for _ in range(cfg.agents):
            self.add_agent()
        for ns in ("default", "kube-system", "prod", "staging", "logging", "analytics"):
            namespace_upsert(self, ns, "Active")
        create_workloads(self)
        self.burst -= 1
        for rc in self.rcs:
            self.after(self.uniform(0.1, 3.0), rc_sync, rc)
        self.after(1.0, k8sm_tick)
        self.after(IMPLICIT_RECONCILIATION_EVERY, Simulator.implicit_reconciliation)
        hi_first = max(hi for _, _, hi in FIRST_INCIDENTS)
        for name, lo, hi in FIRST_INCIDENTS:
            self.after(self.uniform(lo, hi), Simulator.first_incident, name, 0)
        for name, mean in RECURRING:
            self.after(hi_first + self.rng.expovariate(1.0 / mean), Simulator.recur, name, mean)

    def first_incident(self, name: str, attempt: int) -> None:
        """Run a family's first occurrence; retry a little later if the world was not ready."""
        before = len(self.out)
        if name == "kubelet_down":
            acted = self.act_kubelet_down(recover_early=False)
        else:
            ACTIONS[name](self)
            acted = len(self.out) > before
        if not acted and attempt < 10:
            self.after(10.0, Simulator.first_incident, name, attempt + 1)

    def recur(self, name: str, mean: float) -> None:
        ACTIONS[name](self)
        self.after(self.rng.expovariate(1.0 / mean), Simulator.recur, name, mean)

    def add_agent(self) -> Agent:
        cfg = self.cfg
        self.agent_seq += 1
        n = self.agent_seq
        size = self.rng.random()
        cpus, mem = (8.0, 32768.0) if size < 0.3 else (16.0, 65536.0) if size < 0.85 else (32.0, 131072.0)
        rack = f"r{(n - 1) // 20 + 1:02d}"
        zone = "abc"[(n - 1) % 3]
        agent = Agent(n, f"{self.master.id}-S{n - 1}", f"agent-{n:05d}.{cfg.cluster}.local",
                      f"10.1.{n // 250}.{n % 250 + 1}", cpus, mem, 409600.0,
                      {"rack": rack, "zone": f"zone-{zone}"},
                      int(self.rng.gauss(0, 8000)), len(self.frameworks))
        self.agents[agent.id] = agent
        self.active_agents.add(agent)
        self.idle_agents.add(agent)
        t = self.tick()
        self.emit("agent.added", "AGENT_ADDED", "master", t, {"agent": agent.info},
                  f"agent.added|{agent.id}", None, None, self.actor_master())
        node_upsert(self, agent, A_NODECTL, "ADDED")
        return agent

    # ------------------------------------------------------------------ k8s objects

    # ------------------------------------------------------------------ pods

    # ------------------------------------------------------------------ offers

    # ------------------------------------------------------------------ other frameworks

    # ------------------------------------------------------------------ k8s workload actions

    # ------------------------------------------------------------------ evictions

    def _agent_with_pods(self) -> Agent | None:
        for _ in range(8):
            agent = self.active_agents.choice(self.rng)
            if agent is not None and agent.state == "active" and any(
                    t.pod is not None and t.pod.phase == "Running" for t in agent.tasks.values()):
                return agent
        return None

    def act_node_pressure(self) -> None:
        agent = self._agent_with_pods()
        if agent is None or agent.pressure or not agent.kubelet:
            return
        agent.pressure = True
        node = {"kind": "node", "name": agent.hostname}
        node_upsert(self, agent, node)
        victims = [t.pod for t in agent.tasks.values()
                   if t.pod is not None and t.pod.phase == "Running" and not t.pod.deleting]
        self.rng.shuffle(victims)
        for pod in victims[: 1 + int(self.rng.random() * 2)]:
            assert pod is not None
            self.evict_by_kubelet(pod, node)
        self.after(self.uniform(20, 120), Simulator.pressure_over, agent, agent.generation)

    def evict_by_kubelet(self, pod: Pod, node: dict[str, str]) -> None:
        msg = "The node was low on resource: memory."
        t = self.tick()
        ev = self.emit("pod.evicted", "Evicted", "apiserver", t,
                       {"pod": pod.ref, "kind": "node_pressure", "reason": "Evicted", "message": msg},
                       f"pod.evicted|{pod.uid}", pod.uid, None, node, K8S)
        pod.evicted = True
        k8s_event(self, pod, "Evicted", msg, 1, node)
        task = pod.task
        if task is not None:
            status(self, task, "TASK_FAILED", "SOURCE_EXECUTOR", None, f"pod-evicted: {msg}", cause=ev)
            unplace(self, task)
        self.running_pods.discard(pod)
        pod.phase = "Failed"
        pod.ready = False
        for c in pod.containers:
            c.ready = False
        pod_upsert(self, pod, "MODIFIED", node, ev)
        endpoints_dirty(self, pod)
        arm_rc_sync(self, pod.rc)
        self.after(self.uniform(30, 300), gc_pod, pod)

    def pressure_over(self, agent: Agent, gen: int) -> None:
        if agent.generation != gen or agent.state != "active":
            return
        agent.pressure = False
        node_upsert(self, agent, {"kind": "node", "name": agent.hostname})

    def act_api_eviction(self) -> None:
        pod = pick_rc_pod(self)
        if pod is None:
            return
        user = self.actor_user()
        t = self.tick()
        ev = self.emit("pod.evicted", "create pods/eviction", "apiserver", t,
                       {"pod": pod.ref, "kind": "api", "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting pod for node maintenance"},
                       f"pod.evicted|{pod.uid}", pod.uid, None, user, K8S)
        pod.evicted = True
        delete_pod(self, pod, user, "evicted", ev)

    def act_kubelet_down(self, recover_early: bool | None = None) -> bool:
        """k8sm's kubelet on one agent stops reporting: NotReady, then node-controller eviction."""
        agent = self._agent_with_pods()
        if agent is None or not agent.kubelet:
            return False
        agent.kubelet = False
        self.after(NODE_MONITOR_GRACE, Simulator.node_not_ready, agent, agent.generation)
        timeout = self.cfg.pod_eviction_timeout
        if recover_early is None:
            recover_early = self.rng.random() < 0.3
        if recover_early:
            self.after(self.uniform(60, NODE_MONITOR_GRACE + timeout * 0.8), Simulator.kubelet_back,
                       agent, agent.generation)
        else:
            self.after(NODE_MONITOR_GRACE + timeout + self.uniform(30, 300), Simulator.kubelet_back,
                       agent, agent.generation)
        self.after(NODE_MONITOR_GRACE + timeout, Simulator.node_controller_evict, agent, agent.generation)
        return True

    def node_not_ready(self, agent: Agent, gen: int) -> None:
        if agent.generation == gen and not agent.kubelet and agent.state == "active":
            agent.node_ready = False
            node_upsert(self, agent, A_NODECTL)

    def node_controller_evict(self, agent: Agent, gen: int) -> None:
        if agent.generation != gen or agent.kubelet or agent.state != "active":
            return
        minutes = int(self.cfg.pod_eviction_timeout // 60)
        secs = int(self.cfg.pod_eviction_timeout % 60)
        msg = f"Node {agent.hostname} NotReady for more than {minutes}m{secs}s"
        for task in list(agent.tasks.values()):
            pod = task.pod
            if pod is None or pod.deleting:
                continue
            t = self.tick()
            ev = self.emit("pod.evicted", "NodeControllerEviction", "apiserver", t,
                           {"pod": pod.ref, "kind": "node_controller",
                            "reason": "NodeControllerEviction", "message": msg},
                           f"pod.evicted|{pod.uid}", pod.uid, None, A_NODECTL, K8S)
            pod.evicted = True
            delete_pod(self, pod, A_NODECTL, "node-controller-eviction", ev)

    def kubelet_back(self, agent: Agent, gen: int) -> None:
        if agent.generation != gen or agent.kubelet or agent.state != "active":
            return
        agent.kubelet = True
        agent.node_ready = True
        node_upsert(self, agent, {"kind": "node", "name": agent.hostname})

    # ------------------------------------------------------------------ agents

    def _pick_agent(self, min_left: int = 2) -> Agent | None:
        if len(self.active_agents) <= min_left:
            return None
        for _ in range(8):
            agent = self.active_agents.choice(self.rng)
            # an agent whose kubelet is down is left to the node controller
            if agent is not None and agent.state == "active" and agent.tasks and agent.kubelet:
                return agent
        return None

    def act_agent_lost(self) -> None:
        self.lose_agent(transient=False)

    def act_agent_partition(self) -> None:
        self.lose_agent(transient=True)

    def lose_agent(self, *, transient: bool) -> None:
        """FAILURE, the tasks' TASK_LOST (REASON_AGENT_REMOVED) and RESCINDs, in no fixed order."""
        agent = self._pick_agent()
        if agent is None:
            return
        agent.state = "lost"
        agent.generation += 1
        self.active_agents.discard(agent)
        self.idle_agents.discard(agent)
        self.burst += 1
        removed: list[str] = []

        def failure() -> None:
            t = self.tick()
            removed.append(self.emit("agent.removed", "FAILURE", "master", t,
                                     {"agent_id": agent.id, "reason": "lost"},
                                     f"agent.removed|{agent.id}", None, None, self.actor_master()))

        def rescinds() -> None:
            if agent.offer is not None:
                rescind(self, agent.offer, removed[0] if removed else None)
            last = agent.last_declined
            if last is not None and self.now - last[1] < 2 * US:
                # the master's RESCIND crosses k8sm's DECLINE: k8sm's linger absorbs it
                t = self.tick()
                self.emit("offer.rescinded", "RESCIND", "master", t, {"offer_id": last[0]},
                          f"offer.rescinded|{last[0]}", last[0], None, self.actor_master())

        tasks = list(agent.tasks.values())
        split = int(self.rng.random() * (len(tasks) + 1))

        def updates(part: list[Task]) -> Callable[[], None]:
            def run() -> None:
                for task in part:
                    if task.state in TERMINAL:
                        continue
                    task.lost_from = task.state
                    status(self, task, "TASK_LOST", "SOURCE_MASTER", "REASON_AGENT_REMOVED",
                           f"Agent {agent.hostname} removed: health check timed out",
                           cause=removed[0] if removed else None, master_clock=True)
            return run

        steps: list[Callable[[], None]] = [failure, rescinds, updates(tasks[:split]),
                                           updates(tasks[split:])]
        self.rng.shuffle(steps)
        for fn in steps:
            fn()
        self.burst -= 1
        for task in tasks:
            if task.pod is not None:
                self.running_pods.discard(task.pod)
        agent.node_ready = False
        self.after(NODE_MONITOR_GRACE, Simulator.node_lost, agent, agent.generation)
        if transient:
            self.after(self.uniform(20, 90), Simulator.agent_back, agent, agent.generation)
        else:
            self.after(self.uniform(60, 300), Simulator.add_agent)
        self.after(120.0, Simulator.k8sm_forget_lost, agent, agent.generation, transient)

    def node_lost(self, agent: Agent, gen: int) -> None:
        if agent.generation == gen and agent.state == "lost":
            node_upsert(self, agent, A_NODECTL)

    def agent_back(self, agent: Agent, gen: int) -> None:
        """The partition heals: the agent re-registers and its tasks go LOST -> RUNNING."""
        if agent.generation != gen or agent.state != "lost":
            return
        agent.state = "active"
        self.active_agents.add(agent)
        if agent.offer is None:
            self.idle_agents.add(agent)
        self.burst += 1
        t = self.tick()
        self.emit("agent.reregistered", "AGENT_ADDED", "master", t, {"agent": agent.info},
                  f"agent.reregistered|{agent.id}|{self.em.fmt(t)}", None, None, self.actor_master())
        forget: list[Task] = []
        for task in list(agent.tasks.values()):
            if task.state != "TASK_LOST":
                continue
            if task.lost_from != "TASK_RUNNING":
                forget.append(task)  # it never got going: k8sm/the framework starts over
                continue
            status(self, task, "TASK_RUNNING", "SOURCE_MASTER", "REASON_AGENT_REREGISTERED",
                   "Agent re-registered", reliable=False, master_clock=True)
            pod = task.pod
            if pod is not None and pod.phase == "Running" and not pod.deleting:
                self.running_pods.add(pod)
            elif pod is None:
                self.other_tasks.add(task)
        self.burst -= 1
        for task in forget:
            self._forget_lost_task(task)
        agent.node_ready = agent.kubelet
        node_upsert(self, agent, {"kind": "node", "name": agent.hostname})

    def k8sm_forget_lost(self, agent: Agent, gen: int, transient: bool) -> None:
        """Two minutes after the loss: pods whose tasks are still LOST are deleted and replaced."""
        if agent.generation != gen or agent.state != "lost":
            return
        for task in list(agent.tasks.values()):
            if task.state == "TASK_LOST":
                self._forget_lost_task(task)
        if not transient:
            agent.state = "gone"
            self.agents.pop(agent.id, None)
            self.agent_actor.pop(agent.id, None)
            node_deleted(self, agent)

    def _forget_lost_task(self, task: Task) -> None:
        unplace(self, task)
        pod = task.pod
        if pod is not None and pod.uid in self.pods:
            pod_deleted(self, pod, A_K8SM, "task-lost")
        elif pod is None and task.framework.live:
            task.framework.want += 1

    def act_agent_maintenance(self) -> None:
        """Maintenance: inverse offers to the frameworks with tasks there, then a drain."""
        agent = self._pick_agent()
        if agent is None:
            return
        agent.state = "draining"
        self.active_agents.discard(agent)
        self.idle_agents.discard(agent)
        start = self.now + 60 * US
        fws: list[Framework] = []
        for task in agent.tasks.values():
            if task.framework not in fws:
                fws.append(task.framework)
        inverse: list[tuple[str, Framework]] = []
        for fw in fws:
            self.offer_seq += 1
            iid = f"{self.master.id}-O{self.offer_seq}"
            t = self.tick()
            self.emit("inverse_offer.offered", "INVERSE_OFFERS", "master", t,
                      {"inverse_offer": {"id": iid, "framework_id": fw.id, "agent_id": agent.id,
                                         "unavailability": {"start": self.em.fmt(start),
                                                            "duration_seconds": 3600.0}}},
                      f"inverse_offer.offered|{iid}", iid, None, self.actor_master())
            inverse.append((iid, fw))
            if fw.kind == "marathon":
                self.after(self.uniform(0.5, 5), Simulator.inverse_reply, iid, "inverse_offer.accepted", fw)
            elif fw.kind == "spark":
                self.after(self.uniform(0.5, 5), Simulator.inverse_reply, iid, "inverse_offer.declined", fw)
        self.after(60.0, Simulator.drain_start, agent, agent.generation, inverse)

    def inverse_reply(self, iid: str, type_: str, fw: Framework) -> None:
        t = self.tick()
        self.emit(type_, "ACCEPT" if type_.endswith("accepted") else "DECLINE", "scheduler", t,
                  {"inverse_offer_id": iid}, f"{type_}|{iid}", iid, None,
                  {"kind": "scheduler", "name": fw.name})

    def drain_start(self, agent: Agent, gen: int, inverse: list[tuple[str, Framework]]) -> None:
        if agent.generation != gen or agent.state != "draining":
            return
        ops = {"kind": "user", "name": "ops-bot"}
        t = self.tick()
        drain = self.emit("agent.draining", "DRAIN_AGENT", "master", t,
                          {"agent_id": agent.id, "max_grace_period_seconds": 120.0},
                          f"agent.draining|{agent.id}|{self.em.fmt(t)}", None, None, ops)
        t = self.tick()
        self.emit("agent.deactivated", "DEACTIVATE_AGENT", "master", t, {"agent_id": agent.id},
                  f"agent.deactivated|{agent.id}|{self.em.fmt(t)}", None, drain, ops)
        for iid, fw in inverse:
            if fw.kind == "k8sm":  # k8sm never answers inverse offers
                t = self.tick()
                self.emit("inverse_offer.rescinded", "RESCIND_INVERSE_OFFER", "master", t,
                          {"inverse_offer_id": iid}, f"inverse_offer.rescinded|{iid}", iid, drain,
                          self.actor_master())
        if agent.offer is not None:
            rescind(self, agent.offer, drain)
        for task in list(agent.tasks.values()):
            self.after(self.uniform(1, 30), Simulator.drain_kill, task, gen, drain)
        self.after(35.0, Simulator.drain_done, agent, gen, drain)

    def drain_kill(self, task: Task, gen: int, drain: str) -> None:
        agent = task.agent
        if agent.generation != gen or agent.state != "draining" or task.state in TERMINAL:
            return
        status(self, task, "TASK_KILLED", "SOURCE_AGENT", "REASON_AGENT_DRAINING",
               "Agent is draining", cause=drain)
        unplace(self, task)
        pod = task.pod
        if pod is not None and pod.uid in self.pods:
            pod.ready = False
            pod_deleted(self, pod, A_K8SM, "agent-drained")
        elif pod is None and task.framework.live:
            task.framework.want += 1

    def drain_done(self, agent: Agent, gen: int, drain: str) -> None:
        if agent.generation != gen or agent.state != "draining":
            return
        for task in list(agent.tasks.values()):
            self.drain_kill(task, gen, drain)
        if agent.executor:
            t = self.tick()
            self.emit("executor.removed", "EXECUTOR_REMOVED", "master", t,
                      {"executor": {"executor_id": self.executor_id,
                                    "framework_id": self.frameworks[0].id, "agent_id": agent.id}},
                      f"executor.removed|{agent.id}|{self.executor_id}", None, drain,
                      self.actor_master())
        t = self.tick()
        self.emit("agent.removed", "AGENT_REMOVED", "master", t,
                  {"agent_id": agent.id, "reason": "drained"}, f"agent.removed|{agent.id}",
                  None, drain, {"kind": "user", "name": "ops-bot"})
        agent.state = "gone"
        agent.generation += 1
        self.agents.pop(agent.id, None)
        node_deleted(self, agent)
        self.after(self.uniform(120, 600), Simulator.add_agent)

    # ------------------------------------------------------------------ masters and k8sm HA

    def act_heartbeat_lost(self) -> None:
        t = self.tick()
        self.emit("master.heartbeat_lost", "HEARTBEAT", "adapter", t,
                  {"master_id": self.master.id, "missed": 2 + int(self.rng.random() * 3),
                   "interval_seconds": 15.0},
                  f"master.heartbeat_lost|{self.master.id}|{self.em.fmt(t)}", None, None, None)

    def act_master_failover(self) -> None:
        """A new leading master: offers are gone, everyone re-registers, tasks are replayed."""
        old = self.master
        if self.rng.random() < 0.5:
            self.act_heartbeat_lost()
        self.master = self.new_master()
        self.burst += 1
        t = self.tick()
        elected = self.emit("master.elected", "SUBSCRIBED", "master", t,
                            {"master": self.master.info, "previous_master_id": old.id},
                            f"master.elected|{self.master.id}", None, None, self.actor_master())
        for offer in list(self.offers.values()):
            rescind(self, offer, elected)
        for fw in self.frameworks:
            if fw.live:
                t = self.tick()
                self.emit("framework.reregistered", "FRAMEWORK_UPDATED", "master", t,
                          {"framework": fw.info}, f"framework.reregistered|{fw.id}|{self.em.fmt(t)}",
                          None, elected, self.actor_master())
        n_tasks = 0
        digest = hashlib.sha256()
        for agent in list(self.active_agents.items):
            t = self.tick()
            self.emit("agent.reregistered", "AGENT_ADDED", "master", t, {"agent": agent.info},
                      f"agent.reregistered|{agent.id}|{self.em.fmt(t)}", None, elected,
                      self.actor_master())
            for task in agent.tasks.values():
                if task.state in TERMINAL:
                    continue
                n_tasks += 1
                digest.update(task.id.encode())
                t = self.tick()
                self.emit("task.added", "TASK_ADDED", "master", t,
                          {"task": {**task.info, "state": task.state}},
                          f"task.added|{task.id}|{self.em.fmt(t)}",
                          task.pod.uid if task.pod is not None else None, elected,
                          self.actor_master())
        t = self.tick()
        self.emit("cluster.snapshot_observed", "GET_STATE", "master", t,
                  {"agents": len(self.active_agents), "frameworks": sum(f.live for f in self.frameworks),
                   "tasks": n_tasks, "digest": digest.hexdigest()},
                  f"cluster.snapshot_observed|{self.em.fmt(t)}", None, elected, self.actor_master())
        self.burst -= 1
        self.after(INITIAL_RECONCILIATION_DELAY, Simulator.reconcile)

    def act_scheduler_failover(self) -> None:
        """k8sm's HA: another scheduler instance takes the leader key and re-registers."""
        prev = self.k8sm_identity
        self.k8sm_identity_seq += 1
        self.k8sm_identity = f"k8sm-scheduler-{(self.k8sm_identity_seq - 1) % 3 + 1}"
        if self.k8sm_identity == prev:
            self.k8sm_identity = f"k8sm-scheduler-{self.k8sm_identity_seq % 3 + 1}"
        self.burst += 1
        t = self.tick()
        led = self.emit("scheduler.leader_elected", "LEADER_ELECTED", "scheduler", t,
                        {"identity": self.k8sm_identity, "previous": prev},
                        f"scheduler.leader_elected|{self.k8sm_identity}|{self.em.fmt(t)}",
                        None, None, A_K8SM, K8SM)
        fw = self.frameworks[0]
        for offer in list(self.k8sm_offers.items):
            rescind(self, offer, led)
        t = self.tick()
        self.emit("framework.reregistered", "SUBSCRIBED", "master", t, {"framework": fw.info},
                  f"framework.reregistered|{fw.id}|{self.em.fmt(t)}", None, led, self.actor_master())
        self.burst -= 1
        self.after(INITIAL_RECONCILIATION_DELAY, Simulator.reconcile)

    def reconcile(self) -> None:
        """Explicit reconciliation: the master answers with each k8sm task's latest state."""
        self.burst += 1
        for task in list(self.frameworks[0].tasks.values()):
            if task.state in TERMINAL:
                continue
            status(self, task, task.state, "SOURCE_MASTER", "REASON_RECONCILIATION",
                   "Reconciliation: Latest task state", reliable=False, master_clock=True)
        self.burst -= 1

    def implicit_reconciliation(self) -> None:
        self.after(IMPLICIT_RECONCILIATION_EVERY, Simulator.implicit_reconciliation)
        self.reconcile()


ACTIONS: dict[str, Callable[[Any], object]] = {
    "allocate": allocate,
    "container_restart": container_restart,
    "user_delete_pod": user_delete_pod,
    "task_fail": task_fail,
    "batch_job": batch_job,
    "other_task_end": other_task_end,
    "api_eviction": Simulator.act_api_eviction,
    "node_pressure": Simulator.act_node_pressure,
    "kubelet_down": Simulator.act_kubelet_down,
    "agent_lost": Simulator.act_agent_lost,
    "agent_partition": Simulator.act_agent_partition,
    "agent_maintenance": Simulator.act_agent_maintenance,
    "rc_scale": rc_scale,
    "rc_roll": rc_roll,
    "namespace_lifecycle": namespace_lifecycle,
    "adhoc_service": adhoc_service,
    "spark_app": spark_app,
    "unschedulable_pod": unschedulable_pod,
    "master_failover": Simulator.act_master_failover,
    "scheduler_failover": Simulator.act_scheduler_failover,
    "heartbeat_lost": Simulator.act_heartbeat_lost,
}
"""Every action by the name ``WEIGHTS``, ``RECURRING`` and ``FIRST_INCIDENTS`` give it."""
