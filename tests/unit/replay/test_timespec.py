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


# Relative times and the reader's zone (issue 18).

@pytest.mark.parametrize("text", ["15m", "-15m", "now-15m", "now - 15m", "NOW-15m", "0h15m"])
def test_fifteen_minutes_ago_has_every_spelling_people_use(text: str) -> None:
    assert parse_time(text, now=NOW).micros == int((NOW - 900) * 1_000_000)


def test_now_plus_and_compound_durations() -> None:
    assert parse_time("now", now=NOW).iso == "2026-01-01T00:00:00.000000Z"
    assert parse_time("now+5m", now=NOW).iso == "2026-01-01T00:05:00.000000Z"
    assert parse_time("1h30m", now=NOW).iso == "2025-12-31T22:30:00.000000Z"


def test_yesterday_at_a_time_of_day_is_utc_unless_a_zone_is_chosen() -> None:
    from kmevents.timespec import reset_zone, use_zone

    now = NOW + 10 * 3600  # 2026-01-01T10:00:00Z
    assert parse_time("yesterday 14:05", now=now).iso == "2025-12-31T14:05:00.000000Z"
    assert parse_time("today 09:30:15.5", now=now).iso == "2026-01-01T09:30:15.500000Z"
    token = use_zone("Europe/Paris")  # UTC+1 in winter
    try:
        assert parse_time("yesterday 14:05", now=now).iso == "2025-12-31T13:05:00.000000Z"
        # a zone chosen: an ISO time without one is read in it
        assert parse_time("2026-01-01T12:00", now=now).iso == "2026-01-01T11:00:00.000000Z"
    finally:
        reset_zone(token)
    with pytest.raises(UsageError, match="zone"):
        parse_time("2026-01-01T12:00", now=now)


def test_a_bare_day_is_refused_with_the_form_that_works() -> None:
    with pytest.raises(UsageError) as info:
        parse_time("yesterday", now=NOW)
    assert "yesterday 14:05" in (info.value.hint or "")
    with pytest.raises(UsageError, match="not a time of day"):
        parse_time("today 25:00", now=NOW)


def test_times_are_shown_in_the_readers_zone_and_stay_utc_by_default() -> None:
    from kmevents.timespec import reset_zone, show_time, use_zone

    iso = "2026-07-01T12:00:00.123456Z"
    assert show_time(iso) == "2026-07-01T12:00:00.123Z"
    assert show_time(iso, digits=0) == "2026-07-01T12:00:00Z"
    token = use_zone("Europe/Paris")
    try:
        assert show_time(iso) == "2026-07-01T14:00:00.123+02:00"  # summer time
    finally:
        reset_zone(token)
    token = use_zone("-05:30")
    try:
        assert show_time(iso) == "2026-07-01T06:30:00.123-05:30"
    finally:
        reset_zone(token)
    assert show_time(None) == "" and show_time("not a time") == "not a time"


def test_an_unknown_zone_is_a_usage_error() -> None:
    from kmevents.timespec import parse_zone

    with pytest.raises(UsageError, match="unknown time zone"):
        parse_zone("Mars/Olympus")


@pytest.mark.parametrize(("seconds", "text"), [(0.412, "412ms"), (45, "45s"), (221, "3m41s"), (180, "3m"),
                                                (7500, "2h5m"), (273600, "3d4h"), (-221, "-3m41s"), (None, "")])
def test_durations_are_humanised(seconds: float | None, text: str) -> None:
    from kmevents.timespec import humanize_seconds

    assert humanize_seconds(seconds) == text


def test_since_is_now_minus_a_duration() -> None:
    from kmevents.timespec import parse_duration, since

    assert since("15m", now=NOW).micros == int((NOW - 900) * 1_000_000)
    assert parse_duration("1h30m") == 5400
    with pytest.raises(UsageError):
        since("yesterday", now=NOW)


@pytest.mark.parametrize("argv", [["--at", "-15m"], ["--at=-15m"], ["--at", "15m"], ["--at", "now-15m"],
                                  ["--known-at", "-1h30m"]])
def test_state_takes_relative_times_in_every_spelling(argv: list[str], capsys: pytest.CaptureFixture[str],
                                                      tmp_path) -> None:
    """``--at -15m`` used to fail in argparse ("expected one argument"); every form reaches
    the replay (here: an archive whose events all happened long before 15 minutes ago)."""
    import orjson
    from kmevents.replay import archive
    from kmevents.replay.records import LogRecord

    from kmevents.cli import main
    from kmevents.simulate import generate
    from kmevents.timespec import micros_of

    arc = tmp_path / "a.kmarch"
    recs = [LogRecord(i, micros_of(ev["occurred_at"]) // 1000, b"t", orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(generate("t", 3, 300, agents=3))]
    archive.write(arc, recs, cluster="t", partition=0, topic="kmevents.events", covers_from=0)
    assert main(["state", "--source", str(arc), "--no-progress", *argv]) == 0, capsys.readouterr().err
    assert "offset 299" in capsys.readouterr().out


def test_join_relative_times_only_joins_what_argparse_would_take_for_a_flag() -> None:
    from kmevents.cli import join_relative_times

    assert join_relative_times(["state", "--at", "-15m", "--offset", "-1", "-v"]) == \
        ["state", "--at=-15m", "--offset", "-1", "-v"]
    assert join_relative_times(["simulate", "--start", "-2h30m"]) == ["simulate", "--start=-2h30m"]
