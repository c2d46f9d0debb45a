"""Bounded memory: how long terminal entities stay in live state.

The live state keeps an entity that reached a terminal condition (a finished
task, a deleted pod, a removed agent, a closed offer, ...) only for a while:
the complete history is always one replay away (DESIGN.md rule 7). Each kind
has a *terminal index*: an insertion-ordered map ``id -> occurred_at`` of the
event that made the entity terminal, oldest first. An entity leaves live
state when

- its index grows past the kind's count limit (the oldest goes first), or
- at every ``AGE_CHECK_EVERY``-th event of the cluster, when it became terminal more than
  ``max_age_seconds`` of *source time* before the state's **watermark** (never the
  wall clock: the fold reads no clock).

The watermark is the median ``occurred_at`` of the last ``RECENT`` events, taken at
each age check and never moving back. One event dated far ahead (a source clock set
to 9999-12-31, or a raw write past ingest's skew check) cannot move it: with the
newest time seen instead, that one event made every terminal entity "older than a
week" at the next check and dropped them all (issue 14, H3). Worked example
(``RECENT`` 16, ages of one week): 15 events at 10:00..10:15 and one at
9999-12-31: the median is ~10:08, so nothing younger than a week before 10:08 goes;
it takes a majority of the last 16 events to move the watermark that far. The price
is a lag of about eight events behind the newest time.

Worked example (``max_terminal_tasks=2``): t1 FINISHED at 10:00, t2 FAILED at
10:01, t3 KILLED at 10:02 -> the index is {t2, t3} and t1 is gone from
``entity()``; ``take_dirty()`` reports ("task", "t1") so the processor
deletes its etcd key. A LOST task sits in the index too (it may never come
back), and leaves it if it reports RUNNING again.

Entities that are removed outright (namespaces, nodes, RCs and services on
``*.deleted``) are not retained at all.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kmevents.reducer.state import ClusterState

#: Age pruning runs every this many events of the cluster (a power of two). Counted per
#: state, not by offset: a cluster sharing its partition sees only some offsets, and with
#: 1,024 clusters in turn one of them would never have met a multiple of this.
AGE_CHECK_EVERY = 1024
#: How many of the latest events' times the watermark is the median of (a power of two).
RECENT = 16

#: Kinds that have a terminal index, and the Retention field that limits each.
RETAINED_KINDS = {
    "task": "max_terminal_tasks",
    "offer": "max_closed_offers",
    "agent": "max_removed_agents",
    "pod": "max_deleted_pods",
    "framework": "max_terminal_other",
    "executor": "max_terminal_other",
    "inverse_offer": "max_closed_offers",
}


@dataclass(frozen=True, slots=True)
class Retention:
    """Limits on what the live state keeps. Recorded in every snapshot."""

    #: terminal tasks (FINISHED, FAILED, KILLED, ERROR, DROPPED, GONE,
    #: GONE_BY_OPERATOR) plus tasks parked in LOST/UNREACHABLE/UNKNOWN; k8sm keeps 1024.
    max_terminal_tasks: int = 20_000
    #: accepted, declined, rescinded and expired offers (and closed inverse offers).
    max_closed_offers: int = 10_000
    #: removed agents.
    max_removed_agents: int = 10_000
    #: deleted pods.
    max_deleted_pods: int = 20_000
    #: removed frameworks and executors.
    max_terminal_other: int = 10_000
    #: drop terminal entities this much source time after they became terminal
    #: (None: count limits only). Default one week.
    max_age_seconds: float | None = 7 * 86400.0
    #: events whose dedupe_key (or event_id) was seen among the last
    #: dedupe_window .. 2*dedupe_window distinct keys are skipped as duplicates.
    dedupe_window: int = 100_000
    #: status uuids remembered per task (a re-delivered status update with one
    #: of them is a duplicate, whatever the global window says).
    uuids_per_task: int = 8
    #: master failovers kept in the cluster entity's history.
    failover_history: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Retention:
        return cls(**d)

    def limit(self, kind: str) -> int:
        return int(getattr(self, RETAINED_KINDS[kind]))


#: A terminal index for a limit up to this is a plain dict, above it an OrderedDict (:func:`new_index`).
PLAIN_UP_TO = 65_536


def new_index(limit: int) -> dict[str, str]:
    """An empty terminal index (``{id: time}``, oldest first) for ``limit`` ids.

    Up to :data:`PLAIN_UP_TO`, a plain dict: insertion-ordered as an OrderedDict (re-inserting
    an id moves it to the end in both), so snapshots and deltas are the same, without the
    OrderedDict's 32-byte node an entry and pointer a table slot (~1.1 MiB for 20,000 ids,
    issue 17). Popping a dict's oldest (:func:`pop_oldest`) skips the slots of the ids popped
    before it since the dict last resized, which grows with the limit: ~3.5 µs at 20,000 ids
    against 0.4. Above, an OrderedDict, whose pops stay O(1)."""
    return {} if limit <= PLAIN_UP_TO else OrderedDict()


def new_indexes(limits: dict[str, int]) -> dict[str, dict[str, str]]:
    """The terminal indexes for ``limits`` (kind -> how many ids), each as :func:`new_index`."""
    return {kind: new_index(limits[kind]) for kind in RETAINED_KINDS}


def pop_oldest(idx: dict[str, str]) -> str:
    """Remove the oldest id of a terminal index (one that is not empty; a dict or an
    OrderedDict, :func:`new_index`), and return it."""
    eid = next(iter(idx))
    del idx[eid]
    return eid


def mark(st: ClusterState, kind: str, eid: str, t: str) -> None:
    """``kind/eid`` became terminal at ``t``: index it, prune past the count limit."""
    idx = st._terminal[kind]
    if eid in idx:
        return
    base = st._base  # each change noted first, while a delta's base is tracked (tracking.py)
    if base is None:
        idx[eid] = t
        if len(idx) > st._limits[kind]:
            _drop(st, kind, pop_oldest(idx))
        return
    log = base.track.orders[kind]
    log.adding(eid)
    idx[eid] = t
    if len(idx) > st._limits[kind]:
        oldest = next(iter(idx))
        log.removing(idx, oldest, front=True)
        del idx[oldest]
        _drop(st, kind, oldest)


def unmark(st: ClusterState, kind: str, eid: str) -> None:
    """``kind/eid`` is live again (a LOST task running, a removed agent re-registering)."""
    idx = st._terminal[kind]
    if st._base is not None and eid in idx:
        st._base.track.orders[kind].removing(idx, eid)
    idx.pop(eid, None)


def _drop(st: ClusterState, kind: str, eid: str) -> None:
    """Remove a pruned entity without reading its value: a packed table's would be decoded
    and a fork's copied first (``pop``), for nothing but a task's id, which only an odd task
    (taskids.py) needs. Both were ~6 % of a warm read's fold at the simulator's scale."""
    table = st._tables[kind]
    if eid not in table:
        return
    st._dirty.add((kind, eid))
    if kind == "task":
        from kmevents.reducer.taskids import forget_task, has_odd_tasks

        if has_odd_tasks(st):
            forget_task(st, table.pop(eid)["task_id"], eid)
            return
    del table[eid]


def _parse(t: str) -> dt.datetime:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))


def _fmt(d: dt.datetime) -> str:
    return d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def advance_watermark(st: ClusterState) -> str:
    """Move ``st.watermark`` to the median time of the last ``RECENT`` events, if that is later."""
    times = sorted(t for t in st._recent if t)
    if times:
        median = times[len(times) // 2]
        if median > st.watermark:
            st.watermark = median
    return st.watermark


def prune_by_age(st: ClusterState) -> None:
    """Drop terminal entities older than ``max_age_seconds`` before the watermark."""
    age = st.retention.max_age_seconds
    newest = advance_watermark(st)
    if age is None or not newest:
        return
    try:
        cutoff = _fmt(_parse(newest) - dt.timedelta(seconds=age))
    except (ValueError, OverflowError):
        return
    base = st._base
    for kind, idx in st._terminal.items():
        log = None if base is None else base.track.orders[kind]
        # Oldest first in log order; source times are nearly ordered, so stop at
        # the first entry that is young enough (a later, older one waits for the
        # count limit or the next check).
        while idx:
            eid, t = next(iter(idx.items()))
            if t >= cutoff:
                break
            if log is not None:  # noted first (tracking.py)
                log.removing(idx, eid, front=True)
            del idx[eid]
            _drop(st, kind, eid)
