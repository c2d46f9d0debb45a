"""Plain-text rendering of replay results (the ``table`` format); JSON needs none."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kmevents.reducer import ClusterState
from kmevents.reducer.conditions import condition


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def position_lines(pos: dict[str, Any]) -> list[str]:
    last = pos.get("last_event") or {}
    out = [
        f"cluster {pos['cluster']}  partition {pos['partition']}  target: {pos['target']}",
        f"last event applied: offset {last.get('offset')}  {last.get('type')}",
        f"  occurred_at {last.get('occurred_at')}  recorded_at {last.get('recorded_at')}  "
        f"ingest lag {_lag(last.get('ingest_lag_seconds'))}",
        f"log covered to offset {pos['covered_to_offset']}  chain head {pos['chain_head'] or 'unknown'}",
        f"events applied {pos['events_applied']} (records read {pos['records_scanned']}"
        + (f", started from snapshot at offset {pos['started_from_snapshot']}" if pos.get("started_from_snapshot")
           is not None else ", from the start of the source")
        + (f", {pos['skipped_happened_later']} happened after the time and were skipped"
           if pos.get("skipped_happened_later") else "") + ")",
    ]
    if pos.get("gaps"):
        out.append(f"WARNING: the sources miss offsets {pos['gaps']}: state and chain may be incomplete")
    return out


def _lag(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.3f}s"


def state_summary(st: ClusterState, limit: int = 20) -> str:
    parts: list[str] = []
    counts = [[k, st.count(k)] for k in st.kinds]
    parts.append(table(counts, ["kind", "count"]))
    cl = st.entity("cluster", st.cluster) or {}
    leader = (cl.get("leader") or {})
    sched = cl.get("scheduler_leader") or {}
    parts.append(f"leading master: {leader.get('hostname') or leader.get('id') or 'none'} since {cl.get('since')}"
                 f"  (failovers {cl.get('failover_count', 0)}, heartbeat {(cl.get('heartbeat') or {}).get('status')})")
    parts.append(f"k8sm scheduler leader: {sched.get('identity') or 'none'}")
    agents = sorted(st.entities("agent"), key=lambda kv: str(kv[1].get("hostname")))
    by_status = Counter(a.get("status") for _, a in agents)
    parts.append(f"agents: {dict(by_status)}")
    rows = []
    for aid, a in agents[:limit]:
        tot, alloc = a.get("total") or {}, a.get("allocated") or {}
        rows.append([a.get("hostname"), a.get("status"), f"{alloc.get('cpus', 0):g}/{tot.get('cpus', 0):g}",
                     f"{alloc.get('mem', 0):g}/{tot.get('mem', 0):g}", aid])
    if rows:
        parts.append(table(rows, ["agent", "status", "cpus alloc/total", "mem alloc/total", "id"]))
    tasks = list(st.entities("task"))
    parts.append(f"tasks by state: {dict(sorted(Counter(t.get('state') for _, t in tasks).items(), key=str))}")
    running = sorted((t for _, t in tasks if t.get("state") == "TASK_RUNNING"), key=lambda t: str(t.get("id")))
    if running:
        hosts = {aid: a.get("hostname") for aid, a in agents}
        parts.append(f"running tasks ({len(running)}, first {min(limit, len(running))}):")
        parts.append(table([[t.get("id"), hosts.get(str(t.get("agent_id")), t.get("agent_id")), t.get("pod"),
                             t.get("since")] for t in running[:limit]], ["task", "agent", "pod", "since"]))
    pods = list(st.entities("pod"))
    parts.append(f"pods by condition: {dict(sorted(Counter(condition(p) for _, p in pods).items(), key=str))}")
    nodes = list(st.entities("node"))
    parts.append(f"nodes: ready {sum(1 for _, n in nodes if n.get('ready'))}, "
                 f"not ready {sum(1 for _, n in nodes if not n.get('ready'))}")
    fws = sorted(st.entities("framework"))
    if fws:
        parts.append(table([[f.get("name"), f.get("status"), fid] for fid, f in fws[:limit]],
                           ["framework", "status", "id"]))
    return "\n\n".join(parts)


def state_json(st: ClusterState) -> dict[str, Any]:
    return {k: dict(sorted(st.entities(k))) for k in st.kinds}
