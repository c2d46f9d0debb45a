"""``run_source``: pipe a live client's events into a sink (Kafka, or files in a dry run), in batches.

What a run guarantees (issue 16, "no silent loss"):

- every raw record a client hands its parser is counted, and a record the parser
  fails on is quarantined with its position and the stream goes on
  (:class:`~kmevents.sources.guard.Guard` wraps the parser's entry points);
- a client whose ``run()`` ends on an unexpected error (one its own reconnect loop
  does not handle) is restarted after a backoff; after ``max_restarts`` failures in a
  row (each within ``healthy_seconds`` of the restart before it), the run ends. Either way the error is logged and
  counted, and the run's exit code is 1: it never ends as if nothing happened;
- Kafka or etcd unreachable at the start raises
  :class:`~kmevents.errors.EnvironmentProblem` (one line; exit 2) before any client
  connects; lost in the middle, the run ends with its summary and the error
  (``Summary.fatal``);
- the returned :class:`~kmevents.sources.summary.Summary` gives, per source, records
  in, events out, refused, quarantined and skipped by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kmevents.errors import UsageError
from kmevents.settings import Settings
from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources.guard import Guard
from kmevents.sources.k8sm import DEFAULT_KEY, LeaderParser
from kmevents.sources.kubernetes import RESOURCES, KubernetesParser
from kmevents.sources.live_k8s import WatchClient
from kmevents.sources.live_k8sm import LeaderKeyClient
from kmevents.sources.live_k8sm_v2 import V2LeaderKeyClient
from kmevents.sources.live_mesos import OperatorClient, StatePoller
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.pipeline import Pipeline, SinkFailed
from kmevents.sources.prechecks import leading_master_state
from kmevents.sources.sinks import DryRunSink, KafkaSink, Sink
from kmevents.sources.summary import Summary

log = logging.getLogger("kmevents.sources")

KINDS = ("mesos-operator", "mesos-state", "k8s", "k8sm")

#: The summary of a run (the name ``run_source`` always returned).
RunStats = Summary

#: Failures in a row after which a client is given up ...
DEFAULT_MAX_RESTARTS = 5
#: ... where a failure more than this many seconds after the client's (re)start begins a new count
#: (a client that connects, sends its snapshot and fails at the same record every time is given up,
#: however many batches it sends before failing).
DEFAULT_HEALTHY_SECONDS = 300.0


def _clients(kind: str, cluster: str, url: str, settings: Settings, options: dict[str, Any],
             guard: Guard) -> list[tuple[str, Any]]:
    """``(source name, client)`` for ``kind``, each parser's entry points wrapped by ``guard``."""
    backoff = Backoff(seed=options.get("seed"), cap=options.get("backoff_cap", 30.0))
    if kind == "mesos-operator":
        op = OperatorParser(cluster)
        guard.wrap(op, "feed_record", kind="mesos.operator", source=kind, raw=lambda record, *_a, **_k: record)
        return [(kind, OperatorClient(url, op, backoff=backoff, max_connections=options.get("max_connections")))]
    if kind == "mesos-state":
        sp = StateParser(cluster, offers=not options.get("no_offers"))
        guard.wrap(sp, "feed", kind="mesos.state", source=kind, raw=lambda state, *_a, **_k: state,
                   precheck=lambda state, *_a, **_k: leading_master_state(state))
        return [(kind, StatePoller(url, sp, backoff=backoff, interval=options.get("interval", 5.0),
                                   max_polls=options.get("max_polls")))]
    if kind == "k8s":
        kp = KubernetesParser(cluster)

        def where(resource: str, *_a: Any, **_k: Any) -> tuple[str, int]:
            st = kp.stream(resource)
            return st.stream_id, max(st.seq, 0)

        def name(resource: str, *_a: Any, **_k: Any) -> str:
            return f"k8s/{resource}"

        guard.wrap(kp, "feed", kind="k8s.watch", source=name, position=where,
                   raw=lambda _resource, ev, *_a, **_k: ev)
        guard.wrap(kp, "relist", kind="k8s.watch", source=name, position=where,
                   raw=lambda _resource, items, *_a, **_k: items)
        return [(f"k8s/{r}", WatchClient(url, r, kp, token=options.get("token"),
                                         backoff=Backoff(seed=options.get("seed")),
                                         max_watches=options.get("max_watches")))
                for r in options.get("resources") or RESOURCES]
    if kind == "k8sm":
        etcd = settings.etcd.model_copy(update={"endpoint": url}) if url else settings.etcd
        key = options.get("key") or DEFAULT_KEY
        lp = LeaderParser(cluster, key)
        api = options.get("etcd_api") or "v2"  # k8sm writes its key through v2
        if api == "v2":
            guard.wrap(lp, "feed_v2", kind="k8sm", source=kind, raw=lambda answer, *_a, **_k: answer)
            return [(kind, V2LeaderKeyClient(etcd.endpoint, lp, backoff=backoff,
                                             max_events=options.get("max_events")))]
        if api != "v3":
            raise UsageError(f"unknown etcd API {api!r} for k8sm", hint="use v2 (what k8sm writes) or v3")

        def at(value: Any, *, version: int = 0, create_revision: int = 0, **_k: Any) -> tuple[str, int]:
            return f"{key}@{create_revision}", max(version - 1, 0)

        guard.wrap(lp, "feed", kind="k8sm", source=kind, position=at, raw=lambda value, *_a, **_k: value or b"")
        return [(kind, LeaderKeyClient(etcd, lp, backoff=backoff, max_events=options.get("max_events")))]
    raise UsageError(f"unknown source kind {kind!r}",
                     hint=f"use one of {', '.join(KINDS)}; the scheduler stream is posted by the framework "
                          "(schemas/README.md, 'Adapters and mappings')")


Item = tuple[str, list[Event]] | None


class _Supervisor:
    """Runs each client's ``run()`` as a task that puts ``(source, batch)`` on a queue and ``None``
    when it ends; restarts a client that fails unexpectedly (see the module docstring).

    (A queue, not a merged async generator: the runner waits with a timeout, and
    cancelling a generator's ``__anext__`` would close the generator.)
    """

    def __init__(self, clients: list[tuple[str, Any]], summary: Summary, stop: asyncio.Event, *,
                 max_restarts: int, healthy_seconds: float, backoff: Callable[[], Backoff]) -> None:
        self.clients = clients
        self.summary = summary
        self.stop = stop
        self.max_restarts = max_restarts
        self.healthy_seconds = healthy_seconds
        self.backoff = backoff
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=64)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._pump(name, c)) for name, c in self.clients]

    async def _pump(self, name: str, client: Any) -> None:
        backoff = self.backoff()
        in_a_row = 0
        tally = self.summary.tally(name)
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    async for batch in client.run():
                        await self.queue.put((name, batch))
                    return  # the client ended by itself (bounded, or stopped)
                except Exception as exc:  # noqa: BLE001 - the point: an unexpected error never ends silently
                    if time.monotonic() - started >= self.healthy_seconds:
                        in_a_row = 0  # it ran well for a while: this failure starts a new count
                        backoff.reset()
                    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    tally.fail(message)
                    if in_a_row >= self.max_restarts:
                        tally.notes.append(f"gave up after {in_a_row + 1} failures in a row: {message}")
                        log.error("source %s failed %d times in a row; the run ends", name, in_a_row + 1,
                                  exc_info=exc, extra={"source": name, "error": message})
                        self.stop.set()
                        return
                    in_a_row += 1
                    tally.restarts += 1
                    delay = backoff.next()
                    log.error("source %s failed unexpectedly; restarting in %.1f s", name, delay, exc_info=exc,
                              extra={"source": name, "error": message, "attempt": in_a_row})
                    await pause(self.stop, delay)
        finally:
            await self.queue.put(None)

    async def close(self) -> list[Item]:
        """Stop every client and task; returns what was still queued."""
        for _, c in self.clients:
            c.stop()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        left = []
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
        return left


async def run_source(kind: str, settings: Settings, url: str, *, cluster: str | None = None,
                     batch_size: int = 500, flush_seconds: float = 1.0,
                     stop: asyncio.Event | None = None, on_batch: Callable[[Summary], None] | None = None,
                     sink: Sink | None = None, max_restarts: int = DEFAULT_MAX_RESTARTS,
                     clients: Sequence[tuple[str, Any]] | None = None, **options: Any) -> Summary:
    """Follow one live source into ``sink`` until it ends, ``stop`` is set, or it fails for good.

    ``kind``: ``mesos-operator`` (``url`` = master, e.g. ``http://127.0.0.1:5050``),
    ``mesos-state`` (same url, polled every ``interval`` s), ``k8s`` (``url`` =
    API server; ``resources``, ``token``), ``k8sm`` (``url`` = etcd endpoint,
    ``key`` = the leader key, ``etcd_api`` = ``v2``, the default and what k8sm
    writes, or ``v3``). ``sink``: default a :class:`KafkaSink` (validated,
    redacted and produced by :class:`kmevents.ingest.Ingestor`); a :class:`DryRunSink`
    writes files instead. Events go in batches of up to ``batch_size``, or sooner
    when ``flush_seconds`` pass. Refused events and quarantined records are counted
    (with their errors) in the returned :class:`Summary`; they never stop the run.
    ``max_connections`` / ``max_polls`` / ``max_watches`` / ``max_events`` bound
    a run (tests); ``seed`` makes the backoff repeatable; ``restart_base`` is the
    first delay before restarting a failed client (default 1 s); ``healthy_seconds``
    (default 300) how long a client must run before a failure no longer counts as
    one more in a row. ``clients``
    replaces the clients ``kind`` would make (``(source name, client)`` pairs; their
    parsers are then not guarded: embedding and tests).
    """
    cluster = cluster or settings.cluster
    summary = Summary(f"follow {kind}")
    guard = Guard(summary)
    made = list(clients) if clients is not None else _clients(kind, cluster, url, settings, options, guard)
    for name, _ in made:
        summary.tally(name)
    sink = sink if sink is not None else KafkaSink(settings, cluster=cluster)
    summary.dry_run = isinstance(sink, DryRunSink)
    summary.destination, summary.quarantine_to = sink.destination, sink.quarantine_to
    stop = stop or asyncio.Event()
    seed, base = options.get("seed"), options.get("restart_base", 1.0)

    await sink.start()  # Kafka or etcd unreachable: EnvironmentProblem, before any client connects
    try:
        pipeline = Pipeline(sink, summary, guard, on_batch=on_batch)
        sup = _Supervisor(made, summary, stop, max_restarts=max_restarts,
                          healthy_seconds=options.get("healthy_seconds", DEFAULT_HEALTHY_SECONDS),
                          backoff=lambda: Backoff(base=base, cap=options.get("backoff_cap", 30.0), seed=seed))
        sup.start()
        live = len(sup.tasks)
        try:
            while live and not stop.is_set():
                try:
                    item = await asyncio.wait_for(sup.queue.get(), flush_seconds)
                except TimeoutError:
                    await pipeline.flush()
                    continue
                if item is None:
                    live -= 1
                    continue
                pipeline.add(*item)
                if len(pipeline) >= batch_size or pipeline.since_flush() >= flush_seconds:
                    await pipeline.flush()
        except SinkFailed as exc:
            summary.fatal = str(exc)
        finally:
            for item in await sup.close():
                if item is not None:
                    pipeline.add(*item)
            if summary.fatal is None:
                try:
                    await pipeline.flush()
                except SinkFailed as exc:
                    summary.fatal = str(exc)
            else:
                pipeline.unsent()
    finally:
        await sink.stop()
    return summary
