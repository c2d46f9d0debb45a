"""Detached server processes started and stopped by PID, with their PID files.

A process is recorded as ``<name>.pid`` holding ``{"pid": ..., "marker": ...}``;
the marker is a string that must appear in the process's command line, so a
PID reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kmevents.errors import StackError


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port the kernel considers free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _dies_with_starter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when the thread that started
    it ends (``prctl(PR_SET_PDEATHSIG)``), or None where that cannot be had (not Linux, or not
    the main thread: a thread of an executor ends long before the process, and its servers
    would stop with it). The child exits at once if its starter is already gone."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    starter = os.getpid()

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != starter:  # it died between the fork and the prctl
            os._exit(1)

    return tie


class ManagedProcess:
    """One server process of the local stack, identified by its PID file.

    ``die_with_starter``: the server gets SIGTERM when the process that started it dies, even
    by SIGKILL (benchmarks' and tests' temporary stacks, which nothing else would stop; a
    ``kmevents stack up`` stack outlives its command on purpose). Only a start from the main
    thread is tied (see :func:`_dies_with_starter`)."""

    def __init__(self, name: str, run_dir: Path, log_file: Path, *, die_with_starter: bool = False) -> None:
        self.name = name
        #: the log's size when this object started the process (None: started by another command)
        self.log_start: int | None = None
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file
        self.die_with_starter = die_with_starter

    def recorded(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return int(data["pid"]), str(data["marker"])
        except (OSError, ValueError, KeyError):
            return None

    def pid(self) -> int | None:
        """The PID of our running process, or None (stale PID files are ignored)."""
        rec = self.recorded()
        if rec is None:
            return None
        pid, marker = rec
        if alive(pid) and marker in cmdline(pid):
            return pid
        return None

    def start(self, argv: list[str], *, marker: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.log_start = log.tell()  # (the log is appended to: what this start wrote begins here)
            try:
                proc = subprocess.Popen(  # noqa: S603
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # survives the CLI; stopped by `stack down`
                    env={**os.environ, **(env or {})},
                    cwd=cwd,
                    preexec_fn=_dies_with_starter() if self.die_with_starter else None,  # noqa: PLW1509
                )
            except FileNotFoundError as exc:
                raise StackError(f"cannot start {self.name}: {exc}") from exc
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "marker": marker}))
        return proc.pid

    def exited_early(self) -> bool:
        rec = self.recorded()
        return rec is not None and not alive(rec[0])

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill9(self) -> None:
        """SIGKILL at once (crash tests)."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)

    def tail(self, lines: int = 50, *, since_start: bool = False) -> str:
        """The log's last ``lines``; ``since_start``: only of what the process this object started
        wrote (the log keeps every earlier run's lines too; all of them when another command started it)."""
        try:
            with open(self.log_file, "rb") as f:
                size = f.seek(0, 2)
                start = max(size - 200_000, (self.log_start or 0) if since_start else 0)
                f.seek(start)
                data = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])


def _wait_gone(pid: int, timeout: float) -> bool:
    """Reap and wait until ``pid`` is gone; False if it is still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        _reap(pid)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
