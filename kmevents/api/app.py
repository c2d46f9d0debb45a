"""``create_app(settings)``: the kmevents HTTP API.

Long-lived clients (the Ingestor, one etcd client, the time-travel cache,
the metrics reader) start in the lifespan, not at import.
Open without a token: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``,
``/docs``. Every data endpoint needs a bearer token (``kmevents.api.auth``):
401 without a valid one, 403 when its scope or visibility does not allow the read.

Limits: request bodies over ``api.max_body_bytes`` get 413 before they are
read, query strings over ``api.max_query_bytes`` 414, header blocks over 16 KiB
431. CORS is off unless ``api.cors_origins`` is set. Bad parameters get 422
with the parameter's path (``{"loc": ["query", "limit"], ...}``); an
unreachable Kafka or etcd 503 with ``Retry-After``; a compacted etcd revision 410.
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
from kmevents.ingest import Ingestor
from kmevents.settings import Settings

log = logging.getLogger("kmevents.api")
MAX_HEADER_BYTES = 16 * 1024


class LimitsMiddleware:
    """Refuses oversized requests before any handler runs (plain ASGI, so streaming stays intact)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
            body = orjson.dumps({"detail": detail})
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, ingest: bool = True) -> FastAPI:
    """The API. ``ingest=False`` serves the read side only (no Kafka producer is started)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from kmevents.api.observe import Metrics, verify_loop
        from kmevents.api.timetravel import TimeTravel

        app.state.etcd = etcd_adapter.client(settings.etcd)
        app.state.timetravel = TimeTravel(settings, app.state.etcd)
        app.state.metrics = Metrics(settings, app.state.etcd)
        app.state.ingestor = None
        if ingest:
            app.state.ingestor = Ingestor(settings, max_in_flight=settings.api.max_in_flight_events)
            await app.state.ingestor.start()
        verifier = asyncio.create_task(verify_loop(app)) if settings.api.verify_interval_seconds > 0 else None
        try:
            yield
        finally:
            if verifier is not None:
                verifier.cancel()
                with contextlib.suppress(BaseException):
                    await verifier
            if app.state.ingestor is not None:
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

    @app.exception_handler(Exception)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        transient = isinstance(exc, etcd_adapter.TRANSIENT_ERRORS) or type(exc).__module__.startswith(
            ("aiokafka", "grpc"))
        if transient:
            log.warning("backend unavailable: %s", exc)
            return JSONResponse({"detail": f"a backend is unavailable ({type(exc).__name__}): retry later"},
                                status_code=503, headers={"Retry-After": "2"})
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app
