"""Thin live client for k8sm's leader key through etcd's **v2** keys API (plain HTTP, httpx).

k8sm's elector (``contrib/mesos/pkg/election``, Kubernetes 1.0-1.2) writes its
key through v2: created with ``prevExist=false`` and a TTL, renewed by
compare-and-swap, expiring when the leader dies (``kmevents.sources.k8sm``).
The v3 API cannot see v2 keys, so this is the client that sees a real
leader. It needs etcd to serve v2 (etcd 3.4/3.5: ``--enable-v2=true``; the
local stack starts etcd so).

Protocol facts it follows (etcd v2 API, "Waiting for a change"):

- ``GET /v2/keys<key>?quorum=true`` reads the key: ``200 {"action": "get",
  "node": {...}}``, or ``404 {"errorCode": 100, ...}`` when absent. The
  ``X-Etcd-Index`` header (the body's ``index`` in an error) is etcd's index
  at the read; the watch starts after it;
- ``GET /v2/keys<key>?wait=true&waitIndex=N`` answers with the first change of
  the key at index N or later, as soon as there is one (headers at once, the
  body then): ``{"action": "create"|"set"|"update"|"compareAndSwap"|"delete"|
  "compareAndDelete"|"expire", "node", "prevNode"}``. The next watch waits from
  ``node.modifiedIndex + 1``, so no change is missed while the client reconnects;
- etcd keeps only the last 1000 events: a ``waitIndex`` older than that
  answers ``400 {"errorCode": 401, "message": "The event in requested index is
  outdated and cleared"}`` (``errorCode 400``, "watcher is cleared due to etcd
  recovery", likewise). The client hands that answer to the parser (which
  counts it), re-reads the key (``resumed``: the parser
  reports a ``source.gap`` if it changed meanwhile) and watches from there;
- a long poll can end with an empty body (a proxy, etcd closing the watcher);
  then, and after ``wait_timeout`` s without an answer, the client asks again
  from the same index.

Failures (``kmevents.sources._retry``): etcd away (connection errors, 5xx)
is retried with backoff forever; anything else (``404`` from an etcd that
does not serve v2, an answer of an unforeseen shape) ``max_unexpected``
times in a row, then ``run()`` raises :class:`kmevents.errors.SourceFailed`.
Each answer goes to the parser as it came; the parser quarantines one it
cannot read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources._retry import Failures
from kmevents.sources.k8sm import V2_KEY_NOT_FOUND, V2_WINDOW_LOST, LeaderParser


class IndexCleared(Exception):
    """The watch's ``waitIndex`` left etcd's event window: re-read the key."""


class V2NotServed(Exception):
    """etcd answers the v2 keys API with 404 and no v2 error: it runs without ``--enable-v2``."""


class V2LeaderKeyClient:
    """Follows one key through etcd's v2 API. No I/O in ``__init__``."""

    def __init__(self, endpoint: str, parser: LeaderParser, *, backoff: Backoff | None = None,
                 max_events: int | None = None, wait_timeout: float = 60.0, timeout: float = 10.0,
                 max_unexpected: int = 3, headers: dict[str, str] | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = f"{self.endpoint}/v2/keys{quote(parser.key if parser.key.startswith('/') else '/' + parser.key)}"
        self.parser = parser
        self.backoff = backoff or Backoff()
        self.max_events = max_events
        self.wait_timeout = wait_timeout
        self.timeout = timeout
        self.headers = headers or {}
        self.failures = Failures(f"k8sm leader key {parser.key} (etcd v2 {self.endpoint})",
                                 max_unexpected=max_unexpected)
        self.wait_index: int | None = None
        """The etcd index the next watch waits from (None: read the key first)."""
        self.seen = 0
        """Watch answers received (``max_events`` bounds a run: tests)."""
        self.reads = 0
        self._resumed = False
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> AsyncIterator[list[Event]]:
        """Batches of events until stopped or ``max_events``; raises ``SourceFailed`` (module doc)."""
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), headers=self.headers) as http:
            while not self._stopped.is_set():
                try:
                    if self.wait_index is None:
                        batch = await self._read(http)
                        if batch:
                            yield batch
                    async for batch in self._watch(http):
                        yield batch
                        if self.max_events is not None and self.seen >= self.max_events:
                            return
                    if self.max_events is not None and self.seen >= self.max_events:
                        return
                    continue
                except IndexCleared:
                    self.wait_index = None
                    self._resumed = True
                    continue
                except V2NotServed as exc:
                    self.failures.failed(exc, expected=False)
                except Exception as exc:  # noqa: BLE001 - sorted by Failures; raises SourceFailed in the end
                    self.failures.failed(exc)
                if self._stopped.is_set():
                    return
                await pause(self._stopped, self.backoff.next())

    async def _read(self, http: httpx.AsyncClient) -> list[Event]:
        resp = await http.get(self.url, params={"quorum": "true"})
        body = self._answer(resp, allow_not_found=True)
        index = resp.headers.get("x-etcd-index") or (body.get("index") if isinstance(body, dict) else None)
        if index is None:
            raise ValueError("etcd v2 read without X-Etcd-Index")
        batch = self.parser.feed_v2(body, resumed=self._resumed)
        self.wait_index = int(index) + 1
        self.reads += 1
        self._resumed = False
        self.failures.progress()
        return batch

    async def _watch(self, http: httpx.AsyncClient) -> AsyncIterator[list[Event]]:
        """Long polls, one answer each, until the window is lost or an error."""
        while not self._stopped.is_set():
            params = {"wait": "true", "waitIndex": str(self.wait_index)}
            try:
                resp = await self._unless_stopped(http.get(
                    self.url, params=params, timeout=httpx.Timeout(self.timeout, read=self.wait_timeout)))
            except httpx.ReadTimeout:
                continue  # no change for wait_timeout s: ask again from the same index
            if resp is None:
                return  # stopped while waiting
            self.backoff.reset()
            if resp.status_code == 200 and not resp.content.strip():
                continue  # the long poll ended without an answer
            body = self._answer(resp, allow_not_found=False)
            node = body.get("node") if isinstance(body, dict) else None
            modified = node.get("modifiedIndex") if isinstance(node, dict) else None
            batch = self.parser.feed_v2(body)
            self.seen += 1
            self.failures.progress()
            if isinstance(modified, int):
                self.wait_index = modified + 1
            else:  # quarantined by the parser: the position of the next change is unknown
                self.wait_index = None
                self._resumed = True
                return
            yield batch
            if self.max_events is not None and self.seen >= self.max_events:
                return

    async def _unless_stopped(self, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        """``await request``, or None as soon as ``stop()`` is called (a long poll may wait minutes)."""
        req = asyncio.ensure_future(request)
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({req, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not req.done():
                req.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await req
        return None if req.cancelled() else req.result()

    def _answer(self, resp: httpx.Response, *, allow_not_found: bool) -> Any:
        """The JSON body of a v2 answer; raises for what the client must act on."""
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            body = None
        code = body.get("errorCode") if isinstance(body, dict) else None
        if isinstance(body, dict) and code in V2_WINDOW_LOST:
            self.parser.feed_v2(body)  # counted there (skipped), like every answer
            raise IndexCleared(str(body.get("message")))
        if resp.status_code == 404 and code == V2_KEY_NOT_FOUND and allow_not_found:
            return body
        if resp.status_code == 404 and code is None:
            raise V2NotServed(f"{self.endpoint} answers 404 to /v2/keys: start etcd with --enable-v2=true "
                              "(or follow a v3 key with --etcd-api v3)")
        resp.raise_for_status()
        if body is None:
            raise ValueError(f"etcd v2 answer is not JSON: {resp.content[:200]!r}")
        return body
