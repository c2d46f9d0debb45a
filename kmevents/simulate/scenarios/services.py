"""Services and their endpoints: the endpoints controller follows the ready pods.

A service selects the pods of one or more RCs (kube-dns, kube-ui, MySQL's
master and its replicas, each application RC with a port) and gets a portal
IP. When a selected pod turns ready or not ready, or goes, the endpoints
controller writes the service's ``endpoints.observed`` a few seconds later,
once for all the changes in between (``endpoints_dirty`` arms it, the timer
``endpoints_observed`` writes the ready pods' addresses, sorted by IP). Users
add a debug service beside an RC now and then and delete it minutes later
(``adhoc_service``, drawn by weight).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from kmevents.simulate.emit import K8S
from kmevents.simulate.model import RC, Pod, Service
from kmevents.simulate.scenarios.world import A_ENDPOINTS, World

_pod_ip = attrgetter("ip")


def next_portal_ip(w: World) -> str:
    w.portal_next += 1
    n = w.portal_next
    return f"10.10.{10 + n // 250}.{n % 250 + 1}"


def create_service(w: World, ns: str, name: str, rcs: list[RC], portal_ip: str,
                   ports: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Service:
    svc = new_service(w, ns, name, rcs, portal_ip, ports, selector)
    service_upserted(w, svc)
    endpoints_observed(w, svc)
    return svc


def new_service(w: World, ns: str, name: str, rcs: list[RC], portal_ip: str,
                ports: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Service:
    """A service over ``rcs``' pods, in the world; nothing is written yet."""
    svc = Service(ns, name, rcs, portal_ip, ports, selector or dict(rcs[0].selector))
    for rc in rcs:
        rc.services.append(svc)
    w.services.append(svc)
    return svc


def service_upserted(w: World, svc: Service) -> None:
    t = w.tick()
    w.emit("service.upserted", "ADDED", "apiserver", t, {"service": svc.info},
           f"service.upserted|{svc.ns}/{svc.name}|{w.em.fmt(t)}", None, None, w.actor_user(), K8S)


def endpoints_dirty(w: World, pod: Pod) -> None:
    rc = pod.rc
    if rc is None:
        return
    for svc in rc.services:
        if not svc.dirty:
            svc.dirty = True
            w.after(w.uniform(2.0, 6.0), endpoints_observed, svc)


def endpoints_observed(w: World, svc: Service) -> None:
    svc.dirty = False
    if svc.deleted:
        return
    ready = [pod for rc in svc.rcs for pod in rc.pods.values()
             if pod.ready and not pod.deleting and pod.addr is not None]
    ready.sort(key=_pod_ip)
    addresses = [pod.addr for pod in ready]
    t = w.tick()
    w.emit("endpoints.observed", "MODIFIED", "apiserver", t,
           {"namespace": svc.ns, "name": svc.name, "addresses": addresses,
            "ports": [{"name": p["name"], "port": p["target_port"], "protocol": p["protocol"]}
                      for p in svc.ports]},
           f"endpoints.observed|{svc.ns}/{svc.name}|{w.em.fmt(t)}", None, None,
           A_ENDPOINTS, K8S)


def adhoc_service(w: World) -> None:
    if not w.app_rcs:
        return
    rc = w.app_rcs[int(w.rng.random() * len(w.app_rcs))]
    w.svc_seq += 1
    svc = create_service(w, rc.ns, f"{rc.name}-debug-{w.svc_seq}", [rc], next_portal_ip(w),
                         [{"name": "debug", "port": 9000, "protocol": "TCP",
                           "target_port": 9000}])
    w.after(w.uniform(120, 600), service_delete, svc)


def service_delete(w: World, svc: Service) -> None:
    svc.deleted = True
    for rc in svc.rcs:
        if svc in rc.services:
            rc.services.remove(svc)
    if svc in w.services:
        w.services.remove(svc)
    t = w.tick()
    w.emit("service.deleted", "DELETED", "apiserver", t,
           {"namespace": svc.ns, "name": svc.name},
           f"service.deleted|{svc.ns}/{svc.name}|{w.em.fmt(t)}", None, None,
           w.actor_user(), K8S)
