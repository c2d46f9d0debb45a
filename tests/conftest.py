"""Shared fixtures. Integration tests ask for ``stack`` (a real Kafka + etcd) and
``isolated`` (settings with topic names and an etcd prefix of their own)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmevents.settings import Settings
from tests.stacks import TestStack, start

# Before any test module imports grpc (tests/unit/adapters/test_etcd_txn_bytes.py imports aetcd
# ahead of kmevents.adapters.etcd, which sets this): with gRPC's fork handlers on, the worker's
# forked snapshot children crashed (SIGSEGV in threading._after_fork) whenever the unit tests
# were collected before the integration tests (`pytest tests/unit tests/integration/...`).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# A config file on the machine (~/.kmevents/config.toml, kmevents/config.py) must not
# change what the tests connect to: they read none unless a test names one.
os.environ.setdefault("KMEVENTS_CONFIG", os.devnull + ".kmevents-tests-read-no-config.toml")
os.environ.pop("KMEVENTS_CONTEXT", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        # the folder below tests/ (not any folder of the path: a checkout may sit in one named `chaos`)
        path = Path(str(item.fspath))
        top = path.relative_to(here).parts[0] if path.is_relative_to(here) else ""
        if top in ("integration", "chaos"):
            item.add_marker(pytest.mark.integration)
        if top == "chaos":
            item.add_marker(pytest.mark.chaos)
    # The chaos suite kills and restarts the session's Kafka and etcd: it runs last, so a
    # stack it leaves hurt can fail nothing but itself.
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestStack]:
    kind = os.environ.get("KMEVENTS_TEST_STACK", "native")
    s = start(kind, tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def isolated(stack: TestStack, request: pytest.FixtureRequest) -> Settings:
    """Settings on the session's stack with fresh topics and etcd prefix for this test.

    The cluster's name is the same for a test on every run: what the simulator
    does depends on it, so a random name made tests that expect some kind of
    event (an eviction storm) fail about once in 30 runs; a fixed one passes or
    fails every time."""
    from kmevents.adapters import kafka as kafka_adapter

    tag = uuid.uuid4().hex[:8]
    s = stack.settings.model_copy(deep=True)
    s.kafka.events_topic = f"t{tag}.events"
    s.kafka.snapshots_topic = f"t{tag}.snapshots"
    s.kafka.deadletter_topic = f"t{tag}.deadletter"
    s.kafka.alerts_topic = f"t{tag}.alerts"
    s.kafka.quarantine_topic = f"t{tag}.quarantine"
    s.etcd.prefix = f"/t{tag}/kmevents/v1"
    s.cluster = "c" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    asyncio.run(kafka_adapter.ensure_topics(s.kafka))
    return s
