"""``kmevents simulate``: files, stdout, summaries, and the Kafka path's fallback."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from kmevents.cli import main
from kmevents.simulate import iter_lines


def test_file_output_is_the_api_bytes(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    assert main(["simulate", "--cluster", "cli", "--events", "3000", "--seed", "4", "-o", str(out),
                 "--quiet"]) == 0
    assert out.read_bytes() == b"".join(iter_lines("cli", 4, 3000))


def test_sizes_reach_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    assert main(["simulate", "--cluster", "cli", "--events", "500", "--agents", "7", "--pods", "30",
                 "--rate", "200", "--start", "2027-01-01T00:00:00Z", "-o", str(out), "--quiet"]) == 0
    assert out.read_bytes() == b"".join(iter_lines("cli", 1, 500, agents=7, pods=30, rate=200.0,
                                                   start="2027-01-01T00:00:00Z"))


def test_json_summary_on_stdout_when_writing_a_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.jsonl"
    assert main(["simulate", "--cluster", "cli", "--events", "2000", "-o", str(out),
                 "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 2000 == sum(summary["by_type"].values())
    assert summary["by_type"]["offer.offered"] > 0


def test_dash_writes_lines_to_stdout_and_the_summary_to_stderr(
        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["simulate", "--cluster", "cli", "--events", "50", "-o", "-", "--format", "json"]) == 0
    captured = capfdbinary.readouterr()
    assert captured.out == b"".join(iter_lines("cli", 1, 50))
    assert json.loads(captured.err)["events"] == 50


def test_to_kafka_without_the_ingest_path_exits_2_with_advice(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import kmevents.ingest

    monkeypatch.delattr(kmevents.ingest, "produce_lines", raising=False)
    assert main(["simulate", "--cluster", "cli", "--events", "10", "--to-kafka"]) == 2
    err = capsys.readouterr().err
    assert "ingest path not available yet" in err and "kmevents ingest FILE" in err


def test_to_kafka_hands_every_line_to_the_ingest_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import kmevents.ingest

    got: list[bytes] = []

    def fake_produce(settings: object, lines: object) -> list[object]:
        got.extend(lines)  # type: ignore[call-overload]
        return []

    monkeypatch.setattr(kmevents.ingest, "produce_lines", fake_produce, raising=False)
    assert main(["simulate", "--cluster", "cli", "--events", "300", "--to-kafka", "--quiet"]) == 0
    assert got == list(iter_lines("cli", 1, 300))


@pytest.mark.parametrize("argv", [
    ["--cluster", "Bad_Name", "--events", "5", "-o", "-"],
    ["--cluster", "ok", "--events", "5", "--agents", "0", "-o", "-"],
    ["--cluster", "ok", "--events", "5", "--rate", "0", "-o", "-"],
    ["--cluster", "ok", "--events", "5", "--start", "yesterday", "-o", "-"],
])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    assert main(["simulate", *argv]) == 2


def test_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "kmevents simulate --cluster demo --events" in text and "--seed" in text


def test_events_refused_by_the_ingest_path_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import kmevents.ingest

    class Refused:
        index = 3
        errors = [("payload.status.state", "missing")]

    def fake_produce(settings: object, lines: object) -> list[object]:
        for _ in lines:  # type: ignore[attr-defined]
            pass
        return [Refused()]

    monkeypatch.setattr(kmevents.ingest, "produce_lines", fake_produce, raising=False)
    assert main(["simulate", "--cluster", "cli", "--events", "20", "--to-kafka", "--quiet"]) == 1
    assert "refused by the ingest path" in capsys.readouterr().err


def test_an_unreachable_broker_is_an_environment_error(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import kmevents.ingest

    class KafkaConnectionError(Exception):
        pass

    def fake_produce(settings: object, lines: object) -> list[object]:
        raise KafkaConnectionError("Unable to bootstrap")

    monkeypatch.setattr(kmevents.ingest, "produce_lines", fake_produce, raising=False)
    assert main(["simulate", "--cluster", "cli", "--events", "20", "--to-kafka", "--quiet"]) == 2
    assert "kmevents stack up" in capsys.readouterr().err


def test_profile_and_scale_reach_the_generator(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "large.jsonl"
    assert main(["simulate", "--cluster", "cli", "--events", "8000", "--profile", "large",
                 "--scale", "0.02", "-o", str(out), "--format", "json"]) == 0
    assert out.read_bytes() == b"".join(iter_lines("cli", 1, 8000, profile="large", scale=0.02))
    summary = json.loads(capsys.readouterr().out)
    assert (summary["profile"], summary["agents"], summary["pods"]) == ("large", 250, 2800)
    assert 6000 < summary["bootstrap_events"] < 7000


def test_sizes_the_profile_cannot_place_exit_2_before_any_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.jsonl"
    assert main(["simulate", "--cluster", "cli", "--events", "10", "--profile", "large",
                 "--agents", "10", "-o", str(out)]) == 2
    assert "give at least 7000 agents" in capsys.readouterr().err
    assert not out.exists()
    assert main(["simulate", "--cluster", "cli", "--events", "10", "--scale", "0",
                 "-o", str(out)]) == 2
    assert not out.exists()


@pytest.mark.parametrize("start", ["-2h", "2h", "now-2h"])
def test_start_takes_the_time_forms_of_every_command(start: str, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from kmevents.timespec import micros_of

    assert main(["simulate", "--cluster", "ok", "--events", "1", "--start", start, "-o", "-", "--quiet"]) == 0
    first = orjson.loads(capsys.readouterr().out.splitlines()[0])
    assert abs(micros_of(first["occurred_at"]) / 1e6 - (time.time() - 7200)) < 120


def test_start_yesterday_at_a_time_and_a_zoneless_iso_time_as_utc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--cluster", "ok", "--events", "1", "--start", "2027-01-01T00:00:00", "-o", "-",
                 "--quiet"]) == 0
    assert orjson.loads(capsys.readouterr().out.splitlines()[0])["occurred_at"].startswith("2027-01-01T00:00:00")
    assert main(["simulate", "--cluster", "ok", "--events", "1", "--start", "yesterday 14:05", "-o", "-",
                 "--quiet"]) == 0
    assert "T14:05:00" in orjson.loads(capsys.readouterr().out.splitlines()[0])["occurred_at"]
