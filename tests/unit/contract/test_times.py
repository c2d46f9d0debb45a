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


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        (1767225600000000, ["integer time 1767225600000000 is read as epoch milliseconds",
                            "in year 57971", "looks like microseconds: divide by 1,000"]),
        (1767225600000000000, ["in year 56003119", "looks like nanoseconds: divide by 1,000,000"]),
        (1767225600000.0, ["read as epoch seconds", "looks like milliseconds: divide by 1,000",
                           "send the milliseconds as an integer"]),
        (1767225600000000.0, ["looks like microseconds: divide by 1,000,000"]),
        (1.7672256e18, ["looks like nanoseconds: divide by 1,000,000,000"]),
        (10**30, ["far after year 9999", "no unit makes it a time"]),
        (99999999999999999999, ["in year 3168875820", "looks like nanoseconds"]),
        (1e300, ["far after year 9999"]),
        (253402300800000, ["in year 10000"]),
        (-5, ["before 1970"]),
        (1436367802, ["before 1973", "looks like seconds: multiply by 1000"]),
        (float("inf"), ["not a valid epoch time"]),
        (float("-inf"), ["not a valid epoch time"]),
        ("0001-01-01T00:00:00Z", ["before 1970-01-01", "zero time"]),
        ("0001-01-01T00:00:00+01:00", ["before 1970-01-01"]),
        ("0001-01-01T00:00:00.000000Z", ["before 1970-01-01"]),
        ("1969-12-31T23:59:59.999999Z", ["before 1970-01-01"]),
        ("9999-12-31T23:59:59-01:00", ["after 9999-12-31"]),
        ("2015-02-29T00:00:00.000000Z", ["day is out of range"]),
        ("2015-04-31T00:00:00.000000Z", ["day is out of range"]),
        ("2015-13-01T00:00:00.000000Z", ["not an ISO 8601 time"]),
        ("2015-07-08T24:00:00.000000Z", ["not an ISO 8601 time"]),
        ("2015-07-08T15:03:22.000000Z\n", ["not an ISO 8601 time"]),
    ],
)
def test_times_out_of_range_or_in_another_unit_are_refused_with_what_they_would_mean(
        value: object, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        canonical_time(value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-02-29T00:00:00.000000Z", "2016-02-29T00:00:00.000000Z"),
        ("1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("1970-01-01T01:00:00+01:00", "1970-01-01T00:00:00.000000Z"),
        (253402300799999, "9999-12-31T23:59:59.999000Z"),
        (0.0, "1970-01-01T00:00:00.000000Z"),
    ],
)
def test_the_bounds_themselves_are_accepted(value: object, expected: str) -> None:
    assert canonical_time(value) == expected


@given(st.integers() | st.integers(-(2**100), 2**100) | st.floats() | st.floats(1e9, 1e25) | st.text(max_size=40)
       | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.booleans() | st.none())
def test_any_input_gives_a_canonical_time_in_range_or_a_value_error(value: object) -> None:
    try:
        out = canonical_time(value)
    except ValueError:
        return
    assert len(out) == 27 and "1970-01-01T00:00:00.000000Z" <= out <= "9999-12-31T23:59:59.999999Z"
    assert canonical_time(out) == out
