"""Mesos v1 scheduler API event stream -> catalogue events (pure parser).

Only the subscribed framework receives its stream (offers are private to it),
so this parser runs where the framework forwards its own stream: k8sm's
instrumentation tees every event it receives (schemas/README.md, "Adapters and
mappings"). A forwarder may give each event its position (``seq``) and the
time it received it (``received_at``, clock ``scheduler``); a jump in ``seq``
becomes ``source.gap``.

Mapping (raw ``type`` -> kmevents type):

    SUBSCRIBED             master.elected (master_info changed) + framework.registered
                           (framework.reregistered on a later SUBSCRIBED of the same id)
    OFFERS                 offer.offered, one per offer
    INVERSE_OFFERS         inverse_offer.offered, one per inverse offer
    RESCIND                offer.rescinded
    RESCIND_INVERSE_OFFER  inverse_offer.rescinded
    UPDATE                 task.status_updated (occurred_at: the status timestamp)
    FAILURE                executor.removed (with executor_id) or agent.removed reason "lost"
    ERROR                  master.error
    MESSAGE                none: opaque executor data, no catalogue type (counted in ``skipped``)
    HEARTBEAT              none (counted in ``heartbeats``)
"""

from __future__ import annotations

import time
from typing import Any

from kmevents.sources import mesos_values as mv
from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    Clock,
    Event,
    Skipped,
    Stream,
    TypedEventParser,
    at_nanos,
    at_seconds,
    at_text,
)
from kmevents.sources.mesos_operator import master_info_v1

Obj = dict[str, Any]


class SchedulerParser(TypedEventParser):
    """Scheduler API events in, catalogue envelopes out. No I/O.

    ``framework_info`` is the ``FrameworkInfo`` (v1 JSON) the framework
    subscribed with; ``SUBSCRIBED`` carries only the id, so without it no
    ``framework.registered`` is made (counted in ``skipped``).
    """

    def __init__(self, cluster: str, stream_id: str, *, framework_info: Obj | None = None,
                 now: Clock = time.time, skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.stream = Stream(cluster, "mesos.scheduler", stream_id, now=now, skew_threshold=skew_threshold)
        self.framework_info = framework_info
        self.framework_id: str | None = None
        self.master_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.heartbeats = 0
        self.skipped = Skipped()
        self._received: tuple[str, str] | None = None

    def feed(self, event: Obj, seq: int | None = None, received_at: Any = None) -> list[Event]:
        """One scheduler event; ``received_at``: when the forwarder received it (any time form)."""
        self._received = (at_time(received_at), "scheduler") if received_at is not None else None
        return self._dispatch(event, seq)

    def _when(self) -> tuple[str, str]:
        return self._received or (self.stream.adapter_time(), "adapter")

    def _ev(self, type_: str, payload: Obj, raw: str, corr: str | None = None) -> Event:
        at, clock = self._when()
        return self.stream.event(type_, payload, occurred_at=at, clock=clock, raw_type=raw,
                                 correlation_id=corr)

    def _subscribed(self, body: Obj) -> list[Event]:
        out: list[Event] = []
        hb = body.get("heartbeat_interval_seconds")
        if isinstance(hb, (int, float)):
            self.heartbeat_interval = float(hb)
        if isinstance(body.get("master_info"), dict):
            info = master_info_v1(body["master_info"])
            if info["id"] != self.master_id:
                out.append(self._ev("master.elected", {"master": info,
                                                        "previous_master_id": self.master_id}, "SUBSCRIBED"))
                self.master_id = info["id"]
        fid = mv.vid(body.get("framework_id"))
        if self.framework_info is None or fid is None:
            self.skipped.add("SUBSCRIBED without the framework's FrameworkInfo")
        else:
            fw = mv.framework_v1({**self.framework_info, "id": {"value": fid}})
            again = self.framework_id == fid
            out.append(self._ev("framework.reregistered" if again else "framework.registered",
                                {"framework": fw}, "SUBSCRIBED"))
        self.framework_id = fid or self.framework_id
        return out

    def _offers(self, body: Obj) -> list[Event]:
        out = []
        for o in body.get("offers") or []:
            oid = mv.vid(o.get("id"))
            offer = {"id": oid, "framework_id": mv.vid(o.get("framework_id")),
                     "agent_id": mv.vid(o.get("agent_id")), "hostname": o.get("hostname"),
                     "resources": mv.resources_v1(o.get("resources"))}
            out.append(self._ev("offer.offered", {"offer": offer}, "OFFERS", oid))
        return out

    def _inverse_offers(self, body: Obj) -> list[Event]:
        out = []
        for o in body.get("inverse_offers") or []:
            unav = o.get("unavailability") or {}
            start = mv.nanos(unav.get("start"))
            dur = mv.nanos(unav.get("duration"))
            iid = mv.vid(o.get("id"))
            io = {"id": iid, "framework_id": mv.vid(o.get("framework_id")),
                  "agent_id": mv.vid(o.get("agent_id")),
                  "unavailability": {"start": at_nanos(start or 0),
                                     "duration_seconds": dur / 1e9 if dur is not None else None}}
            out.append(self._ev("inverse_offer.offered", {"inverse_offer": io}, "INVERSE_OFFERS", iid))
        return out

    def _rescind(self, body: Obj) -> list[Event]:
        oid = mv.vid(body.get("offer_id"))
        return [self._ev("offer.rescinded", {"offer_id": oid}, "RESCIND", oid)]

    def _rescind_inverse(self, body: Obj) -> list[Event]:
        iid = mv.vid(body.get("inverse_offer_id"))
        return [self._ev("inverse_offer.rescinded", {"inverse_offer_id": iid}, "RESCIND_INVERSE_OFFER", iid)]

    def _update(self, body: Obj) -> list[Event]:
        status = mv.status_v1(body.get("status") or {})
        out: list[Event] = []
        if status["timestamp"] is not None:
            at = at_seconds(status["timestamp"])
            clock = "master" if status["source"] == "SOURCE_MASTER" else "agent"
            out.extend(self.stream.check_clock(at))
        else:
            at, clock = self._when()
        out.append(self.stream.event("task.status_updated", {"status": status}, occurred_at=at,
                                     clock=clock, raw_type="UPDATE"))
        return out

    def _failure(self, body: Obj) -> list[Event]:
        aid = mv.vid(body.get("agent_id"))
        xid = mv.vid(body.get("executor_id"))
        if aid is None:
            self.skipped.add("FAILURE without agent_id")
            return []
        if xid is not None:
            ex = {"executor_id": xid, "framework_id": self.framework_id or "unknown", "agent_id": aid}
            return [self._ev("executor.removed", {"executor": ex}, "FAILURE")]
        return [self._ev("agent.removed", {"agent_id": aid, "reason": "lost"}, "FAILURE")]

    def _error(self, body: Obj) -> list[Event]:
        return [self._ev("master.error", {"message": str(body.get("message", ""))}, "ERROR")]

    def _message(self, body: Obj) -> list[Event]:
        self.skipped.add("MESSAGE (opaque executor data; no catalogue type)")
        return []

    def _heartbeat(self, body: Obj) -> list[Event]:
        self.heartbeats += 1
        return []


def at_time(value: Any) -> str:
    """Canonical time of a forwarder's ``received_at`` (float seconds or RFC 3339)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return at_seconds(float(value))
    return at_text(str(value))


SchedulerParser.HANDLERS = {
    "SUBSCRIBED": SchedulerParser._subscribed,
    "OFFERS": SchedulerParser._offers,
    "INVERSE_OFFERS": SchedulerParser._inverse_offers,
    "RESCIND": SchedulerParser._rescind,
    "RESCIND_INVERSE_OFFER": SchedulerParser._rescind_inverse,
    "UPDATE": SchedulerParser._update,
    "FAILURE": SchedulerParser._failure,
    "ERROR": SchedulerParser._error,
    "MESSAGE": SchedulerParser._message,
    "HEARTBEAT": SchedulerParser._heartbeat,
}
