"""Reads in the past (``?at=``, ``?known_at=``, ``?offset=``), served by the replay engine.

The meanings are the CLI's (``kmevents state``): ``at`` is SOURCE time (the
events whose ``occurred_at`` is at or before it, folded in log order),
``known_at`` is LOG time (what the log had recorded by then) and ``offset`` a
partition offset. The replay starts from the newest snapshot at or before the
point (snapshot index in etcd, chunks in the snapshots topic), so a read costs
bounded work. A small cache keeps the last few replayed states, keyed by the
cluster, the point and the end of the log the point resolved to (an ``at``
read depends on the log's end: a late event may still arrive).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.replay.engine import Replayed, Target, replay, resolve_end
from kmevents.replay.snapshots import SnapshotStore
from kmevents.replay.sources import KafkaSource
from kmevents.replay.timespec import parse_time
from kmevents.settings import Settings


class BadPoint(ValueError):
    """A time-travel parameter that cannot be read: ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def target_of(at: str | None, known_at: str | None, offset: int | None) -> Target | None:
    """The replay target of the query parameters, or None (read the live state in etcd)."""
    given = [n for n, v in (("at", at), ("known_at", known_at), ("offset", offset)) if v is not None]
    if len(given) > 1:
        raise BadPoint(given[1], f"give one of at, known_at, offset (got {', '.join(given)})")
    from kmevents.errors import UsageError

    try:
        if at is not None:
            return Target(at=parse_time(at))
        if known_at is not None:
            return Target(known_at=parse_time(known_at))
    except UsageError as exc:
        raise BadPoint(given[0], exc.message + (f" ({exc.hint})" if exc.hint else "")) from None
    if offset is not None:
        return Target(offset=offset)
    return None


class TimeTravel:
    """Replayed states for the API, with a small LRU cache."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient) -> None:
        self.settings = settings
        self.client = client
        self.cache: OrderedDict[tuple[Any, ...], Replayed] = OrderedDict()
        self.locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self.replays = 0
        self._sources: dict[tuple[str, int], tuple[float, KafkaSource]] = {}

    #: How long the log's bounds (first/last offset) read for a cluster are reused.
    #: Each fresh read opens Kafka clients (~0.5 s here); a point-in-time read may
    #: therefore not see records appended during the last second.
    bounds_ttl_seconds = 1.0

    def source(self, cluster: str, partition: int) -> KafkaSource:
        key = (cluster, partition)
        now = time.monotonic()
        hit = self._sources.get(key)
        if hit is not None and now - hit[0] < self.bounds_ttl_seconds:
            return hit[1]
        src = KafkaSource(self.settings.kafka, self.settings.kafka.events_topic, partition, cluster)
        self._sources[key] = (now, src)
        return src

    async def state(self, cluster: str, partition: int, target: Target) -> Replayed:
        """The cluster's state at ``target``. Raises ``BadPoint`` for an offset beyond the log."""
        from kmevents.errors import UsageError

        src = self.source(cluster, partition)
        try:
            end = await resolve_end(src, target)
        except UsageError as exc:
            raise BadPoint("offset", exc.message) from None
        _, last = await src.covers()
        key = (cluster, partition, end, last if target.at is not None else None,
               target.at.iso if target.at is not None else None)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
            snaps = SnapshotStore(self.settings, self.client)
            fixed = Target(offset=end) if target.at is None else target
            r = await replay(src, cluster, fixed, snapshots=snaps, progress=False, label="api")
            r.target = target
            self.replays += 1
            if self.settings.api.replay_cache_entries > 0:
                self.cache[key] = r
                while len(self.cache) > self.settings.api.replay_cache_entries:
                    self.cache.popitem(last=False)
        self.locks.pop(key, None)
        return r
