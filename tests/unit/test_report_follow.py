"""A report whose window ends before the log does follows what the window left open for
``--follow`` after it, and reads no further where the touched-entity index says nothing later
happened by then: the same report with the index, without it, and from the log's start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from kmevents.replay import archive

from kmevents.cli import main
from kmevents.report import data
from kmevents.timespec import micros_of
from tests.unit import test_report_from_snapshot
from tests.unit.replay.test_occurrence import Indexed
from tests.unit.store.test_snapshot_deltas import InMemory
from tests.unit.test_report_from_snapshot import CLUSTER, SHORT, ListSource, at

#: the simulated log and its snapshots (module-scoped fixtures: the report tests' own)
events, store = test_report_from_snapshot.events, test_report_from_snapshot.store

SEC = 1_000_000  # (the simulated log spans about four minutes)


def report(events: list[dict[str, Any]], start: str, end: str, snapshots: Any = None,
           follow_us: int | None = data.FOLLOW_US) -> tuple[dict[str, Any], data.ReportData, ListSource]:
    src = ListSource(events)
    d = asyncio.run(data.collect(src, CLUSTER, start, end, thresholds=SHORT, snapshots=snapshots,
                                 follow_us=follow_us))
    return d.as_dict(), d, src


@pytest.mark.parametrize(("lo", "hi", "follow_s"), [(0.2, 0.3, 10), (0.45, 0.5, 20), (0.3, 0.6, 5),
                                                    (0.7, 0.72, 15), (0.1, 0.15, 0)])
def test_a_followed_window_reads_less_with_the_index_and_says_the_same(events: list[dict[str, Any]],
                                                                       store: InMemory, lo: float, hi: float,
                                                                       follow_s: float) -> None:
    start, end = at(events, lo), at(events, hi)
    follow = int(follow_s * SEC)
    whole, _, whole_src = report(events, start, end, follow_us=follow)  # from the log's start, no index
    plain, _, plain_src = report(events, start, end, store, follow_us=follow)  # from a snapshot, no index
    indexed, d, src = report(events, start, end, Indexed(store, [orjson.dumps(e) for e in events]), follow)
    assert orjson.dumps(indexed) == orjson.dumps(plain) == orjson.dumps(whole)
    assert whole_src.read == len(events) and plain_src.read <= len(events)  # (both to the log's end)
    assert d.read_to is not None and d.read_to < len(events) - 1 and src.read < plain_src.read
    # nothing left unread happened by the end of the follow
    bound = micros_of(end) + follow
    assert all(micros_of(e["occurred_at"]) > bound for e in events[d.read_to + 1:])


def test_what_the_window_left_open_is_followed_as_long_as_asked(events: list[dict[str, Any]]) -> None:
    """Pods created in the window that reach Running after it, RCs that recover after it: measured
    when it happened within the follow, open (not measured, still waiting) after it."""
    found = False
    for lo, hi in ((0.2, 0.25), (0.4, 0.45), (0.6, 0.65), (0.5, 0.52), (0.3, 0.32)):
        start, end = at(events, lo), at(events, hi)
        runs = [report(events, start, end, follow_us=f)[0] for f in (0, 5 * SEC, 30 * SEC, None)]
        counts = [r["pod_latency"]["count"] for r in runs]
        waiting = [sum(1 for x in r["reschedule"] if x["seconds"] is None) for r in runs]
        assert counts == sorted(counts) and waiting == sorted(waiting, reverse=True)
        for r in runs:  # the window's own facts do not depend on how long it is followed
            assert r["events_in_window"] == runs[-1]["events_in_window"] and r["alerts"] == runs[-1]["alerts"]
            assert r["marks"] == runs[-1]["marks"] and r["availability"] == runs[-1]["availability"]
        found = found or counts[0] < counts[-1] or waiting[0] > waiting[-1]
    assert found  # (some window left something open: else this test shows nothing)


def test_follow_on_the_command_line(tmp_path: Path, events: list[dict[str, Any]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    arc = tmp_path / "c.kmarch"
    archive.write(arc, ListSource(events[:3000]).records, cluster=CLUSTER, partition=0, topic="ev", covers_from=0)
    start, end = at(events[:3000], 0.3), at(events[:3000], 0.4)
    base = ["report", "--source", str(arc), "--from", start, "--to", end, "--format", "json"]
    assert main([*base, "--follow", "end"]) == 0
    whole = orjson.loads(capsys.readouterr().out)
    assert main([*base, "--follow", "0s"]) == 0
    now = orjson.loads(capsys.readouterr().out)
    assert now["events_in_window"] == whole["events_in_window"] > 0
    assert now["pod_latency"]["count"] <= whole["pod_latency"]["count"]
    assert main([*base, "--follow", "soon"]) == 2
    assert "duration 'soon' is not understood" in capsys.readouterr().err
