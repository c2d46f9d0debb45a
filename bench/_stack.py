"""A real Kafka + etcd for benchmarks: the one running at KMEVENTS_* settings if
``KMEVENTS_BENCH_EXTERNAL=1``, else a temporary native stack on free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from kmevents.settings import Settings, child_env, load


def stack_env(s: Settings) -> dict[str, str]:
    """The KMEVENTS_* variables that point a ``kmevents`` child at ``s``'s servers, topics, prefix
    and cluster (to put on top of the parent's environment)."""
    return child_env(s, cluster=True)


@contextlib.contextmanager
def running_stack() -> Iterator[Settings]:
    if os.environ.get("KMEVENTS_BENCH_EXTERNAL") == "1":
        yield load()
        return
    from kmevents.stack import Stack
    from tests.stacks import _free_ports

    with tempfile.TemporaryDirectory(prefix="kmevents-bench-") as tmp:
        kport, eport = _free_ports(2)
        s = load({
            "stack.home": str(Path(tmp)), "stack.kafka_port": kport, "stack.kafka_controller_port": kport + 1,
            "stack.etcd_port": eport, "stack.etcd_peer_port": eport + 1,
        })
        stack = Stack(s, die_with_starter=True)  # a SIGKILLed bench leaves no servers behind
        with _stopped_on_sigterm():
            try:
                stack.up()
                yield s
            finally:
                stack.down(wipe=True)


@contextlib.contextmanager
def _stopped_on_sigterm() -> Iterator[None]:
    """A SIGTERM (``timeout``, a supervisor) raises SystemExit in the main thread, so the
    stack's ``finally`` stops it: by default the signal ended the process at once and left
    its etcd and Kafka running under init, holding their ports and files (found after a
    timed-out ``large_derive``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    was = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, was)
