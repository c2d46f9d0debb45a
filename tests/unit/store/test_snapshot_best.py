"""``Snapshots.best`` with a time bound: entries that record their state's latest event time are
placed without loading them, and the answer is the one loading every candidate gives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kmevents.reducer import ClusterState, apply
from kmevents.simulate import generate
from tests.unit.store.test_snapshot_deltas import InMemory


def _log() -> tuple[list[dict[str, Any]], dict[int, bytes], list[str]]:
    """Entries (a full snapshot every 2,000 events, deltas every 500 between), their bytes, and
    every event's time."""
    evs = list(generate("sb", 4, 8000))
    st = ClusterState.empty("sb")
    entries, blobs, times = [], {}, []
    base = None
    for i, e in enumerate(evs):
        apply(st, e, offset=i)
        st.take_dirty()
        times.append(e["occurred_at"])
        if (i + 1) % 500:
            continue
        chain = f"{i:064x}"
        entry: dict[str, Any] = {"cluster": "sb", "offset": i, "chain": chain,
                                 "max_occurred_at": st.max_occurred_at}
        if (i + 1) % 2000 == 0 or base is None:
            blobs[i] = st.to_snapshot(chain_hash=chain)
            entry["kind"] = "full"
            st.mark_base(i)
            base = i
        else:
            blobs[i] = st.to_delta(chain_hash=chain)
            entry.update(kind="delta", base=base)
        entries.append(entry)
    return entries, blobs, times


@pytest.fixture(scope="module")
def log() -> tuple[list[dict[str, Any]], dict[int, bytes], list[str]]:
    return _log()


def _best(store: InMemory, bound: str, at_or_before: int = 10**9) -> int | None:
    got = asyncio.run(store.best("sb", at_or_before=at_or_before, occurred_bound=bound))
    return None if got is None else got.offset


@pytest.mark.parametrize("share", [0.0, 0.1, 0.26, 0.5, 0.74, 0.9, 1.0])
def test_entries_with_their_times_are_placed_without_loading_and_give_what_loading_gives(
        log: tuple[list[dict[str, Any]], dict[int, bytes], list[str]], share: float) -> None:
    entries, blobs, times = log
    bound = sorted(times)[int(share * (len(times) - 1))]
    timed = InMemory(entries, blobs)
    untimed = InMemory([{k: v for k, v in e.items() if k != "max_occurred_at"} for e in entries], blobs)
    want = _best(untimed, bound)
    assert _best(timed, bound) == want
    if want is not None:
        base = next(e.get("base") for e in entries if e["offset"] == want)
        assert sorted(timed.reads) == sorted(x for x in (want, base) if x is not None)  # the one chosen only
        assert len(untimed.reads) > len(timed.reads)
    else:
        assert timed.reads == []


def test_an_entry_placed_by_its_time_that_does_not_load_gives_the_one_before_it(
        log: tuple[list[dict[str, Any]], dict[int, bytes], list[str]]) -> None:
    entries, blobs, times = log
    bound = max(times)
    newest = entries[-1]["offset"]
    broken = InMemory(entries, {k: v for k, v in blobs.items() if k != newest})
    assert _best(broken, bound) == entries[-2]["offset"]


def test_after_leaves_the_entries_at_or_before_it_unread(
        log: tuple[list[dict[str, Any]], dict[int, bytes], list[str]]) -> None:
    """A caller whose own fold is at ``after`` (the backfill) gets only a state past it: the newest
    entry in ``(after, at_or_before]``, or None without reading any when there is none there."""
    entries, blobs, _ = log
    offsets = [e["offset"] for e in entries]
    store = InMemory(entries, blobs)
    got = asyncio.run(store.best("sb", at_or_before=offsets[5], after=offsets[4]))
    assert got is not None and got.offset == offsets[5]
    store = InMemory(entries, blobs)
    assert asyncio.run(store.best("sb", at_or_before=offsets[5] + 10, after=offsets[5])) is None
    assert store.reads == []
    # the newest in the range does not load: the one before it, while it is still past ``after``
    broken = InMemory(entries, {k: v for k, v in blobs.items() if k != offsets[5]})
    got = asyncio.run(broken.best("sb", at_or_before=offsets[5], after=offsets[3]))
    assert got is not None and got.offset == offsets[4]
    assert asyncio.run(broken.best("sb", at_or_before=offsets[5], after=offsets[4])) is None
