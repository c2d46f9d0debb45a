"""k8sm's leader: its first election and its failovers between three scheduler instances.

k8sm runs highly available, its instances electing a leader through a
leader key. When another instance takes over (``scheduler_failover``,
recurring about every 30 simulated minutes): ``scheduler.leader_elected``
with the previous identity, k8sm's outstanding offers rescinded, the
framework re-registered (SUBSCRIBED, same framework id), and an explicit
reconciliation fifteen seconds later (``masters.reconcile``).
"""

from __future__ import annotations

from kmevents.simulate.emit import K8SM
from kmevents.simulate.scenarios.masters import INITIAL_RECONCILIATION_DELAY, reconcile
from kmevents.simulate.scenarios.offers import rescind
from kmevents.simulate.scenarios.world import A_K8SM, World


def elect_first_leader(w: World) -> None:
    """The k8sm instance leading at the start of the simulation (no previous leader)."""
    t = w.tick()
    w.emit("scheduler.leader_elected", "LEADER_ELECTED", "scheduler", t,
           {"identity": w.k8sm_identity, "previous": None},
           f"scheduler.leader_elected|{w.k8sm_identity}|{w.em.fmt(t)}",
           None, None, A_K8SM, K8SM)


def scheduler_failover(w: World) -> None:
    """k8sm's HA: another scheduler instance takes the leader key and re-registers."""
    prev = w.k8sm_identity
    w.k8sm_identity_seq += 1
    w.k8sm_identity = f"k8sm-scheduler-{(w.k8sm_identity_seq - 1) % 3 + 1}"
    if w.k8sm_identity == prev:
        w.k8sm_identity = f"k8sm-scheduler-{w.k8sm_identity_seq % 3 + 1}"
    w.burst += 1
    t = w.tick()
    led = w.emit("scheduler.leader_elected", "LEADER_ELECTED", "scheduler", t,
                 {"identity": w.k8sm_identity, "previous": prev},
                 f"scheduler.leader_elected|{w.k8sm_identity}|{w.em.fmt(t)}",
                 None, None, A_K8SM, K8SM)
    fw = w.frameworks[0]
    for offer in list(w.k8sm_offers.items):
        rescind(w, offer, led)
    t = w.tick()
    w.emit("framework.reregistered", "SUBSCRIBED", "master", t, {"framework": fw.info},
           f"framework.reregistered|{fw.id}|{w.em.fmt(t)}", None, led, w.actor_master())
    w.burst -= 1
    w.after(INITIAL_RECONCILIATION_DELAY, reconcile)
