"""``POST /v1/events``: ingest over HTTP with per-event results.

Body: a JSON array of events (``application/json``) or one event per line
(``application/x-ndjson``). Every event gets a result in the response, in
order: invalid events are refused with precise errors while the valid events
of the same request are written (status 200 when all were accepted, 207 when
some were refused, 422 when none was). An event that writes a key twice in
one object is refused like an invalid one ("duplicate key 'type' in event at
index 3"); so is one that meets an unexpected error (``Ingestor.check``): a
request never fails as a whole for one event. When Kafka is slow and too many
events are in flight the API answers 429 with ``Retry-After`` and writes
nothing of that request. Bodies over ``api.max_body_bytes`` get 413: from the
``Content-Length`` before anything is read, and for a chunked body as soon as
what was read passes the limit.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from kmevents import jsonlines
from kmevents.api.auth import authenticate, require
from kmevents.ingest import Ingestor, Overloaded

router = APIRouter()


def _too_large(what: str, limit: int) -> HTTPException:
    return HTTPException(413, f"body is {what}; the limit is {limit:,} bytes: split the batch, or raise "
                              "KMEVENTS_API__MAX_BODY_BYTES")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes (a chunked body announces no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"sent without a Content-Length (chunked) and passed the limit after {size:,} bytes; "
                             "reading stopped there", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_lines(body: bytes) -> list[Any]:
    out: list[Any] = []
    for n, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(jsonlines.loads(line, f"at line {n}"))
        except ValueError as exc:
            reason = str(exc)
            out.append(_Unparsable(reason if reason.startswith("duplicate") else f"line {n}: {reason}"))
    return out


def _parse(body: bytes, content_type: str) -> list[Any]:
    if "ndjson" in content_type or "jsonlines" in content_type:
        return _parse_lines(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
        body = b"[" + body + b"]"
    if not isinstance(data, list):
        raise HTTPException(400, "body must be a JSON array of events, one event object, or NDJSON")
    try:
        repeats = jsonlines.repeated_keys(body, data)
    except ValueError:
        deep = next(i for i, ev in enumerate(data) if not _writable(ev))
        raise HTTPException(400, f"event at index {deep} is nested more than {jsonlines.MAX_DEPTH} levels deep; "
                                 "no event can be stored so") from None
    by_index: dict[int, list[tuple[jsonlines.Path_, str]]] = {}
    for path, key in repeats:
        by_index.setdefault(int(path[0]), []).append((path[1:], key))
    for i, found in by_index.items():
        data[i] = _Unparsable(jsonlines.repeats_reason(found, f"at index {i}"))
    return data


def _writable(obj: Any) -> bool:
    try:
        orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return False
    return True


class _Unparsable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


@router.post("/v1/events", tags=["ingest"], summary="Ingest events (JSON array or NDJSON)")
async def post_events(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    principal = authenticate(settings, request)
    require(principal, "ingest")
    limit = settings.api.max_body_bytes
    length = request.headers.get("content-length") or "0"
    if length.isdigit() and int(length) > limit:  # LimitsMiddleware answers first; kept for an app without it
        raise _too_large(f"{int(length):,} bytes", limit)
    body = await _read_body(request, limit)
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
