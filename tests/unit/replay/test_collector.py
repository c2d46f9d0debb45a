"""The API's collector policy (replay/collector.py): no automatic full collection while a
read runs, the thresholds restored after the last one, and full passes on its own schedule
(idle after SWEEP_EVERY reads, at once after FORCE_EVERY) that do collect cyclic garbage."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from kmevents.replay import collector
from kmevents.replay.collector import Collector, promote

from kmevents import frozen
from kmevents.reducer.apply import FOLD_GC_THRESHOLDS


@pytest.fixture(autouse=True)
def _thawed() -> object:
    """Each test starts and ends with nothing frozen (promote freezes the whole process)."""
    frozen.unfreeze()
    yield
    frozen.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


class _Plain:
    pass


def test_reads_raise_every_generations_threshold_and_the_last_one_out_restores_them() -> None:
    saved = gc.get_threshold()
    c = Collector()
    try:
        with c.reading():
            assert gc.get_threshold()[2] == max(saved[2], collector.READ_GEN2_THRESHOLD)
            # the young generations as rarely as in a fold
            assert gc.get_threshold()[:2] == tuple(max(a, b) for a, b in zip(saved[:2], FOLD_GC_THRESHOLDS[:2], strict=True))
            with c.reading():  # a second read at once (the API's reads are concurrent)
                pass
            assert gc.get_threshold()[2] == max(saved[2], collector.READ_GEN2_THRESHOLD)
        assert gc.get_threshold() == saved
        with pytest.raises(RuntimeError), c.reading():
            raise RuntimeError("a failed read")
        assert gc.get_threshold() == saved and c.running == 0
    finally:
        gc.set_threshold(*saved)


def test_promote_freezes_what_lives_a_forced_sweep_walks_around_it_and_a_full_one_collects_it() -> None:
    frozen.unfreeze()
    kept = [[i] for i in range(1000)]
    cyc = _Cycle()
    gone = weakref.ref(cyc)
    try:
        promote()
        assert gc.get_freeze_count() >= 1001  # frozen: no collection walks them
        assert id(kept) not in {id(o) for o in gc.get_objects()}
        del cyc
        Collector().sweep(full=False)  # a forced pass walks only what is not frozen ...
        assert gone() is not None
        Collector().sweep()  # ... a full one unfreezes and walks everything
        assert gone() is None and gc.get_freeze_count() == 0
    finally:
        frozen.unfreeze()


def test_a_frozen_object_is_still_freed_by_reference_counting() -> None:
    # (an evicted held state goes when its last reference does, frozen or not)
    frozen.unfreeze()
    kept = _Plain()
    gone = weakref.ref(kept)
    try:
        promote()
        del kept
        assert gone() is None
    finally:
        frozen.unfreeze()


def test_a_read_done_freezes_what_it_keeps() -> None:
    frozen.unfreeze()
    kept = [[i] for i in range(100)]  # a state the read holds
    c = Collector()
    try:
        with c.reading():
            pass
        c.read_done()
        assert id(kept) not in {id(o) for o in gc.get_objects()} and gc.get_freeze_count() > 100
        assert c.since_sweep == 1
    finally:
        frozen.unfreeze()


def test_promote_leaves_frozen_objects_frozen() -> None:
    frozen.freeze()
    try:
        n = gc.get_freeze_count()
        promote()
        assert gc.get_freeze_count() >= n > 0
    finally:
        frozen.unfreeze()


def test_a_sweep_collects_cyclic_garbage_and_resets_the_count() -> None:
    c = Collector()
    ref = weakref.ref(_Cycle())
    gc.disable()
    try:
        assert ref() is not None  # only a full collection frees a cycle here
        c.since_sweep = 5
        c.sweep()
        assert ref() is None and c.sweeps == 1 and c.since_sweep == 0
    finally:
        gc.enable()


def test_forced_after_force_every_reads_without_a_loop_every_few_of_them_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "FORCE_EVERY", 3)
    monkeypatch.setattr(collector, "FULL_EVERY_FORCED", 2)
    monkeypatch.setattr(collector, "SWEEP_EVERY", 100)
    c = Collector()
    try:
        c.read_done()
        c.read_done()
        assert c.sweeps == 0
        c.read_done()
        assert c.sweeps == 1 and c.since_sweep == 0 and c.full_sweeps == 0  # walked what is not frozen
        for _ in range(3):
            c.read_done()
        assert c.sweeps == 2 and c.full_sweeps == 1  # the 2nd forced pass: everything
    finally:
        frozen.unfreeze()


def test_a_due_sweep_waits_for_an_idle_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "SWEEP_EVERY", 2)
    monkeypatch.setattr(collector, "FORCE_EVERY", 100)
    monkeypatch.setattr(collector, "IDLE_SECONDS", 0.05)
    c = Collector()

    async def main() -> None:
        for _ in range(2):
            with c.reading():
                await asyncio.sleep(0)
            c.read_done()
        with c.reading():  # a read still running when the sweep comes due: it waits
            await asyncio.sleep(0.12)
            assert c.sweeps == 0
        await asyncio.sleep(0.03)
        assert c.sweeps == 0  # not idle long enough yet
        await asyncio.sleep(0.12)
        assert c.sweeps == 1 and c.since_sweep == 0

    asyncio.run(main())


def test_a_sweep_due_on_a_loop_that_ended_is_scheduled_again_on_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "SWEEP_EVERY", 1)
    monkeypatch.setattr(collector, "FORCE_EVERY", 100)
    monkeypatch.setattr(collector, "IDLE_SECONDS", 0.01)
    c = Collector()

    async def one_read(wait: float) -> None:
        with c.reading():
            pass
        c.read_done()
        await asyncio.sleep(wait)

    asyncio.run(one_read(0))  # the loop ends before the sweep is idle: it never runs there
    assert c.sweeps == 0
    asyncio.run(one_read(0.1))
    assert c.sweeps == 1
