"""``GET /v1/clusters/...``: the derived state, its past, histories and search.

Every read is either

- **live**: etcd at one revision (``reads.py``); headers ``X-Kmevents-Revision``,
  ``X-Kmevents-Offset`` (the checkpoint), ``X-Kmevents-Ahead`` (keys written
  ahead of the checkpoint by an event in flight), ``X-Kmevents-Source: etcd``; or
- **time travel** with ``?at=TIME`` (source time), ``?known_at=TIME`` (log
  time) or ``?offset=N``: the replay engine from the nearest snapshot
  (``timetravel.py``); ``X-Kmevents-Source: replay`` and ``X-Kmevents-Offset``
  the last offset the replay covered; the body carries the position (last event
  applied, both its times and the ingest lag).

Bad parameters answer 422 with the parameter's path (``["query", "at"]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from kmevents.api.auth import Principal, reader
from kmevents.api.filters import (
    KIND_PATHS,
    NAMESPACED,
    EntityFilter,
    event_visible,
    namespace_of,
    namespace_of_id,
    visible,
    visible_history,
)
from kmevents.api.reads import BadToken, EtcdReader, View, decode_token, encode_token
from kmevents.api.timetravel import TimeTravel, target_of
from kmevents.errors import UsageError
from kmevents.reducer import REDUCER_VERSION
from kmevents.replay.archiving import SNAPSHOT_EVERY as ARCHIVE_SNAPSHOT_EVERY
from kmevents.replay.engine import BadTarget

router = APIRouter(prefix="/v1/clusters", tags=["query"])

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


def _reader(request: Request) -> EtcdReader:
    return EtcdReader(request.app.state.settings, request.app.state.etcd)


def _tt(request: Request) -> TimeTravel:
    return request.app.state.timetravel  # type: ignore[no-any-return]


def _json(body: Any, headers: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json", headers=headers)


def _ns_guard(p: Principal, kind: str) -> None:
    if p.namespaces is not None and kind not in NAMESPACED:
        raise HTTPException(403, f"token {p.name!r} is limited to namespaces {sorted(p.namespaces)} and may not "
                                 f"see cluster-scoped {kind} entities")


async def _view(request: Request, cluster: str) -> View:
    v = await _reader(request).view(cluster)
    if not v.known:
        raise HTTPException(404, f"cluster {cluster!r} is unknown: nothing was ever ingested or derived for it")
    return v


async def _replayed(request: Request, v: View, at: str | None, known_at: str | None,
                    offset: int | None) -> tuple[Any, dict[str, str]] | None:
    """The replayed state and its headers when a time-travel parameter was given, else None."""
    try:
        target = target_of(at, known_at, offset)
    except BadTarget as exc:
        raise bad(exc.param, exc.one_line()) from None
    if target is None:
        return None
    if v.partition is None:
        raise HTTPException(404, f"cluster {v.cluster!r} has no partition in the map: it was never ingested")
    try:
        r = await _tt(request).state(v.cluster, v.partition, target)
    except BadTarget as exc:
        raise bad(exc.param, exc.one_line()) from None
    except UsageError as exc:
        raise HTTPException(422, exc.message) from None
    last = r.last or {}
    headers = {"X-Kmevents-Source": "replay", "X-Kmevents-Partition": str(v.partition),
               "X-Kmevents-Offset": str(r.end_offset), "X-Kmevents-Target": target.describe(),
               "X-Kmevents-Revision": str(v.revision), "X-Kmevents-Ahead": "0"}
    if last.get("offset") is not None:
        headers["X-Kmevents-Last-Applied-Offset"] = str(last["offset"])
    if r.from_snapshot is not None:
        headers["X-Kmevents-From-Snapshot"] = str(r.from_snapshot)
    return r, headers


def _filter(state: str | None, agent: str | None, framework: str | None, namespace: str | None,
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


@router.get("", summary="Clusters this token may see")
async def list_clusters(request: Request) -> Response:
    p = reader(request.app.state.settings, request)
    rev, clusters = await _reader(request).clusters()
    shown = [c for c in clusters if p.may_see_cluster(c["name"])]
    return _json({"clusters": shown}, {"X-Kmevents-Revision": str(rev)})


@router.get("/{cluster}/master", summary="The leading Mesos master, failovers and the k8sm scheduler leader")
async def get_master(request: Request, cluster: ClusterName, at: str | None = AT, known_at: str | None = KNOWN_AT,
                     offset: int | None = OFFSET) -> Response:
    p = reader(request.app.state.settings, request, cluster)
    _ns_guard(p, "cluster")
    v = await _view(request, cluster)
    rep = await _replayed(request, v, at, known_at, offset)
    if rep is not None:
        r, headers = rep
        value = r.state.entity("cluster", cluster)
        extra = {"position": _position(p, r)}
        ahead = False
    else:
        kv = await _reader(request).entity(v, "cluster", cluster)
        value = orjson.loads(kv.value) if kv is not None else None
        ahead = bool(kv is not None and v.ahead(kv))
        headers, extra = v.headers(int(ahead)), {}
    value = value or {}
    body = {"cluster": cluster, "leader": value.get("leader"), "since": value.get("since"),
            "failover_count": value.get("failover_count", 0), "failovers": value.get("failovers", []),
            "heartbeat": value.get("heartbeat"), "scheduler_leader": value.get("scheduler_leader"),
            "ahead_of_checkpoint": ahead, **extra}
    return _json(body, headers)


@router.get("/{cluster}/history/{kind}/{id:path}", summary="One entity's causal history (every event that touched it)",
            tags=["incident analysis"])
async def get_history(request: Request, cluster: ClusterName, kind: KindPath, id: str,
                      limit: int = Query(1000, ge=1, le=100_000, description="at most this many events")) -> Response:
    from kmevents.replay import history

    p = reader(request.app.state.settings, request, cluster)
    k = KIND_PATHS[kind]
    _ns_guard(p, k)
    v = await _view(request, cluster)
    if p.namespaces is not None:
        kv = await _reader(request).entity(v, k, id)
        value = orjson.loads(kv.value) if kv is not None else None
        if not visible(p.namespaces, k, id, value):
            raise HTTPException(403, f"token {p.name!r} may not see {kind}/{id}")
    if v.partition is None:
        raise HTTPException(404, f"cluster {cluster!r} has no partition in the map: it was never ingested")
    tt = _tt(request)
    src = tt.source(cluster, v.partition)
    namespaces = p.namespaces

    def mark(ev: dict[str, Any]) -> dict[str, Any]:
        return {"_visible": event_visible(namespaces, ev)}

    async with tt.gates["cold"].slot():
        rel = await history.related(src, cluster, k, [id], None, progress=False)
        entries = await history.collect(src, cluster, rel, progress=False,
                                        extra=mark if namespaces is not None else None)
    # a namespace-limited token sees the entities it may read directly, nothing linked beyond them
    entries, related = visible_history(namespaces, entries, sorted(f"{a}/{b}" for a, b in rel.keys))
    body = {"cluster": cluster, "kind": kind, "id": id, "related": related,
            "count": len(entries), "events": entries[-limit:]}
    return _json(body, {"X-Kmevents-Source": "replay", "X-Kmevents-Partition": str(v.partition),
                        "X-Kmevents-Revision": str(v.revision)})


@router.get("/{cluster}/search", summary="Events across time matching filters", tags=["incident analysis"])
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
    if p.namespaces is not None and namespace is not None and namespace not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace!r}")
    sel = _filter(None, None, None, None, None, labelSelector).selector
    pts = {}
    for name, val in (("from", from_), ("to", to)):
        if val is not None:
            try:
                pts[name] = parse_point(val)
            except UsageError as exc:
                raise bad(name, exc.message) from None
    v = await _view(request, cluster)
    if v.partition is None:
        raise HTTPException(404, f"cluster {cluster!r} has no partition in the map: it was never ingested")
    f = Filters(types=type, namespace=namespace, agent=agent, selector=sel, start=pts.get("from"),
                end=pts.get("to"), known=known)
    tt = _tt(request)
    src = tt.source(cluster, v.partition)
    namespaces = p.namespaces
    async with tt.gates["cold"].slot():
        found = await search(src, f, limit=limit, keep=None if namespaces is None else
                             (lambda ev: event_visible(namespaces, ev)))
    return _json({"cluster": cluster, "count": len(found), "events": found},
                 {"X-Kmevents-Source": "log", "X-Kmevents-Partition": str(v.partition),
                  "X-Kmevents-Revision": str(v.revision)})


@router.get("/{cluster}/archive", summary="The cluster's log as a portable archive (what this token may see)",
            tags=["incident analysis"], response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "a kmevents archive (zstd); `kmevents state --source FILE` reads it"}})
async def export_archive(
    request: Request, cluster: ClusterName,
    from_: int | None = Query(None, alias="from", ge=0, le=2**62, description="first offset (default: the log's first)"),
    to: int | None = Query(None, ge=0, le=2**62, description="last offset, inclusive (default: the log's last)"),
    snapshot_every: int = Query(ARCHIVE_SNAPSHOT_EVERY, ge=0, le=2**62,
                                description="keep a snapshot about every N offsets (0: none), as `kmevents archive "
                                            "export --snapshot-every`"),
) -> Response:
    """A token limited to some namespaces gets only the events that name one of them;
    such an archive says so in its header (``filtered``) and carries no chain heads
    and no snapshots, since the chain cannot be followed with records left out and
    a snapshot holds every namespace."""
    import tempfile
    from pathlib import Path as FilePath

    from starlette.background import BackgroundTask
    from starlette.responses import FileResponse

    from kmevents.replay.archive import SUFFIX as archive_suffix
    from kmevents.replay.archiving import chain_before, export
    from kmevents.replay.sources import KafkaSource
    from kmevents.store.snapshots import SnapshotStore

    p = reader(request.app.state.settings, request, cluster)
    v = await _view(request, cluster)
    if v.partition is None:
        raise HTTPException(404, f"cluster {cluster!r} has no partition in the map: it was never ingested")
    s = request.app.state.settings
    src = KafkaSource(s.kafka, s.kafka.events_topic, v.partition, cluster)
    first, last = await src.covers()
    start = first if from_ is None else from_
    end = last if to is None else min(to, last)
    if start > end:
        raise bad("from", f"nothing to export: from {start} is after the last offset {end}")
    keep = None
    filtered = None
    head = None
    store = None
    if p.namespaces is not None:
        namespaces = p.namespaces

        def keep(r: Any) -> bool:
            try:
                return event_visible(namespaces, orjson.loads(r.value or b""))
            except orjson.JSONDecodeError:
                return False

        filtered = {"namespaces": sorted(namespaces), "token": p.name}
    else:
        store = SnapshotStore(s, request.app.state.etcd)
        store.freeze = False  # a long-lived process: see store.snapshots.load_snapshot
        head = await chain_before(src, cluster, start, store)
    tmpdir = tempfile.mkdtemp(prefix="kmevents-api-archive-")
    path = FilePath(tmpdir) / f"{cluster}-{start}-{end}{archive_suffix}"
    header = await export(src, path, cluster=cluster, topic=s.kafka.events_topic, start=start, end=end,
                          chain_head_start=head, keep=keep, filtered=filtered, snapshots=store,
                          snapshot_every=snapshot_every)

    def cleanup() -> None:
        path.unlink(missing_ok=True)
        FilePath(tmpdir).rmdir()

    return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                        background=BackgroundTask(cleanup),
                        headers={"X-Kmevents-Partition": str(v.partition), "X-Kmevents-Records": str(header["count"]),
                                 "X-Kmevents-Filtered": "true" if filtered else "false"})


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
    _ns_guard(p, k)
    if p.namespaces is not None and namespace is not None and namespace not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {namespace!r}")
    if limit is None:
        limit = settings.api.page_limit_default
    if limit > settings.api.page_limit_max:
        raise bad("limit", f"limit {limit} is above the maximum {settings.api.page_limit_max}")
    flt = _filter(state, agent, framework, namespace, role, labelSelector)
    query = f"{flt.describe()}|at={at}|known_at={known_at}|offset={offset}"
    after: str | None = None
    token_rev = 0
    if continue_:
        try:
            token_rev, after = decode_token(continue_, kind, query)
        except BadToken as exc:
            raise bad("continue", str(exc)) from None
    rdr = _reader(request)
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
        v = await _view(request, cluster)
    rep = await _replayed(request, v, at, known_at, offset)
    extra: dict[str, Any] = {}

    async def candidates() -> AsyncIterator[tuple[str, dict[str, Any], bool]]:
        """``(id, value, ahead)`` in id order after the token's position."""
        if rep is not None:
            st = rep[0].state
            for id in sorted(i for i, _ in st.entities(k)):
                if after is None or id > after:
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
        items.append(val)
        last_id = id
        if is_ahead:
            ahead.append(id)
    if rep is not None:
        headers = rep[1]
        extra["position"] = _position(p, rep[0])
    else:
        headers = v.headers(len(ahead))
    token = encode_token(v.revision, kind, last_id, query) if more and last_id is not None else None
    body = {"cluster": cluster, "kind": kind, "count": len(items), "items": items, "continue": token,
            "ahead_of_checkpoint": ahead, "reducer_version": REDUCER_VERSION, **extra}
    return _json(body, headers)


@router.get("/{cluster}/{kind}/{id:path}", summary="One entity")
async def get_entity(request: Request, cluster: ClusterName, kind: KindPath, id: str,
                     at: str | None = AT, known_at: str | None = KNOWN_AT, offset: int | None = OFFSET) -> Response:
    """A namespace-limited token learns nothing of entities outside its namespaces: 403 when
    the id names another namespace (``ns/name``), whether or not it exists; for an id that
    names none (a task), the same 404 for "not there" and "there, in another namespace"."""
    p = reader(request.app.state.settings, request, cluster)
    k = KIND_PATHS[kind]
    _ns_guard(p, k)
    named = namespace_of_id(k, id)
    if p.namespaces is not None and named is not None and named not in p.namespaces:
        raise HTTPException(403, f"token {p.name!r} may not see namespace {named!r}")
    v = await _view(request, cluster)
    rep = await _replayed(request, v, at, known_at, offset)
    extra: dict[str, Any] = {}
    if rep is not None:
        r, headers = rep
        value = r.state.entity(k, id)
        is_ahead = False
        extra["position"] = _position(p, r)
    else:
        kv = await _reader(request).entity(v, k, id)
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
        return _json({"detail": f"{kind}/{id} is not in the state of {cluster!r} at this point"}, headers, 404)
    return _json({"cluster": cluster, "kind": kind, "id": id, "value": value, "ahead_of_checkpoint": is_ahead,
                  **extra}, headers)


def _position(p: Principal, r: Any) -> dict[str, Any]:
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
