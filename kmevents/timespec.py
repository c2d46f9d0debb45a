"""Times and positions on the command line (``--at``, ``--known-at``, ``--from``/``--to``).

A TIME is one of:

- ISO 8601 **with** a zone: ``2026-01-01T00:05:00Z``, ``2026-01-01T01:05:00+01:00``
  (a time without a zone is refused: its meaning would depend on the reader's machine);
- epoch milliseconds: ``1767225900000``;
- relative to now: ``-15m``, ``-2h``, ``-1d``, ``-30s`` (also ``-1w``).

Every bound is inclusive. A TIME lies between 1970-01-01T00:00:00Z and
9999-12-31T23:59:59.999999Z (the contract's range); anything else, however
written (``1767225600000000``, ``-100000000w``, ``0001-01-01T00:00:00Z``), is a
:class:`UsageError` saying so: exit 2 on the command line, 400 in the API.
A time is kept as microseconds since the epoch and
as the canonical string of the contract (``YYYY-MM-DDTHH:MM:SS.ffffffZ``),
which sorts like the time, so ``occurred_at <= T`` is a string comparison.

A POINT (``diff --from/--to``, ``search --from/--to``) is a TIME or
``offset:N`` (an offset in the cluster's partition).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass

from kmevents.contract.times import EARLIEST, LATEST, MAX_EPOCH_MICROS, canonical_time, micros_of
from kmevents.errors import UsageError

_REL = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TIME_HELP = ("TIME is ISO 8601 with a zone (2026-01-01T00:05:00Z), epoch milliseconds "
             "(1767225900000) or relative to now (-15m, -2h, -1d), between 1970 and 9999; bounds are inclusive")
#: Kafka's largest offset (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class TimePoint:
    """A parsed TIME: ``micros`` since the epoch and its canonical string ``iso``."""

    micros: int
    iso: str

    @property
    def ms(self) -> int:
        """Milliseconds, rounded down: ``recorded_ms <= tp.ms`` is the inclusive bound."""
        return self.micros // 1000


@dataclass(frozen=True)
class Point:
    """A POINT: exactly one of ``offset`` and ``time`` is set."""

    offset: int | None = None
    time: TimePoint | None = None

    def __str__(self) -> str:
        return f"offset:{self.offset}" if self.offset is not None else str(self.time.iso if self.time else "")


def iso_of_ms(ms: int) -> str:
    """Canonical string of epoch milliseconds (a Kafka record timestamp)."""
    return (_EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, *, now: float | None = None) -> TimePoint:
    """Parse a TIME (see the module docstring); ``now`` (epoch seconds) is for relative times.

    Raises :class:`UsageError` saying which forms are accepted.
    """
    s = text.strip()
    m = _REL.match(s)
    if m:
        base = time.time() if now is None else now
        seconds = base - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        return _in_range(text, round(seconds * 1_000_000) if math.isfinite(seconds) else -1)
    try:
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses
        iso = canonical_time(int(s) if s.isascii() and s.isdigit() else s)
    except ValueError as exc:
        raise UsageError(f"time {_quoted(text)} is not understood: {exc}", hint=TIME_HELP) from None
    return _in_range(text, micros_of(iso))


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _in_range(text: str, micros: int) -> TimePoint:
    """The one place a TIME's range is checked (the contract's: ``EARLIEST`` .. ``LATEST``)."""
    if not 0 <= micros <= MAX_EPOCH_MICROS:
        raise UsageError(f"time {_quoted(text)} is outside {EARLIEST} .. {LATEST}", hint=TIME_HELP)
    return TimePoint(micros, iso_of_micros(micros))


def iso_of_micros(micros: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_point(text: str, *, now: float | None = None) -> Point:
    """Parse ``offset:N`` or a TIME."""
    s = text.strip()
    if s.startswith("offset:"):
        n = s[len("offset:"):]
        if not (n.isascii() and n.isdigit()):
            raise UsageError(f"point {text!r}: offset:N needs a non-negative integer N",
                             hint="e.g. offset:1200, or a TIME: " + TIME_HELP)
        if int(n) > MAX_OFFSET:
            raise UsageError(f"point {text!r}: offset {n} is beyond Kafka's largest offset ({MAX_OFFSET})",
                             hint="e.g. offset:1200, or a TIME: " + TIME_HELP)
        return Point(offset=int(n))
    return Point(time=parse_time(s, now=now))


def parse_duration(text: str) -> float:
    """``15m``/``2h``/``30s``/``1d`` (or ``-15m``) as seconds."""
    m = _REL.match("-" + text.strip().lstrip("-"))
    if not m:
        raise UsageError(f"duration {text!r} is not understood", hint="use e.g. 30s, 15m, 2h, 1d")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def lag_text(occurred_at: str | None, recorded_ms: int | None) -> str | None:
    """How long after ``occurred_at`` the log recorded it, e.g. ``+0.215s`` (negative: source clock ahead)."""
    if occurred_at is None or recorded_ms is None:
        return None
    try:
        lag = recorded_ms * 1000 - micros_of(occurred_at)
    except ValueError:
        return None
    return f"{lag / 1_000_000:+.3f}s"


def lag_seconds(occurred_at: str | None, recorded_ms: int | None) -> float | None:
    if occurred_at is None or recorded_ms is None:
        return None
    try:
        return (recorded_ms * 1000 - micros_of(occurred_at)) / 1_000_000
    except ValueError:
        return None
