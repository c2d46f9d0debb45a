"""occurred_at: accepted input forms and the canonical string."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmevents.contract import canonical_time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2015-07-08T15:03:22.123456Z", "2015-07-08T15:03:22.123456Z"),
        ("2015-07-08T15:03:22Z", "2015-07-08T15:03:22.000000Z"),
        ("2015-07-08T17:03:22.5+02:00", "2015-07-08T15:03:22.500000Z"),
        ("2015-07-08T15:03:22.1234567+00:00", "2015-07-08T15:03:22.123456Z"),
        (1436367802123, "2015-07-08T15:03:22.123000Z"),
        (1436367802.1234567, "2015-07-08T15:03:22.123457Z"),
        (1436367802.0, "2015-07-08T15:03:22.000000Z"),
    ],
)
def test_accepted_forms(value: object, expected: str) -> None:
    assert canonical_time(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2015-07-08T15:03:22", "no zone"),
        ("yesterday", "not an ISO 8601"),
        (1436367802, "epoch milliseconds"),
        (float("nan"), "not a valid epoch"),
        (-1.0, "not a valid epoch"),
        (None, "not NoneType"),
        (True, "not bool"),
    ],
)
def test_refused_forms(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        canonical_time(value)


@given(
    st.datetimes(min_value=dt.datetime(1973, 4, 1), max_value=dt.datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)
def test_canonical_strings_sort_as_times(naive: dt.datetime, offset_minutes: int) -> None:
    when = naive.replace(tzinfo=dt.UTC)
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    a = canonical_time(when.astimezone(zone).isoformat())
    b = canonical_time((when + dt.timedelta(microseconds=1)).astimezone(zone).isoformat())
    assert len(a) == 27 and a < b
    assert a == when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
