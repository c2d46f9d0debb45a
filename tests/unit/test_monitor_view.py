"""The monitor's frame (kmevents/monitor/view.py) on a folded state: the outstanding offers it shows
are the state's, counted per agent, with only those offers decoded."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from kmevents.monitor.view import render_text
from kmevents.reducer import ClusterState, apply
from kmevents.simulate import generate


class _Engine:
    firing: dict[str, Any] = {}


class _Monitor:
    def __init__(self, st: ClusterState) -> None:
        self.state, self.cluster, self.partition, self.offset = st, st.cluster, 0, st.offset
        self.engine, self.lag, self.dead_letters = _Engine(), None, None

    def rate(self) -> float:
        return 0.0

    def catching_up(self, now_ms: int) -> bool:
        return False


def test_the_frame_counts_the_outstanding_offers_of_the_state() -> None:
    st = ClusterState("c1")
    for e in generate("c1", 3, 3000, agents=6):
        apply(st, e)
    st.take_dirty()
    outstanding = Counter(o.get("agent_id") for _, o in st.entities("offer") if o.get("status") == "outstanding")
    assert sum(outstanding.values()) > 0 and st.count("offer") > sum(outstanding.values())
    text = render_text(_Monitor(st), width=200)
    shown = re.search(r"outstanding offers (\d+)", text)
    assert shown is not None and int(shown.group(1)) == sum(outstanding.values())
