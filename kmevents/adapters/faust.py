"""The one module that imports Faust (and mode, the service library under it).

kmevents runs two Faust apps: the host of the derivation worker
(``processors/faust_app.py``) and the monitoring rules
(``monitor/faust_rules.py``). Both are built and run here, so what they share
is written once:

- the web server binds 127.0.0.1 only (never Faust's default of every
  interface), on the port given (0: no web server);
- the data directory is created with its parents (Faust makes only the last
  level);
- tables live in memory, nothing is autodiscovered, produced records wait for
  every in-sync replica (``acks=-1``), a topic new to the app is read from its
  end, and topics are not leader-assigned (no ``-__assignor-__leader`` topic).

:func:`run` runs an app in this process until SIGTERM or SIGINT, and hosts
work beside its agents (:class:`Hosted`: the derivation worker) whose end
ends the whole process, with exit code 1 when the work failed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust
from faust.types import Message
from faust.web import Request, Response, View
from mode import Service

from kmevents.settings import KafkaSettings

__all__ = ["App", "Event", "Hosted", "Message", "Reply", "Stream", "make_app", "page", "raw_topic", "run"]

#: The app type, for annotations (its agents, timers, tasks and tables are declared on it).
App = faust.App
#: What an agent of a :func:`raw_topic` iterates (``stream.items()``, ``stream.events()``).
Stream = faust.StreamT[bytes]
#: One record as an agent sees it: ``key``, ``value`` and the Kafka ``message`` (offset,
#: ``timestamp`` in float seconds).
Event = faust.EventT[bytes]


def make_app(app_id: str, k: KafkaSettings, *, datadir: Path, web_port: int, default_web_port: int,
             **options: Any) -> App:
    """An app named ``app_id`` on ``k``'s brokers with the options every kmevents app shares.

    ``web_port=0`` disables the web server (Faust still wants a port:
    ``default_web_port``); ``options`` are more Faust settings (``topic_partitions``).
    """
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return faust.App(
        app_id,
        broker=[f"kafka://{h}" for h in k.bootstrap.split(",")],
        web_enabled=web_port > 0,
        web_bind="127.0.0.1",
        web_port=web_port or default_web_port,
        web_host="127.0.0.1",
        topic_disable_leader=True,
        autodiscover=False,
        store="memory://",
        producer_acks=-1,
        datadir=str(datadir),
        consumer_auto_offset_reset="latest",
        **options,
    )


def raw_topic(app: App, name: str) -> faust.TopicT:
    """``name`` as the app reads it: keys and values are the bytes as stored (no codec)."""
    return app.topic(name, value_serializer="raw", key_serializer="raw")


@dataclass(frozen=True)
class Reply:
    """What a page answers: ``body`` bytes as they are (of ``content_type``), or a dict as JSON."""

    body: bytes | dict[str, Any]
    status: int = 200
    content_type: str | None = None


def page(app: App, path: str, answer: Callable[[], Reply]) -> None:
    """Serve ``answer()`` for GET ``path`` on the app's web server (named after ``answer``)."""

    async def get(view: View, request: Request) -> Response:
        reply = answer()
        if isinstance(reply.body, bytes):
            return view.bytes(reply.body, content_type=reply.content_type, status=reply.status)
        return view.json(reply.body, status=reply.status)

    app.page(path, name=answer.__name__)(get)


class Hosted(Protocol):
    """Work an app runs beside its agents: ``start()`` while the app starts, then ``run()``
    in the background until it returns or raises, ``stop()`` while the app stops."""

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


def run(app: App, *, hosted: Hosted | None = None) -> int:
    """Run ``app`` in this process until SIGTERM/SIGINT, or until ``hosted.run()`` ends; the exit code.

    When the hosted work ends, the whole process stops as SIGTERM stops it:
    the app alone stopping would leave the process up with its web server
    down, and a supervisor would never restart it. The exit code is 1 when the
    hosted work raised, else Faust's worker's (0 after a signal).
    """
    from faust.worker import Worker

    failed: list[Exception] = []
    host: Worker | None = None

    if hosted is not None:
        work = hosted

        class HostedService(Service):
            async def on_start(self) -> None:
                await work.start()
                self.add_future(self._run())

            async def _run(self) -> None:
                try:
                    await work.run()
                except Exception as exc:  # noqa: BLE001 - the exit code says so; the work logs its own failure
                    failed.append(exc)
                finally:
                    assert host is not None  # the app starts its services once the host runs it
                    host._schedule_shutdown(signal.SIGTERM)  # what SIGTERM does: stop every service, end the loop

            async def on_stop(self) -> None:
                await work.stop()

        app.service(HostedService)

    # override_logging=False: the command set up logging (kmevents.* at INFO, Faust and mode at
    # WARNING); Faust's own set-up would put the root logger at WARNING and silence the worker.
    host = Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    try:
        host.execute_from_commandline()  # exits through SystemExit, whatever happened
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline never returns
        code = 0
    return 1 if failed else code
