"""The report's time axis: ticks at round times of the reader's zone, and times written in it.

The log's times are UTC; a reader in Berlin thinks "the failover at 01:05",
so the report's ticks and window are written in a zone of the reader's
choosing (``--tz``, UTC by default). Ticks fall on round wall-clock times of
that zone (every 5 minutes: 01:00, 01:05, ...), even where the zone's offset
is not a whole hour (Asia/Kolkata's 05:30) or changes inside the window (a DST
switch: the ticks follow the clock on the wall, and the caption gives both
offsets). Pure: no I/O, no clock.

Worked example: a window of 2026-01-01T00:00:00.0004Z to 00:23:00Z read in
Europe/Berlin (UTC+01:00) has ticks every 2 minutes at 01:02, 01:04, ... 01:22
(01:00 is before the window's first event), the first also carrying its date
2026-01-01, and the caption "Europe/Berlin (UTC+01:00)". The same window read in
Asia/Kolkata (UTC+05:30) is ticked at 05:32, 05:34, ...
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.UTC
#: Tick spacings, in seconds, from which the coarsest giving at least ``target`` ticks is chosen.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
         2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400)


def zone(name: str | None) -> dt.tzinfo:
    """The zone called ``name`` (UTC, local, an IANA name such as ``Europe/Berlin``, an offset);
    None: the reader's zone (the global --tz or KMEVENTS_TZ), else UTC.

    Raises :class:`UsageError` naming the closest zones when the name is unknown."""
    from kmevents.timespec import parse_zone, reader_zone

    if name is None:
        return reader_zone() or UTC
    return parse_zone(name)


def zone_name(tz: dt.tzinfo) -> str:
    return "UTC" if tz is UTC else str(tz)


def _at(us: int, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone(tz)


def _offset(d: dt.datetime) -> str:
    off = d.utcoffset() or dt.timedelta(0)
    sign = "-" if off < dt.timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def caption(lo_us: int, hi_us: int, tz: dt.tzinfo) -> str:
    """How the axis names its zone: ``UTC``, ``Europe/Berlin (UTC+01:00)``, or both offsets across a switch."""
    if tz is UTC:
        return "UTC"
    a, b = _offset(_at(lo_us, tz)), _offset(_at(hi_us, tz))
    return f"{zone_name(tz)} ({a})" if a == b else f"{zone_name(tz)} ({a} to {b})"


def local_text(us: int, tz: dt.tzinfo, *, seconds: bool = True) -> str:
    """``2026-01-01 01:05:00 CET``: a time as the reader's clock shows it."""
    d = _at(us, tz)
    return d.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + (d.tzname() or _offset(d))


def _iso(d: dt.datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ticks(lo_us: int, hi_us: int, tz: dt.tzinfo, *, target: int = 6) -> list[dict[str, Any]]:
    """Ticks over ``[lo_us, hi_us]`` at round times of ``tz``: ``{"t": ISO (UTC), "label", "date"}``.

    ``date`` (``2026-01-01``, in the zone) is set on the first tick and on each
    one whose date differs from the tick before; ``label`` is ``HH:MM``
    (``HH:MM:SS`` under a minute's spacing, ``Jan 02`` from a day's). At least
    ``target`` ticks (at most about ``3.5 * target``), none outside the window.
    Ticks under a day apart are one step of real time apart, re-aligned to the
    wall clock when the zone's offset changes: the hour a DST switch repeats is
    ticked twice, the one it skips not at all."""
    hi_us = max(hi_us, lo_us + 1_000_000)
    span = (hi_us - lo_us) / 1e6
    step = next((s for s in reversed(STEPS) if span / s >= target), STEPS[0])
    out: list[dict[str, Any]] = []
    last_date = None
    us = _round_up(lo_us, tz, step)
    while us <= hi_us:
        local = _at(us, tz)
        date = local.strftime("%Y-%m-%d")
        label = local.strftime("%b %d" if step >= 86400 else "%H:%M:%S" if step < 60 else "%H:%M")
        out.append({"t": _iso(local), "label": label, "date": date if date != last_date else None})
        last_date = date
        # the next round time by the clock on the wall, or one step of real time on (a repeated hour)
        us = min(_round_up(us + 1, tz, step), _round_up(us + step * 1_000_000, tz, step))
    return out


def _round_up(us: int, tz: dt.tzinfo, step: int) -> int:
    """The first instant at or after ``us`` whose wall-clock time in ``tz`` is a multiple of ``step``
    (from local midnight; for steps of days, a local midnight, on a Monday for weeks)."""
    start = _at(us, tz)
    wall = start.replace(tzinfo=None)
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    if step < 86400:
        secs = (wall - midnight).total_seconds()
        cand = midnight + dt.timedelta(seconds=-(-secs // step) * step)
    else:
        cand = midnight if midnight == wall else midnight + dt.timedelta(days=1)
        if step // 86400 == 7 or step >= 14 * 86400:
            cand += dt.timedelta(days=(7 - cand.weekday()) % 7)
        elif step // 86400 == 2:
            cand += dt.timedelta(days=cand.toordinal() % 2)
    found = us + (cand - wall) // dt.timedelta(microseconds=1)  # real time: the repeated hour of a switch too
    if _at(found, tz).replace(tzinfo=None) != cand:  # a switch between: go by the wall clock
        by_wall = int(_aware(cand, tz).timestamp() * 1_000_000)
        found = by_wall if by_wall >= us else found
    return found


def _aware(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a wall-clock time of ``tz`` names (a time skipped by a DST switch: the instant after it)."""
    aware = wall.replace(tzinfo=tz)
    if tz is UTC:
        return aware
    back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != wall:  # in the gap of a spring-forward switch
        return (wall + dt.timedelta(hours=1)).replace(tzinfo=tz)
    return aware
