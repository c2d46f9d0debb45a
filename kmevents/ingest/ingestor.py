"""The ingest path: normalise, redact, validate, key, pin and produce.

For each submitted object, in order:

1. strict validation (``kmevents.contract.validate_event``): v0 spellings become
   v1, ``dedupe_key`` and ``event_id`` are derived when absent; the result is
   a fresh canonical dict (the contract refuses unknown fields, so nothing
   unmodelled can carry a secret through);
2. redaction (``redact.Redactor``) of that canonical dict — before anything is
   encoded, written or hashed;
3. the size limit (``max_event_bytes`` of the canonical bytes);
4. the cluster's partition from the persistent map;
5. an idempotent producer (``enable_idempotence``, ``acks=all``).

Every object gets its own :class:`Result`: invalid events are refused with
precise errors while the valid events of the same batch are accepted.

Duplicates: ingesting the same event twice writes it to the log twice (Kafka
dedupes only a producer's own retries). Both copies carry the same
``event_id`` and ``dedupe_key``; the reducer recognises the repeat and
records it as a ``duplicate`` annotation, so derived state does not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract import ContractViolation, encode, validate_event
from kmevents.ingest.outbox import Outbox
from kmevents.ingest.partition_map import PartitionMap
from kmevents.ingest.redact import Redactor
from kmevents.settings import Settings

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
#: Validation yields to the event loop every this many events (~1-2 ms): the
#: producer's replies and next request, each one step of the loop, then wait
#: at most that long, so Kafka works while the rest is validated.
YIELD_EVERY = 64


@dataclass
class Result:
    """What happened to one submitted event."""

    index: int
    ok: bool
    event_id: str | None = None
    cluster: str | None = None
    partition: int | None = None
    offset: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "ok": self.ok, "event_id": self.event_id, "cluster": self.cluster,
            "partition": self.partition, "offset": self.offset,
            "errors": [{"field": f, "reason": r} for f, r in self.errors],
            "warnings": self.warnings, "redacted": self.redacted,
        }


class Overloaded(Exception):
    """Too many events in flight to Kafka: retry after ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"ingest is saturated; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class Ingestor:
    """Long-lived ingest pipeline. No I/O in ``__init__``; ``start()``/``stop()`` or ``async with``."""

    def __init__(self, settings: Settings, *, redactor: Redactor | None = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, max_in_flight: int = 200_000) -> None:
        self.settings = settings
        self.redactor = redactor or Redactor.from_settings(settings.redact)
        self.max_event_bytes = max_event_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._producer: Any = None
        self._map: PartitionMap | None = None

    async def start(self) -> None:
        await kafka_adapter.ensure_topics(self.settings.kafka)
        self._producer = kafka_adapter.producer(self.settings.kafka, linger_ms=5,
                                                max_batch_size=512 * 1024, request_timeout_ms=30_000)
        await self._producer.start()
        parts = await self._producer.partitions_for(self.settings.kafka.events_topic)
        self._map = PartitionMap(self.settings, len(parts))
        await self._map.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._map is not None:
            await self._map.stop()
            self._map = None

    async def __aenter__(self) -> Ingestor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.max_in_flight

    def prepare(self, index: int, obj: Any) -> tuple[Result, bytes | None, dict[str, Any] | None]:
        """Redact, validate and encode one object (no I/O)."""
        try:
            canonical, warnings = validate_event(obj)
        except ContractViolation as exc:
            given = obj.get("event_id") if isinstance(obj, dict) else None
            return Result(index, False, given if isinstance(given, str) else None, errors=list(exc.errors)), None, None
        removed = self.redactor(canonical)
        # every field given at once: the per-field default lists would be made only to be replaced
        res = Result(index, False, canonical["event_id"], canonical["cluster"], None, None, [],
                     [str(w) for w in warnings], [f"payload.{p}" for p in removed])
        data = encode(canonical)
        if len(data) > self.max_event_bytes:
            res.errors = [("-", f"event is {len(data):,} bytes as stored, over the limit of "
                                f"{self.max_event_bytes:,}; split it or raise --max-event-bytes")]
            return res, None, None
        return res, data, canonical

    async def submit(self, objs: Sequence[Any], *, start_index: int = 0) -> list[Result]:
        """Ingest a batch; waits until Kafka acknowledged every accepted event.

        Accepted events are appended, in order, to record batches per partition
        (one future per batch, not per event; each event's offset is its
        batch's base offset plus its place in it). A full batch goes to Kafka
        while the rest is still being validated (``outbox.Outbox``).
        """
        if self.saturated:
            raise Overloaded(retry_after=1.0)
        assert self._producer is not None and self._map is not None, "call start() first"
        results: list[Result] = []
        outbox = Outbox(self._producer, self.settings.kafka.events_topic)
        cache = self._map._cache  # noqa: SLF001 - the hot path skips an await per event
        accepted = 0
        try:
            for i, obj in enumerate(objs):
                res, data, canonical = self.prepare(start_index + i, obj)
                results.append(res)
                if data is None or canonical is None:
                    continue
                cluster = canonical["cluster"]
                part = cache.get(cluster)
                if part is None:
                    part = await self._map.partition_for(cluster)
                res.partition = part
                accepted += 1
                self.in_flight += 1
                outbox.add(part, cluster.encode(), data, res)
                if accepted % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            await outbox.finish()
        finally:
            self.in_flight -= accepted
        return results


def produce_lines(settings: Settings, lines: Iterable[bytes], *, batch: int = 5000) -> list[Result]:
    """Ingest JSON lines (the simulator's ``--to-kafka``); returns only the failed results."""
    import orjson

    async def run() -> list[Result]:
        failed: list[Result] = []
        async with Ingestor(settings) as ing:
            buf: list[Any] = []
            n = 0
            for line in lines:
                buf.append(orjson.loads(line))
                if len(buf) >= batch:
                    failed.extend(r for r in await ing.submit(buf, start_index=n) if not r.ok)
                    n += len(buf)
                    buf = []
            if buf:
                failed.extend(r for r in await ing.submit(buf, start_index=n) if not r.ok)
        return failed

    return asyncio.run(run())
