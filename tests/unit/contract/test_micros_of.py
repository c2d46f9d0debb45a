"""``micros_of`` reads the canonical shape by a fast path (a regular expression, then
``datetime.fromisoformat``) and anything else by ``strptime``: both give what ``strptime``
alone gave, for every string."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.contract.times import format_time, micros_of

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _reference(text: str) -> int | str:
    try:
        when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "ValueError"
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


def _ours(text: str) -> int | str:
    try:
        return micros_of(text)
    except ValueError:
        return "ValueError"


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_every_canonical_time_reads_as_strptime_read_it(when: dt.datetime) -> None:
    text = format_time(when.replace(tzinfo=dt.UTC))
    assert micros_of(text) == _reference(text) == (when.replace(tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(
        microseconds=1)


_NEAR = st.sampled_from(["2026-12-04T18:55:01.123456Z", "2026-02-28T23:59:59.999999Z", "0001-01-01T00:00:00.000000Z"])


@settings(max_examples=500, deadline=None)
@given(_NEAR, st.integers(0, 26), st.sampled_from(["", "0", "1", "9", "-", ":", ".", "T", "Z", " ", "\n", "２", "a",
                                                   "00", "+00:00"]), st.booleans())
def test_a_string_near_the_shape_reads_or_fails_as_strptime_did(base: str, at: int, put: str, replace: bool) -> None:
    text = base[:at] + put + base[at + 1 if replace else at:]
    assert _ours(text) == _reference(text), text


def test_the_shapes_strptime_also_accepted_still_read() -> None:
    for text in ("2026-1-1T00:00:00.000000Z", "2026-12-04T18:55:01.1Z", "２026-12-04T18:55:01.123456Z"):
        assert micros_of(text) == _reference(text)
