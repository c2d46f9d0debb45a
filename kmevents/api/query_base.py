"""What the query routes share: path and query parameters, the reader of one request, the
replay of a time-travel parameter, visibility guards, JSON answers.

Bad parameters answer 422 with the parameter's path (``["query", "at"]``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from kmevents.api.auth import Principal
from kmevents.api.filters import (
    NAMESPACED,
    EntityFilter,
)
from kmevents.api.reads import EtcdReader, View
from kmevents.api.timetravel import TimeTravel, target_of
from kmevents.errors import UsageError
from kmevents.replay.engine import BadTarget

KindPath = Literal["tasks", "agents", "offers", "frameworks", "pods", "namespaces", "nodes",
                   "replicationcontrollers", "services", "roles", "executors", "inverseoffers"]
ClusterName = Annotated[str, Path(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$",
                                  description="cluster name")]
AT = Query(None, max_length=64, description="SOURCE time: state from the events whose occurred_at <= AT "
                                            "(ISO 8601 with a zone, epoch ms, or -15m/-2h/-1d)")
KNOWN_AT = Query(None, max_length=64, description="LOG time: what the log had recorded by KNOWN_AT")
OFFSET = Query(None, ge=0, le=2**62, description="partition offset (inclusive)")


def bad(param: str, message: str, where: str = "query") -> RequestValidationError:
    return RequestValidationError([{"loc": (where, param), "msg": message, "type": "value_error", "input": None}])


def known_types(types: list[str] | None) -> None:
    """A 400 for a ``type`` that names no event type or a glob that matches none (with the nearest
    type), as the CLI refuses it: either would scan the whole log to answer "0 events"."""
    from kmevents.replay.search import check_types

    try:
        check_types(types, flag="type")
    except UsageError as exc:
        raise bad("type", str(exc)) from None


def etcd_reader(request: Request) -> EtcdReader:
    return EtcdReader(request.app.state.settings, request.app.state.etcd)


def time_travel(request: Request) -> TimeTravel:
    return request.app.state.timetravel


def json_body(body: Any, headers: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json", headers=headers)


def ns_guard(p: Principal, kind: str) -> None:
    if p.namespaces is not None and kind not in NAMESPACED:
        raise HTTPException(403, f"token {p.name!r} is limited to namespaces {sorted(p.namespaces)} and may not "
                                 f"see cluster-scoped {kind} entities")


async def view_of(request: Request, cluster: str) -> View:
    v = await etcd_reader(request).view(cluster)
    if not v.known:
        raise HTTPException(404, f"cluster {cluster!r} is unknown: nothing was ever ingested or derived for it")
    return v


def ingested_partition(v: View) -> int:
    """The cluster's partition; 404 when it was never ingested (no partition in the map)."""
    if v.partition is None:
        raise HTTPException(404, f"cluster {v.cluster!r} has no partition in the map: it was never ingested")
    return v.partition


async def replayed(request: Request, v: View, at: str | None, known_at: str | None,
                    offset: int | None) -> tuple[Any, dict[str, str]] | None:
    """The replayed state and its headers when a time-travel parameter was given, else None."""
    try:
        target = target_of(at, known_at, offset)
    except BadTarget as exc:
        raise bad(exc.param, exc.one_line()) from None
    if target is None:
        return None
    partition = ingested_partition(v)
    try:
        r = await time_travel(request).state(v.cluster, partition, target)
    except BadTarget as exc:
        raise bad(exc.param, exc.one_line()) from None
    except UsageError as exc:
        raise HTTPException(422, exc.message) from None
    last = r.last or {}
    headers = {"X-Kmevents-Source": "replay", "X-Kmevents-Partition": str(partition),
               "X-Kmevents-Offset": str(r.end_offset), "X-Kmevents-Target": target.describe(),
               "X-Kmevents-Revision": str(v.revision), "X-Kmevents-Ahead": "0"}
    if last.get("offset") is not None:
        headers["X-Kmevents-Last-Applied-Offset"] = str(last["offset"])
    if r.from_snapshot is not None:
        headers["X-Kmevents-From-Snapshot"] = str(r.from_snapshot)
    return r, headers


def entity_filter(state: str | None, agent: str | None, framework: str | None, namespace: str | None,
            role: str | None, selector: str | None) -> EntityFilter:
    sel = None
    if selector is not None:
        from kmevents.selectors import parse

        try:
            sel = parse(selector)
        except UsageError as exc:
            raise bad("labelSelector", exc.message + (f" ({exc.hint})" if exc.hint else "")) from None
    states = frozenset(s.strip() for s in state.split(",") if s.strip()) if state else None
    return EntityFilter(states or None, agent, framework, namespace, role, sel)


def position_for(p: Principal, r: Any) -> dict[str, Any]:
    """The replay's position; for a namespace-limited token without what names other
    entities (the last event's id and type, the annotation counts of the whole cluster)."""
    pos: dict[str, Any] = r.position()
    if p.namespaces is not None:
        last = pos.get("last_event")
        if isinstance(last, dict):
            pos["last_event"] = {k: last.get(k) for k in ("offset", "occurred_at", "recorded_at",
                                                           "ingest_lag_seconds")}
        pos["annotations"] = {}
    return pos


def json_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
