"""Record batches per partition, handed to the producer while the submission is still validated.

Why not validate everything and then send: the broker shares the machine's
cores with ingest, and aiokafka keeps one produce request in flight per
broker. Validating a whole submission first and then sending its record
batches one after another leaves Kafka idle during validation and ingest idle
during Kafka's writes. Handing each batch over as soon as it is full lets
Kafka write batch k while batch k+1 is validated.

Order: the batches of one partition enter the producer strictly in order (each
waits until its predecessor is enqueued), so each event's offset is its
batch's base offset plus its place in the batch. A failed batch fails only its
own events ("not written, retry it"); the others are unaffected.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kmevents.adapters.kafka import BatchBuilder, BatchProducer, KafkaError, RecordMetadata
from kmevents.ingest.result import Result

_REFUSED = "Kafka refused the event: {exc}; it was not written, retry it"


def _observed(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Outbox:
    """Collects accepted events into record batches and delivers them (``add`` then ``finish``)."""

    def __init__(self, producer: BatchProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._open: dict[int, tuple[BatchBuilder, list[Result]]] = {}
        self._last: dict[int, asyncio.Task[asyncio.Future[RecordMetadata]]] = {}
        self._handed: list[tuple[list[Result], asyncio.Task[asyncio.Future[RecordMetadata]]]] = []

    def add(self, part: int, key: bytes, value: bytes, res: Result) -> None:
        """Append one event to its partition's batch, handing the batch over first when it is full.

        The producer puts handed-over batches on the wire when the caller next
        yields to the event loop (the ingestor does every ``YIELD_EVERY`` events).
        """
        batch, members = self._open.get(part) or self._new(part)
        fits = batch.append(key=key, value=value, timestamp=None) is not None
        if not fits and members:  # full: hand it over and start the next batch with this event
            self._hand_over(part)
            batch, members = self._new(part)
            fits = batch.append(key=key, value=value, timestamp=None) is not None
        if fits:
            members.append(res)
        else:
            res.errors = [("-", "event does not fit one Kafka record batch")]

    def _new(self, part: int) -> tuple[BatchBuilder, list[Result]]:
        entry: tuple[BatchBuilder, list[Result]] = (self._producer.create_batch(), [])
        self._open[part] = entry
        return entry

    def _hand_over(self, part: int) -> None:
        batch, members = self._open.pop(part)
        batch.close()  # exactly these events, and no linger: it is complete
        task = asyncio.ensure_future(self._enqueue(self._last.get(part), batch, part))
        task.add_done_callback(_observed)  # a cancelled submit never awaits it: no "never retrieved" noise
        self._last[part] = task
        self._handed.append((members, task))

    async def _enqueue(self, previous: asyncio.Task[asyncio.Future[RecordMetadata]] | None, batch: BatchBuilder,
                       part: int) -> asyncio.Future[RecordMetadata]:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its failure is its own events'
        return await self._producer.send_batch(batch, self._topic, partition=part)

    async def finish(self) -> None:
        """Hand over the partial batches and wait until Kafka acknowledged (or refused) every batch."""
        for part in [p for p, (_, members) in self._open.items() if members]:
            self._hand_over(part)
        for members, task in self._handed:
            try:
                md = await (await task)
            except KafkaError as exc:
                for res in members:
                    res.errors = [("-", _REFUSED.format(exc=exc))]
                continue
            for j, res in enumerate(members):
                res.offset = md.offset + j
                res.ok = True
