"""``GET /v1/clusters/{cluster}/history/{kind}/{id}`` and ``.../search``: incident analysis.

One entity's causal history (every event that touched it) and events across time
matching filters, both replayed from the log (never from etcd), both limited to
what the token may read.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from kmevents.api.auth import reader
from kmevents.api.filters import (
    KIND_PATHS,
    event_visible,
    visible,
    visible_history,
)
from kmevents.api.query_base import (
    ClusterName,
    KindPath,
    bad,
    entity_filter,
    etcd_reader,
    ingested_partition,
    json_body,
    known_types,
    ns_guard,
    time_travel,
    view_of,
)
from kmevents.errors import UsageError

router = APIRouter(prefix="/v1/clusters", tags=["query"])


@router.get("/{cluster}/history/{kind}/{id:path}", summary="One entity's causal history (every event that touched it)",
            tags=["query"])
async def get_history(request: Request, cluster: ClusterName, kind: KindPath, id: str,
                      limit: int = Query(1000, ge=1, le=100_000, description="at most this many events")) -> Response:
    from kmevents.replay import history

    p = reader(request.app.state.settings, request, cluster)
    k = KIND_PATHS[kind]
    ns_guard(p, k)
    v = await view_of(request, cluster)
    if p.namespaces is not None:
        kv = await etcd_reader(request).entity(v, k, id)
        value = orjson.loads(kv.value) if kv is not None else None
        if not visible(p.namespaces, k, id, value):
            raise HTTPException(403, f"token {p.name!r} may not see {kind}/{id}")
    partition = ingested_partition(v)
    tt = time_travel(request)
    src = tt.source(cluster, partition)
    namespaces = p.namespaces

    def mark(ev: dict[str, Any]) -> dict[str, Any]:
        return {"_visible": event_visible(namespaces, ev)}

    async with tt.gates["cold"].slot():
        # the worker's touched-entity index: only the blocks that touched the entity and its links
        # (kept between histories: a warm one reads what the worker added since, not the whole index)
        idx = await tt.history_index.index(cluster, tt.held_snapshots(cluster, partition))
        rel = await history.related(src, cluster, k, [id], None, progress=False, index=idx)
        entries = await history.collect(src, cluster, rel, progress=False,
                                        extra=mark if namespaces is not None else None, index=idx)
    # a namespace-limited token sees the entities it may read directly, nothing linked beyond them
    entries, related = visible_history(namespaces, entries, sorted(f"{a}/{b}" for a, b in rel.keys))
    body = {"cluster": cluster, "kind": kind, "id": id, "related": related,
            "count": len(entries), "events": entries[-limit:]}
    return json_body(body, {"X-Kmevents-Source": "replay", "X-Kmevents-Partition": str(partition),
                        "X-Kmevents-Revision": str(v.revision),
                        "X-Kmevents-History": f"indexed: {idx.folded} of {idx.units} units folded, {idx.served} read "
                                              f"from versions records; index {'kept' if idx.kept else 'read whole'}"
                        if idx.serves else f"scanned: {idx.scanned}"})


@router.get("/{cluster}/search", summary="Events across time matching filters", tags=["query"])
async def search_events(
    request: Request, cluster: ClusterName,
    type: list[str] | None = Query(None, description="event type globs, e.g. task.* (repeat for several)"),  # noqa: A002, B008
    namespace: str | None = Query(None, max_length=253),
    agent: str | None = Query(None, max_length=253, description="agent id or host name"),
    labelSelector: str | None = Query(None, max_length=1024, description="e.g. app=mysql,tier!=cache"),  # noqa: N803
    from_: str | None = Query(None, alias="from", max_length=64, description="offset:N or TIME"),
    to: str | None = Query(None, max_length=64, description="offset:N or TIME"),
    known: bool = Query(False, description="times are log times (recorded_at), not source times"),
    limit: int = Query(100, ge=1, le=10_000),
) -> Response:
    from kmevents.replay.search import Filters, search
    from kmevents.timespec import parse_point

    p = reader(request.app.state.settings, request, cluster)
    known_types(type)
    if p.namespaces is not None and namespace is not None and namespace not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace!r}")
    sel = entity_filter(None, None, None, None, None, labelSelector).selector
    pts = {}
    for name, val in (("from", from_), ("to", to)):
        if val is not None:
            try:
                pts[name] = parse_point(val)
            except UsageError as exc:
                raise bad(name, exc.message) from None
    v = await view_of(request, cluster)
    partition = ingested_partition(v)
    f = Filters(types=type, namespace=namespace, agent=agent, selector=sel, start=pts.get("from"),
                end=pts.get("to"), known=known)
    tt = time_travel(request)
    src = tt.source(cluster, partition)
    namespaces = p.namespaces
    async with tt.gates["cold"].slot():
        # (the worker's touched-entity index and host directory bound a range of times: replay/search.py)
        found = await search(src, f, limit=limit, keep=None if namespaces is None else
                             (lambda ev: event_visible(namespaces, ev)), index=tt.snapshots, cluster=cluster)
    return json_body({"cluster": cluster, "count": len(found), "events": found},
                 {"X-Kmevents-Source": "log", "X-Kmevents-Partition": str(partition),
                  "X-Kmevents-Revision": str(v.revision)})
