"""The incident timeline's pieces, kept so that nothing routine buries what matters. Pure.

Lanes, top to bottom (:func:`lanes`):

    failovers                  master failovers and k8sm leader changes (marks), the master unreachable (bars)
    <rule> ...                 one lane per alert rule that fired, each alert a bar from firing to resolved:
                               master_failover, scheduler_leader_change, then critical, warning, info rules
    cluster                    notable events tied to no agent
    <agent host> ...           every agent of the window: its events, and its down periods as bars
                               (removed, deactivated, draining)

Events are drawn as **marks**: one per lane, class (``bad`` or ``ev``) and
slice of the window (:data:`SLICES` of them), carrying how many events fell
there and of which kinds. However many events a window holds, the drawing has
at most lanes x slices x 2 marks and leaves none out: 300 TASK_LOST in one
second on one agent are one mark saying "TASK_LOST x300", where they used to be
300 circles, and the 3,001st event of a window used to be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kmevents.monitor.rules import RULES, SEVERITY
from kmevents.timespec import iso_of_micros

#: Slices of the window per lane for marks (about 3 pixels each on the report's 1,100-pixel timeline).
SLICES = 360
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
#: Rules about a change of leader: their lanes come first, whatever their severity.
LEADER_RULES = ("master_failover", "scheduler_leader_change")
FAILOVERS = "failovers"
CLUSTER = "cluster"
#: Up to this many agents each get a lane; past it, agents with no event and no down time share one.
AGENT_LANES = 150


def rule_order(rule: str) -> tuple[int, int, str]:
    """Sort key of an alert lane: leader changes first, then by severity, then in ``RULES`` order."""
    if rule in LEADER_RULES:
        return (-1, LEADER_RULES.index(rule), rule)
    rank = SEVERITY_RANK.get(SEVERITY.get(rule, "info"), 3)
    return (rank, RULES.index(rule) if rule in RULES else len(RULES), rule)


def host_key(host: str) -> tuple[Any, ...]:
    """Natural order: agent-2 before agent-10."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", host))


@dataclass
class Marks:
    """Events counted per lane, class and slice of ``[lo, hi]`` (µs)."""

    lo: int
    hi: int
    slices: int = SLICES
    cells: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, lane: str, t: int, cls: str, label: str, offset: int) -> None:
        span = max(1, self.hi - self.lo)
        b = min(self.slices - 1, max(0, (t - self.lo) * self.slices // span))
        cell = self.cells.get((lane, b, cls))
        if cell is None:
            self.cells[(lane, b, cls)] = {"t": t, "n": 1, "kinds": {label: 1}, "offset": offset}
            return
        cell["n"] += 1
        cell["kinds"][label] = cell["kinds"].get(label, 0) + 1

    def per_lane(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (lane, _, _), c in self.cells.items():
            out[lane] = out.get(lane, 0) + c["n"]
        return out

    def as_list(self) -> list[dict[str, Any]]:
        """``{"lane", "t" (first event), "n", "cls", "label" ("TASK_LOST x9, pod.evicted x3"), "offset" (first)}``."""
        out = []
        for (lane, _, cls), c in sorted(self.cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            kinds = sorted(c["kinds"].items(), key=lambda kv: (-kv[1], kv[0]))
            out.append({"lane": lane, "t": iso_of_micros(c["t"]), "n": c["n"], "cls": cls,
                        "label": ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds), "offset": c["offset"]})
        return out


class Periods:
    """Intervals of a status other than ``up`` per key, from the status changes in time order."""

    def __init__(self, up: str) -> None:
        self.up = up
        self.status: dict[str, str] = {}
        self.spans: dict[str, list[list[Any]]] = {}  # key -> [[start µs, end µs | None, status, why]]

    def change(self, key: str, status: str, t: int, why: str | None = None) -> None:
        if self.status.get(key) == status:
            return
        spans = self.spans.setdefault(key, [])
        if spans and spans[-1][1] is None:
            spans[-1][1] = max(t, spans[-1][0])
        if status != self.up:
            spans.append([t, None, status, why])
        self.status[key] = status

    def retell(self, key: str, why: str | None) -> None:
        """The open period of ``key`` now says ``why`` (what the entity says at its latest change)."""
        spans = self.spans.get(key)
        if spans and spans[-1][1] is None:
            spans[-1][3] = why

    def clipped(self, key: str, lo: int, hi: int) -> list[dict[str, Any]]:
        """The key's periods overlapping ``[lo, hi]``, clipped to it; ``open``: not over at ``hi``."""
        out = []
        for start, end, status, why in self.spans.get(key, []):
            if start > hi or (end is not None and end < lo):
                continue
            out.append({"from": iso_of_micros(max(start, lo)), "to": iso_of_micros(min(end if end is not None
                                                                                        else hi, hi)),
                        "status": status, "why": why, "open": end is None or end > hi,
                        "began_before": start < lo, "seconds": round((min(end if end is not None else hi, hi)
                                                                      - max(start, lo)) / 1e6, 3)})
        return out

    def gone_before(self, key: str, lo: int, status: str) -> bool:
        """In ``status`` since before ``lo`` and never otherwise after (an agent removed before the window)."""
        spans = self.spans.get(key) or []
        return bool(spans) and spans[-1][2] == status and spans[-1][1] is None and spans[-1][0] < lo


def lanes(alert_rules: dict[str, int], agents: list[dict[str, Any]], marks_per_lane: dict[str, int],
          *, agent_lanes: int = AGENT_LANES) -> list[dict[str, Any]]:
    """The lanes, top to bottom (see the module docstring).

    ``alert_rules``: rule -> alerts in the window; ``agents``: ``{"host", "down": [...]}`` of every agent
    of the window. Past ``agent_lanes`` agents, those with no mark and no down period share one lane
    (``group: quiet``, ``hosts`` listing them); every agent is still in the report's agent table."""
    out: list[dict[str, Any]] = [{"id": FAILOVERS, "label": "masters / k8sm leader", "group": "failover"}]
    for rule in sorted(alert_rules, key=rule_order):
        out.append({"id": "alert:" + rule, "label": f"{rule} ({alert_rules[rule]})", "group": "alert",
                    "rule": rule, "severity": SEVERITY.get(rule, "info")})
    out.append({"id": CLUSTER, "label": "cluster", "group": "cluster"})
    known = {a["host"] for a in agents} | {FAILOVERS, CLUSTER}
    # events of a node or agent the window has no agent entity for (a Kubernetes node's name) get a lane too
    hosts = sorted([*agents, *({"host": h, "down": []} for h in marks_per_lane if h not in known)],
                   key=lambda a: host_key(a["host"]))
    quiet = [a["host"] for a in hosts if not a["down"] and not marks_per_lane.get(a["host"])]
    fold = len(hosts) > agent_lanes and quiet
    for a in hosts:
        if fold and a["host"] in quiet:
            continue
        out.append({"id": a["host"], "label": a["host"], "group": "agent"})
    if fold:
        out.append({"id": "quiet-agents", "label": f"{len(quiet)} quiet agents", "group": "quiet", "hosts": quiet})
    return out
