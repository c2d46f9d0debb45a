"""The conformance harness of the Mesos corpus (tests/corpus/real/mesos-*/<case>/).

A case is a directory of raw input, read in name order, and ``expected.txt``:

    # <what the case reproduces>
    # clock: 2014-07-09T17:20:00Z +60      the adapter clock: record n is read at start + n * 60 s
    # records: 4 events: 3 skipped: 1 quarantined: 0
    # fold agent <id> <status>           checks on the folded state after the last record
    # fold task <framework_id>/<task_id> <state>     (also framework and offer status)
    # fold agent-total <agent_id> <role>/<name> <amount>   an agent's total by reservation role
    0 cluster.snapshot_observed 2a/1f/1t 2014-07-09T17:20:00.000000Z adapter -
    0 task.added <framework_id>/<task_id> <occurred_at> <clock> <actor>
    ...

Each event line is ``<record> <type> <entity id> <occurred_at> <clock> <actor>``. Every record
must end in exactly one place (it gave events, one skip, or one quarantine) and the totals
must match. Every event passes the contract's strict validation and the fold.

``KMEVENTS_CORPUS_WRITE=1`` rewrites the event lines and totals of ``expected.txt`` from what
the parser does (the description, clock and fold lines are kept): for a new case, to be read
line by line before it is committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmevents.contract.times import canonical_time
from kmevents.sources._common import seconds_of
from tests.unit.sources._helpers import canonical, fold_task, folded

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "real"
Event = dict[str, Any]


def cases(fmt: str) -> list[Path]:
    return sorted(p for p in (CORPUS / fmt).iterdir() if p.is_dir())


@dataclass
class Expected:
    header: list[str]
    start: float
    step: float
    totals: dict[str, int]
    lines: list[str]
    folds: list[tuple[str, str, str]] = field(default_factory=list)


def read_expected(path: Path) -> Expected:
    header: list[str] = []
    start = step = 0.0
    totals: dict[str, int] = {}
    lines: list[str] = []
    folds = []
    for line in path.read_text().splitlines():
        if line.startswith("# clock:"):
            when, _, plus = line.removeprefix("# clock:").strip().partition(" +")
            start, step = seconds_of(canonical_time(when)), float(plus or 0)
        elif line.startswith("# records:"):
            words = line.removeprefix("# ").replace(":", "").split()
            totals = {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}
            continue
        elif line.startswith("# fold "):
            kind, *ids, value = line.removeprefix("# fold ").split()
            folds.append((kind, " ".join(ids), value))
        elif line.startswith("#") or not line.strip():
            pass
        else:
            lines.append(line)
            continue
        header.append(line)
    return Expected(header, start, step, totals, lines, folds)


def entity(e: Event) -> str:
    """The id an event is about, as the expected lines write it."""
    t, pl = e["type"], e["payload"]
    if t == "cluster.snapshot_observed":
        return f"{pl['agents']}a/{pl['frameworks']}f/{pl['tasks']}t"
    if t == "task.added":
        return f"{pl['task']['framework_id']}/{pl['task']['task_id']}"
    if t == "task.status_updated":
        return f"{pl.get('framework_id') or '?'}/{pl['status']['task_id']}:{pl['status']['state']}"
    for key in ("agent", "framework", "offer", "inverse_offer", "master"):
        if isinstance(pl.get(key), dict):
            return str(pl[key]["id"])
    for key in ("agent_id", "framework_id", "offer_id", "inverse_offer_id", "master_id", "stream_id"):
        if key in pl:
            return str(pl[key]) + (f":{pl['reason']}" if "reason" in pl else "")
    if t.startswith("executor."):
        return f"{pl['executor']['agent_id']}/{pl['executor']['executor_id']}"
    return "-"


def render(record: int, e: Event) -> str:
    actor = e.get("actor") or {}
    return " ".join([str(record), e["type"], entity(e), e["occurred_at"], e["clock"],
                     actor.get("username", "-") if isinstance(actor, dict) else str(actor)])


class Clock:
    """The adapter clock of a case: record ``n`` is read at ``start + n * step``."""

    def __init__(self, start: float, step: float) -> None:
        self.start, self.step, self.record = start, step, 0

    def __call__(self) -> float:
        return self.start + self.record * self.step


Feed = Callable[[Any], list[Event]]
Records = Iterator[tuple[Feed, Any]]


def check(case: Path, start: Callable[[Clock], tuple[Any, Records]]) -> None:
    """Read ``case`` with the parser and records ``start(clock)`` gives ((feed, raw) pairs) and
    hold the result to its ``expected.txt``."""
    exp_path = case / "expected.txt"
    exp = read_expected(exp_path)
    clock = Clock(exp.start, exp.step)
    parser, records = start(clock)
    got_lines: list[str] = []
    events: list[Event] = []
    totals = {"records": 0, "events": 0, "skipped": 0, "quarantined": 0}
    for n, (feed, raw) in enumerate(records):
        clock.record = n
        before = (sum(parser.skipped.counts.values()), parser.outcomes.quarantined_total)
        out = feed(raw)
        skipped = sum(parser.skipped.counts.values()) - before[0]
        quarantined = parser.outcomes.quarantined_total - before[1]
        assert bool(out) + skipped + quarantined == 1, (case.name, n, out, parser.skipped.counts)
        totals["records"] += 1
        totals["events"] += bool(out)
        totals["skipped"] += skipped
        totals["quarantined"] += quarantined
        events += canonical(out)
        got_lines += [render(n, e) for e in out]
    if os.environ.get("KMEVENTS_CORPUS_WRITE"):
        counts = "# records: {records} events: {events} skipped: {skipped} quarantined: {quarantined}".format(**totals)
        exp_path.write_text("\n".join([*exp.header, counts, *got_lines]) + "\n")
        return
    assert totals == exp.totals, (case.name, totals, exp.totals)
    assert got_lines == exp.lines
    state = folded(events)
    for kind, eid, value in exp.folds:
        if kind == "agent-total":
            aid, _, what = eid.partition(" ")
            role, _, name = what.partition("/")
            assert state.entity("agent", aid)["total_by_role"][role][name] == float(value), (eid, value)
        elif kind == "task":
            fid, _, tid = eid.partition("/")
            assert fold_task(state, (fid, tid))["state"] == value, (kind, eid)
        else:
            table = {"agent": state.agents, "framework": state.frameworks, "offer": state.offers}[kind]
            assert table[eid]["status"] == value, (kind, eid, table[eid]["status"])
    # no case leaves an agent removed or a task unknown unless its fold lines say so
    said = {(k, v) for k, _, v in exp.folds}
    if ("agent", "removed") not in said:
        assert not [a for a, x in state.agents.items() if x["status"] == "removed"], case.name
    if ("task", "TASK_UNKNOWN") not in said:
        assert not [t for t, x in state.tasks.items() if x["state"] == "TASK_UNKNOWN"], case.name


def numbered(paths: list[Path]) -> list[Path]:
    """Input files in name order (``expected.txt`` and sidecars left out)."""
    return sorted(p for p in paths if re.match(r"^\d", p.name))
