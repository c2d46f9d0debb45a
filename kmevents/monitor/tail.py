"""Following one partition of a topic live, from an offset (no group, no commits).

Used by the API's server-sent-event tail and the monitoring consumer. The
consumer is assigned the partition directly and seeks to ``start`` (or to the
end when ``start`` is None), so a reader resumes exactly where it left off
(``Last-Event-ID``) whatever any consumer group has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import KafkaSettings


class PartitionTail:
    """``async with PartitionTail(k, topic, p, start=N) as t: async for batch in t.batches(): ...``

    ``start=None`` begins at the high watermark (only new records), and so does a
    ``start`` past it; one before the log's first offset begins there. ``started_at``
    says where it began. ``highwater()``
    tells how far the partition had been written when the last fetch answered,
    so a caller can tell a backlog from live traffic.
    """

    def __init__(self, k: KafkaSettings, topic: str, partition: int, *, start: int | None = None,
                 poll_ms: int = 500, max_records: int = 2000) -> None:
        self.k = k
        self.tp = kafka_adapter.TopicPartition(topic, partition)
        self.start_offset = start
        self.poll_ms = poll_ms
        self.max_records = max_records
        self._c: kafka_adapter.Consumer | None = None
        self.started_at: int | None = None

    async def start(self) -> None:
        c = self._c = kafka_adapter.consumer(self.k, group_id=None)
        try:
            await self._start(c)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, c: kafka_adapter.Consumer) -> None:
        await c.start()
        c.assign([self.tp])
        if self.start_offset is None:
            await c.seek_to_end(self.tp)
            self.started_at = await c.position(self.tp)
        else:
            first = (await c.beginning_offsets([self.tp]))[self.tp]
            end = (await c.end_offsets([self.tp]))[self.tp]
            # Past the end (a Last-Event-ID of another log, a typo) begins at the end: the
            # consumer would take a position beyond the end as out of range and reset it to
            # the log's start, replaying everything.
            self.started_at = min(max(first, self.start_offset), end)
            c.seek(self.tp, self.started_at)

    async def stop(self) -> None:
        if self._c is not None:
            with contextlib.suppress(Exception):
                await self._c.stop()
            self._c = None

    async def __aenter__(self) -> PartitionTail:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _started(self) -> kafka_adapter.Consumer:
        if self._c is None:
            raise RuntimeError("the tail is not started: start() it or use `async with`")
        return self._c

    async def poll(self) -> list[kafka_adapter.ConsumerRecord]:
        """One fetch (possibly empty after ``poll_ms``): the records in offset order."""
        got = await self._started().getmany(self.tp, timeout_ms=self.poll_ms, max_records=self.max_records)
        return list(got.get(self.tp, []))

    async def batches(self) -> AsyncIterator[list[kafka_adapter.ConsumerRecord]]:
        while True:
            yield await self.poll()

    def highwater(self) -> int | None:
        return self._c.highwater(self.tp) if self._c is not None else None

    async def position(self) -> int:
        return int(await self._started().position(self.tp))
