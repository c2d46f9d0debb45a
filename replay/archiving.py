"""Export a cluster's log to archives, follow it in segments, import archives into a topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmevents.replay import archive
from kmevents.replay.records import LogRecord, origin_header
from kmevents.replay.snapshots import SnapshotStore
from kmevents.replay.sources import Source

from kmevents import chain


async def chain_before(src: Source, cluster: str, offset: int, snapshots: SnapshotStore | None = None) -> str | None:
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
                 filtered: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the cluster's records with ``start <= offset <= end`` to one archive; returns its header.

    ``keep`` leaves out the records it refuses (an archive for a token that may
    see only some namespaces); ``filtered`` then says why in the header, and the
    archive carries no chain heads (see ``ArchiveWriter``).
    """
    assert src.partition is not None
    assert (keep is None) == (filtered is None), "a filtered archive says how it was filtered"
    w = archive.ArchiveWriter(path, cluster=cluster, partition=src.partition, topic=topic, covers_from=start,
                              chain_head_start=chain_head_start, filtered=filtered)
    try:
        async for batch in src.batches(start, end):
            for r in batch:
                if keep is None or keep(r):
                    w.add(r)
            if on_batch is not None:
                on_batch(batch[-1].offset)
    except BaseException:
        w.abort()
        raise
    return w.close(covers_to=end)


def existing_segments(folder: Path, cluster: str) -> list[dict[str, Any]]:
    out = []
    for p in sorted(folder.glob(f"{cluster}-*{archive.SUFFIX}")):
        h = archive.read_header(p)
        if h.get("cluster") == cluster:
            out.append({**h, "path": str(p)})
    return sorted(out, key=lambda h: int(h["covers_from"]))


async def follow(src: Source, folder: str | Path, *, cluster: str, topic: str, segment_records: int = 100_000,
                 poll_seconds: float = 2.0, max_seconds: float | None = None, max_segments: int | None = None,
                 refresh: Callable[[], Source] | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Export continuously in segments; resumes after the last segment already in ``folder``.

    Each segment covers a contiguous offset range and carries the chain head
    at its start (the previous segment's end), so segments verify one after
    another. Stops after ``max_seconds`` or ``max_segments`` (tests), or Ctrl-C.
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
            tmp = folder / archive.segment_name(cluster, nxt, end)
            assert src.partition is not None
            h = archive.write(tmp, recs, cluster=cluster, partition=src.partition, topic=topic, covers_from=nxt,
                              covers_to=end, chain_head_start=head)
            written.append({**h, "path": str(tmp)})
            log(f"segment {tmp.name}: {h['count']} records, offsets {nxt}..{end}, chain {h['chain_head_end']}")
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
