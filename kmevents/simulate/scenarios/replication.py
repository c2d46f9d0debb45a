"""Replication controllers: created, scaled by users, rolled to a new image one pod at a time.

An RC's own records (``replication_controller.upserted`` with its replicas,
selector and template image) are written here; keeping its pods at
``replicas`` is the sync in ``pods.py``. Users scale an application RC by one
to three replicas at a time, in a random walk pulled back towards its first
size (``rc_scale``); a deploy bot rolls one to a new image tag (``rc_roll``):
the RC's template changes, then every 5-15 s one pod of the old image is
deleted and the sync starts its replacement, until none is left.
"""

from __future__ import annotations

from typing import Any

from kmevents.simulate.emit import K8S
from kmevents.simulate.model import RC
from kmevents.simulate.scenarios.pods import arm_rc_sync, delete_pod
from kmevents.simulate.scenarios.world import A_RCM, World


def create_rc(w: World, ns: str, name: str, replicas: int, containers: list[tuple[str, str]],
              volumes: list[dict[str, Any]], cpus: float, mem: float, *, system: bool,
              labels: dict[str, str] | None = None) -> RC:
    rc = new_rc(w, ns, name, replicas, containers, volumes, cpus, mem, system=system,
                labels=labels)
    rc_upsert(w, rc, "ADDED", w.actor_user())
    return rc


def new_rc(w: World, ns: str, name: str, replicas: int, containers: list[tuple[str, str]],
           volumes: list[dict[str, Any]], cpus: float, mem: float, *, system: bool,
           labels: dict[str, str] | None = None) -> RC:
    """An RC in the world (it may grow to twice its size); nothing is written yet."""
    rc = RC(ns, name, replicas, containers, volumes, cpus, mem, system,
            max_replicas=max(2, replicas * 2))
    if labels is not None:
        rc.labels = labels
        rc.selector = {k: v for k, v in labels.items() if k != "kubernetes.io/cluster-service"}
    w.rcs.append(rc)
    return rc


def rc_upsert(w: World, rc: RC, raw: str, actor: dict[str, str]) -> None:
    t = w.tick()
    w.emit("replication_controller.upserted", raw, "apiserver", t,
           {"rc": {"namespace": rc.ns, "name": rc.name, "replicas": rc.replicas,
                   "selector": rc.selector, "template_image": rc.containers[0][1]}},
           f"replication_controller.upserted|{rc.ns}/{rc.name}|{w.em.fmt(t)}",
           None, None, actor, K8S)


def rc_scale(w: World) -> None:
    if not w.app_rcs:
        return
    rc = w.app_rcs[int(w.rng.random() * len(w.app_rcs))]
    if rc.rolling:
        return
    delta = 1 + int(w.rng.random() * 3)
    # a random walk pulled back towards the RC's original size
    drift = (rc.replicas - rc.base) / max(1, rc.base)
    if w.rng.random() < 0.5 + max(-0.4, min(0.4, drift)):
        delta = -delta
    new = min(rc.max_replicas, max(0, rc.replicas + delta))
    if new == rc.replicas:
        return
    rc.replicas = new
    rc_upsert(w, rc, "MODIFIED", w.actor_user())
    arm_rc_sync(w, rc, 0.2)


def rc_roll(w: World) -> None:
    """A rolling update to a new image: replace the RC's pods one at a time."""
    candidates = [rc for rc in w.app_rcs if not rc.rolling and "{tag}" in rc.image]
    if not candidates:
        return
    rc = candidates[int(w.rng.random() * len(candidates))]
    rc.rolling = True
    rc.tag += 1
    name = rc.containers[0][0]
    rc.containers = [(name, rc.image.format(tag=rc.tag))] + rc.containers[1:]
    rc_upsert(w, rc, "MODIFIED", {"kind": "user", "name": "deploy-bot"})
    w.after(w.uniform(2, 6), roll_step, rc)


def roll_step(w: World, rc: RC) -> None:
    image = rc.containers[0][1]
    old = [p for p in rc.pods.values() if not p.deleting and p.containers[0].image != image]
    if not old:
        rc.rolling = False
        return
    delete_pod(w, old[0], A_RCM, None)
    arm_rc_sync(w, rc, 0.3)
    w.after(w.uniform(5, 15), roll_step, rc)
