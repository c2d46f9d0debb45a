"""The snapshot store's readers load deltas: base held once, a fresh fork per delta."""

from __future__ import annotations

import asyncio
from typing import Any

from kmevents.reducer import ClusterState, apply
from kmevents.simulate import generate
from kmevents.store.snapshots import Snapshots


class InMemory(Snapshots):
    def __init__(self, entries: list[dict[str, Any]], blobs: dict[int, bytes]) -> None:
        self._entries = entries
        self.blobs = blobs
        self.reads: list[int] = []

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        return [e for e in self._entries if e["cluster"] == cluster]

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        self.reads.append(int(entry["offset"]))
        return self.blobs.get(int(entry["offset"]))


def _store() -> tuple[InMemory, dict[int, bytes]]:
    evs = list(generate("sd", 3, 3000))
    st = ClusterState.empty("sd")
    entries, blobs, fulls = [], {}, {}
    for i, e in enumerate(evs):
        apply(st, e, offset=i)
        st.take_dirty()
        if i == 999:
            blobs[i] = fulls[i] = st.to_snapshot(chain_hash="c999")
            entries.append({"cluster": "sd", "offset": i, "chain": "c999", "kind": "full"})
            st.mark_base(i)
        elif i in (1999, 2999):
            blobs[i] = st.to_delta(chain_hash=f"c{i}")
            fulls[i] = st.to_snapshot(chain_hash=f"c{i}")
            entries.append({"cluster": "sd", "offset": i, "chain": f"c{i}", "kind": "delta", "base": 999})
    return InMemory(entries, blobs), fulls


def test_deltas_load_from_one_held_base_and_leave_it_untouched() -> None:
    store, fulls = _store()

    async def go() -> None:
        for off in (1999, 2999, 1999):
            entry = next(e for e in await store.entries("sd") if e["offset"] == off)
            st = await store.load(entry)
            assert st is not None
            assert st.to_snapshot(chain_hash=f"c{off}") == fulls[off]
            assert await store.full_bytes(entry) == fulls[off]
            # folding on from it does not reach the held base
            for e in list(generate("sd", 4, 50)):
                apply(st, e)
        assert store.reads.count(999) == 1, store.reads  # the base was read once
        assert store.holds_base("sd", 999)

    asyncio.run(go())


def test_a_delta_whose_base_is_gone_is_unusable_not_wrong() -> None:
    store, _ = _store()
    del store.blobs[999]
    store._entries = [e for e in store._entries if e["offset"] != 999]

    async def go() -> None:
        entry = next(e for e in await store.entries("sd") if e["offset"] == 1999)
        assert await store.load(entry) is None
        best = await store.best("sd", at_or_before=2999)
        assert best is None

    asyncio.run(go())


def test_one_point_applies_the_delta_to_the_base_as_loaded_and_holds_nothing() -> None:
    store, fulls = _store()
    store.one_point()

    async def go() -> None:
        for off in (2999, 1999):
            entry = next(e for e in await store.entries("sd") if e["offset"] == off)
            st = await store.load(entry)
            assert st is not None
            assert st.to_snapshot(chain_hash=f"c{off}") == fulls[off]
        assert not store.holds_base("sd", 999)
        assert store.reads.count(999) == 2, store.reads  # each read loads its base again
        best = await store.best("sd", at_or_before=2500)
        assert best is not None and best.offset == 1999
        assert best.state.to_snapshot(chain_hash="c1999") == fulls[1999]

    asyncio.run(go())


def test_a_damaged_delta_in_one_point_mode_falls_back_to_the_snapshot_before() -> None:
    store, fulls = _store()
    store.one_point()
    store.blobs[2999] = store.blobs[2999][:-40]  # cut: not JSON

    async def go() -> None:
        best = await store.best("sd", at_or_before=2999)
        assert best is not None and best.offset == 1999
        assert best.state.to_snapshot(chain_hash="c1999") == fulls[1999]

    asyncio.run(go())


def test_combined_snapshots_pass_one_point_to_their_parts() -> None:
    from replay.snapshots import CombinedSnapshots

    a, _ = _store()
    b, _ = _store()
    both = CombinedSnapshots([a, b])
    both.one_point()
    assert not (both.hold_bases or a.hold_bases or b.hold_bases)
