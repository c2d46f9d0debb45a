"""The Faust app hosting the derivation worker (Faust itself is behind ``kmevents.adapters.faust``).

The worker is an aiokafka consumer loop (see ``worker.py`` for why not a Faust
agent) hosted by the app, so it shares the app's lifecycle, signal handling
and web server. Faust's web server binds 127.0.0.1 only (never its default of
every interface) on the port given; it serves ``/metrics`` (Prometheus),
``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import logging

from kmevents.processors import metrics
from kmevents.processors.worker import DeriveWorker

from kmevents.adapters import faust as faust_adapter
from kmevents.errors import KmeventsError
from kmevents.settings import Settings

log = logging.getLogger("kmevents.processors.faust")


class HostedWorker:
    """The worker as the app hosts it: a failure of its loop is logged and kept as the worker's
    (``/healthz`` reports it, and the process exits 1)."""

    def __init__(self, worker: DeriveWorker) -> None:
        self.worker = worker

    async def start(self) -> None:
        await self.worker.start()

    async def run(self) -> None:
        try:
            await self.worker.run()
        except Exception as exc:
            if isinstance(exc, KmeventsError):  # a known cause: what to do, no traceback
                log.error("derivation worker stopped; stopping the process",
                          extra={"error": exc.message, "hint": exc.hint})
            else:
                log.exception("derivation worker failed; stopping the process")
            self.worker.failure = self.worker.failure or exc
            raise

    async def stop(self) -> None:
        self.worker.stop_requested.set()
        await self.worker.stop()


def make_app(settings: Settings, worker: DeriveWorker, *, web_port: int) -> faust_adapter.App:
    """The Faust app serving ``worker``'s pages and watching the dead-letter topic
    (:func:`run_faust` hosts the worker in it)."""
    app = faust_adapter.make_app(
        "kmevents-processors", settings.kafka,
        datadir=settings.stack.home / "faust",  # per stack, never shared by stacks under one parent
        web_port=web_port, default_web_port=6066)

    # A Faust agent proper: it watches the dead-letter topic so an operator sees
    # poison records from every worker (this worker's own count is in its stats).
    deadletters = faust_adapter.raw_topic(app, settings.kafka.deadletter_topic)
    seen: dict[str, int] = {}

    @app.agent(deadletters)
    async def watch_dead_letters(stream: faust_adapter.Stream) -> None:
        async for key, _value in stream.items():
            seen["total"] = seen.get("total", 0) + 1
            log.warning("dead letter observed", extra={"position": (key or b"").decode(errors="replace")})

    def metrics_page() -> faust_adapter.Reply:
        extra = (f"# HELP kmevents_deadletters_observed_total dead letters seen on the topic\n"
                 f"# TYPE kmevents_deadletters_observed_total counter\n"
                 f"kmevents_deadletters_observed_total {seen.get('total', 0)}\n").encode()
        return faust_adapter.Reply(metrics.render(worker) + extra, content_type="text/plain; version=0.0.4")

    def health_page() -> faust_adapter.Reply:
        doc, alive, _ = metrics.health(worker)
        return faust_adapter.Reply(doc, status=200 if alive else 503)

    def ready_page() -> faust_adapter.Reply:
        doc, _, ready = metrics.health(worker)
        return faust_adapter.Reply(doc, status=200 if ready else 503)

    faust_adapter.page(app, "/metrics", metrics_page)
    faust_adapter.page(app, "/healthz", health_page)
    faust_adapter.page(app, "/readyz", ready_page)
    return app


def run_faust(settings: Settings, worker: DeriveWorker, *, metrics_port: int) -> int:
    """Run the app hosting ``worker`` until SIGTERM/SIGINT or the worker's end; the exit code
    says which (0, or 1 when the worker failed)."""
    return faust_adapter.run(make_app(settings, worker, web_port=metrics_port), hosted=HostedWorker(worker))
