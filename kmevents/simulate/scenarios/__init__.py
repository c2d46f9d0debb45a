"""The rules, timers and spontaneous actions that change the simulated world, one family a module.

Each family is a set of plain functions that take the shared ``World`` first
(its state, clock, timers and seeded draws) and write events through its
``Emitter``; a timer is one of those functions with its arguments. A module
imports only the families below it, so the order here is also the order of
dependence (the core first, the driver last):

    world.py            SimConfig; the World: live objects, clock (tick), timers (after), draws,
                        actors
    apiserver.py        pod and node records as the apiserver's watch reports them; Events
    tasks.py            task resources, status updates, Mesos' re-delivery (same uuid) until
                        acked; TERMINAL
    offers.py           an offer's ends: k8sm's expiry after offer_ttl (5 s), declines with
                        refuse_seconds (k8sm 5 s, others 120 s), the master's rescinds
    services.py         services, and endpoints that follow the ready pods
    pods.py             create, delete (k8sm kills the task first: pod-deleted), fail, GC; the
                        RC manager's sync that replaces them
    k8sm_scheduler.py   one pod per offer: offer.accepted, task.launched, pod.scheduled with
                        k8sm's annotations; STAGING -> STARTING -> RUNNING; FailedScheduling
                        with k8sm's backoff (1 s doubling to 60 s); FailedMount on Ceph
    replication.py      RCs created, scaled (random walk), rolled to a new image pod by pod
    namespaces.py       namespaces; CI namespaces that come and go with their test pods
    containers.py       container restarts (Error, OOMKilled), BackOff; a pod's task failing
    user_pods.py        batch jobs, a pod no agent can hold, users deleting RC pods
    volumes.py          NFS, Ceph rbd and cephfs, GCE PD, emptyDir volume sources
    workloads.py        the seed cases (kube-dns, kube-ui, MySQL master + replicas on rbd) and
                        the application RCs
    frameworks.py       k8sm, Marathon, Spark register; roles; Spark applications come and go
    other_frameworks.py Marathon and Spark tasks: launch, health checks, failures, scale-down
    allocator.py        the Mesos allocator: one idle agent offered to one framework
    evictions.py        node pressure (kubelet), the eviction API (user), the node controller
                        after NotReady
    agents.py           join; lost (FAILURE, TASK_LOST REASON_AGENT_REMOVED, RESCIND in no
                        fixed order); partition healed (LOST -> RUNNING after re-registration)
    maintenance.py      inverse offers, drain, removal
    masters.py          first election, heartbeats lost, failover (re-registration, task.added
                        replay, snapshot), explicit and implicit reconciliation
    k8sm_leader.py      k8sm's first leader and its leader changes
    attach.py           the large profile's start: a running cluster's state as kmevents'
                        sources report it when it attaches (agents, tasks, nodes, RCs, pods)
    large.py            the large profile: sizes, the trace's task ends as processes, offers
    simulator.py        the driver: bootstrap, WEIGHTS / RECURRING / FIRST_INCIDENTS, step();
                        PROFILES
"""

from __future__ import annotations

from kmevents.simulate.scenarios.simulator import PROFILES, WEIGHTS, Profile, Simulator
from kmevents.simulate.scenarios.world import SimConfig

__all__ = ["PROFILES", "WEIGHTS", "Profile", "SimConfig", "Simulator"]
