"""The HTML report: figures from a replayed simulated log, and the page rendering in headless Chromium."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents.report import data, html
from kmevents.simulate import generate

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
def report() -> dict:
    events = list(generate(CLUSTER, 11, 12000, agents=12))
    return asyncio.run(data.collect(ListSource(events), CLUSTER, None, None)).as_dict()


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
    lanes = set(report["lanes"])
    assert "cluster" in lanes and any(x.startswith("agent-") for x in lanes)
    assert any(it["kind"] == "alert" for it in report["timeline"])


def test_the_html_is_self_contained(report: dict) -> None:
    page = html.render(report)
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<script") == 2 and "</script>" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed "
                    "(bash scripts/bootstrap.sh --dev installs it)")
def test_the_timeline_and_charts_render_in_headless_chromium(report: dict, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html.render(report), encoding="utf-8")
    profile = tmp_path / "profile"
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    dom = r.stdout
    assert 'data-rendered="true"' in dom, r.stderr[-2000:]
    lanes = re.findall(r'<g class="lane" data-lane="([^"]+)"', dom)
    assert set(lanes) == set(report["lanes"])
    marks = len(re.findall(r'class="mark ', dom))
    assert marks == len(report["timeline"])
    assert dom.count('class="chart capacity"') == len(report["capacity_roles"]) + min(24, len(report["capacity_agents"]))
    assert len(re.findall(r'<polyline points="[^"]+"', dom)) >= 3
