"""The simulated clock: integer microseconds since the Unix epoch, formatted canonically.

The simulator never reads the wall clock. Time is an ``int`` of microseconds so
that arithmetic is exact and the same seed gives the same bytes on every
machine; it is only turned into the contract's text form
(``YYYY-MM-DDTHH:MM:SS.ffffffZ``, always six fraction digits) when an event is
emitted. Formatting caches the whole-second prefix, because consecutive events
fall in the same second most of the time.
"""

from __future__ import annotations

import datetime as dt
import time

from kmevents.errors import UsageError

US = 1_000_000
"""Microseconds per second."""

DEFAULT_START = "2026-01-01T00:00:00Z"
"""Where a simulation's clock starts unless ``--start`` says otherwise."""


def parse_start(text: str) -> int:
    """Parse an ISO-8601 UTC instant (``2026-01-01T00:00:00Z``) into epoch microseconds.

    A naive time is taken as UTC; an explicit offset is converted to UTC.
    """
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"--start {text!r} is not an ISO-8601 time",
            hint="write it like 2026-01-01T00:00:00Z",
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


class TimeFormatter:
    """Turns epoch microseconds into canonical UTC text, caching whole seconds.

    >>> TimeFormatter()(1_767_225_600_000_001)
    '2026-01-01T00:00:00.000001Z'

    The last second formatted is kept in two attributes (the common case: the
    next event falls in the same second), older ones in a small dict (agent
    clocks are skewed, so times straddle second boundaries).
    """

    __slots__ = ("_cache", "_sec", "_prefix")

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}
        self._sec = -1
        self._prefix = ""

    def __call__(self, us: int) -> str:
        sec = us // US
        if sec == self._sec:
            return f"{self._prefix}{us - sec * US:06d}Z"
        prefix = self._cache.get(sec)
        if prefix is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
            self._cache[sec] = prefix
        self._sec = sec
        self._prefix = prefix
        return f"{prefix}{us - sec * US:06d}Z"


def seconds(us: int) -> float:
    """Epoch microseconds as the float seconds Mesos puts in status timestamps."""
    return us / US
