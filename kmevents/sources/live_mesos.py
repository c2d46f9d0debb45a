"""Thin live clients for Mesos: the operator ``SUBSCRIBE`` stream and the ``/master/state`` poller.

The only I/O of the Mesos sources (httpx); everything they receive goes
through the pure parsers. Protocol facts they follow (Mesos operator API docs):

- ``POST /api/v1`` with ``{"type": "SUBSCRIBE"}`` answers ``200`` with a
  chunked RecordIO stream; a non-leading master answers ``307 Temporary
  Redirect`` with ``Location`` naming the leader (often scheme-relative,
  ``//host:5050/api/v1``), which is followed;
- a ``Mesos-Stream-Id`` response header, when present, names the stream
  (else the client makes up a unique id per connection);
- the first event is ``SUBSCRIBED`` (snapshot + ``heartbeat_interval_seconds``),
  then ``HEARTBEAT`` at that interval. No byte for ``misses`` intervals means
  the connection is dead: the client emits ``master.heartbeat_lost`` and
  reconnects; the new ``SUBSCRIBED`` becomes diff events.
- reconnections wait a bounded, jittered exponential backoff (reset after a
  successful ``SUBSCRIBED``).

``run()`` is an async generator of event batches (lists); it ends after
``max_connections`` connections (tests) or when ``stop()`` is called.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.recordio import RecordIODecoder, RecordIOError

MAX_REDIRECTS = 5
#: Errors after which the client reconnects (with backoff) instead of failing.
RECONNECT_ERRORS = (httpx.HTTPError, RecordIOError, OSError, ValueError)


def _follow(url: httpx.URL, location: str) -> httpx.URL:
    return url.join(location)


class OperatorClient:
    """Follows a Mesos master's operator event stream. No I/O in ``__init__``."""

    def __init__(self, url: str, parser: OperatorParser, *, backoff: Backoff | None = None,
                 heartbeat_misses: int = 2, first_event_timeout: float = 30.0,
                 max_connections: int | None = None, timeout: float = 10.0) -> None:
        self.url = httpx.URL(url.rstrip("/") + "/api/v1")
        self.parser = parser
        self.backoff = backoff or Backoff()
        self.heartbeat_misses = heartbeat_misses
        self.first_event_timeout = first_event_timeout
        self.max_connections = max_connections
        self.timeout = timeout
        self.connections = 0
        self.redirects = 0
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> AsyncIterator[list[Event]]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=None)) as http:
            while not self._stopped.is_set():
                if self.max_connections is not None and self.connections >= self.max_connections:
                    return
                self.connections += 1
                try:
                    async for batch in self._connection(http):
                        yield batch
                except RECONNECT_ERRORS:
                    pass
                if self._stopped.is_set():
                    return
                await self._sleep(self.backoff.next())

    async def _sleep(self, seconds: float) -> None:
        await pause(self._stopped, seconds)

    async def _post(self, http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        for _ in range(MAX_REDIRECTS):
            resp = await http.post(self.url, json=body, headers={"Accept": "application/json"})
            if resp.status_code == 307 and "location" in resp.headers:
                self.url = _follow(self.url, resp.headers["location"])
                self.redirects += 1
                continue
            return resp
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {self.url}")

    async def _connection(self, http: httpx.AsyncClient) -> AsyncIterator[list[Event]]:
        resp = await self._post(http, {"type": "GET_MASTER"})
        info = (resp.json().get("get_master") or {}).get("master_info") if resp.status_code == 200 else None
        for _ in range(MAX_REDIRECTS):
            req = http.build_request("POST", self.url, json={"type": "SUBSCRIBE"},
                                     headers={"Accept": "application/json"})
            resp = await http.send(req, stream=True)
            try:
                if resp.status_code == 307 and "location" in resp.headers:
                    self.url = _follow(self.url, resp.headers["location"])
                    self.redirects += 1
                    continue
                resp.raise_for_status()
                sid = resp.headers.get("mesos-stream-id") or f"{self.url.host}:{self.url.port}/{uuid.uuid4()}"
                self.parser.new_stream(sid)
                if isinstance(info, dict) and info.get("id"):
                    batch = self.parser.master(info)  # on the new stream, before SUBSCRIBED
                    if batch:
                        yield batch
                async for batch in self._events(resp):
                    yield batch
                return
            finally:
                await resp.aclose()

    async def _events(self, resp: httpx.Response) -> AsyncIterator[list[Event]]:
        decoder = RecordIODecoder()
        chunks = resp.aiter_bytes().__aiter__()
        subscribed = False
        while True:
            interval = self.parser.heartbeat_interval
            wait = interval * self.heartbeat_misses if subscribed and interval else self.first_event_timeout
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), wait)
            except StopAsyncIteration:
                return  # the master closed the stream: reconnect
            except TimeoutError:
                yield [self.parser.heartbeat_lost(self.heartbeat_misses)]
                return
            for record in decoder.feed(chunk):
                batch = self.parser.feed_record(record)
                if not subscribed and self.parser.stream.seq >= 0:
                    subscribed = True
                    self.backoff.reset()
                if batch:
                    yield batch


class StatePoller:
    """Polls ``/master/state`` (follows redirects to the leader) every ``interval`` seconds."""

    def __init__(self, url: str, parser: StateParser, *, interval: float = 5.0,
                 backoff: Backoff | None = None, max_polls: int | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/master/state"
        self.parser = parser
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.max_polls = max_polls
        self.timeout = timeout
        self.polls = 0
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> AsyncIterator[list[Event]]:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=True) as http:
            while not self._stopped.is_set():
                if self.max_polls is not None and self.polls >= self.max_polls:
                    return
                self.polls += 1
                delay = self.interval
                try:
                    resp = await http.get(self.url)
                    resp.raise_for_status()
                    yield self.parser.feed(resp.json())
                    self.backoff.reset()
                except RECONNECT_ERRORS:
                    delay = self.backoff.next()
                await pause(self._stopped, delay)
