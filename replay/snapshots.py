"""Snapshots that archives carry, offered to replay like the snapshot store's.

The processors' snapshots (etcd's index, the snapshots topic) are the store's:
``kmevents.store.snapshots`` (the ``Snapshots`` interface, ``SnapshotStore``).
Archives carry snapshots too (replay/archive.py): :class:`ArchiveSnapshots` offers
them through the same interface, so a point-in-time read from archives alone is
bounded as well, and :class:`CombinedSnapshots` joins both for archives followed
by the topic.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import IO, TYPE_CHECKING, Any

from kmevents.reducer import ClusterState
from kmevents.store.snapshots import Snapshots

if TYPE_CHECKING:
    from kmevents.store import hosts, touched

log = logging.getLogger("kmevents.replay.snapshots")


class ArchiveSnapshots(Snapshots):
    """The snapshots carried by archives (``kmevents archive export`` keeps some)."""

    def __init__(self, archives: list[Any]) -> None:
        """``archives``: ``sources.ArchiveSource`` s (their headers list the snapshots)."""
        self.archives = archives

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        out = []
        for a in self.archives:
            if a.cluster != cluster:
                continue
            for i, meta in enumerate(a.header.get("snapshots") or []):
                out.append({**meta, "cluster": cluster, "_archive": str(a.path), "_index": i})
        return sorted(out, key=lambda e: int(e["offset"]))

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        from kmevents.replay import archive

        try:
            return archive.read_snapshot(entry["_archive"], int(entry["_index"]))
        except (archive.ArchiveError, OSError) as exc:
            log.warning("archive snapshot not readable: %s", exc)
            return None

    async def state_stream(self, entry: dict[str, Any]) -> IO[bytes] | None:
        from kmevents.replay import archive

        from kmevents.store.snapshots import open_stored

        try:
            f, meta = archive.open_stored_snapshot(entry["_archive"], int(entry["_index"]))
        except (archive.ArchiveError, OSError) as exc:
            log.warning("archive snapshot not readable: %s", exc)
            return None
        return open_stored(f, meta["codec"])


class CombinedSnapshots(Snapshots):
    """Several places' snapshots as one (archives and the snapshot store of the topic they precede)."""

    def __init__(self, parts: list[Snapshots]) -> None:
        self.parts = parts

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        out = [{**e, "_part": i} for i, p in enumerate(self.parts) for e in await p.entries(cluster)]
        return sorted(out, key=lambda e: int(e["offset"]))

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        return await self.parts[int(entry["_part"])].state_bytes(entry)

    def index_heads(self, cluster: str, at: str | None = None, *,
                    since: str | None = None) -> AsyncGenerator[touched.Block, None] | None:
        """The index of the part that keeps one (the topic's snapshot store: archives keep none)."""
        return next((h for p in self.parts if (h := p.index_heads(cluster, at, since=since)) is not None), None)

    async def host_directory(self, cluster: str, partition: int) -> hosts.Known | None:
        for p in self.parts:
            got = await p.host_directory(cluster, partition)
            if got is not None:
                return got
        return None

    async def load(self, entry: dict[str, Any]) -> ClusterState | None:
        return await self.parts[int(entry["_part"])].load(entry)

    def one_point(self) -> None:
        super().one_point()
        for p in self.parts:
            p.one_point()
