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
from kmevents.simulate.model import RC, Agent, Container, Framework, Offer, Pod, Task
from kmevents.simulate.scenarios.apiserver import (
    NODE_MONITOR_GRACE,
    k8s_event,
    node_deleted,
    node_upsert,
    pod_upsert,
)
from kmevents.simulate.scenarios.offers import (
    OFFER_TTL,
    decline,
    drop_offer,
    offer_expired,
    rescind,
)
from kmevents.simulate.scenarios.services import (
    adhoc_service,
    create_service,
    endpoints_dirty,
    next_portal_ip,
)
from kmevents.simulate.scenarios.tasks import GONE, TERMINAL, alive, place, status, unplace
from kmevents.simulate.scenarios.world import (
    A_K8SM,
    A_NODECTL,
    A_NSCTL,
    A_PODGC,
    A_RCM,
    SimConfig,
    World,
    b64,
)

K8SM_REFUSE = 5.0
OTHER_REFUSE = 120.0  # Marathon's decline_offer_duration default; Spark's rejectOfferDuration
POD_BACKOFF_INITIAL = 1.0
POD_BACKOFF_MAX = 60.0
INITIAL_RECONCILIATION_DELAY = 15.0
IMPLICIT_RECONCILIATION_EVERY = 600.0
MAX_SPARK_APPS = 6  # concurrent Spark applications (each its own framework)



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

# Application RC templates: (name, namespace, image, cpus, mem, volume kind, service port).
APP_TEMPLATES: tuple[tuple[str, str, str, float, float, str | None, int | None], ...] = (
    ("frontend", "prod", "nginx:1.9.9", 0.25, 256.0, "nfs", 80),
    ("api", "prod", "registry.local/shop/api:1.4.{tag}", 0.5, 512.0, None, 8080),
    ("worker", "prod", "registry.local/shop/worker:1.4.{tag}", 1.0, 1024.0, None, None),
    ("redis", "prod", "redis:3.0.{tag}", 0.5, 1024.0, "emptyDir", 6379),
    ("logstash", "logging", "logstash:2.1.{tag}", 0.5, 1024.0, "cephfs", 5044),
    ("reports", "analytics", "registry.local/bi/reports:0.{tag}", 0.5, 768.0, "gcePersistentDisk", 8000),
    ("memcached", "prod", "memcached:1.4.{tag}", 0.25, 512.0, None, 11211),
    ("staging-web", "staging", "nginx:1.9.{tag}", 0.1, 128.0, None, 80),
)

MARATHON_APPS: tuple[tuple[str, str, float, float], ...] = (
    ("/infra/jenkins", "jenkins:1.651", 1.0, 2048.0),
    ("/infra/chronos", "mesosphere/chronos:2.4.0", 0.5, 1024.0),
    ("/prod/payments", "registry.local/payments:3.2", 0.5, 768.0),
    ("/prod/search", "elasticsearch:2.2", 1.0, 2048.0),
    ("/ops/grafana", "grafana/grafana:2.6.0", 0.25, 256.0),
)

BATCH_JOBS: tuple[tuple[str, str, str, float, float], ...] = (
    ("default", "backup", "registry.local/ops/backup:2.1", 0.5, 512.0),
    ("analytics", "nightly-report", "registry.local/bi/report-job:0.9", 1.0, 2048.0),
    ("default", "db-migrate", "registry.local/shop/migrate:1.4", 0.25, 256.0),
    ("analytics", "etl", "registry.local/bi/etl:3.0", 2.0, 4096.0),
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
        self._register_frameworks(max(1, cfg.frameworks))
        for _ in range(cfg.agents):
            self.add_agent()
        for ns in ("default", "kube-system", "prod", "staging", "logging", "analytics"):
            self.namespace_upsert(ns, "Active")
        self._create_workloads()
        self.burst -= 1
        for rc in self.rcs:
            self.after(self.uniform(0.1, 3.0), Simulator.rc_sync, rc)
        self.after(1.0, Simulator.k8sm_tick)
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

    def _register_frameworks(self, n: int) -> None:
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
            self._add_framework(name, kind, role, refuse, long_lived=True)
        for fw in self.frameworks:
            if fw.kind == "marathon":
                fw.apps = list(MARATHON_APPS)
                fw.want = max(2, self.cfg.agents * 3 // 2 // max(1, n - 2))
            elif fw.kind == "spark":
                fw.apps = [("spark-driver", "mesosphere/spark:1.6.0", 1.0, 1024.0)]
        self._roles_updated()

    def _add_framework(self, name: str, kind: str, role: str, refuse: float, *,
                       long_lived: bool) -> Framework:
        # A removed framework's slot is reused, so the per-agent filter table stays bounded.
        idx = next((f.idx for f in self.frameworks if not f.live and not f.tasks), len(self.frameworks))
        fid = f"{self.master.id}-{self.fw_counter:04d}"
        self.fw_counter += 1
        host = f"{name.split()[0].lower()}-{self.fw_counter}.{self.cfg.cluster}.local"
        fw = Framework(idx, fid, name, kind, role, host, 604800.0 if long_lived else 0.0, refuse)
        if idx == len(self.frameworks):
            self.frameworks.append(fw)
            for agent in self.agents.values():
                agent.refuse_until.append(0)
        else:
            self.frameworks[idx] = fw
            for agent in self.agents.values():
                agent.refuse_until[idx] = 0
        t = self.tick()
        self.emit("framework.registered", "SUBSCRIBED" if kind == "k8sm" else "FRAMEWORK_ADDED",
                  "master", t, {"framework": fw.info}, f"framework.registered|{fid}",
                  None, None, self.actor_master())
        return fw

    def _roles_updated(self) -> None:
        roles: dict[str, list[str]] = {}
        for fw in self.frameworks:
            if fw.live:
                roles.setdefault(fw.roles[0], []).append(fw.id)
        for name, fids in roles.items():
            t = self.tick()
            self.emit("role.updated", "GET_ROLES", "master", t,
                      {"role": {"name": name, "weight": 1.0, "frameworks": fids}},
                      f"role.updated|{name}|{self.em.fmt(t)}", None, None, self.actor_master())

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

    def _create_workloads(self) -> None:
        cfg = self.cfg
        # The seed's own cases: kube-dns (skydns) and kube-ui in kube-system.
        dns = self.create_rc("kube-system", "kube-dns-v9", 1,
                             [("etcd", "gcr.io/google_containers/etcd:2.0.9"),
                              ("kube2sky", "gcr.io/google_containers/kube2sky:1.11"),
                              ("skydns", "gcr.io/google_containers/skydns:2015-10-13-8c72f8c"),
                              ("healthz", "gcr.io/google_containers/exechealthz:1.0")],
                             [{"name": "etcd-storage", "kind": "emptyDir", "source": {"medium": ""}}],
                             0.4, 200.0, system=True,
                             labels={"k8s-app": "kube-dns", "version": "v9",
                                     "kubernetes.io/cluster-service": "true"})
        create_service(self, "kube-system", "kube-dns", [dns], "10.10.10.10",
                       [{"name": "dns", "port": 53, "protocol": "UDP", "target_port": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "target_port": 53}])
        ui = self.create_rc("kube-system", "kube-ui-v4", 1,
                            [("kube-ui", "gcr.io/google_containers/kube-ui:v4")], [], 0.1, 50.0,
                            system=True,
                            labels={"k8s-app": "kube-ui", "version": "v4",
                                    "kubernetes.io/cluster-service": "true"})
        create_service(self, "kube-system", "kube-ui", [ui], "10.10.10.11",
                       [{"name": "http", "port": 80, "protocol": "TCP", "target_port": 8080}])
        # MySQL master and replicas, each on its own Ceph rbd image.
        self.namespace_upsert("mysql", "Active")
        master = self.create_rc("mysql", "mysql-master", 1, [("mysql", "mysql:5.6")],
                                [self._rbd("mysql-master")], 2.0, 4096.0, system=True,
                                labels={"app": "mysql", "role": "master"})
        create_service(self, "mysql", "mysql-master", [master], "10.10.10.12",
                       [{"name": "mysql", "port": 3306, "protocol": "TCP", "target_port": 3306}])
        replicas = []
        for i in range(2):
            rep = self.create_rc("mysql", f"mysql-replica-{i}", 1, [("mysql", "mysql:5.6")],
                                 [self._rbd(f"mysql-replica-{i}")], 1.0, 4096.0, system=True,
                                 labels={"app": "mysql", "role": "replica", "replica": str(i)})
            replicas.append(rep)
        create_service(self, "mysql", "mysql-replicas", replicas, "10.10.10.13",
                       [{"name": "mysql", "port": 3306, "protocol": "TCP", "target_port": 3306}],
                       selector={"app": "mysql", "role": "replica"})
        # Application RCs sized to the target pod count (leaving ~10% for batch jobs).
        budget = max(len(APP_TEMPLATES), int(cfg.target_pods * 0.9) - 5)
        n_rcs = max(len(APP_TEMPLATES), budget // 40)
        per = max(1, budget // n_rcs)
        for i in range(n_rcs):
            name, ns, image, cpus, mem, vol, port = APP_TEMPLATES[i % len(APP_TEMPLATES)]
            if i >= len(APP_TEMPLATES):
                name = f"{name}-{i // len(APP_TEMPLATES) + 1}"
            replicas_n = max(1, int(per * self.uniform(0.5, 1.5)))
            volumes = [self._volume(vol, name)] if vol else []
            rc = self.create_rc(ns, name, replicas_n, [(name.split("-")[0], image.format(tag=1))],
                                volumes, cpus, mem, system=False)
            rc.image = image
            self.app_rcs.append(rc)
            if port:
                create_service(self, ns, name, [rc], next_portal_ip(self),
                               [{"name": "http" if port in (80, 8080, 8000) else "tcp",
                                 "port": port, "protocol": "TCP", "target_port": port}])

    def _rbd(self, image: str) -> dict[str, Any]:
        c = self.cfg.cluster
        return {"name": f"{image}-data", "kind": "rbd",
                "source": {"monitors": [f"10.0.2.{i}:6789" for i in (11, 12, 13)], "pool": "kube",
                           "image": image, "user": "kube", "secretRef": {"name": "ceph-secret"},
                           "fsType": "ext4", "readOnly": False, "cluster": c}}

    def _volume(self, kind: str, name: str) -> dict[str, Any]:
        if kind == "nfs":
            return {"name": "static", "kind": "nfs",
                    "source": {"server": f"nfs.{self.cfg.cluster}.local", "path": "/exports/www",
                               "readOnly": True}}
        if kind == "cephfs":
            return {"name": "spool", "kind": "cephfs",
                    "source": {"monitors": [f"10.0.2.{i}:6789" for i in (11, 12, 13)],
                               "path": f"/logs/{name}", "user": "kube",
                               "secretRef": {"name": "ceph-secret"}, "readOnly": False}}
        if kind == "gcePersistentDisk":
            return {"name": "data", "kind": "gcePersistentDisk",
                    "source": {"pdName": f"{name}-data", "fsType": "ext4", "partition": 0,
                               "readOnly": True}}
        return {"name": "scratch", "kind": "emptyDir", "source": {"medium": ""}}

    # ------------------------------------------------------------------ k8s objects

    def namespace_upsert(self, name: str, phase: str) -> None:
        labels = {"name": name}
        self.namespaces[name] = {"name": name, "phase": phase, "labels": labels}
        t = self.tick()
        self.emit("namespace.upserted", "ADDED" if phase == "Active" else "MODIFIED", "apiserver", t,
                  {"namespace": {"name": name, "phase": phase, "labels": labels}},
                  f"namespace.upserted|{name}|{self.em.fmt(t)}", None, None,
                  self.actor_user() if phase == "Active" else A_NSCTL, K8S)

    def namespace_deleted(self, name: str) -> None:
        self.namespaces.pop(name, None)
        t = self.tick()
        self.emit("namespace.deleted", "DELETED", "apiserver", t, {"name": name},
                  f"namespace.deleted|{name}|{self.em.fmt(t)}", None, None, A_NSCTL, K8S)

    def create_rc(self, ns: str, name: str, replicas: int, containers: list[tuple[str, str]],
                  volumes: list[dict[str, Any]], cpus: float, mem: float, *, system: bool,
                  labels: dict[str, str] | None = None) -> RC:
        rc = RC(ns, name, replicas, containers, volumes, cpus, mem, system,
                max_replicas=max(2, replicas * 2))
        if labels is not None:
            rc.labels = labels
            rc.selector = {k: v for k, v in labels.items() if k != "kubernetes.io/cluster-service"}
        self.rcs.append(rc)
        self.rc_upsert(rc, "ADDED", self.actor_user())
        return rc

    def rc_upsert(self, rc: RC, raw: str, actor: dict[str, str]) -> None:
        t = self.tick()
        self.emit("replication_controller.upserted", raw, "apiserver", t,
                  {"rc": {"namespace": rc.ns, "name": rc.name, "replicas": rc.replicas,
                          "selector": rc.selector, "template_image": rc.containers[0][1]}},
                  f"replication_controller.upserted|{rc.ns}/{rc.name}|{self.em.fmt(t)}",
                  None, None, actor, K8S)

    # ------------------------------------------------------------------ pods

    def create_pod(self, ns: str, name: str, labels: dict[str, str], annotations: dict[str, str],
                   volumes: list[dict[str, Any]], containers: list[tuple[str, str]], rc: RC | None,
                   cpus: float, mem: float, *, batch: bool, actor: dict[str, str]) -> Pod:
        pod = Pod(ns, name, self.uid(), labels, annotations, volumes,
                  [Container(n, i) for n, i in containers], rc, cpus, mem, batch)
        self.pods[pod.uid] = pod
        if rc is not None:
            rc.pods[pod.uid] = pod
        pod.created_eid = pod_upsert(self, pod, "ADDED", actor)
        self.pending.append(pod)
        return pod

    def rc_live(self, rc: RC) -> list[Pod]:
        return [p for p in rc.pods.values()
                if not p.deleting and p.phase not in ("Failed", "Succeeded")]

    def rc_sync(self, rc: RC) -> None:
        rc.sync_armed = False
        if rc.deleted:
            return
        live = self.rc_live(rc)
        missing = rc.replicas - len(live)
        if missing > 0:
            created_by = f"ReplicationController/{rc.ns}/{rc.name}"
            for _ in range(missing):
                self.create_pod(rc.ns, f"{rc.name}-{self.suffix()}", rc.labels,
                                {"kubernetes.io/created-by": created_by}, rc.volumes,
                                rc.containers, rc, rc.cpus, rc.mem, batch=False, actor=A_RCM)
        elif missing < 0:
            # Scale down: pending pods first, then the newest.
            live.sort(key=lambda p: (p.task is not None, -len(p.name)))
            for pod in live[:-missing]:
                self.delete_pod(pod, A_RCM, None)

    def arm_rc_sync(self, rc: RC | None, delay: float = 0.5) -> None:
        if rc is not None and not rc.sync_armed:
            rc.sync_armed = True
            self.after(self.uniform(delay * 0.5, delay * 2), Simulator.rc_sync, rc)

    def requeue(self, pod: Pod) -> None:
        if pod.uid in self.pods and not pod.deleting and pod.task is None:
            self.pending.append(pod)

    def k8sm_tick(self) -> None:
        """k8sm's scheduling loop: one pod per offer, FailedScheduling + backoff when nothing fits."""
        self.after(1.0, Simulator.k8sm_tick)
        pending = self.pending
        budget = max(4, len(self.k8sm_offers) // 2)
        while pending and budget > 0:
            pod = pending.popleft()
            if pod.deleting or pod.task is not None or pod.uid not in self.pods:
                continue
            budget -= 1
            offer = self.find_offer(pod)
            if offer is not None:
                self.launch_pod(pod, offer)
            else:
                pod.attempts += 1
                msg = (f"pod {pod.ns}/{pod.name}: no offers with enough resources "
                       f"(cpus {pod.cpus:g}, mem {pod.mem:g} MB)")
                if not self.k8sm_offers:
                    msg = f"pod {pod.ns}/{pod.name}: no offers available"
                k8s_event(self, pod, "FailedScheduling", msg, pod.attempts)
                backoff = min(POD_BACKOFF_MAX, POD_BACKOFF_INITIAL * 2 ** (pod.attempts - 1))
                self.after(backoff, Simulator.requeue, pod)

    def find_offer(self, pod: Pod) -> Offer | None:
        items = self.k8sm_offers.items
        n = len(items)
        if not n:
            return None
        rng = self.rng
        for _ in range(min(n, 24)):
            offer = items[int(rng.random() * n)]
            if offer.cpus >= pod.cpus and offer.mem >= pod.mem:
                return offer
        return None

    def launch_pod(self, pod: Pod, offer: Offer) -> None:
        agent = offer.agent
        fw = self.frameworks[0]
        drop_offer(self, offer)
        task_id = f"pod.{self.uid()}"
        t = self.tick()
        acc = self.emit("offer.accepted", "ACCEPT", "scheduler", t,
                        {"offer_id": offer.id, "task_ids": [task_id]},
                        f"offer.accepted|{offer.id}", offer.id, offer.event_id, A_K8SM, K8SM)
        labels = {"k8s.mesosphere.io/namespace": pod.ns, "k8s.mesosphere.io/name": pod.name}
        task = Task(task_id, f"{pod.name}.{pod.ns}.pod", fw, agent, pod, pod.cpus, pod.mem, 0.0,
                    self.executor_id, labels)
        task.info = {
            "task_id": task_id, "name": task.name, "framework_id": fw.id, "agent_id": agent.id,
            "executor_id": self.executor_id,
            "resources": [{"name": "cpus", "role": "*", "scalar": pod.cpus, "ranges": None},
                          {"name": "mem", "role": "*", "scalar": pod.mem, "ranges": None}],
            "labels": labels, "pod": pod.ref,
            "data": b64(f'{{"kind":"Pod","namespace":"{pod.ns}","name":"{pod.name}"}}'.encode()),
        }
        t = self.tick()
        task.launch_eid = self.emit("task.launched", "ACCEPT", "scheduler", t,
                                    {"offer_id": offer.id, "task": task.info},
                                    f"task.launched|{task_id}", pod.uid, acc, A_K8SM, K8SM)
        place(task)
        if not agent.executor:
            agent.executor = True
            t = self.tick()
            self.emit("executor.added", "EXECUTOR_ADDED", "master", t,
                      {"executor": {"executor_id": self.executor_id, "framework_id": fw.id,
                                    "agent_id": agent.id}},
                      f"executor.added|{agent.id}|{self.executor_id}", None, task.launch_eid,
                      self.actor_master())
        pod.task = task
        pod.node = agent
        pod.annotations = {**pod.annotations,
                           "k8s.mesosphere.io/taskId": task_id,
                           "k8s.mesosphere.io/slaveId": agent.id,
                           "k8s.mesosphere.io/offerId": offer.id,
                           "k8s.mesosphere.io/bindingHost": agent.hostname,
                           "k8s.mesosphere.io/executorId": self.executor_id}
        t = self.tick()
        bind = self.emit("pod.scheduled", "BINDING", "scheduler", t,
                         {"pod": pod.ref, "host": agent.hostname, "task_id": task_id,
                          "agent_id": agent.id, "offer_id": offer.id},
                         f"pod.scheduled|{pod.uid}|{task_id}", pod.uid, task.launch_eid, A_K8SM, K8SM)
        pod_upsert(self, pod, "MODIFIED", A_K8SM, bind)
        self.after(self.uniform(0.05, 0.5), Simulator.k8sm_staging, task, agent.generation)

    def k8sm_staging(self, task: Task, gen: int) -> None:
        if not alive(task, "TASK_STAGING", gen) or task.pod is None or task.pod.deleting:
            return
        status(self, task, "TASK_STAGING", "SOURCE_AGENT")
        task.state = "TASK_STAGING"
        self.after(self.uniform(0.3, 2.0), Simulator.k8sm_starting, task, gen)

    def k8sm_starting(self, task: Task, gen: int) -> None:
        pod = task.pod
        if not alive(task, "TASK_STAGING", gen) or pod is None or pod.deleting:
            return
        status(self, task, "TASK_STARTING", "SOURCE_EXECUTOR")
        delay = self.uniform(1.0, 8.0)
        if any(v["kind"] in ("rbd", "cephfs") for v in pod.volumes) and self.rng.random() < 0.08:
            k8s_event(self, pod, "FailedMount",
                      f"Unable to mount volumes for pod \"{pod.name}_{pod.ns}\": "
                      f"rbd: map failed exit status 1", 1,
                      {"kind": "node", "name": task.agent.hostname})
            delay += 20.0
        self.after(delay, Simulator.k8sm_running, task, gen)

    def k8sm_running(self, task: Task, gen: int) -> None:
        pod = task.pod
        if not alive(task, "TASK_STARTING", gen) or pod is None or pod.deleting:
            return
        if self.rng.random() < 0.02:
            image = pod.containers[0].image
            status(self, task, "TASK_FAILED", "SOURCE_EXECUTOR", "REASON_CONTAINER_LAUNCH_FAILED",
                   f"Failed to pull image \"{image}\": image pull failed")
            unplace(self, task)
            self.pod_failed(pod, "task-failed")
            return
        agent = task.agent
        pod.ip = f"10.{16 + agent.idx // 256}.{agent.idx % 256}.{agent.pod_ip_next}"
        pod.addr = {"ip": pod.ip, "pod": pod.ref}
        agent.pod_ip_next = agent.pod_ip_next % 250 + 2
        data = b64(f'{{"phase":"Running","podIP":"{pod.ip}"}}'.encode())
        status(self, task, "TASK_RUNNING", "SOURCE_EXECUTOR", data=data)
        pod.phase = "Running"
        pod.ready = True
        for c in pod.containers:
            c.ready = True
        pod_upsert(self, pod, "MODIFIED", {"kind": "node", "name": agent.hostname})
        self.running_pods.add(pod)
        endpoints_dirty(self, pod)
        if pod.batch:
            self.after(self.uniform(20, 600), Simulator.batch_done, task, gen)

    def batch_done(self, task: Task, gen: int) -> None:
        pod = task.pod
        if not alive(task, "TASK_RUNNING", gen) or pod is None or pod.deleting:
            return
        ok = self.rng.random() < 0.85
        for c in pod.containers:
            c.ready = False
            c.last = {"reason": "Completed" if ok else "Error", "exit_code": 0 if ok else 1}
        if ok:
            status(self, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "pod-finished")
        else:
            status(self, task, "TASK_FAILED", "SOURCE_EXECUTOR", None, "pod-failed: exit code 1")
        unplace(self, task)
        self.running_pods.discard(pod)
        pod.phase = "Succeeded" if ok else "Failed"
        pod.ready = False
        pod_upsert(self, pod, "MODIFIED", {"kind": "node", "name": task.agent.hostname})
        self.after(self.uniform(60, 600), Simulator.gc_pod, pod)

    def gc_pod(self, pod: Pod) -> None:
        if pod.uid in self.pods and not pod.deleting:
            self.pod_deleted(pod, A_PODGC, "garbage-collected")

    def pod_failed(self, pod: Pod, reason: str) -> None:
        """A pod whose task died: Failed in k8s, deleted by k8sm, replaced by its RC."""
        self.running_pods.discard(pod)
        pod.phase = "Failed"
        pod.ready = False
        for c in pod.containers:
            c.ready = False
        pod_upsert(self, pod, "MODIFIED", A_K8SM)
        endpoints_dirty(self, pod)
        if pod.rc is not None:
            self.arm_rc_sync(pod.rc)
            self.after(self.uniform(0.5, 5.0), Simulator.gc_failed, pod, reason)
        else:
            self.after(self.uniform(60, 600), Simulator.gc_pod, pod)

    def gc_failed(self, pod: Pod, reason: str) -> None:
        if pod.uid in self.pods and not pod.deleting:
            self.pod_deleted(pod, A_K8SM, reason)

    def delete_pod(self, pod: Pod, actor: dict[str, str], reason: str | None,
                   cause: str | None = None) -> None:
        """Delete a pod: k8sm kills its task first (``pod-deleted``), then the pod goes."""
        if pod.deleting:
            return
        pod.deleting = True
        if pod.ready:
            # graceful deletion: the terminating pod turns not-ready and leaves its endpoints
            pod.ready = False
            pod_upsert(self, pod, "MODIFIED", actor, cause)
            endpoints_dirty(self, pod)
        task = pod.task
        if task is not None and task.state not in TERMINAL and task.state != "TASK_LOST" \
                and task.agent.state in ("active", "draining"):
            t = self.tick()
            kill = self.emit("task.kill_requested", "KILL", "scheduler", t,
                             {"task_id": task.id, "agent_id": task.agent.id, "reason": "pod-deleted"},
                             f"task.kill_requested|{task.id}|{self.em.fmt(t)}", pod.uid,
                             cause, A_K8SM, K8SM)
            self.after(self.uniform(0.2, 3.0), Simulator.pod_killed, pod, task, kill, actor, reason,
                       task.agent.generation)
        else:
            self.pod_deleted(pod, actor, reason, cause)

    def pod_killed(self, pod: Pod, task: Task, kill: str, actor: dict[str, str],
                   reason: str | None, gen: int) -> None:
        if task.agent.generation == gen and task.state not in TERMINAL and task.state != "TASK_LOST":
            status(self, task, "TASK_KILLED", "SOURCE_EXECUTOR", None, "pod-deleted", cause=kill)
            unplace(self, task)
        self.pod_deleted(pod, actor, reason, kill)

    def pod_deleted(self, pod: Pod, actor: dict[str, str], reason: str | None,
                    cause: str | None = None) -> None:
        if self.pods.pop(pod.uid, None) is None:
            return
        pod.deleting = True
        was_ready = pod.ready
        pod.ready = False
        self.running_pods.discard(pod)
        if pod.rc is not None:
            pod.rc.pods.pop(pod.uid, None)
        if pod.batch:
            self.batch_live -= 1
        if pod.labels.get("kmevents.sim/unschedulable"):
            self.unschedulable_live -= 1
        task = pod.task
        if task is not None and task.state in GONE:
            unplace(self, task)
        # Break the pod <-> task cycle so that reference counting frees both when they
        # are done (the GC runs rarely while generating). Nothing reads a deleted pod's task.
        pod.task = None
        t = self.tick()
        self.emit("pod.deleted", "DELETED", "apiserver", t, {"pod": pod.ref, "reason": reason},
                  f"pod.deleted|{pod.uid}", pod.uid, cause, actor, K8S)
        if was_ready:
            endpoints_dirty(self, pod)
        self.arm_rc_sync(pod.rc)

    # ------------------------------------------------------------------ offers

    def act_allocate(self) -> None:
        """The Mesos allocator offers one agent's unused resources to one framework."""
        agent = self.idle_agents.choice(self.rng)
        if agent is None:
            return
        cpus, mem, disk = agent.free()
        if cpus < 0.1 or mem < 64:
            return
        now = self.now
        refuse = agent.refuse_until
        k8sm = self.frameworks[0]
        fw = None
        if refuse[0] <= now and (self.pending or self.rng.random() < 0.55):
            fw = k8sm
        else:
            frameworks = self.frameworks
            for _ in range(3):
                cand = frameworks[int(self.rng.random() * len(frameworks))]
                if cand.live and refuse[cand.idx] <= now:
                    fw = cand
                    break
        if fw is None:
            return
        self.offer_seq += 1
        oid = f"{self.master.id}-O{self.offer_seq}"
        port = agent.next_port
        t = self.tick()
        eid = self.emit("offer.offered", "OFFERS", "master", t,
                        {"offer": {"id": oid, "framework_id": fw.id, "agent_id": agent.id,
                                   "hostname": agent.hostname, "resources": [
                                       {"name": "cpus", "role": "*", "scalar": cpus, "ranges": None},
                                       {"name": "mem", "role": "*", "scalar": mem, "ranges": None},
                                       {"name": "disk", "role": "*", "scalar": disk, "ranges": None},
                                       {"name": "ports", "role": "*", "scalar": None,
                                        "ranges": [[port, 32000]]}]}},
                        f"offer.offered|{oid}", oid, None, self.actor_master())
        offer = Offer(oid, agent, fw, cpus, mem, disk, eid, t + int(OFFER_TTL * US))
        agent.offer = offer
        self.idle_agents.discard(agent)
        self.offers[oid] = offer
        if fw is k8sm:
            if self.rng.random() < 0.03:
                self.after(self.uniform(0.01, 0.1), decline, offer, "compat", None)
            else:
                self.k8sm_offers.add(offer)
                self.after(OFFER_TTL, offer_expired, offer)
        else:
            self.after(self.uniform(0.01, 0.3), Simulator.other_offer, offer)

    # ------------------------------------------------------------------ other frameworks

    def other_offer(self, offer: Offer) -> None:
        if offer.id not in self.offers:
            return
        fw = offer.framework
        if not fw.live or fw.want <= 0 or not fw.apps:
            decline(self, offer, "no-demand", None)
            return
        cpus, mem = offer.cpus, offer.mem
        launched: list[tuple[str, str, float, float]] = []
        ids: list[str] = []
        while fw.want > 0 and len(launched) < 3:
            app, image, c, m = fw.apps[int(self.rng.random() * len(fw.apps))]
            if c > cpus or m > mem:
                break
            cpus -= c
            mem -= m
            fw.want -= 1
            fw.counter += 1
            if fw.kind == "marathon":
                tid = f"{app.strip('/').replace('/', '_')}.{self.uid()}"
            else:
                tid = f"{fw.id[-4:]}-{app}-{fw.counter}"
            launched.append((tid, app, c, m))
            ids.append(tid)
        if not launched:
            decline(self, offer, "no-demand", None)
            return
        drop_offer(self, offer)
        actor = {"kind": "scheduler", "name": fw.name}
        t = self.tick()
        acc = self.emit("offer.accepted", "ACCEPT", "scheduler", t,
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
            t = self.tick()
            task.launch_eid = self.emit("task.launched", "ACCEPT", "scheduler", t,
                                        {"offer_id": offer.id, "task": task.info},
                                        f"task.launched|{tid}", None, acc, actor)
            place(task)
            self.after(self.uniform(0.5, 3.0), Simulator.other_starting, task, agent.generation)

    def other_starting(self, task: Task, gen: int) -> None:
        if not alive(task, "TASK_STAGING", gen):
            return
        status(self, task, "TASK_STARTING", "SOURCE_EXECUTOR")
        self.after(self.uniform(1.0, 10.0), Simulator.other_running, task, gen)

    def other_running(self, task: Task, gen: int) -> None:
        if not alive(task, "TASK_STARTING", gen):
            return
        status(self, task, "TASK_RUNNING", "SOURCE_EXECUTOR")
        self.other_tasks.add(task)
        if task.framework.kind == "marathon":
            self.after(self.uniform(10, 40), Simulator.health_checked, task, gen)

    def health_checked(self, task: Task, gen: int) -> None:
        if not alive(task, "TASK_RUNNING", gen):
            return
        task.healthy = self.rng.random() < 0.97
        if self.rng.random() < 0.5:
            status(self, task, "TASK_RUNNING", "SOURCE_EXECUTOR", "REASON_TASK_CHECK_STATUS_UPDATED",
                   None, check={"type": "HTTP", "command": None, "tcp": None,
                                "http": {"status_code": 200 if task.healthy else 503}})
        status(self, task, "TASK_RUNNING", "SOURCE_EXECUTOR", "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
               None if task.healthy else "health check failed: HTTP 503", healthy=task.healthy)

    def act_other_task_end(self) -> None:
        task = self.other_tasks.choice(self.rng)
        if task is None or task.agent.state != "active" or task.state != "TASK_RUNNING":
            return
        fw = task.framework
        r = self.rng.random()
        if fw.kind == "marathon":
            if r < 0.4:
                status(self, task, "TASK_FAILED", "SOURCE_EXECUTOR", "REASON_COMMAND_EXECUTOR_FAILED",
                       "Command exited with status 1", healthy=task.healthy)
            elif r < 0.6:
                status(self, task, "TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LIMITATION_MEMORY",
                       "Memory limit exceeded: Requested: 1024MB Maximum Used: 1024MB",
                       healthy=task.healthy)
            else:
                t = self.tick()
                kill = self.emit("task.kill_requested", "KILL", "scheduler", t,
                                 {"task_id": task.id, "agent_id": task.agent.id, "reason": "scale"},
                                 f"task.kill_requested|{task.id}|{self.em.fmt(t)}", None, None,
                                 {"kind": "scheduler", "name": fw.name})
                status(self, task, "TASK_KILLING", "SOURCE_EXECUTOR", cause=kill)
                status(self, task, "TASK_KILLED", "SOURCE_EXECUTOR", None, "Command terminated with signal Terminated",
                       cause=kill)
            fw.want += 1
        else:
            status(self, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "executor exited")
        unplace(self, task)

    def act_spark_app(self) -> None:
        """A Spark application registers as its own framework, runs executors, then tears down."""
        if self.spark_apps >= MAX_SPARK_APPS:
            return
        self.spark_apps += 1
        name = ("Spark Pi", "PageRank", "Sessionize", "ALS training")[int(self.rng.random() * 4)]
        fw = self._add_framework(name, "spark", "spark", OTHER_REFUSE, long_lived=False)
        fw.apps = [("spark-executor", "mesosphere/spark:1.6.0", 2.0, 4096.0)]
        fw.want = 2 + int(self.rng.random() * 6)
        for dispatcher in self.frameworks:
            if dispatcher.kind == "spark" and dispatcher.apps and dispatcher.apps[0][0] == "spark-driver":
                dispatcher.want += 1  # the dispatcher launches the application's driver
                break
        self._roles_updated()
        self.after(self.uniform(60, 900), Simulator.spark_app_done, fw)

    def spark_app_done(self, fw: Framework) -> None:
        self.burst += 1
        for task in list(fw.tasks.values()):
            if task.agent.state == "active" and task.state not in TERMINAL and task.state != "TASK_LOST":
                status(self, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "executor exited")
            unplace(self, task)
        fw.live = False
        fw.want = 0
        for offer in [o for o in self.offers.values() if o.framework is fw]:
            rescind(self, offer)
        t = self.tick()
        self.emit("framework.removed", "FRAMEWORK_REMOVED", "master", t,
                  {"framework_id": fw.id, "reason": "teardown"},
                  f"framework.removed|{fw.id}", None, None, self.actor_master())
        self.burst -= 1
        self.spark_apps -= 1
        self._roles_updated()

    # ------------------------------------------------------------------ k8s workload actions

    def act_container_restart(self) -> None:
        pod = self.running_pods.choice(self.rng)
        if pod is None or pod.deleting or pod.task is None or pod.task.agent.state != "active":
            return
        c = pod.containers[int(self.rng.random() * len(pod.containers))]
        c.restarts += 1
        c.ready = False
        if self.rng.random() < 0.4:
            c.last = {"reason": "OOMKilled", "exit_code": 137}
        else:
            c.last = {"reason": "Error", "exit_code": (1, 2, 143, 255)[int(self.rng.random() * 4)]}
        was_ready = pod.ready
        pod.ready = False
        node = {"kind": "node", "name": pod.task.agent.hostname}
        pod_upsert(self, pod, "MODIFIED", node)
        if was_ready:
            endpoints_dirty(self, pod)
        if c.restarts > 3:
            k8s_event(self, pod, "BackOff", f"Back-off restarting failed container {c.name}",
                      c.restarts - 3, node)
        self.after(self.uniform(2, 20 * min(c.restarts, 6)), Simulator.container_back, pod, c, c.restarts)

    def container_back(self, pod: Pod, c: Container, restarts: int) -> None:
        if pod.deleting or pod.phase != "Running" or c.restarts != restarts or pod.task is None:
            return
        c.ready = True
        pod.ready = all(x.ready for x in pod.containers)
        pod_upsert(self, pod, "MODIFIED", {"kind": "node", "name": pod.task.agent.hostname})
        if pod.ready:
            endpoints_dirty(self, pod)

    def _pick_rc_pod(self) -> Pod | None:
        for _ in range(4):
            pod = self.running_pods.choice(self.rng)
            if pod is not None and pod.rc is not None and not pod.deleting:
                return pod
        return None

    def act_user_delete_pod(self) -> None:
        pod = self._pick_rc_pod()
        if pod is not None:
            self.delete_pod(pod, self.actor_user(), None)

    def act_task_fail(self) -> None:
        pod = self.running_pods.choice(self.rng)
        if pod is None or pod.deleting or pod.task is None or pod.task.agent.state != "active":
            return
        task = pod.task
        if task.state != "TASK_RUNNING":
            return
        if self.rng.random() < 0.5:
            status(self, task, "TASK_FAILED", "SOURCE_AGENT", "REASON_EXECUTOR_TERMINATED",
                   "Executor terminated")
        else:
            status(self, task, "TASK_FAILED", "SOURCE_EXECUTOR", None,
                   "pod-failed: containers exited")
        unplace(self, task)
        self.pod_failed(pod, "task-failed")

    def act_batch_job(self) -> None:
        if self.batch_live >= max(3, self.cfg.target_pods // 10):
            return
        ns, name, image, cpus, mem = BATCH_JOBS[int(self.rng.random() * len(BATCH_JOBS))]
        self.batch_live += 1
        self.create_pod(ns, f"{name}-{self.suffix()}", {"job": name}, {}, [],
                        [(name, image)], None, cpus, mem, batch=True, actor=self.actor_user())

    def act_unschedulable_pod(self) -> None:
        """Someone asks for more than any agent has: the pod stays Pending until deleted."""
        if self.unschedulable_live >= 2:
            return
        self.unschedulable_live += 1
        pod = self.create_pod("analytics", f"spark-shell-{self.suffix()}",
                              {"app": "spark-shell", "kmevents.sim/unschedulable": "true"}, {}, [],
                              [("shell", "mesosphere/spark:1.6.0")], None, 48.0, 196608.0,
                              batch=False, actor=self.actor_user())
        self.after(self.uniform(300, 1200), Simulator.give_up_pending, pod)

    def give_up_pending(self, pod: Pod) -> None:
        if pod.uid in self.pods and not pod.deleting:
            self.delete_pod(pod, self.actor_user(), None)

    def act_rc_scale(self) -> None:
        if not self.app_rcs:
            return
        rc = self.app_rcs[int(self.rng.random() * len(self.app_rcs))]
        if rc.rolling:
            return
        delta = 1 + int(self.rng.random() * 3)
        # a random walk pulled back towards the RC's original size
        drift = (rc.replicas - rc.base) / max(1, rc.base)
        if self.rng.random() < 0.5 + max(-0.4, min(0.4, drift)):
            delta = -delta
        new = min(rc.max_replicas, max(0, rc.replicas + delta))
        if new == rc.replicas:
            return
        rc.replicas = new
        self.rc_upsert(rc, "MODIFIED", self.actor_user())
        self.arm_rc_sync(rc, 0.2)

    def act_rc_roll(self) -> None:
        """A rolling update to a new image: replace the RC's pods one at a time."""
        candidates = [rc for rc in self.app_rcs if not rc.rolling and "{tag}" in rc.image]
        if not candidates:
            return
        rc = candidates[int(self.rng.random() * len(candidates))]
        rc.rolling = True
        rc.tag += 1
        name = rc.containers[0][0]
        rc.containers = [(name, rc.image.format(tag=rc.tag))] + rc.containers[1:]
        self.rc_upsert(rc, "MODIFIED", {"kind": "user", "name": "deploy-bot"})
        self.after(self.uniform(2, 6), Simulator.roll_step, rc)

    def roll_step(self, rc: RC) -> None:
        image = rc.containers[0][1]
        old = [p for p in rc.pods.values() if not p.deleting and p.containers[0].image != image]
        if not old:
            rc.rolling = False
            return
        self.delete_pod(old[0], A_RCM, None)
        self.arm_rc_sync(rc, 0.3)
        self.after(self.uniform(5, 15), Simulator.roll_step, rc)

    def act_namespace_lifecycle(self) -> None:
        self.ns_seq += 1
        ns = f"ci-{self.ns_seq}"
        self.namespace_upsert(ns, "Active")
        for _ in range(1 + int(self.rng.random() * 3)):
            self.batch_live += 1
            self.create_pod(ns, f"test-runner-{self.suffix()}", {"job": "test-runner"}, {}, [],
                            [("runner", "registry.local/ci/runner:5")], None, 0.5, 512.0,
                            batch=True, actor=self.actor_user())
        self.after(self.uniform(120, 900), Simulator.namespace_terminate, ns)

    def namespace_terminate(self, ns: str) -> None:
        self.namespace_upsert(ns, "Terminating")
        for pod in [p for p in self.pods.values() if p.ns == ns]:
            self.delete_pod(pod, A_NSCTL, "namespace-deleted")
        self.after(self.uniform(5, 20), Simulator.namespace_deleted, ns)

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
        self.arm_rc_sync(pod.rc)
        self.after(self.uniform(30, 300), Simulator.gc_pod, pod)

    def pressure_over(self, agent: Agent, gen: int) -> None:
        if agent.generation != gen or agent.state != "active":
            return
        agent.pressure = False
        node_upsert(self, agent, {"kind": "node", "name": agent.hostname})

    def act_api_eviction(self) -> None:
        pod = self._pick_rc_pod()
        if pod is None:
            return
        user = self.actor_user()
        t = self.tick()
        ev = self.emit("pod.evicted", "create pods/eviction", "apiserver", t,
                       {"pod": pod.ref, "kind": "api", "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting pod for node maintenance"},
                       f"pod.evicted|{pod.uid}", pod.uid, None, user, K8S)
        pod.evicted = True
        self.delete_pod(pod, user, "evicted", ev)

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
            self.delete_pod(pod, A_NODECTL, "node-controller-eviction", ev)

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
            self.pod_deleted(pod, A_K8SM, "task-lost")
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
            self.pod_deleted(pod, A_K8SM, "agent-drained")
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
    "allocate": Simulator.act_allocate,
    "container_restart": Simulator.act_container_restart,
    "user_delete_pod": Simulator.act_user_delete_pod,
    "task_fail": Simulator.act_task_fail,
    "batch_job": Simulator.act_batch_job,
    "other_task_end": Simulator.act_other_task_end,
    "api_eviction": Simulator.act_api_eviction,
    "node_pressure": Simulator.act_node_pressure,
    "kubelet_down": Simulator.act_kubelet_down,
    "agent_lost": Simulator.act_agent_lost,
    "agent_partition": Simulator.act_agent_partition,
    "agent_maintenance": Simulator.act_agent_maintenance,
    "rc_scale": Simulator.act_rc_scale,
    "rc_roll": Simulator.act_rc_roll,
    "namespace_lifecycle": Simulator.act_namespace_lifecycle,
    "adhoc_service": adhoc_service,
    "spark_app": Simulator.act_spark_app,
    "unschedulable_pod": Simulator.act_unschedulable_pod,
    "master_failover": Simulator.act_master_failover,
    "scheduler_failover": Simulator.act_scheduler_failover,
    "heartbeat_lost": Simulator.act_heartbeat_lost,
}
"""Every action by the name ``WEIGHTS``, ``RECURRING`` and ``FIRST_INCIDENTS`` give it."""
