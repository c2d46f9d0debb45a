"""Handlers for the Kubernetes side: pods, namespaces, nodes, RCs, services, endpoints.

Same contract as handlers_mesos: ``h(st, ev, payload, occurred_at)``, check
first, then mutate.

Derived memberships (RC replicas, service endpoints) are kept by ``membership.py``.
"""

from __future__ import annotations

from typing import Any

from kmevents.reducer.annotations import DUPLICATE, INVARIANT, STALE, UNKNOWN_ENTITY, note
from kmevents.reducer.membership import (
    index_pod,
    move_pod,
    rc_rescan,
    refresh_endpoints,
    refresh_rcs,
    refresh_service,
    sel_add,
    sel_remove,
    svc_rescan,
    unindex_pod,
)
from kmevents.reducer.payload import opt_dict, opt_str, req_str, str_map
from kmevents.reducer.resources import Malformed
from kmevents.reducer.retention import mark, unmark
from kmevents.reducer.state import ClusterState
from kmevents.reducer.tracking import key_changing

Ent = dict[str, Any]

#: k8sm annotations that map a pod to its Mesos task (kept exactly as written).
ANNOTATION_FIELDS = {
    "k8s.mesosphere.io/taskId": "task_id",
    "k8s.mesosphere.io/slaveId": "agent_id",
    "k8s.mesosphere.io/offerId": "offer_id",
    "k8s.mesosphere.io/bindingHost": "binding_host",
    "k8s.mesosphere.io/executorId": "executor_id",
}


# -- pods ----------------------------------------------------------------------

def _pod_ref(ref: Any) -> tuple[str, str | None]:
    pid = req_str(ref["namespace"], "pod.namespace") + "/" + req_str(ref["name"], "pod.name")
    return pid, opt_str(ref.get("uid"), "pod.uid")


def _volumes(vols: Any, node: str | None) -> list[Ent]:
    if vols is None:
        return []
    if type(vols) is not list:
        raise Malformed("pod.volumes must be a list")
    return [{"name": v["name"], "kind": v.get("kind"), "source": v.get("source"), "node": node}
            for v in vols]


#: The keys of a container as the catalogue writes it and a pod entity keeps it.
_CONTAINER_KEYS = frozenset(("name", "image", "ready", "restart_count", "last_termination"))


def _containers(cs: Any) -> list[Ent]:
    if cs is None:
        return []
    if type(cs) is not list:
        raise Malformed("pod.containers must be a list")
    out = []
    for c in cs:
        lt = opt_dict(c.get("last_termination"), "container.last_termination")
        if lt is None and c.keys() == _CONTAINER_KEYS:
            # already the entity's value (most containers: never terminated); the state may
            # keep parts of an event (apply.py), and nothing mutates a container in place
            out.append(c)
            continue
        out.append({"name": c["name"], "image": c.get("image"), "ready": c.get("ready"),
                    "restart_count": c.get("restart_count"),
                    "last_termination": None if lt is None else
                    {"reason": lt.get("reason"), "exit_code": lt.get("exit_code")}})
    return out


_BINDING_HOST = "k8s.mesosphere.io/bindingHost"
#: ANNOTATION_FIELDS as pairs, for the loop of every pod upsert
_ANNOTATION_PAIRS = tuple(ANNOTATION_FIELDS.items())


def pod_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    p = pl["pod"]
    ns = req_str(p["namespace"], "pod.namespace")
    name = req_str(p["name"], "pod.name")
    uid = req_str(p["uid"], "pod.uid")
    labels = str_map(p.get("labels"), "pod.labels")
    annotations = str_map(p.get("annotations"), "pod.annotations")
    phase = opt_str(p.get("phase"), "pod.phase")
    node_name = opt_str(p.get("node_name"), "pod.node_name")
    ready = p.get("ready") is True
    containers = _containers(p.get("containers"))
    pid = ns + "/" + name
    cur = st.pods.get(pid)
    if cur is not None and cur["uid"] == uid and cur["deleted"] is not None:
        note(st, STALE, "pod", pid, "upsert of a pod already deleted; ignored")
        return
    # mypy does not narrow ``cur`` through keep_binding/same_uid/same_labels (each implies cur is not None)
    keep_binding = cur is not None and cur["uid"] == uid
    binding_host = annotations.get(_BINDING_HOST) or (cur["binding_host"] if keep_binding else None)  # type: ignore[index]
    volumes = _volumes(p.get("volumes"), node_name or binding_host)
    rcs: set[str] = set()
    svcs_left: set[str] = set()
    svcs_joined: set[str] = set()
    # Memberships depend on labels, phase and readiness only. With the same
    # labels the pod stays selected by the same RCs and services and at most
    # moves inside them (most upserts: phase changes, container restarts).
    same_uid = keep_binding
    same_labels = same_uid and cur["labels"] == labels  # type: ignore[index]
    if same_labels:
        moved = cur["phase"] != phase or cur["ready"] != ready  # type: ignore[index]
        was_running = cur["phase"] == "Running"  # type: ignore[index]
        was_ready = cur["ready"]  # type: ignore[index]
    elif cur is not None:
        unindex_pod(st, cur, rcs, svcs_left)
    if not same_uid:
        if cur is not None:
            if cur["deleted"] is None:
                note(st, INVARIANT, "pod", pid,
                     f"pod uid changed {cur['uid']} -> {uid} without a pod.deleted")
            else:
                unmark(st, "pod", pid)
        pod = st.pods[pid] = {
            "id": pid, "namespace": ns, "name": name, "uid": uid, "phase": phase, "since": t,
            "created_at": t, "binding_host": None, "task_id": None, "agent_id": None,
            "offer_id": None, "executor_id": None, "evicted": None, "deleted": None,
            "last_event": None,
        }
    else:
        pod = cur  # type: ignore[assignment]
        if pod["phase"] != phase:
            pod["phase"] = phase
            pod["since"] = t
    pod["labels"] = labels
    pod["annotations"] = annotations
    pod["node_name"] = node_name
    pod["ready"] = ready
    pod["volumes"] = volumes
    pod["containers"] = containers
    if annotations:
        for a, f in _ANNOTATION_PAIRS:
            if a in annotations:
                pod[f] = annotations[a]
    if not same_labels:
        index_pod(st, pod, rcs, svcs_joined)
    elif moved:
        move_pod(st, pod, was_running, was_ready, rcs, svcs_left, svcs_joined)
    if rcs:
        refresh_rcs(st, rcs)
    if svcs_left or svcs_joined:
        refresh_endpoints(st, pid, svcs_left, svcs_joined)
    st._dirty.add(("pod", pid))


def _later(created_at: str, t: str) -> bool:
    """Whether a pod created at ``created_at`` came into being in a later second than ``t``
    (canonical times: the first 19 characters are the second). A record truncated to whole
    seconds (10:00:00 for a delete at 10:00:00.9) is not before a pod created at 10:00:00.7."""
    return created_at[:19] > t[:19]


def _live_pod(st: ClusterState, ref: Any, what: str, t: str) -> tuple[str, Ent | None]:
    """The pod a reference names, or None (annotated).

    A reference without a uid (an audit record at level Metadata names the pod of a
    delete or an eviction by namespace/name only) is resolved by ``<namespace>/<name>``,
    unless the pod held under that name was created after the event: then the event is
    about an earlier pod of that name (its delete reached us late) and must not touch
    this one. Worked example: pod web-0 (uid u1) deleted at 10:00, recreated as uid u2
    at 10:01 and shown by the watch; the audit's "delete web-0" of 10:00 arrives at
    10:02 -> annotated stale, u2 stays alive. Compared to the second (``_later``): the
    audit records of Kubernetes 1.7/1.8 carry whole seconds.
    """
    pid, uid = _pod_ref(ref)
    pod = st.pods.get(pid)
    if pod is None:
        by = "" if uid is not None else " (named by namespace/name only)"
        note(st, UNKNOWN_ENTITY, "pod", pid, f"{what} for a pod not in state{by}")
        return pid, None
    if uid is not None and pod["uid"] != uid:
        note(st, STALE, "pod", pid, f"{what} for uid {uid}, but the pod is now uid {pod['uid']}")
        return pid, None
    if uid is None and _later(pod["created_at"], t):
        note(st, STALE, "pod", pid, f"{what} at {t} named by namespace/name, but pod uid {pod['uid']} "
                                    f"of that name was created later ({pod['created_at']}); ignored")
        return pid, None
    return pid, pod


def pod_scheduled(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    host = opt_str(pl.get("host"), "host")
    tid = opt_str(pl.get("task_id"), "task_id")
    aid = opt_str(pl.get("agent_id"), "agent_id")
    oid = opt_str(pl.get("offer_id"), "offer_id")
    pid, pod = _live_pod(st, pl["pod"], "pod.scheduled", t)
    if pod is None:
        return
    pod["binding_host"] = host
    pod["task_id"] = tid
    pod["agent_id"] = aid
    pod["offer_id"] = oid
    if pod["node_name"] is None:
        pod["volumes"] = [dict(v, node=host) for v in pod["volumes"]]
    st._dirty.add(("pod", pid))
    # k8sm's binding names the task by its Mesos id alone; k8sm is one framework, so the id
    # is its task's unless another framework used the same id (then no link is made).
    keys = st.task_ids(tid) if tid is not None else []
    if len(keys) == 1 and st.tasks[keys[0]]["pod"] is None:
        st.tasks[keys[0]]["pod"] = pid
        st._dirty.add(("task", keys[0]))


def pod_evicted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    kind = opt_str(pl.get("kind"), "kind")
    reason = opt_str(pl.get("reason"), "reason")
    message = opt_str(pl.get("message"), "message")
    pid, pod = _live_pod(st, pl["pod"], "pod.evicted", t)
    if pod is None:
        return
    if pod["evicted"] is not None:
        note(st, DUPLICATE, "pod", pid, "pod already evicted")
        return
    pod["evicted"] = {"kind": kind, "reason": reason, "message": message, "at": t,
                      "actor": ev.get("actor")}
    pod["since"] = t
    st._dirty.add(("pod", pid))


def pod_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    reason = opt_str(pl.get("reason"), "reason")
    pid, pod = _live_pod(st, pl["pod"], "pod.deleted", t)
    if pod is None:
        return
    if pod["deleted"] is not None:
        note(st, DUPLICATE, "pod", pid, "pod already deleted")
        return
    rcs: set[str] = set()
    svcs_left: set[str] = set()
    unindex_pod(st, pod, rcs, svcs_left)
    pod["deleted"] = {"reason": reason, "actor": ev.get("actor"), "at": t}
    pod["since"] = t
    refresh_rcs(st, rcs)
    refresh_endpoints(st, pid, svcs_left, set())
    st._dirty.add(("pod", pid))
    mark(st, "pod", pid, t)


def k8s_event_recorded(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    inv = pl["involved"]
    ns = opt_str(pl.get("namespace"), "namespace")
    if inv.get("kind") != "Pod" or ns is None:
        return  # only pod events are kept on an entity; the log has the rest
    pid = ns + "/" + req_str(inv["name"], "involved.name")
    pod = st.pods.get(pid)
    if pod is None:
        return
    pod["last_event"] = {"reason": pl.get("reason"), "message": pl.get("message"),
                         "count": pl.get("count"), "at": t}
    st._dirty.add(("pod", pid))


# -- who wrote what (audit attributions) -----------------------------------------

#: How many recent writes an entity keeps in ``writers`` (oldest first): bounded, the log
#: has them all.
MAX_WRITERS = 8

#: The audit's resource -> the kind of entity its writes join.
WRITE_TARGETS = {"pods": "pod", "bindings": "pod", "replicationcontrollers": "rc", "services": "service",
                 "endpoints": "service", "namespaces": "namespace", "nodes": "node"}


def _write_target(st: ClusterState, pl: Ent, t: str) -> tuple[str, str, Ent] | None:
    """The entity a ``k8s_write.recorded`` joins, or None when the state holds none to join.

    None is no annotation: a write before the watch showed its object, after the object
    left the state, or without a name (a ``deletecollection``) is in the log, which is
    where ``kmevents search --type k8s_write.recorded`` finds it. Only a write that names
    another pod than the one held (by uid, or by time: see ``_live_pod``) is annotated stale.
    """
    kind = WRITE_TARGETS.get(req_str(pl["resource"], "resource"))
    ns = opt_str(pl.get("namespace"), "namespace")
    name = opt_str(pl.get("name"), "name")
    uid = opt_str(pl.get("uid"), "uid")
    if kind is None or name is None:
        return None
    if kind in ("namespace", "node"):
        key = name
    elif ns is None:
        return None
    else:
        key = ns + "/" + name
    ent = st._tables[kind].get(key)
    if ent is None:
        return None
    if kind == "pod":
        if uid is not None and ent["uid"] != uid:
            note(st, STALE, "pod", key, f"write for uid {uid}, but the pod is now uid {ent['uid']}")
            return None
        if uid is None and pl.get("verb") == "create" and ent["deleted"] is not None:
            return None  # the create of a new pod of that name, which the watch has not shown yet
        if uid is None and pl.get("verb") != "create" and _later(ent["created_at"], t):
            note(st, STALE, "pod", key, f"write at {t} named by namespace/name, but pod uid {ent['uid']} "
                                        f"of that name was created later ({ent['created_at']}); ignored")
            return None
    return kind, key, ent


def k8s_write_recorded(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    """Join who wrote to the entity written: its ``writers`` (the last ``MAX_WRITERS``), and
    for a pod deleted or evicted without a known actor (the watch's view came first) the
    ``deleted.actor`` / ``evicted.actor``."""
    audit_id = req_str(pl["audit_id"], "audit_id")
    verb = req_str(pl["verb"], "verb")
    sub = opt_str(pl.get("subresource"), "subresource")
    user = req_str(pl["user"], "user")
    as_user = opt_str(pl.get("impersonated_user"), "impersonated_user")
    replicas = pl.get("replicas")
    if replicas is not None and type(replicas) is not int:
        raise Malformed("replicas must be an integer or null")
    target = opt_str(pl.get("target"), "target")
    found = _write_target(st, pl, t)
    if found is None:
        return
    kind, key, ent = found
    writers = ent.get("writers") or []
    if any(w["audit_id"] == audit_id for w in writers):
        note(st, DUPLICATE, kind, key, f"write {audit_id} already attributed")
        return
    actor = ev.get("actor")
    writer = {"at": t, "verb": verb, "resource": pl["resource"], "subresource": sub, "actor": actor,
              "user": user, "impersonated_user": as_user, "audit_id": audit_id}
    if replicas is not None:
        writer["replicas"] = replicas
    if target is not None:
        writer["target"] = target
    ent["writers"] = [*writers, writer][-MAX_WRITERS:]
    if kind == "pod":
        change = ent["deleted"] if verb == "delete" and sub is None else \
            ent["evicted"] if verb == "create" and sub == "eviction" else None
        if change is not None and change.get("actor") is None:
            change["actor"] = actor
    st._dirty.add((kind, key))


# -- namespaces, nodes ---------------------------------------------------------

def namespace_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    n = pl["namespace"]
    name = req_str(n["name"], "namespace.name")
    phase = opt_str(n.get("phase"), "namespace.phase")
    labels = str_map(n.get("labels"), "namespace.labels")
    cur = st.namespaces.get(name)
    if cur is None:
        st.namespaces[name] = {"name": name, "phase": phase, "labels": labels, "since": t}
    else:
        if cur["phase"] != phase:
            cur["phase"] = phase
            cur["since"] = t
        cur["labels"] = labels
    st._dirty.add(("namespace", name))


def _delete_plain(st: ClusterState, kind: str, key: str) -> bool:
    if st._tables[kind].pop(key, None) is None:
        note(st, UNKNOWN_ENTITY, kind, key, f"deletion of a {kind} not in state")
        return False
    st._dirty.add((kind, key))
    return True


def namespace_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _delete_plain(st, "namespace", req_str(pl["name"], "name"))


def node_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    n = pl["node"]
    name = req_str(n["name"], "node.name")
    ready = n.get("ready") is True
    conditions = opt_dict(n.get("conditions"), "node.conditions") or {}
    components = opt_dict(n.get("components"), "node.components") or {}
    aid = opt_str(n.get("agent_id"), "node.agent_id")
    cur = st.nodes.get(name)
    if cur is None:
        cur = st.nodes[name] = {"name": name, "ready": ready, "since": t}
    elif cur["ready"] != ready:
        cur["ready"] = ready
        cur["since"] = t
    cur["conditions"] = conditions
    cur["pressure"] = sorted(k for k, v in conditions.items() if v is True)
    cur["components"] = components
    cur["agent_id"] = aid
    st._dirty.add(("node", name))


def node_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _delete_plain(st, "node", req_str(pl["name"], "name"))


# -- replication controllers, services, endpoints --------------------------------

def rc_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    r = pl["rc"]
    ns = req_str(r["namespace"], "rc.namespace")
    name = req_str(r["name"], "rc.name")
    replicas = r.get("replicas")
    if replicas is not None and type(replicas) is not int:
        raise Malformed("rc.replicas must be an integer")
    selector = str_map(r.get("selector"), "rc.selector")
    image = r.get("template_image")
    rid = ns + "/" + name
    cur = st.rcs.get(rid)
    if cur is None:
        cur = st.rcs[rid] = {"id": rid, "namespace": ns, "name": name, "replicas": replicas,
                             "selector": selector, "template_image": image,
                             "observed_replicas": 0, "matching_not_running": 0, "since": t}
        rescan = True
    else:
        if cur["replicas"] != replicas:
            cur["replicas"] = replicas
            cur["since"] = t
        rescan = cur["selector"] != selector
        sel_remove(st._rc_sel, ns, rid, cur["selector"])
        cur["selector"] = selector
        cur["template_image"] = image
    sel_add(st._rc_sel, ns, rid, selector)
    if rescan:
        rc_rescan(st, rid)
        refresh_rcs(st, {rid})
    st._dirty.add(("rc", rid))


def _delete_selecting(st: ClusterState, kind: str, pl: Ent, index: dict[str, Any],
                      members: dict[str, Any]) -> None:
    """Delete an RC or a service, its selector's filing and its derived member set."""
    ns = req_str(pl["namespace"], "namespace")
    key = ns + "/" + req_str(pl["name"], "name")
    cur = st._tables[kind].get(key)
    if _delete_plain(st, kind, key):
        sel_remove(index, ns, key, cur["selector"])  # type: ignore[index]  # it existed: cur is not None
        if st._base is not None:  # noted first, while a delta's base is tracked (tracking.py)
            key_changing(st._base.track, "rc_members" if kind == "rc" else "svc_members", members, key)
        del members[key]


def rc_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _delete_selecting(st, "rc", pl, st._rc_sel, st._rc_members)


def service_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    s = pl["service"]
    ns = req_str(s["namespace"], "service.namespace")
    name = req_str(s["name"], "service.name")
    selector = str_map(s.get("selector"), "service.selector")
    portal = opt_str(s.get("portal_ip"), "service.portal_ip")
    ports = s.get("ports") or []
    if type(ports) is not list:
        raise Malformed("service.ports must be a list")
    sid = ns + "/" + name
    cur = st.services.get(sid)
    if cur is None:
        cur = st.services[sid] = {"id": sid, "namespace": ns, "name": name, "selector": selector,
                                  "portal_ip": portal, "ports": ports, "since": t,
                                  "endpoints_derived": [], "endpoints_observed": None}
        rescan = True
    else:
        rescan = cur["selector"] != selector
        sel_remove(st._svc_sel, ns, sid, cur["selector"])
        cur["selector"] = selector
        cur["portal_ip"] = portal
        cur["ports"] = ports
    sel_add(st._svc_sel, ns, sid, selector)
    if rescan:
        svc_rescan(st, sid)
        refresh_service(st, sid)
    st._dirty.add(("service", sid))


def service_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _delete_selecting(st, "service", pl, st._svc_sel, st._svc_members)


def _endpoint_ids(addrs: list[Any]) -> set[str]:
    """Pod ids (``ns/name``) of observed addresses, ``ip:<ip>`` for those without a pod.

    ``_pod_ref`` inlined (same checks, same order, same messages): an
    endpoints event lists every address of a service, tens of them.
    """
    seen: set[str] = set()
    add = seen.add
    for a in addrs:
        ref = a.get("pod")
        if ref is None:
            add("ip:" + str(a.get("ip")))
            continue
        ns = ref["namespace"]
        if type(ns) is not str:
            raise Malformed("pod.namespace must be a string")
        name = ref["name"]
        if type(name) is not str:
            raise Malformed("pod.name must be a string")
        uid = ref.get("uid")
        if uid is not None and type(uid) is not str:
            raise Malformed("pod.uid must be a string or null")
        add(ns + "/" + name)
    return seen


def endpoints_observed(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    # The endpoints controller lags the pods it follows, so a difference is
    # only annotated here, when an observation arrives, comparing it with the
    # derived set at this log position (not on every pod change).
    sid = req_str(pl["namespace"], "namespace") + "/" + req_str(pl["name"], "name")
    addrs = pl.get("addresses") or []
    ports = pl.get("ports") or []
    if type(addrs) is not list or type(ports) is not list:
        raise Malformed("addresses and ports must be lists")
    seen = _endpoint_ids(addrs)
    svc = st.services.get(sid)
    if svc is None:
        note(st, UNKNOWN_ENTITY, "service", sid, "endpoints for a service not in state")
        return
    svc["endpoints_observed"] = {"addresses": addrs, "ports": ports, "at": t}
    st._dirty.add(("service", sid))
    derived = set(svc["endpoints_derived"])
    if seen != derived:
        note(st, INVARIANT, "service", sid,
             f"observed endpoints differ from ready pods matching the selector: "
             f"missing {sorted(derived - seen)}, unexpected {sorted(seen - derived)}")


HANDLERS = {
    "pod.upserted": pod_upserted,
    "pod.scheduled": pod_scheduled,
    "pod.evicted": pod_evicted,
    "pod.deleted": pod_deleted,
    "k8s_event.recorded": k8s_event_recorded,
    "k8s_write.recorded": k8s_write_recorded,
    "namespace.upserted": namespace_upserted,
    "namespace.deleted": namespace_deleted,
    "node.upserted": node_upserted,
    "node.deleted": node_deleted,
    "replication_controller.upserted": rc_upserted,
    "replication_controller.deleted": rc_deleted,
    "service.upserted": service_upserted,
    "service.deleted": service_deleted,
    "endpoints.observed": endpoints_observed,
}
