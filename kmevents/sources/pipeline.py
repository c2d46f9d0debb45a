"""The batching between parsers and a sink, shared by ``run_source`` and ``run_import``.

Events are added with the name of the source that made them; :meth:`Pipeline.flush`
hands the quarantined records waiting in the :class:`~kmevents.sources.guard.Guard`
to the sink, then the batch of events, and books every result in its source's
tally (accepted, or refused with its errors). When the sink fails (Kafka lost in
the middle of a run, a full disk in a dry run), the batch is booked as ``unsent``
and :class:`SinkFailed` says so in one line: the caller ends the run with its
summary instead of a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.errors import EnvironmentProblem
from kmevents.sources._common import Event
from kmevents.sources.guard import Guard
from kmevents.sources.sinks import Sink, one_line
from kmevents.sources.summary import Summary

#: What a sink raises when what it writes to went away.
SINK_ERRORS: tuple[type[BaseException], ...] = (kafka_adapter.KafkaError, OSError, TimeoutError,
                                                *etcd_adapter.TRANSIENT_ERRORS)


class SinkFailed(EnvironmentProblem):
    """The sink could not write a batch (exit 2); the run ends with its summary."""


class Pipeline:
    """Buffers ``(source, event)`` pairs and flushes them to ``sink``; no I/O until :meth:`flush`."""

    def __init__(self, sink: Sink, summary: Summary, guard: Guard, *,
                 on_batch: Callable[[Summary], None] | None = None) -> None:
        self.sink = sink
        self.summary = summary
        self.guard = guard
        self.on_batch = on_batch
        self.buf: list[tuple[str, Event]] = []
        self.last_flush = time.monotonic()

    def add(self, source: str, events: list[Event]) -> None:
        self.summary.tally(source).events += len(events)
        self.buf.extend((source, e) for e in events)

    def __len__(self) -> int:
        return len(self.buf)

    def since_flush(self) -> float:
        return time.monotonic() - self.last_flush

    async def flush(self) -> None:
        held = self.guard.take()
        buf, self.buf = self.buf, []
        self.last_flush = time.monotonic()
        try:
            if held:
                await self.sink.quarantine(held)
            if not buf:
                return
            results = await self.sink.submit([e for _, e in buf])
        except SINK_ERRORS as exc:
            self.unsent(buf)
            raise SinkFailed(f"could not write to {self.sink.destination} ({type(exc).__name__}: "
                             f"{one_line(exc)}); {len(buf):,} events and {len(held):,} quarantined records "
                             "of the last batch were not written: run the command again once it is back") from None
        self.summary.batches += 1
        for res in results:
            source, event = buf[res.index]
            tally = self.summary.tally(source)
            if res.ok:
                tally.accepted += 1
            else:
                tally.refuse(f"{event.get('type') if isinstance(event, dict) else '?'}: "
                             + "; ".join(f"{f}: {why}" for f, why in res.errors))
        if self.on_batch is not None:
            self.on_batch(self.summary)

    def unsent(self, buf: list[tuple[str, Any]] | None = None) -> None:
        """Book ``buf`` (default: what is buffered) as made but never written."""
        for source, _ in self.buf if buf is None else buf:
            self.summary.tally(source).unsent += 1
        if buf is None:
            self.buf = []
