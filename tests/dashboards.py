"""What deploy/ asks of /metrics: every PromQL expression of the Grafana dashboard and of the alerting
rules, and the metric and label names each one reads. Shared by the unit test (names from the code) and
the integration test (names from a real scrape)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "kmevents.json"
RULES = ROOT / "deploy" / "prometheus" / "kmevents-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "kmevents-rules.test.yaml"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return doc


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def expressions() -> list[tuple[str, str]]:
    """``(where, expr)`` of every panel target, template variable query and rule."""
    out = []
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]))
    for v in dashboard()["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
            assert m, f"variable {v['name']}: {q}"
            out.append((f"variable {v['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    for r in rules():
        out.append((f"rule {r['alert']}", r["expr"]))
    return out


def names(expr: str) -> tuple[set[str], set[str]]:
    """``(metrics, labels)`` an expression reads: series selectors' names, and the labels of its matchers
    and of its ``by``/``without``/``on``/``ignoring``/``group_*`` clauses. Grafana variables
    (``$cluster``) are taken as strings."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors [5m]
    labels: set[str] = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    for m in re.finditer(r"\{([^}]*)\}", e):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(1)))
    e = re.sub(r"\{[^}]*\}", " ", e)
    metrics = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        metrics.add(word)
    return metrics, labels


def exposition_names(text: str) -> tuple[set[str], set[str]]:
    """``(metrics, labels)`` of a /metrics body: each family's sample names (a counter's with ``_total``) and
    every label of its samples."""
    metrics: set[str] = set()
    labels: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            metrics.add(name + "_total" if kind == "counter" and not name.endswith("_total") else name)
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s", line)
            if m:
                metrics.add(m.group(1))
                labels |= set(re.findall(r'([a-zA-Z_]\w*)="', m.group(2) or ""))
    return metrics, labels
