"""Times and positions on the command line (``--at``, ``--known-at``, ``--from``/``--to``).

A TIME is one of:

- ISO 8601 **with** a zone: ``2026-01-01T00:05:00Z``, ``2026-01-01T01:05:00+01:00``
  (a time without a zone is refused: its meaning would depend on the reader's machine);
- epoch milliseconds: ``1767225900000``;
- relative to now: ``15m`` or ``-15m`` (15 minutes ago), ``now-15m``, ``now+5m``,
  ``now``; units ``s m h d w``, combined as in ``1h30m``;
- a day and a time of day: ``today 14:05``, ``yesterday 14:05:30``, in the
  reader's zone (UTC unless ``--tz``/``KMEVENTS_TZ`` names another);
- with a zone chosen that way, also ISO 8601 without one (``2026-01-01T14:05``).

On the command line ``--at -15m`` reads like a flag to argparse; ``kmevents``
joins such a pair into ``--at=-15m`` before parsing (``cli.join_relative_times``).

The zone (:func:`use_zone`, :func:`show_time`) is only about reading and
showing times: every time is kept in UTC, and JSON output stays in UTC.

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

import contextvars
import datetime as dt
import math
import re
import time
import zoneinfo
from dataclasses import dataclass

from kmevents.contract.times import EARLIEST, LATEST, MAX_EPOCH_MICROS, canonical_time, micros_of
from kmevents.errors import UsageError

#: A duration: one or more ``<number><unit>`` (``15m``, ``1h30m``, ``2.5h``).
_DURATION = r"(?:\d+(?:\.\d+)?[smhdw])+"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
#: ``-15m``, ``15m``, ``now``, ``now-15m``, ``now+5m``, ``now - 15m``
_REL = re.compile(rf"^(?:(?P<now>now)\s*(?:(?P<sign>[-+])\s*(?P<d1>{_DURATION}))?|-?(?P<d2>{_DURATION}))$")
#: ``today 14:05``, ``yesterday 14:05:30.5``
_DAY = re.compile(r"^(?P<day>today|yesterday)(?:\s+(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}(?:\.\d{1,6})?))?)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TIME_HELP = ("TIME is ISO 8601 with a zone (2026-01-01T00:05:00Z), epoch milliseconds (1767225900000), "
             "relative to now (15m, now-2h, -1d, 1h30m) or a day and time (yesterday 14:05, in --tz, default "
             "UTC), between 1970 and 9999; bounds are inclusive")

#: The reader's zone: how ``today``/``yesterday`` and zone-less ISO times are read and
#: how :func:`show_time` writes times. None: UTC, and zone-less ISO times are refused.
_ZONE: contextvars.ContextVar[dt.tzinfo | None] = contextvars.ContextVar("kmevents_zone", default=None)
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
    s = " ".join(text.strip().split()).lower() if text.strip()[:1].isalpha() else text.strip()
    m = _REL.match(s)
    if m:
        base = time.time() if now is None else now
        if m.group("now"):
            d = m.group("d1")
            seconds = base + (0.0 if d is None else _duration_seconds(d) * (1 if m.group("sign") == "+" else -1))
        else:
            seconds = base - _duration_seconds(m.group("d2"))
        return _in_range(text, round(seconds * 1_000_000) if math.isfinite(seconds) else -1)
    m = _DAY.match(s)
    if m:
        return _in_range(text, _day_time(text, m, now))
    zone = _ZONE.get()
    if zone is not None and _NAIVE_ISO.match(s):
        try:
            when = dt.datetime.fromisoformat(s).replace(tzinfo=zone)
        except ValueError as exc:
            raise UsageError(f"time {_quoted(text)} is not understood: {exc}", hint=TIME_HELP) from None
        return _in_range(text, _micros_of_datetime(when))
    try:
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses
        iso = canonical_time(int(s) if s.isascii() and s.isdigit() else s)
    except ValueError as exc:
        raise UsageError(f"time {_quoted(text)} is not understood: {exc}", hint=TIME_HELP) from None
    return _in_range(text, micros_of(iso))


_NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?$")


def _duration_seconds(text: str) -> float:
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _micros_of_datetime(when: dt.datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _day_time(text: str, m: re.Match[str], now: float | None) -> int:
    """``today 14:05`` / ``yesterday 14:05`` in the reader's zone, as epoch microseconds."""
    if m.group("h") is None:
        raise UsageError(f"time {_quoted(text)} names a day, not a point in it",
                         hint=f"add a time of day, e.g. '{m.group('day')} 14:05' (in --tz, default UTC)")
    zone = _ZONE.get() or dt.UTC
    base = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=zone)
    day = base.date() - dt.timedelta(days=1 if m.group("day") == "yesterday" else 0)
    h, mi, sec = int(m.group("h")), int(m.group("m")), float(m.group("s") or 0)
    if h > 23 or mi > 59 or sec >= 60:
        raise UsageError(f"time {_quoted(text)}: {h:02d}:{mi:02d} is not a time of day",
                         hint="write HH:MM or HH:MM:SS, e.g. 'yesterday 14:05'")
    whole = int(sec)
    local = dt.datetime(day.year, day.month, day.day, h, mi, whole, round((sec - whole) * 1_000_000), tzinfo=zone)
    # A wall time that does not exist or exists twice (a DST change) is taken with fold=0, as zoneinfo does.
    return _micros_of_datetime(local.astimezone(dt.UTC))


def parse_zone(text: str) -> dt.tzinfo:
    """A zone for ``--tz``: ``UTC``, ``local`` (this machine's), an IANA name
    (``Europe/Paris``) or a fixed offset (``+02:00``, ``-0530``)."""
    s = text.strip()
    if s.upper() in ("UTC", "Z"):
        return dt.UTC
    if s.lower() == "local":
        local = dt.datetime.now().astimezone().tzinfo
        return local if local is not None else dt.UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", s)
    if m:
        delta = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        if delta >= dt.timedelta(hours=24):
            raise UsageError(f"zone {s!r}: an offset is less than 24 hours", hint="e.g. --tz +02:00")
        return dt.timezone(-delta if m.group(1) == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(s)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(s, sorted(zoneinfo.available_timezones()), n=3)
        raise UsageError(f"unknown time zone {s!r}" + (f"; did you mean {', '.join(close)}?" if close else ""),
                         hint="use UTC, local, an IANA name such as Europe/Paris, or an offset such as "
                              "+02:00") from None


def use_zone(zone: str | dt.tzinfo | None) -> contextvars.Token[dt.tzinfo | None]:
    """Read and show times in ``zone`` (a name for :func:`parse_zone`) from now on in this
    context; returns the token to undo it with ``reset_zone``. None: UTC."""
    return _ZONE.set(parse_zone(zone) if isinstance(zone, str) else zone)


def reader_zone() -> dt.tzinfo | None:
    """The zone set by ``use_zone`` in this context (--tz, KMEVENTS_TZ); None: UTC."""
    return _ZONE.get()


def reset_zone(token: contextvars.Token[dt.tzinfo | None]) -> None:
    _ZONE.reset(token)


def show_time(iso: str | None, *, digits: int = 3) -> str:
    """A canonical time as a reader wants it: in the reader's zone (UTC: ``...Z``, else the
    offset), ``digits`` fraction digits (0, 3 or 6). ``""`` for None; text that is not a
    canonical time is returned as it is."""
    if not iso:
        return ""
    try:
        when = _EPOCH + dt.timedelta(microseconds=micros_of(iso))
    except ValueError:
        return iso
    zone = _ZONE.get()
    local = when if zone is None else when.astimezone(zone)
    frac = f".{local.microsecond:06d}"[: digits + 1] if digits else ""
    if zone is None or local.utcoffset() == dt.timedelta(0) and zone is dt.UTC:
        return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]


def humanize_seconds(seconds: float | None) -> str:
    """A duration as people write it: ``412ms``, ``45s``, ``3m41s``, ``2h5m``, ``3d4h``
    (two units at most, rounded down). ``""`` for None; a negative one keeps its sign."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 0:
        return "-" + humanize_seconds(-seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    total = int(seconds)
    for size, unit, sub_size, sub_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if total >= size:
            rest = (total % size) // sub_size
            return f"{total // size}{unit}" + (f"{rest}{sub_unit}" if rest else "")
    return f"{total}s"


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
    """``15m``/``2h``/``30s``/``1d``/``1h30m`` (or ``-15m``) as seconds."""
    t = text.strip()
    if not re.fullmatch(rf"-?{_DURATION}", t):
        raise UsageError(f"duration {text!r} is not understood", hint="use e.g. 30s, 15m, 2h, 1d, 1h30m")
    return _duration_seconds(t)


def since(text: str, *, now: float | None = None) -> TimePoint:
    """``--since DURATION``: the TIME that long ago (``--since 15m`` is ``--from now-15m``)."""
    seconds = (time.time() if now is None else now) - parse_duration(text)
    return _in_range(text, round(seconds * 1_000_000) if math.isfinite(seconds) else -1)


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
