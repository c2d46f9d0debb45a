"""Export a cluster's log to archives, follow it in segments, import archives into a topic."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from kmevents.replay import archive
from kmevents.replay.records import LogRecord, origin_header
from kmevents.replay.sources import Source

from kmevents import chain
from kmevents.reducer import REDUCER_VERSION
from kmevents.store.snapshots import Snapshots, is_delta

log = logging.getLogger("kmevents.replay.archiving")

#: Default spacing of the snapshots an archive keeps (``--snapshot-every``): a
#: point-in-time read from archives alone folds at most about this many records
#: plus the processors' snapshot interval. Each snapshot costs the compressed
#: state (~6 MB for the simulator's default cluster), whatever the log's length.
SNAPSHOT_EVERY = 50_000


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
        w.add_snapshot(data, offset=off, chain_head=str(e["chain"]), reducer_version=REDUCER_VERSION)


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
