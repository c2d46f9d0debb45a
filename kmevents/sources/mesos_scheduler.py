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
    OFFERS                 offer.offered, one per offer (``"offers": [...]`` as the scheduler API
                           guide writes it, or ``{"offers": [...]}`` as scheduler.proto does)
    INVERSE_OFFERS         inverse_offer.offered, one per inverse offer
    RESCIND                offer.rescinded
    RESCIND_INVERSE_OFFER  inverse_offer.rescinded
    UPDATE                 task.status_updated (occurred_at: the status timestamp)
    FAILURE                executor.removed (with executor_id) or agent.removed reason "lost"
    ERROR                  master.error (``message`` at the top, or in ``error``)
    MESSAGE                none: opaque executor data, no catalogue type (counted in ``skipped``)
    UPDATE_OPERATION_STATUS  none: operations have no catalogue type (counted in ``skipped``)
    HEARTBEAT              none (counted in ``heartbeats`` and ``skipped``)

A record the parser cannot map is quarantined with the reason; the stream goes on.
"""

from __future__ import annotations

import time
from typing import Any

from kmevents.sources import mesos_values as mv
from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    PARSE_ERRORS,
    Clock,
    Event,
    Outcomes,
    Stream,
    TypedEventParser,
    at_nanos,
    at_seconds,
    at_text,
    quarantined,
)
from kmevents.sources.mesos_operator import master_info_v1

Obj = dict[str, Any]


class SchedulerParser(TypedEventParser):
    """Scheduler API events in, catalogue envelopes out. No I/O.

    ``framework_info`` is the ``FrameworkInfo`` (v1 JSON) the framework
    subscribed with; ``SUBSCRIBED`` carries only the id, so without it no
    ``framework.registered`` is made (and a ``SUBSCRIBED`` that gives no other
    event is counted in ``skipped``).
    """

    def __init__(self, cluster: str, stream_id: str, *, framework_info: Obj | None = None,
                 now: Clock = time.time, skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.stream = Stream(cluster, "mesos.scheduler", stream_id, now=now, skew_threshold=skew_threshold)
        self.framework_info = framework_info
        self.framework_id: str | None = None
        self.master_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.heartbeats = 0
        self.outcomes = Outcomes()
        self.skipped = self.outcomes.skipped
        self._received: tuple[str, str] | None = None

    def feed(self, event: Obj, seq: int | None = None, received_at: Any = None) -> list[Event]:
        """One scheduler event; ``received_at``: when the forwarder received it (any time form).
        A ``received_at`` that is not a time quarantines the record."""
        try:
            self._received = (at_time(received_at), "scheduler") if received_at is not None else None
        except PARSE_ERRORS as exc:
            return quarantined(self.stream, self.outcomes, seq, event,
                               f"received_at {received_at!r:.60} is not a time: {exc}")
        return self._dispatch(event, seq, event)

    def _when(self) -> tuple[str, str]:
        return self._received or (self.stream.adapter_time(), "adapter")

    def _ev(self, type_: str, payload: Obj, raw: str, corr: str | None = None) -> Event:
        at, clock = self._when()
        return self.stream.event(type_, payload, occurred_at=at, clock=clock, raw_type=raw,
                                 correlation_id=corr)

    def _subscribed(self, event: Obj) -> list[Event]:
        body = self.body(event)
        out: list[Event] = []
        info = master_info_v1(body["master_info"]) if isinstance(body.get("master_info"), dict) else None
        fid = mv.vid(body.get("framework_id"))
        fw = None
        if self.framework_info is not None and fid is not None:
            fw = mv.framework_v1({**self.framework_info, "id": {"value": fid}})
        hb = body.get("heartbeat_interval_seconds")
        if isinstance(hb, (int, float)):
            self.heartbeat_interval = float(hb)
        if info is not None and info["id"] != self.master_id:
            out.append(self._ev("master.elected", {"master": info, "previous_master_id": self.master_id},
                                "SUBSCRIBED"))
            self.master_id = info["id"]
        if fw is not None:
            again = self.framework_id == fid
            out.append(self._ev("framework.reregistered" if again else "framework.registered",
                                {"framework": fw}, "SUBSCRIBED"))
        elif not out:
            self.skipped.add("SUBSCRIBED without the framework's FrameworkInfo")
        self.framework_id = fid or self.framework_id
        return out

    def _offers(self, event: Obj) -> list[Event]:
        # The scheduler API guide writes ``"offers": [...]``; scheduler.proto (and every
        # JSON a master sends) ``"offers": {"offers": [...]}``; older guides name the id ``offer_id``.
        got = event.get("offers")
        items = got.get("offers") if isinstance(got, dict) else got
        if not isinstance(items, list):
            raise ValueError(f"OFFERS without a list of offers: {got!r:.60}")
        out = []
        for o in items:
            oid = mv.require(o.get("id") or o.get("offer_id"), "offer.id")
            offer = {"id": oid, "framework_id": mv.require(o.get("framework_id"), "offer.framework_id"),
                     "agent_id": mv.require(o.get("agent_id") or o.get("slave_id"), "offer.agent_id"),
                     "hostname": mv.text(o.get("hostname"), "offer.hostname"),
                     "resources": mv.resources_v1(o.get("resources"))}
            out.append(self._ev("offer.offered", {"offer": offer}, "OFFERS", oid))
        return out

    def _inverse_offers(self, event: Obj) -> list[Event]:
        got = event.get("inverse_offers")
        items = got.get("inverse_offers") if isinstance(got, dict) else got
        if not isinstance(items, list):
            raise ValueError(f"INVERSE_OFFERS without a list of inverse offers: {got!r:.60}")
        out = []
        for o in items:
            unav = o.get("unavailability") or {}
            start = mv.nanos(unav.get("start"))
            dur = mv.nanos(unav.get("duration"))
            iid = mv.require(o.get("id"), "inverse_offer.id")
            io = {"id": iid, "framework_id": mv.require(o.get("framework_id"), "inverse_offer.framework_id"),
                  "agent_id": mv.vid(o.get("agent_id")),
                  "unavailability": {"start": at_nanos(start or 0),
                                     "duration_seconds": dur / 1e9 if dur is not None else None}}
            out.append(self._ev("inverse_offer.offered", {"inverse_offer": io}, "INVERSE_OFFERS", iid))
        return out

    def _rescind(self, event: Obj) -> list[Event]:
        oid = mv.require(self.body(event).get("offer_id"), "rescind.offer_id")
        return [self._ev("offer.rescinded", {"offer_id": oid}, "RESCIND", oid)]

    def _rescind_inverse(self, event: Obj) -> list[Event]:
        iid = mv.require(self.body(event).get("inverse_offer_id"), "rescind_inverse_offer.inverse_offer_id")
        return [self._ev("inverse_offer.rescinded", {"inverse_offer_id": iid}, "RESCIND_INVERSE_OFFER", iid)]

    def _update(self, event: Obj) -> list[Event]:
        status = mv.status_v1(self.body(event).get("status") or {})
        out: list[Event] = []
        if status["timestamp"] is not None:
            at, clock = at_seconds(status["timestamp"]), mv.status_clock(status)
            out.extend(self.stream.check_clock(at))
        else:
            at, clock = self._when()
        out.append(self.stream.event("task.status_updated", mv.status_payload(status, self.framework_id),
                                     occurred_at=at, clock=clock, raw_type="UPDATE"))
        return out

    def _failure(self, event: Obj) -> list[Event]:
        body = self.body(event)
        aid = mv.vid(body.get("agent_id"))
        xid = mv.vid(body.get("executor_id"))
        if aid is None:
            self.skipped.add("FAILURE without agent_id")
            return []
        if xid is not None:
            ex = {"executor_id": xid, "framework_id": self.framework_id or "unknown", "agent_id": aid}
            return [self._ev("executor.removed", {"executor": ex}, "FAILURE")]
        return [self._ev("agent.removed", {"agent_id": aid, "reason": "lost"}, "FAILURE")]

    def _error(self, event: Obj) -> list[Event]:
        # scheduler.proto: ``"error": {"message"}``; the scheduler API guide: ``"message"`` at the top.
        err = event.get("error")
        msg = err.get("message") if isinstance(err, dict) else event.get("message")
        if not isinstance(msg, str):
            raise ValueError(f"ERROR without a message: {event!r:.80}")
        return [self._ev("master.error", {"message": msg}, "ERROR")]

    def _message(self, event: Obj) -> list[Event]:
        self.skipped.add("MESSAGE (opaque executor data; no catalogue type)")
        return []

    def _heartbeat(self, event: Obj) -> list[Event]:
        self.heartbeats += 1
        self.skipped.add("HEARTBEAT (liveness only)")
        return []

    def _operation_status(self, event: Obj) -> list[Event]:
        self.skipped.add("UPDATE_OPERATION_STATUS (operations: no catalogue type)")
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
    "UPDATE_OPERATION_STATUS": SchedulerParser._operation_status,
}
