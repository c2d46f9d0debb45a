"""`kmevents stack` lifecycle: idempotent up, down leaves nothing behind, precise errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kmevents.errors import EnvironmentProblem, StackError
from kmevents.settings import load
from kmevents.stack import Stack
from kmevents.stack.process import alive
from tests.stacks import _free_ports


def _settings(home: Path, **extra: object):
    kport, eport = _free_ports(2)
    return load({
        "stack.home": str(home), "stack.kafka_port": kport, "stack.kafka_controller_port": kport + 1,
        "stack.etcd_port": eport, "stack.etcd_peer_port": eport + 1, "stack.kafka_heap": "512m",
        **extra,
    })


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path))
    try:
        first = stack.up()
        pids = [s.pid for s in first]
        assert all(s.healthy for s in first)
        again = stack.up()  # nothing restarted
        assert [s.pid for s in again] == pids
    finally:
        stopped = stack.down()
    assert sorted(stopped) == ["etcd", "kafka"]
    assert not any(alive(p) for p in pids if p)
    assert (tmp_path / "etcd" / "data").exists(), "data survives a plain down"
    assert stack.down() == []
    (tmp_path / "faust").mkdir()  # a Faust worker's local state
    (tmp_path / "mine.txt").write_text("not the stack's")
    assert (tmp_path / "logs" / "etcd.log").exists()
    stack.down(wipe=True)
    for gone in ("etcd", "kafka", "logs", "run", "faust"):
        assert not (tmp_path / gone).exists(), gone
    assert (tmp_path / "mine.txt").exists()


def test_status_logs_and_down_of_a_home_find_the_ports_its_servers_were_started_on(tmp_path: Path) -> None:
    """``stack up --home H --kafka-port P`` then ``stack status --home H``: status checked the default
    ports and said UNHEALTHY (found on the bench stack). The home remembers its ports."""
    import json

    s = _settings(tmp_path)
    assert s.stack.kafka_port != 9092
    stack = Stack(s)
    try:
        stack.up()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMEVENTS_STACK__")}
        cli = [sys.executable, "-m", "kmevents.cli", "stack"]
        got = subprocess.run([*cli, "status", "--home", str(tmp_path), "--format", "json"], capture_output=True,
                             text=True, env=env, timeout=60)
        assert got.returncode == 0, got.stdout + got.stderr
        status = json.loads(got.stdout)
        assert status["kafka"]["bootstrap"] == f"127.0.0.1:{s.stack.kafka_port}" and status["kafka"]["healthy"]
        assert status["etcd"]["endpoint"] == f"http://127.0.0.1:{s.stack.etcd_port}" and status["etcd"]["healthy"]
        down = subprocess.run([*cli, "down", "--home", str(tmp_path)], capture_output=True, text=True, env=env,
                              timeout=120)
        assert down.returncode == 0 and "kafka, etcd" in down.stdout, down.stdout + down.stderr
        assert stack.etcd_proc.pid() is None and stack.kafka_proc.pid() is None
    finally:
        stack.down(wipe=True)


def test_a_taken_port_is_reported_with_the_port_and_what_to_do(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", s.stack.etcd_port))
        blocker.listen()
        with pytest.raises(StackError) as err:
            Stack(s).up()
    assert str(s.stack.etcd_port) in err.value.message
    assert "KMEVENTS_STACK__ETCD_PORT" in (err.value.hint or "")
    Stack(s).down()


def test_a_server_slow_to_answer_is_reported_as_still_starting_and_a_second_up_waits_for_it(tmp_path: Path) -> None:
    """etcd 3.4 rebuilds its index before it answers (up to 100 s for 3.1 GiB here): a start that
    outlasts the timeout says the server runs and is still starting, shows only what this start
    logged (the log keeps every earlier run's lines), and the next ``up`` waits for it."""
    s = _settings(tmp_path, **{"stack.start_timeout_seconds": 0.01})
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "etcd.log").write_text("a line an earlier run wrote\n")
    stack = Stack(s)
    try:
        with pytest.raises(StackError) as err:
            stack.up()
        assert "is running but did not answer" in err.value.message
        assert "an earlier run" not in err.value.message
        assert "KMEVENTS_STACK__START_TIMEOUT_SECONDS" in (err.value.hint or "")
        assert "run `kmevents stack up` again" in (err.value.hint or "")
        pid = stack.etcd_proc.pid()
        assert pid is not None and alive(pid)
        again = Stack(_settings_like(s, **{"stack.start_timeout_seconds": 60.0})).up()
        assert all(c.healthy for c in again)
        assert next(c.pid for c in again if c.name == "etcd") == pid  # waited for, not restarted
    finally:
        stack.down(wipe=True)


def _settings_like(s: Any, **extra: object) -> Any:
    return load({
        "stack.home": str(s.stack.home), "stack.kafka_port": s.stack.kafka_port,
        "stack.kafka_controller_port": s.stack.kafka_controller_port, "stack.etcd_port": s.stack.etcd_port,
        "stack.etcd_peer_port": s.stack.etcd_peer_port, "stack.kafka_heap": "512m", **extra,
    })


def test_a_missing_etcd_binary_is_an_environment_error(tmp_path: Path) -> None:
    s = _settings(tmp_path, **{"stack.etcd_bin": str(tmp_path / "no-such-etcd")})
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        Stack(s).up()


def test_a_kafka_home_without_jars_is_an_environment_error(tmp_path: Path) -> None:
    s = _settings(tmp_path, **{"stack.kafka_home": str(tmp_path / "empty")})
    stack = Stack(s)
    try:
        with pytest.raises(EnvironmentProblem, match="no libs/ folder"):
            stack.up()
    finally:
        stack.down(wipe=True)


def _bench_with_a_stack() -> subprocess.Popen[str]:
    """A child running a bench's temporary stack: it prints the stack's home and both servers'
    PIDs, then sleeps."""
    return subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from bench._stack import running_stack\n"
        "from kmevents.stack import Stack\n"
        "with running_stack() as s:\n"
        "    print(s.stack.home, *[c.pid for c in Stack(s).status()], flush=True)\n"
        "    time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "KMEVENTS_BENCH_EXTERNAL": "0"})


def test_a_benchmark_stopped_by_sigterm_stops_its_stack(tmp_path: Path) -> None:
    """A bench killed by ``timeout`` (SIGTERM) left its etcd and Kafka running under init for
    good; now the signal ends the bench through its stack's ``finally``."""
    import signal
    import time

    child = _bench_with_a_stack()
    try:
        home, *pids = child.stdout.readline().split()  # type: ignore[union-attr]
        assert len(pids) == 2 and all(alive(int(p)) for p in pids), pids
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    deadline = time.monotonic() + 30
    while any(alive(int(p)) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(int(p)) for p in pids), "the bench's etcd or Kafka outlived it"
    assert not Path(home).exists(), "its temporary home is removed"


def test_a_benchmark_killed_by_sigkill_takes_its_stack_with_it(tmp_path: Path) -> None:
    """SIGKILL cannot be caught, so no ``finally`` runs: a bench (or a test run) killed so left
    its etcd and Kafka running under init. Its servers are now tied to it by the kernel
    (``PR_SET_PDEATHSIG``) and stop when it dies."""
    import shutil
    import signal
    import time

    child = _bench_with_a_stack()
    home = None
    try:
        home, *pids = child.stdout.readline().split()  # type: ignore[union-attr]
        assert len(pids) == 2 and all(alive(int(p)) for p in pids), pids
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while any(alive(int(p)) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(int(p)) for p in pids), "the bench's etcd or Kafka outlived it"
    finally:
        if child.poll() is None:
            child.kill()
        if home:  # nothing of the bench ran to remove it
            shutil.rmtree(home, ignore_errors=True)


def test_a_server_started_from_another_thread_is_not_tied_to_it() -> None:
    """A stack restarted from an executor's thread (tests restart Kafka so) must outlive that
    thread: the kernel's tie is to the starting thread, so only the main thread ties."""
    import concurrent.futures

    from kmevents.stack.process import _dies_with_starter

    assert _dies_with_starter() is not None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(_dies_with_starter).result() is None
