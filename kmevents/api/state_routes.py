"""``GET /v1/clusters``, ``.../{cluster}/master``, ``.../{cluster}/{kind}[/{id}]``: the derived state,
live or at a point in time.

Every read is either

- **live**: etcd at one revision (``reads.py``); headers ``X-Kmevents-Revision``,
  ``X-Kmevents-Offset`` (the checkpoint), ``X-Kmevents-Ahead`` (keys written
  ahead of the checkpoint by an event in flight), ``X-Kmevents-Source: etcd``; or
- **time travel** with ``?at=TIME`` (source time), ``?known_at=TIME`` (log
  time) or ``?offset=N``: the replay engine from the nearest snapshot
  (``timetravel.py``); ``X-Kmevents-Source: replay`` and ``X-Kmevents-Offset``
  the last offset the replay covered; the body carries the position (last event
  applied, both its times and the ingest lag).
"""

from __future__ import annotations

import bisect
import itertools
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from kmevents.api.auth import reader
from kmevents.api.filters import (
    KIND_PATHS,
    namespace_of,
    namespace_of_id,
    visible,
)
from kmevents.api.query_base import (
    AT,
    KNOWN_AT,
    OFFSET,
    ClusterName,
    KindPath,
    bad,
    entity_filter,
    etcd_reader,
    json_body,
    ns_guard,
    position_for,
    replayed,
    view_of,
)
from kmevents.api.reads import BadToken, decode_token, encode_token
from kmevents.reducer import REDUCER_VERSION
from kmevents.replay.render import with_condition

router = APIRouter(prefix="/v1/clusters", tags=["query"])


@router.get("", summary="Clusters this token may see")
async def list_clusters(request: Request) -> Response:
    p = reader(request.app.state.settings, request)
    rev, clusters = await etcd_reader(request).clusters()
    shown = [c for c in clusters if p.may_see_cluster(c["name"])]
    return json_body({"clusters": shown}, {"X-Kmevents-Revision": str(rev)})


@router.get("/{cluster}/master", summary="The leading Mesos master, failovers and the k8sm scheduler leader")
async def get_master(request: Request, cluster: ClusterName, at: str | None = AT, known_at: str | None = KNOWN_AT,
                     offset: int | None = OFFSET) -> Response:
    p = reader(request.app.state.settings, request, cluster)
    ns_guard(p, "cluster")
    v = await view_of(request, cluster)
    rep = await replayed(request, v, at, known_at, offset)
    if rep is not None:
        r, headers = rep
        value = r.state.entity("cluster", cluster)
        extra = {"position": position_for(p, r)}
        ahead = False
    else:
        kv = await etcd_reader(request).entity(v, "cluster", cluster)
        value = orjson.loads(kv.value) if kv is not None else None
        ahead = bool(kv is not None and v.ahead(kv))
        headers, extra = v.headers(int(ahead)), {}
    value = value or {}
    body = {"cluster": cluster, "leader": value.get("leader"), "since": value.get("since"),
            "failover_count": value.get("failover_count", 0), "failovers": value.get("failovers", []),
            "heartbeat": value.get("heartbeat"), "scheduler_leader": value.get("scheduler_leader"),
            "ahead_of_checkpoint": ahead, **extra}
    return json_body(body, headers)


#: Each point-in-time read's ids of a kind, sorted once (the read's state is held and never changes):
#: every page of a list starts after its ``continue`` token's id by bisection. Each page sorted them
#: again and walked them from the first: 4.3-4.6 ms of ids a page for the large profile's 164k pods
#: against 0.25-0.27 ms (a listing of them all in pages of 100: ~7 s of 1,642 requests).
#: By ``id()`` of the read (a ``Replayed`` compares by value: it is no dict key), dropped with it.
_SORTED_IDS: dict[int, dict[str, list[str]]] = {}


def sorted_ids(r: Any, kind: str) -> list[str]:
    """The ids of ``kind`` in replayed read ``r``'s state, sorted (kept while ``r`` is)."""
    by_kind = _SORTED_IDS.get(id(r))
    if by_kind is None:
        by_kind = _SORTED_IDS[id(r)] = {}
        weakref.finalize(r, _SORTED_IDS.pop, id(r), None)
    ids = by_kind.get(kind)
    if ids is None:
        ids = by_kind[kind] = sorted(r.state.ids(kind))
    return ids


@router.get("/{cluster}/{kind}", summary="Entities of one kind, filtered and paginated")
async def list_entities(
    request: Request, cluster: ClusterName, kind: KindPath,
    state: str | None = Query(None, max_length=512, description="condition(s), comma-separated: TASK_RUNNING, "
                                                                "active, Running, Ready ..."),
    agent: str | None = Query(None, max_length=253, description="agent id or host name"),
    framework: str | None = Query(None, max_length=253, description="framework id"),
    namespace: str | None = Query(None, max_length=253),
    role: str | None = Query(None, max_length=253, description="Mesos role"),
    labelSelector: str | None = Query(None, max_length=1024,  # noqa: N803
                                      description="Kubernetes label selector: app=mysql,tier!=cache, "
                                                  "env in (a,b), env notin (c), key, !key"),
    limit: int | None = Query(None, ge=1, description="page size (at most api.page_limit_max)"),
    continue_: str | None = Query(None, alias="continue", max_length=4096,
                                  description="the `continue` token of the previous page"),
    at: str | None = AT, known_at: str | None = KNOWN_AT, offset: int | None = OFFSET,
) -> Response:
    settings = request.app.state.settings
    p = reader(settings, request, cluster)
    k = KIND_PATHS[kind]
    ns_guard(p, k)
    if p.namespaces is not None and namespace is not None and namespace not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace!r}")
    if limit is None:
        limit = settings.api.page_limit_default
    if limit > settings.api.page_limit_max:
        raise bad("limit", f"limit {limit} is above the maximum {settings.api.page_limit_max}")
    flt = entity_filter(state, agent, framework, namespace, role, labelSelector)
    query = f"{flt.describe()}|at={at}|known_at={known_at}|offset={offset}"
    after: str | None = None
    token_rev = 0
    if continue_:
        try:
            token_rev, after = decode_token(continue_, kind, query)
        except BadToken as exc:
            raise bad("continue", str(exc)) from None
    rdr = etcd_reader(request)
    if token_rev and at is None and known_at is None and offset is None:
        from kmevents.adapters.etcd import RevisionCompacted

        try:
            v = await rdr.view(cluster, revision=token_rev)
        except RevisionCompacted as exc:
            if "future revision" in str(exc.__cause__):  # etcd answers both with OUT_OF_RANGE
                raise bad("continue", f"continue token is not valid: revision {token_rev} is newer than "
                                      "etcd's") from None
            raise HTTPException(410, "the revision of this continue token was compacted: list again from the "
                                     "first page") from None
    else:
        v = await view_of(request, cluster)
    rep = await replayed(request, v, at, known_at, offset)
    extra: dict[str, Any] = {}

    async def candidates() -> AsyncIterator[tuple[str, dict[str, Any], bool]]:
        """``(id, value, ahead)`` in id order after the token's position."""
        if rep is not None:
            st = rep[0].state
            ids = sorted_ids(rep[0], k)
            for id in itertools.islice(ids, 0 if after is None else bisect.bisect_right(ids, after), None):
                yield id, st.entity(k, id), False
            return
        prefix_len = len(f"{settings.etcd.prefix}/clusters/{cluster}/{v.generation}/{k}/")
        async for chunk in rdr.scan(v, k, after=after, chunk=max(limit + 1, 200)):
            for kv in chunk:
                yield kv.key[prefix_len:].decode(), orjson.loads(kv.value), v.ahead(kv)

    items: list[dict[str, Any]] = []
    ahead: list[str] = []
    more = False
    last_id: str | None = None
    async for id, val, is_ahead in candidates():
        if val is None or not flt.matches(k, id, val) or not visible(p.namespaces, k, id, val):
            continue
        if len(items) == limit:
            more = True
            break
        items.append(with_condition(val))
        last_id = id
        if is_ahead:
            ahead.append(id)
    if rep is not None:
        headers = rep[1]
        extra["position"] = position_for(p, rep[0])
    else:
        headers = v.headers(len(ahead))
    token = encode_token(v.revision, kind, last_id, query) if more and last_id is not None else None
    body = {"cluster": cluster, "kind": kind, "count": len(items), "items": items, "continue": token,
            "ahead_of_checkpoint": ahead, "reducer_version": REDUCER_VERSION, **extra}
    return json_body(body, headers)


@router.get("/{cluster}/{kind}/{id:path}", summary="One entity")
async def get_entity(request: Request, cluster: ClusterName, kind: KindPath, id: str,
                     at: str | None = AT, known_at: str | None = KNOWN_AT, offset: int | None = OFFSET) -> Response:
    """A namespace-limited token learns nothing of entities outside its namespaces: 403 when
    the id names another namespace (``ns/name``), whether or not it exists; for an id that
    names none (a task), the same 404 for "not there" and "there, in another namespace"."""
    p = reader(request.app.state.settings, request, cluster)
    k = KIND_PATHS[kind]
    ns_guard(p, k)
    named = namespace_of_id(k, id)
    if p.namespaces is not None and named is not None and named not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {named!r}")
    v = await view_of(request, cluster)
    rep = await replayed(request, v, at, known_at, offset)
    extra: dict[str, Any] = {}
    if rep is not None:
        r, headers = rep
        value = r.state.entity(k, id)
        is_ahead = False
        extra["position"] = position_for(p, r)
    else:
        kv = await etcd_reader(request).entity(v, k, id)
        value = orjson.loads(kv.value) if kv is not None else None
        is_ahead = bool(kv is not None and v.ahead(kv))
        headers = v.headers(int(is_ahead))
    if value is not None and not visible(p.namespaces, k, id, value):
        if named is None:
            value = None  # answered exactly as a missing one
        else:
            raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace_of(k, value, id)!r}")
    if value is None:
        headers["X-Kmevents-Ahead"] = "0"
        detail = f"{kind}/{id} is not in the state of {cluster!r} at this point"
        if k == "task":  # for any id alike: the answer must not tell a hidden task from a missing one
            detail += ("; a task's id is <framework_id>/<task_id> (a Mesos task id is unique only within its "
                       "framework): list them with ?framework=, or use the id the task list shows")
        return json_body({"detail": detail}, headers, 404)
    return json_body({"cluster": cluster, "kind": kind, "id": id, "value": with_condition(value),
                      "ahead_of_checkpoint": is_ahead,
                  **extra}, headers)
