"""Kafka + etcd as containers, started through the testcontainers library.

``KMEVENTS_TEST_STACK=testcontainers`` lands here (``tests/stacks.py``). The engine is
the one in ``DOCKER_HOST``; its reaper (Ryuk) is disabled because its image cannot be
pulled without a registry, so ``stop()`` removes what ``start()`` made.

- Images: ``KMEVENTS_KAFKA_IMAGE`` / ``KMEVENTS_ETCD_IMAGE`` when both are set (the CI
  script sets them), otherwise whatever ``scripts/build_images.sh`` chooses (official
  images where a registry answers, locally built ``kmevents-local/*`` ones where none does;
  ``KMEVENTS_IMAGES=official|local|auto``). Both kinds take the same configuration: Kafka
  through ``KAFKA_*`` variables (the official image's convention), etcd through flags.
- Host networking: every port is a free port on 127.0.0.1 chosen here, and both services
  listen on 127.0.0.1 only, exactly like the native stack.
- Data lives in bind-mounted folders under the session's ``tmp``, so restarting a
  container (``docker restart``, or ``kill`` then restart) keeps it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

# Read by testcontainers at import: set before importing it.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.wait_strategies import (  # noqa: E402
    CompositeWaitStrategy,
    LogMessageWaitStrategy,
)
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget  # noqa: E402

from kmevents.settings import Settings  # noqa: E402
from tests.stacks import TestStack, session_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABEL = "kmevents.test-stack"  # every container made here; scripts/ci_testcontainers.sh removes leftovers
START_TIMEOUT = 120.0


class Healthy(WaitStrategy):
    """Ready when the service answers the same health check the native stack uses."""

    def __init__(self, check: Any, what: str) -> None:
        super().__init__()
        self._check = check
        self._what = what

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        deadline = time.monotonic() + self._startup_timeout
        wrapped = container.get_wrapped_container()
        while time.monotonic() < deadline:
            if self._check():
                return
            wrapped.reload()
            if wrapped.status not in ("created", "running", "restarting"):
                raise RuntimeError(
                    f"{self._what} container stopped ({wrapped.status}):\n{_tail(wrapped)}"
                )
            time.sleep(self._poll_interval)
        raise TimeoutError(
            f"{self._what} not healthy within {self._startup_timeout:.0f}s:\n{_tail(wrapped)}"
        )


def _tail(wrapped: Any, lines: int = 40) -> str:
    try:
        return str(wrapped.logs(tail=lines).decode(errors="replace"))
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"(no logs: {exc})"


def images() -> tuple[str, str]:
    kafka, etcd = os.environ.get("KMEVENTS_KAFKA_IMAGE"), os.environ.get("KMEVENTS_ETCD_IMAGE")
    if kafka and etcd:
        return kafka, etcd
    proc = subprocess.run(  # noqa: S603
        ["bash", str(ROOT / "scripts" / "build_images.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/build_images.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    found = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("KMEVENTS_")
    )
    return found["KMEVENTS_KAFKA_IMAGE"], found["KMEVENTS_ETCD_IMAGE"]


def _check_engine() -> None:
    host = os.environ.get("DOCKER_HOST")
    if host is None and not Path("/var/run/docker.sock").exists():
        raise RuntimeError(
            "KMEVENTS_TEST_STACK=testcontainers needs a Docker engine: set DOCKER_HOST "
            "(bash scripts/ci_testcontainers.sh starts a private one and runs the suite)"
        )


def _data_dir(tmp: Path, name: str, mode: int) -> Path:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(mode)
    return d


def _on_host_network(
    c: DockerContainer, what: str, tag: str, data: Path, mount: str, started_line: str, healthy: Any
) -> DockerContainer:
    """Host networking, the data folder bind-mounted, ready when the start-up line is logged
    and the health check answers."""
    return (
        c.with_name(f"kmevents-{what}-{tag}")
        .with_volume_mapping(str(data), mount, "rw")
        .with_kwargs(network_mode="host", labels={LABEL: tag})
        .waiting_for(
            CompositeWaitStrategy(
                LogMessageWaitStrategy(started_line), Healthy(healthy, what)
            ).with_startup_timeout(int(START_TIMEOUT))
        )
    )


def _kafka(image: str, settings: Settings, data: Path, tag: str) -> DockerContainer:
    st, k = settings.stack, settings.kafka
    env = {
        "CLUSTER_ID": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{st.kafka_controller_port}",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{st.kafka_port},CONTROLLER://127.0.0.1:{st.kafka_controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{st.kafka_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "KAFKA_NUM_PARTITIONS": str(k.partitions),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
        "KAFKA_MESSAGE_MAX_BYTES": str(k.snapshot_max_message_bytes + 1024),
        "KAFKA_LOG_RETENTION_HOURS": "-1",
        "KAFKA_NUM_NETWORK_THREADS": "2",
        "KAFKA_NUM_IO_THREADS": "4",
        "KAFKA_HEAP_OPTS": f"-Xmx{st.kafka_heap} -Xms256m",
    }
    client = settings.model_copy(deep=True).kafka

    def healthy() -> bool:
        from kmevents.adapters import kafka as kafka_adapter

        return asyncio.run(kafka_adapter.healthy(client, timeout=2.0))

    c = DockerContainer(image, env=env)
    return _on_host_network(
        c, "kafka", tag, data, "/var/lib/kafka/data", r"Kafka Server started", healthy
    )


def _etcd(image: str, settings: Settings, data: Path, tag: str) -> DockerContainer:
    st, e = settings.stack, settings.etcd
    client = f"http://127.0.0.1:{st.etcd_port}"
    peer = f"http://127.0.0.1:{st.etcd_peer_port}"
    command = [
        "etcd",
        "--name=kmevents",
        "--data-dir=/var/lib/etcd-data",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kmevents={peer}",
        "--initial-cluster-state=new",
        "--auto-compaction-mode=periodic",
        f"--auto-compaction-retention={st.etcd_auto_compaction_retention}",
        f"--quota-backend-bytes={st.etcd_quota_bytes}",
        f"--max-txn-ops={e.max_txn_ops}",
        f"--max-request-bytes={e.max_request_bytes}",
        "--enable-v2=true",  # k8sm's leader key (v2 keys API), as the native stack
        "--logger=zap",
    ]
    etcd_settings = settings.model_copy(deep=True).etcd

    def healthy() -> bool:
        from kmevents.adapters import etcd as etcd_adapter

        return etcd_adapter.healthy(etcd_settings, timeout=1.0)

    c = DockerContainer(image).with_command(command)
    return _on_host_network(
        c, "etcd", tag, data, "/var/lib/etcd-data", r"serving client (traffic|requests)", healthy
    )


def start(tmp: Path) -> TestStack:
    _check_engine()
    kafka_image, etcd_image = images()
    settings = session_settings(tmp)
    tag = uuid.uuid4().hex[:8]
    etcd = _etcd(etcd_image, settings, _data_dir(tmp, "etcd-data", 0o700), tag)
    # 0o777: the official Kafka image runs as an unprivileged user
    kafka = _kafka(kafka_image, settings, _data_dir(tmp, "kafka-data", 0o777), tag)
    started: list[DockerContainer] = []

    def stop() -> None:
        for c in reversed(started):
            # best effort: scripts/ci_testcontainers.sh removes leftovers by label
            with contextlib.suppress(Exception):
                c.stop()

    try:
        for c in (etcd, kafka):
            c.start()
            started.append(c)
        from kmevents.adapters import kafka as kafka_adapter

        asyncio.run(kafka_adapter.ensure_topics(settings.kafka))
    except BaseException:
        for c in (etcd, kafka):
            if c not in started and c._container is not None:  # started but never became ready
                started.append(c)
        stop()
        raise

    def restart(c: DockerContainer) -> None:
        """``docker restart`` (a stopped or killed container starts again) on the same data."""
        c.get_wrapped_container().restart(timeout=30)
        strategy = c._wait_strategy
        assert strategy is not None
        # The start-up log line is already in the logs: wait on the health check only.
        parts = getattr(strategy, "_strategies", [strategy])
        for part in parts:
            if isinstance(part, Healthy):
                part.with_startup_timeout(int(START_TIMEOUT)).wait_until_ready(c)

    def kill_kafka() -> None:
        kafka.get_wrapped_container().kill()  # SIGKILL

    return TestStack(
        "testcontainers",
        settings,
        stop,
        restart_kafka=lambda: restart(kafka),
        restart_etcd=lambda: restart(etcd),
        kill_kafka=kill_kafka,
        notes=[f"images: {kafka_image}, {etcd_image}"],
    )
