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
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema

CANONICAL_TIME_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
_CANONICAL: Final = re.compile(CANONICAL_TIME_PATTERN)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Integers below this are refused: as milliseconds they would be before 1973.
MIN_EPOCH_MS: Final = 100_000_000_000


def format_time(when: dt.datetime) -> str:
    """Canonical string of an aware datetime."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_micros(micros: int) -> str:
    """Canonical string of an integer count of microseconds since the epoch."""
    return format_time(_EPOCH + dt.timedelta(microseconds=micros))


def canonical_time(value: Any) -> str:
    """Return the canonical UTC string for an accepted time input.

    Raises ``ValueError`` with the reason for anything else.
    """
    kind = type(value)
    if kind is str:
        if _CANONICAL.match(value):
            return str(value)
        return _from_iso(value)
    if kind is int:
        if value < MIN_EPOCH_MS:
            raise ValueError(
                f"integer time {value} is read as epoch milliseconds and would be before 1973;"
                " send milliseconds, float seconds or an ISO 8601 string with a zone"
            )
        return from_micros(value * 1000)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise ValueError(f"float time {value!r} is not a valid epoch time in seconds")
        return from_micros(round(value * 1_000_000))
    raise ValueError(
        f"time must be an ISO 8601 string with a zone, epoch ms (int) or seconds (float), "
        f"not {kind.__name__}"
    )


def _from_iso(text: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no zone; add 'Z' or an offset such as '+00:00'")
    return format_time(parsed)


Timestamp = Annotated[
    str,
    BeforeValidator(canonical_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": MIN_EPOCH_MS, "description": "epoch milliseconds"},
                {"type": "number", "minimum": 0, "description": "epoch seconds"},
            ],
            "description": "Canonical form YYYY-MM-DDTHH:MM:SS.ffffffZ; on input also ISO 8601 "
            "with a zone, integer epoch milliseconds or float epoch seconds.",
        }
    ),
]
"""A time, stored in canonical form (see module docstring)."""
