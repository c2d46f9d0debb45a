"""Kubernetes audit records -> who wrote what (``k8s_write.recorded``), and the pod deletions and
evictions that only the audit log can tell apart.

Input: one audit ``Event`` per record: a line of ``--audit-log-path`` (``feed_line``), a
decoded object (``feed``), or a webhook's ``EventList`` (``feed_list``: each item is one
record; items without their own ``apiVersion`` take the list's). A parser never raises for
one record: what it cannot read is quarantined (``outcomes.quarantine``, the raw record kept
with its position and the reason), what it reads and maps to nothing is counted by reason
in ``outcomes.skipped``.

Versions (``apiVersion``; any other is quarantined, and counted there):

    audit.k8s.io/v1alpha1   1.7 (the webhook's EventList; 1.7's log backend wrote text, see
                            below), and 1.8-1.11 when asked for: ``timestamp`` (whole seconds,
                            when the request arrived), from 1.9 also ``stageTimestamp``;
                            ``objectRef.apiVersion`` is ``group/version``
    audit.k8s.io/v1beta1    1.8-1.11 (the default): 1.8 has ``timestamp`` only; 1.9+ also
                            ``requestReceivedTimestamp`` and ``stageTimestamp``; ``objectRef``
                            has ``apiGroup`` and ``apiVersion`` apart
    audit.k8s.io/v1         1.12+: ``requestReceivedTimestamp`` and ``stageTimestamp`` only

``occurred_at`` is the record's own time, clock ``apiserver``: ``stageTimestamp`` (when the
request reached the stage, microseconds), else ``timestamp`` (v1alpha1/v1beta1 of 1.7-1.8:
when it arrived, seconds), else ``requestReceivedTimestamp``; a record with none is
quarantined. Never the adapter's clock: an imported file keeps its times.

One event per request: at its final stage, ``ResponseComplete`` (or ``Panic``, which is a
failure). ``RequestReceived`` and ``ResponseStarted`` records are counted
(``stage RequestReceived``). Then, in this order, counted and mapped to nothing:

    no objectRef                      "non-resource get" (/healthz, /version, ...)
    a kind kmevents does not keep,    "<verb> <resource>[.<group>][/<subresource>]":
    a read, a status report           "get pods", "list configmaps", "create
                                      clusterrolebindings.rbac.authorization.k8s.io",
                                      "patch nodes/status", "create pods/exec"
    a leader-election lock            "update endpoints (leader-election lock kube-system/kube-scheduler)"
    a dry run (?dryRun=All)           "dry run create pods"
    not 2xx, or Panic                 "failed delete pods (404)", "failed create pods/eviction (429)"

What is left is a write that took effect to a kind kmevents keeps (``create``, ``update``,
``patch``, ``delete``, ``deletecollection`` of ``pods``, ``pods/eviction``, ``pods/binding``,
``bindings``, ``replicationcontrollers``, ``replicationcontrollers/scale``, ``services``,
``endpoints``, ``namespaces``, ``nodes``, core group) and gives:

    every one                         k8s_write.recorded: verb, object, the authenticated user
                                      and the impersonated one, code, level; the replicas of a
                                      scale and the node of a binding when the body was logged
    create pods/eviction              + pod.evicted, kind "api", before it
    delete pods                       + pod.deleted (reason "deleted through the API"), before
                                      it; by the node controller's service account also
                                      pod.evicted, kind "node_controller"

The ``actor`` is the impersonated user when the request impersonated one (``impersonatedUser``),
else the authenticated user; the authenticated one is kept beside it (``user`` in the
attribution, and the eviction's message). The pod of a delete or an eviction is named by
namespace/name, with its uid when the record gives it (``objectRef.uid``, the logged Pod or
deletion Status) or the watch parser has seen the pod (``pod_uid``); at level ``Metadata`` it
often has none, and the fold resolves the pod by namespace/name (``handlers_k8s._live_pod``).

Bodies (``requestObject``, ``responseObject``) are read for a name, a uid, a scale's replicas
and a binding's node only: nothing else of them (a Secret's data, a pod's env) is ever copied.

Not read: the text lines of 1.7's log backend and of ``--audit-log-format=legacy``
(``2017-09-05T06:08:19.885328047-04:00 AUDIT: id="..." ...``): quarantined with that reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from kmevents.sources._common import DEFAULT_SKEW_SECONDS, Clock, Event, Outcomes, Stream, at_text

Obj = dict[str, Any]
UidLookup = Callable[[str, str], str | None]

V1ALPHA1, V1BETA1, V1 = "audit.k8s.io/v1alpha1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1"
API_VERSIONS = (V1ALPHA1, V1BETA1, V1)
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: Core-group resources whose writes are attributed, with the subresources that count as
#: writes to them (None: the object itself). Status subresources are the owner's reports
#: (the kubelet's node and pod status), not changes someone made: counted, not attributed.
KEPT: dict[str, tuple[str | None, ...]] = {
    "pods": (None, "eviction", "binding"),
    "bindings": (None,),
    "replicationcontrollers": (None, "scale"),
    "services": (None,),
    "endpoints": (None,),
    "namespaces": (None,),
    "nodes": (None,),
}
#: The object kind a resource's request and response bodies hold.
OBJECT_KINDS = {"pods": "Pod", "bindings": "Binding", "replicationcontrollers": "ReplicationController",
                "services": "Service", "endpoints": "Endpoints", "namespaces": "Namespace", "nodes": "Node"}
#: Endpoints the control plane's leader election rewrites every few seconds (1.7-1.13 lock
#: on an Endpoints object): not a service's endpoints.
LEADER_LOCKS = frozenset({"kube-system/kube-scheduler", "kube-system/kube-controller-manager",
                          "kube-system/cloud-controller-manager"})
#: The node controller with per-controller credentials (``--use-service-account-credentials``).
#: With the shared ``system:kube-controller-manager`` identity its pod deletes cannot be told
#: from the replication manager's scale-downs, so they are plain deletes.
NODE_CONTROLLER = "system:serviceaccount:kube-system:node-controller"
LEGACY_TEXT = ("legacy audit text format (1.7's log backend, or --audit-log-format=legacy): "
               "not read; run the API server with --audit-log-format=json")


def actor_of(username: str) -> Obj:
    """Audit username -> catalogue actor."""
    if username.startswith("system:node:"):
        return {"kind": "node", "name": username.removeprefix("system:node:")}
    if username == "system:kube-scheduler" or "k8sm-scheduler" in username:
        return {"kind": "scheduler", "name": username}
    if username == "system:kube-controller-manager" or (
            username.startswith("system:serviceaccount:kube-system:") and username.endswith("controller")):
        return {"kind": "controller", "name": username.rpartition(":")[2]}
    return {"kind": "user", "name": username or "unknown"}


class Unreadable(ValueError):
    """A record this parser cannot read (quarantined with this message)."""


def _obj(v: Any) -> Obj:
    """A JSON object field, or {} when absent; anything else is unreadable."""
    if v is None:
        return {}
    if type(v) is not dict:
        raise Unreadable(f"expected an object, got {type(v).__name__}")
    return v


def _in_body(body: Any, *path: str) -> Any:
    """A value inside a logged request or response body, or None. Bodies are whatever the
    client sent (a JSON patch is a list): read leniently, never a reason to refuse the record."""
    for key in path:
        if type(body) is not dict:
            return None
        body = body.get(key)
    return body


def _body_text(body: Any, *path: str) -> str | None:
    v = _in_body(body, *path)
    return v if type(v) is str and v else None


def _text(v: Any) -> str | None:
    """A string field; None when absent or empty."""
    if v is None or v == "":
        return None
    if type(v) is not str:
        raise Unreadable(f"expected a string, got {type(v).__name__}")
    return v


class AuditParser:
    """Audit records in, catalogue envelopes out. No I/O.

    ``pod_uid(namespace, name)``: the watch parser's view of a pod's uid, when one runs
    beside it. ``now`` and ``skew_threshold``: the adapter clock the record times are
    compared with (``source.clock_skew``); an import of an old file passes
    ``skew_threshold=math.inf``.
    """

    def __init__(self, cluster: str, stream_id: str = "audit", *, pod_uid: UidLookup | None = None,
                 now: Clock = time.time, skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.stream = Stream(cluster, "k8s.audit", stream_id, now=now, skew_threshold=skew_threshold)
        self.pod_uid = pod_uid or (lambda ns, name: None)
        self.outcomes = Outcomes()
        self.skipped = self.outcomes.skipped
        """Alias of ``outcomes.skipped`` (older callers read it)."""

    # -- input shapes ------------------------------------------------------------------

    def feed_line(self, line: bytes | str, seq: int | None = None) -> list[Event]:
        """One line of an audit log file (JSON lines). A blank line is no record; a line
        holding an ``EventList`` is one record per item."""
        raw = line.encode() if isinstance(line, str) else bytes(line)
        if not raw.strip():
            return []
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            out = self.stream.record(seq)
            reason = LEGACY_TEXT if b" AUDIT: " in raw else f"undecodable JSON: {e}"
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, raw, reason)
            return out
        if type(obj) is dict and obj.get("kind") == "EventList":
            return self.feed_list(obj)
        return self._feed(obj, seq, raw)

    def feed_list(self, event_list: Obj) -> list[Event]:
        """An ``EventList`` (what the webhook backend POSTs): each item is one record. Items
        carry no ``apiVersion`` of their own in real lists: they take the list's."""
        items = event_list.get("items") if type(event_list) is dict else None
        if type(items) is not list:
            if type(event_list) is dict and items is None:
                return []  # an empty list
            out = self.stream.record(None)
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, event_list,
                                     "an EventList whose items are not a list")
            return out
        out = []
        api = event_list.get("apiVersion")
        for item in items:
            if type(item) is dict and "apiVersion" not in item and api is not None:
                item = {**item, "apiVersion": api}
            out.extend(self._feed(item, None, None))
        return out

    def feed(self, ev: Obj, seq: int | None = None) -> list[Event]:
        """One decoded audit ``Event`` (an ``EventList`` is taken item by item)."""
        if type(ev) is dict and ev.get("kind") == "EventList":
            return self.feed_list(ev)
        return self._feed(ev, seq, None)

    def _feed(self, ev: Any, seq: int | None, raw: bytes | None) -> list[Event]:
        out = self.stream.record(seq)
        try:
            out.extend(self._map(ev))
        except (Unreadable, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = str(e) if isinstance(e, Unreadable) else f"{type(e).__name__}: {e}"
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, raw if raw is not None else ev,
                                     reason)
        return out

    # -- one record --------------------------------------------------------------------

    def _skip(self, reason: str) -> list[Event]:
        self.skipped.add(reason)
        return []

    def _map(self, ev: Any) -> list[Event]:
        if type(ev) is not dict:
            raise Unreadable(f"an audit record is a JSON object, not {type(ev).__name__}")
        api = ev.get("apiVersion")
        if api not in API_VERSIONS:
            raise Unreadable(f"apiVersion {api!r} is not an audit version this adapter reads "
                             f"({', '.join(API_VERSIONS)})")
        if ev.get("kind", "Event") != "Event":
            raise Unreadable(f"kind {ev.get('kind')!r} is not an audit Event")
        stage = ev.get("stage")
        if stage not in STAGES:
            raise Unreadable(f"stage {stage!r} is not an audit stage ({', '.join(STAGES)})")
        if stage in ("RequestReceived", "ResponseStarted"):
            return self._skip(f"stage {stage}")
        verb = _text(ev.get("verb"))
        if verb is None:
            raise Unreadable("no verb")
        if ev.get("objectRef") is None:
            return self._skip(f"non-resource {verb}")
        ref = _obj(ev.get("objectRef"))
        resource = _text(ref.get("resource")) or "?"
        sub = _text(ref.get("subresource"))
        group = _text(ref.get("apiGroup"))
        if group is None and "/" in (_text(ref.get("apiVersion")) or ""):  # v1alpha1: "group/version"
            group = str(ref["apiVersion"]).rpartition("/")[0]
        what = f"{verb} {resource}{'.' + group if group else ''}{'/' + sub if sub else ''}"
        if group is not None or verb not in WRITE_VERBS or sub not in KEPT.get(resource, ()):
            return self._skip(what)
        ns, name = _text(ref.get("namespace")), _text(ref.get("name"))
        if resource == "endpoints" and f"{ns}/{name}" in LEADER_LOCKS:
            return self._skip(f"{what} (leader-election lock {ns}/{name})")
        if "dryRun" in parse_qs(urlsplit(_text(ev.get("requestURI")) or "").query):
            return self._skip(f"dry run {what}")
        if stage == "Panic":
            return self._skip(f"failed {what} (panic)")
        code = _obj(ev.get("responseStatus")).get("code")
        if type(code) is not int:
            raise Unreadable(f"{what}: responseStatus.code is {code!r}, so whether it took effect is unknown")
        if not 200 <= code < 300:
            return self._skip(f"failed {what} ({code})")
        return self._write(ev, api, verb, resource, sub, ns, name, code, what)

    def _write(self, ev: Obj, api: str, verb: str, resource: str, sub: str | None, ns: str | None,
               name: str | None, code: int, what: str) -> list[Event]:
        user = _text(_obj(ev.get("user")).get("username"))
        if user is None:
            raise Unreadable("no user.username")
        as_user = _text(_obj(ev.get("impersonatedUser")).get("username"))
        effective = as_user or user
        actor = actor_of(effective)
        audit_id = _text(ev.get("auditID"))
        if audit_id is None:
            raise Unreadable("no auditID")
        stamp = _text(ev.get("stageTimestamp")) or (None if api == V1 else _text(ev.get("timestamp"))) \
            or _text(ev.get("requestReceivedTimestamp"))
        if stamp is None:
            raise Unreadable("no time: none of stageTimestamp, timestamp, requestReceivedTimestamp")
        at = at_text(stamp)
        req, resp = ev.get("requestObject"), ev.get("responseObject")
        if resource in ("namespaces", "nodes"):
            name, ns = name or (ns if resource == "namespaces" else None), None
        body = resp if sub is None and _in_body(resp, "kind") == OBJECT_KINDS[resource] else None
        if name is None:  # a create: the name is in a logged body (not for generateName at Metadata level)
            name = _body_text(req, "metadata", "name") or _body_text(body, "metadata", "name")
        uid = self._uid(ev, resource, sub, ns, name, body, resp)
        replicas = target = None
        if resource == "replicationcontrollers" and verb != "delete":
            for src in (req, resp):
                r = _in_body(src, "spec", "replicas")
                if type(r) is int and r >= 0:
                    replicas = r
                    break
        if resource == "bindings" or sub == "binding":
            target = _body_text(req, "target", "name")
        out: list[Event] = []
        pod_ns = ns or "default"
        corr = uid if resource in ("pods", "bindings") else None

        def mk(type_: str, payload: Obj) -> Event:
            return self.stream.event(type_, payload, occurred_at=at, clock="apiserver", raw_type=what,
                                     actor=actor, correlation_id=corr)

        if resource == "pods" and name is not None:
            pod = {"namespace": pod_ns, "name": name, "uid": uid}
            by = effective + (f", authenticated as {user}" if as_user else "")
            if sub == "eviction" and verb == "create":
                out.append(mk("pod.evicted", {"pod": pod, "kind": "api", "reason": "Evicted",
                                              "message": f"evicted through the eviction API by {by}"}))
            elif sub is None and verb == "delete":
                if effective == NODE_CONTROLLER:
                    out.append(mk("pod.evicted", {"pod": pod, "kind": "node_controller",
                                                  "reason": "NodeControllerEviction", "message": None}))
                out.append(mk("pod.deleted", {"pod": pod, "reason": "deleted through the API"}))
        out.append(mk("k8s_write.recorded", {
            "audit_id": audit_id, "verb": verb, "resource": resource, "subresource": sub,
            "namespace": ns, "name": name, "uid": uid, "user": user, "impersonated_user": as_user,
            "code": code, "level": _text(ev.get("level")) or "Metadata", "replicas": replicas, "target": target,
        }))
        return self.stream.check_clock(at) + out

    def _uid(self, ev: Obj, resource: str, sub: str | None, ns: str | None, name: str | None,
             body: Any, resp: Any) -> str | None:
        """The written object's uid: ``objectRef.uid`` (set from a logged request body, e.g. a
        binding's), the logged object, a deletion's Status details, or the watch's view."""
        uid = _text(_obj(ev.get("objectRef")).get("uid")) or _body_text(body, "metadata", "uid")
        if uid is None and sub is None and _in_body(resp, "kind") == "Status" and name is not None \
                and _in_body(resp, "details", "name") == name:
            uid = _body_text(resp, "details", "uid")
        if uid is None and resource == "pods" and name is not None:
            uid = self.pod_uid(ns or "default", name)
        return uid
