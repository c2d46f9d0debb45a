"""A cluster's first and last events in the log (``kmevents clusters``).

Several clusters may share a partition, so the first and last records *of the
cluster* are found by reading forward from the log start and backward from its
end, in windows growing 16-fold (one record each when the cluster owns the
partition, a few reads when it shares it with busier ones).
"""

from __future__ import annotations

import contextlib
from typing import Any

from kmevents.replay.records import LogRecord
from kmevents.replay.sources import KafkaSource

from kmevents.contract import DecodeError, decode_fast
from kmevents.timespec import iso_of_ms


def _event(rec: LogRecord) -> dict[str, Any]:
    try:
        ev = decode_fast(rec.value or b"")
    except DecodeError:
        ev = {}
    occ = ev.get("occurred_at")
    return {"offset": rec.offset, "type": ev.get("type"), "occurred_at": occ if isinstance(occ, str) else None,
            "recorded_at": iso_of_ms(rec.timestamp)}


async def first_and_last(src: KafkaSource) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
    """The cluster's first and last events in ``src`` (None when it has none) and the log's
    next offset (its end)."""
    first, last = await src.covers()
    if last < first:
        return None, None, last + 1
    head = None
    async with contextlib.aclosing(src.batches(first, last)) as it:
        async for batch in it:
            head = _event(batch[0])
            break
    tail = None
    window = 1
    hi = last
    while tail is None and head is not None and hi >= first:
        lo = max(first, hi - window + 1)
        found = None
        async for batch in src.batches(lo, hi):
            found = batch[-1]
        if found is not None:
            tail = _event(found)
        hi, window = lo - 1, window * 16
    return head, tail, last + 1
