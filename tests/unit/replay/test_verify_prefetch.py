"""verify reads each stored snapshot one entry ahead of its fold (replay/verify.py ``_Prefetch``)."""

from __future__ import annotations

import asyncio
from typing import Any

from kmevents.replay.verify import _Prefetch


class _Store:
    def __init__(self) -> None:
        self.reads: list[int] = []

    async def state_bytes(self, entry: dict[str, Any]) -> bytes:
        self.reads.append(int(entry["offset"]))
        await asyncio.sleep(0)
        return b"s%d" % int(entry["offset"])

    async def full_bytes(self, entry: dict[str, Any]) -> bytes:
        return b"rebuilt%d" % int(entry["offset"])


def test_each_entry_is_read_once_the_next_while_the_fold_runs() -> None:
    async def go() -> None:
        store = _Store()
        entries = [{"offset": 10}, {"offset": 20, "kind": "delta", "base": 10}, {"offset": 30}]
        p = _Prefetch(store, entries)  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert store.reads == [10]  # the first is read before the fold gets there
        assert await p.full_bytes(entries[0]) == b"s10"
        p.done(entries[0])
        await asyncio.sleep(0.01)
        assert store.reads == [10, 20]
        assert await p.state_bytes(entries[1]) == b"s20"
        assert await p.full_bytes(entries[1]) == b"rebuilt20"  # a delta's full bytes are rebuilt, not prefetched
        p.done(entries[1])
        assert await p.full_bytes(entries[2]) == b"s30"
        p.done(entries[2])
        p.close()
        assert store.reads == [10, 20, 30]

    asyncio.run(go())


def test_an_entry_passed_over_is_not_read_and_close_cancels_the_read_in_flight() -> None:
    async def go() -> None:
        store = _Store()
        entries = [{"offset": 10}, {"offset": 20}, {"offset": 30}]
        p = _Prefetch(store, entries)  # type: ignore[arg-type]
        p.done(entries[1])  # 10 and 20 passed (their checks did not need the bytes)
        await asyncio.sleep(0.01)
        assert store.reads[-1] == 30 and 20 not in store.reads
        p.close()
        assert p.task is None

    asyncio.run(go())
