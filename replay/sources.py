"""Where replay reads one cluster's records from: the topic, archives, or both.

Every source yields the cluster's records (key == cluster) in ascending
**original** offset (see records.py), in batches, and answers:

- ``covers()``: ``(first, last)`` offsets of the partition it vouches for
  (every record of the cluster in that range is in it);
- ``chain_start()``: the chain head just before ``first`` (genesis when the
  source starts at the beginning of the log; None when unknown);
- ``offset_for_time(ms)``: the first offset recorded at or after ``ms``.

:class:`MergedSource` combines several (archives + topic): it reads them in
order of coverage and emits each original offset once (dedupe by original
offset), so archives and the topic together replay exactly like the topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from kmevents.replay import archive
from kmevents.replay.records import LogRecord, from_kafka, origin_of

from kmevents import chain
from kmevents.errors import UsageError


class Source:
    """Base: subclasses implement ``covers``, ``chain_start``, ``batches``."""

    name = "source"
    partition: int | None = None

    async def covers(self) -> tuple[int, int]:
        raise NotImplementedError

    async def chain_start(self) -> str | None:
        raise NotImplementedError

    def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        raise NotImplementedError

    async def offset_for_time(self, ms: int) -> int | None:
        """First offset whose recorded time is ``>= ms`` (a scan; subclasses do better)."""
        first, last = await self.covers()
        async for batch in self.batches(first, last):
            for r in batch:
                if r.timestamp >= ms:
                    return r.offset
        return None


class ArchiveSource(Source):
    """One archive file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header = archive.read_header(self.path)
        self.name = str(self.path)
        self.partition = int(self.header["partition"])
        self.cluster = str(self.header["cluster"])

    async def covers(self) -> tuple[int, int]:
        return int(self.header["covers_from"]), int(self.header["covers_to"])

    async def chain_start(self) -> str | None:
        h = self.header.get("chain_head_start")
        return str(h) if h else None

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        last = self.header.get("last_offset")
        first = self.header.get("first_offset")
        if last is None or last < start or (end is not None and (start > end or (first is not None and first > end))):
            return
        for batch in archive.iter_batches(self.path, start=start):
            beyond = end is not None and batch[-1].offset >= end  # nothing after this batch is wanted
            if batch[-1].offset < start:
                continue
            if batch[0].offset < start or (end is not None and batch[-1].offset > end):
                batch = [r for r in batch if r.offset >= start and (end is None or r.offset <= end)]
            if batch:
                yield batch
            if beyond:
                return
            await asyncio.sleep(0)  # let Ctrl-C and progress in


#: The fetch size of a reader of scattered records (``KafkaSource.for_points``): about one of the
#: producer's record batches (256 KiB), so a read of one offset does not bring 4 MiB (57 such reads:
#: 0.04 s of CPU against 0.19 s, BENCHMARKS.md).
POINT_FETCH_BYTES = 300_000


class KafkaSource(Source):
    """The cluster's partition of a topic (the events topic, or one filled by ``archive import``)."""

    def __init__(self, kafka_settings: Any, topic: str, partition: int, cluster: str, *,
                 reader: Any = None, records: Any = None, origin: tuple[int, bool, int] | None = None,
                 point_reader: Any = None) -> None:
        """``reader``: a ``kafka_adapter.PartitionReader`` of ``topic``/``partition`` to read
        through (kept open by its owner) instead of a new consumer per read;
        ``point_reader``: another one with small fetches, for a few records at scattered offsets
        (:meth:`for_points`);
        ``records``: a ``warm.RecordCache`` (needs ``reader``);
        ``origin``: an earlier source's ``origin`` of the same partition, so a
        successor skips reading the first record again while the log start is the same."""
        self.k = kafka_settings
        self.reader = reader
        self.point_reader = point_reader
        self.records = records if reader is not None else None
        self.topic = topic
        self.read_partition = partition  # the partition read in ``topic``
        self.partition: int = partition  # the original partition (differs in an imported copy)
        self.cluster = cluster
        self.key = cluster.encode()
        self.name = f"kafka:{topic}/{partition}"
        self._bounds: tuple[int, int] | None = None
        self._imported: bool | None = None
        #: ``(log start, imported, original partition)`` once ``imported()`` looked;
        #: the first record decides, so it holds while the log start stays.
        self.origin = origin
        self.fetch_seconds = 0.0  # time spent waiting for records (Kafka or the record cache)
        # every read here takes a record's offset, timestamp, key, value and headers only:
        # the readers make LogRecords (kmevents.records), not ConsumerRecords first
        for r in (reader, point_reader):
            if r is not None:
                r.lighten()

    def refresh(self) -> None:
        """Read the log's end again at the next read (the bounds are read once, then kept: a
        long-lived reader of a growing log, ``snapshots backfill --follow``, calls this per pass)."""
        self._bounds = None

    def for_points(self) -> KafkaSource:
        """This source read through its ``point_reader``: a read of one offset then brings a fetch
        of that reader's size (a record batch or so), not the 4 MiB a range read fetches (history
        reads the few events it shows of the blocks it read from versions records)."""
        if self.point_reader is None:
            return self
        s = KafkaSource(self.k, self.topic, self.read_partition, self.cluster, reader=self.point_reader,
                        origin=self.origin)
        s._bounds, s._imported, s.partition = self._bounds, self._imported, self.partition
        return s

    async def _raw_bounds(self) -> tuple[int, int]:
        from kmevents.adapters import kafka as kafka_adapter

        if self._bounds is None:
            if self.reader is not None:
                self._bounds = await self.reader.bounds()
            else:
                self._bounds = await kafka_adapter.partition_bounds(self.k, self.topic, self.read_partition)
        return self._bounds

    def _range(self, start: int, end: int | None, status: dict[str, int] | None = None) -> Any:
        """The partition's records in ``[start, end]`` (all keys), in batches."""
        from kmevents.adapters import kafka as kafka_adapter

        if self.reader is not None:
            return self.reader.batches(start, end, status=status,
                                       first=self._bounds[0] if self._bounds is not None else None)
        return kafka_adapter.iter_range(self.k, self.topic, self.read_partition, start, end, light=True)

    async def _mine(self, start: int, end: int, status: dict[str, int]) -> AsyncIterator[list[LogRecord]]:
        key = self.key
        async for batch in self._range(start, end, status):
            if type(batch[0]) is LogRecord:  # (a lightened reader's: kept as they come)
                out = [r for r in batch if r.key == key]
            else:
                out = [LogRecord(r.offset, r.timestamp, r.key, r.value) for r in batch if r.key == key]
            if out:
                yield out

    async def imported(self) -> bool:
        """True when the topic was filled by ``archive import`` (records carry origin headers)."""
        if self._imported is None:
            first, nxt = await self._raw_bounds()
            if self.origin is not None and self.origin[0] == first:
                self._imported, self.partition = self.origin[1], self.origin[2]
                return self._imported
            self._imported = False
            if nxt > first:
                async for batch in self._range(first, first):
                    found = origin_of(batch[0])
                    if found is not None:
                        self._imported = True
                        self.partition = found[0]
            self.origin = (first, self._imported, self.partition)
        return self._imported

    async def covers(self) -> tuple[int, int]:
        first, nxt = await self._raw_bounds()
        if not await self.imported():
            return first, nxt - 1
        lo = hi = None
        async for batch in self._range(first, first):
            lo = from_kafka(batch[0]).offset
        async for batch in self._range(nxt - 1, nxt - 1):
            hi = from_kafka(batch[-1]).offset
        if lo is None or hi is None:
            return 0, -1
        return lo, hi

    async def chain_start(self) -> str | None:
        first, _ = await self.covers()
        return chain.GENESIS if first == 0 else None

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        key = self.key
        if await self.imported():
            # New offsets differ from the original ones: read all, map, filter.
            async for batch in self._range(0, None):
                out = [r for r in map(from_kafka, (b for b in batch if b.key == key))
                       if r.offset >= start and (end is None or r.offset <= end)]
                if out:
                    yield out
                if end is not None and batch and from_kafka(batch[-1]).offset >= end:
                    return
            return
        if self.records is not None and end is not None:
            _, nxt = await self._raw_bounds()
            it = self.records.batches((self.topic, self.read_partition, self.cluster), start, end,
                                      max(end, nxt - 1), self._mine)
        else:
            it = self._mine(start, end, {})  # type: ignore[arg-type]
        t = time.perf_counter()
        async for out in it:
            self.fetch_seconds += time.perf_counter() - t
            yield out
            t = time.perf_counter()
        self.fetch_seconds += time.perf_counter() - t

    async def offset_for_time(self, ms: int) -> int | None:
        if await self.imported():
            return await super().offset_for_time(ms)
        if self.reader is not None:
            return await self.reader.offset_for_time(ms)
        from kmevents.adapters import kafka as kafka_adapter

        return await kafka_adapter.offset_for_time(self.k, self.topic, self.read_partition, ms)


class MergedSource(Source):
    """Several sources of one cluster, deduped by original offset (archives + topic)."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise UsageError("no source to read", hint="give --source kafka and/or archive files")
        parts = {s.partition for s in self.sources if isinstance(s, ArchiveSource) and s.partition is not None} or {
            s.partition for s in self.sources[:1] if s.partition is not None}
        if len(parts) > 1:
            raise UsageError(f"the sources come from different partitions {sorted(parts)}",
                             hint="combine archives and topics of one cluster only")
        self.partition = next(iter(parts), None)
        self.name = " + ".join(s.name for s in self.sources)
        self.gaps: list[tuple[int, int]] = []

    async def _ordered(self) -> list[tuple[int, int, Source]]:
        spans = [(*(await s.covers()), s) for s in self.sources]
        return sorted(spans, key=lambda x: (x[0], -x[1]))

    async def covers(self) -> tuple[int, int]:
        spans = await self._ordered()
        return spans[0][0], max(s[1] for s in spans)

    async def chain_start(self) -> str | None:
        return await (await self._ordered())[0][2].chain_start()

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        emitted = start - 1
        self.gaps = []
        for lo, hi, src in await self._ordered():
            if hi <= emitted:
                continue
            if end is not None and lo > end:
                break
            if lo > emitted + 1:
                self.gaps.append((emitted + 1, lo - 1))
            async for batch in src.batches(max(start, emitted + 1), end):
                if batch[0].offset <= emitted:
                    batch = [r for r in batch if r.offset > emitted]
                    if not batch:
                        continue
                yield batch
                emitted = batch[-1].offset
            emitted = max(emitted, hi if end is None else min(hi, end))

    async def offset_for_time(self, ms: int) -> int | None:
        found = [o for o in [await s.offset_for_time(ms) for s in self.sources] if o is not None]
        return min(found) if found else None
