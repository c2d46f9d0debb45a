"""The live terminal view of ``kmevents monitor`` (rich): one frame from a ClusterMonitor."""

from __future__ import annotations

import io
from collections import Counter

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kmevents.monitor.consumer import ClusterMonitor

SEV_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def frame(m: ClusterMonitor, *, max_rows: int = 15) -> Group:
    st = m.state
    cl = st.entity("cluster", m.cluster) or {}
    leader = cl.get("leader") or {}
    sched = cl.get("scheduler_leader") or {}
    hb = (cl.get("heartbeat") or {}).get("status")
    head = Text.assemble(
        ("cluster ", "dim"), (m.cluster, "bold"), ("  partition ", "dim"), (str(m.partition), ""),
        ("  offset ", "dim"), (str(m.offset), ""),
        ("  rate ", "dim"), (f"{m.rate():.1f} ev/s", "bold"),
        ("  watermark ", "dim"), (str(st.max_occurred_at or "-"), ""),
        ("\nleading master ", "dim"), (str(leader.get("hostname") or leader.get("id") or "none"), "bold green"),
        ("  since ", "dim"), (str(cl.get("since") or "-"), ""), ("  failovers ", "dim"),
        (str(cl.get("failover_count", 0)), ""), ("  heartbeat ", "dim"), (str(hb), ""),
        ("\nk8sm scheduler leader ", "dim"), (str(sched.get("identity") or "none"), "bold"),
        ("  catching up" if m.catching_up(_now_ms()) else "", "bold magenta"),
    )
    agents = sorted(st.entities("agent"), key=lambda kv: str(kv[1].get("hostname")))
    tasks = list(st.entities("task"))
    running_by_agent = Counter(t.get("agent_id") for _, t in tasks if t.get("state") == "TASK_RUNNING")
    # only the outstanding offers decoded (an offer's condition is its status; the others are known
    # from the table's notes): a frame decoded every offer
    offers_by_agent = Counter((st.entity_read("offer", i) or {}).get("agent_id")
                              for i, c in st.conditions("offer") if c == "outstanding")
    at = Table(title=f"agents ({len(agents)}: {dict(Counter(a.get('status') for _, a in agents))})",
               expand=True, title_justify="left")
    for col in ("agent", "status", "cpus alloc/offer/total", "mem alloc/total (MiB)", "running", "offers"):
        at.add_column(col)
    for aid, a in agents[:max_rows]:
        tot, alloc, off = a.get("total") or {}, a.get("allocated") or {}, a.get("offered") or {}
        at.add_row(str(a.get("hostname")), str(a.get("status")),
                   f"{alloc.get('cpus', 0):g}/{off.get('cpus', 0):g}/{tot.get('cpus', 0):g}",
                   f"{alloc.get('mem', 0):g}/{tot.get('mem', 0):g}", str(running_by_agent.get(aid, 0)),
                   str(offers_by_agent.get(aid, 0)))
    states = Counter(t.get("state") for _, t in tasks)
    summary = Text.assemble(("running tasks ", "dim"), (str(states.get("TASK_RUNNING", 0)), "bold"),
                            ("  tasks by state ", "dim"), (str(dict(sorted(states.items(), key=str))), ""),
                            ("\noutstanding offers ", "dim"), (str(sum(offers_by_agent.values())), "bold"),
                            ("  processor lag ", "dim"), (str(m.lag or "-"), ""),
                            ("  dead letters ", "dim"), (str(m.dead_letters if m.dead_letters is not None else "-"), ""))
    al = Table(title=f"firing alerts ({len(m.engine.firing)})", expand=True, title_justify="left")
    for col in ("severity", "rule", "about", "since (source time)", "summary"):
        al.add_column(col)
    for alert in sorted(m.engine.firing.values(), key=lambda a: (a.severity, a.rule, a.key))[:max_rows]:
        al.add_row(Text(alert.severity, style=SEV_STYLE.get(alert.severity, "")), alert.rule, alert.key,
                   str(alert.started_at or "-"), alert.summary)
    if not m.engine.firing:
        al.add_row("-", "none", "", "", "")
    return Group(Panel(head, title="kmevents monitor"), at, summary, al)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def render_text(m: ClusterMonitor, width: int = 160) -> str:
    """One frame as plain text (``--once``, tests)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(frame(m))
    return console.export_text()
