"""The monitor's consumer folds records and evaluates the rules on its state: told of every pod
its fold changes, the rules read only those at a tick, and fire what reading every pod fires."""

from __future__ import annotations

from typing import Any

import orjson
from kmevents.replay.records import LogRecord

from kmevents.monitor.consumer import ClusterMonitor
from kmevents.monitor.rules import RuleEngine
from kmevents.reducer import ClusterState
from kmevents.settings import MonitorSettings
from kmevents.simulate import generate

CLUSTER = "mc"


class Untold(RuleEngine):
    """The rules as they read a state no one tells them about: every pod at each evaluation."""

    def track_pods(self) -> None:
        pass


def test_a_tick_told_of_the_folds_changes_fires_what_reading_every_pod_fires() -> None:
    t = MonitorSettings(window_seconds=20.0, pending_pod_seconds=5.0, rc_below_seconds=5.0,
                        service_mismatch_seconds=5.0)
    recs = [LogRecord(i, 1_767_225_600_000 + 20 * i, CLUSTER.encode(), orjson.dumps(e))
            for i, e in enumerate(generate(CLUSTER, 3, 9000, agents=20))]
    told = ClusterMonitor(CLUSTER, 0, ClusterState.empty(CLUSTER), RuleEngine(CLUSTER, t))
    untold = ClusterMonitor(CLUSTER, 0, ClusterState.empty(CLUSTER), Untold(CLUSTER, t))
    assert told.engine._changed is not None and untold.engine._changed is None
    fired: list[Any] = []
    for i in range(0, len(recs), 300):
        for m in (told, untold):
            m.feed(recs[i:i + 300])
        now = recs[min(i + 299, len(recs) - 1)].timestamp
        got, want = told.tick(now), untold.tick(now)
        assert [(a.rule, a.key, a.status, a.summary) for a in got] == \
            [(a.rule, a.key, a.status, a.summary) for a in want], i
        fired += got
    assert {a.rule for a in fired} & {"offer_starvation", "rc_below_desired", "kube_system_down",
                                      "service_endpoints_mismatch", "service_without_endpoints"}
