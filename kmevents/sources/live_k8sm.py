"""Thin live client for a leader key written through etcd's **v3** API (kmevents.adapters.etcd).

k8sm itself writes its leader key through the v2 API, which v3 cannot see:
follow k8sm with :class:`kmevents.sources.live_k8sm_v2.V2LeaderKeyClient`.
This client is for a leader key put through v3 (a re-implementation of the
elector, Kubernetes' leader-election record kept in etcd v3).

Reads the key (``range_at``, which also gives the store revision), then
watches it from the next revision. After an error it reconnects with backoff
and resumes from the revision after the last write it saw; a compacted
revision makes it re-read the key, and the parser reports the versions it
missed as ``source.gap``. etcd being away (``TRANSIENT_ERRORS``) is retried
forever; any other error ``max_unexpected`` times in a row, then ``run()``
raises :class:`kmevents.errors.SourceFailed` (``kmevents.sources._retry``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import EtcdSettings
from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources._retry import Failures
from kmevents.sources.k8sm import LeaderParser


class LeaderKeyClient:
    """Follows one etcd key through v3. No I/O in ``__init__``."""

    def __init__(self, settings: EtcdSettings, parser: LeaderParser, *, backoff: Backoff | None = None,
                 max_events: int | None = None, max_unexpected: int = 3) -> None:
        self.settings = settings
        self.parser = parser
        self.backoff = backoff or Backoff()
        self.max_events = max_events
        self.failures = Failures(f"k8sm leader key {parser.key} (etcd v3 {settings.endpoint})",
                                 max_unexpected=max_unexpected)
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
                                                   create_revision=kv.create_revision, read=True)
                        self.next_revision = rev + 1
                        self.failures.progress()
                    self._watch = await c.watch(key, start_revision=self.next_revision)
                    self.backoff.reset()
                    async for ev in self._watch:
                        kv = ev.kv
                        self.next_revision = kv.mod_revision + 1
                        deleted = str(getattr(ev.kind, "value", ev.kind)) == "DELETE"
                        batch = self.parser.feed(None if deleted else kv.value, version=kv.version,
                                                 create_revision=kv.create_revision, deleted=deleted)
                        self.seen += 1
                        self.failures.progress()
                        if batch:
                            yield batch
                        if self.max_events is not None and self.seen >= self.max_events:
                            return
            except etcd_adapter.RevisionCompacted:
                self.next_revision = None
            except etcd_adapter.TRANSIENT_ERRORS as exc:
                self.failures.failed(exc, expected=True)
            except Exception as exc:  # noqa: BLE001 - sorted by Failures; raises SourceFailed in the end
                self.failures.failed(exc)
            if self._stopped.is_set():
                return
            await pause(self._stopped, self.backoff.next())
