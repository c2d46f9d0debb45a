"""Task lookups by task id alone when many frameworks have come and gone (issue 17).

    python -m bench.run taskids [--quick]

An event that names a task without its framework (a k8sm binding, a status update from a
source that does not carry the framework id) finds it with ``ClusterState.task_ids``, which
tries each framework id the index holds (kmevents/reducer/taskids.py). A Mesos cluster where
each Spark job registers a framework sees thousands over a day while ~100 hold tasks at once.

The state is built the way the fold builds it (``index_task`` as each framework's task is
added, ``forget_task`` as retention prunes it 100 frameworks later), for 2 to 10,000
frameworks seen. Figures: CPU time of a lookup, against the same-run baseline of the lookup
with the framework id (one dict get: what ``_find_task`` does when the event names it); and
the recount that keeps the framework ids to those holding tasks, on a table of 160,000 tasks
(the large profile's). ``PYTHONPATH=<a checkout>`` runs the lookups on that checkout's
reducer (the recount is skipped where it has none).
"""

from __future__ import annotations

import time
from typing import Any

from kmevents.reducer import ClusterState, taskids
from kmevents.reducer.taskids import forget_task, index_task

LIVE = 100


def _state(seen: int) -> ClusterState:
    s = ClusterState.empty("bench")
    for fw in range(seen):
        key = f"{fw:08x}-5e2f-4c1b-9d7e-spark-{fw}/driver"
        s.tasks[key] = {"id": key, "task_id": "driver"}
        index_task(s, "driver", key)
        if fw >= LIVE:
            old = f"{fw - LIVE:08x}-5e2f-4c1b-9d7e-spark-{fw - LIVE}/driver"
            del s.tasks[old]
            forget_task(s, "driver", old)
    return s


def _per_call(fn: Any, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def run(quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = 500 if quick else 5_000
    for seen in (2, 100, 1_000, 10_000):
        s = _state(seen)
        known = next(iter(s.tasks))
        base = _per_call(lambda: s.tasks.get(known), n * 10)  # noqa: B023
        look = _per_call(lambda: s.task_ids("pod-1234.task-abcd"), n)  # noqa: B023  # (a miss: every id tried)
        out.append({"name": f"lookup without framework id, {seen:,} frameworks seen, {min(seen, LIVE)} holding tasks",
                    "figure": look * 1e6, "unit": "us a lookup", "baseline": "lookup with the framework id",
                    "baseline_figure": base * 1e6, "ratio": look / base if base else None,
                    "notes": f"{len(s._task_fws)} framework ids tried"})
    if not hasattr(taskids, "recount_frameworks"):  # (a checkout from before the recount)
        return out
    big = ClusterState.empty("bench")
    for i in range(16_000 if quick else 160_000):
        key = f"{i % 3:08x}-5e2f-4c1b-9d7e-k8sm/pod-{i}.task"
        dict.__setitem__(big.tasks, key, b"{}")
    out.append({"name": f"recount of the framework ids, {len(big.tasks):,} tasks",
                "figure": _per_call(lambda: taskids.recount_frameworks(big), 5) * 1e3, "unit": "ms"})
    return out
