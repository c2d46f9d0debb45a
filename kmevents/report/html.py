"""The report as one self-contained HTML file: inline CSS, inline data, an inline script drawing SVG.

No external asset is referenced (no fonts, scripts, images or styles from
anywhere): the file opens offline and can be attached to a post-mortem. The
page opens with the facts a reader wants first (the failovers, how many agents
went down, which rules fired), then the incident timeline and the capacity
charts, drawn as SVG by the inline script (``script.py``) from the embedded
JSON, which then marks ``<body data-rendered="true">``. The service levels and
the table of every agent are plain HTML. Times are written in the report's
zone (``report --tz``, UTC by default).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import orjson

from kmevents import __version__
from kmevents.report import axis, timeline
from kmevents.report.script import SCRIPT
from kmevents.timespec import micros_of

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}.muted{color:#777}.chart{display:block;margin:6px 0 14px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:8px}
svg text{font-size:11px;fill:#333}.lane-label.crit{fill:#b71c1c}
.lane-bg.even{fill:#fafafa}.lane-bg.odd{fill:#f1f3f4}
.time-axis .grid{stroke:#cfd8dc;stroke-width:1}.tick{fill:#455a64}svg .tick-date{font-weight:600;fill:#263238}
svg .axis-caption{font-weight:600}.axis{stroke:#999;stroke-width:1}
.failover.master{fill:#d50000;stroke:#7f0000}.failover.scheduler{fill:#6a1b9a;stroke:#38006b}
.elected{fill:#fff;stroke:#555;stroke-width:1.5}.failover-guide{stroke:#d50000;stroke-width:2;stroke-dasharray:5 3;shape-rendering:crispEdges}
.master-down{fill:#ff9800;opacity:.7}
.alert{opacity:.45}.alert.crit{fill:#c62828}.alert.warn{fill:#ef6c00}.alert.info{fill:#1565c0}
.down.removed{fill:#5d4037;opacity:.55}.down.draining{fill:#fbc02d;opacity:.6}.down.deactivated{fill:#9e9e9e;opacity:.6}
.mark.ev{fill:#546e7a;opacity:.8}.mark.bad{fill:#ad1457;opacity:.85}
svg .chart-title{font-weight:600}.pager{margin:6px 0}.pager button{margin-right:6px}
.facts li{margin:2px 0}.down-row td{background:#fff8e1}#agents-table td:first-child{white-space:nowrap}
"""


def duration(seconds: float | None) -> str:
    """``3m41s``, ``2h05m``, ``4.2s``, ``12ms``."""
    if seconds is None:
        return "-"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(data: dict[str, Any], local: Callable[[str], str]) -> str:
    """What a reader wants first: the failovers, the agents that went down, the rules that fired."""
    items = [f"{html.escape(local(f['t']))}: {html.escape(f['label'])} (offset {f['offset']})"
             for f in data["leaders"] if f["failover"]]
    items += [f"master unreachable from {html.escape(local(m['from']))} for {duration(m['seconds'])}"
              f"{' (to the end of the window)' if m['open'] else ''}" for m in data["master_down"]]
    down = [a for a in data["agents"] if a["down"]]
    removed = [a for a in down if any(p["status"] == "removed" for p in a["down"])]
    items.append(f"{len(data['agents'])} agents in the window; {len(down)} down at some point"
                 + (f", {len(removed)} of them removed (lost or drained)" if removed else ""))
    per_rule: dict[str, int] = {}
    for a in data["alerts"]:
        per_rule[a["rule"]] = per_rule.get(a["rule"], 0) + 1
    if per_rule:
        items.append(f"{len(data['alerts'])} alerts from {len(per_rule)} rules: "
                     + ", ".join(f"{r} {n}" for r, n in sorted(per_rule.items(), key=lambda kv: timeline.rule_order(
                         kv[0]))))
    return '<ul class="facts">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def _agents_table(data: dict[str, Any], local: Callable[[str], str]) -> str:
    """Every agent of the window, those that were down first."""
    rows = []
    for a in sorted(data["agents"], key=lambda a: (-a["down_seconds"], timeline.host_key(a["host"]))):
        periods = "; ".join(f"{p['status']}{' (' + str(p['why']) + ')' if p['why'] else ''} from {local(p['from'])}"
                            + (" to the end" if p["open"] else f" for {duration(p['seconds'])}") for p in a["down"])
        cpus = f"{a['cpus_allocated_max']:g} / {a['cpus_total_max']:g}" if a["cpus_total_max"] is not None else "-"
        cells = [a["host"], len(a["ids"]), a["status"], duration(a["down_seconds"]) if a["down"] else "-",
                 periods or "-", a["events"], cpus]
        rows.append(f"<tr{' class=down-row' if a['down'] else ''}>"
                    + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["agent", "ids", "status at the end", "down",
                                                            "down periods", "notable events",
                                                            "peak cpus allocated / total"])
    return f'<table id="agents-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(data: dict[str, Any]) -> str:
    """The report's HTML for ``ReportData.as_dict()`` (its list of events, if any, is not embedded)."""
    tz = axis.zone(data["zone"]["name"])
    lo, hi = micros_of(data["start"]), micros_of(data["end"])
    one_day = axis.local_text(lo, tz)[:10] == axis.local_text(hi, tz)[:10]

    def local(t: str) -> str:  # the date and the zone are in the title: within one day, the time says it all
        text = axis.local_text(micros_of(t), tz)
        return text[11:19] if one_day else text

    lat = data["pod_latency"]
    resch = [[r["agent"], local(r["at"]), duration(r["seconds"]) if r["seconds"] is not None else "not yet",
              ", ".join(r["rcs_waiting"]) or "-"] for r in data["reschedule"]]
    avail = [[s, f"{100 * v:.2f}%"] for s, v in sorted(data["availability"].items(), key=lambda kv: kv[1])]
    embedded = {k: v for k, v in data.items() if k not in ("events", "events_not_listed")}
    # Embedded JSON must not close the script element.
    blob = orjson.dumps(embedded).decode().replace("</", "<\\/")
    zone = data["zone"]
    title = f"kmevents report: {data['cluster']} {zone['start']} to {zone['end']}"
    span = (hi - lo) / 1e6
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="generator" content="kmevents {__version__}"><style>{CSS}</style></head>
<body data-rendered="false">
<h1>{html.escape(title)}</h1>
<p class="muted">A window of {duration(span)} of source time (occurred_at), written in {html.escape(zone['caption'])};
{data['events_in_window']:,} events, log offsets {data['offsets'][0]}&ndash;{data['offsets'][1]}.
Every figure is derived by replaying the log with the one reducer.</p>
{_facts(data, local)}
<h2>Incident timeline</h2>
<p class="muted">Leader changes first, then one lane per alert rule (bars from firing to resolved, the most
severe rules first), the cluster, and every agent of the window with its down periods. A mark counts the
notable events of its lane in one slice of the window ({data['notable_events']:,} events, none left out).
Hover a mark or a bar for its time, what it was and its log offset.</p>
<div id="timeline"></div>
<h2>Service levels</h2>
<h3>Pod creation to Running</h3>
{_table([[lat['count'], lat['p50'], lat['p90'], lat['p99'], lat['max']]], ['pods', 'p50 s', 'p90 s', 'p99 s', 'max s'])}
<h3>Time to reschedule after an agent is lost</h3>
{_table(resch, ['agent', 'lost at', 'until its RCs were back', 'RCs still short']) if resch else '<p>No agent was lost in the window.</p>'}
<h3>Endpoint availability per service</h3>
{_table(avail, ['service', 'share of the window with endpoints']) if avail else '<p>No service.</p>'}
<h2>Agents ({len(data['agents'])})</h2>
<p class="muted">Every agent of the window, those that were down longest first. An agent re-added under a
new id (Mesos never reuses one) is one host here.</p>
{_agents_table(data, local)}
<h2>Capacity per role (cpus)</h2>
<div id="capacity-roles" class="grid"></div>
<h2>Capacity per agent (cpus: total, allocated, offered)</h2>
<div class="pager"><button id="agents-prev" type="button">previous</button><button id="agents-next"
type="button">next</button><span id="agents-page-info"></span></div>
<div id="capacity-agents" class="grid"></div>
<script id="report-data" type="application/json">{blob}</script>
<script>{SCRIPT}</script>
</body></html>
"""
