"""Where a point by occurrence (``--at T``) may stop reading the log.

``at=T`` folds every record whose ``occurred_at <= T``, in log order (replay/engine.py).
A late arrival, recorded after events that happened later, may sit anywhere after T's
records, so without help the read goes on to the log's end: at the large profile a point in
the middle of the log read 752,000 records past its snapshot to apply 2,007 (17 s; 3 s now).

The worker's touched-entity index says, for each block of ~1,000 records, the earliest
``occurred_at`` of its events (kmevents/store/touched.py, ``min_occurred_at``). A block whose
earliest time is after T holds nothing the point applies. So the read ends with the last
record that may: walking the blocks from the newest back (:func:`read_end`),

- the records past the newest block (the worker has not folded them yet) are scanned for their
  times, and the last one that occurred by T ends the read;
- else the newest block that may hold such an event (its earliest time is by T, or it does not
  say: written before blocks carried it) ends the read at its last offset;
- a hole in the index (a damaged block left out, a range no block covers) may hold anything:
  the read goes through it;
- blocks that all begin after T back to the read's start: nothing past the start is read.

The state is the same as reading to the log's end (only records that would be skipped as
``LATER`` are left unread); what the replay reports of its read (``covered_to_offset``, the chain
head there, records scanned) says where it stopped, and ``log_last_offset`` where the log ends.

Worked example: T = 10:00, the read starts at 5,000 (a snapshot at 4,999), the log ends at
9,500. Blocks 5,000..5,999 (earliest 09:58), 6,000..6,999 (09:59: a late arrival), 7,000..7,999
(10:01), 8,000..8,999 (10:03); records 9,000..9,500 are not in a block yet and all occurred
after 10:00. The read ends at 6,999: 2,000 records instead of 4,501.

A search to a time (``kmevents search --to T``) ends the same way; a report followed to a time too.

The other side: a search *from* a time S (``--from S``, ``--since 5m``) shows the records whose
``occurred_at >= S``, and one that occurred by S may sit anywhere before them. Each block also says the
latest time of its events (``latest_occurred_at``), so :func:`read_start` walks the blocks newest first
down to the range's start and begins the scan at the oldest block that may hold an event at or after S
(or a hole, an untimed block, the records past the index): the blocks before it all ended before S.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import orjson
from kmevents.replay.sources import Source

from kmevents.store.touched import Block

if TYPE_CHECKING:
    from kmevents.store.snapshots import Snapshots

log = logging.getLogger("kmevents.replay.occurrence")
T = TypeVar("T")

#: Records past the newest block scanned for their times at most; a longer tail (a worker far
#: behind, or none running) is read through as if there were no index.
TAIL_SCAN_RECORDS: Final = 50_000


@dataclass
class Start:
    """Where a scan from a time begins (``begin``), and the last offset the index speaks for (``covered``:
    the newest block's last; ``start - 1`` with no block): the records past it the workers have not
    folded yet."""

    begin: int
    covered: int


@dataclass
class Cut:
    """Where the read ends (``end``), and the earliest ``occurred_at`` the walk saw of what it leaves
    out or scanned (what a point before everything says of the log: replay's ``log_start``)."""

    end: int
    earliest: str | None = None

    def saw(self, occ: str | None) -> None:
        if occ is not None and (self.earliest is None or occ < self.earliest):
            self.earliest = occ


async def cut_from(src: Source, snapshots: Snapshots, cluster: str, at: str, start: int, end: int) -> Cut | None:
    """:func:`read_end` over the touched-entity index ``snapshots`` keeps for ``cluster``; None (read
    to ``end``) where it keeps none, or when it cannot be read (that only costs time)."""
    return await _walk(snapshots.index_heads(cluster, at), cluster,
                       "reading to the end of the range for late arrivals",
                       lambda heads: read_end(src, heads, at, start, end))


async def start_from(snapshots: Snapshots, cluster: str, since: str, start: int, stop: int) -> Start | None:
    """:func:`read_start` over the touched-entity index ``snapshots`` keeps for ``cluster``; None where
    it keeps none, or when it cannot be read (then the scan begins at ``start``: slower, never wrong)."""
    return await _walk(snapshots.index_heads(cluster, since=since), cluster,
                       "a search from a time scans from the range's start",
                       lambda heads: read_start(heads, since, start, stop))


async def _walk(heads: AsyncGenerator[Block, None] | None, cluster: str, instead: str,
                walk: Callable[[AsyncGenerator[Block, None]], Awaitable[T]]) -> T | None:
    """``walk(heads)``, the heads closed after it; None where there are none, or when they cannot be
    read (logged with what the reader does ``instead``: an index that cannot be read only costs time)."""
    if heads is None:
        return None
    try:
        async with contextlib.aclosing(heads):
            return await walk(heads)
    except Exception as exc:  # noqa: BLE001 - an index that cannot be read only costs time
        log.warning("touched-entity index not readable: %s", instead,
                    extra={"cluster": cluster, "error": f"{type(exc).__name__}: {exc}"})
        return None


async def read_start(heads: AsyncIterator[Block], since: str, start: int, stop: int) -> Start:
    """Where a scan of the events occurred at or after ``since`` over ``start..stop`` may begin: the first
    offset it must read (``stop + 1``: none); ``heads``: the index's blocks, newest first. Every record
    before it is in a block whose events all occurred before ``since`` (or had no time)."""
    b = await anext(heads, None)
    if b is None:
        return Start(start, start - 1)
    covered = b.last
    begin = stop + 1
    if covered < stop:  # records the index does not speak for yet: read
        begin = max(covered + 1, start)
    expected = min(covered, stop)  # the newest offset not yet accounted for
    while b is not None and expected >= start:
        if b.first > expected:
            b = await anext(heads, None)
            continue
        if b.last < expected:  # a hole: records no block speaks for
            begin = b.last + 1
        if b.may_hold_from(since):
            begin = b.first
        expected = b.first - 1
        b = await anext(heads, None)
    if expected >= start:  # below the oldest block: not indexed
        begin = start
    return Start(max(begin, start), covered)


async def read_end(src: Source, heads: AsyncIterator[Block], at: str, start: int, stop: int) -> Cut:
    """Where a fold of the events occurred by ``at`` over ``start..stop`` may end: the last offset it
    must read (``start - 1``: none); ``heads``: the index's blocks, newest first
    (``Snapshots.index_heads``). With no block at all, ``stop``."""
    if stop < start:
        return Cut(stop)
    b = await anext(heads, None)
    if b is None:
        return Cut(stop)
    cut = Cut(stop)
    covered = b.last
    if covered < stop:  # records the index does not speak for yet
        lo = max(covered + 1, start)
        if stop - lo + 1 > TAIL_SCAN_RECORDS:
            return cut
        last_by = await _last_occurred_by(src, lo, stop, at, cut)
        if last_by is not None:
            cut.end = last_by
            return cut
    expected = min(covered, stop)  # the newest offset not yet accounted for
    while b is not None and expected >= start:
        if b.first > expected:  # (blocks past what is accounted for: nothing to decide there)
            b = await anext(heads, None)
            continue
        if b.last < expected or b.may_hold_by(at):  # a hole (records no block speaks for), or may hold
            cut.end = expected
            return cut
        cut.saw(b.min_occurred_at)
        expected = b.first - 1
        b = await anext(heads, None)
    cut.end = expected if expected >= start else start - 1
    return cut


async def _last_occurred_by(src: Source, lo: int, hi: int, at: str, cut: Cut) -> int | None:
    """The last offset of ``lo..hi`` whose record's event occurred at or before ``at`` (None: none;
    ``cut`` sees the others' times). A record that does not decode, or has no time, is one the
    fold skips too."""
    found = None
    async for batch in src.batches(lo, hi):
        for rec in batch:
            try:
                ev = orjson.loads(rec.value or b"")
            except orjson.JSONDecodeError:
                continue
            occ = ev.get("occurred_at") if type(ev) is dict else None
            if type(occ) is str:
                if occ <= at:
                    found = rec.offset
                else:
                    cut.saw(occ)
    return found


__all__ = ["TAIL_SCAN_RECORDS", "Cut", "Start", "cut_from", "read_end", "read_start", "start_from"]
