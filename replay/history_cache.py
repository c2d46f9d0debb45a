"""The touched-entity index kept between histories, for a long-lived reader (the API's history route).

Every history reads the cluster's whole index first (replay/history.py ``read_index``): ~25 bytes
an event of the log, from etcd and the groups' chunks in the snapshots topic, so that step grows
with the log (0.12 s at 1.5M events of the large profile, ~1 s at ten times that). An
:class:`IndexCache` reads it whole once, then, for each later history of the cluster, only what the
worker added since: the blocks closed past the last one kept, the records' entries stored since,
and the open block (``Indexed.refresh``). A warm history's index read then costs what the last
seconds added, whatever the log's length.

What the incremental read does not see is read at the next whole read, every
:data:`REREAD_SECONDS`: records built for old blocks (``kmevents snapshots backfill``), records
deleted (a history then fails to read one and folds its block: slower, never wrong), and blocks
of a group whose chunks could not be read (a range read as not indexed; an index with such a hole
is not kept at all). Closed blocks never change, so the blocks kept stay exact.

Memory: the blocks' hashes, ~25 bytes an event of the log (37 MB at 1.5M events), per cluster,
within ``budget`` bytes for all clusters together (``KMEVENTS_API__HISTORY_INDEX_CACHE_MIB``): the
least recently used are let go to make room, and an index larger than the budget is not kept (each
of its histories reads it whole, as before).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from kmevents.replay.history import Indexed, indexed, read_index

from kmevents.store import touched
from kmevents.store.snapshots import Snapshots

log = logging.getLogger("kmevents.replay.history_cache")

#: The whole index is read again after this many seconds (see the module docstring).
REREAD_SECONDS = 300.0


@dataclass
class _Kept:
    read_at: float
    blocks: list[touched.Block]
    entries: dict[tuple[int, int], dict[str, Any]]

    @property
    def size(self) -> int:
        """Bytes of the blocks' hashes (the bulk of what is kept)."""
        return sum(b.hashes.itemsize * len(b.hashes) for b in self.blocks)


def _whole(blocks: list[touched.Block]) -> bool:
    """No hole between the blocks (one follows or overlaps the one before it): none of a group's
    blocks was left out for want of its chunks."""
    return all(b.first <= a.last + 1 for a, b in zip(blocks, blocks[1:], strict=False))


class IndexCache:
    """Each cluster's index as the last history left it (see the module docstring). One history of a
    cluster reads or refreshes it at a time; each history gets an :class:`Indexed` of its own."""

    def __init__(self, settings: Any, client: Any, *, reread_seconds: float = REREAD_SECONDS,
                 budget: int | None = None) -> None:
        """``budget``: bytes of block hashes kept for all clusters (default the API's setting)."""
        self.settings, self.client, self.reread_seconds = settings, client, reread_seconds
        self.budget = settings.api.history_index_cache_mib * 1024 * 1024 if budget is None else budget
        #: by cluster, the least recently used first
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: clusters whose index was found larger than the budget (logged once)
        self._told: set[str] = set()
        #: whole reads and incremental ones, for the tests and the logs
        self.whole_reads = 0
        self.refreshes = 0

    async def index(self, cluster: str, snapshots: Snapshots | None, *, reader_of: Any = None) -> Indexed:
        """The cluster's index for one history, with the snapshots its folds start from."""
        reader_of = reader_of or getattr(snapshots, "reader_of", None)
        lock = self._locks.setdefault(cluster, asyncio.Lock())
        async with lock:
            kept = self._kept.get(cluster)
            if kept is not None and time.monotonic() - kept.read_at <= self.reread_seconds:
                idx = indexed(self.settings, self.client, cluster, snapshots, list(kept.blocks), dict(kept.entries),
                              None, reader_of=reader_of)
                try:
                    assert idx.refresh is not None
                    await idx.refresh()
                except Exception as exc:  # noqa: BLE001 - read whole instead (it says why it cannot)
                    log.warning("history index not refreshed; read whole", extra={"cluster": cluster,
                                                                                    "error": str(exc)[:300]})
                else:
                    self.refreshes += 1
                    idx.kept = True
                    kept.blocks, kept.entries = list(idx.blocks), dict(idx.versions)
                    self._keep(cluster, kept)
                    return idx
            started = time.monotonic()
            idx = await read_index(self.settings, self.client, cluster, snapshots, reader_of=reader_of)
            self.whole_reads += 1
            self._kept.pop(cluster, None)
            if idx.scanned is None and idx.blocks and _whole(idx.blocks):
                self._keep(cluster, _Kept(started, list(idx.blocks), dict(idx.versions)))
            return idx

    def _keep(self, cluster: str, kept: _Kept) -> None:
        """Keep ``cluster``'s index as the most recently used, letting the least recently used others
        go while all of them exceed the budget; not at all when it alone does."""
        self._kept.pop(cluster, None)
        size = kept.size
        if size > self.budget:
            if cluster not in self._told:  # (once: each of its histories comes here)
                self._told.add(cluster)
                log.info("history index not kept: larger than KMEVENTS_API__HISTORY_INDEX_CACHE_MIB", extra={
                    "cluster": cluster, "bytes": size, "budget": self.budget})
            return
        while self._kept and self.kept_bytes + size > self.budget:
            self._kept.pop(next(iter(self._kept)))
        self._kept[cluster] = kept

    @property
    def kept_bytes(self) -> int:
        return sum(k.size for k in self._kept.values())


__all__ = ["REREAD_SECONDS", "IndexCache"]
