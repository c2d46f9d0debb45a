"""Thin live client for k8sm's leader key in etcd (through kmevents.adapters.etcd).

Reads the key (``range_at``, which also gives the store revision), then
watches it from the next revision. After an error it reconnects with backoff
and resumes from the revision after the last write it saw; a compacted
revision makes it re-read the key, and the parser reports the versions it
missed as ``source.gap``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import EtcdSettings
from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources.k8sm import LeaderParser


class LeaderKeyClient:
    """Follows one etcd key. No I/O in ``__init__``."""

    def __init__(self, settings: EtcdSettings, parser: LeaderParser, *, backoff: Backoff | None = None,
                 max_events: int | None = None) -> None:
        self.settings = settings
        self.parser = parser
        self.backoff = backoff or Backoff()
        self.max_events = max_events
        self.seen = 0
        self.next_revision: int | None = None
        self._stopped = asyncio.Event()
        self._watch: Any = None

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            asyncio.ensure_future(self._watch.cancel())

    async def run(self) -> AsyncIterator[list[Event]]:
        key = self.parser.key.encode()
        while not self._stopped.is_set():
            try:
                async with etcd_adapter.client(self.settings) as c:
                    if self.next_revision is None:
                        rev, kvs = await etcd_adapter.range_at(c, key)
                        for kv in kvs:
                            yield self.parser.feed(kv.value, version=kv.version,
                                                   create_revision=kv.create_revision)
                        self.next_revision = rev + 1
                    self._watch = await c.watch(key, start_revision=self.next_revision)
                    self.backoff.reset()
                    async for ev in self._watch:
                        kv = ev.kv
                        self.next_revision = kv.mod_revision + 1
                        deleted = str(getattr(ev.kind, "value", ev.kind)) == "DELETE"
                        batch = self.parser.feed(None if deleted else kv.value, version=kv.version,
                                                 create_revision=kv.create_revision, deleted=deleted)
                        self.seen += 1
                        if batch:
                            yield batch
                        if self.max_events is not None and self.seen >= self.max_events:
                            return
            except etcd_adapter.RevisionCompacted:
                self.next_revision = None
            except etcd_adapter.TRANSIENT_ERRORS:
                pass
            if self._stopped.is_set():
                return
            await pause(self._stopped, self.backoff.next())
