"""Real Kafka + etcd for the integration tests, chosen by ``KMEVENTS_TEST_STACK``.

- ``native`` (default): one local stack per test session (``kmevents.stack``),
  on free ports, in its own temporary folder, torn down after the session.
- ``external``: already-running services given by ``KMEVENTS_TEST_BOOTSTRAP``
  and ``KMEVENTS_TEST_ETCD``; restart tests are skipped there.
- ``testcontainers``: the same services as containers (``tests/stack_containers.py``).

Every backend returns a :class:`TestStack`, the one seam the tests see.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kmevents.settings import Settings, load
from kmevents.stack.process import free_port


@dataclass
class TestStack:
    """A running Kafka + etcd the tests may use (and, where supported, restart)."""

    __test__ = False  # not a test class

    kind: str
    settings: Settings
    stop: Callable[[], None]
    restart_kafka: Callable[[], None] | None = None
    restart_etcd: Callable[[], None] | None = None
    kill_kafka: Callable[[], None] | None = None
    #: SIGKILL etcd (native only; ``restart_etcd`` brings it back on the same data)
    kill_etcd: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)
    #: the broker's ``log.dirs`` on this machine (native only: a test may damage a segment file)
    kafka_data: Path | None = None


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        # consecutive pairs (client, controller/peer) must both be free
        if p not in ports and p + 1 not in ports:
            from kmevents.stack.process import port_free

            if port_free(p + 1):
                ports.append(p)
    return ports


def session_settings(tmp: Path) -> Settings:
    """Settings of a session's stack (native or containers): free ports on 127.0.0.1, home in ``tmp``."""
    kport, eport = _free_ports(2)
    return load({
        "stack.home": str(tmp),
        "stack.kafka_port": kport,
        "stack.kafka_controller_port": kport + 1,
        "stack.etcd_port": eport,
        "stack.etcd_peer_port": eport + 1,
        "stack.kafka_heap": "768m",
        "kafka.partitions": 3,
    })


def native(tmp: Path) -> TestStack:
    from kmevents.stack import Stack

    settings = session_settings(tmp)
    stack = Stack(settings, die_with_starter=True)  # a killed test run leaves no servers behind
    stack.up()

    def restart_kafka() -> None:
        stack.kafka_proc.stop()
        stack.up()

    def restart_etcd() -> None:
        stack.etcd_proc.stop()
        stack.up()

    return TestStack("native", settings, lambda: stack.down(wipe=True), restart_kafka, restart_etcd,
                     stack.kafka_proc.kill9, stack.etcd_proc.kill9, stack.warnings, stack.kafka_dir / "data")


def external() -> TestStack:
    bootstrap = os.environ.get("KMEVENTS_TEST_BOOTSTRAP")
    etcd = os.environ.get("KMEVENTS_TEST_ETCD")
    if not bootstrap or not etcd:
        raise RuntimeError(
            "KMEVENTS_TEST_STACK=external needs KMEVENTS_TEST_BOOTSTRAP (host:port) and "
            "KMEVENTS_TEST_ETCD (http://host:port)"
        )
    settings = load({"kafka.bootstrap": bootstrap, "etcd.endpoint": etcd, "kafka.partitions": 3})
    return TestStack("external", settings, lambda: None)


def start(kind: str, tmp: Path) -> TestStack:
    if kind == "native":
        return native(tmp)
    if kind == "external":
        return external()
    if kind == "testcontainers":
        from tests import stack_containers

        return stack_containers.start(tmp)
    raise RuntimeError(f"unknown KMEVENTS_TEST_STACK={kind!r}: use native, external or testcontainers")
