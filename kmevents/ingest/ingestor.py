"""The ingest path: normalise, redact, validate, key, pin and produce.

For each submitted object, in order:

1. strict validation (``kmevents.contract.validate_event``): v0 spellings become
   v1, ``dedupe_key`` and ``event_id`` are derived when absent; the result is
   a fresh canonical dict (the contract refuses unknown fields, so nothing
   unmodelled can carry a secret through);
2. the ingest clock (:class:`Horizon`): an ``occurred_at`` further ahead of
   now than ``ingest.max_future_skew_seconds`` is refused. The reducer ages
   terminal entities by the newest ``occurred_at`` it has seen, so a single
   event dated 9999-12-31 would make all of them look ancient, for good;
3. redaction (``redact.Redactor``) of that canonical dict — before anything is
   encoded, written or hashed;
4. the encoding and its size limit (``max_event_bytes`` of the canonical bytes);
5. the cluster's partition from the persistent map;
6. an idempotent producer (``enable_idempotence``, ``acks=all``).

Steps 1-4 are :meth:`Ingestor.check` (no I/O; ``kmevents validate`` runs it
too). Every object gets its own :class:`Result`: invalid events are refused
with precise errors while the valid events of the same batch are accepted.
An unexpected error while checking one object (a bug, an input nobody
foresaw) refuses that object with the error, logged with its traceback; it
never aborts the batch, so a file is never left half-written by an odd line.

Duplicates: ingesting the same event twice writes it to the log twice (Kafka
dedupes only a producer's own retries). Both copies carry the same
``event_id`` and ``dedupe_key``; the reducer recognises the repeat and
records it as a ``duplicate`` annotation, so derived state does not change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract import ContractViolation, ContractWarning, encode, validate_event
from kmevents.contract.errors import NO_FIELD
from kmevents.contract.times import MAX_EPOCH_MICROS, from_micros, micros_of
from kmevents.ingest.outbox import Outbox
from kmevents.ingest.redact import Redactor
from kmevents.ingest.result import Result
from kmevents.settings import Settings
from kmevents.store.partition_map import PartitionMap

log = logging.getLogger("kmevents.ingest")

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
SKEW_SETTING = "KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS"
#: Validation yields to the event loop every this many events (~1-2 ms): the
#: producer's replies and next request, each one step of the loop, then wait
#: at most that long, so Kafka works while the rest is validated.
YIELD_EVERY = 64


def _span(seconds: float) -> str:
    """``seconds`` for people: '45 s', '12 minutes', '3.5 hours', '2.0 days', '7,973 years'."""
    for unit, size in (("years", 365.2425 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}" if unit in ("years", "minutes") else f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.3f} s"


@dataclass(frozen=True)
class Horizon:
    """The latest ``occurred_at`` ingest accepts: its clock plus ``ingest.max_future_skew_seconds``.

    Canonical times sort as strings, so the check per event is one string
    comparison with ``latest``; only a refusal computes by how much.
    """

    now_micros: int
    skew_seconds: float
    latest: str

    @classmethod
    def at(cls, now: float, skew_seconds: float) -> Horizon:
        """The horizon at ``now`` (epoch seconds)."""
        now_us = round(now * 1_000_000)
        return cls(now_us, skew_seconds, from_micros(min(now_us + round(skew_seconds * 1_000_000), MAX_EPOCH_MICROS)))

    def refusal(self, occurred_at: str) -> str | None:
        """Why ``occurred_at`` (canonical) is refused, or None when it is not too far ahead."""
        if occurred_at <= self.latest:
            return None
        ahead = (micros_of(occurred_at) - self.now_micros) / 1_000_000
        return (f"{occurred_at} is {_span(ahead)} ahead of the ingest clock ({from_micros(self.now_micros)}); "
                f"at most {self.skew_seconds:g} s is accepted ({SKEW_SETTING}): fix the source's clock or "
                "the event's time, or raise the setting if that source's clock is known to run ahead")


@dataclass
class Checked:
    """An event ready to produce: canonical (redacted) dict, its bytes, warnings, redacted paths."""

    canonical: dict[str, Any]
    data: bytes
    warnings: list[ContractWarning]
    redacted: list[str]


def _given_id(obj: Any) -> str | None:
    given = obj.get("event_id") if isinstance(obj, dict) else None
    return given if isinstance(given, str) else None


class Overloaded(Exception):
    """Too many events in flight to Kafka: retry after ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"ingest is saturated; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class Ingestor:
    """Long-lived ingest pipeline. No I/O in ``__init__``; ``start()``/``stop()`` or ``async with``."""

    def __init__(self, settings: Settings, *, redactor: Redactor | None = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, max_in_flight: int = 200_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redactor = redactor or Redactor.from_settings(settings.redact)
        self.max_event_bytes = max_event_bytes
        self.max_in_flight = max_in_flight
        self.clock = clock
        self._horizon: Horizon | None = None
        self.in_flight = 0
        self._producer: kafka_adapter.Producer | None = None
        self._map: PartitionMap | None = None

    async def start(self) -> None:
        await kafka_adapter.ensure_topics(self.settings.kafka)
        producer = self._producer = kafka_adapter.producer(self.settings.kafka, linger_ms=5,
                                                           max_batch_size=512 * 1024, request_timeout_ms=30_000)
        await producer.start()
        parts = await producer.partitions_for(self.settings.kafka.events_topic)
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

    def horizon(self) -> Horizon:
        """The latest ``occurred_at`` accepted now (see :class:`Horizon`); reused within a clock second."""
        now = self.clock()
        h = self._horizon
        if h is None or not 0 <= now * 1_000_000 - h.now_micros < 1_000_000:
            h = self._horizon = Horizon.at(now, self.settings.ingest.max_future_skew_seconds)
        return h

    def check(self, obj: Any, *, horizon: Horizon | None = None) -> Checked:
        """Validate, check the time against ``horizon`` (default: now), redact and encode one object (no I/O).

        Raises ``ContractViolation`` for every refusal, including an unexpected
        error while checking (logged with its traceback): one odd object never
        stops the others.
        """
        try:
            canonical, warnings = validate_event(obj)
            too_far = (horizon or self.horizon()).refusal(canonical["occurred_at"])
            if too_far is not None:
                raise ContractViolation([("occurred_at", too_far)], event_id=canonical["event_id"])
            removed = self.redactor(canonical)
            try:
                data = encode(canonical)
            except TypeError as exc:  # orjson: an integer beyond 64 bits, nesting beyond 254 levels
                raise ContractViolation([(NO_FIELD, f"the event cannot be stored as JSON ({exc}): integers must "
                                                    "fit in 64 bits and values nest at most 254 levels")],
                                        event_id=canonical["event_id"]) from None
            if len(data) > self.max_event_bytes:
                raise ContractViolation([(NO_FIELD, f"event is {len(data):,} bytes as stored, over the limit of "
                                                    f"{self.max_event_bytes:,}; split it")],
                                        event_id=canonical["event_id"])
        except ContractViolation:
            raise
        except Exception as exc:
            log.warning("one event could not be checked and is refused: %s: %s", type(exc).__name__, exc,
                        exc_info=True, extra={"event_id": _given_id(obj)})
            raise ContractViolation(
                [(NO_FIELD, f"unexpected error while checking this event ({type(exc).__name__}: {exc}); it is "
                            "refused and the other events are not affected: please report it with the event")],
                event_id=_given_id(obj)) from exc
        return Checked(canonical, data, warnings, removed)

    def prepare(self, index: int, obj: Any, *,
                horizon: Horizon | None = None) -> tuple[Result, bytes | None, dict[str, Any] | None]:
        """:meth:`check` one object; its :class:`Result`, and its bytes and canonical dict when accepted."""
        try:
            c = self.check(obj, horizon=horizon)
        except ContractViolation as exc:
            return Result(index, False, exc.event_id or _given_id(obj), errors=list(exc.errors)), None, None
        canonical = c.canonical
        # every field given at once: the per-field default lists would be made only to be replaced
        res = Result(index, False, canonical["event_id"], canonical["cluster"], None, None, [],
                     [str(w) for w in c.warnings], [f"payload.{p}" for p in c.redacted])
        return res, c.data, canonical

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
        horizon = self.horizon()
        try:
            for i, obj in enumerate(objs):
                res, data, canonical = self.prepare(start_index + i, obj, horizon=horizon)
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
