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
                           + pod.evicted (node_pressure, actor: the node) when status.reason is Evicted
    nodes                  node.upserted / node.deleted
    replicationcontrollers replication_controller.upserted / .deleted
    services               service.upserted / .deleted
    endpoints              endpoints.observed (DELETED: empty addresses and ports)
    namespaces             namespace.upserted / namespace.deleted
    events                 k8s_event.recorded; + pod.evicted for Pod Events with reason
                           Evicted (node_pressure) or TaintManagerEviction (node_controller);
                           DELETED (the Event expired) gives nothing, counted in ``skipped``
    BOOKMARK, ERROR        none (only the resourceVersion moves; the live client acts on a
                           410), counted in ``skipped``

A namespaced object without ``metadata.namespace`` (a list item, an object
as a client printed it) is in ``default``, as the API server would put it.

Times and clocks. An object's change carries no time of its own: its events
are stamped by the adapter (``clock=adapter``). A Kubernetes Event carries the
time its **recorder** stamped (``lastTimestamp``/``eventTime``/
``series.lastObservedTime``, from the recording process's own clock), and the
recorder is named by ``source.component`` (``reportingController``/
``reportingComponent`` in ``events.k8s.io``); ``component_clock`` maps it:

    kubelet, kube-proxy            clock agent      actor {node, source.host}
    *scheduler*                    clock scheduler  actor {scheduler, component}
    *controller*, controllermanager, other recorders
                                   clock apiserver  actor {controller, component}
                                   (the contract has no controller-manager clock: it runs
                                   on the control plane beside the API server)
    kube-apiserver, none           clock apiserver  no actor
    only creationTimestamp         clock apiserver  (the API server stamped it)

Never raises for one record. Whatever a record is, it ends in exactly one of:
gave >= 1 event (``records_mapped``), ``outcomes.skipped`` by reason, or
``outcomes.quarantined`` (the record's bytes, its stream and position, why:
a field missing or of the wrong type, undecodable JSON). ``records_in``
counts them all: records are watch events, capture documents, and the items
of a List (an empty List is one record, skipped).

Captures (``kmevents import``): ``documents(data)`` splits a file into JSON
documents (JSON lines, or the concatenated pretty-printed JSON of ``kubectl get
-w -o json``); ``feed_document`` takes one: a WatchEvent ``{"type", "object"}``,
a List (``PodList``, or ``List`` of mixed kinds), or a bare object (what
``kubectl get -w`` prints). The resource comes from ``kind``. All documents of
a capture share one stream (``new_capture``), whose positions are the
documents' order in the file. Objects with no ``metadata.resourceVersion`` are
manifests (what someone wrote, not what the API server stored): skipped. A
List in a file may be filtered (a namespace, a selector): no deletion is
inferred from what it lacks.

Never mapped: container ``env``/``envFrom``, the
``kubectl.kubernetes.io/last-applied-configuration`` annotation (a full copy of
the object as applied, env values included), ``managedFields``, Secrets and
ConfigMaps (not watched).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import orjson

from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    Clock,
    Event,
    Outcomes,
    Skipped,
    Stream,
    at_text,
)

Obj = dict[str, Any]

RESOURCES = ("pods", "nodes", "replicationcontrollers", "services", "endpoints", "namespaces", "events")
#: ``kind`` of an object -> the resource it is watched as.
KIND_RESOURCES = {"Pod": "pods", "Node": "nodes", "ReplicationController": "replicationcontrollers",
                  "Service": "services", "Endpoints": "endpoints", "Namespace": "namespaces", "Event": "events"}
#: Resources whose objects live in a namespace (a missing ``metadata.namespace`` means ``default``).
NAMESPACED = frozenset({"pods", "replicationcontrollers", "services", "endpoints", "events"})
DEFAULT_NAMESPACE = "default"
#: Annotation keys never copied into an event.
DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
K8SM = "k8s.mesosphere.io/"
DISCONNECTED = "deleted while the watch was disconnected"
PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
#: The clock of a controller-manager's Events. The contract's clocks have no controller
#: (``contract/enums.py`` ``Clock``); the controller manager runs on the control plane,
#: beside the API server, whose clock is the closest the contract names.
CONTROLLER_CLOCK = "apiserver"
#: What a parser may raise while mapping one record: caught, the record is quarantined.
MAPPING_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ns(m: Obj) -> str:
    return str(m.get("namespace") or DEFAULT_NAMESPACE)


def _key(resource: str, obj: Obj) -> str:
    m = _meta(obj)
    return f"{_ns(m)}/{m['name']}" if resource in NAMESPACED else str(m["name"])


def component_clock(component: str, host: str | None) -> tuple[str, dict[str, str] | None]:
    """``(clock, actor)`` of a Kubernetes Event recorded by ``component`` (on ``host``)."""
    name = component.rsplit("/", 1)[-1].lower()
    if not name or name in ("kube-apiserver", "apiserver"):
        return "apiserver", None
    if name in ("kubelet", "kube-proxy"):
        return "agent", {"kind": "node", "name": host} if host else None
    if "scheduler" in name:
        return "scheduler", {"kind": "scheduler", "name": component}
    return CONTROLLER_CLOCK, {"kind": "controller", "name": component}


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
        "namespace": _ns(m), "name": m["name"], "uid": m["uid"],
        "resource_version": m.get("resourceVersion"), "labels": _strmap(m.get("labels")),
        "annotations": {k: v for k, v in _strmap(m.get("annotations")).items()
                        if k not in DROPPED_ANNOTATIONS},
        "phase": st.get("phase") or "Pending", "node_name": spec.get("nodeName"),
        "ready": _cond(st, "Ready"), "volumes": volumes, "containers": containers,
    }


def pod_ref(pod: Obj) -> Obj:
    m = _meta(pod)
    return {"namespace": _ns(m), "name": m["name"], "uid": m["uid"]}


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
    return {"namespace": _ns(m), "name": m["name"],
            "replicas": int(replicas) if isinstance(replicas, int) else 1,
            "selector": _strmap(spec.get("selector")), "template_image": str(containers[0].get("image", ""))}


def service_payload(svc: Obj) -> Obj:
    m, spec = _meta(svc), svc.get("spec") or {}
    ip = spec.get("clusterIP") or spec.get("portalIP")
    ports = [{"name": p.get("name"), "port": int(p["port"]), "protocol": p.get("protocol") or "TCP",
              "target_port": p.get("targetPort")} for p in spec.get("ports") or []]
    return {"namespace": _ns(m), "name": m["name"], "selector": _strmap(spec.get("selector")),
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
                pod = {"namespace": ref.get("namespace") or _ns(m), "name": ref["name"],
                       "uid": ref["uid"]}
            addresses.append({"ip": a["ip"], "pod": pod})
        for p in subset.get("ports") or []:
            port = {"name": p.get("name"), "port": int(p["port"]), "protocol": p.get("protocol") or "TCP"}
            if port not in ports:
                ports.append(port)
    return {"namespace": _ns(m), "name": m["name"], "addresses": addresses, "ports": ports}


class KubernetesParser:
    """Watch events in, catalogue envelopes out. No I/O."""

    def __init__(self, cluster: str, *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.now = now
        self.skew_threshold = skew_threshold
        self.streams: dict[str, Stream] = {}
        self.capture: Stream | None = None
        """The one stream of a capture file (``new_capture``), else None."""
        self.known: dict[str, dict[str, Obj]] = {r: {} for r in RESOURCES}
        """resource -> key -> what was last seen (``rv``; pods also ``ref``, ``task_id``, ``evicted``)."""
        self.evicted: set[str] = set()
        self.outcomes = Outcomes()
        self.records_in = 0
        """Records read: watch events, capture documents, List items (an empty List counts one)."""
        self.records_mapped = 0
        """Records that gave at least one event (the rest are skipped or quarantined)."""

    @property
    def skipped(self) -> Skipped:
        """``outcomes.skipped`` (the name callers used before ``outcomes``)."""
        return self.outcomes.skipped

    # -- streams and bookkeeping -------------------------------------------------------

    def new_stream(self, resource: str, stream_id: str) -> None:
        self.streams[resource] = Stream(self.cluster, "k8s.watch", stream_id, now=self.now,
                                        skew_threshold=self.skew_threshold)

    def new_capture(self, stream_id: str) -> None:
        """Start a capture file: every document fed next is a record of this one stream."""
        self.capture = Stream(self.cluster, "k8s.watch", stream_id, now=self.now,
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

    # -- input: a live watch -------------------------------------------------------------

    def feed(self, resource: str, watch_event: Obj | bytes | str, seq: int | None = None) -> list[Event]:
        """One watch event of ``resource``: ``{"type": ..., "object": ...}``, or the line of the
        watch response that holds it (bytes; undecodable: quarantined)."""
        st = self.stream(resource)
        out = st.record(seq)
        if isinstance(watch_event, (bytes, bytearray, str)):
            try:
                decoded = orjson.loads(watch_event)
            except orjson.JSONDecodeError as exc:
                self._count()
                self._quarantine(st, watch_event, f"{resource} watch: undecodable JSON: {exc}")
                return out
            out.extend(self._guarded(resource, decoded, st, live=True))
            return out
        out.extend(self._guarded(resource, watch_event, st, live=True))
        return out

    def relist(self, resource: str, items: list[Obj]) -> list[Event]:
        """A full list (first start, or after ``410 Gone``): upserts of what changed,
        deletions of what vanished meanwhile. One record of the stream; each item counts."""
        st = self.stream(resource)
        out = st.record()
        seen: set[str] = set()
        complete = True
        for i, obj in enumerate(items):
            try:
                seen.add(_key(resource, obj))
            except MAPPING_ERRORS:
                complete = False  # an unreadable item may be any known object: infer no deletion
            out.extend(self._item(resource, i, obj, st, live=False))
        if not complete:
            self.skipped.add(f"{resource} list: deletions not inferred (an item had no readable name)")
            return out
        for key in [k for k in self.known[resource] if k not in seen]:
            out.extend(self._vanished(resource, key, st))
        return out

    # -- input: a capture file -----------------------------------------------------------

    def feed_document(self, doc: Any, seq: int | None = None) -> list[Event]:
        """One JSON document of a capture: a WatchEvent, a List, or a bare object (module doc)."""
        if self.capture is None:
            self.new_capture("capture")
        st = self.capture
        assert st is not None
        out = st.record(seq)
        if isinstance(doc, dict) and "type" in doc and "object" in doc and "kind" not in doc:
            obj = doc.get("object")
            kind = obj.get("kind") if isinstance(obj, dict) else None
            resource = KIND_RESOURCES.get(kind) if isinstance(kind, str) else None
            if resource is None and doc.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self._count()
                self.skipped.add(f"watch event of kind {kind!r} (not kept)")
                return out
            out.extend(self._guarded(resource or "?", doc, st, live=False))
            return out
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") \
                and isinstance(doc.get("items"), list):
            items = doc["items"]
            if not items:
                self._count()
                self.skipped.add(f"empty {doc['kind']}")
                return out
            of = doc["kind"][:-len("List")]
            for i, item in enumerate(items):
                kind = str(item.get("kind") if isinstance(item, dict) and item.get("kind") else of)
                out.extend(self._item(KIND_RESOURCES.get(kind, ""), i, item, st, live=False, of_kind=kind))
            return out
        kind = doc.get("kind") if isinstance(doc, dict) else None
        out.extend(self._item(KIND_RESOURCES.get(kind, "") if isinstance(kind, str) else "", None, doc, st,
                              live=False))
        return out

    def feed_capture(self, data: bytes, stream_id: str) -> list[Event]:
        """A whole capture file (see ``documents``) as one stream."""
        self.new_capture(stream_id)
        out: list[Event] = []
        for seq, raw, doc in documents(data):
            if isinstance(doc, ValueError):
                assert self.capture is not None
                out.extend(self.capture.record(seq))
                self._count()
                self._quarantine(self.capture, raw, f"undecodable JSON document: {doc}")
                continue
            out.extend(self.feed_document(doc, seq))
        return out

    # -- one record, guarded -------------------------------------------------------------

    def _count(self, mapped: bool = False) -> None:
        self.records_in += 1
        if mapped:
            self.records_mapped += 1

    def _quarantine(self, st: Stream, raw: Any, reason: str) -> None:
        self.outcomes.quarantine(st.stream_id, max(st.seq, 0), raw, reason)

    def _guarded(self, resource: str, watch_event: Any, st: Stream, *, live: bool) -> list[Event]:
        """One watch event; exactly one outcome (events, skipped or quarantined)."""
        before = self.outcomes.skipped.counts.copy()
        try:
            got = self._watch_event(resource, watch_event, st, live=live)
        except MAPPING_ERRORS as exc:
            self._count()
            self._quarantine(st, watch_event, f"{resource} watch event: {type(exc).__name__}: {exc}")
            return []
        self._count(mapped=bool(got))
        if not got and self.outcomes.skipped.counts == before:
            self.skipped.add(f"{resource} watch event gave no event")
        return got

    def _item(self, resource: str, index: int | None, obj: Any, st: Stream, *, live: bool,
              of_kind: str | None = None) -> list[Event]:
        """One List item or bare object (``index`` None); exactly one outcome."""
        self._count()
        where = f"item {index} of the list" if index is not None else "object"
        try:
            if not isinstance(obj, dict):
                raise TypeError(f"not a JSON object: {type(obj).__name__}")
            if not resource:
                kind = of_kind or obj.get("kind")
                if not kind:
                    raise ValueError("no kind: cannot tell which resource it is")
                self.skipped.add(f"kind {kind!r} (not kept)")
                return []
            m = _meta(obj)
            if m.get("resourceVersion") in (None, ""):
                self.skipped.add("no metadata.resourceVersion (a manifest, not an object the API server stored)")
                return []
            old = self.known[resource].get(_key(resource, obj))
            if index is not None and old is not None and old.get("rv") == m["resourceVersion"]:
                self.skipped.add(f"{resource} list item unchanged since last seen")
                return []
            got = self._object(resource, "LIST" if index is not None else "OBJECT", obj, st, live=live)
        except MAPPING_ERRORS as exc:
            self._quarantine(st, obj, f"{resource or 'capture'} {where}: {type(exc).__name__}: {exc}")
            return []
        if got:
            self.records_mapped += 1
        return got

    def _watch_event(self, resource: str, watch_event: Any, st: Stream, *, live: bool) -> list[Event]:
        if not isinstance(watch_event, dict):
            raise TypeError(f"a watch event is a JSON object, not {type(watch_event).__name__}")
        kind = watch_event.get("type")
        obj = watch_event.get("object")
        if kind == "BOOKMARK":
            self.skipped.add("BOOKMARK (only the resourceVersion moves)")
            return []
        if kind == "ERROR":
            status = obj if isinstance(obj, dict) else {}
            code = status.get("code")
            what = f"{code} {status.get('reason') or ''}".strip() if code else "without a code"
            self.skipped.add(f"ERROR {what} (the watch ended)")
            return []
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            self.skipped.add(f"{resource} watch event {kind!r}")
            return []
        if not isinstance(obj, dict):
            raise TypeError(f"{kind} without an object")
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}")
        return self._object(resource, kind, obj, st, live=live)

    # -- mapping ---------------------------------------------------------------------------

    def _object(self, resource: str, kind: str, obj: Obj, st: Stream, *, live: bool) -> list[Event]:
        deleted = kind == "DELETED"
        if resource == "events":
            if deleted:
                self.skipped.add("events DELETED (the Event expired)")
                return []
            return self._k8s_event(obj, st, kind, live)
        at = st.adapter_time()
        key = _key(resource, obj)
        rv = _meta(obj).get("resourceVersion")

        def ev(type_: str, payload: Obj, corr: str | None = None, actor: dict[str, str] | None = None) -> Event:
            return st.event(type_, payload, occurred_at=at, clock="adapter", raw_type=kind,
                            correlation_id=corr, actor=actor)

        if resource == "pods":
            ref = pod_ref(obj)
            uid = ref["uid"]
            if deleted:
                self.known[resource].pop(key, None)
                return [ev("pod.deleted", {"pod": ref, "reason": None}, uid)]
            payload = pod_payload(obj)
            out = [ev("pod.upserted", {"pod": payload}, uid)]
            prev = self.known["pods"].get(key) or {}
            entry = {"rv": rv, "ref": ref,
                     "task_id": prev.get("task_id") if prev.get("ref", {}).get("uid") == uid else None}
            self.known["pods"][key] = entry
            ann = payload["annotations"]
            tid, aid, host = ann.get(K8SM + "taskId"), ann.get(K8SM + "slaveId"), ann.get(K8SM + "bindingHost")
            if tid and aid and host and entry["task_id"] != tid:
                out.append(ev("pod.scheduled", {"pod": ref, "host": host, "task_id": tid, "agent_id": aid,
                                                "offer_id": ann.get(K8SM + "offerId")}, uid))
                entry["task_id"] = tid
            status = obj.get("status") or {}
            if status.get("reason") == "Evicted" and uid not in self.evicted:
                self.evicted.add(uid)
                node = payload["node_name"]
                out.append(ev("pod.evicted", {"pod": ref, "kind": "node_pressure", "reason": "Evicted",
                                              "message": status.get("message")}, uid,
                              {"kind": "node", "name": node} if node else None))
            return out
        m = _meta(obj)
        if resource == "nodes":
            out = [ev("node.deleted", {"name": m["name"]}) if deleted
                   else ev("node.upserted", {"node": node_payload(obj)})]
        elif resource == "namespaces":
            out = [ev("namespace.deleted", {"name": m["name"]}) if deleted
                   else ev("namespace.upserted", {"namespace": {
                       "name": m["name"], "phase": (obj.get("status") or {}).get("phase") or "Active",
                       "labels": _strmap(m.get("labels"))}})]
        elif resource == "replicationcontrollers":
            out = [ev("replication_controller.deleted", {"namespace": _ns(m), "name": m["name"]})
                   if deleted else ev("replication_controller.upserted", {"rc": rc_payload(obj)})]
        elif resource == "services":
            out = [ev("service.deleted", {"namespace": _ns(m), "name": m["name"]})
                   if deleted else ev("service.upserted", {"service": service_payload(obj)})]
        elif resource == "endpoints":
            out = [ev("endpoints.observed", endpoints_payload(obj, deleted))]
        else:
            raise ValueError(f"unknown resource {resource!r}")
        if deleted:
            self.known[resource].pop(key, None)
        else:
            self.known[resource][key] = {"rv": rv}
        return out

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

    def _k8s_event(self, obj: Obj, st: Stream, raw_type: str, live: bool) -> list[Event]:
        """A v1 Event (1.0+: ``source``, ``first/lastTimestamp``, ``count``; 1.10+ also
        ``eventTime``, ``series``, ``reportingComponent``) or an ``events.k8s.io`` Event
        (``regarding``, ``note``, ``reportingController``, ``deprecated*``)."""
        m = _meta(obj)
        inv = obj.get("involvedObject") or obj.get("regarding") or {}
        series = obj.get("series") or {}
        source = obj.get("source") or obj.get("deprecatedSource") or {}
        when = (series.get("lastObservedTime") or obj.get("lastTimestamp") or obj.get("eventTime")
                or obj.get("deprecatedLastTimestamp") or obj.get("firstTimestamp")
                or obj.get("deprecatedFirstTimestamp"))
        component = str(source.get("component") or obj.get("reportingComponent")
                        or obj.get("reportingController") or "")
        host = source.get("host") or obj.get("reportingInstance") or None
        clock, actor = component_clock(component, str(host) if host else None)
        out: list[Event] = []
        if when:
            at = at_text(when)
            if live:
                out.extend(st.check_clock(at))
        elif m.get("creationTimestamp"):
            at, clock = at_text(m["creationTimestamp"]), "apiserver"
        else:
            at, clock = st.adapter_time(), "adapter"
        ns = m.get("namespace") or inv.get("namespace") or DEFAULT_NAMESPACE
        count = max(1, int(obj.get("count") or series.get("count") or obj.get("deprecatedCount") or 1))
        reason = obj.get("reason") or "Unknown"
        uid = inv.get("uid") or None
        involved = {"kind": inv.get("kind") or "Unknown", "name": inv.get("name") or "unknown", "uid": uid}

        def ev(type_: str, payload: Obj) -> Event:
            return st.event(type_, payload, occurred_at=at, clock=clock, raw_type=raw_type,
                            correlation_id=uid, actor=actor)

        message = obj.get("message") or obj.get("note")
        out.append(ev("k8s_event.recorded", {"namespace": ns, "involved": involved, "reason": reason,
                                             "message": str(message or ""), "count": count}))
        kinds = {"Evicted": "node_pressure", "TaintManagerEviction": "node_controller"}
        if inv.get("kind") == "Pod" and reason in kinds and uid and inv.get("name") and uid not in self.evicted:
            self.evicted.add(uid)
            ref = {"namespace": inv.get("namespace") or ns, "name": inv["name"], "uid": uid}
            out.append(ev("pod.evicted", {"pod": ref, "kind": kinds[reason], "reason": reason,
                                          "message": message}))
        return out


def documents(data: bytes) -> Iterator[tuple[int, bytes, Any]]:
    """The JSON documents of a capture file, in order: ``(position, raw bytes, document)``.

    Reads JSON lines and concatenated (pretty-printed) JSON alike. A document that
    does not decode comes as a ``ValueError`` in place of the document, with the raw
    bytes up to the next line that starts a top-level object (``{`` in column 0, as
    JSON lines and ``kubectl -o json`` write them), where reading resumes.
    """
    text = data.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    pos, n, seq = 0, len(text), 0
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            return
        try:
            doc, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            nxt = text.find("\n{", pos + 1)
            end = n if nxt < 0 else nxt + 1
            hint = " (YAML? capture with -o json)" if not text[pos].startswith(("{", "[")) else ""
            yield seq, text[pos:end].encode(), ValueError(f"{exc}{hint}")
        else:
            yield seq, text[pos:end].encode(), doc
        seq += 1
        pos = end
