"""ClusterState's bookkeeping (its ``_`` fields) is private to the reducer package (issue 15).

The reducer's modules share it (the dispatch, the handlers, retention, aggregates,
membership, snapshots, forks); nothing outside kmevents/reducer may reach in: a
reader uses ``entity``/``entities``/``take_dirty``/``fork``/``to_snapshot``.
"""

from __future__ import annotations

import re
from pathlib import Path

from kmevents.reducer import ClusterState

ROOT = Path(__file__).resolve().parents[3]
PRIVATE = sorted(n for n in ClusterState.__slots__ if n.startswith("_"))


def test_no_module_outside_the_reducer_reads_or_writes_the_states_private_fields() -> None:
    pattern = re.compile(r"(?<!self)\.(" + "|".join(re.escape(n) for n in PRIVATE) + r")\b")
    outside = [p for d in ("kmevents", "processors", "replay") for p in (ROOT / d).rglob("*.py")
               if "reducer" not in p.relative_to(ROOT).parts]
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in outside for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_the_check_sees_a_reach_in(tmp_path: Path) -> None:
    pattern = re.compile(r"(?<!self)\.(" + "|".join(re.escape(n) for n in PRIVATE) + r")\b")
    assert pattern.search("for k in st._tables.items():")
    assert not pattern.search("st.take_dirty()")
    assert not pattern.search("self._ev(...)"), "another class's own attribute is not a reach-in"
