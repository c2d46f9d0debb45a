"""``run_source``: pipe a live client's events into an Ingestor, in batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmevents.errors import UsageError
from kmevents.settings import Settings
from kmevents.sources._common import Backoff, Event
from kmevents.sources.k8sm import DEFAULT_KEY, LeaderParser
from kmevents.sources.kubernetes import RESOURCES, KubernetesParser
from kmevents.sources.live_k8s import WatchClient
from kmevents.sources.live_k8sm import LeaderKeyClient
from kmevents.sources.live_k8sm_v2 import V2LeaderKeyClient
from kmevents.sources.live_mesos import OperatorClient, StatePoller
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_state import StateParser

KINDS = ("mesos-operator", "mesos-state", "k8s", "k8sm")


@dataclass
class RunStats:
    """What a run did."""

    batches: int = 0
    accepted: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    """The first refusals' errors (at most 20), ``event_type: field: reason``."""


def _clients(kind: str, cluster: str, url: str, settings: Settings, options: dict[str, Any]) -> list[Any]:
    backoff = Backoff(seed=options.get("seed"), cap=options.get("backoff_cap", 30.0))
    if kind == "mesos-operator":
        return [OperatorClient(url, OperatorParser(cluster), backoff=backoff,
                               max_connections=options.get("max_connections"))]
    if kind == "mesos-state":
        return [StatePoller(url, StateParser(cluster), backoff=backoff,
                            interval=options.get("interval", 5.0), max_polls=options.get("max_polls"))]
    if kind == "k8s":
        parser = KubernetesParser(cluster)
        return [WatchClient(url, r, parser, token=options.get("token"), backoff=Backoff(seed=options.get("seed")),
                            max_watches=options.get("max_watches"))
                for r in options.get("resources") or RESOURCES]
    if kind == "k8sm":
        etcd = settings.etcd.model_copy(update={"endpoint": url}) if url else settings.etcd
        leader = LeaderParser(cluster, options.get("key") or DEFAULT_KEY)
        api = options.get("etcd_api") or "v2"  # k8sm writes its key through v2
        if api == "v2":
            return [V2LeaderKeyClient(etcd.endpoint, leader, backoff=backoff, max_events=options.get("max_events"))]
        if api == "v3":
            return [LeaderKeyClient(etcd, leader, backoff=backoff, max_events=options.get("max_events"))]
        raise UsageError(f"unknown etcd API {api!r} for k8sm", hint="use v2 (what k8sm writes) or v3")
    raise UsageError(f"unknown source kind {kind!r}",
                     hint=f"use one of {', '.join(KINDS)}; the scheduler stream is posted by the framework "
                          "(schemas/README.md, 'Adapters and mappings')")


def _pumps(clients: list[Any], queue: asyncio.Queue[list[Event] | None]) -> list[asyncio.Task[None]]:
    """One task per client, putting its batches on ``queue`` and ``None`` when it ends.

    (A queue, not a merged async generator: the runner waits with a timeout,
    and cancelling a generator's ``__anext__`` would close the generator.)
    """

    async def pump(c: Any) -> None:
        try:
            async for batch in c.run():
                await queue.put(batch)
        finally:
            await queue.put(None)

    return [asyncio.create_task(pump(c)) for c in clients]


async def run_source(kind: str, settings: Settings, url: str, *, cluster: str | None = None,
                     batch_size: int = 500, flush_seconds: float = 1.0,
                     stop: asyncio.Event | None = None, on_batch: Callable[[RunStats], None] | None = None,
                     **options: Any) -> RunStats:
    """Follow one live source and ingest what it emits until it ends or ``stop`` is set.

    ``kind``: ``mesos-operator`` (``url`` = master, e.g. ``http://127.0.0.1:5050``),
    ``mesos-state`` (same url, polled every ``interval`` s), ``k8s`` (``url`` =
    API server; ``resources``, ``token``), ``k8sm`` (``url`` = etcd endpoint,
    ``key`` = the leader key, ``etcd_api`` = ``v2``, the default and what k8sm
    writes, or ``v3``). Events are validated, redacted and produced by
    :class:`kmevents.ingest.Ingestor` in batches of up to ``batch_size`` events,
    or sooner when ``flush_seconds`` pass. Refused events are counted (with
    their errors) in the returned :class:`RunStats`; they never stop the run.
    ``max_connections`` / ``max_polls`` / ``max_watches`` / ``max_events`` bound
    a run (tests); ``seed`` makes the backoff repeatable.
    """
    from kmevents.ingest import Ingestor

    stats = RunStats()
    clients = _clients(kind, cluster or settings.cluster, url, settings, options)
    stop = stop or asyncio.Event()
    buf: list[Event] = []
    last = time.monotonic()

    async with Ingestor(settings) as ingestor:
        async def flush() -> None:
            nonlocal buf, last
            if not buf:
                return
            results = await ingestor.submit(buf)
            stats.batches += 1
            for r in results:
                if r.ok:
                    stats.accepted += 1
                else:
                    stats.refused += 1
                    if len(stats.errors) < 20:
                        stats.errors.append(f"{buf[r.index]['type']}: " +
                                            "; ".join(f"{f}: {why}" for f, why in r.errors))
            buf = []
            last = time.monotonic()
            if on_batch is not None:
                on_batch(stats)

        queue: asyncio.Queue[list[Event] | None] = asyncio.Queue(maxsize=64)
        tasks = _pumps(clients, queue)
        live = len(tasks)
        try:
            while live and not stop.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), flush_seconds)
                except TimeoutError:
                    await flush()
                    continue
                if item is None:
                    live -= 1
                    continue
                buf.extend(item)
                if len(buf) >= batch_size or time.monotonic() - last >= flush_seconds:
                    await flush()
        finally:
            for c in clients:
                c.stop()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            while not queue.empty():
                item = queue.get_nowait()
                if item:
                    buf.extend(item)
            await flush()
    return stats
