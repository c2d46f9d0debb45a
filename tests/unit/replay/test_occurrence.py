"""A point by occurrence stops reading where the touched-entity index says nothing later happened
by its time (replay/occurrence.py), and its state is the one a read to the log's end gives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kmevents.replay import occurrence
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord

from kmevents.store import hosts, touched
from kmevents.timespec import iso_of_micros, micros_of
from tests.unit import test_report_from_snapshot
from tests.unit.store.test_snapshot_deltas import InMemory
from tests.unit.test_report_from_snapshot import CLUSTER, ListSource

#: the simulated log and its snapshots (module-scoped fixtures: the report tests' own)
events, store = test_report_from_snapshot.events, test_report_from_snapshot.store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def t(minute: float) -> str:
    return iso_of_micros(T0 + int(minute * 60_000_000))


class Log(ListSource):
    """Records at offsets 0..n-1 whose values are ``values`` (counts what it hands out)."""

    def __init__(self, values: list[bytes]) -> None:
        self.records = [LogRecord(i, 1_767_225_600_000 + i, CLUSTER.encode(), v) for i, v in enumerate(values)]
        self.read = 0


def timed(times: list[str | None]) -> list[bytes]:
    """A record per time: an event that occurred then, or (None) one without a time."""
    return [orjson.dumps({"type": "x", "occurred_at": o} if o is not None else {"type": "x"}) for o in times]


def block(first: int, last: int, times: list[str | None] | None) -> touched.Block:
    """The head the worker writes of ``first..last`` (``times`` None: a block written before heads
    carried their times)."""
    if times is None:
        return touched.Block(first, last)
    known = [o for o in times[first:last + 1] if o is not None]
    return touched.Block(first, last, min_occurred_at=min(known, default=None), timed=True,
                         latest_occurred_at=max(known, default=None), timed_latest=True)


async def _heads(blocks: Iterable[touched.Block]) -> AsyncIterator[touched.Block]:
    for b in sorted(blocks, key=lambda b: b.first, reverse=True):
        yield b


def cut(times: list[str | None], blocks: list[touched.Block], at: str, start: int = 0,
        stop: int | None = None) -> occurrence.Cut:
    src = Log(timed(times))
    return asyncio.run(occurrence.read_end(src, _heads(blocks), at, start,
                                           len(times) - 1 if stop is None else stop))


def test_the_worked_example_reads_to_the_last_block_that_may_hold_an_event_by_the_time() -> None:
    # offsets 0..9: blocks of 2; offset 3 arrived late (09:59); 8..9 are past the index
    times = [t(58), t(58.5), t(59.5), t(59), t(61), t(62), t(63), t(64), t(65), t(66)]
    blocks = [block(a, a + 1, times) for a in range(0, 8, 2)]
    got = cut(times, blocks, t(60), start=1)
    assert got.end == 3


def test_a_late_arrival_past_the_index_ends_the_read_there() -> None:
    times = [t(1), t(2), t(9), t(9), t(1.5), t(9)]
    assert cut(times, [block(0, 1, times), block(2, 3, times)], t(2)).end == 4


def test_a_hole_in_the_index_and_a_block_that_does_not_say_its_times_are_read_through() -> None:
    times = [t(1), t(9), t(9), t(9), t(9), t(9), t(9), t(9)]
    full = [block(0, 1, times), block(2, 3, times), block(4, 5, times), block(6, 7, times)]
    assert cut(times, full, t(2)).end == 1
    assert cut(times, [full[0], full[1], full[3]], t(2)).end == 5  # 4..5 left out (damaged)
    assert cut(times, [full[0], block(2, 3, None), full[2], full[3]], t(2)).end == 3


def test_without_an_index_or_with_a_long_unindexed_tail_the_read_goes_to_the_end(monkeypatch: Any) -> None:
    times = [t(1), t(9), t(9), t(9), t(9), t(9)]
    assert cut(times, [], t(2)).end == 5
    monkeypatch.setattr(occurrence, "TAIL_SCAN_RECORDS", 2)
    assert cut(times, [block(0, 1, times)], t(2)).end == 5  # 4 records past the index: not scanned
    assert cut(times, [block(0, 3, times)], t(2)).end == 3  # 2: scanned, none by the time: the block ends it


def draw_log(data: st.DataObject) -> tuple[int, list[str | None], list[tuple[int, int]], int, list[touched.Block]]:
    """A random log's times, its blocks' spans, how many of them are indexed (the newest spans past the
    worker are not blocks yet) and the heads of those (timed, untimed, or damaged: left out)."""
    n = data.draw(st.integers(1, 60))
    times = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 40).map(t)), min_size=n, max_size=n))
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=12))) if n > 1 else []
    spans = list(zip([0, *cuts], [c - 1 for c in cuts] + [n - 1], strict=True))
    indexed = data.draw(st.integers(0, len(spans)))
    blocks = []
    for a, b in spans[:indexed]:
        kind = data.draw(st.sampled_from(["timed", "timed", "timed", "untimed", "damaged"]))
        if kind != "damaged":
            blocks.append(block(a, b, times if kind == "timed" else None))
    return n, times, spans, indexed, blocks


def begin(times: list[str | None], blocks: list[touched.Block], since: str, start: int = 0) -> int:
    return asyncio.run(occurrence.read_start(_heads(blocks), since, start, len(times) - 1)).begin


def test_a_search_from_a_time_begins_at_the_oldest_block_that_may_hold_an_event_from_it() -> None:
    # blocks of 2; offset 2 holds a late arrival of 10:01 among events of 09:5x; 8..9 past the index
    times = [t(50), t(51), t(61), t(52), t(53), t(54), t(62), t(63), t(64), t(65)]
    blocks = [block(a, a + 1, times) for a in range(0, 8, 2)]
    assert begin(times, blocks, t(60)) == 2
    assert begin(times, blocks, t(61.5)) == 6
    assert begin(times, blocks, t(64.5)) == 8  # the records past the index are read
    assert begin(times, blocks, t(70)) == 8
    assert begin(times, blocks[:3], t(70)) == 6  # (no block for 6..7: they are read)
    assert begin(times, [blocks[0], blocks[2], blocks[3]], t(70)) == 2  # a hole (a damaged block) is read
    assert begin(times, [blocks[0], block(2, 3, None), blocks[2], blocks[3]], t(70)) == 2  # untimed: read
    assert begin(times, blocks[1:], t(70)) == 0  # below the oldest block: not indexed
    assert begin(times, [], t(70)) == 0
    assert begin(times, blocks, t(60), start=5) == 6  # (4..5 ended before the time)
    assert begin(times, blocks, t(60), start=3) == 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_nothing_a_search_from_a_time_skips_happened_at_or_after_it(data: st.DataObject) -> None:
    n, times, spans, indexed, blocks = draw_log(data)
    since = t(data.draw(st.integers(0, 40)))
    start = data.draw(st.integers(0, n - 1))
    got = begin(times, blocks, since, start=start)
    assert start <= got <= n
    for o in range(start, got):  # what was skipped: all before the time, or timeless
        assert times[o] is None or times[o] < since
    if len(blocks) == indexed == len(spans) and all(b.timed for b in blocks):  # a whole, timed index: tight
        holding = [b.first for b in blocks if b.last >= start and b.may_hold_from(since)]
        assert got == max(min(holding, default=n), start)


def test_a_point_before_everything_reads_nothing_and_knows_the_earliest_time() -> None:
    times = [t(5), t(4), t(6), t(7), None, t(3.5)]
    got = cut(times, [block(0, 1, times), block(2, 3, times)], t(1))
    assert got.end == -1 and got.earliest == t(3.5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_nothing_left_unread_happened_by_the_time(data: st.DataObject) -> None:
    n, times, spans, indexed, blocks = draw_log(data)
    at = t(data.draw(st.integers(0, 40)))
    start = data.draw(st.integers(0, n - 1))
    got = cut(times, blocks, at, start=start)
    assert start - 1 <= got.end <= n - 1
    for o in range(max(got.end + 1, start), n):  # what was left unread: all after the time, or timeless
        assert times[o] is None or times[o] > at
    if len(blocks) == indexed == len(spans) and all(b.timed for b in blocks):  # a whole, timed index: tight
        holding = [b.last for b in blocks if b.last >= start and b.may_hold_by(at)]
        assert got.end == max([min(h, n - 1) for h in holding], default=start - 1)


# -- the engine: the same state as a read to the log's end ----------------------------------------

EVERY_BLOCK = 150


class Indexed(InMemory):
    """Snapshots, the touched index's heads and the host directory the worker would have written for
    ``values``, the last ``unindexed`` records past them (not folded yet)."""

    def __init__(self, base: InMemory, values: list[bytes], unindexed: int = 0) -> None:
        super().__init__(base._entries, base.blobs)
        acc = touched.Accumulator()
        self.heads: list[touched.Block] = []
        self.directory = hosts.Directory()
        upto = len(values) - unindexed
        for i, v in enumerate(values[:upto]):
            ev = orjson.loads(v)
            acc.event(i, ev, applied=True)
            if (named := hosts.host_named(ev)) is not None:
                self.directory.note(i, *named)
            if acc.due(EVERY_BLOCK) or i == upto - 1:
                self.heads.append(touched.decode_head(acc.close(i)[1]))
        self.through = upto - 1
        self.walked = 0

    def index_heads(self, cluster: str, at: str | None = None, *,
                    since: str | None = None) -> AsyncGenerator[touched.Block, None] | None:
        async def walk() -> AsyncGenerator[touched.Block, None]:
            for b in reversed(self.heads):
                self.walked += 1
                yield b
        return walk()

    async def host_directory(self, cluster: str, partition: int) -> hosts.Known | None:
        entries = [(aid, [(o, h) for o, h in ch]) for aid, ch in self.directory.changes.items()]
        return hosts.Known(entries, self.through)


def late_arrivals(events: list[dict[str, Any]]) -> int:
    """Events recorded after one that happened later (what makes a point by occurrence read on)."""
    latest, late = "", 0
    for e in events:
        late += e["occurred_at"] < latest
        latest = max(latest, e["occurred_at"])
    return late


@pytest.mark.parametrize("share", [0.05, 0.3, 0.55, 0.8, 0.97])
@pytest.mark.parametrize("unindexed", [0, 40])
def test_a_point_by_occurrence_read_with_the_index_is_the_whole_reads_state(
        events: list[dict[str, Any]], store: InMemory, share: float, unindexed: int) -> None:
    assert late_arrivals(events) > 0  # (else the test proves nothing)
    values = [orjson.dumps(e) for e in events]
    point = iso_of_micros(micros_of(events[int(share * (len(events) - 1))]["occurred_at"]))
    whole_src, cut_src = Log(values), Log(values)
    whole = asyncio.run(replay(whole_src, CLUSTER, Target.parse(at=point), snapshots=store, progress=False))
    indexed = Indexed(store, values, unindexed)
    got = asyncio.run(replay(cut_src, CLUSTER, Target.parse(at=point), snapshots=indexed, progress=False))
    assert got.state.to_snapshot(chain_hash="x") == whole.state.to_snapshot(chain_hash="x")
    assert got.applied == whole.applied and got.from_snapshot == whole.from_snapshot
    assert whole.end_offset == got.position()["log_last_offset"] == len(events) - 1
    if share < 0.9:  # (near the end, the last blocks may hold late arrivals)
        assert got.end_offset < whole.end_offset  # it stopped before the log's end ...
        assert cut_src.read < whole_src.read * 0.8  # ... and read much less of it
        assert indexed.walked < len(indexed.heads)  # and walked the index back only as far as it needed


def test_a_point_before_the_log_reads_nothing_and_says_when_it_starts(events: list[dict[str, Any]],
                                                                      store: InMemory) -> None:
    values = [orjson.dumps(e) for e in events]
    first = min(e["occurred_at"] for e in events)
    point = iso_of_micros(micros_of(first) - 1_000_000)
    whole = asyncio.run(replay(Log(values), CLUSTER, Target.parse(at=point), snapshots=store, progress=False))
    src = Log(values)
    got = asyncio.run(replay(src, CLUSTER, Target.parse(at=point), snapshots=Indexed(store, values),
                             progress=False))
    assert got.applied == whole.applied == 0
    assert got.log_start == whole.log_start and got.log_start is not None
    assert got.log_start["earliest_occurred_at"] == first
    assert src.read <= 1  # (the log's first record, for where it starts)


def test_a_block_says_the_earliest_time_of_every_event_it_decoded() -> None:
    acc = touched.Accumulator()
    acc.event(5, {"occurred_at": t(3)}, applied=True)
    acc.event(6, {"occurred_at": t(1)}, applied=False, failed=True)  # fold-failed: it may apply at a point
    acc.event(7, None, applied=False)  # undecodable
    acc.event(8, {"occurred_at": t(2)}, applied=True)
    b = touched.decode(acc.close(8)[1])
    assert (b.first, b.last, b.timed, b.min_occurred_at, b.max_occurred_at) == (5, 8, True, t(1), t(3))
    old = touched.decode_head(touched.encode(0, 9, 3, None, [1]))  # a block written before heads had times
    assert old.timed is False and old.may_hold_by(t(0))
    assert touched.decode_head(touched.encode(0, 9, 3, None, [1], min_occurred_at=None)).may_hold_by(t(9)) is False


# -- search: the same hits over a range of times, fewer records read -------------------------------

@pytest.mark.parametrize(("lo", "hi"), [(0.2, 0.3), (0.5, None), (None, 0.4), (0.9, 1.0), (0.0, 0.05)])
def test_a_search_to_a_time_reads_only_as_far_as_the_index_says_and_finds_the_same(
        events: list[dict[str, Any]], store: InMemory, lo: float | None, hi: float | None) -> None:
    from kmevents.replay import search

    from kmevents.timespec import Point, parse_time

    values = [orjson.dumps(e) for e in events]
    ordered = sorted(e["occurred_at"] for e in events)

    def point(share: float | None) -> Point | None:
        return None if share is None else Point(time=parse_time(ordered[int(share * (len(ordered) - 1))]))

    f = search.Filters(start=point(lo), end=point(hi))

    async def run(index: Any) -> tuple[list[dict[str, Any]], int]:
        src = Log(values)
        return [h async for h in search.hits(src, f, index=index, cluster=CLUSTER)], src.read

    whole, read_all = asyncio.run(run(None))
    got, read = asyncio.run(run(Indexed(store, values, unindexed=30)))
    assert got == whole and len(got) > 0
    assert read_all == len(events)
    if hi is not None and hi <= 0.5:
        assert read < read_all * 0.75
    if lo is not None and lo >= 0.5:  # it began past the log's first records, and named the same hosts
        assert read < read_all * 0.75


def named_long_ago(events: list[dict[str, Any]], share: float, gap: int = 1000) -> tuple[int, str]:
    """An event at about ``share`` of the log that names an agent by its ``agent_id`` only, a long way
    (``gap`` records) past the last record that said which host that id is on; and that host."""
    from kmevents.replay import search

    last: dict[str, tuple[int, str]] = {}
    for i, e in enumerate(events):
        named = hosts.host_named(e)
        if named is not None:
            last[named[0]] = (i, named[1])
            continue
        if i < share * len(events):
            continue
        pl = orjson.dumps(e.get("payload")).decode()
        ids = {v for k, v in search._walk(e.get("payload")) if k == "agent_id"}
        for aid, (j, host) in last.items():
            if i - j >= gap and aid in ids and host not in pl:
                return i, host
    raise AssertionError("no such event in the log")


@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("unindexed", [0, 200, 3000])
def test_a_search_from_a_time_finds_by_host_the_events_that_name_only_the_agents_id(
        events: list[dict[str, Any]], store: InMemory, share: float, unindexed: int) -> None:
    """``--agent HOST --from T``: a hit that names only the agent's id (a task's update) needs what
    the records before T said of the id's host, which the scan no longer reads: the directory says it
    (the records past the workers' checkpoint, ``unindexed``, the search learns itself)."""
    from kmevents.replay import search

    from kmevents.timespec import Point, parse_time

    values = [orjson.dumps(e) for e in events]
    k, host = named_long_ago(events, share)
    f = search.Filters(agent=host, start=Point(time=parse_time(events[k]["occurred_at"])))

    async def run(index: Any) -> tuple[list[dict[str, Any]], int]:
        src = Log(values)
        return [h async for h in search.hits(src, f, index=index, cluster=CLUSTER)], src.read

    whole, read_all = asyncio.run(run(None))
    got, read = asyncio.run(run(Indexed(store, values, unindexed=unindexed)))
    assert got == whole
    assert k in {h["offset"] for h in got}
    assert read < read_all


def test_a_group_says_its_latest_time_only_when_every_block_says_its_own() -> None:
    def both(first: int, lo: str | None, hi: str | None) -> bytes:
        return touched.encode(first, first + 9, 10, hi, [1], min_occurred_at=lo, latest_occurred_at=hi)

    assert touched.group_times([both(0, t(1), t(3)), both(10, t(2), t(7)), both(20, None, None)]) == {
        "min_occurred_at": t(1), "latest_occurred_at": t(7)}
    assert touched.group_times([both(0, t(1), t(3)), touched.encode(10, 19, 10, None, [1], min_occurred_at=t(2))]) == {
        "min_occurred_at": t(1)}  # a block written before blocks said their latest time
    acc = touched.Accumulator()
    acc.event(5, {"occurred_at": t(3)}, applied=True)
    acc.event(6, {"occurred_at": t(9)}, applied=False, failed=True)  # fold-failed: a search shows it
    acc.event(7, None, applied=False)
    b = touched.decode_head(acc.close(7)[1])
    assert (b.latest_occurred_at, b.timed_latest, b.max_occurred_at) == (t(9), True, t(3))
    assert b.may_hold_from(t(9)) and not b.may_hold_from(t(9.5))
    assert touched.Block(0, 9).may_hold_from(t(99))  # (untimed: anything)


@pytest.mark.parametrize("types", [["agent.removed"], ["task.*"], ["agent.removed", "pod.scheduled"], ["*"]])
def test_a_search_by_type_passes_over_what_cannot_match_undecoded_and_finds_the_same(
        events: list[dict[str, Any]], store: InMemory, types: list[str], monkeypatch: Any) -> None:
    """With the directory saying the hosts, a record whose bytes hold none of the types is not decoded;
    one whose type is written with escapes (past ingest) still is, and matches."""
    from kmevents.replay import search

    values = [orjson.dumps(e) for e in events]
    k = next(i for i, e in enumerate(events) if e["type"] == "agent.removed" and i > len(events) // 2)
    values[k] = values[k].replace(b'"agent.removed"', b'"agent.remov\\u0065d"')
    decoded = [0]
    real = search.decode_fast

    def counting(v: bytes) -> dict[str, Any]:
        decoded[0] += 1
        return real(v)

    monkeypatch.setattr(search, "decode_fast", counting)
    f = search.Filters(types=types)

    async def run(index: Any) -> tuple[list[dict[str, Any]], int]:
        decoded[0] = 0
        return [h async for h in search.hits(Log(values), f, index=index, cluster=CLUSTER)], decoded[0]

    whole, decoded_all = asyncio.run(run(None))
    got, decoded_here = asyncio.run(run(Indexed(store, values, unindexed=100)))
    assert got == whole and len(got) > 0
    if "agent.removed" in types:
        assert k in {h["offset"] for h in got}
        assert decoded_here < decoded_all // 2
    elif types == ["*"]:  # (no literal part: every record is decoded)
        assert decoded_here == decoded_all
    else:
        assert decoded_here < decoded_all
