"""A real Kafka + etcd for benchmarks: the one running at KMEVENTS_* settings if
``KMEVENTS_BENCH_EXTERNAL=1``, else a temporary native stack on free ports."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kmevents.settings import Settings, load


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
        stack = Stack(s)
        try:
            stack.up()
            yield s
        finally:
            stack.down(wipe=True)
