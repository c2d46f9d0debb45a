"""deploy/: the Grafana dashboard loads as one and asks only for metrics kmevents serves; the Prometheus
alerting rules pass promtool (check and their own unit tests). A real scrape of both /metrics checks the
same names in tests/integration/test_deploy_metrics.py."""

from __future__ import annotations

import re
import shutil
import subprocess

import jsonschema
import pytest

from tests import dashboards
from tests.dashboards import ROOT

#: Enough of Grafana's dashboard model (schemaVersion 39) to refuse what Grafana would not load or would
#: show empty: a panel without a place, a query without a data source, two panels with one id.
SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {"type": "array", "items": {
            "type": "object", "required": ["name", "type"]}}}},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "type", "title", "gridPos"],
            "properties": {
                "id": {"type": "integer"},
                "type": {"enum": ["row", "timeseries", "stat", "gauge", "table", "bargauge"]},
                "title": {"type": "string", "minLength": 1},
                "gridPos": {"type": "object", "required": ["x", "y", "w", "h"], "properties": {
                    "x": {"type": "integer", "minimum": 0, "maximum": 23},
                    "y": {"type": "integer", "minimum": 0},
                    "w": {"type": "integer", "minimum": 1, "maximum": 24},
                    "h": {"type": "integer", "minimum": 1}}},
                "targets": {"type": "array", "items": {
                    "type": "object", "required": ["refId", "expr", "datasource"],
                    "properties": {"expr": {"type": "string", "minLength": 1},
                                   "datasource": {"const": {"type": "prometheus", "uid": "${datasource}"}}}}},
            },
            "if": {"properties": {"type": {"not": {"const": "row"}}}},
            "then": {"required": ["targets", "datasource", "description"],
                     "properties": {"targets": {"minItems": 1}}},
        }},
    },
}


def test_the_dashboard_loads_as_a_grafana_dashboard_with_every_panel_in_its_own_place() -> None:
    doc = dashboards.dashboard()
    jsonschema.validate(doc, SCHEMA)
    panels = doc["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    titles = " ".join(p["title"].lower() for p in panels)
    for what in ("lag", "freshness", "events per second", "drift", "running tasks", "per role"):
        assert what in titles, f"no panel about {what}"


def test_the_expression_reader_finds_metrics_and_labels_and_nothing_else() -> None:
    metrics, labels = dashboards.names(
        'sum by (partition) (rate(kmevents_a_total{x="y", cluster=~"$cluster"}[5m])) * 60 / on (p) group_left '
        'kmevents_b and time() - min(kmevents_c) > 0.5 or vector(1) offset 5m')
    assert metrics == {"kmevents_a_total", "kmevents_b", "kmevents_c"}
    assert labels == {"partition", "x", "cluster", "p"}


def _served_by_the_code() -> tuple[set[str], set[str]]:
    """Metric families and labels the API's, the worker's and the backfill follower's collectors declare (read
    from their source)."""
    metrics: set[str] = set()
    labels: set[str] = set()
    for path in ("kmevents/api/observe.py", "processors/metrics.py", "replay/backfill_metrics.py"):
        src = (ROOT / path).read_text()
        for kind, name in re.findall(r'(Gauge|Counter)MetricFamily\(\s*"(kmevents_\w+)"', src):
            metrics.add(name + "_total" if kind == "Counter" and not name.endswith("_total") else name)
        for name in re.findall(r'agg\.family\("\w+",\s*"(kmevents_\w+)"', src):
            metrics.add(name)
        for group in re.findall(r"labels=\[([^\]]*)\]", src) + re.findall(r'agg\.family\([^\]]*\[([^\]]*)\]', src):
            labels |= set(re.findall(r'"(\w+)"', group))
        for name in re.findall(r'\(\s*"(kmevents_worker_\w+)",\s*s\.\w+', src):  # the worker's counters
            metrics.add(name)
        for name in re.findall(r'\(\s*"(kmevents_backfill_\w+)",', src):  # the follower's (name, doc, value)
            metrics.add(name)
    return metrics, labels


def test_every_metric_and_label_the_dashboard_and_the_rules_read_is_one_kmevents_declares() -> None:
    served, served_labels = _served_by_the_code()
    assert {"kmevents_processor_lag", "kmevents_worker_lag", "kmevents_replays_refused_total",
            "kmevents_worker_events_total", "kmevents_role_resources", "kmevents_backfill_failing_seconds",
            "kmevents_backfill_records_built_total"} <= served
    for where, expr in dashboards.expressions():
        metrics, labels = dashboards.names(expr)
        assert metrics, f"{where}: reads no metric: {expr}"
        assert metrics <= served, f"{where}: {sorted(metrics - served)} are not served by kmevents"
        assert labels <= served_labels | dashboards.TARGET_LABELS, f"{where}: labels {sorted(labels - served_labels)}"


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus package; "
                    "bash scripts/bootstrap.sh --dev installs it)")
def test_promtool_accepts_the_rules_and_each_alert_fires_when_its_unit_tests_say() -> None:
    check = subprocess.run([str(PROMTOOL), "check", "rules", str(dashboards.RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(dashboards.rules())} rules found" in check.stdout
    run = subprocess.run([str(PROMTOOL), "test", "rules", dashboards.RULE_TESTS.name],
                         cwd=dashboards.RULE_TESTS.parent, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    tested = set(re.findall(r"alertname: (\w+)", dashboards.RULE_TESTS.read_text()))
    assert tested == {r["alert"] for r in dashboards.rules()}, "every rule has a unit test"
