"""The Faust app hosting the derivation worker (the one module that imports Faust).

The worker is an aiokafka consumer loop (see ``worker.py`` for why not a Faust
agent) run as a ``mode.Service`` inside the app, so it shares the app's
lifecycle, signal handling and web server. Faust's web server binds
127.0.0.1 only (never its default of every interface) on the port given;
it serves ``/metrics`` (Prometheus) and ``/healthz``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import faust
from kmevents.processors import metrics
from kmevents.processors.worker import DeriveWorker
from mode import Service

from kmevents.settings import Settings

log = logging.getLogger("kmevents.processors.faust")


def make_app(settings: Settings, worker: DeriveWorker, *, web_port: int,
             on_worker_end: Callable[[], None] | None = None) -> faust.App:
    """The Faust app hosting ``worker``. ``on_worker_end`` is called when the worker's loop
    ends (failed or stopped): it must end the process (``run_faust`` shuts the Faust
    worker down); without it the app alone is stopped."""
    datadir = settings.stack.home / "faust"  # per stack, never shared by stacks under one parent
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        "kmevents-processors",
        broker=[f"kafka://{h}" for h in settings.kafka.bootstrap.split(",")],
        web_enabled=web_port > 0,
        web_bind="127.0.0.1",
        web_port=web_port or 6066,
        web_host="127.0.0.1",
        topic_disable_leader=True,
        autodiscover=False,
        store="memory://",
        producer_acks=-1,
        datadir=str(datadir),
        consumer_auto_offset_reset="latest",
    )

    # A Faust agent proper: it watches the dead-letter topic so an operator sees
    # poison records from every worker (this worker's own count is in its stats).
    deadletters = app.topic(settings.kafka.deadletter_topic, value_serializer="raw", key_serializer="raw")
    seen: dict[str, int] = {}

    @app.agent(deadletters)
    async def watch_dead_letters(stream: Any) -> None:
        async for key, _value in stream.items():
            seen["total"] = seen.get("total", 0) + 1
            log.warning("dead letter observed", extra={"position": (key or b"").decode(errors="replace")})

    class DeriveService(Service):
        """Runs ``DeriveWorker.run`` for as long as the app runs."""

        async def on_start(self) -> None:
            await worker.start()
            self.add_future(self._derive())

        async def _derive(self) -> None:
            try:
                await worker.run()
            except Exception as exc:  # noqa: BLE001
                log.exception("derivation worker failed; stopping the process")
                worker.failure = worker.failure or exc
            finally:
                # The app alone stopping would leave the process up with its web server
                # down: a supervisor would never restart it. End the whole worker.
                if on_worker_end is not None:
                    on_worker_end()
                else:
                    await app.stop()

        async def on_stop(self) -> None:
            worker.stop_requested.set()
            await worker.stop()

    app.service(DeriveService)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        extra = (f"# HELP kmevents_deadletters_observed_total dead letters seen on the topic\n"
                 f"# TYPE kmevents_deadletters_observed_total counter\n"
                 f"kmevents_deadletters_observed_total {seen.get('total', 0)}\n").encode()
        return web.bytes(metrics.render(worker) + extra, content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def health_page(web: Any, request: Any) -> Any:
        doc, alive, _ = metrics.health(worker)
        return web.json(doc, status=200 if alive else 503)

    @app.page("/readyz")
    async def ready_page(web: Any, request: Any) -> Any:
        doc, _, ready = metrics.health(worker)
        return web.json(doc, status=200 if ready else 503)

    return app


def run_faust(settings: Settings, worker: DeriveWorker, *, metrics_port: int) -> int:
    """Run the app until SIGTERM/SIGINT or the worker's failure; the exit code says which (0/1)."""
    from faust.worker import Worker

    host: Worker | None = None

    def end() -> None:
        assert host is not None
        host._schedule_shutdown(signal.SIGTERM)  # what SIGTERM does: stop every service, end the loop

    app = make_app(settings, worker, web_port=metrics_port, on_worker_end=end)
    host = Worker(app, loglevel="WARNING", quiet=True)
    try:
        host.execute_from_commandline()  # exits through SystemExit, whatever happened
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline never returns
        code = 0
    return 1 if worker.failure is not None else code
