"""``create_app(settings)``: the kmevents HTTP API.

Long-lived clients (the Ingestor, one etcd client, the time-travel cache,
the metrics reader) start in the lifespan, not at import.
Open without a token: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``,
``/docs``. Every data endpoint needs a bearer token (``kmevents.api.auth``):
401 without a valid one, 403 when its scope or visibility does not allow the read.

Limits: request bodies over ``api.max_body_bytes`` get 413 before they are
read, query strings over ``api.max_query_bytes`` 414, header blocks over 16 KiB
431. CORS is off unless ``api.cors_origins`` is set. Bad parameters get 422
with the parameter's path (``{"loc": ["query", "limit"], ...}``); a compacted
etcd revision 410. Replay work beyond its bounds (``admission.py``) 429, or 503
when the queue waited too long, both with ``Retry-After``.

An unreachable Kafka or etcd is a 503 with ``Retry-After`` and a one-line
reason naming the backend and its address (``backend_down``), whether it went
away while the API ran or was never there: the API starts without them, and
ingest starts once both answer (until then ``POST /v1/events`` is a 503 too).
Only ``/healthz`` (the process lives) and the OpenAPI document need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kmevents import __version__
from kmevents.adapters import etcd as etcd_adapter
from kmevents.api.admission import Busy
from kmevents.api.backends import BACKEND_RETRY_SECONDS, BackendUnavailable, backend_down, one_line
from kmevents.ingest import Ingestor
from kmevents.settings import Settings

log = logging.getLogger("kmevents.api")
MAX_HEADER_BYTES = 16 * 1024
#: how often ingest is tried again when Kafka or etcd was down at start
INGEST_RETRY_SECONDS = 5.0
#: how long one start of ingest may take before it counts as failed
INGEST_START_SECONDS = 15.0


class _NoIngest:
    """Stands for the Ingestor while it could not start: every submit is a 503 saying why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def submit(self, events: list[Any]) -> Any:
        raise BackendUnavailable(f"ingest is not started ({self.reason})")


async def _start_ingest(app: FastAPI, settings: Settings) -> str | None:
    """Start the Ingestor into ``app.state.ingestor``; the reason (one line) when it cannot."""
    ing = Ingestor(settings, max_in_flight=settings.api.max_in_flight_events)
    try:
        await asyncio.wait_for(ing.start(), INGEST_START_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure leaves ingest to a later try
        with contextlib.suppress(Exception):
            await ing.stop()
        return backend_down(settings, exc) or one_line(f"{type(exc).__name__}: {exc}")
    app.state.ingestor = ing
    return None


async def _start_ingest_later(app: FastAPI, settings: Settings) -> None:
    while True:
        await asyncio.sleep(INGEST_RETRY_SECONDS)
        reason = await _start_ingest(app, settings)
        if reason is None:
            log.info("ingest started")
            return
        app.state.ingestor = _NoIngest(reason)


async def _send_json(send: Any, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class _HttpMiddleware:
    """Plain ASGI middleware for HTTP requests (so streaming stays intact); other scopes pass."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError


class LimitsMiddleware(_HttpMiddleware):
    """Refuses oversized requests before any handler runs."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        api = self.settings.api
        status, detail = 0, ""
        if len(scope.get("query_string", b"")) > api.max_query_bytes:
            status, detail = 414, f"query string over {api.max_query_bytes:,} bytes"
        headers = scope.get("headers") or []
        if sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
            status, detail = 431, f"request headers over {MAX_HEADER_BYTES:,} bytes"
        for k, v in headers:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    status, detail = 400, "Content-Length is not a number"
                    break
                if n > api.max_body_bytes:
                    status, detail = 413, f"body is {n:,} bytes; the limit is {api.max_body_bytes:,}"
        if status:
            await _send_json(send, status, detail)
            return
        await self.app(scope, receive, send)


class BackendMiddleware(_HttpMiddleware):
    """An unreachable Kafka or etcd (``backend_down``) answers 503, ``Retry-After`` and one line.

    Inside Starlette's outermost error middleware: an exception handler for these
    would be that middleware's, which logs a traceback after answering. Once an
    answer has started (a stream) the stream's own code ends it.
    """

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def watch(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            reason = backend_down(self.settings, exc)
            if reason is None or started:
                raise
            log.warning("%s %s: %s", scope.get("method"), scope.get("path"), reason)
            await _send_json(send, 503, f"{reason}: retry later",
                             ((b"retry-after", str(BACKEND_RETRY_SECONDS).encode()),))


def announce(settings: Settings, *, ingest: str) -> None:
    """What the API serves with, logged once at start: its backends, its tokens (names and
    scopes, never the secrets), and a warning when no token is configured (every data
    endpoint then answers 401, which looks like a broken API rather than a missing setting)."""
    tokens = [f"{t.name or 'token'}:{'+'.join(sorted(t.scopes))}" for t in settings.api.tokens]
    log.info("API started", extra={"kafka": settings.kafka.bootstrap, "etcd": settings.etcd.endpoint,
                                   "prefix": settings.etcd.prefix, "ingest": ingest, "tokens": tokens})
    if not tokens:
        log.warning("no API tokens configured: every data endpoint answers 401 (only /healthz, /readyz, "
                    "/metrics and the OpenAPI document are open)",
                    extra={"hint": "set KMEVENTS_API__TOKENS, e.g. "
                                   "'[{\"token\": \"...\", \"name\": \"ops\", \"scopes\": [\"read\", \"ingest\"]}]'"})


def create_app(settings: Settings, *, ingest: bool = True) -> FastAPI:
    """The API. ``ingest=False`` serves the read side only (no Kafka producer is started)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from kmevents.api.observe import Metrics, verify_loop
        from kmevents.api.timetravel import TimeTravel

        app.state.etcd = etcd_adapter.client(settings.etcd)
        app.state.timetravel = TimeTravel(settings, app.state.etcd)
        app.state.metrics = Metrics(settings, app.state.etcd, app.state.timetravel)
        app.state.ingestor = None
        starter = None
        if ingest:
            # Kafka or etcd down at start: the read side serves (503 where it needs them) and
            # ingest starts once both answer; POST /v1/events answers 503 until then.
            reason = await _start_ingest(app, settings)
            if reason is not None:
                log.warning("ingest not started (%s): POST /v1/events answers 503 and ingest is retried every "
                            "%gs", reason, INGEST_RETRY_SECONDS)
                app.state.ingestor = _NoIngest(reason)
                starter = asyncio.create_task(_start_ingest_later(app, settings))
        verifier = asyncio.create_task(verify_loop(app)) if settings.api.verify_interval_seconds > 0 else None
        announce(settings, ingest=("off" if not ingest else "waiting for Kafka and etcd" if starter is not None
                                   else "started"))
        try:
            yield
        finally:
            for task in (verifier, starter):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if isinstance(app.state.ingestor, Ingestor):
                await app.state.ingestor.stop()
            await app.state.timetravel.close()
            with contextlib.suppress(Exception):
                await app.state.etcd.close()

    app = FastAPI(title="kmevents", version=__version__, lifespan=lifespan,
                  description="The durable, replayable memory of a Kubernetes-on-Mesos cluster: ingest, "
                              "derived state at one etcd revision, time travel through the log, live tail, "
                              "metrics.")
    app.state.settings = settings
    if settings.api.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                           expose_headers=["X-Kmevents-Revision", "X-Kmevents-Offset", "X-Kmevents-Ahead"])
    app.add_middleware(BackendMiddleware, settings=settings)
    app.add_middleware(LimitsMiddleware, settings=settings)

    from kmevents.api.ingest import router as ingest_router
    from kmevents.api.observe import router as observe_router
    from kmevents.api.query import router as query_router
    from kmevents.api.stream import router as stream_router

    app.include_router(observe_router)
    app.include_router(ingest_router)
    app.include_router(stream_router)  # before the query router: /events is not a kind
    app.include_router(query_router)

    @app.exception_handler(etcd_adapter.RevisionCompacted)
    async def compacted(request: Request, exc: etcd_adapter.RevisionCompacted) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.message}: read the latest state, or use ?offset= (the log)"},
                            status_code=410)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app
