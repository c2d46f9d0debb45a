"""Export a cluster's log to archives, follow it in segments, import archives into a topic.

What an export holds is chosen by two points (``select``), read as every
reading command reads them (``Target.of_point``): ``offset:N``; a TIME that is
**source time** (when events happened, like ``state --at``); or with
``known`` a **log time** (when they were recorded, like ``state --known-at``).
An archive is one contiguous piece of the log (the chain runs through it), so a
source-time window ``[FROM, TO]`` selects from the first record whose event
happened in the window to the last one that did; records in between that
happened outside it (late arrivals) come along. Worked example: log ``o0
occurred 10:00``, ``o1 10:07``, ``o2 10:03`` (late), ``o3 10:09``, ``o4 10:20``;
the window 10:05..10:10 selects ``o1..o3`` (``o2`` comes along); the same TIMEs
as log times select what was *recorded* from 10:05 to 10:10.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kmevents.replay import archive
from kmevents.replay.engine import Target
from kmevents.replay.records import LogRecord, origin_header
from kmevents.replay.sources import Source

from kmevents import chain
from kmevents.errors import UsageError
from kmevents.reducer import REDUCER_VERSION
from kmevents.store.snapshots import Snapshots, is_delta

log = logging.getLogger("kmevents.replay.archiving")

#: Default spacing of the snapshots an archive keeps (``--snapshot-every``): a
#: point-in-time read from archives alone folds at most about this many records
#: plus the processors' snapshot interval. Each snapshot costs the compressed
#: state (~6 MB for the simulator's default cluster), whatever the log's length.
SNAPSHOT_EVERY = 50_000


@dataclass(frozen=True)
class Selection:
    """The offsets ``start..end`` (inclusive) two points select, and how they were read."""

    start: int
    end: int
    log_first: int
    log_last: int
    described: str  # "events that happened 2026-...Z .. 2026-...Z", "offsets 0..100", ...

    @property
    def empty(self) -> bool:
        return self.end < self.start

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "log_first": self.log_first, "log_last": self.log_last,
                "window": self.described}


def _occurred(value: bytes | None) -> str | None:
    try:
        ev = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    occ = ev.get("occurred_at") if isinstance(ev, dict) else None
    return occ if type(occ) is str else None


async def select(src: Source, start_point: Target | None, end_point: Target | None) -> Selection:
    """The offsets of ``src`` between two points (each None: that end of the log); see the module
    docstring. A source-time point costs one scan of the log's ``occurred_at``s."""
    first, last = await src.covers()
    start, end = first, last
    if start_point is not None:
        if start_point.offset is not None:
            start = max(start_point.offset, first)
        elif start_point.known_at is not None:
            found = await src.offset_for_time(start_point.known_at.ms)
            start = last + 1 if found is None else found
    if end_point is not None:
        if end_point.offset is not None:
            end = min(end_point.offset, last)
        elif end_point.known_at is not None:
            found = await src.offset_for_time(end_point.known_at.ms + 1)
            end = last if found is None else found - 1
    lo = start_point.at.iso if start_point is not None and start_point.at is not None else None
    hi = end_point.at.iso if end_point is not None and end_point.at is not None else None
    if lo is not None or hi is not None:
        found_lo: int | None = None
        found_hi: int | None = None
        async for batch in src.batches(start if lo is None else first, end if hi is None else last):
            for r in batch:
                occ = _occurred(r.value)
                if occ is None or (lo is not None and occ < lo) or (hi is not None and occ > hi):
                    continue
                if found_lo is None:
                    found_lo = r.offset
                found_hi = r.offset
        if lo is not None:
            start = last + 1 if found_lo is None else max(start, found_lo)
        if hi is not None:
            end = first - 1 if found_hi is None else min(end, found_hi)
    return Selection(start, end, first, last, _describe(start_point, end_point))


def _describe(a: Target | None, b: Target | None) -> str:
    def one(t: Target | None, open_end: str) -> str:
        if t is None:
            return open_end
        if t.offset is not None:
            return f"offset {t.offset}"
        return (t.at or t.known_at).iso

    kinds = {("happened" if t.at is not None else "recorded" if t.known_at is not None else "offset")
             for t in (a, b) if t is not None}
    what = ("events that happened" if kinds == {"happened"} else "records logged" if kinds == {"recorded"}
            else "records")
    return f"{what} {one(a, 'the start')} .. {one(b, 'the end')}"


def refuse_empty(sel: Selection, cluster: str) -> None:
    """An empty selection is a question the log cannot answer: say what the log holds instead."""
    if not sel.empty:
        return
    if sel.log_last < sel.log_first:
        raise UsageError(f"the log of {cluster} has no records", hint="check --cluster and --topic")
    raise UsageError(f"nothing selected: no record of {cluster} between the points ({sel.described}); the log "
                     f"holds offsets {sel.log_first}..{sel.log_last}",
                     hint="TIMEs are source times (when events happened); add --known for log times, or use "
                          "offset:N; `kmevents state --offset N` shows an offset's times")


async def chain_before(src: Source, cluster: str, offset: int, snapshots: Snapshots | None = None) -> str | None:
    """The cluster's chain head just before ``offset`` (hashing forward from a snapshot entry or the start)."""
    first, _ = await src.covers()
    head = await src.chain_start()
    start = first
    if snapshots is not None:
        entries = [e for e in await snapshots.entries(cluster) if first - 1 <= int(e["offset"]) < offset]
        if entries:
            head, start = str(entries[-1]["chain"]), int(entries[-1]["offset"]) + 1
    if head is None:
        return None
    if offset <= start:
        return head
    async for batch in src.batches(start, offset - 1):
        for r in batch:
            head = chain.link(head, r.key, r.value)
    return head


async def export(src: Source, path: str | Path, *, cluster: str, topic: str, start: int, end: int,
                 chain_head_start: str | None, on_batch: Callable[[int], None] | None = None,
                 keep: Callable[[LogRecord], bool] | None = None,
                 filtered: dict[str, Any] | None = None, snapshots: Snapshots | None = None,
                 snapshot_every: int = SNAPSHOT_EVERY) -> dict[str, Any]:
    """Write the cluster's records with ``start <= offset <= end`` to one archive; returns its header.

    ``keep`` leaves out the records it refuses (an archive for a token that may
    see only some namespaces); ``filtered`` then says why in the header, and the
    archive carries no chain heads (see ``ArchiveWriter``) and no snapshots.
    ``snapshots``: where to take the snapshots the archive keeps (about one per
    ``snapshot_every`` offsets; 0: none), each only when its chain head equals
    the records' at its offset.
    """
    assert src.partition is not None
    assert (keep is None) == (filtered is None), "a filtered archive says how it was filtered"
    return await _write(path, src.batches(start, end), cluster=cluster, partition=src.partition, topic=topic,
                        start=start, end=end, chain_head_start=chain_head_start, snapshots=snapshots,
                        snapshot_every=snapshot_every, keep=keep, filtered=filtered, on_batch=on_batch)


async def _write(path: str | Path, batches: AsyncIterator[list[LogRecord]], *, cluster: str, partition: int,
                 topic: str, start: int, end: int, chain_head_start: str | None, snapshots: Snapshots | None,
                 snapshot_every: int, keep: Callable[[LogRecord], bool] | None = None,
                 filtered: dict[str, Any] | None = None,
                 on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """One archive of ``batches`` (records of ``[start, end]``) and the snapshots it keeps; its header."""
    chosen = await _snapshots_for(snapshots, cluster, start, end, snapshot_every) if filtered is None else []
    w = archive.ArchiveWriter(path, cluster=cluster, partition=partition, topic=topic, covers_from=start,
                              chain_head_start=chain_head_start, filtered=filtered,
                              heads_at={int(e["offset"]) for e in chosen})
    try:
        async for batch in batches:
            for r in batch:
                if keep is None or keep(r):
                    w.add(r)
            if on_batch is not None and batch:
                on_batch(batch[-1].offset)
        if snapshots is not None:
            await _add_snapshots(w, snapshots, chosen)
    except BaseException:
        w.abort()
        raise
    return w.close(covers_to=end)


async def _one_batch(recs: list[LogRecord]) -> AsyncIterator[list[LogRecord]]:
    yield recs


async def _snapshots_for(snapshots: Snapshots | None, cluster: str, start: int, end: int,
                         every: int) -> list[dict[str, Any]]:
    """The snapshots inside ``[start, end]`` an archive keeps: the first at least ``every``
    offsets after ``start - 1``, then each at least ``every`` after the previous one kept."""
    if snapshots is None or every <= 0:
        return []
    kept, last = [], start - 1
    for e in await snapshots.entries(cluster):
        off = int(e["offset"])
        if start <= off <= end and int(e.get("reducer_version", REDUCER_VERSION)) == REDUCER_VERSION \
                and not is_delta(e) and off - last >= every:
            kept.append(e)
            last = off
    return kept


async def _add_snapshots(w: archive.ArchiveWriter, snapshots: Snapshots, chosen: list[dict[str, Any]]) -> None:
    for e in chosen:
        off = int(e["offset"])
        if w.heads.get(off) != e["chain"]:
            log.warning("snapshot left out of the archive: its chain head is not the records' at its offset",
                        extra={"offset": off, "snapshot_chain": e["chain"], "records_chain": w.heads.get(off)})
            continue
        data = await snapshots.state_bytes(e)
        if data is None:
            log.warning("snapshot left out of the archive: its bytes cannot be read", extra={"offset": off})
            continue
        occurred = e.get("max_occurred_at")
        w.add_snapshot(data, offset=off, chain_head=str(e["chain"]), reducer_version=REDUCER_VERSION,
                       max_occurred_at=occurred if isinstance(occurred, str) else None)


def existing_segments(folder: Path, cluster: str) -> list[dict[str, Any]]:
    out = []
    for p in sorted(folder.glob(f"{cluster}-*{archive.SUFFIX}")):
        h = archive.read_header(p)
        if h.get("cluster") == cluster:
            out.append({**h, "path": str(p)})
    return sorted(out, key=lambda h: int(h["covers_from"]))


async def follow(src: Source, folder: str | Path, *, cluster: str, topic: str, segment_records: int = 100_000,
                 poll_seconds: float = 2.0, max_seconds: float | None = None, max_segments: int | None = None,
                 refresh: Callable[[], Source] | None = None, say: Callable[[str], None] = print,
                 snapshots: Snapshots | None = None, snapshot_every: int = SNAPSHOT_EVERY) -> list[dict[str, Any]]:
    """Export continuously in segments; resumes after the last segment already in ``folder``.

    Each segment covers a contiguous offset range and carries the chain head
    at its start (the previous segment's end), so segments verify one after
    another, and the snapshots of its range as ``export`` keeps them. Stops
    after ``max_seconds`` or ``max_segments`` (tests), or Ctrl-C.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prev = existing_segments(folder, cluster)
    if prev:
        nxt, head = int(prev[-1]["covers_to"]) + 1, prev[-1]["chain_head_end"]
    else:
        first, _ = await src.covers()
        nxt, head = first, await src.chain_start()
    written: list[dict[str, Any]] = []
    started = time.monotonic()
    while True:
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
        if max_segments is not None and len(written) >= max_segments:
            break
        if refresh is not None:
            src = refresh()
        _, last = await src.covers()
        if last >= nxt:
            recs: list[LogRecord] = []
            end = last
            async for batch in src.batches(nxt, last):
                recs.extend(batch)
                if len(recs) >= segment_records:
                    end = recs[segment_records - 1].offset
                    recs = recs[:segment_records]
                    break
            seg = folder / archive.segment_name(cluster, nxt, end)
            assert src.partition is not None
            h = await _write(seg, _one_batch(recs), cluster=cluster, partition=src.partition, topic=topic, start=nxt,
                             end=end, chain_head_start=head, snapshots=snapshots, snapshot_every=snapshot_every)
            written.append({**h, "path": str(seg)})
            say(f"segment {seg.name}: {h['count']} records, offsets {nxt}..{end}, chain {h['chain_head_end']}, "
                f"{len(h['snapshots'])} snapshots")
            nxt, head = end + 1, h["chain_head_end"]
            continue
        await asyncio.sleep(poll_seconds)
    return written


async def import_archive(kafka_settings: Any, path: str | Path, *, topic: str, partition: int,
                         on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Produce an archive's records into ``topic``/``partition`` (new offsets), bytes unchanged.

    Each record carries its original partition, offset and log-append time in
    the ``kmevents-origin`` header, so readers use the original positions and
    the chain over the imported topic equals the original chain.
    """
    from kmevents.adapters import kafka as kafka_adapter

    header = archive.read_header(path)
    await kafka_adapter.ensure_topics(kafka_settings, [kafka_adapter.TopicSpec(
        topic, max(partition + 1, 1), kafka_settings.replication_factor,
        {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1"})])
    p = kafka_adapter.producer(kafka_settings)
    await p.start()
    n = 0
    try:
        for batch in archive.iter_batches(path):
            futs = [await p.send(topic, r.value, key=r.key, partition=partition,
                                 headers=[origin_header(int(header["partition"]), r.offset, r.timestamp)])
                    for r in batch]
            await asyncio.gather(*futs)
            n += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        await p.stop()
    return {"imported": n, "topic": topic, "partition": partition, "archive": header}
