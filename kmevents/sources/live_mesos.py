"""Thin live clients for Mesos: the operator ``SUBSCRIBE`` stream and the master state poller.

The only I/O of the Mesos sources (httpx); everything they receive goes
through the pure parsers. Protocol facts they follow (Mesos operator API docs):

- ``POST /api/v1`` with ``{"type": "SUBSCRIBE"}`` answers ``200`` with a
  chunked RecordIO stream; a non-leading master answers ``307 Temporary
  Redirect`` with ``Location`` naming the leader (often scheme-relative,
  ``//host:5050/api/v1``), which is followed;
- a ``Mesos-Stream-Id`` response header, when present, names the stream
  (else the client makes up a unique id per connection);
- the first event is ``SUBSCRIBED`` (snapshot + ``heartbeat_interval_seconds``),
  then ``HEARTBEAT`` at that interval (1.5+). No byte for ``misses`` intervals
  means the connection is dead: the client emits ``master.heartbeat_lost`` and
  reconnects; the new ``SUBSCRIBED`` becomes diff events. Masters 1.0-1.4 send
  no heartbeat: their quiet stream is not taken for a dead one;
- reconnections wait a bounded, jittered exponential backoff (reset after a
  successful ``SUBSCRIBED``).

``run()`` is an async generator of event batches (lists); it ends after
``max_connections`` connections (tests) or when ``stop()`` is called.

The state poller (every master from 0.19: ``/master/state`` from 0.25,
``/master/state.json`` and ``/state.json`` before) is described on
:class:`StatePoller`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kmevents.errors import UsageError
from kmevents.sources import mesos_values as mv
from kmevents.sources._common import Backoff, Event, pause
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.recordio import RecordIODecoder, RecordIOError

MAX_REDIRECTS = 5
#: Errors after which the client reconnects (with backoff) instead of failing.
RECONNECT_ERRORS = (httpx.HTTPError, RecordIOError, OSError, ValueError)
#: Errors after which the state poller polls again (with backoff).
POLL_ERRORS = (httpx.HTTPError, OSError)

log = logging.getLogger("kmevents.sources.mesos")


def _follow(url: httpx.URL, location: str) -> httpx.URL:
    return url.join(location)


class OperatorClient:
    """Follows a Mesos master's operator event stream. No I/O in ``__init__``."""

    def __init__(self, url: str, parser: OperatorParser, *, backoff: Backoff | None = None,
                 heartbeat_misses: int = 2, first_event_timeout: float = 30.0,
                 max_connections: int | None = None, timeout: float = 10.0) -> None:
        url = url.rstrip("/")
        self.url = httpx.URL(url if url.endswith("/api/v1") else url + "/api/v1")
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
            # Masters before 1.5 send no HEARTBEAT (and no interval): once subscribed, a quiet
            # stream is only quiet, and only the connection itself can say it is gone.
            wait: float | None = self.first_event_timeout
            if subscribed:
                wait = interval * self.heartbeat_misses if interval else None
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


#: Where masters serve their state, newest first: ``/master/state`` (0.25+), then
#: ``/master/state.json`` and ``/state.json`` (every version; the only ones before 0.25).
STATE_PATHS = ("/master/state", "/master/state.json", "/state.json")
#: Answers that mean "not here" (try the next path), not "not now".
_NOT_HERE = (404, 405)


def state_urls(url: str) -> list[str]:
    """The URLs to try for a master's state: a bare master URL (``http://host:5050``) gets
    every path of ``STATE_PATHS`` in turn; a URL naming a path (``.../state.json``) is
    taken as given."""
    u = httpx.URL(url)
    if u.path.strip("/"):
        return [url]
    base = url.split("?", 1)[0].rstrip("/")
    return [base + p for p in STATE_PATHS]


class StatePoller:
    """Polls a master's state every ``interval`` seconds (follows redirects to the leader).

    The state's URL is found at the first poll (``state_urls``): a path that
    answers 404 is passed over, and when none answers the poll raises
    :class:`~kmevents.errors.UsageError` naming what each said, since no retry
    can help. Other failures (connection refused, 5xx, timeouts) are retried
    with backoff and logged, each one; ``errors`` counts them. A listing from a
    master that does not lead (masters before 1.0 answer instead of
    redirecting) is skipped by the parser, and the next poll goes to the leader
    it names.
    """

    def __init__(self, url: str, parser: StateParser, *, interval: float = 5.0,
                 backoff: Backoff | None = None, max_polls: int | None = None, timeout: float = 10.0) -> None:
        self.urls = state_urls(url)
        self.url: str | None = None
        """The state URL in use, once one answered."""
        self.parser = parser
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.max_polls = max_polls
        self.timeout = timeout
        self.polls = 0
        self.errors = 0
        self.last_error: str | None = None
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
                    body = await self._get(http)
                except POLL_ERRORS as exc:
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    delay = self.backoff.next()
                    log.warning("master state poll failed; retrying in %.1f s", delay,
                                extra={"url": self.url or self.urls[0], "error": self.last_error,
                                       "failures": self.errors})
                else:
                    yield self.parser.feed_bytes(body)
                    self.backoff.reset()
                    self._follow_leader()
                await pause(self._stopped, delay)

    async def _get(self, http: httpx.AsyncClient) -> bytes:
        if self.url is not None:
            resp = await http.get(self.url)
            resp.raise_for_status()
            return resp.content
        said: list[str] = []
        for url in self.urls:
            resp = await http.get(url)
            if resp.status_code in _NOT_HERE:
                said.append(f"{url}: {resp.status_code}")
                continue
            resp.raise_for_status()
            self.url = url
            return resp.content
        raise UsageError("no Mesos master state at " + "; ".join(said),
                         hint="give the master's URL (http://HOST:5050), or the exact URL of its state "
                              "(http://HOST:5050/master/state.json for masters before 0.25)")

    def _follow_leader(self) -> None:
        """After a listing from a master that does not lead: poll the leader it named next."""
        leader = self.parser.leader_elsewhere
        if leader is None or self.url is None:
            return
        host, port = mv.pid_address(leader)
        if host is None:
            return
        u = httpx.URL(self.url)
        self.url = str(u.copy_with(host=host, port=port or 5050))
        self.parser.leader_elsewhere = None
