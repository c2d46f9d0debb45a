"""Replay: the state of one cluster at a point, by the one reducer (DESIGN.md rules 1, 5, 7).

Targets (exactly one, or none for "latest"):

- ``offset=N``: every record of the cluster with offset <= N;
- ``known_at=T``: what the log had **recorded** by T (log-append time, inclusive):
  the records up to the last offset whose timestamp <= T (offsets-for-times);
- ``at=T``: what had **happened** by T: the records whose ``occurred_at <= T``,
  folded in log order. Late events (recorded after others that happened later)
  count as soon as they happened; events that happened after T are skipped even
  when recorded earlier. The scan goes on past T's records for late arrivals:
  as far as the touched-entity index says a record may have happened by T
  (replay/occurrence.py; to the log's end without an index), or as ``max_lag``
  bounds it (events recorded more than max_lag after T are assumed to have
  happened after T).

Work is bounded by starting from the newest snapshot at or before the target
(``Snapshots.best``: the snapshot store, or the archives' own) when one is
available, else from the source's start.

What a replay cannot know it says, instead of printing an empty or partial state
as if it were the answer (``Replayed.log_start``, ``Replayed.incomplete``):

- a point **before the log's first event** (``at`` before anything happened,
  ``known_at`` before the first record, ``offset`` below the first): nothing is
  applied, and ``log_start`` says where the log starts (its first record's offset
  and times; for ``at``, the earliest ``occurred_at`` seen);
- a fold that starts **mid-chain** (an archive that begins mid-log, a topic whose
  start was deleted) without a snapshot, or over sources with **gaps**: entities
  created before the start are missing, and ``incomplete`` says why.

Worked example (late event): log ``o0 A occurred 10:00``, ``o1 B occurred 10:05``,
``o2 C occurred 10:01`` (C arrived late). ``at=10:02`` folds A and C;
``known_at`` the time o1 was recorded folds A and B.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.replay import occurrence
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents import chain
from kmevents.errors import UsageError
from kmevents.folding import APPLIED, LATER, UNDECODABLE, Fold
from kmevents.progress import progress_bar
from kmevents.reducer import ClusterState, Retention
from kmevents.store.snapshots import Snapshots
from kmevents.timespec import (
    TimePoint,
    iso_of_ms,
    lag_seconds,
    parse_duration,
    parse_point,
    parse_time,
)


class BadTarget(UsageError):
    """A point-in-time parameter that cannot be read; ``param`` names it (``at``, ``known_at``,
    ``offset``, ``max_lag``, or a diff's ``from``/``to``)."""

    def __init__(self, param: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param

    def one_line(self) -> str:
        """The message with its hint, on one line (an API error's ``msg``)."""
        return self.message + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class Target:
    """Where to stop. All None: the latest record."""

    offset: int | None = None
    known_at: TimePoint | None = None
    at: TimePoint | None = None
    max_lag_ms: int | None = None

    @classmethod
    def parse(cls, *, at: str | None = None, known_at: str | None = None, offset: int | None = None,
              max_lag: str | None = None, now: float | None = None) -> Target:
        """The target of the textual parameters the CLI and the API take (at most one of
        ``at``, ``known_at``, ``offset``; ``max_lag`` only with ``at``). The one parser of
        them: raises :class:`BadTarget` naming the parameter."""
        given = [n for n, v in (("at", at), ("known_at", known_at), ("offset", offset)) if v is not None]
        if len(given) > 1:
            raise BadTarget(given[1], f"give one of at, known_at, offset (got {', '.join(given)})")
        if offset is not None and offset < 0:
            raise BadTarget("offset", f"offset must be >= 0 (got {offset})")
        if max_lag is not None and at is None:
            raise BadTarget("max_lag", "max_lag only goes with at")
        param = given[0] if given else "max_lag"
        try:
            return cls(offset=offset, known_at=parse_time(known_at, now=now) if known_at is not None else None,
                       at=parse_time(at, now=now) if at is not None else None,
                       max_lag_ms=int(parse_duration(max_lag) * 1000) if max_lag is not None else None)
        except UsageError as exc:
            raise BadTarget("max_lag" if max_lag is not None and "duration" in exc.message else param,
                            exc.message, hint=exc.hint) from None

    @classmethod
    def of_point(cls, text: str, *, known: bool = False, param: str = "point", now: float | None = None) -> Target:
        """``offset:N`` or a TIME (a diff's ``--from``/``--to``); a TIME is a source time, or a
        log time with ``known``."""
        try:
            point = parse_point(text, now=now)
        except UsageError as exc:
            raise BadTarget(param, exc.message, hint=exc.hint) from None
        if point.offset is not None:
            return cls(offset=point.offset)
        return cls(known_at=point.time) if known else cls(at=point.time)

    def describe(self) -> str:
        if self.offset is not None:
            return f"offset {self.offset}"
        if self.known_at is not None:
            return f"known at {self.known_at.iso}"
        if self.at is not None:
            return f"at {self.at.iso}"
        return "latest"


@dataclass
class Replayed:
    """The outcome of a replay."""

    state: ClusterState
    cluster: str
    partition: int | None
    target: Target
    end_offset: int  # last offset the replay covered
    chain_head: str | None  # after end_offset; None when the start of the chain is unknown
    applied: int = 0
    scanned: int = 0
    skipped_later: int = 0  # --at: events after T skipped
    undecodable: int = 0
    fold_failed: int = 0  # records the reducer raised on (the worker dead-letters them too)
    last: dict[str, Any] | None = None  # the last event applied: offset, occurred_at, recorded_at, lag
    annotations: Counter[str] = field(default_factory=Counter)
    from_snapshot: int | None = None
    source: str = ""
    #: a point by occurrence read with the touched-entity index: where the read would have ended
    #: without it (the log's last offset when the replay began, or ``max_lag``'s bound);
    #: ``end_offset`` is lower when it stopped early: the records after it all happened after the
    #: point. None otherwise
    log_last: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)
    #: nothing known at the target, which lies before the log's first event: where the log starts
    #: (``offset``, ``occurred_at``, ``recorded_at`` of its first record; ``earliest_occurred_at``
    #: for an ``at`` target); ``{"offset": None}`` for an empty log
    log_start: dict[str, Any] | None = None
    #: why the state cannot be complete (the fold began mid-chain without a snapshot, or the
    #: sources miss offsets); None when it is the whole fold of the log
    incomplete: str | None = None

    def position(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster, "partition": self.partition, "target": self.target.describe(),
            "covered_to_offset": self.end_offset, "chain_head": self.chain_head,
            "last_event": self.last, "events_applied": self.applied, "records_scanned": self.scanned,
            "skipped_happened_later": self.skipped_later, "undecodable": self.undecodable,
            "fold_failed": self.fold_failed, "started_from_snapshot": self.from_snapshot,
            "source": self.source, "gaps": [list(g) for g in self.gaps],
            "annotations": dict(sorted(self.annotations.items())),
            "log_last_offset": self.log_last,
            "complete": self.incomplete is None, "incomplete": self.incomplete,
            "before_log_start": self.log_start,
        }


def last_event(rec: LogRecord, ev: dict[str, Any]) -> dict[str, Any]:
    occ = ev.get("occurred_at") if type(ev.get("occurred_at")) is str else None
    lag = lag_seconds(occ, rec.timestamp)
    return {"offset": rec.offset, "event_id": ev.get("event_id"), "type": ev.get("type"),
            "occurred_at": occ, "recorded_at": iso_of_ms(rec.timestamp),
            "ingest_lag_seconds": None if lag is None else round(lag, 6)}


async def resolve_end(src: Source, target: Target) -> int:
    """The last offset a replay to ``target`` must read."""
    first, last = await src.covers()
    if target.offset is not None:
        if target.offset > last:
            raise UsageError(f"offset {target.offset} is beyond the end of the log ({last})",
                             hint=f"give an offset <= {last}")
        return target.offset
    if target.known_at is not None:
        nxt = await src.offset_for_time(target.known_at.ms + 1)
        return last if nxt is None else nxt - 1
    if target.at is not None and target.max_lag_ms is not None:
        nxt = await src.offset_for_time(target.at.ms + target.max_lag_ms + 1)
        return last if nxt is None else nxt - 1
    return last


Hook = Callable[[LogRecord, dict[str, Any], list[dict[str, Any]], ClusterState], None]


async def replay(src: Source, cluster: str, target: Target = Target(), *,
                 snapshots: Snapshots | None = None, retention: Retention | None = None,
                 start_state: ClusterState | None = None, start_offset: int | None = None,
                 start_chain: str | None = None, on_event: Hook | None = None,
                 progress: bool = True, label: str = "replaying", progress_from: int = 200_000) -> Replayed:
    """Fold the cluster's records up to ``target`` (see the module docstring).

    A progress bar (on a terminal, with ``progress``) shows when at least
    ``progress_from`` records are to be read.

    ``on_event(record, event, annotations, state)`` is called after each event
    applied (history, search). ``start_state``/``start_offset`` continue a fold
    (diff); otherwise the newest snapshot (when ``snapshots``) or the start.
    """
    end = await resolve_end(src, target)
    first, _ = await src.covers()
    at = target.at.iso if target.at is not None else None
    st: ClusterState
    head: str | None
    from_snap = None
    if start_state is not None:
        st, start, head = start_state, (start_offset if start_offset is not None else st_offset(start_state)) + 1, start_chain
    else:
        loaded = None
        if snapshots is not None and on_event is None:
            with contextlib.suppress(Exception):  # a missing/broken snapshot only costs time
                loaded = await snapshots.best(cluster, at_or_before=end, occurred_bound=at)
        if loaded is not None and loaded.offset >= first - 1:
            st, start, head, from_snap = loaded.state, loaded.offset + 1, loaded.chain, loaded.offset
        else:
            st = ClusterState.empty(cluster, retention=retention)
            start, head = first, await src.chain_start()
    log_last = end
    cut = None
    if at is not None and snapshots is not None:
        cut = await occurrence.cut_from(src, snapshots, cluster, at, start, end)
        end = cut.end if cut is not None else end
    out = Replayed(st, cluster, src.partition, target, end, head, from_snapshot=from_snap, source=src.name)
    if cut is not None:
        out.log_last = log_last
    fold = Fold(st, head, partition=src.partition)
    fold.annotations = out.annotations
    step = fold.step
    last_rec: LogRecord | None = None
    last_ev: dict[str, Any] | None = None
    from_start = start_state is None and from_snap is None
    mid_chain = from_start and head != chain.GENESIS
    earliest: str | None = None  # the earliest occurred_at skipped by `at` while nothing applied
    total = max(end - start + 1, 0)
    with progress_bar(label, total=total, disable=not progress or total < progress_from) as bar:
        done = start
        async for batch in src.batches(start, end):
            if not batch:  # (a source may hand out an empty batch: nothing to read from start to end)
                continue
            for rec in batch:
                outcome = step(rec.offset, rec.key, rec.value, happened_by=at)
                if outcome is not APPLIED:
                    if outcome is LATER:
                        out.skipped_later += 1
                        if not out.applied and from_start:
                            occ = fold.event.get("occurred_at") if fold.event is not None else None
                            if type(occ) is str and (earliest is None or occ < earliest):
                                earliest = occ
                    elif outcome is UNDECODABLE:
                        out.undecodable += 1
                    else:
                        out.fold_failed += 1
                    continue
                ev = fold.event
                if on_event is not None:
                    on_event(rec, ev, fold.anns, st)  # type: ignore[arg-type]
                last_rec, last_ev = rec, ev
                out.applied += 1
            out.scanned += len(batch)
            if on_event is None:
                st.take_dirty()  # nobody reads it here; keep it from growing
            bar.advance(batch[-1].offset + 1 - done)
            done = batch[-1].offset + 1
            await asyncio.sleep(0)
    head = fold.head
    out.gaps = list(getattr(src, "gaps", []))
    if out.gaps:
        out.chain_head = None
    else:
        out.chain_head = head
    if last_rec is not None and last_ev is not None:
        out.last = last_event(last_rec, last_ev)
    elif from_snap is not None:
        out.last = await _event_at(src, st.offset, first)  # nothing after the snapshot: its own last
    if from_start and not (out.applied or out.undecodable or out.fold_failed):
        if cut is not None and cut.earliest is not None and (earliest is None or cut.earliest < earliest):
            earliest = cut.earliest  # (the times of what the index left unread)
        out.log_start = await _log_start(src, first, earliest if target.at is not None else None)
    elif mid_chain:
        out.incomplete = (f"the log read starts mid-chain at offset {first} ({src.name}) and no snapshot at or "
                          "before the point was found: entities created before that offset are missing")
    if out.gaps and out.incomplete is None:
        out.incomplete = f"the sources miss offsets {[list(g) for g in out.gaps]}"
    return out


async def _record_at(src: Source, offset: int) -> tuple[LogRecord, dict[str, Any] | None] | None:
    """The source's first record at or after ``offset`` and its event (None when its value is
    not a JSON object), or None when the source holds nothing there."""
    async for batch in src.batches(offset, offset):
        rec = batch[0]
        try:
            ev = orjson.loads(rec.value or b"")
        except orjson.JSONDecodeError:
            ev = None
        return rec, ev if isinstance(ev, dict) else None
    return None


async def _event_at(src: Source, offset: int | None, first: int) -> dict[str, Any] | None:
    """``last_event`` of the record at ``offset`` (the last one a snapshot's state applied), or
    None when the source no longer has it or it is not an event."""
    found = await _record_at(src, offset) if offset is not None and offset >= first else None
    if found is None:
        return None
    rec, ev = found
    return last_event(rec, ev) if rec.offset == offset and ev is not None else None


async def _log_start(src: Source, first: int, earliest: str | None) -> dict[str, Any]:
    """Where the log starts: its first record's offset and times (``{"offset": None}`` when empty)."""
    found = await _record_at(src, first)
    if found is None:
        return {"offset": None}
    rec, ev = found
    occ = ev.get("occurred_at") if ev is not None else None
    return {"offset": rec.offset, "occurred_at": occ if type(occ) is str else None,
            "recorded_at": iso_of_ms(rec.timestamp), "earliest_occurred_at": earliest}


def st_offset(st: ClusterState) -> int:
    return st.offset
