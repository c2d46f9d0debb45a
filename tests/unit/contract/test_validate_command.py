"""`kmevents validate FILE`: every problem reported, located, with the documented exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson
import pytest

from kmevents.cli import main

EXAMPLES = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "examples.json").read_text())
GOOD = orjson.dumps(EXAMPLES[0])


@pytest.fixture
def write(tmp_path: Path):
    def _write(content: bytes) -> str:
        path = tmp_path / "events.jsonl"
        path.write_bytes(content)
        return str(path)

    return _write


def test_valid_file_exits_0(write, capsys) -> None:
    path = write(b"\n".join(orjson.dumps(e) for e in EXAMPLES) + b"\n")
    assert main(["validate", path]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{len(EXAMPLES)} events, {len(EXAMPLES)} valid, 0 invalid" in err


def test_empty_file_is_valid(write) -> None:
    assert main(["validate", write(b"")]) == 0


def test_blank_lines_are_skipped(write, capsys) -> None:
    assert main(["validate", write(b"\n" + GOOD + b"\n   \n\n")]) == 0
    assert "1 events, 1 valid" in capsys.readouterr().err


def test_every_error_is_reported_with_file_line_event_id_and_path(write, capsys) -> None:
    bad_status = dict(EXAMPLES[22], event_id="evt-9")
    bad_status["payload"] = {"status": {**bad_status["payload"]["status"], "state": "running", "healthy": "yes"}}
    lines = [GOOD, b"{not json", orjson.dumps({**EXAMPLES[1], "type": "master.heartbeat_lsot"}),
             orjson.dumps(bad_status), b"[1, 2]"]
    path = write(b"\n".join(lines) + b"\n")
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{path}:2: -: -: not JSON" in out[0]
    assert any(line.startswith(f"{path}:3: -: type: unknown event type") and "master.heartbeat_lost" in line
               for line in out)
    assert f"{path}:4: evt-9: payload.status.state: " in "\n".join(out)
    assert f"{path}:4: evt-9: payload.status.healthy: " in "\n".join(out)
    assert any(line.startswith(f"{path}:5: -: -: an event is a JSON object") for line in out)


def test_truncated_last_line_is_named(write, capsys) -> None:
    path = write(GOOD + b"\n" + GOOD[: len(GOOD) // 2])
    assert main(["validate", path]) == 1
    assert f"{path}:2: -: -: truncated last line" in capsys.readouterr().out


def test_last_line_without_newline_is_fine_when_complete(write) -> None:
    assert main(["validate", write(GOOD + b"\n" + GOOD)]) == 0


def test_too_long_line_is_an_error_and_the_next_line_is_still_checked(write, capsys) -> None:
    huge = b'{"x": "' + b"a" * 5000 + b'"}'
    path = write(huge + b"\n" + b"{bad\n" + GOOD + b"\n")
    assert main(["validate", path, "--max-line-bytes", "1000"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:1: -: -: line is 5,") and "over the limit of 1,000" in out[0]
    assert out[1].startswith(f"{path}:2: -: -: not JSON")
    assert len(out) == 2


def test_line_of_exactly_the_limit_is_accepted(write) -> None:
    assert main(["validate", write(GOOD + b"\n"), "--max-line-bytes", str(len(GOOD))]) == 0
    assert main(["validate", write(GOOD + b"\n"), "--max-line-bytes", str(len(GOOD) - 1)]) == 1


def test_non_utf8_bytes_are_an_error(write, capsys) -> None:
    path = write(GOOD[:-2] + b'\xff"}\n')
    assert main(["validate", path]) == 1
    assert "not UTF-8" in capsys.readouterr().out


def test_warnings_go_to_stderr_and_keep_exit_0(write, capsys) -> None:
    event = json.loads(json.dumps(EXAMPLES[22]))
    event["payload"]["status"]["reason"] = "REASON_FUTURE_THING"
    assert main(["validate", write(orjson.dumps(event) + b"\n")]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "payload.status.reason: warning: unknown Mesos TaskStatus.Reason value 'REASON_FUTURE_THING'" in err


def test_json_format_is_machine_readable(write, capsys) -> None:
    path = write(GOOD + b"\n{oops\n")
    assert main(["validate", path, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    (file_report,) = report["files"]
    assert (file_report["events"], file_report["valid"], file_report["invalid"]) == (2, 1, 1)
    assert file_report["errors"][0]["line"] == 2 and file_report["errors"][0]["event_id"] == "-"


def test_stdin(monkeypatch, capsys) -> None:
    fake = io.TextIOWrapper(io.BytesIO(GOOD + b"\n"))
    monkeypatch.setattr("sys.stdin", fake)
    assert main(["validate", "-"]) == 0


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_help_teaches_with_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    assert "FILE:LINE: EVENT_ID: field.path: reason" in out
    assert "$ kmevents validate events.jsonl" in out
    assert "--max-line-bytes" in out


def test_odd_values_that_used_to_crash_are_reported_and_the_other_lines_still_checked(write, capsys) -> None:
    odd = [{**EXAMPLES[0], "schema_version": {}}, {**EXAMPLES[0], "occurred_at": 1767225600000000},
           {**EXAMPLES[0], "occurred_at": 10**19}, {**EXAMPLES[0], "occurred_at": "0001-01-01T00:00:00Z"}]
    path = write(b"\n".join([GOOD, *(orjson.dumps(e) for e in odd), GOOD]) + b"\n")
    assert main(["validate", path]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{path}:2: -: schema_version: " in out
    assert f"{path}:3: -: occurred_at: integer time 1767225600000000 is read as epoch milliseconds" in out
    assert "looks like microseconds: divide by 1,000" in out
    assert f"{path}:4: -: occurred_at: " in out and f"{path}:5: -: occurred_at: " in out
    assert "6 events, 2 valid, 4 invalid" in err


def test_a_key_written_twice_is_refused_with_its_name(write, capsys) -> None:
    twice = GOOD[:-1] + b',"type":"master.elected"}'
    path = write(GOOD + b"\n" + twice + b"\n")
    assert main(["validate", path]) == 1
    assert f"{path}:2: -: -: duplicate key 'type' in event at line 2" in capsys.readouterr().out


def test_an_event_too_far_ahead_of_the_clock_is_refused_naming_the_setting(write, capsys, monkeypatch) -> None:
    ahead = {**EXAMPLES[0], "occurred_at": "9999-12-31T23:59:59Z"}
    path = write(GOOD + b"\n" + orjson.dumps(ahead) + b"\n")
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: " in out and "occurred_at: 9999-12-31T23:59:59.000000Z is 7,9" in out
    assert "years ahead of the ingest clock" in out and "KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS" in out
    monkeypatch.setenv("KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS", str(10_000 * 365 * 86400))
    assert main(["validate", path]) == 0
