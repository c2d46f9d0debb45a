"""Issue 18: each daemon says what it is doing at start and logs what matters, on a real stack.

`kmevents process` printed nothing (Faust put the root logger at WARNING); `kmevents api`
printed no address, no access log and no warning without tokens."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from kmevents.settings import Settings
from tests.integration.test_follow_import import closed_port, env_of
from tests.integration.test_processors import ingest_sim


class Daemon:
    """A kmevents command in a subprocess whose stderr lines are collected as they come."""

    def __init__(self, s: Settings, *args: str) -> None:
        env = {**env_of(s), "KMEVENTS_STACK__HOME": str(s.stack.home), "KMEVENTS_LOG_FORMAT": "text"}
        env.pop("KMEVENTS_API__TOKENS", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "kmevents.cli", *args], env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, *needles: str, timeout: float = 90) -> str:
        """The first line holding every needle (fails with what was logged)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if all(n in line for n in needles):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.1)
        pytest.fail(f"no line with {needles}; logged:\n" + "\n".join(self.lines[-60:]))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


@contextmanager
def daemon(s: Settings, *args: str) -> Iterator[Daemon]:
    d = Daemon(s, *args)
    try:
        yield d
    finally:
        d.stop()


@pytest.mark.parametrize("engine", ["plain", "faust"])
def test_process_says_what_it_starts_and_which_partition_it_took(isolated: Settings, engine: str) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 300))
    port = closed_port()
    with daemon(s, "process", "--engine", engine, "--group", f"g-{s.cluster}", "--metrics-port", str(port)) as d:
        start = d.wait_for("starting the derivation worker")
        assert f"engine={engine}" in start and f"group=g-{s.cluster}" in start
        assert f"topic={s.kafka.events_topic}" in start and f"metrics=http://127.0.0.1:{port}/metrics" in start
        d.wait_for("derivation worker started: joining the consumer group", f"group=g-{s.cluster}")
        taken = d.wait_for("partition taken", "partition=")
        assert "checkpoint=" in taken and "clusters=" in taken and "worker=" in taken
        assert d.stop() == 0


def test_api_says_where_it_listens_warns_without_tokens_and_logs_each_request(isolated: Settings) -> None:
    port = closed_port()
    with daemon(isolated, "api", "--port", str(port)) as d:
        d.wait_for("starting the API", f"url=http://127.0.0.1:{port}")
        d.wait_for("no API tokens configured: every data endpoint answers 401")
        d.wait_for("API started", f"etcd={isolated.etcd.endpoint}", "ingest=started")
        d.wait_for(f"Uvicorn running on http://127.0.0.1:{port}")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/clusters", timeout=30).status_code == 401
        d.wait_for("uvicorn.access", '"GET /healthz HTTP/1.1" 200')
        d.wait_for("uvicorn.access", '"GET /v1/clusters HTTP/1.1" 401')
