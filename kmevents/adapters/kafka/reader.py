"""Reading a partition by offsets, outside any consumer group (replay, restore, the API).

One-off reads go through a :class:`PartitionReader` made for the read and
closed after it, so the range-reading loop exists once
(:meth:`PartitionReader.batches`). Nothing here commits an offset.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any, Final

from aiokafka import AIOKafkaConsumer

from kmevents.adapters.kafka.clients import (
    Consumer,
    ConsumerRecord,
    CorruptRecordException,
    TopicPartition,
    client_options,
)
from kmevents.errors import CheckFailed, EnvironmentProblem, UsageError
from kmevents.records import LogRecord
from kmevents.settings import KafkaSettings

#: A fetch's size (fetch.max.bytes and the partition's): each fetch is copied through the client's
#: buffers whole and the consumer prefetches the next one, so a read of a few thousand records (a
#: history's unit) paid for 16 MiB twice. 4 MiB read 5,000 large-profile records in 0.017-0.021 s
#: CPU against 0.034-0.055 s, and 150,000 in 0.46-0.47 s against 0.53-0.67 s (BENCHMARKS.md,
#: History of one entity at full size). The consumer also keeps its last fetch's response and
#: undelivered records: with 16 MiB, ~32 MiB stayed through a cold point-in-time read at the large
#: profile (a first-record check fetches a whole one); 200k records folded in 0.88-0.93 s CPU
#: against 0.95-0.99 s. A record larger than this still comes (one per fetch).
FETCH_BYTES: Final = 4 * 1024 * 1024


def release_prefetched(c: Consumer, tp: TopicPartition) -> None:
    """Let go of the fetch the consumer holds for ``tp`` before a seek or a stop drops it (a seek
    drops it whatever the offset: aiokafka's ``Fetcher.seek_to`` deletes the partition's fetch).

    aiokafka (0.14) keeps a fetch's records in a ``PartitionRecords`` whose record generator
    refers back to it (``self._records_iterator = self._unpack_records()``); only a fetch read to
    its end breaks that cycle. One dropped earlier (a seek elsewhere, a read that stops before its
    fetch ends, a stop) is cyclic garbage holding the fetch's bytes (4 MiB, a snapshot's chunks
    more) until a full collection, which a long-lived reader runs rarely: 75 of them, ~320 MiB,
    after 30 point-in-time reads at the large profile (BENCHMARKS.md, "The collector's forced
    pass"). Closing the generator breaks the cycle: the fetch goes when aiokafka drops it. A no-op
    where aiokafka's internals are not these."""
    fetched = getattr(getattr(c, "_fetcher", None), "_records", None)
    held = fetched.get(tp) if isinstance(fetched, dict) else None
    records: Any = getattr(held, "_partition_records", None)
    gen = getattr(records, "_records_iterator", None)
    if gen is None or not hasattr(gen, "close"):
        return
    gen.close()
    records._records_iterator = None


def log_record(_tp: Any, record: Any) -> LogRecord:
    """aiokafka's ``PartitionRecords._consumer_record`` for a light reader: the fetch's record
    (its C ``DefaultRecord``) as a LogRecord, its headers kept only when it has some."""
    return LogRecord(record.offset, record.timestamp, record.key, record.value, record.headers or ())


class _LightFetches(collections.OrderedDict):
    """aiokafka's fetched results of one consumer (``Fetcher._records``, 0.14) whose records
    unpack to LogRecords: each partition's ``PartitionRecords`` is given :func:`log_record` for
    its ``_consumer_record`` as the fetcher stores it (``self._records[tp] = FetchResult(...)``);
    the rest of the unpacking (CRC checks, control batches, aborted transactions, positions)
    stays aiokafka's."""

    def __setitem__(self, tp: Any, result: Any) -> None:
        records = getattr(result, "_partition_records", None)
        if records is not None and callable(getattr(records, "_consumer_record", None)):
            records._consumer_record = log_record
        super().__setitem__(tp, result)


def _lighten(c: Consumer) -> bool:
    """Have ``c``'s fetcher make LogRecords (:class:`_LightFetches`); False, changing nothing,
    where aiokafka's internals are not these (its records then come as ConsumerRecords)."""
    fetcher = getattr(c, "_fetcher", None)
    fetched = getattr(fetcher, "_records", None)
    if type(fetched) is _LightFetches:
        return True
    if type(fetched) is not collections.OrderedDict or type(fetcher).__name__ != "Fetcher":
        return False
    fetcher._records = _LightFetches(fetched)  # type: ignore[union-attr]
    return True


def damaged_batch(where: str, consequence: str = "") -> CheckFailed:
    """The error for a record batch that fails Kafka's CRC-32C check (aiokafka's
    ``CorruptRecordException``) at ``where``: the broker's copy is damaged, a retry fetches the same
    bytes, and what to do is the same for every reader (the partition readers, the worker)."""
    return CheckFailed(
        f"a record batch of {where} fails Kafka's CRC-32C check: the broker's copy of it is damaged{consequence}",
        hint="`kmevents verify --full` reads past the check and names what the damage breaks (the chain, a "
             "snapshot); restore the partition from a replica or an archive (`kmevents archive`), then start "
             "again")


async def read_range(k: KafkaSettings, topic: str, partition: int, start: int, end: int,
                     *, max_bytes: int = 32 * 1024 * 1024) -> list[ConsumerRecord]:
    """Records of one partition with ``start <= offset <= end`` (no group, no commits)."""
    if end < start:
        return []
    return [r async for batch in iter_range(k, topic, partition, start, end, max_bytes=max_bytes, batch=50_000)
            for r in batch]


async def end_offsets(k: KafkaSettings, topic: str) -> dict[int, int]:
    """Each partition's next offset to be written (its high watermark)."""
    c = AIOKafkaConsumer(topic, **client_options(k), enable_auto_commit=False, group_id=None)
    try:
        await c.start()  # subscribing fetches the topic's metadata (stopped also when this fails)
        parts = c.partitions_for_topic(topic)
        if not parts:
            return {}
        ends = await c.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


async def iter_range(k: KafkaSettings, topic: str, partition: int, start: int, end: int | None = None,
                     *, max_bytes: int = FETCH_BYTES, batch: int = 20_000, light: bool = False
                     ) -> AsyncIterator[list[ConsumerRecord]]:
    """Batches (lists) of one partition's records with ``start <= offset <= end``, streaming.

    ``end=None`` means "up to the high watermark when the read started". Memory
    stays at one fetch; no group, no commits. An async generator. ``light``: the
    records as LogRecords (:meth:`PartitionReader.lighten`).
    """
    reader = PartitionReader(k, topic, partition, max_bytes=max_bytes)
    if light:
        reader.lighten()
    try:
        async for recs in reader.batches(start, end, batch=batch):
            yield recs
    finally:
        await reader.close()


async def partition_bounds(k: KafkaSettings, topic: str, partition: int) -> tuple[int, int]:
    """``(first offset still stored, next offset to be written)`` of one partition."""
    reader = PartitionReader(k, topic, partition)
    try:
        return await reader.bounds()
    finally:
        await reader.close()


async def offset_for_time(k: KafkaSettings, topic: str, partition: int, ms: int) -> int | None:
    """The first offset whose timestamp (log-append time) is ``>= ms``; None if there is none."""
    reader = PartitionReader(k, topic, partition)
    try:
        return await reader.offset_for_time(ms)
    finally:
        await reader.close()


class PartitionReader:
    """One consumer kept open to read one partition again and again (assign, seek, fetch).

    A long-lived reader (the API's point-in-time reads) uses it instead of a
    new consumer per read (~50-500 ms each: connect, metadata, offsets).
    Reads may interleave: each fetch seeks to where its own read is when the
    consumer stands elsewhere. During a read the consumer prefetches the next
    records; after it the partition is paused.
    """

    #: How long a read waits for records the log holds before it fails.
    stall_seconds = 60.0

    def __init__(self, k: KafkaSettings, topic: str, partition: int, *, max_bytes: int = FETCH_BYTES) -> None:
        self.k = k
        self.tp = TopicPartition(topic, partition)
        self.max_bytes = max_bytes
        self._c: Consumer | None = None
        self._lock = asyncio.Lock()
        self._starting = asyncio.Lock()
        self._at: int | None = None  # the consumer's position after our last fetch
        self.consumers_started = 0
        self.light = False  # records as LogRecords (lighten)

    async def _consumer(self) -> Consumer:
        if self._c is None:
            async with self._starting:
                if self._c is None:
                    # auto_offset_reset "none": a seek below the log start (records deleted since the
                    # bounds were read) fails the read instead of jumping silently to the end
                    c = AIOKafkaConsumer(**client_options(self.k), enable_auto_commit=False, group_id=None,
                                         auto_offset_reset="none",
                                         max_partition_fetch_bytes=self.max_bytes, fetch_max_bytes=self.max_bytes,
                                         check_crcs=self.k.check_crcs)
                    try:
                        await c.start()  # a broker that cannot be reached fails here: stop what start began
                        # Asked for by name, a missing topic would be created by a broker that
                        # auto-creates topics (the local stack's does): a typo in --topic would
                        # leave an empty topic behind and read as an empty log. The list of
                        # every topic creates none.
                        # (what c.topics() does, keeping the partitions it learns as well)
                        metadata = await c._client.fetch_all_metadata()
                        if self.tp.topic not in metadata.topics():
                            raise UsageError(f"topic {self.tp.topic!r} does not exist on {self.k.bootstrap}",
                                             hint="check --topic and KMEVENTS_KAFKA__EVENTS_TOPIC, or ingest first "
                                                  "(`kmevents stack up` creates kmevents' own topics)")
                        # A partition the topic does not have would time out after 40 s inside
                        # aiokafka (an imported copy has fewer partitions than the live topic).
                        parts = sorted(metadata.partitions_for_topic(self.tp.topic) or ())
                        if self.tp.partition not in parts:
                            raise UsageError(
                                f"topic {self.tp.topic!r} has no partition {self.tp.partition} "
                                f"(its partitions: {', '.join(map(str, parts)) or 'none'})",
                                hint="pass --partition N (`kmevents archive import` writes partition 0 "
                                     "unless told otherwise)")
                    except BaseException:
                        await c.stop()
                        raise
                    c.assign([self.tp])
                    c.pause(self.tp)
                    if self.light:
                        self.light = _lighten(c)
                    self._c = c
                    self.consumers_started += 1
        return self._c

    def lighten(self) -> bool:
        """From now on hand out records as :class:`LogRecord` (offset, timestamp, key, value,
        headers), made by aiokafka from the fetch, not as its ``ConsumerRecord`` (~9 µs a record
        in all, two thirds of it those objects; records.py). For readers whose every user reads
        only those fields (replay's sources): a reader shared with code that needs a
        ConsumerRecord's other fields must not be lightened. True when it took (or will when
        the consumer starts); False where aiokafka's internals differ: ConsumerRecords then."""
        self.light = True
        if self._c is not None:
            self.light = _lighten(self._c)
        return self.light

    async def close(self) -> None:
        c, self._c = self._c, None
        self._at = None
        if c is not None:
            release_prefetched(c, self.tp)
            await c.stop()

    async def bounds(self) -> tuple[int, int]:
        """``(first offset still stored, next offset to be written)``."""
        c = await self._consumer()
        first = (await c.beginning_offsets([self.tp]))[self.tp]
        end = (await c.end_offsets([self.tp]))[self.tp]
        return first, end

    async def offset_for_time(self, ms: int) -> int | None:
        """The first offset whose timestamp (log-append time) is ``>= ms``; None if there is none."""
        c = await self._consumer()
        found = (await c.offsets_for_times({self.tp: max(0, int(ms))})).get(self.tp)
        return None if found is None else int(found.offset)

    async def batches(self, start: int, end: int | None = None, *, batch: int = 20_000,
                      status: dict[str, int] | None = None, first: int | None = None
                      ) -> AsyncIterator[list[ConsumerRecord]]:
        """Batches of records with ``start <= offset <= end`` (``None``: the end when the read starts);
        LogRecords once the reader is lightened (:meth:`lighten`).

        ``status["reached"]`` is kept at the last offset this read surely covered
        (every record up to it returned): ``end`` when the read completed.
        ``first``: the log start as the caller read it moments ago (saves two requests).
        """
        st = status if status is not None else {}
        c = await self._consumer()
        tp = self.tp
        if end is None or first is None:
            first, nxt = await self.bounds()
            if end is None:
                end = nxt - 1
        pos = max(start, first)
        st["reached"] = pos - 1
        loop = asyncio.get_running_loop()
        progress_at = loop.time()
        while pos <= end:
            async with self._lock:
                if self._at != pos:
                    release_prefetched(c, tp)  # (the seek drops it: as garbage, not a cycle)
                    c.seek(tp, pos)
                if c.paused():
                    c.resume(tp)
                # no more records than the read still wants: a fetch brings up to max_bytes and
                # every record handed out is unpacked (a first-record check would unpack ~15k)
                try:
                    got = await c.getmany(tp, timeout_ms=1000, max_records=max(1, min(batch, end - pos + 1)))
                except CorruptRecordException:
                    raise damaged_batch(f"{tp.topic}/{tp.partition} at or after offset {pos}") from None
                recs = [r for r in got.get(tp, []) if r.offset >= pos]
                # nothing, or only offsets without records (transaction markers): skip them
                pos = recs[-1].offset + 1 if recs else max(pos, await c.position(tp))
                self._at = pos
            if not recs:
                log_end = (await c.end_offsets([tp]))[tp]
                if pos >= log_end:
                    break  # ``end`` lies beyond what is stored: the read ends where the log does
                if pos > st["reached"] + 1:
                    progress_at = loop.time()  # only offsets without records (markers) passed
                elif loop.time() - progress_at > self.stall_seconds:
                    # Never end early with records still stored: a caller (the worker's restore)
                    # would take a partial read for the whole range.
                    raise EnvironmentProblem(
                        f"Kafka returned no records of {tp.topic}/{tp.partition} from offset {pos} for "
                        f"{self.stall_seconds:.0f}s although the log holds offsets up to {log_end - 1}",
                        hint="check the broker (`kmevents stack status`, `kmevents stack logs kafka`)")
                st["reached"] = min(pos - 1, end)
                continue
            progress_at = loop.time()
            if recs[-1].offset > end:
                recs = [r for r in recs if r.offset <= end]
            st["reached"] = min(pos - 1, end)
            if recs:
                yield recs
        st["reached"] = min(pos - 1, end)
        async with self._lock:  # not while another read waits in getmany
            c.pause(tp)  # nothing to prefetch until the next read
