"""Kubernetes watch events (v1 API objects) -> catalogue events (pure parser).

One :class:`KubernetesParser` serves every watched resource; each resource's
watch is its own stream (``new_stream(resource, stream_id)`` at every
(re)watch). It remembers each object's ``resourceVersion`` (and, for pods,
uid, binding and eviction), which gives two things:

- ``relist(resource, items)`` after a ``410 Gone``: objects changed meanwhile
  are upserted, objects that disappeared meanwhile get their deletion event
  (client-go's "DeletedFinalStateUnknown"; pod reason ``deleted while the
  watch was disconnected``) — never silently forgotten;
- the pod uid of a name, for the audit parser (``pod_uid``).

Mapping (watch ``type`` ADDED/MODIFIED/DELETED, or ``LIST`` for a relist item):

    pods                   pod.upserted / pod.deleted; + pod.scheduled once the k8sm
                           annotations (taskId, slaveId, bindingHost) appear;
                           + pod.evicted (node_pressure) when status.reason is Evicted
    nodes                  node.upserted / node.deleted
    replicationcontrollers replication_controller.upserted / .deleted
    services               service.upserted / .deleted
    endpoints              endpoints.observed (DELETED: empty addresses and ports)
    namespaces             namespace.upserted / namespace.deleted
    events                 k8s_event.recorded; + pod.evicted for Pod Events with reason
                           Evicted (node_pressure) or TaintManagerEviction (node_controller);
                           DELETED (the Event expired) gives nothing, counted in ``skipped``
    BOOKMARK               none (only the resourceVersion moves)

Never mapped: container ``env``/``envFrom``, the
``kubectl.kubernetes.io/last-applied-configuration`` annotation (a full copy of
the object as applied, env values included), ``managedFields``, Secrets and
ConfigMaps (not watched).
"""

from __future__ import annotations

import time
from typing import Any

from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    Clock,
    Event,
    Skipped,
    Stream,
    at_text,
)

Obj = dict[str, Any]

RESOURCES = ("pods", "nodes", "replicationcontrollers", "services", "endpoints", "namespaces", "events")
#: Annotation keys never copied into an event.
DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
K8SM = "k8s.mesosphere.io/"
DISCONNECTED = "deleted while the watch was disconnected"
PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _key(obj: Obj) -> str:
    m = _meta(obj)
    return f"{m['namespace']}/{m['name']}" if m.get("namespace") else str(m.get("name"))


def _strmap(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in (v or {}).items()}


def _cond(status: Obj, kind: str) -> bool:
    for c in status.get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status") == "True"
    return False


def pod_payload(pod: Obj) -> Obj:
    """v1 Pod -> contract ``Pod``."""
    m, spec, st = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    volumes = []
    for v in spec.get("volumes") or []:
        kind = next((k for k in v if k != "name"), "unknown")
        src = v.get(kind)
        volumes.append({"name": v["name"], "kind": kind, "source": src if isinstance(src, dict) else {}})
    statuses = {c.get("name"): c for c in st.get("containerStatuses") or []}
    containers = []
    for c in spec.get("containers") or []:
        cs = statuses.get(c["name"]) or {}
        term = (cs.get("lastState") or {}).get("terminated")
        containers.append({
            "name": c["name"], "image": str(cs.get("image") or c.get("image") or ""),
            "ready": bool(cs.get("ready", False)), "restart_count": int(cs.get("restartCount", 0)),
            "last_termination": {"reason": term.get("reason"), "exit_code": term.get("exitCode")}
            if isinstance(term, dict) else None,
        })
    return {
        "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
        "resource_version": m.get("resourceVersion"), "labels": _strmap(m.get("labels")),
        "annotations": {k: v for k, v in _strmap(m.get("annotations")).items()
                        if k not in DROPPED_ANNOTATIONS},
        "phase": st.get("phase") or "Pending", "node_name": spec.get("nodeName"),
        "ready": _cond(st, "Ready"), "volumes": volumes, "containers": containers,
    }


def pod_ref(pod: Obj) -> Obj:
    m = _meta(pod)
    return {"namespace": m["namespace"], "name": m["name"], "uid": m["uid"]}


def node_payload(node: Obj) -> Obj:
    m, st = _meta(node), node.get("status") or {}
    ready = _cond(st, "Ready")
    ann = _strmap(m.get("annotations"))
    labels = _strmap(m.get("labels"))
    return {"name": m["name"], "ready": ready,
            "conditions": {c: _cond(st, c) for c in PRESSURE},
            "agent_id": ann.get(K8SM + "slaveId") or labels.get(K8SM + "slaveId"),
            "components": {"kubelet": ready, "proxy": True, "cadvisor": True}}


def rc_payload(rc: Obj) -> Obj:
    m, spec = _meta(rc), rc.get("spec") or {}
    containers = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or [{}]
    replicas = spec.get("replicas")
    return {"namespace": m["namespace"], "name": m["name"],
            "replicas": int(replicas) if isinstance(replicas, int) else 1,
            "selector": _strmap(spec.get("selector")), "template_image": str(containers[0].get("image", ""))}


def service_payload(svc: Obj) -> Obj:
    m, spec = _meta(svc), svc.get("spec") or {}
    ip = spec.get("clusterIP") or spec.get("portalIP")
    ports = [{"name": p.get("name"), "port": int(p["port"]), "protocol": p.get("protocol") or "TCP",
              "target_port": p.get("targetPort")} for p in spec.get("ports") or []]
    return {"namespace": m["namespace"], "name": m["name"], "selector": _strmap(spec.get("selector")),
            "portal_ip": None if ip in (None, "", "None") else ip, "ports": ports}


def endpoints_payload(ep: Obj, deleted: bool = False) -> Obj:
    m = _meta(ep)
    addresses: list[Obj] = []
    ports: list[Obj] = []
    for subset in [] if deleted else ep.get("subsets") or []:
        for a in subset.get("addresses") or []:
            ref = a.get("targetRef") or {}
            pod = None
            if ref.get("kind") == "Pod" and ref.get("uid") and ref.get("name"):
                pod = {"namespace": ref.get("namespace") or m["namespace"], "name": ref["name"],
                       "uid": ref["uid"]}
            addresses.append({"ip": a["ip"], "pod": pod})
        for p in subset.get("ports") or []:
            port = {"name": p.get("name"), "port": int(p["port"]), "protocol": p.get("protocol") or "TCP"}
            if port not in ports:
                ports.append(port)
    return {"namespace": m["namespace"], "name": m["name"], "addresses": addresses, "ports": ports}


class KubernetesParser:
    """Watch events in, catalogue envelopes out. No I/O."""

    def __init__(self, cluster: str, *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.now = now
        self.skew_threshold = skew_threshold
        self.streams: dict[str, Stream] = {}
        self.known: dict[str, dict[str, Obj]] = {r: {} for r in RESOURCES}
        """resource -> key -> what was last seen (``rv``; pods also ``ref``, ``task_id``, ``evicted``)."""
        self.evicted: set[str] = set()
        self.skipped = Skipped()

    # -- streams and bookkeeping -------------------------------------------------------

    def new_stream(self, resource: str, stream_id: str) -> None:
        self.streams[resource] = Stream(self.cluster, "k8s.watch", stream_id, now=self.now,
                                        skew_threshold=self.skew_threshold)

    def stream(self, resource: str) -> Stream:
        if resource not in self.streams:
            self.new_stream(resource, f"watch-{resource}")
        return self.streams[resource]

    def pod_uid(self, namespace: str, name: str) -> str | None:
        """The uid of the pod ``namespace/name`` as last seen, if known."""
        k = self.known["pods"].get(f"{namespace}/{name}")
        return k["ref"]["uid"] if k else None

    def resource_version(self, resource: str, obj: Obj) -> str | None:
        return _meta(obj).get("resourceVersion")

    # -- input ---------------------------------------------------------------------------

    def feed(self, resource: str, watch_event: Obj, seq: int | None = None) -> list[Event]:
        """One watch event ``{"type": ..., "object": ...}`` of ``resource``."""
        st = self.stream(resource)
        out = st.record(seq)
        kind = watch_event.get("type")
        obj = watch_event.get("object") or {}
        if kind == "BOOKMARK":
            return out
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            self.skipped.add(f"{resource} watch event {kind!r}")
            return out
        out.extend(self._object(resource, kind, obj, st, live=True))
        return out

    def relist(self, resource: str, items: list[Obj]) -> list[Event]:
        """A full list (first start, or after ``410 Gone``): upserts of what changed,
        deletions of what vanished meanwhile. One record of the stream."""
        st = self.stream(resource)
        out = st.record()
        seen = set()
        for obj in items:
            key = _key(obj)
            seen.add(key)
            old = self.known[resource].get(key)
            if old is not None and old.get("rv") == _meta(obj).get("resourceVersion") is not None:
                continue
            out.extend(self._object(resource, "LIST", obj, st, live=False))
        for key in [k for k in self.known[resource] if k not in seen]:
            out.extend(self._vanished(resource, key, st))
        return out

    # -- mapping ---------------------------------------------------------------------------

    def _object(self, resource: str, kind: str, obj: Obj, st: Stream, *, live: bool) -> list[Event]:
        deleted = kind == "DELETED"
        at = st.adapter_time()
        key = _key(obj)
        rv = _meta(obj).get("resourceVersion")

        def ev(type_: str, payload: Obj, corr: str | None = None, when: str = at,
               clock: str = "adapter") -> Event:
            return st.event(type_, payload, occurred_at=when, clock=clock, raw_type=kind,
                            correlation_id=corr)

        if resource == "events":
            if deleted:
                self.skipped.add("events DELETED (the Event expired)")
                return []
            return self._k8s_event(obj, st, ev, live)
        if deleted:
            self.known[resource].pop(key, None)
        if resource == "pods":
            ref = pod_ref(obj)
            uid = ref["uid"]
            if deleted:
                return [ev("pod.deleted", {"pod": ref, "reason": None}, uid)]
            out = [ev("pod.upserted", {"pod": pod_payload(obj)}, uid)]
            prev = self.known["pods"].get(key) or {}
            entry = {"rv": rv, "ref": ref,
                     "task_id": prev.get("task_id") if prev.get("ref", {}).get("uid") == uid else None}
            self.known["pods"][key] = entry
            ann = _strmap(_meta(obj).get("annotations"))
            tid, aid, host = ann.get(K8SM + "taskId"), ann.get(K8SM + "slaveId"), ann.get(K8SM + "bindingHost")
            if tid and aid and host and entry["task_id"] != tid:
                out.append(ev("pod.scheduled", {"pod": ref, "host": host, "task_id": tid, "agent_id": aid,
                                                "offer_id": ann.get(K8SM + "offerId")}, uid))
                entry["task_id"] = tid
            status = obj.get("status") or {}
            if status.get("reason") == "Evicted" and uid not in self.evicted:
                self.evicted.add(uid)
                out.append(ev("pod.evicted", {"pod": ref, "kind": "node_pressure", "reason": "Evicted",
                                              "message": status.get("message")}, uid))
            return out
        if not deleted:
            self.known[resource][key] = {"rv": rv}
        m = _meta(obj)
        if resource == "nodes":
            return [ev("node.deleted", {"name": m["name"]}) if deleted
                    else ev("node.upserted", {"node": node_payload(obj)})]
        if resource == "namespaces":
            return [ev("namespace.deleted", {"name": m["name"]}) if deleted
                    else ev("namespace.upserted", {"namespace": {
                        "name": m["name"], "phase": (obj.get("status") or {}).get("phase") or "Active",
                        "labels": _strmap(m.get("labels"))}})]
        if resource == "replicationcontrollers":
            return [ev("replication_controller.deleted", {"namespace": m["namespace"], "name": m["name"]})
                    if deleted else ev("replication_controller.upserted", {"rc": rc_payload(obj)})]
        if resource == "services":
            return [ev("service.deleted", {"namespace": m["namespace"], "name": m["name"]})
                    if deleted else ev("service.upserted", {"service": service_payload(obj)})]
        if resource == "endpoints":
            return [ev("endpoints.observed", endpoints_payload(obj, deleted))]
        self.skipped.add(f"resource {resource!r}")
        return []

    def _vanished(self, resource: str, key: str, st: Stream) -> list[Event]:
        old = self.known[resource].pop(key)
        at = st.adapter_time()
        ns, _, name = key.rpartition("/")

        def ev(type_: str, payload: Obj, corr: str | None = None) -> Event:
            return st.event(type_, payload, occurred_at=at, clock="adapter", raw_type="LIST",
                            correlation_id=corr)

        if resource == "pods":
            return [ev("pod.deleted", {"pod": old["ref"], "reason": DISCONNECTED}, old["ref"]["uid"])]
        if resource == "nodes":
            return [ev("node.deleted", {"name": key})]
        if resource == "namespaces":
            return [ev("namespace.deleted", {"name": key})]
        if resource == "replicationcontrollers":
            return [ev("replication_controller.deleted", {"namespace": ns, "name": name})]
        if resource == "services":
            return [ev("service.deleted", {"namespace": ns, "name": name})]
        if resource == "endpoints":
            return [ev("endpoints.observed", {"namespace": ns, "name": name, "addresses": [], "ports": []})]
        return []

    def _k8s_event(self, obj: Obj, st: Stream, ev: Any, live: bool) -> list[Event]:
        m = _meta(obj)
        inv = obj.get("involvedObject") or obj.get("regarding") or {}
        when = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp") \
            or m.get("creationTimestamp")
        component = ((obj.get("source") or {}).get("component") or obj.get("reportingComponent")
                     or obj.get("reportingController") or "")
        clock = "agent" if component == "kubelet" else "apiserver"
        out: list[Event] = []
        if when:
            at = at_text(when)
            if live:
                out.extend(st.check_clock(at))
        else:
            at, clock = st.adapter_time(), "adapter"
        ns = m.get("namespace") or inv.get("namespace") or "default"
        count = obj.get("count") or (obj.get("series") or {}).get("count") or 1
        reason = obj.get("reason") or "Unknown"
        involved = {"kind": inv.get("kind") or "Unknown", "name": inv.get("name") or "unknown",
                    "uid": inv.get("uid")}
        out.append(ev("k8s_event.recorded", {"namespace": ns, "involved": involved, "reason": reason,
                                             "message": str(obj.get("message") or obj.get("note") or ""),
                                             "count": int(count)}, inv.get("uid"), at, clock))
        kinds = {"Evicted": "node_pressure", "TaintManagerEviction": "node_controller"}
        uid = inv.get("uid")
        if inv.get("kind") == "Pod" and reason in kinds and uid and uid not in self.evicted:
            self.evicted.add(uid)
            ref = {"namespace": inv.get("namespace") or ns, "name": inv["name"], "uid": uid}
            out.append(ev("pod.evicted", {"pod": ref, "kind": kinds[reason], "reason": reason,
                                          "message": obj.get("message")}, uid, at, clock))
        return out
