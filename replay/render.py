"""Rendering of replay results: the ``table`` format, and what JSON adds to an entity.

Every entity a JSON output carries has its computed ``condition``
(:func:`kmevents.reducer.condition`: ``Deleted`` for a deleted pod whose last phase
was ``Running``), so ``jq 'select(.condition=="Running")'`` counts what the tables count.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from kmevents.reducer import ClusterState
from kmevents.reducer.conditions import condition

if TYPE_CHECKING:
    from kmevents.replay.diffing import StateDiff


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
    before = before_log_text(pos)
    if before:
        out.append(f"NOTHING KNOWN: {before}")
    if pos.get("incomplete"):
        out.append(f"WARNING: INCOMPLETE STATE: {pos['incomplete']}")
    return out


def before_log_text(pos: dict[str, Any]) -> str | None:
    """One line saying the point lies before the log's first event, and where the log starts
    (None when something was applied)."""
    start = pos.get("before_log_start")
    if not start:
        return None
    where = f"the log of {pos['cluster']}" + (f" ({pos['source']})" if pos.get("source") else "")
    if start.get("offset") is None:
        return f"{where} has no records"
    first = (f"its first record is offset {start['offset']}, occurred_at {start.get('occurred_at')}, "
             f"recorded_at {start.get('recorded_at')}")
    target = str(pos.get("target"))
    if target.startswith("at ") and start.get("earliest_occurred_at"):
        return (f"nothing in {where} had happened {target}: its earliest event occurred at "
                f"{start['earliest_occurred_at']} ({first})")
    return f"{where} starts after the point ({target}): {first}"


def _lag(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.3f}s"


def state_summary(st: ClusterState, limit: int = 20) -> str:
    parts: list[str] = []
    counts = [[k, st.count(k)] for k in st.kinds]
    parts.append(table(counts, ["kind", "count"]))
    cl = st.entity("cluster", st.cluster) or {}
    leader = (cl.get("leader") or {})
    sched = cl.get("scheduler_leader") or {}
    who = leader.get("hostname") or leader.get("id")
    parts.append(f"leading master: {who or 'none known'}" + (f" since {cl['since']}" if who and cl.get("since") else "")
                 + f"  (failovers {cl.get('failover_count', 0)}, heartbeat "
                   f"{(cl.get('heartbeat') or {}).get('status') or 'unknown'})")
    parts.append(f"k8sm scheduler leader: {sched.get('identity') or 'none known'}")
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


def with_condition(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` and its computed ``condition`` (a new dict; the value is not changed)."""
    return {**value, "condition": condition(value)}


def tables_with_conditions(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{kind: {id: value}}`` with each value's ``condition``."""
    return {k: {i: with_condition(v) for i, v in ents.items()} for k, ents in tables.items()}


def state_json(st: ClusterState, kinds: list[str] | None = None) -> dict[str, Any]:
    """``{kind: {id: value + condition}}`` of ``kinds`` (default: all)."""
    return {k: {i: with_condition(v) for i, v in sorted(st.entities(k))} for k in (kinds or st.kinds)}


def value_text(v: Any) -> str:
    """A value as a person reads it in a diff: JSON (``"Running"``, ``null``, ``{"cpus":1}``),
    never a Python repr (``'Running'``, ``None``)."""
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _more(n: int, what: str) -> str:
    return f"... {n:,} more {what}"


def diff_lines(d: StateDiff, *, limit: int = 50, field_limit: int = 10) -> list[str]:
    """A diff as text: counts per kind, then ``+``/``-``/``~`` entities, at most ``limit`` per kind
    and change and ``field_limit`` fields per entity (0: all), each cut saying how many more."""
    out: list[str] = []
    for kind, c in d.counts().items():
        out.append(f"{kind:14} +{c['added']:<6} -{c['removed']:<6} ~{c['changed']}")

    def cut(items: list[Any], n: int) -> tuple[list[Any], int]:
        return (items, 0) if n <= 0 or len(items) <= n else (items[:n], len(items) - n)

    for sign, table in (("+", d.added), ("-", d.removed)):
        for kind, ents in table.items():
            shown, rest = cut(list(ents), limit)
            out.extend(f"{sign} {kind}/{id}" for id in shown)
            if rest:
                out.append(f"{sign} {_more(rest, f'{kind} entities (--limit 0 lists all)')}")
    for kind, changed in d.changed.items():
        shown_c, rest = cut(list(changed.items()), limit)
        for id, changes in shown_c:
            out.append(f"~ {kind}/{id}")
            fields, more_f = cut(changes, field_limit)
            out.extend(f"    {ch.path}: {value_text(ch.before)} -> {value_text(ch.after)}" for ch in fields)
            if more_f:
                out.append(f"    {_more(more_f, 'fields (--max-fields 0 shows all)')}")
        if rest:
            out.append(f"~ {_more(rest, f'changed {kind} entities (--limit 0 lists all)')}")
    return out
