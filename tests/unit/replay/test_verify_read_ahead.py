"""verify reads etcd's next page while it compares one (replay/verify.py ``_read_ahead``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kmevents.replay.verify import _read_ahead


def test_pages_come_in_order_and_the_next_is_asked_for_before_this_one_is_compared() -> None:
    asked: list[int] = []

    async def pages() -> AsyncIterator[tuple[int, list]]:
        for i in range(4):
            asked.append(i)
            yield 7, [i]

    async def run() -> list[tuple[int, list[int], list[int]]]:
        out = []
        async for rev, kvs in _read_ahead(pages()):
            await asyncio.sleep(0)  # (the comparison's awaits: the read ahead runs meanwhile)
            out.append((rev, kvs, list(asked)))
        return out

    got = asyncio.run(run())
    assert [kvs for _, kvs, _ in got] == [[0], [1], [2], [3]]
    assert got[0][2] == [0, 1], "the second page was asked for while the first was compared"


def test_an_error_of_etcd_reaches_the_caller_and_stopping_early_cancels_the_read() -> None:
    cancelled = []

    async def failing() -> AsyncIterator[tuple[int, list]]:
        yield 1, [1]
        raise RuntimeError("etcd went away")

    async def slow() -> AsyncIterator[tuple[int, list]]:
        yield 1, [1]
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        yield 1, [2]

    async def drain(pages: AsyncIterator[tuple[int, list]]) -> list:
        return [kvs async for _, kvs in _read_ahead(pages)]

    with pytest.raises(RuntimeError, match="etcd went away"):
        asyncio.run(drain(failing()))

    async def first_only() -> None:
        gen = _read_ahead(slow())
        async for _ in gen:
            await asyncio.sleep(0)  # the read of the next page has begun
            break
        await gen.aclose()
        await asyncio.sleep(0)

    asyncio.run(first_only())
    assert cancelled == [True]
