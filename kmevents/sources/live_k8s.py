"""Thin live client for Kubernetes: list, then watch resumed by ``resourceVersion``.

Protocol facts it follows (Kubernetes API concepts, "Efficient detection of changes"):

- ``GET /api/v1/<resource>`` lists; the list's ``metadata.resourceVersion`` is
  where the watch starts;
- ``GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N``
  streams newline-delimited ``{"type", "object"}``; every event (``BOOKMARK``
  included) moves RV forward; when the server ends the watch (timeout), the
  client re-watches from RV without relisting;
- ``410 Gone`` (as the HTTP status: the 1.2+ watch cache's "too old resource
  version"; or as an ``ERROR`` event whose Status has ``code: 410``: 1.0/1.1's
  etcd "401: The event in requested index is outdated and cleared", later
  versions' "too old resource version") means RV was compacted away: the
  client relists, and the parser turns the list into upserts and "deleted
  while disconnected" events;
- another ``ERROR`` event (a server-side failure) ends the watch: re-watch
  from RV after a backoff.

Every line of the stream goes to the parser as received (bytes), so a line the
parser cannot read is quarantined there with its position, and the stream goes
on. Failures (``kmevents.sources._retry``): network errors, HTTP 429/5xx are
retried with a bounded, jittered exponential backoff, forever; anything else
(HTTP 401/403/404, an answer of an unforeseen shape) is retried
``max_unexpected`` times in a row, then ``run()`` raises
:class:`kmevents.errors.SourceFailed` (the run ends non-zero). Each kind of
error is logged once.

Each watch is a stream of its own (``<resource>@<rv>``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources._retry import Failures
from kmevents.sources.kubernetes import KubernetesParser

#: Messages of an ``ERROR`` event that mean "relist", in servers that sent no ``code``.
EXPIRED_MESSAGES = ("too old resource version", "outdated and cleared")


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class WatchEnded(Exception):
    """The server ended the watch with an ``ERROR`` event other than 410: re-watch after a backoff."""


def _expired(status: Any) -> bool:
    if not isinstance(status, dict):
        return False
    return status.get("code") == 410 or any(m in str(status.get("message") or "") for m in EXPIRED_MESSAGES)


class WatchClient:
    """Lists and watches one resource. No I/O in ``__init__``."""

    def __init__(self, base_url: str, resource: str, parser: KubernetesParser, *,
                 namespace: str | None = None, token: str | None = None, backoff: Backoff | None = None,
                 watch_timeout: int = 300, max_watches: int | None = None, timeout: float = 10.0,
                 max_unexpected: int = 3) -> None:
        ns = f"/namespaces/{namespace}" if namespace else ""
        self.url = f"{base_url.rstrip('/')}/api/v1{ns}/{resource}"
        self.resource = resource
        self.parser = parser
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.backoff = backoff or Backoff()
        self.watch_timeout = watch_timeout
        self.max_watches = max_watches
        self.timeout = timeout
        self.failures = Failures(f"k8s watch {self.url}", max_unexpected=max_unexpected)
        self.resource_version: str | None = None
        self.watches = 0
        self.lists = 0
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> AsyncIterator[list[Event]]:
        """Batches of events until stopped or ``max_watches``; raises ``SourceFailed`` (module doc)."""
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
                except WatchEnded as exc:
                    self.failures.failed(exc, expected=True)
                except Exception as exc:  # noqa: BLE001 - sorted by Failures; raises SourceFailed in the end
                    self.failures.failed(exc)
                await pause(self._stopped, self.backoff.next())

    async def _list(self, http: httpx.AsyncClient) -> list[Event]:
        resp = await http.get(self.url)
        resp.raise_for_status()
        body = resp.json()
        if not isinstance(body, dict) or not isinstance(body.get("items", []), (list, type(None))):
            raise ValueError(f"a list of {self.resource} is a JSON object with items, got {str(body)[:200]!r}")
        self.lists += 1
        rv = (body.get("metadata") or {}).get("resourceVersion")
        self.parser.new_stream(self.resource, f"{self.resource}@{rv}")
        batch = self.parser.relist(self.resource, body.get("items") or [])
        self.resource_version = rv
        self.failures.progress()
        return batch

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
                raw = line.encode()
                try:
                    ev = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    ev = None  # the parser quarantines it
                batch = self.parser.feed(self.resource, raw)
                self.failures.progress()
                obj = ev.get("object") if isinstance(ev, dict) else None
                if isinstance(ev, dict) and ev.get("type") == "ERROR":
                    if _expired(obj):
                        raise Gone()
                    raise WatchEnded(f"watch ERROR: {(obj or {}).get('message') if isinstance(obj, dict) else obj}")
                rv = (obj.get("metadata") or {}).get("resourceVersion") if isinstance(obj, dict) else None
                if rv:
                    self.resource_version = str(rv)
                if batch:
                    yield batch
