"""The report: its figures from a replayed simulated log, its JSON, and the page as headless Chromium draws it."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from html import escape
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents.cli import main
from kmevents.reducer import fold
from kmevents.report import axis, data, html, timeline
from kmevents.simulate import generate
from kmevents.timespec import iso_of_micros, micros_of, parse_time
from tests import pngs

CLUSTER = "rpt"


class ListSource(Source):
    """The simulator's events as a log in memory (offsets 0..n-1)."""

    name = "memory"
    partition = 0

    def __init__(self, events: list[dict]) -> None:
        self.records = [LogRecord(i, 1_767_225_600_000 + i, CLUSTER.encode(), orjson.dumps(e))
                        for i, e in enumerate(events)]

    async def covers(self) -> tuple[int, int]:
        return 0, len(self.records) - 1

    async def chain_start(self) -> str | None:
        return None

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        yield [r for r in self.records if r.offset >= start and (end is None or r.offset <= end)]


@pytest.fixture(scope="module")
def events() -> list[dict]:
    # 30 agents (32 hosts with the ones added later): more than a page of capacity charts; the log
    # holds a master failover, k8sm leader changes, lost and drained agents, eviction storms.
    return list(generate(CLUSTER, 11, 16000, agents=30))


@pytest.fixture(scope="module")
def collected(events: list[dict]) -> data.ReportData:
    return asyncio.run(data.collect(ListSource(events), CLUSTER, None, None))


@pytest.fixture(scope="module")
def report(collected: data.ReportData) -> dict:
    return collected.as_dict()


def _hosts(events: list[dict]) -> dict[str, str]:
    return {e["payload"]["agent"]["id"]: e["payload"]["agent"]["hostname"] for e in events
            if e["type"] in ("agent.added", "agent.reregistered")}


def test_the_report_measures_pod_latency_reschedules_availability_and_capacity(report: dict) -> None:
    lat = report["pod_latency"]
    assert lat["count"] > 50 and 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert report["reschedule"], "the simulated log loses agents"
    assert any(r["seconds"] is not None for r in report["reschedule"])
    assert report["availability"] and all(0 <= v <= 1 for v in report["availability"].values())
    assert any(v > 0 for v in report["availability"].values())
    some = next(iter(report["capacity_agents"].values()))
    assert len(some) > 10 and all(row[1] >= row[2] for row in some)  # allocated never above total
    assert set(report["capacity_roles"]) >= {"*"}


def test_master_failovers_and_leader_changes_are_the_folds_and_lead_the_timeline(events: list[dict],
                                                                                 report: dict) -> None:
    st, _ = fold(events, cluster=CLUSTER)
    folded = st.clusters[CLUSTER]["failovers"]
    masters = [x for x in report["leaders"] if x["kind"] == "master" and x["failover"]]
    assert folded and [(x["t"], x["from"], x["to"]) for x in masters] == [(f["at"], f["from"], f["to"])
                                                                          for f in folded]
    assert all("master failover: master-" in x["label"] for x in masters)
    changes = [e for e in events if e["type"] == "scheduler.leader_elected" and e["payload"]["previous"]]
    assert [x["to"] for x in report["leaders"] if x["kind"] == "scheduler" and x["failover"]] == [
        e["payload"]["identity"] for e in changes]
    lanes = report["lanes"]
    assert lanes[0]["id"] == timeline.FAILOVERS
    alert_lanes = [ln for ln in lanes if ln["group"] == "alert"]
    assert alert_lanes[0]["rule"] == "master_failover"
    ranks = [timeline.SEVERITY_RANK[ln["severity"]] for ln in alert_lanes if ln["rule"] not in timeline.LEADER_RULES]
    assert ranks == sorted(ranks), "the most severe rules come first"
    groups = [ln["group"] for ln in lanes]
    assert groups.index("cluster") > max(i for i, g in enumerate(groups) if g == "alert")


def test_each_alert_rule_has_one_lane_and_each_alert_lasts_from_firing_to_resolved(report: dict) -> None:
    per_rule = Counter(a["rule"] for a in report["alerts"])
    assert len(per_rule) >= 4 and per_rule["service_endpoints_mismatch"] + per_rule["rc_below_desired"] > 5
    lanes = {ln["id"]: ln for ln in report["lanes"]}
    for rule, n in per_rule.items():
        assert lanes["alert:" + rule]["label"] == f"{rule} ({n})"
    assert "alerts" not in lanes  # the one lane every rule shared
    for a in report["alerts"]:
        assert a["to"] is None or a["from"] <= a["to"]
    assert any(a["to"] is not None for a in report["alerts"])


def test_a_lost_agent_is_down_from_its_removal_until_it_comes_back(events: list[dict], report: dict) -> None:
    hosts = _hosts(events)
    agents = {a["host"]: a for a in report["agents"]}
    removed = [e for e in events if e["type"] == "agent.removed"]
    assert removed
    for e in removed:
        host = hosts[e["payload"]["agent_id"]]
        later = [x for x in events if x["type"] == "agent.reregistered" and x["payload"]["agent"]["id"] ==
                 e["payload"]["agent_id"] and x["occurred_at"] > e["occurred_at"]]
        period = next(p for p in agents[host]["down"] if p["status"] == "removed" and p["from"] == e["occurred_at"])
        if later:
            assert period["to"] == later[0]["occurred_at"] and not period["open"]
        else:
            assert period["open"] and period["to"] == report["end"]
        assert period["why"] == e["payload"].get("reason")


def test_every_agent_of_the_window_is_in_the_report_with_its_own_lane(events: list[dict], report: dict) -> None:
    hosts = set(_hosts(events).values())
    assert len(hosts) > 24  # more than the capacity charts used to show
    assert {a["host"] for a in report["agents"]} == hosts
    assert hosts <= {ln["id"] for ln in report["lanes"] if ln["group"] == "agent"}
    assert set(report["capacity_agents"]) == hosts


def test_a_window_shows_the_agents_of_that_window_only(events: list[dict]) -> None:
    added = {e["payload"]["agent"]["hostname"]: e["occurred_at"] for e in reversed(events) if e["type"] == "agent.added"}
    end = sorted(added.values())[-3]  # the last two agents join after the window
    sub = asyncio.run(data.collect(ListSource(events), CLUSTER, None, end)).as_dict()
    hosts = {a["host"] for a in sub["agents"]}
    assert hosts == {h for h, t in added.items() if t <= end}
    assert set(sub["capacity_agents"]) <= hosts


def test_past_the_limit_quiet_agents_share_one_lane_and_the_others_keep_theirs() -> None:
    agents = [{"host": f"a{i}", "down": []} for i in range(10)]
    agents[3]["down"] = [{"from": "x"}]
    lanes = timeline.lanes({}, agents, {"a5": 2, "node-x": 1}, agent_lanes=4)
    ids = [ln["id"] for ln in lanes]
    assert ids == ["failovers", "cluster", "a3", "a5", "node-x", "quiet-agents"]
    assert lanes[-1]["label"] == "8 quiet agents" and "a0" in lanes[-1]["hosts"]
    assert [ln["id"] for ln in timeline.lanes({}, agents, {}, agent_lanes=10)][2:] == [f"a{i}" for i in range(10)]


def test_marks_count_every_notable_event_and_leave_none_out(events: list[dict], report: dict) -> None:
    notable = [e for e in events if e["type"] in data.NOTABLE or (
        e["type"] == "task.status_updated" and e["payload"]["status"]["state"] in data.BAD_STATES)]
    assert report["notable_events"] == len(notable) == len(report["events"])
    drawn = sum(m["n"] for m in report["marks"])
    assert drawn == len([e for e in notable if e["type"] not in data.LEADER_TYPES])
    assert len(report["marks"]) < drawn and max(m["n"] for m in report["marks"]) > 3  # bursts share a mark
    assert {m["lane"] for m in report["marks"]} <= {ln["id"] for ln in report["lanes"]}
    last = max(micros_of(e["occurred_at"]) for e in notable if e["type"] not in data.LEADER_TYPES)
    width = (micros_of(report["end"]) - micros_of(report["start"])) / timeline.SLICES
    assert 0 <= last - max(micros_of(m["t"]) for m in report["marks"]) < width  # the end is drawn too


def test_the_json_lists_the_first_events_and_counts_the_rest(collected: data.ReportData) -> None:
    small = data.ReportData(collected.cluster, collected.lo, collected.hi, events=collected.events[:10],
                            notable=collected.notable, marks=collected.marks)
    doc = small.as_dict()
    assert len(doc["events"]) == 10 and doc["events_not_listed"] == collected.notable - 10
    assert "events" not in small.as_dict(events=False)


# -- the time axis -----------------------------------------------------------------------------

def _us(t: str) -> int:
    return parse_time(t).micros


def _ticks(a: str, b: str, zone: str) -> list[tuple[str, str | None, str]]:
    return [(t["label"], t["date"], t["t"]) for t in axis.ticks(_us(a), _us(b), axis.zone(zone))]


def test_ticks_fall_on_round_times_of_the_readers_zone() -> None:
    assert [x[0] for x in _ticks("2026-01-01T00:00:00.0004Z", "2026-01-01T00:23:00Z", "UTC")][:3] == [
        "00:02", "00:04", "00:06"]
    berlin = _ticks("2026-01-01T00:00:00.0004Z", "2026-01-01T00:23:00Z", "Europe/Berlin")
    assert berlin[0] == ("01:02", "2026-01-01", "2026-01-01T00:02:00.000000Z")
    assert [x[1] for x in berlin[1:]] == [None] * (len(berlin) - 1)
    kolkata = _ticks("2026-01-01T00:00:00Z", "2026-01-01T07:00:00Z", "Asia/Kolkata")
    assert kolkata[0] == ("06:00", "2026-01-01", "2026-01-01T00:30:00.000000Z") and kolkata[1][0] == "07:00"
    kathmandu = _ticks("2026-01-01T00:00:00Z", "2026-01-01T07:00:00Z", "Asia/Kathmandu")
    assert kathmandu[0] == ("06:00", "2026-01-01", "2026-01-01T00:15:00.000000Z")
    days = _ticks("2025-12-31T23:00:00Z", "2026-01-01T02:00:00Z", "UTC")
    assert [d for _, d, _ in days if d] == ["2025-12-31", "2026-01-01"]  # the date at midnight
    assert axis.caption(_us("2026-03-29T00:00:00Z"), _us("2026-03-29T03:00:00Z"),
                        axis.zone("Europe/Berlin")) == "Europe/Berlin (UTC+01:00 to UTC+02:00)"


def test_ticks_follow_the_wall_clock_across_a_dst_switch() -> None:
    spring = _ticks("2026-03-29T00:00:00Z", "2026-03-29T03:00:00Z", "Europe/Berlin")
    assert [x[0] for x in spring] == ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30", "05:00"]
    autumn = _ticks("2026-10-25T00:00:00Z", "2026-10-25T03:00:00Z", "Europe/Berlin")
    assert [x[0] for x in autumn] == ["02:00", "02:30", "02:00", "02:30", "03:00", "03:30", "04:00"]  # twice
    ny = _ticks("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z", "America/New_York")
    assert [x[0] for x in ny] == ["00:00", "12:00"] * 3


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
         "America/St_Johns"]


@settings(max_examples=300, deadline=None)
@given(lo=st.integers(_us("2000-01-01T00:00:00Z"), _us("2040-01-01T00:00:00Z")),
       span=st.integers(1_000_000, 90 * 86400 * 1_000_000), zone=st.sampled_from(ZONES))
def test_ticks_lie_in_the_window_in_order_each_at_a_round_time_of_the_zone(lo: int, span: int, zone: str) -> None:
    tz = axis.zone(zone)
    ts = axis.ticks(lo, lo + span, tz)
    us = [_us(t["t"]) for t in ts]
    assert us == sorted(set(us)) and all(lo <= u <= lo + span for u in us)
    assert min(5, span // 1_000_000) <= len(ts) <= 24  # (the finest spacing is a second)
    step = next((x for x in reversed(axis.STEPS) if max(span, 1_000_000) / 1e6 / x >= 6), axis.STEPS[0])
    dates = []
    for t, u in zip(ts, us, strict=True):
        wall = dt.datetime.fromtimestamp(u / 1e6, tz=dt.UTC).astimezone(tz)
        assert t["label"] == wall.strftime("%b %d" if step >= 86400 else "%H:%M:%S" if step < 60 else "%H:%M")
        seconds = wall.hour * 3600 + wall.minute * 60 + wall.second
        assert seconds % min(step, 86400) == 0 and wall.microsecond == 0
        dates.append(wall.strftime("%Y-%m-%d"))
    assert [t["date"] for t in ts] == [d if i == 0 or d != dates[i - 1] else None for i, d in enumerate(dates)]


def test_an_unknown_zone_is_refused_naming_the_closest() -> None:
    from kmevents.errors import UsageError

    with pytest.raises(UsageError, match="did you mean Europe/Berlin"):
        axis.zone("Europe/Berln")
    assert axis.zone(None) is axis.UTC and axis.zone("utc") is axis.UTC


# -- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive_file(events: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kmevents.replay import archive

    path = tmp_path_factory.mktemp("report") / "rpt.kmarch"
    archive.write(path, ListSource(events[:4000]).records, cluster=CLUSTER, partition=0, topic="ev", covers_from=0)
    return path


def test_report_format_json_writes_the_reports_data(archive_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--source", str(archive_file), "--format", "json", "--tz", "Asia/Kolkata"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["cluster"] == CLUSTER and doc["zone"]["caption"] == "Asia/Kolkata (UTC+05:30)"
    assert doc["axis"] and doc["lanes"][0]["id"] == "failovers" and doc["events"] and doc["agents"]
    out = tmp_path / "r.json"
    assert main(["report", "--source", str(archive_file), "--format", "json", "-o", str(out)]) == 0
    assert orjson.loads(out.read_bytes())["zone"]["name"] == "UTC"
    assert main(["report", "--source", str(archive_file), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_report_refuses_an_unknown_zone_and_html_without_a_file(archive_file: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--source", str(archive_file), "--tz", "Mars/Olympus", "-o", "x.html"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    assert main(["report", "--source", str(archive_file)]) == 2
    assert "add -o report.html" in capsys.readouterr().err


# -- the page ------------------------------------------------------------------------------------

def test_the_html_is_self_contained(report: dict) -> None:
    page = html.render(report)
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<script") == 2 and "</script>" in page
    blob = page[page.index('<script id="report-data" type="application/json">') + 49:]
    embedded = orjson.loads(blob[:blob.index("</script>")].replace("<\\/", "</"))
    assert "events" not in embedded and embedded["marks"] == report["marks"]  # no list of events


def test_the_page_writes_times_in_the_readers_zone(collected: data.ReportData) -> None:
    collected.tz = axis.zone("Europe/Berlin")
    try:
        page = html.render(collected.as_dict())
    finally:
        collected.tz = axis.UTC
    first = next(x for x in collected.leaders if x["failover"])
    local = axis.local_text(micros_of(first["t"]), axis.zone("Europe/Berlin"))
    assert local.endswith(" CET") and f"<li>{local[11:19]}: {escape(first['label'])}" in page
    assert "Europe/Berlin (UTC+01:00)" in page


CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(bash scripts/bootstrap.sh --dev installs it)")


def _chromium(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", *args, url], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def berlin(collected: data.ReportData) -> dict:
    collected.tz = axis.zone("Europe/Berlin")
    try:
        return collected.as_dict()
    finally:
        collected.tz = axis.UTC


@needs_chromium
def test_the_timeline_has_an_axis_a_legend_failover_marks_and_every_lane_in_headless_chromium(
        berlin: dict, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html.render(berlin), encoding="utf-8")
    r = _chromium(page.as_uri(), tmp_path, "--dump-dom")
    dom = r.stdout
    assert 'data-rendered="true"' in dom, r.stderr[-2000:]
    timeline_svg = dom[dom.index('class="chart timeline"'):dom.index("</svg>", dom.index('class="chart timeline"'))]
    # the axis: every tick, top and bottom, in Berlin's time, its date, and the zone it is written in
    labels = re.findall(r'<text [^>]*class="tick"[^>]*>([^<]+)</text>', timeline_svg)
    assert labels == [t["label"] for t in berlin["axis"] for _ in (0, 1)]
    assert berlin["axis"][0]["label"].startswith("01:")  # UTC midnight is 01:00 in Berlin
    assert re.findall(r'class="tick-date"[^>]*>([^<]+)<', timeline_svg) == ["2026-01-01"]
    assert "time (Europe/Berlin (UTC+01:00))" in timeline_svg
    assert len(re.findall(r'<line [^>]*class="grid"', timeline_svg)) == len(berlin["axis"])
    # the legend
    keys = re.findall(r'class="legend-item" data-key="([^"]+)"', timeline_svg)
    assert keys == ["master-failover", "scheduler-change", "elected", "master-down", "alert-critical",
                    "alert-warning", "alert-info", "agent-removed", "agent-draining", "agent-deactivated",
                    "event-bad", "event"]
    # the failovers: one mark each (beside the legend's), a guide across the lanes, where its time is
    masters = [x for x in berlin["leaders"] if x["kind"] == "master" and x["failover"]]
    scheds = [x for x in berlin["leaders"] if x["kind"] == "scheduler" and x["failover"]]
    assert masters and scheds
    assert timeline_svg.count('class="failover master"') == 1 + len(masters)
    assert timeline_svg.count('class="failover scheduler"') == 1 + len(scheds)
    guides = [float(x) for x in re.findall(r'<line x1="([\d.]+)"[^>]*class="failover-guide"', timeline_svg)]
    assert len(guides) == len(masters)
    ticks = [float(x) for x in re.findall(r'<line x1="([\d.]+)"[^>]*class="grid"', timeline_svg)]
    for g, m in zip(guides, masters, strict=True):  # between the ticks around its time
        before = [x for t, x in zip(berlin["axis"], ticks, strict=True) if t["t"] <= m["t"]]
        after = [x for t, x in zip(berlin["axis"], ticks, strict=True) if t["t"] > m["t"]]
        assert (not before or before[-1] <= g) and (not after or g <= after[0])
    # one lane per lane of the data, in its order; the alerts and the down periods
    assert re.findall(r'<g class="lane" data-lane="([^"]+)"', timeline_svg) == [ln["id"] for ln in berlin["lanes"]]
    assert len(re.findall(r'class="alert (?:crit|warn|info)"', timeline_svg)) == 3 + len(berlin["alerts"])
    removed = sum(1 for a in berlin["agents"] for p in a["down"] if p["status"] == "removed")
    assert removed and timeline_svg.count('class="down removed"') == 1 + removed
    assert len(re.findall(r'class="mark (?:bad|ev)"', timeline_svg)) == 2 + len(berlin["marks"])
    # capacity: every role, and the agents a page at a time, saying how many there are
    n = len(berlin["capacity_agents"])
    assert n > 24
    assert dom.count('class="chart capacity"') == len(berlin["capacity_roles"]) + 24
    assert f"agents 1\u201324 of {n} (page 1 of 2)" in dom
    last = _chromium(page.as_uri() + "#agents-page=2", tmp_path, "--dump-dom").stdout
    assert last.count('class="chart capacity"') == len(berlin["capacity_roles"]) + n - 24
    assert f"agents 25\u2013{n} of {n} (page 2 of 2)" in last


@needs_chromium
def test_the_screenshot_shows_the_failovers_and_the_down_agents(berlin: dict, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html.render(berlin), encoding="utf-8")
    shot = tmp_path / "report.png"
    r = _chromium(page.as_uri(), tmp_path, "--window-size=1250,1400", f"--screenshot={shot}")
    assert shot.exists(), r.stderr[-2000:]
    img = pngs.read(shot)
    # (look at it: tmp_path / "report.png"; or pngs.read(shot).crop(...).save(...))
    red = (0xD5, 0x00, 0x00)  # .failover.master and its guide
    masters = [x for x in berlin["leaders"] if x["kind"] == "master" and x["failover"]]
    columns = {x for x in range(img.width) if img.count(red, box=(x, 400, x + 1, 1400), tolerance=30) > 40}
    assert len(columns) >= len(masters), "a red guide runs down the lanes at each master failover"
    brown = (160, 145, 140)  # .down.removed (#5d4037 at 55% on the lanes' grey)
    assert img.count(brown, box=(240, 400, 1250, 1400), tolerance=8) > 2000, "agents' down periods are drawn"


def test_a_window_outside_the_log_is_refused_with_the_logs_span(archive_file: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A report of a window after the log's last event drew an empty page with agents in it."""
    assert main(["report", "--source", str(archive_file), "--from", "2030-01-01T00:00:00Z", "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert "holds none of the log's events: they happened 2026-" in err and "--from/--to" in err


def test_a_window_given_at_both_ends_outside_the_log_is_refused_after_the_replay(
        archive_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --from and --to the log is not scanned for its span before the replay (an eighth of
    a report's time at the large profile): the replay learns it, and refuses the same way."""
    assert main(["report", "--source", str(archive_file), "--from", "2030-01-01T00:00:00Z", "--to",
                 "2030-01-02T00:00:00Z", "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert "holds none of the log's events: they happened 2026-" in err and "--from/--to" in err


def test_the_running_pods_per_agent_the_report_keeps_are_what_a_scan_of_the_state_finds(events: list[dict]) -> None:
    """At every agent removal (where the report reads them), and at every thousandth event after
    the first (the report reads them from the state then), the pods it holds as Running on each
    agent are those a scan of the state's pods finds."""
    from kmevents.replay.engine import Target, replay

    from kmevents.reducer.conditions import condition

    checked = {"removals": 0, "other": 0}

    class Checking(data.Collector):
        def hook(self, rec: Any, ev: dict[str, Any], anns: list[dict[str, Any]], st: Any) -> None:
            super().hook(rec, ev, anns, st)
            removal = ev.get("type") == "agent.removed"
            if self.running is None:  # read from the state when the first agent is lost, kept from then on
                assert not removal and checked["removals"] == 0, rec.offset
                return
            if removal or rec.offset % 1000 == 0:
                scan: dict[str, set[str]] = {}
                for pid, p in st.pods.items():
                    if p.get("agent_id") and condition(p) == "Running":
                        scan.setdefault(p["agent_id"], set()).add(pid)
                assert {a: pods for a, pods in self.running.items() if pods} == scan, rec.offset
                checked["removals" if removal else "other"] += 1

    lo, hi = micros_of(events[0]["occurred_at"]), micros_of(events[-1]["occurred_at"])
    asyncio.run(replay(ListSource(events), CLUSTER, Target(), on_event=Checking(CLUSTER, lo, hi).hook, progress=False))
    assert checked["removals"] >= 1 and checked["other"] >= 10


def test_a_pod_created_again_under_its_name_has_the_latency_of_its_new_creation() -> None:
    """A pod deleted and created again under the same name (a new uid) is a new pod: its time
    to Running counts from its own creation, not from the first one's (which ran already)."""
    import copy

    evs = list(generate(CLUSTER, 5, 3000, agents=5))
    ups: dict[str, list[dict]] = {}
    deleted = set()
    for e in evs:
        p = e["payload"].get("pod") or {}
        pid = f"{p.get('namespace')}/{p.get('name')}"
        if e["type"] == "pod.upserted":
            ups.setdefault(pid, []).append(e)
        elif e["type"] == "pod.deleted":
            deleted.add(pid)
    pid = next(i for i in sorted(deleted) if {u["payload"]["pod"]["phase"] for u in ups[i]} >= {"Pending", "Running"})
    pending = next(u for u in ups[pid] if u["payload"]["pod"]["phase"] == "Pending")
    running = next(u for u in ups[pid] if u["payload"]["pod"]["phase"] == "Running")
    last = micros_of(evs[-1]["occurred_at"])
    again = []
    for i, (e, dt_us) in enumerate(((pending, 1_000_000), (running, 3_500_000))):
        x = copy.deepcopy(e)
        x["event_id"] = f"{i:032x}"
        x["dedupe_key"] = f"again-{i}"
        x["occurred_at"] = iso_of_micros(last + dt_us)
        x["payload"]["pod"]["uid"] = "00000000-0000-4000-8000-000000000001"
        x["payload"]["pod"]["resource_version"] = str(10_000_000 + i)
        x["correlation_id"] = x["payload"]["pod"]["uid"]
        again.append(x)
    d = asyncio.run(data.collect(ListSource(evs + again), CLUSTER, iso_of_micros(last + 1), None))
    assert d.pod_latency == [2.5]


def test_availability_lists_the_services_that_existed_in_the_window(events: list[dict]) -> None:
    """A service deleted before the window is not in its availability; one deleted inside it is,
    with its share of the window up to its deletion."""
    i, gone = next((i, e) for i, e in enumerate(events) if e["type"] == "service.deleted")
    sid = f"{gone['payload']['namespace']}/{gone['payload']['name']}"
    t = micros_of(gone["occurred_at"])
    later = asyncio.run(data.collect(ListSource(events), CLUSTER, iso_of_micros(t + 1), None))
    assert later.availability and sid not in later.availability
    around = asyncio.run(data.collect(ListSource(events), CLUSTER, iso_of_micros(t - 5_000_000),
                                      iso_of_micros(t + 5_000_000)))
    assert sid in around.availability and around.availability[sid] <= 0.5

