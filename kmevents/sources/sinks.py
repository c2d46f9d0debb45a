"""Where a source run's events and quarantined records go: Kafka, or files in a dry run.

Both sinks run every event through the same :class:`~kmevents.ingest.Ingestor`
checks (validation, the clock horizon, redaction, the size limit), so a dry run
refuses exactly what a real run would:

- :class:`KafkaSink`: ``Ingestor.submit`` (partition pinning, the idempotent
  producer) and the quarantine topic;
- :class:`DryRunSink`: ``Ingestor.prepare`` only (no I/O), the accepted events'
  stored bytes to a JSON-lines file (one event per line, exactly what ingest would
  write), quarantined records to another. Nothing is sent to Kafka or etcd.

Both are long-lived objects: no I/O in ``__init__``, ``start()``/``stop()`` or ``async with``.
Kafka or etcd unreachable at ``start()`` is an :class:`~kmevents.errors.EnvironmentProblem`
with one line that says what to do (the CLI prints it and exits 2).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract.times import from_micros
from kmevents.errors import EnvironmentProblem, UsageError
from kmevents.ingest import Ingestor, Result
from kmevents.settings import Settings
from kmevents.sources.guard import Held
from kmevents.sources.quarantine import quarantine_key, quarantine_value


class Sink(Protocol):
    """What the runner and the importer write to."""

    destination: str
    quarantine_to: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, events: Sequence[Any]) -> list[Result]: ...

    async def quarantine(self, held: Sequence[Held]) -> None: ...


def one_line(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence the clients' own error lines while connecting: a failure is reported once, by us."""
    saved = [(lg, lg.level) for lg in (logging.getLogger(n) for n in loggers)]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def _now() -> str:
    return from_micros(round(time.time() * 1_000_000))


class KafkaSink:
    """Events through ``Ingestor.submit``; quarantined records to the quarantine topic."""

    def __init__(self, settings: Settings, *, cluster: str | None = None) -> None:
        self.settings = settings
        self.cluster = cluster or settings.cluster
        self.ingestor = Ingestor(settings)
        self.destination = settings.kafka.events_topic
        self.quarantine_to = settings.kafka.quarantine_topic
        self._producer: Any = None

    async def start(self) -> None:
        k = self.settings.kafka
        try:
            with _quiet("aiokafka"):
                await self.ingestor.start()
                self._producer = kafka_adapter.producer(k)
                await self._producer.start()
        except (kafka_adapter.KafkaError, OSError, TimeoutError) as exc:
            await self.stop()
            raise EnvironmentProblem(
                f"cannot reach Kafka at {k.bootstrap} ({one_line(exc)}): start it (`kmevents stack up`) or "
                "point --bootstrap / KMEVENTS_KAFKA__BOOTSTRAP at it; --dry-run -o FILE needs neither") from None
        except etcd_adapter.TRANSIENT_ERRORS as exc:
            await self.stop()
            raise EnvironmentProblem(
                f"cannot reach etcd at {self.settings.etcd.endpoint} ({one_line(exc)}), which holds the "
                "cluster-to-partition map: start it (`kmevents stack up`) or point --etcd / "
                "KMEVENTS_ETCD__ENDPOINT at it; --dry-run -o FILE needs neither") from None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.ingestor.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def submit(self, events: Sequence[Any]) -> list[Result]:
        return await self.ingestor.submit(events)

    async def quarantine(self, held: Sequence[Held]) -> None:
        assert self._producer is not None, "call start() first"
        rules = self.ingestor.redactor.secrets
        at = _now()
        futures = [await self._producer.send(
            self.quarantine_to,
            orjson.dumps(quarantine_value(h, cluster=self.cluster, rules=rules, at=at)),
            key=quarantine_key(h)) for h in held]
        for f in futures:
            await f


class DryRunSink:
    """``Ingestor.prepare`` only; accepted events and quarantined records to JSON-lines files."""

    def __init__(self, settings: Settings, output: str | Path, quarantine_file: str | Path | None = None, *,
                 cluster: str | None = None) -> None:
        self.settings = settings
        self.cluster = cluster or settings.cluster
        self.ingestor = Ingestor(settings)  # never started: prepare() does no I/O
        self.output = Path(output)
        self.quarantine_file = Path(quarantine_file) if quarantine_file else Path(f"{output}.quarantine.jsonl")
        self.destination = str(self.output)
        self.quarantine_to = str(self.quarantine_file)
        self._out: IO[bytes] | None = None
        self._q: IO[bytes] | None = None

    async def start(self) -> None:
        if self.output.resolve() == self.quarantine_file.resolve():
            raise UsageError("the output and the quarantine file are the same file",
                             hint="give --quarantine-file another name")
        try:
            self._out = self.output.open("wb")
            self._q = self.quarantine_file.open("wb")
        except OSError as exc:
            await self.stop()
            raise UsageError(f"cannot write {exc.filename}: {exc.strerror}",
                             hint="check the path of -o / --quarantine-file") from None

    async def stop(self) -> None:
        for f in (self._out, self._q):
            if f is not None:
                f.close()
        self._out = self._q = None

    async def __aenter__(self) -> DryRunSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def submit(self, events: Sequence[Any]) -> list[Result]:
        assert self._out is not None, "call start() first"
        horizon = self.ingestor.horizon()
        results = []
        for i, obj in enumerate(events):
            res, data, _ = self.ingestor.prepare(i, obj, horizon=horizon)
            if data is not None:
                res.ok = True
                self._out.write(data + b"\n")
            results.append(res)
        self._out.flush()
        return results

    async def quarantine(self, held: Sequence[Held]) -> None:
        assert self._q is not None, "call start() first"
        rules = self.ingestor.redactor.secrets
        at = _now()
        for h in held:
            value = quarantine_value(h, cluster=self.cluster, rules=rules, at=at)
            self._q.write(orjson.dumps({"key": quarantine_key(h).decode(), **value}) + b"\n")
        self._q.flush()
