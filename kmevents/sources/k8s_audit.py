"""Kubernetes audit events (``audit.k8s.io/v1`` Event) -> who evicted or deleted a pod.

Only ``ResponseComplete`` events of successful requests (2xx) are mapped:

    create pods/eviction          pod.evicted, kind "api", actor = the requester
    delete pods                   pod.deleted (reason "deleted through the API"), actor;
                                  by the node controller also pod.evicted, kind "node_controller"
    anything else                 none, counted in ``skipped``

``occurred_at`` is ``stageTimestamp`` (clock ``apiserver``). The pod uid comes
from ``objectRef.uid``, else the deleted Pod in ``responseObject``, else the
watch parser's last view of the pod (``pod_uid``); with none of them the
event is counted in ``skipped`` (``PodRef`` needs a uid). Request and response
bodies are read for ``metadata.uid`` only: nothing else of them (a Secret's
data, a pod's env) is ever copied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kmevents.sources._common import DEFAULT_SKEW_SECONDS, Clock, Event, Skipped, Stream, at_text

Obj = dict[str, Any]
UidLookup = Callable[[str, str], str | None]
NODE_CONTROLLERS = ("system:serviceaccount:kube-system:node-controller", "system:kube-controller-manager")


def actor_of(username: str) -> Obj:
    """Audit ``user.username`` -> catalogue actor."""
    if username.startswith("system:node:"):
        return {"kind": "node", "name": username.removeprefix("system:node:")}
    if username == "system:kube-scheduler" or "k8sm-scheduler" in username:
        return {"kind": "scheduler", "name": username}
    if username in NODE_CONTROLLERS or (username.startswith("system:serviceaccount:kube-system:")
                                        and username.endswith("controller")):
        return {"kind": "controller", "name": username.rpartition(":")[2]}
    return {"kind": "user", "name": username or "unknown"}


class AuditParser:
    """Audit events in, catalogue envelopes out. No I/O."""

    def __init__(self, cluster: str, stream_id: str = "audit", *, pod_uid: UidLookup | None = None,
                 now: Clock = time.time, skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.stream = Stream(cluster, "k8s.audit", stream_id, now=now, skew_threshold=skew_threshold)
        self.pod_uid = pod_uid or (lambda ns, name: None)
        self.skipped = Skipped()

    def feed_list(self, event_list: Obj) -> list[Event]:
        """An ``EventList`` (what the webhook backend POSTs): each item is one record."""
        out: list[Event] = []
        for item in event_list.get("items") or []:
            out.extend(self.feed(item))
        return out

    def feed(self, ev: Obj, seq: int | None = None) -> list[Event]:
        out = self.stream.record(seq)
        if ev.get("stage") != "ResponseComplete":
            self.skipped.add(f"stage {ev.get('stage')!r}")
            return out
        ref = ev.get("objectRef") or {}
        code = (ev.get("responseStatus") or {}).get("code", 0)
        verb, sub = ev.get("verb"), ref.get("subresource")
        if ref.get("resource") != "pods" or not (200 <= int(code) < 300) or \
                (verb, sub) not in (("create", "eviction"), ("delete", None)):
            self.skipped.add(f"{verb} {ref.get('resource')}{'/' + sub if sub else ''} ({code})")
            return out
        ns, name = ref.get("namespace") or "default", ref.get("name")
        resp = ev.get("responseObject") or {}
        uid = ref.get("uid") or ((resp.get("metadata") or {}).get("uid") if resp.get("kind") == "Pod"
                                 else None) or (self.pod_uid(ns, name) if name else None)
        if not name or not uid:
            self.skipped.add(f"{verb} pods{'/' + sub if sub else ''}: pod uid unknown")
            return out
        user = (ev.get("user") or {}).get("username") or ""
        actor = actor_of(user)
        stamp = ev.get("stageTimestamp") or ev.get("requestReceivedTimestamp")
        if stamp:
            at, clock = at_text(stamp), "apiserver"
            out.extend(self.stream.check_clock(at))
        else:
            at, clock = self.stream.adapter_time(), "adapter"
        pod = {"namespace": ns, "name": name, "uid": uid}
        raw = f"{verb} pods{'/' + sub if sub else ''}"

        def mk(type_: str, payload: Obj) -> Event:
            return self.stream.event(type_, payload, occurred_at=at, clock=clock, raw_type=raw,
                                     actor=actor, correlation_id=uid)

        if sub == "eviction":
            out.append(mk("pod.evicted", {"pod": pod, "kind": "api", "reason": "Evicted",
                                          "message": f"evicted through the eviction API by {user}"}))
            return out
        if user in NODE_CONTROLLERS or user.endswith(":node-controller"):
            out.append(mk("pod.evicted", {"pod": pod, "kind": "node_controller",
                                          "reason": "NodeControllerEviction", "message": None}))
        out.append(mk("pod.deleted", {"pod": pod, "reason": "deleted through the API"}))
        return out
