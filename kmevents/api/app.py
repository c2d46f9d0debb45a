"""``create_app(settings)``: the kmevents HTTP API.

Long-lived clients (the Ingestor) start in the lifespan, not at import.
Open without a token: ``/healthz``, ``/openapi.json``, ``/docs``. Every data
endpoint needs a bearer token (``kmevents.api.auth``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kmevents import __version__
from kmevents.ingest import Ingestor
from kmevents.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ingestor = Ingestor(settings, max_in_flight=settings.api.max_in_flight_events)
        await app.state.ingestor.start()
        try:
            yield
        finally:
            await app.state.ingestor.stop()

    app = FastAPI(title="kmevents", version=__version__, lifespan=lifespan,
                  description="The durable, replayable memory of a Kubernetes-on-Mesos cluster.")
    app.state.settings = settings
    if settings.api.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    from kmevents.api.ingest import router as ingest_router

    app.include_router(ingest_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, object]:
        return {"ok": True, "version": __version__}

    return app
