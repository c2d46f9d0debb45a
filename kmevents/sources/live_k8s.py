"""Thin live client for Kubernetes: list, then watch resumed by ``resourceVersion``.

Protocol facts it follows (Kubernetes API concepts, "Efficient detection of changes"):

- ``GET /api/v1/<resource>`` lists; the list's ``metadata.resourceVersion`` is
  where the watch starts;
- ``GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N``
  streams newline-delimited ``{"type", "object"}``; every event (``BOOKMARK``
  included) moves RV forward; when the server ends the watch (timeout), the
  client re-watches from RV without relisting;
- ``410 Gone`` (as the HTTP status, or as an ``ERROR`` event whose Status has
  ``code: 410``) means RV was compacted away: the client relists, and the
  parser turns the list into upserts and "deleted while disconnected" events;
- other failures wait a bounded, jittered exponential backoff.

Each watch is a stream of its own (``<resource>@<rv>``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson

from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources.kubernetes import KubernetesParser

RECONNECT_ERRORS = (httpx.HTTPError, OSError, ValueError)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class WatchClient:
    """Lists and watches one resource. No I/O in ``__init__``."""

    def __init__(self, base_url: str, resource: str, parser: KubernetesParser, *,
                 namespace: str | None = None, token: str | None = None, backoff: Backoff | None = None,
                 watch_timeout: int = 300, max_watches: int | None = None, timeout: float = 10.0) -> None:
        ns = f"/namespaces/{namespace}" if namespace else ""
        self.url = f"{base_url.rstrip('/')}/api/v1{ns}/{resource}"
        self.resource = resource
        self.parser = parser
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.backoff = backoff or Backoff()
        self.watch_timeout = watch_timeout
        self.max_watches = max_watches
        self.timeout = timeout
        self.resource_version: str | None = None
        self.watches = 0
        self.lists = 0
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> AsyncIterator[list[Event]]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=None),
                                     headers=self.headers) as http:
            while not self._stopped.is_set():
                if self.max_watches is not None and self.watches >= self.max_watches:
                    return
                try:
                    if self.resource_version is None:
                        batch = await self._list(http)
                        if batch:
                            yield batch
                    self.watches += 1
                    async for batch in self._watch(http):
                        yield batch
                    continue  # the server ended the watch: resume from the last resourceVersion
                except Gone:
                    self.resource_version = None
                    continue
                except RECONNECT_ERRORS:
                    pass
                await pause(self._stopped, self.backoff.next())

    async def _list(self, http: httpx.AsyncClient) -> list[Event]:
        resp = await http.get(self.url)
        resp.raise_for_status()
        body = resp.json()
        self.lists += 1
        self.resource_version = (body.get("metadata") or {}).get("resourceVersion")
        self.parser.new_stream(self.resource, f"{self.resource}@{self.resource_version}")
        return self.parser.relist(self.resource, body.get("items") or [])

    async def _watch(self, http: httpx.AsyncClient) -> AsyncIterator[list[Event]]:
        params = {"watch": "1", "resourceVersion": self.resource_version or "",
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(self.watch_timeout)}
        self.parser.new_stream(self.resource, f"{self.resource}@{self.resource_version}")
        async with http.stream("GET", self.url, params=params) as resp:
            if resp.status_code == 410:
                raise Gone()
            resp.raise_for_status()
            self.backoff.reset()
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ValueError(f"watch error: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                batch = self.parser.feed(self.resource, ev)
                if batch:
                    yield batch
