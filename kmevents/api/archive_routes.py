"""``GET /v1/clusters/{cluster}/archive``: the cluster's log as a portable archive, limited to
what the token may see (a namespace-limited token gets a filtered archive without chain heads
or snapshots)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kmevents.api.auth import reader
from kmevents.api.filters import (
    event_visible,
)
from kmevents.api.query_base import (
    ClusterName,
    bad,
    ingested_partition,
    view_of,
)
from kmevents.replay.archiving import SNAPSHOT_EVERY as ARCHIVE_SNAPSHOT_EVERY

router = APIRouter(prefix="/v1/clusters", tags=["query"])


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
    v = await view_of(request, cluster)
    partition = ingested_partition(v)
    s = request.app.state.settings
    src = KafkaSource(s.kafka, s.kafka.events_topic, partition, cluster)
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
                        headers={"X-Kmevents-Partition": str(partition), "X-Kmevents-Records": str(header["count"]),
                                 "X-Kmevents-Filtered": "true" if filtered else "false"})
