"""The replay gate (kmevents/api/admission.py): at most N at once, a short FIFO queue,
429 at once beyond it, 503 after waiting too long, and no slot ever lost or doubled."""

from __future__ import annotations

import asyncio

import pytest

from kmevents.api.admission import Busy, Gate


async def _hold(gate: Gate, started: list[int], n: int, release: asyncio.Event) -> None:
    async with gate.slot():
        started.append(n)
        await release.wait()


async def test_beyond_the_running_slots_reads_queue_in_order_and_beyond_the_queue_get_429() -> None:
    gate = Gate("cold", running=1, queued=2, max_wait=30)
    started: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(gate, started, i, release)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert started == [0] and gate.running == 1 and gate.queued == 2
    with pytest.raises(Busy) as busy:
        async with gate.slot():
            raise AssertionError("must not run")
    assert busy.value.status == 429 and busy.value.retry_after >= 1
    assert "api.max_queued_replays=2" in str(busy.value)
    release.set()
    await asyncio.gather(*tasks)
    assert started == [0, 1, 2]  # first come, first served
    assert gate.running == 0 and gate.queued == 0 and gate.refused == {429: 1, 503: 0}


async def test_a_read_that_waits_longer_than_max_wait_gets_503_and_loses_no_slot() -> None:
    gate = Gate("cold", running=1, queued=4, max_wait=0.05)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, [], 0, release))
    await asyncio.sleep(0.01)
    with pytest.raises(Busy) as busy:
        async with gate.slot():
            raise AssertionError("must not run")
    assert busy.value.status == 503 and "saturated" in str(busy.value)
    assert gate.queued == 0
    release.set()
    await holder
    assert gate.running == 0
    async with gate.slot():  # the slot is free again
        assert gate.running == 1


async def test_a_cancelled_waiter_gives_its_place_up_and_the_next_one_runs() -> None:
    gate = Gate("warm", running=1, queued=4, max_wait=30)
    started: list[int] = []
    release = asyncio.Event()
    first = asyncio.create_task(_hold(gate, started, 0, release))
    second = asyncio.create_task(_hold(gate, started, 1, release))
    third = asyncio.create_task(_hold(gate, started, 2, release))
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, third)
    assert started == [0, 2] and gate.running == 0 and gate.queued == 0


async def test_retry_after_grows_with_the_work_ahead() -> None:
    gate = Gate("cold", running=2, queued=8, max_wait=30)
    gate.mean_seconds = 3.0
    assert gate.retry_after() == 2  # nothing ahead: one mean hold over two slots, rounded up
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(gate, [], i, release)) for i in range(6)]
    await asyncio.sleep(0.01)
    assert gate.retry_after() == 11  # 7 holds of 3 s over 2 slots
    release.set()
    await asyncio.gather(*tasks)
