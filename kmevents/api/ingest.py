"""``POST /v1/events``: ingest over HTTP with per-event results.

Body: a JSON array of events (``application/json``) or one event per line
(``application/x-ndjson``). Every event gets a result in the response, in
order: invalid events are refused with precise errors while the valid events
of the same request are written (status 200 when all were accepted, 207 when
some were refused, 422 when none was). When Kafka is slow and too many events
are in flight the API answers 429 with ``Retry-After`` and writes nothing of
that request. Bodies over ``api.max_body_bytes`` get 413.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from kmevents.api.auth import authenticate, require
from kmevents.ingest import Ingestor, Overloaded

router = APIRouter()


def _parse(body: bytes, content_type: str) -> list[Any]:
    if "ndjson" in content_type or "jsonlines" in content_type:
        out: list[Any] = []
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                out.append(_Unparsable(f"line {n}: not JSON: {exc}"))
        return out
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise HTTPException(400, "body must be a JSON array of events, one event object, or NDJSON")
    return data


class _Unparsable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


@router.post("/v1/events", tags=["ingest"], summary="Ingest events (JSON array or NDJSON)")
async def post_events(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    principal = authenticate(settings, request)
    require(principal, "ingest")
    length = int(request.headers.get("content-length") or 0)
    if length > settings.api.max_body_bytes:
        raise HTTPException(413, f"body is {length:,} bytes; the limit is {settings.api.max_body_bytes:,}")
    body = await request.body()
    if len(body) > settings.api.max_body_bytes:
        raise HTTPException(413, f"body is {len(body):,} bytes; the limit is {settings.api.max_body_bytes:,}")
    events = _parse(body, request.headers.get("content-type", ""))
    if len(events) > settings.api.max_events_per_request:
        raise HTTPException(413, f"{len(events):,} events in one request; the limit is "
                                 f"{settings.api.max_events_per_request:,}: split the batch")
    for ev in events:
        if isinstance(ev, dict) and isinstance(ev.get("cluster"), str) and not principal.may_see_cluster(ev["cluster"]):
            raise HTTPException(403, f"token {principal.name!r} may not write cluster {ev['cluster']!r}")
    ingestor: Ingestor | None = request.app.state.ingestor
    if ingestor is None:
        raise HTTPException(503, "ingest is disabled on this API process (started with ingest=False)")
    parsed = [None if isinstance(e, _Unparsable) else e for e in events]
    try:
        results = await ingestor.submit(parsed)
    except Overloaded as exc:
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(int(exc.retry_after) or 1)})
    out = []
    for ev, res in zip(events, results, strict=True):
        d = res.as_dict()
        if isinstance(ev, _Unparsable):
            d["errors"] = [{"field": "-", "reason": ev.reason}]
        out.append(d)
    accepted = sum(r["ok"] for r in out)
    status = 200 if accepted == len(out) else (207 if accepted else 422)
    return JSONResponse({"accepted": accepted, "refused": len(out) - accepted, "results": out}, status_code=status)
