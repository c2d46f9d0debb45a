"""Canonical times: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC, always six fraction digits.

Fixed width means canonical strings sort as times, so ``--at T`` can compare
strings. Strict input may also give:

- an ISO 8601 string **with** a zone (``2015-07-08T15:03:22.5+02:00``, ``...Z``);
  a string without a zone is refused (its meaning depends on the reader);
- an integer: epoch **milliseconds** (values below 1e11, i.e. before 1973, are
  refused as probably being seconds);
- a float: epoch **seconds** (Mesos ``TaskStatus.timestamp`` style).

All are rounded to the microsecond. Worked example: ``1436367802.1234567``
(float seconds) -> ``2015-07-08T15:03:22.123457Z``.

Every time lies in ``[EARLIEST, LATEST]`` (1970-01-01 to 9999-12-31, the
range a four-digit year and the epoch allow); anything outside is refused
with a ``ValueError`` that says what the number would mean and, when another
unit fits, which: ``1767225600000000`` (an integer) is read as milliseconds,
would be in year 57970, and looks like microseconds, so the reason says
"divide by 1000". A unit is never guessed: a producer that sends
microseconds sends them everywhere, and a silent guess would also accept
its mistakes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Final

_MONTH_DAY: Final = r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
#: A canonical time between 1970 and 9999 that is a real date, checked by a
#: regular expression alone (the ingest fast path runs it in Rust). February 29
#: is left out: it goes through the parser, which knows leap years.
CANONICAL_TIME_PATTERN: Final = (
    r"^(?:19[7-9]\d|[2-9]\d{3})-" + _MONTH_DAY + r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z$"
)
_CANONICAL: Final = re.compile(CANONICAL_TIME_PATTERN)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EARLIEST: Final = "1970-01-01T00:00:00.000000Z"
LATEST: Final = "9999-12-31T23:59:59.999999Z"
#: ``LATEST`` in microseconds since the epoch (``EARLIEST`` is 0).
MAX_EPOCH_MICROS: Final = 253_402_300_799_999_999
#: Integers below this are refused: as milliseconds they would be before 1973.
MIN_EPOCH_MS: Final = 100_000_000_000
#: Integers above this are refused: as milliseconds they would be after 9999.
MAX_EPOCH_MS: Final = MAX_EPOCH_MICROS // 1000


def format_time(when: dt.datetime) -> str:
    """Canonical string of an aware datetime (years 1970 to 9999)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_micros(micros: int) -> str:
    """Canonical string of an integer count of microseconds since the epoch.

    Raises ``ValueError`` outside ``[EARLIEST, LATEST]``.
    """
    if not 0 <= micros <= MAX_EPOCH_MICROS:
        raise ValueError(f"{micros} microseconds since the epoch is outside {EARLIEST} .. {LATEST}")
    return format_time(_EPOCH + dt.timedelta(microseconds=micros))


_NAIVE_EPOCH: Final = dt.datetime(1970, 1, 1)
_CANONICAL_SHAPE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z").fullmatch


def micros_of(canonical: str) -> int:
    """Microseconds since the epoch of a canonical time string (``ValueError`` for any other).

    The canonical shape is read by ``datetime.fromisoformat`` once a regular expression has
    checked it (~1 us); anything else takes ``strptime`` (~15 us), which accepted
    the same strings before: a report or the monitor's rules read a time per entity, and
    ``strptime`` was 16 % of a report's CPU at the large profile."""
    if _CANONICAL_SHAPE(canonical):
        return (dt.datetime.fromisoformat(canonical[:26]) - _NAIVE_EPOCH) // dt.timedelta(microseconds=1)
    when = dt.datetime.strptime(canonical, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


def canonical_time(value: Any) -> str:
    """Return the canonical UTC string for an accepted time input.

    Raises ``ValueError`` with the reason for anything else (and nothing else:
    no ``OverflowError`` or ``TypeError``, whatever ``value`` is).
    """
    kind = type(value)
    if kind is str:
        if _CANONICAL.fullmatch(value):
            return str(value)
        return _from_iso(value)
    if kind is int:
        return _from_ms(value)
    if kind is float:
        return _from_seconds(value)
    raise ValueError(
        f"time must be an ISO 8601 string with a zone, epoch ms (int) or seconds (float), "
        f"not {kind.__name__}"
    )


def _year_text(ms: float) -> str:
    """'in year N' for epoch milliseconds ``ms`` (proleptic Gregorian, any size), or 'far after year 9999'."""
    if ms >= 1e21:  # ~ year 3e10: no year worth printing
        return "far after year 9999"
    days = int(ms) // 86_400_000 + 719_468  # days since 0000-03-01
    era, day_of_era = divmod(days, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    march_based_month = (5 * day_of_year + 2) // 153
    return f"in year {year_of_era + era * 400 + (march_based_month >= 10)}"


def _looks_like(value: float, low: float, high: float, units: tuple[tuple[str, int], ...]) -> str:
    """Advice naming the unit that would put ``value`` in ``[low, high]``, if one does."""
    for unit, factor in units:
        if low <= value / factor <= high:
            return f"; it looks like {unit}: divide by {factor:,}"
    return "; no unit makes it a time between 1973 and 9999"


def _from_ms(value: int) -> str:
    if value < MIN_EPOCH_MS:
        hint = "send milliseconds, float seconds or an ISO 8601 string with a zone"
        if value >= MIN_EPOCH_MS // 1000:
            hint = "it looks like seconds: multiply by 1000 or send float seconds"
        when = "before 1970" if value < 0 else "before 1973"
        raise ValueError(f"integer time {value} is read as epoch milliseconds and would be {when}; {hint}")
    if value > MAX_EPOCH_MS:
        advice = _looks_like(value, MIN_EPOCH_MS, MAX_EPOCH_MS, (("microseconds", 1000), ("nanoseconds", 1_000_000)))
        raise ValueError(f"integer time {value} is read as epoch milliseconds and would be "
                         f"{_year_text(value)}{advice}")
    return from_micros(value * 1000)


def _from_seconds(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"float time {value!r} is not a valid epoch time in seconds")
    if value < 0:
        raise ValueError(f"float time {value!r} is not a valid epoch time in seconds: it would be before 1970")
    scaled = value * 1_000_000  # inf for values beyond ~1.8e302: compare before rounding
    if scaled > MAX_EPOCH_MICROS:
        advice = _looks_like(value, MIN_EPOCH_MS / 1000, MAX_EPOCH_MS / 1000,
                             (("milliseconds", 1000), ("microseconds", 1_000_000), ("nanoseconds", 1_000_000_000)))
        if "milliseconds" in advice:
            advice += " or send the milliseconds as an integer"
        raise ValueError(f"float time {value!r} is read as epoch seconds (a number with a fraction, an "
                         f"exponent or beyond 64 bits) and would be {_year_text(value * 1000)}{advice}")
    return from_micros(round(scaled))


def _from_iso(text: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        why = "" if str(exc).startswith("Invalid isoformat") else f" ({exc})"
        raise ValueError(f"{text!r} is not an ISO 8601 time{why}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no zone; add 'Z' or an offset such as '+00:00'")
    try:
        utc = parsed.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00
        utc = None
    if utc is None or utc.year < 1970:
        zero = " (0001-01-01 is the zero time of Go and .NET: is the time unset?)" if parsed.year == 1 else ""
        if utc is None and parsed.year > 1970:
            raise ValueError(f"{text!r} is after {LATEST}, the latest time the contract accepts")
        raise ValueError(f"{text!r} is before {EARLIEST}, the earliest time the contract accepts{zero}")
    return format_time(utc)

