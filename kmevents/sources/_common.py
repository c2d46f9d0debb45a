"""What every source shares: the envelope builder, source times, stream checks, backoff.

No I/O here. ``Stream`` numbers the raw records of one source stream and wraps
payloads into catalogue envelopes (producer form: ``event_id`` and
``dedupe_key`` are left for ingest to derive).

Positions (``source.seq``) — the rule every adapter follows:

- ``seq`` is the position of the *raw record* the envelope was made from, in
  its stream, counted from 0: the n-th RecordIO record of a Mesos
  subscription, the n-th watch event of a Kubernetes watch, the n-th write of
  the k8sm leader key (etcd ``version - 1``), the n-th forwarded scheduler event.
- One record may give several envelopes (``OFFERS`` with three offers, a
  ``SUBSCRIBED`` snapshot): they share the record's ``seq``. A record that
  gives none (``HEARTBEAT``) still uses its position.
- When the source (or a forwarder) supplies the position, a jump is a lost
  record: ``Stream.record(seq)`` returns a ``source.gap`` event. Backwards
  positions (a forwarder restarted) are reported the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kmevents.contract.ids import derive_event_id
from kmevents.contract.registry import SCHEMA_VERSIONS
from kmevents.contract.times import canonical_time, from_micros

Event = dict[str, Any]
Clock = Callable[[], float]
"""The adapter's clock: float seconds since the epoch (``time.time`` unless a test injects one)."""

#: Default threshold beyond which a source clock is reported as skewed.
DEFAULT_SKEW_SECONDS = 30.0


def at_seconds(seconds: float) -> str:
    """Canonical time of float epoch seconds."""
    return from_micros(round(seconds * 1_000_000))


def at_nanos(nanos: int) -> str:
    """Canonical time of Mesos ``TimeInfo.nanoseconds``."""
    return from_micros(nanos // 1000)


def at_text(text: str) -> str:
    """Canonical time of an RFC 3339 string (Kubernetes ``metav1.Time``/``MicroTime``)."""
    return canonical_time(text)


def seconds_of(canonical: str) -> float:
    """Epoch seconds of a canonical time string."""
    when = dt.datetime.strptime(canonical, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return when.timestamp()


def digest(obj: Any) -> str:
    """``sha256:<hex>`` of the sorted-key JSON of ``obj``."""
    return "sha256:" + hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def event_id_of(cluster: str, dedupe_key: str) -> str:
    """The event id ingest will derive for ``dedupe_key`` (to fill ``causation_id``)."""
    return derive_event_id(cluster, dedupe_key)


@dataclass
class Skipped:
    """Raw records a parser read but turned into no event, by reason (rule 4: counted, never silent)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


@dataclass(frozen=True)
class Quarantined:
    """A raw record a parser could not read (DESIGN.md rule 8: kept aside, never dropped without
    a trace): the record's bytes exactly as received, its position in its stream, and why.

    Distinct from :class:`Skipped` (records read and deliberately turned into no event:
    heartbeats, kinds out of scope): a quarantined record is one the parser *failed* on.
    The runner and ``kmevents import`` write them to the quarantine topic (or, with
    ``--dry-run``, a file) and count them; the stream goes on.
    """

    stream_id: str
    seq: int
    reason: str
    raw: bytes

    def as_dict(self) -> dict[str, Any]:
        import base64

        return {"stream_id": self.stream_id, "seq": self.seq, "reason": self.reason,
                "raw_b64": base64.b64encode(self.raw).decode()}


@dataclass
class Outcomes:
    """What a parser did with the records it was given, beside the events it returned: the
    records skipped by reason, and those quarantined. Every parser has one (``.outcomes``);
    whoever drives it drains ``quarantined`` (``take_quarantined``) and reports the counts.

    The invariant a conformance test checks: records in = records that gave events
    + skipped + quarantined.
    """

    skipped: Skipped = field(default_factory=Skipped)
    quarantined: list[Quarantined] = field(default_factory=list)
    quarantined_total: int = 0

    def quarantine(self, stream_id: str, seq: int, raw: bytes | str | Any, reason: str) -> None:
        if isinstance(raw, str):
            raw = raw.encode()
        elif not isinstance(raw, (bytes, bytearray)):
            try:
                raw = orjson.dumps(raw, default=str)
            except TypeError:  # an integer beyond 64 bits (a caller's own decoding): still kept
                raw = repr(raw).encode()
        self.quarantined.append(Quarantined(stream_id, seq, reason, bytes(raw)))
        self.quarantined_total += 1

    def take_quarantined(self) -> list[Quarantined]:
        out, self.quarantined = self.quarantined, []
        return out


class Stream:
    """One source stream: its identity, its record positions, and the envelope builder.

    ``kind`` is the catalogue's source kind (``mesos.operator``...), ``stream_id``
    one subscription/watch/connection. ``now`` is the adapter clock.
    """

    def __init__(self, cluster: str, kind: str, stream_id: str, *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.kind = kind
        self.stream_id = stream_id
        self.now = now
        self.seq = -1
        """Position of the current record (-1 before the first)."""
        self.skew_threshold = skew_threshold
        self._skew_reported: float | None = None
        self._last_micros = 0

    def record(self, seq: int | None = None) -> list[Event]:
        """Advance to the next raw record; ``seq``: the position the source gave, if any.

        Returns a ``source.gap`` event when ``seq`` is not the expected one.
        """
        expected = self.seq + 1
        if seq is None:
            self.seq = expected
            return []
        self.seq = seq
        if seq == expected:
            return []
        return [self.event("source.gap", {"stream_id": self.stream_id, "expected_seq": expected,
                                          "got_seq": seq},
                           occurred_at=self.adapter_time(), clock="adapter", raw_type="SEQUENCE_GAP")]

    def adapter_time(self) -> str:
        """The adapter clock's time, strictly increasing within the stream.

        Catalogue keys of adapter-clocked types include ``occurred_at``
        (``replication_controller.upserted|ns/name|<occurred_at>``): two
        changes of one object read within the same microsecond would
        otherwise share a key and the second would be taken for a duplicate.
        """
        micros = max(round(self.now() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return from_micros(micros)

    def check_clock(self, occurred_at: str) -> list[Event]:
        """Compare a source-stamped time with the adapter's clock.

        Called only for events the source stamps as it sends them (a status
        update's timestamp, an audit stage time, a Kubernetes Event's last
        time), so the difference is skew plus transit. Reported when beyond
        the threshold, then again only when it moved by more than the
        threshold or came back within it and left again.
        """
        skew = seconds_of(occurred_at) - self.now()
        if abs(skew) <= self.skew_threshold:
            self._skew_reported = None
            return []
        last = self._skew_reported
        if last is not None and abs(skew - last) <= self.skew_threshold:
            return []
        self._skew_reported = skew
        return [self.event("source.clock_skew", {"stream_id": self.stream_id,
                                                 "skew_seconds": round(skew, 6)},
                           occurred_at=self.adapter_time(), clock="adapter", raw_type="CLOCK_SKEW")]

    def event(self, type_: str, payload: dict[str, Any], *, occurred_at: str, clock: str,
              raw_type: str, actor: dict[str, str] | None = None,
              correlation_id: str | None = None, causation_id: str | None = None) -> Event:
        """One catalogue envelope in producer form (ids left for ingest)."""
        return {
            "type": type_, "schema_version": SCHEMA_VERSIONS[type_], "cluster": self.cluster,
            "source": {"kind": self.kind, "stream_id": self.stream_id, "seq": max(self.seq, 0)},
            "occurred_at": occurred_at, "clock": clock, "raw_type": raw_type, "actor": actor,
            "correlation_id": correlation_id, "causation_id": causation_id, "payload": payload,
        }


@dataclass
class Backoff:
    """Bounded, jittered exponential backoff; seeded so tests are repeatable.

    Delay n (from 0) is ``min(cap, base * 2**n)`` scaled by a factor drawn
    uniformly from ``[1 - jitter, 1]`` ("equal jitter" keeps a floor so a
    crowd of clients does not hammer a recovering master).
    """

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5
    seed: int | None = None
    attempt: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next(self) -> float:
        raw = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return raw * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0


def quarantined(stream: Stream, outcomes: Outcomes, seq: int | None, raw: Any, reason: str) -> list[Event]:
    """A record the parser could not read: it takes its position in ``stream`` (``seq``: the
    source's, if any) and is quarantined there. Returns what the position gave (a
    ``source.gap``, or nothing)."""
    out = stream.record(seq)
    outcomes.quarantine(stream.stream_id, stream.seq, raw, reason)
    return out


#: What mapping one record may raise: the record is quarantined and the stream goes on.
PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class TypedEventParser:
    """Base of the Mesos stream parsers: events ``{"type": T, ...}`` dispatched to
    ``HANDLERS[T](self, event)`` (the whole event: the body is usually
    ``event[T.lower()]``, see :meth:`body`). Each record ends in exactly one
    place: the events it gave, ``skipped`` (unknown types, and records that gave
    nothing, by reason) or quarantined (undecodable, or a handler failed on it,
    ``PARSE_ERRORS``). Every record uses its position."""

    HANDLERS: dict[str, Callable[[Any, dict[str, Any]], list[Event]]] = {}
    stream: Stream
    outcomes: Outcomes
    skipped: Skipped

    @staticmethod
    def body(event: dict[str, Any]) -> dict[str, Any]:
        """``event[type.lower()]`` when it is an object, else ``{}``."""
        b = event.get(str(event.get("type", "")).lower())
        return b if isinstance(b, dict) else {}

    def feed_record(self, record: bytes, seq: int | None = None) -> list[Event]:
        """One RecordIO record (JSON bytes)."""
        try:
            obj = orjson.loads(record)
        except orjson.JSONDecodeError as exc:
            return quarantined(self.stream, self.outcomes, seq, record, f"not JSON: {exc}")
        return self._dispatch(obj, seq, record)

    def feed(self, event: dict[str, Any], seq: int | None = None) -> list[Event]:
        return self._dispatch(event, seq, event)

    def _dispatch(self, event: Any, seq: int | None, raw: Any) -> list[Event]:
        out = self.stream.record(seq)
        if not isinstance(event, dict):
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, raw,
                                     f"not a JSON object: {type(event).__name__}")
            return out
        kind = event.get("type")
        handler = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.skipped.add(f"type {kind!r}")
            return out
        before = sum(self.skipped.counts.values())
        try:
            got = handler(self, event)
        except PARSE_ERRORS as exc:
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, raw,
                                     f"{kind}: {type(exc).__name__}: {exc}")
            return out
        if not got and sum(self.skipped.counts.values()) == before:
            self.skipped.add(f"{kind}: nothing new")
        out.extend(got)
        return out


async def pause(stopped: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stopped`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopped.wait(), seconds)
