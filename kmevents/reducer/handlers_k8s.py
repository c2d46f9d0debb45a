"""Handlers for the Kubernetes side: pods, namespaces, nodes, RCs, services, endpoints.

Same contract as handlers_mesos: ``h(st, ev, payload, occurred_at)``, check
first, then mutate.

Derived memberships. An RC's ``observed_replicas`` is the number of live
pods in its namespace whose labels match its selector and whose phase is
Running (``matching_not_running`` counts the other matching live pods); a
service's ``endpoints_derived`` is the sorted ids of live pods in its
namespace that match its selector and are ready. Both are kept incrementally:
before a pod changes it is taken out of every member set in its namespace,
afterwards it is put back where it now belongs, and only the RCs and services
whose figures moved are marked dirty. Worked example: rc ``web/fe`` selects
``app=fe``; pod ``web/p1`` (app=fe, Pending) counts in matching_not_running;
an upsert with phase Running moves it to observed_replicas (1, 0); a label
change to app=be removes it (0, 0); pod.deleted removes it for good. An empty
selector matches nothing (a service without a selector has its endpoints
managed by hand). The sets live outside the entities and are rebuilt from them
when a snapshot is loaded (``rebuild_indexes``).

Finding the RCs and services a pod could belong to. Each selector is filed in
its namespace under one of its pairs, the *anchor* (its first ``key: value``;
``_sel_add``); a pod looks up its own label pairs there (``_candidates``) and
only those few selectors are matched in full. A selector can only match a pod
that carries its anchor pair, so this finds every match; a selector whose
anchor value cannot be hashed (not a string: a malformed event) is filed
under None, *loose*, and tried for every pod of its namespace.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from kmevents.reducer.annotations import DUPLICATE, INVARIANT, STALE, UNKNOWN_ENTITY, note
from kmevents.reducer.handlers_mesos import _opt_dict, _opt_str, _str
from kmevents.reducer.resources import Malformed
from kmevents.reducer.retention import mark, unmark
from kmevents.reducer.state import ClusterState

Ent = dict[str, Any]

#: k8sm annotations that map a pod to its Mesos task (kept exactly as written).
ANNOTATION_FIELDS = {
    "k8s.mesosphere.io/taskId": "task_id",
    "k8s.mesosphere.io/slaveId": "agent_id",
    "k8s.mesosphere.io/offerId": "offer_id",
    "k8s.mesosphere.io/bindingHost": "binding_host",
    "k8s.mesosphere.io/executorId": "executor_id",
}


def _str_map(v: Any, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise Malformed(f"{what} must be an object")
    return v


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    if not selector:
        return False
    for k, v in selector.items():  # noqa: SIM110 (a plain loop is faster than all() here)
        if labels.get(k) != v:
            return False
    return True


# -- derived memberships ---------------------------------------------------------

def _sel_anchor(selector: dict[str, Any]) -> tuple[Any, ...] | None:
    """The pair a selector is filed under; None (loose) when it cannot be a dict key."""
    pair = next(iter(selector.items()))
    try:
        hash(pair)
    except TypeError:
        return None
    return pair


def _sel_add(index: dict[str, Any], ns: str, key: str, selector: dict[str, Any]) -> None:
    """File RC or service ``key`` of namespace ``ns`` under its selector's anchor."""
    if selector:  # an empty selector matches nothing
        index.setdefault(ns, {}).setdefault(_sel_anchor(selector), set()).add(key)


def _sel_remove(index: dict[str, Any], ns: str, key: str, selector: dict[str, Any]) -> None:
    """Undo ``_sel_add`` (same selector object, or an equal one in the same key order)."""
    by_anchor = index.get(ns)
    if by_anchor is None or not selector:
        return
    anchor = _sel_anchor(selector)
    ids = by_anchor.get(anchor)
    if ids is not None:
        ids.discard(key)
        if not ids:
            del by_anchor[anchor]
            if not by_anchor:
                del index[ns]


def _candidates(index: dict[str, Any], ns: str, labels: dict[str, Any]) -> list[str]:
    """RCs or services of ``ns`` whose selector could match ``labels`` (each once)."""
    by_anchor = index.get(ns)
    if by_anchor is None:
        return []
    loose = by_anchor.get(None)
    out = list(loose) if loose else []
    for pair in labels.items():
        try:
            ids = by_anchor.get(pair)
        except TypeError:  # an unhashable label value equals no anchor
            continue
        if ids:
            out.extend(ids)
    return out


def _unindex_pod(st: ClusterState, pod: Ent, rcs: set[str], svcs_left: set[str]) -> None:
    """Take a pod out of every member set (it is in those its current labels select)."""
    ns = pod["namespace"]
    pid = pod["id"]
    live = st._pods_by_ns.get(ns)
    if live is not None:
        live.discard(pid)
        if not live:
            del st._pods_by_ns[ns]
    labels = pod["labels"]
    for rid in _candidates(st._rc_sel, ns, labels):
        run, other = st._rc_members[rid]
        if pid in run:
            run.discard(pid)
            rcs.add(rid)
        elif pid in other:
            other.discard(pid)
            rcs.add(rid)
    for sid in _candidates(st._svc_sel, ns, labels):
        m = st._svc_members[sid]
        if pid in m:
            m.discard(pid)
            svcs_left.add(sid)


def _index_pod(st: ClusterState, pod: Ent, rcs: set[str], svcs_joined: set[str]) -> None:
    if pod["deleted"] is not None:
        return
    ns = pod["namespace"]
    pid = pod["id"]
    live = st._pods_by_ns.get(ns)
    if live is None:
        st._pods_by_ns[ns] = {pid}
    else:
        live.add(pid)
    labels = pod["labels"]
    for rid in _candidates(st._rc_sel, ns, labels):
        if _matches(st.rcs[rid]["selector"], labels):
            run, other = st._rc_members[rid]
            (run if pod["phase"] == "Running" else other).add(pid)
            rcs.add(rid)
    if pod["ready"] is True:
        for sid in _candidates(st._svc_sel, ns, labels):
            if _matches(st.services[sid]["selector"], labels):
                st._svc_members[sid].add(pid)
                svcs_joined.add(sid)


def _move_pod(st: ClusterState, pod: Ent, was_running: bool, was_ready: bool, rcs: set[str],
              svcs_left: set[str], svcs_joined: set[str]) -> None:
    """A live pod whose labels did not change: move it between its RCs' running and
    other sets and in or out of its services' members, as its phase and readiness say.

    The same as ``_unindex_pod`` then ``_index_pod`` (the selectors that match
    it are the same before and after), without looking twice.
    """
    ns = pod["namespace"]
    pid = pod["id"]
    labels = pod["labels"]
    running = pod["phase"] == "Running"
    if running != was_running:
        for rid in _candidates(st._rc_sel, ns, labels):
            if _matches(st.rcs[rid]["selector"], labels):
                run, other = st._rc_members[rid]
                if running:
                    other.discard(pid)
                    run.add(pid)
                else:
                    run.discard(pid)
                    other.add(pid)
                rcs.add(rid)
    ready = pod["ready"] is True
    if ready != (was_ready is True):
        for sid in _candidates(st._svc_sel, ns, labels):
            if _matches(st.services[sid]["selector"], labels):
                if ready:
                    st._svc_members[sid].add(pid)
                    svcs_joined.add(sid)
                else:
                    st._svc_members[sid].discard(pid)
                    svcs_left.add(sid)


def _refresh_rcs(st: ClusterState, rcs: set[str]) -> None:
    """Copy the member counts of ``rcs`` into the entities; dirty those that moved."""
    for rid in rcs:
        rc = st.rcs[rid]
        run, other = st._rc_members[rid]
        if rc["observed_replicas"] != len(run) or rc["matching_not_running"] != len(other):
            rc["observed_replicas"] = len(run)
            rc["matching_not_running"] = len(other)
            st._dirty.add(("rc", rid))


def _refresh_endpoints(st: ClusterState, pid: str, left: set[str], joined: set[str]) -> None:
    """Move ``pid`` in the sorted ``endpoints_derived`` of the services it left or joined.

    ``endpoints_derived`` always equals ``sorted(members)`` (``_refresh_service``
    sets it so, and every pod change goes through here), so editing one id in
    place of re-sorting gives the same list. A new list replaces the old one:
    a caller may hold a shallow copy of the entity.
    """
    for sid in left ^ joined:  # left and joined again: unchanged
        svc = st.services[sid]
        derived = list(svc["endpoints_derived"])
        if sid in joined:
            insort(derived, pid)
        else:
            del derived[bisect_left(derived, pid)]
        svc["endpoints_derived"] = derived
        st._dirty.add(("service", sid))


def _refresh_service(st: ClusterState, sid: str) -> None:
    """Recompute a service's ``endpoints_derived`` from its member set (after a rescan)."""
    svc = st.services[sid]
    derived = sorted(st._svc_members[sid])
    if svc["endpoints_derived"] != derived:
        svc["endpoints_derived"] = derived
        st._dirty.add(("service", sid))


def _rc_rescan(st: ClusterState, rid: str) -> None:
    rc = st.rcs[rid]
    run: set[str] = set()
    other: set[str] = set()
    sel = rc["selector"]
    for pid in st._pods_by_ns.get(rc["namespace"], ()):
        pod = st.pods[pid]
        if _matches(sel, pod["labels"]):
            (run if pod["phase"] == "Running" else other).add(pid)
    st._rc_members[rid] = (run, other)


def _svc_rescan(st: ClusterState, sid: str) -> None:
    svc = st.services[sid]
    sel = svc["selector"]
    st._svc_members[sid] = {
        pid for pid in st._pods_by_ns.get(svc["namespace"], ())
        if st.pods[pid]["ready"] is True and _matches(sel, st.pods[pid]["labels"])
    }


def rebuild_indexes(st: ClusterState) -> None:
    """Recompute every derived index from the entities (after a snapshot load)."""
    st._pods_by_ns = {}
    st._rc_sel = {}
    st._svc_sel = {}
    st._rc_members = {}
    st._svc_members = {}
    for pid, pod in st.pods.items():
        if pod["deleted"] is None:
            st._pods_by_ns.setdefault(pod["namespace"], set()).add(pid)
    for rid, rc in st.rcs.items():
        _sel_add(st._rc_sel, rc["namespace"], rid, rc["selector"])
        _rc_rescan(st, rid)
    for sid, svc in st.services.items():
        _sel_add(st._svc_sel, svc["namespace"], sid, svc["selector"])
        _svc_rescan(st, sid)


# -- pods ----------------------------------------------------------------------

def _pod_ref(ref: Any) -> tuple[str, str | None]:
    pid = _str(ref["namespace"], "pod.namespace") + "/" + _str(ref["name"], "pod.name")
    return pid, _opt_str(ref.get("uid"), "pod.uid")


def _volumes(vols: Any, node: str | None) -> list[Ent]:
    if vols is None:
        return []
    if type(vols) is not list:
        raise Malformed("pod.volumes must be a list")
    return [{"name": v["name"], "kind": v.get("kind"), "source": v.get("source"), "node": node}
            for v in vols]


def _containers(cs: Any) -> list[Ent]:
    if cs is None:
        return []
    if type(cs) is not list:
        raise Malformed("pod.containers must be a list")
    out = []
    for c in cs:
        lt = _opt_dict(c.get("last_termination"), "container.last_termination")
        out.append({"name": c["name"], "image": c.get("image"), "ready": c.get("ready"),
                    "restart_count": c.get("restart_count"),
                    "last_termination": None if lt is None else
                    {"reason": lt.get("reason"), "exit_code": lt.get("exit_code")}})
    return out


def pod_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    p = pl["pod"]
    ns = _str(p["namespace"], "pod.namespace")
    name = _str(p["name"], "pod.name")
    uid = _str(p["uid"], "pod.uid")
    labels = _str_map(p.get("labels"), "pod.labels")
    annotations = _str_map(p.get("annotations"), "pod.annotations")
    phase = _opt_str(p.get("phase"), "pod.phase")
    node_name = _opt_str(p.get("node_name"), "pod.node_name")
    ready = p.get("ready") is True
    containers = _containers(p.get("containers"))
    pid = ns + "/" + name
    cur = st.pods.get(pid)
    if cur is not None and cur["uid"] == uid and cur["deleted"] is not None:
        note(st, STALE, "pod", pid, "upsert of a pod already deleted; ignored")
        return
    mapped = {f: annotations[a] for a, f in ANNOTATION_FIELDS.items() if a in annotations}
    # mypy does not narrow ``cur`` through keep_binding/same_uid/same_labels (each implies cur is not None)
    keep_binding = cur is not None and cur["uid"] == uid
    binding_host = mapped.get("binding_host") or (cur["binding_host"] if keep_binding else None)  # type: ignore[index]
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
        _unindex_pod(st, cur, rcs, svcs_left)
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
    for f, v in mapped.items():
        pod[f] = v
    if not same_labels:
        _index_pod(st, pod, rcs, svcs_joined)
    elif moved:
        _move_pod(st, pod, was_running, was_ready, rcs, svcs_left, svcs_joined)
    if rcs:
        _refresh_rcs(st, rcs)
    if svcs_left or svcs_joined:
        _refresh_endpoints(st, pid, svcs_left, svcs_joined)
    st._dirty.add(("pod", pid))


def _live_pod(st: ClusterState, ref: Any, what: str) -> tuple[str, Ent | None]:
    pid, uid = _pod_ref(ref)
    pod = st.pods.get(pid)
    if pod is None:
        note(st, UNKNOWN_ENTITY, "pod", pid, f"{what} for a pod not in state")
        return pid, None
    if uid is not None and pod["uid"] != uid:
        note(st, STALE, "pod", pid, f"{what} for uid {uid}, but the pod is now uid {pod['uid']}")
        return pid, None
    return pid, pod


def pod_scheduled(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    host = _opt_str(pl.get("host"), "host")
    tid = _opt_str(pl.get("task_id"), "task_id")
    aid = _opt_str(pl.get("agent_id"), "agent_id")
    oid = _opt_str(pl.get("offer_id"), "offer_id")
    pid, pod = _live_pod(st, pl["pod"], "pod.scheduled")
    if pod is None:
        return
    pod["binding_host"] = host
    pod["task_id"] = tid
    pod["agent_id"] = aid
    pod["offer_id"] = oid
    if pod["node_name"] is None:
        pod["volumes"] = [dict(v, node=host) for v in pod["volumes"]]
    st._dirty.add(("pod", pid))
    task = st.tasks.get(tid) if tid is not None else None
    if task is not None and task["pod"] is None:
        task["pod"] = pid
        st._dirty.add(("task", tid))  # type: ignore[arg-type]  # a task was found: tid is not None


def pod_evicted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    kind = _opt_str(pl.get("kind"), "kind")
    reason = _opt_str(pl.get("reason"), "reason")
    message = _opt_str(pl.get("message"), "message")
    pid, pod = _live_pod(st, pl["pod"], "pod.evicted")
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
    reason = _opt_str(pl.get("reason"), "reason")
    pid, pod = _live_pod(st, pl["pod"], "pod.deleted")
    if pod is None:
        return
    if pod["deleted"] is not None:
        note(st, DUPLICATE, "pod", pid, "pod already deleted")
        return
    rcs: set[str] = set()
    svcs_left: set[str] = set()
    _unindex_pod(st, pod, rcs, svcs_left)
    pod["deleted"] = {"reason": reason, "actor": ev.get("actor"), "at": t}
    pod["since"] = t
    _refresh_rcs(st, rcs)
    _refresh_endpoints(st, pid, svcs_left, set())
    st._dirty.add(("pod", pid))
    mark(st, "pod", pid, t)


def k8s_event_recorded(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    inv = pl["involved"]
    ns = _opt_str(pl.get("namespace"), "namespace")
    if inv.get("kind") != "Pod" or ns is None:
        return  # only pod events are kept on an entity; the log has the rest
    pid = ns + "/" + _str(inv["name"], "involved.name")
    pod = st.pods.get(pid)
    if pod is None:
        return
    pod["last_event"] = {"reason": pl.get("reason"), "message": pl.get("message"),
                         "count": pl.get("count"), "at": t}
    st._dirty.add(("pod", pid))


# -- namespaces, nodes ---------------------------------------------------------

def namespace_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    n = pl["namespace"]
    name = _str(n["name"], "namespace.name")
    phase = _opt_str(n.get("phase"), "namespace.phase")
    labels = _str_map(n.get("labels"), "namespace.labels")
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
    _delete_plain(st, "namespace", _str(pl["name"], "name"))


def node_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    n = pl["node"]
    name = _str(n["name"], "node.name")
    ready = n.get("ready") is True
    conditions = _opt_dict(n.get("conditions"), "node.conditions") or {}
    components = _opt_dict(n.get("components"), "node.components") or {}
    aid = _opt_str(n.get("agent_id"), "node.agent_id")
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
    _delete_plain(st, "node", _str(pl["name"], "name"))


# -- replication controllers, services, endpoints --------------------------------

def rc_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    r = pl["rc"]
    ns = _str(r["namespace"], "rc.namespace")
    name = _str(r["name"], "rc.name")
    replicas = r.get("replicas")
    if replicas is not None and type(replicas) is not int:
        raise Malformed("rc.replicas must be an integer")
    selector = _str_map(r.get("selector"), "rc.selector")
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
        _sel_remove(st._rc_sel, ns, rid, cur["selector"])
        cur["selector"] = selector
        cur["template_image"] = image
    _sel_add(st._rc_sel, ns, rid, selector)
    if rescan:
        _rc_rescan(st, rid)
        _refresh_rcs(st, {rid})
    st._dirty.add(("rc", rid))


def _delete_selecting(st: ClusterState, kind: str, pl: Ent, index: dict[str, Any],
                      members: dict[str, Any]) -> None:
    """Delete an RC or a service, its selector's filing and its derived member set."""
    ns = _str(pl["namespace"], "namespace")
    key = ns + "/" + _str(pl["name"], "name")
    cur = st._tables[kind].get(key)
    if _delete_plain(st, kind, key):
        _sel_remove(index, ns, key, cur["selector"])  # type: ignore[index]  # it existed: cur is not None
        del members[key]


def rc_deleted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    _delete_selecting(st, "rc", pl, st._rc_sel, st._rc_members)


def service_upserted(st: ClusterState, ev: Ent, pl: Ent, t: str) -> None:
    s = pl["service"]
    ns = _str(s["namespace"], "service.namespace")
    name = _str(s["name"], "service.name")
    selector = _str_map(s.get("selector"), "service.selector")
    portal = _opt_str(s.get("portal_ip"), "service.portal_ip")
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
        _sel_remove(st._svc_sel, ns, sid, cur["selector"])
        cur["selector"] = selector
        cur["portal_ip"] = portal
        cur["ports"] = ports
    _sel_add(st._svc_sel, ns, sid, selector)
    if rescan:
        _svc_rescan(st, sid)
        _refresh_service(st, sid)
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
    sid = _str(pl["namespace"], "namespace") + "/" + _str(pl["name"], "name")
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
