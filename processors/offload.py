"""Encoding a snapshot in a forked child while the worker folds on.

A full snapshot of the large profile's state costs the worker ~0.5-0.7 s of CPU (every
entity's canonical line, the indexes, zstd) and a delta ~0.1 s; on the event loop that
stops the fold every 4,000 events, about a third of the derive's wall time
(BENCHMARKS.md, "Derivation at the large profile"). ``fork()`` gives a child the state
exactly as it is at the committed checkpoint, copy-on-write, for the cost of copying the
page tables; the child encodes and compresses, hands the bytes back through a pipe and
exits, and the parent stores them (Kafka + etcd stay in the parent: the child touches no
client, takes no lock, runs no event loop).

What it costs: the pages the child reads are copied once they are written by either side
(the child's reference counts, the parent's fold), up to the state's size for the child's
life (~1 s); the child uses the other core when there is one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import traceback
from collections.abc import Callable

#: Whether this platform can fork (not Windows); the worker encodes in-process otherwise.
AVAILABLE = hasattr(os, "fork")


def available() -> bool:
    """Whether a child may be forked here: the platform can, and gRPC's fork handlers are off
    (kmevents/adapters/etcd.py turns them off before gRPC starts; with them on, a child
    restarts gRPC's threads and fails)."""
    return AVAILABLE and ("grpc" not in sys.modules or
                          os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").lower() in ("0", "false"))


class ChildFailed(RuntimeError):
    """The child that encoded the bytes ended without handing all of them back."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(parts)
        parts.append(b)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):  # pragma: no cover
        return 65536


class Child:
    """A forked child running ``fn`` (:func:`spawn`); :meth:`result` waits for its bytes."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd

    async def result(self) -> bytes:
        """The child's bytes (raises :class:`ChildFailed` when it failed); call it once."""
        try:
            data = await asyncio.to_thread(_read_all, self.fd)
        finally:
            os.close(self.fd)
            _, status = await asyncio.to_thread(os.waitpid, self.pid, 0)
        if status != 0:
            raise ChildFailed(f"the child encoding a snapshot exited with status {status:#x}")
        return data


class Done:
    """Bytes encoded in this process already, given back as a :class:`Child`'s are."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def result(self) -> bytes:
        return self.data


class InThread:
    """Bytes finished by ``fn()`` in a thread of this process (compressing a full snapshot:
    zstandard releases the GIL, so the fold goes on meanwhile), given back as a :class:`Child`'s
    are. The thread starts at the first :meth:`result`."""

    def __init__(self, fn: Callable[[], bytes]) -> None:
        self.fn = fn

    async def result(self) -> bytes:
        fn, self.fn = self.fn, _spent
        return await asyncio.to_thread(fn)


def _spent() -> bytes:
    raise RuntimeError("InThread.result() called twice")


def spawn(fn: Callable[[], bytes]) -> Child:
    """Fork now: the child runs ``fn()`` on memory exactly as it is at this call, writes its
    bytes to a pipe and exits; the caller may change its state as soon as this returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no event loop, no client, no logging; only fn and the pipe
        code = 1
        try:
            # Hold none of the parent's sockets (a metrics port a restarted worker binds again,
            # Kafka's and etcd's connections): only stdio and the pipe.
            os.closerange(3, w)
            os.closerange(w + 1, _max_fd())
            gc.disable()  # a collection would touch (and copy) every page of the state
            _write_all(w, fn())
            code = 0
        except BaseException:  # noqa: BLE001 - reported through the exit status
            traceback.print_exc(file=sys.stderr)
        finally:
            os._exit(code)
    os.close(w)
    return Child(pid, r)
