"""A report with --from starts from the newest snapshot well before its window, and says what
the report of the whole log says.

The log is the simulator's (lost, drained and re-added agents, a master failover, k8sm leader
changes, eviction storms, a deleted service); the snapshots are taken along one replay of it,
full ones and deltas against them, as the worker writes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents.reducer import ClusterState
from kmevents.report import data
from kmevents.settings import MonitorSettings
from kmevents.simulate import generate
from kmevents.timespec import iso_of_micros, micros_of
from tests.unit.store.test_snapshot_deltas import InMemory

CLUSTER = "rps"
#: a rate window and a silence short enough for several snapshots to lie before most windows
#: of a five-minute log (the lookback is then 31 s)
SHORT = MonitorSettings(window_seconds=20.0, silent_seconds=30.0, pending_pod_seconds=10.0,
                        rc_below_seconds=10.0, service_mismatch_seconds=5.0)
EVERY = 500  # events between two snapshots


class ListSource(Source):
    """Events as a log in memory (offsets 0..n-1) that counts the records it hands out."""

    name = "memory"
    partition = 0

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.records = [LogRecord(i, 1_767_225_600_000 + i, CLUSTER.encode(), orjson.dumps(e))
                        for i, e in enumerate(events)]
        self.read = 0

    async def covers(self) -> tuple[int, int]:
        return 0, len(self.records) - 1

    async def chain_start(self) -> str | None:
        return None

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        out = [r for r in self.records if r.offset >= start and (end is None or r.offset <= end)]
        self.read += len(out)
        yield out


def snapshots_of(events: list[dict[str, Any]]) -> InMemory:
    """Snapshots every ``EVERY`` events along one replay: a full one, then deltas against it,
    a full one every fourth."""
    from kmevents.replay.engine import Target, replay

    entries: list[dict[str, Any]] = []
    blobs: dict[int, bytes] = {}
    base = [-1]

    def take(rec: Any, ev: dict[str, Any], anns: list[dict[str, Any]], s: ClusterState) -> None:
        s.take_dirty()
        i = rec.offset
        if (i + 1) % EVERY:
            return
        if base[0] < 0 or (i + 1) % (4 * EVERY) == 0:
            blobs[i] = s.to_snapshot(chain_hash=f"{i:064x}")
            entries.append({"cluster": CLUSTER, "offset": i, "chain": f"{i:064x}", "kind": "full"})
            s.mark_base(i)
            base[0] = i
        else:
            blobs[i] = s.to_delta(chain_hash=f"{i:064x}")
            entries.append({"cluster": CLUSTER, "offset": i, "chain": f"{i:064x}", "kind": "delta", "base": base[0]})

    asyncio.run(replay(ListSource(events), CLUSTER, Target(), on_event=take, progress=False))
    return InMemory(entries, blobs)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(CLUSTER, 11, 12000, agents=30))


@pytest.fixture(scope="module")
def store(events: list[dict[str, Any]]) -> InMemory:
    return snapshots_of(events)


def both(events: list[dict[str, Any]], store: InMemory, start: str, end: str | None,
         thresholds: MonitorSettings = SHORT) -> tuple[data.ReportData, data.ReportData, ListSource]:
    whole = asyncio.run(data.collect(ListSource(events), CLUSTER, start, end, thresholds=thresholds))
    src = ListSource(events)
    seeded = asyncio.run(data.collect(src, CLUSTER, start, end, thresholds=thresholds, snapshots=store))
    return whole, seeded, src


def at(events: list[dict[str, Any]], share: float) -> str:
    """The time of the event at ``share`` of the log (a canonical time)."""
    return iso_of_micros(micros_of(events[int(share * (len(events) - 1))]["occurred_at"]))


@pytest.mark.parametrize(("lo", "hi"), [(0.5, 0.6), (0.3, 0.95), (0.8, None), (0.45, 0.46), (0.9, 1.0)])
def test_a_report_from_the_snapshot_before_its_window_is_the_whole_logs(events: list[dict[str, Any]],
                                                                        store: InMemory, lo: float,
                                                                        hi: float | None) -> None:
    whole, seeded, src = both(events, store, at(events, lo), at(events, hi) if hi is not None else None)
    assert whole.seeded_at is None and seeded.seeded_at is not None
    tail = len(events) - (seeded.seeded_at + 1)  # read once; twice with --from alone (its span first)
    assert src.read == (tail if hi is not None else 2 * tail)
    doc = seeded.as_dict()
    assert orjson.dumps(doc) == orjson.dumps(whole.as_dict())  # the same document, in the same order
    assert doc["events_in_window"] > 0 and doc["agents"]


def test_the_snapshot_is_the_newest_one_whose_events_all_happened_a_lookback_before_the_window(
        events: list[dict[str, Any]], store: InMemory) -> None:
    start = at(events, 0.7)
    bound = micros_of(start) - data.lookback_us(SHORT)
    seeded = both(events, store, start, None)[1]
    assert seeded.seeded_at is not None

    async def states() -> list[ClusterState]:
        out = []
        for e in await store.entries(CLUSTER):
            loaded = await store.load(e)
            assert loaded is not None
            out.append(loaded)
        return out

    times = {s.offset: micros_of(s.max_occurred_at) for s in asyncio.run(states())}
    assert times[seeded.seeded_at] <= bound
    later = [off for off in times if off > seeded.seeded_at]
    assert later and times[min(later)] > bound  # the next one holds an event of the lookback


def test_a_window_with_no_snapshot_far_enough_before_it_reads_the_whole_log(events: list[dict[str, Any]],
                                                                            store: InMemory) -> None:
    whole, seeded, src = both(events, store, at(events, 0.02), at(events, 0.2))
    assert seeded.seeded_at is None and src.read == len(events)
    assert orjson.dumps(seeded.as_dict()) == orjson.dumps(whole.as_dict())


def test_the_default_lookback_holds_the_rules_window_and_a_sources_silence() -> None:
    t = MonitorSettings()
    assert data.lookback_us(t) == int((max(t.window_seconds, t.silent_seconds) + 1) * 1e6)
    assert data.lookback_us(MonitorSettings(window_seconds=900.0)) == 901_000_000


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lo=st.floats(0.25, 0.95), length=st.floats(0.001, 0.3))
def test_any_window_reads_the_same_from_a_snapshot(events: list[dict[str, Any]], store: InMemory, lo: float,
                                                   length: float) -> None:
    whole, seeded, _ = both(events, store, at(events, lo), at(events, min(1.0, lo + length)))
    assert orjson.dumps(seeded.as_dict()) == orjson.dumps(whole.as_dict())


def test_a_down_period_open_across_the_snapshot_says_what_the_whole_log_says() -> None:
    """The master's heartbeat is lost, then lost again with more heartbeats missed, then a
    snapshot, then the window: the master's down period gives the latest count either way."""
    import copy

    evs = list(generate(CLUSTER, 11, 12000, agents=30))
    first = next(i for i, e in enumerate(evs) if e["type"] == "master.heartbeat_lost")
    again = copy.deepcopy(evs[first])
    again.update(event_id=f"{1:032x}", dedupe_key="lost-again", occurred_at=evs[first + 1000]["occurred_at"])
    again["payload"]["missed"] = 7
    evs.insert(first + 1001, again)
    store = snapshots_of(evs)
    whole, seeded, _ = both(evs, store, at(evs, 0.58), at(evs, 0.66))
    assert seeded.seeded_at is not None and seeded.seeded_at > first + 1001
    assert [x["why"] for x in whole.master_down] == ["7 heartbeats missed"]
    assert orjson.dumps(seeded.as_dict()) == orjson.dumps(whole.as_dict())
