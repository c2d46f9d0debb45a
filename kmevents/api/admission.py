"""Admission of replay work: at most N replays at once, a short queue, then a refusal.

A point-in-time read that cannot be served from a held state folds up to a
snapshot interval of records into a state of its own (tens to hundreds of MiB
for a large cluster): 200 of them at once took the API from 85 MiB to 7 GiB
(issue 14, H4), and each waited over a minute. So replay work passes a
:class:`Gate`: ``running`` at once, ``queued`` more waiting in arrival order,
and beyond that :class:`Busy` at once:

- the queue is full: ``Busy(status=429)``: the caller asks for more than the
  server serves; ``retry_after`` is the time the work ahead should take;
- a queued read waited ``max_wait`` seconds without a slot: ``Busy(status=503)``:
  the server is saturated (the replays ahead are slow).

The API keeps two gates (``TimeTravel.gates``): ``cold`` for replays from a
snapshot or the start of the log (and history, search), ``warm`` for reads
folding at most a few thousand records on from a held state. A warm read
never waits behind cold ones; a read of a state already held (or a repeated
read) passes no gate at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator


class Busy(Exception):
    """No slot for replay work now: answer ``status`` (429 or 503) with ``Retry-After: retry_after``."""

    def __init__(self, message: str, *, status: int, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Gate:
    """``async with gate.slot(): ...``: at most ``running`` holders, ``queued`` waiters (FIFO)."""

    #: weight of the newest hold time in the running mean that ``retry_after`` uses
    alpha = 0.3

    def __init__(self, name: str, *, running: int, queued: int, max_wait: float) -> None:
        self.name = name
        self.limit = max(1, running)
        self.queue_limit = max(0, queued)
        self.max_wait = max_wait
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.mean_seconds = 1.0
        self.admitted = 0
        self.refused = {429: 0, 503: 0}

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def retry_after(self) -> int:
        """Seconds until the work running and queued now should be done (1..300)."""
        ahead = self.running + self.queued + 1
        return max(1, min(300, math.ceil(self.mean_seconds * ahead / self.limit)))

    def _busy(self, status: int, why: str) -> Busy:
        self.refused[status] += 1
        after = self.retry_after()
        return Busy(f"{why}: retry after {after}s", status=status, retry_after=after)

    async def _acquire(self) -> None:
        if self.running < self.limit and not self.queued:
            self.running += 1
            return
        if self.queued >= self.queue_limit:
            raise self._busy(429, f"too many replays: {self.running} running and {self.queued} queued "
                                  f"(api.max_concurrent_replays={self.limit}, "
                                  f"api.max_queued_replays={self.queue_limit})")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, self.max_wait)
        except BaseException as exc:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            if fut.done() and not fut.cancelled():
                self._release()  # the slot was handed over just as the wait ended: pass it on
            if isinstance(exc, TimeoutError):
                raise self._busy(503, f"waited {self.max_wait:g}s for a replay slot "
                                      "(api.replay_queue_seconds): the server is saturated") from None
            raise
        # the releaser handed its slot over: ``running`` already counts this holder

    def _release(self) -> None:
        while self._waiters:
            f = self._waiters.popleft()
            if not f.done():
                f.set_result(None)
                return
        self.running -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        self.admitted += 1
        t0 = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t0
            self.mean_seconds += self.alpha * (took - self.mean_seconds)
            self._release()
