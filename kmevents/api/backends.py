"""Telling an unreachable Kafka or etcd from a fault: one line naming the backend.

Every endpoint that needs Kafka or etcd answers 503 with ``Retry-After`` and
the line :func:`backend_down` makes when they do not answer (``app.py``'s
``BackendMiddleware``), never a 500 with a traceback. No client library is
imported here: errors are recognised by the module that raised them.
"""

from __future__ import annotations

import socket

from kmevents.errors import EnvironmentProblem
from kmevents.settings import Settings

#: ``Retry-After`` of a 503 for an unreachable Kafka or etcd
BACKEND_RETRY_SECONDS = 5


class BackendUnavailable(Exception):
    """Kafka or etcd cannot serve this request now (503); the message is one line."""


def one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def backend_down(settings: Settings, exc: BaseException) -> str | None:
    """One line naming the backend that failed ``exc``, or None when it is not a backend failure.

    Kafka (aiokafka), etcd (gRPC, aetcd), connections and time-outs to either,
    and ``EnvironmentProblem`` (a read that made no progress) are backend
    failures; the cause chain is followed, so a wrapped one counts too.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        mod = type(e).__module__
        if isinstance(e, BackendUnavailable):
            return one_line(str(e))
        if mod.startswith(("grpc", "aetcd")):
            code = getattr(e, "code", None)
            what = code().name if callable(code) else type(e).__name__
            details = getattr(e, "details", None)
            more = f": {details()}" if callable(details) and details() else ""
            return one_line(f"etcd at {settings.etcd.endpoint} is unavailable ({what}{more})")
        if mod.startswith("aiokafka"):
            name, text = type(e).__name__, str(e)
            what = text if text.startswith(name) else f"{name}: {text}"
            return one_line(f"Kafka at {settings.kafka.bootstrap} is unavailable ({what})")
        if isinstance(e, EnvironmentProblem):
            return one_line(e.message)
        if isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)):
            return one_line(f"Kafka ({settings.kafka.bootstrap}) or etcd ({settings.etcd.endpoint}) did not "
                             f"answer ({type(e).__name__}: {e})")
        e = e.__cause__ or e.__context__
    return None
