"""The cyclic garbage collector in a long-lived reader that holds large states (the API).

Measured on the large profile's quick size (300k events, ~10 held states; BENCHMARKS.md,
"The API's warm point-in-time path"): Python's full collections came back every second or
third point-in-time read, because each read builds a state of millions of objects that live
on, and each pass walked every held state: 0.35-0.45 s a pass, a third of the reads' time
(more at the full size, where one state is ~300 MiB). The passes found nothing: held
states are plain data without reference cycles, and no cyclic garbage was left after 80
reads. But a full pass is also what lets the C allocator give back the memory of evicted
states (with ``malloc_trim``: without full passes the process kept ~1.25 GiB instead of
~0.9; after 20 reads a trim alone returned 54 MiB, a full pass and then a trim 490 MiB: what it
freed was Kafka fetches in reference cycles, see below).

So, while a read runs (:meth:`Collector.reading`), the oldest generation's threshold is
raised: no automatic full pass. The young generations' thresholds are the fold's
(reducer.apply.FOLD_GC_THRESHOLDS): with Python's (700, 10) a warm read at the large
profile's full size spent ~25 % of its CPU in them (~60 ms of ~245: 30-40 young passes of
0.7 ms and 3-4 middle ones of 8-11 ms, a fork's copied tables and indexes surviving into
them; BENCHMARKS.md, "Warm reads within an interval at full size"), and what a read forks
and keeps is frozen (:func:`promote`: ``gc.freeze`` through :mod:`kmevents.frozen`, which knows
whether anything is frozen without counting it; no collection walks what is frozen, and what a
snapshot's or a delta's load builds meanwhile is frozen with it, ``store.snapshots.no_gc``). Passes happen on
this module's schedule instead (:meth:`Collector.read_done`): once the process has been idle for
``IDLE_SECONDS`` after ``SWEEP_EVERY`` reads, a full one (everything unfrozen and walked); and
after ``FORCE_EVERY`` reads of a process never idle, one that walks only what is not frozen (what
came since the last read), every ``FULL_EVERY_FORCED``-th of them full. Each is followed by
``malloc_trim`` where the C library has it (glibc).

Why the forced passes walk so little: a full pass costs what it walks, the held states' containers
(16 held states at the API's defaults, millions of references), and a forced one runs inside a
read: at the simulator's scale 194 ms of a 282 ms read, the p99 of reads within an interval (65 ms
their p50); at the large profile's full size 202-260 ms. Walking only what is not frozen: 5-8 ms.
What reads keep has no reference cycles, and a frozen object is still freed by reference counting
(an evicted state goes when its last reference does). What a full pass used to free was Kafka
fetches a read left unread, each in a cycle with its own record generator (~320 MiB after 30 reads
at full size): the partition reader now breaks those cycles as it drops them
(``kafka.reader.release_prefetched``). With both, 140 reads at full size held 938-957 MiB after the
60th read, against peaks of 1,589 MiB before a full pass with the old policy. A cycle among frozen
objects (a closed socket's transport and its bound read method, a few a read) waits for the next
full pass, at most ``FORCE_EVERY * FULL_EVERY_FORCED`` reads away (BENCHMARKS.md, "The collector's
forced pass").
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import time
from collections.abc import Callable, Iterator

from kmevents import frozen
from kmevents.reducer.apply import FOLD_GC_THRESHOLDS

log = logging.getLogger("kmevents.replay.collector")

#: the oldest generation's threshold while a read runs (Python's default is 10)
READ_GEN2_THRESHOLD = 1000
#: reads after which a full pass is due at the next idle moment
SWEEP_EVERY = 8
#: reads after which a pass runs at the end of a read, idle or not (of what is not frozen)
FORCE_EVERY = 64
#: forced passes between two that unfreeze and walk everything (one read in 512 pays a full pass:
#: under the 1 % a p99 leaves out)
FULL_EVERY_FORCED = 8
#: seconds without a read before a due pass runs
IDLE_SECONDS = 0.5


def _trimmer() -> Callable[[], object]:
    """``malloc_trim(0)`` of the C library, or a no-op where there is none (not glibc)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


class Collector:
    """One process's policy (the collector's thresholds are the process's): see the module docstring."""

    def __init__(self) -> None:
        self.running = 0  # reads inside ``reading``
        self.since_sweep = 0  # reads done since the last pass
        self.forced = 0  # forced passes so far
        self.sweeps = 0
        self.full_sweeps = 0
        self.sweep_seconds = 0.0
        self.last_read = 0.0
        self._saved: tuple[int, int, int] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_loop: asyncio.AbstractEventLoop | None = None
        self._trim = _trimmer()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """No automatic full collection, and young ones as rarely as in a fold, while any read is inside."""
        if self.running == 0:
            self._saved = gc.get_threshold()
            young, middle = FOLD_GC_THRESHOLDS[:2]
            gc.set_threshold(max(self._saved[0], young), max(self._saved[1], middle),
                             max(self._saved[2], READ_GEN2_THRESHOLD))
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.last_read = time.monotonic()
            if self.running == 0 and self._saved is not None:
                gc.set_threshold(*self._saved)

    def read_done(self) -> None:
        """Count a read, and freeze what it keeps (:func:`promote`); sweep now when ``FORCE_EVERY``
        are due (what is not frozen; every ``FULL_EVERY_FORCED``-th pass everything), else once idle."""
        promote()
        self.since_sweep += 1
        if self.since_sweep >= FORCE_EVERY:
            self.forced += 1
            self.sweep(full=self.forced % FULL_EVERY_FORCED == 0)
        elif self.since_sweep >= SWEEP_EVERY:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no running loop: a later read schedules it
                return
            if self._idle is None or self._idle_loop is not loop:  # none yet, or on a loop now gone
                self._idle_loop = loop
                self._idle = loop.call_later(IDLE_SECONDS, self._when_idle)

    def _when_idle(self) -> None:
        self._idle = None
        if self.since_sweep < SWEEP_EVERY:
            return
        quiet = time.monotonic() - self.last_read
        if self.running or quiet < IDLE_SECONDS:
            self._idle = asyncio.get_running_loop().call_later(IDLE_SECONDS - quiet if not self.running
                                                               else IDLE_SECONDS, self._when_idle)
            return
        self.sweep()

    def sweep(self, *, full: bool = True) -> None:
        """A collection and the allocator's trim, now: ``full``, of every object (frozen ones
        unfrozen first: every cycle is found); else of those not frozen."""
        t = time.perf_counter()
        if full:
            frozen.unfreeze()
            self.full_sweeps += 1
        found = gc.collect()
        self._trim()
        took = time.perf_counter() - t
        self.sweeps += 1
        self.sweep_seconds += took
        self.since_sweep = 0
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        log.debug("collection", extra={"full": full, "unreachable": found, "seconds": round(took, 3)})


def promote() -> None:
    """Freeze every object alive now (``gc.freeze``, O(1)): no collection walks them until a full
    sweep (:meth:`Collector.sweep`) unfreezes them. After a point-in-time read forks a held state
    (copies of its tables and indexes: millions of references at the large profile; timetravel.py,
    the one call inside a read, since a segment's fork follows every state a read holds on its
    way) and when a read is done (:meth:`Collector.read_done`: the states it keeps, from any path).
    Frozen objects are still freed by reference counting (see the module docstring)."""
    frozen.freeze()


#: The process's collector policy (there is one collector per process).
COLLECTOR = Collector()
