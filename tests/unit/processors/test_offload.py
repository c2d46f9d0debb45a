"""Encoding in a forked child (processors/offload.py): the child sees memory as it was at
the fork whatever the parent does next, and a child that fails is an error, not bytes."""

from __future__ import annotations

import pytest
from kmevents.processors import offload

pytestmark = pytest.mark.skipif(not offload.AVAILABLE, reason="no fork() on this platform")


async def test_the_child_encodes_the_state_as_it_was_at_the_fork() -> None:
    state = {"pods": list(range(100_000))}
    child = offload.spawn(lambda: repr(sum(state["pods"])).encode() + b"|" + b"x" * 3_000_000)
    state["pods"].clear()  # the parent folds on at once
    state["pods"].append(-1)
    got = await child.result()
    head, _, tail = got.partition(b"|")
    assert int(head) == sum(range(100_000))
    assert len(tail) == 3_000_000, "bytes beyond a pipe's buffer come back whole"


async def test_a_child_that_raises_is_reported_as_failed() -> None:
    def boom() -> bytes:
        raise ValueError("cannot encode")

    with pytest.raises(offload.ChildFailed, match="status"):
        await offload.spawn(boom).result()


async def test_the_child_holds_none_of_the_parents_sockets() -> None:
    # A killed worker's child must not keep its metrics port bound while a new worker starts.
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        fd = s.fileno()

        def probe() -> bytes:
            try:
                os.fstat(fd)
            except OSError:
                return b"closed"
            return b"open"

        assert await offload.spawn(probe).result() == b"closed"


async def test_bytes_finished_in_a_thread_come_back_once_and_a_thread_that_raises_raises() -> None:
    import threading

    main = threading.get_ident()
    job = offload.InThread(lambda: str(threading.get_ident() != main).encode())
    assert await job.result() == b"True"
    with pytest.raises(RuntimeError, match="twice"):
        await job.result()

    def boom() -> bytes:
        raise ValueError("cannot compress")

    with pytest.raises(ValueError, match="cannot compress"):
        await offload.InThread(boom).result()


async def test_a_groups_postings_sorted_in_a_child_are_those_sorted_here_and_a_failed_child_falls_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sorts a touched-index group's postings (store/touched_runs.py) in a forked child: the
    same array; a child that fails is counted with the snapshot children's and the sort done here; with
    snapshots in-process, no child."""
    import random
    from array import array

    from kmevents.processors.worker import DeriveWorker

    from kmevents.settings import load
    from kmevents.store import touched_runs

    rng = random.Random(2)
    hs = [array("Q", sorted(rng.getrandbits(64) for _ in range(500))) for _ in range(8)]
    want = touched_runs.level0(hs, 5)
    w = DeriveWorker(load())
    assert offload.available() and await w._level0(hs, 5) == want
    spawn = offload.spawn

    def failing(fn: object) -> offload.Child:
        def boom() -> bytes:
            raise ValueError("the child fails")

        return spawn(boom)

    monkeypatch.setattr(offload, "spawn", failing)
    assert await w._level0(hs, 5) == want and w._child_failures == 1
    w.snapshots_in_child = False
    monkeypatch.setattr(offload, "spawn", lambda fn: pytest.fail("no child with snapshots in-process"))
    assert await w._level0(hs, 5) == want and w._child_failures == 1
