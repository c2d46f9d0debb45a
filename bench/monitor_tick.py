"""The live monitor's tick at the large profile: rules told of the fold's pod changes against
rules that walk every pod's stored bytes (CPU milliseconds a tick, the same alerts).

    python -m bench.monitor_tick [--events 400000] [--ticks 4]

Two monitor consumers (``ClusterMonitor``) are fed the large log's first ``--events`` records
(``bench.large_log``, cached) in batches of 2,000; the last ``--ticks`` batches are each followed
by a tick of both. The first tick of either reads every pod; the later ones show the difference.
"""

from __future__ import annotations

import argparse
import itertools
import time

from kmevents.replay.records import LogRecord

from bench.large_log import large_log
from kmevents.monitor.consumer import ClusterMonitor
from kmevents.monitor.rules import RuleEngine
from kmevents.reducer import ClusterState
from kmevents.reducer.apply import collect_rarely
from kmevents.settings import MonitorSettings

BATCH = 2000


class _Untold(RuleEngine):
    """The rules as they read a state no one tells them about."""

    def track_pods(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--ticks", type=int, default=4)
    args = parser.parse_args()
    log = large_log()
    cluster = str(log.meta["recipe"]["cluster"])
    collect_rarely()
    t = MonitorSettings()
    told = ClusterMonitor(cluster, 0, ClusterState.empty(cluster), RuleEngine(cluster, t))
    untold = ClusterMonitor(cluster, 0, ClusterState.empty(cluster), _Untold(cluster, t))
    with open(log.path, "rb") as f:
        recs = [LogRecord(i, 1_767_225_600_000 + i, cluster.encode(), line.rstrip(b"\n"))
                for i, line in enumerate(itertools.islice(f, args.events))]
    times: dict[str, list[float]] = {"told": [], "untold": []}
    starts = range(0, len(recs), BATCH)
    for n, i in enumerate(starts):
        for m in (told, untold):
            m.feed(recs[i:i + BATCH])
        if n >= len(starts) - args.ticks:
            now = recs[min(i + BATCH, len(recs)) - 1].timestamp
            alerts = []
            for name, m in (("told", told), ("untold", untold)):
                c = time.process_time()
                alerts.append([(a.rule, a.key, a.status) for a in m.tick(now)])
                times[name].append((time.process_time() - c) * 1000)
            assert alerts[0] == alerts[1], "the two consumers' alerts differ"
    print(f"{len(recs):,} events, {len(told.state.pods):,} pods; CPU ms a tick: "
          + "; ".join(f"{k} {', '.join(f'{x:.1f}' for x in v)}" for k, v in times.items()))


if __name__ == "__main__":
    main()
