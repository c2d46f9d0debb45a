"""TIME and POINT parsing for the reading commands."""

from __future__ import annotations

import pytest

from kmevents.errors import UsageError
from kmevents.timespec import lag_text, parse_point, parse_time

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_iso_with_zone_is_converted_to_utc() -> None:
    assert parse_time("2026-01-01T01:05:00+01:00").iso == "2026-01-01T00:05:00.000000Z"


def test_iso_without_zone_is_refused_with_the_accepted_forms() -> None:
    with pytest.raises(UsageError, match="zone"):
        parse_time("2026-01-01T00:05:00")


def test_epoch_milliseconds() -> None:
    tp = parse_time("1767225900123")
    assert tp.iso == "2026-01-01T00:05:00.123000Z"
    assert tp.ms == 1767225900123


@pytest.mark.parametrize(("text", "seconds"), [("-15m", 900), ("-2h", 7200), ("-1d", 86400), ("-30s", 30)])
def test_relative_times_count_back_from_now(text: str, seconds: int) -> None:
    assert parse_time(text, now=NOW).micros == int((NOW - seconds) * 1_000_000)


def test_garbage_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_time("yesterday")


def test_points_are_offsets_or_times() -> None:
    assert parse_point("offset:42").offset == 42
    assert parse_point("2026-01-01T00:00:00Z").time is not None
    with pytest.raises(UsageError):
        parse_point("offset:-1")


def test_lag_is_recorded_minus_occurred() -> None:
    assert lag_text("2026-01-01T00:00:00.000000Z", 1767225600250) == "+0.250s"
    assert lag_text("2026-01-01T00:00:01.000000Z", 1767225600000) == "-1.000s"


@pytest.mark.parametrize(("text", "fragment"), [
    ("1767225600000000", "looks like microseconds"),
    ("99999999999999999999", "looks like nanoseconds"),
    ("0001-01-01T00:00:00Z", "before 1970-01-01"),
    ("0001-01-01T00:00:00+01:00", "before 1970-01-01"),
    ("9999-12-31T23:59:59-01:00", "after 9999-12-31"),
    ("-100000000w", "outside 1970-01-01T00:00:00.000000Z .. 9999-12-31T23:59:59.999999Z"),
    ("-" + "9" * 400 + "s", "outside 1970"),
    ("\u00b2", "not an ISO 8601 time"),  # a digit to str.isdigit(), not to int()
    ("2015-02-29T00:00:00Z", "day is out of range"),
])
def test_times_outside_1970_to_9999_are_usage_errors_that_say_why(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_time(text, now=NOW)
    assert fragment in info.value.message
    assert info.value.exit_code == 2 and "between 1970 and 9999" in (info.value.hint or "")


def test_the_range_bounds_are_times() -> None:
    assert parse_time("1970-01-01T00:00:00Z").micros == 0
    assert parse_time("9999-12-31T23:59:59.999999Z").iso == "9999-12-31T23:59:59.999999Z"


def test_an_offset_beyond_kafkas_largest_is_a_usage_error() -> None:
    assert parse_point(f"offset:{2**63 - 1}").offset == 2**63 - 1
    with pytest.raises(UsageError, match="largest offset"):
        parse_point(f"offset:{2**63}")


@pytest.mark.parametrize("flag", [["--at", "1767225600000000"], ["--known-at", "99999999999999999999"],
                                  ["--known-at", "0001-01-01T00:00:00Z"]])
def test_state_refuses_such_times_with_exit_2_before_connecting_anywhere(flag: list[str], capsys) -> None:
    from kmevents.cli import main

    assert main(["state", "--cluster", "c1", *flag, "--bootstrap", "127.0.0.1:1", "--etcd", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "is not understood" in err and "Traceback" not in err
