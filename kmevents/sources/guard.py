"""Driving a parser so that no record is lost without a trace (DESIGN.md rules 4 and 10).

:meth:`Guard.call` feeds one raw record to a parser entry point and accounts for it
in the source's :class:`~kmevents.sources.summary.Tally`:

- the record is counted (``records``), and whether it gave events (``with_events``);
- the reasons the parser added to its skipped counts during the call are added to the
  tally (parsers share one ``Skipped`` across streams; the difference before/after the
  call attributes each reason to the right source; calls are synchronous, so two
  clients of one parser never interleave inside one);
- records the parser quarantined itself (``parser.outcomes.take_quarantined()``) are taken;
- when the parser *raises* (a bug, an input nobody foresaw), the record is quarantined
  with the exception as its reason, at the position the parser's stream reached (every
  parser numbers the record first thing), and the stream goes on with the next record.

Quarantined records wait in :attr:`Guard.pending` until the runner or the importer
hands them to its sink (the quarantine topic, or the dry run's file); each is logged
once, as it is taken (with the traceback the first time an exception type is seen for
a source).

:meth:`Guard.wrap` applies the same to the entry point a live client calls
(``parser.feed_record`` for the operator stream, ``parser.feed`` for the state poller
and the watches, ``parser.relist``), replacing the bound method on that one parser
instance: the clients stay as they are and still get a list of events back.

Parsers that predate ``outcomes`` expose ``skipped`` (a ``Skipped``); both are read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kmevents.sources._common import Event, Quarantined, Stream
from kmevents.sources.prechecks import Verdict
from kmevents.sources.summary import Summary, Tally

log = logging.getLogger("kmevents.sources")

Position = Callable[[], tuple[str, int]]


@dataclass(frozen=True)
class Held:
    """A quarantined record on its way to the sink, with what the runner knows about it."""

    record: Quarantined
    source: str
    """The tally it counts in (``k8s/pods``, a file name)."""
    kind: str
    """The source kind (``k8s.watch``, ``mesos.state``...)."""
    origin: str | None = None
    """Where it was read: ``FILE:LINE`` (imports), else None."""


def raw_bytes(raw: Any) -> bytes:
    """A record's bytes: as received when we have them, else its JSON."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode()
    try:
        return orjson.dumps(raw, default=str)
    except TypeError:
        return repr(raw).encode()


def skipped_counts(parser: Any) -> dict[str, int]:
    """The parser's skipped counts by reason: ``outcomes.skipped`` (or the older ``skipped``)."""
    outcomes = getattr(parser, "outcomes", None)
    skipped = getattr(outcomes, "skipped", None) if outcomes is not None else getattr(parser, "skipped", None)
    counts = getattr(skipped, "counts", None)
    return counts if isinstance(counts, dict) else {}


def stream_position(parser: Any) -> tuple[str, int]:
    """``(stream_id, seq)`` of a parser with one ``stream`` attribute (all but the Kubernetes one)."""
    st = getattr(parser, "stream", None)
    if st is None or callable(st):
        return "unknown", -1
    return str(st.stream_id), max(int(st.seq), 0)


class Guard:
    """Counts, catches and keeps (see the module docstring). One per run."""

    def __init__(self, summary: Summary) -> None:
        self.summary = summary
        self.pending: list[Held] = []
        self._traced: set[tuple[str, str]] = set()

    def call(self, parser: Any, source: str, kind: str, fn: Callable[..., list[Event]], raw: Any, /,
             *args: Any, position: Position | None = None, origin: str | None = None,
             precheck: Callable[..., Verdict | None] | None = None, **kwargs: Any) -> list[Event]:
        """``fn(*args, **kwargs)`` for one raw record of ``source``; never raises for the record.

        (The first five parameters are positional-only: ``fn``'s own keyword arguments, such as
        a parser's ``raw=``, pass through untouched.)

        ``precheck(*args, **kwargs)``: a :class:`~kmevents.sources.prechecks.Verdict` keeps the
        record from the parser (quarantined, or skipped), None lets it through."""
        if precheck is not None and (verdict := precheck(*args, **kwargs)) is not None:
            st = getattr(parser, "stream", None)
            if isinstance(st, Stream):
                st.record()  # the record keeps its position in the stream, as one that gives no event
            if verdict.quarantine:
                stream_id, seq = (position or functools.partial(stream_position, parser))()
                self.quarantine(source, kind, stream_id, seq, raw, verdict.reason, origin=origin)
            else:
                self.skip(source, verdict.reason)
            return []
        tally = self.summary.tally(source)
        counts = skipped_counts(parser)
        before = dict(counts)
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the point: one record never stops the stream
            stream_id, seq = (position or functools.partial(stream_position, parser))()
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0] or type(exc).__name__
            trace = (source, type(exc).__name__) not in self._traced
            self._traced.add((source, type(exc).__name__))
            log.warning("a %s record could not be parsed and is quarantined: %s", kind, reason,
                        exc_info=exc if trace else None,
                        extra={"source": source, "stream_id": stream_id, "seq": seq, "origin": origin})
            self._hold(tally, Held(Quarantined(stream_id, seq, reason, raw_bytes(raw)), source, kind, origin),
                       logged=True)
            out = []
        tally.records += 1
        if out:
            tally.with_events += 1
        for reason, n in counts.items():
            d = n - before.get(reason, 0)
            if d > 0:
                tally.skip(reason, d)
        self.drain(parser, source, kind, origin)
        return out

    def drain(self, parser: Any, source: str, kind: str, origin: str | None = None) -> None:
        """Take the records ``parser`` quarantined itself (``outcomes.take_quarantined()``)."""
        outcomes = getattr(parser, "outcomes", None)
        take = getattr(outcomes, "take_quarantined", None)
        if take is None:
            return
        tally = self.summary.tally(source)
        for q in take():
            self._hold(tally, Held(q, source, kind, origin))

    def quarantine(self, source: str, kind: str, stream_id: str, seq: int, raw: Any, reason: str, *,
                   origin: str | None = None) -> None:
        """A record the reader itself could not read (not JSON, a truncated frame): counted as a
        record of ``source`` and quarantined."""
        tally = self.summary.tally(source)
        tally.records += 1
        self._hold(tally, Held(Quarantined(stream_id, seq, reason, raw_bytes(raw)), source, kind, origin))

    def skip(self, source: str, reason: str) -> None:
        """A record the reader read and deliberately did not give a parser (counted as skipped)."""
        tally = self.summary.tally(source)
        tally.records += 1
        tally.skip(reason)

    def _hold(self, tally: Tally, held: Held, *, logged: bool = False) -> None:
        tally.quarantine(held.record.reason)
        if not logged:
            log.warning("a %s record could not be read and is quarantined: %s", held.kind, held.record.reason,
                        extra={"source": held.source, "stream_id": held.record.stream_id,
                               "seq": held.record.seq, "origin": held.origin})
        self.pending.append(held)

    def take(self) -> list[Held]:
        out, self.pending = self.pending, []
        return out

    def wrap(self, parser: Any, method: str, *, kind: str, source: Callable[..., str] | str,
             raw: Callable[..., Any], position: Callable[..., tuple[str, int]] | None = None,
             precheck: Callable[..., Verdict | None] | None = None) -> None:
        """Route a live client's calls of ``parser.<method>`` through :meth:`call`.

        ``source``: the tally name, or a function of the call's arguments (the Kubernetes
        parser serves every resource: ``lambda resource, *_: f"k8s/{resource}"``);
        ``raw``: the call's arguments -> the raw record; ``position``: the call's
        arguments -> ``(stream_id, seq)`` after a failure (default: ``parser.stream``).
        """
        fn = getattr(parser, method)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> list[Event]:
            name = source(*args, **kwargs) if callable(source) else source
            pos = functools.partial(position, *args, **kwargs) if position is not None else None
            return self.call(parser, name, kind, fn, raw(*args, **kwargs), *args, position=pos,
                             precheck=precheck, **kwargs)

        setattr(parser, method, guarded)
