"""``GET /v1/clusters/{c}/events``: a live tail of the cluster's log as server-sent events.

Each event is sent as::

    id: <offset in the cluster's partition>
    event: <event type>
    data: {"offset", "occurred_at", "recorded_at", "ingest_lag_seconds", "event": {...}}

Resuming: a client that reconnects with ``Last-Event-ID: N`` (browsers do it
by themselves) continues at offset N+1; ``?from_offset=N`` starts at N; with
neither, only new events are sent. A start past the end of the log begins at
the end (only new events), one before its first offset at that offset; the
first comment line says where the stream began. A ``Last-Event-ID`` that is not
an offset (negative, not an integer) is refused with 422. An unreachable Kafka
is a 503 before the stream starts, a comment line ending it after. Filters are
the search's (type globs, namespace, agent, label selector); a namespace-limited token only receives
events naming its namespaces. A comment line every ``heartbeat`` seconds keeps
proxies from closing an idle stream. ``limit`` and ``max_seconds`` end the
stream (for scripts and tests).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from kmevents.api.auth import reader
from kmevents.api.backends import backend_down
from kmevents.api.filters import event_visible
from kmevents.api.query_base import ClusterName, bad, ingested_partition, known_types, view_of
from kmevents.contract import DecodeError, decode_fast
from kmevents.errors import UsageError
from kmevents.monitor.tail import PartitionTail

router = APIRouter(prefix="/v1/clusters", tags=["stream"])


@router.get("/{cluster}/events", summary="Live tail of the cluster's events (text/event-stream)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def tail_events(
    request: Request, cluster: ClusterName,
    type: list[str] | None = Query(None, description="event type globs (repeat for several)"),  # noqa: A002, B008
    namespace: str | None = Query(None, max_length=253),
    agent: str | None = Query(None, max_length=253),
    labelSelector: str | None = Query(None, max_length=1024),  # noqa: N803
    from_offset: int | None = Query(None, ge=0, le=2**62, description="first offset to send"),
    limit: int | None = Query(None, ge=1, le=10_000_000, description="end the stream after this many events"),
    max_seconds: float | None = Query(None, gt=0, le=86400, description="end the stream after this long"),
    heartbeat: float = Query(15.0, ge=0.5, le=300),
) -> StreamingResponse:
    from kmevents.replay.search import Filters, matches
    from kmevents.selectors import parse
    from kmevents.timespec import iso_of_ms, lag_seconds

    settings = request.app.state.settings
    p = reader(settings, request, cluster)
    known_types(type)
    if p.namespaces is not None and namespace is not None and namespace not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace!r}")
    sel = None
    if labelSelector is not None:
        try:
            sel = parse(labelSelector)
        except UsageError as exc:
            raise bad("labelSelector", exc.message) from None
    start = from_offset
    last_id = request.headers.get("last-event-id")
    if last_id is not None:
        if not re.fullmatch(r"[0-9]{1,19}", last_id.strip()) or int(last_id) >= 2**62:
            raise bad("last-event-id", "Last-Event-ID must be the offset of the last event received "
                                       f"(an integer from 0 to {2**62 - 1})", "header")
        start = int(last_id) + 1
    v = await view_of(request, cluster)
    partition = ingested_partition(v)
    f = Filters(types=type, namespace=namespace, agent=agent, selector=sel)
    key = cluster.encode()
    # Opened before the answer starts, so an unreachable Kafka is a 503, not a broken 200 stream.
    tail = PartitionTail(settings.kafka, settings.kafka.events_topic, partition, start=start, poll_ms=250)
    await tail.start()
    began_at = tail.started_at
    note = ""
    if start is not None and began_at is not None and began_at != start:
        note = f"; offset {start} is {'past the end' if start > began_at else 'before the start'} of the log"

    async def gen() -> AsyncIterator[bytes]:
        sent = 0
        began = time.monotonic()
        last_beat = began
        try:
            yield f"retry: 2000\n: tail of {cluster} partition {partition} from offset {began_at}{note}\n\n".encode()
            while True:
                if max_seconds is not None and time.monotonic() - began >= max_seconds:
                    return
                if await request.is_disconnected():
                    return
                try:
                    recs = await tail.poll()
                except Exception as exc:
                    reason = backend_down(settings, exc)
                    if reason is None:
                        raise
                    yield f": stream ended: {reason}\n\n".encode()  # the client reconnects (retry:)
                    return
                for rec in recs:
                    if rec.key != key:
                        continue
                    try:
                        ev = decode_fast(rec.value or b"")
                    except DecodeError:
                        continue
                    if not matches(ev, f) or not event_visible(p.namespaces, ev):
                        continue
                    occ = ev.get("occurred_at") if isinstance(ev.get("occurred_at"), str) else None
                    lag = lag_seconds(occ, rec.timestamp)
                    data = orjson.dumps({"offset": rec.offset, "occurred_at": occ,
                                         "recorded_at": iso_of_ms(rec.timestamp),
                                         "ingest_lag_seconds": None if lag is None else round(lag, 6), "event": ev})
                    yield b"id: %d\nevent: %s\ndata: %s\n\n" % (rec.offset, str(ev.get("type")).encode(), data)
                    sent += 1
                    last_beat = time.monotonic()
                    if limit is not None and sent >= limit:
                        return
                if time.monotonic() - last_beat >= heartbeat:
                    last_beat = time.monotonic()
                    yield b": keepalive\n\n"
                await asyncio.sleep(0)
        finally:
            await tail.stop()

    return StreamingResponse(gen(), media_type="text/event-stream", background=BackgroundTask(tail.stop),
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                      "X-Kmevents-Partition": str(partition),
                                      "X-Kmevents-Revision": str(v.revision)})
