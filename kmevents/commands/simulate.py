"""``kmevents simulate``: a seeded Kubernetes-on-Mesos workload, to a file or to Kafka."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from typing import IO, TYPE_CHECKING, Any

import orjson

from kmevents.errors import EnvironmentProblem, UsageError

if TYPE_CHECKING:
    from kmevents.simulate import SimConfig

HELP = "a seeded Kubernetes-on-Mesos workload (to a file or to Kafka)"

DESCRIPTION = """\
Simulate a Kubernetes-on-Mesos cluster (k8sm beside Marathon and Spark on shared
Mesos agents) and write what it emits as catalogue events, one JSON object per
line in canonical form. The same seed and sizes always give the same bytes.

What happens in the simulated cluster: agents join, are lost (FAILURE, TASK_LOST
with REASON_AGENT_REMOVED and RESCIND in no fixed order), come back after a
partition (LOST -> RUNNING), are drained for maintenance; offers cycle with
k8sm's timings (offer TTL 5s, refuse 5s); pods are scheduled onto offers, run,
finish, fail, restart containers, get OOM-killed, evicted (node pressure, the
eviction API, the node controller) and deleted; masters fail over (re-register,
task replay, reconciliation) and k8sm changes leader; RCs scale and roll; kube-dns,
kube-ui and a MySQL master with replicas on Ceph rbd run throughout; Mesos
re-delivers some status updates (same uuid).

Time: the clock starts at --start and advances --rate events per simulated
second (bursts such as reconciliation are denser).

Profiles: `default` is the cluster above, watched from its start (50 agents unless
--agents says otherwise). `large` is shaped like a public 12,500-machine cluster
trace: kmevents attaches to a running cluster of 12,500 agents and 140,000 pods
(about 327,000 events of agents, tasks, nodes, RCs, services and pods as its
sources report them then), then ~270 events per second of source time in which,
over 1.5M events, a quarter of the pods' tasks finish, 5% are killed, 2% evicted
and 0.3% fail, each replaced through k8sm; offers fill the rest (about a quarter
of the events); no master failovers or reconciliations. --scale shrinks or grows
a profile (agents, pods and rate alike: `--profile large --scale 0.02` is the same
shape at 250 agents); --agents, --pods and --rate replace the scaled sizes.
"""

EPILOG = """\
examples:
  kmevents simulate --cluster demo --events 50000 --seed 7 -o demo.jsonl
  kmevents simulate --cluster big --events 10000000 --agents 10000 -o big.jsonl --quiet
  kmevents simulate --cluster trace --events 1500000 --profile large -o large.jsonl
  kmevents simulate --cluster trace --events 30000 --profile large --scale 0.02 -o small.jsonl
  kmevents simulate --cluster demo --events 1000 -o - | head
  kmevents simulate --cluster demo --events 5000 --start -2h -o recent.jsonl   # the clock starts 2 hours ago
  kmevents simulate --cluster demo --events 20000 -o demo.jsonl --format json   # summary as JSON
  kmevents ingest demo.jsonl          # then put it into Kafka
"""

NO_INGEST = ("ingest path not available yet: write to a file with -o and run "
             "`kmevents ingest FILE`")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate", help=HELP, description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cluster", required=True, help="Mesos cluster name ([a-z0-9][a-z0-9-]{0,62})")
    p.add_argument("--events", type=int, required=True, metavar="N", help="how many events to emit")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                   help="events per simulated second (default: max(50, agents))")
    p.add_argument("--start", default=None, metavar="TIME",
                   help="simulated clock start: a TIME as every command takes it (2026-01-01T00:00:00Z, "
                        "-2h, now-15m, yesterday 14:05; default 2026-01-01T00:00:00Z)")
    p.add_argument("--profile", choices=("default", "large"), default="default",
                   help="the workload's shape (default: default; see above)")
    p.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="multiply the profile's agents, pods and rate by F (default 1)")
    p.add_argument("--agents", type=int, default=None,
                   help="Mesos agents (default: the profile's, 50 or 12,500, times --scale)")
    p.add_argument("--frameworks", type=int, default=None,
                   help="long-lived frameworks: k8sm, Marathon, Spark, then more "
                        "(default 3; 1, k8sm alone, for --profile large)")
    p.add_argument("--pods", type=int, default=None,
                   help="pods the workload aims at (default 10 per agent; 140,000 times "
                        "--scale for --profile large)")
    p.add_argument("--pod-eviction-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="node controller's pod eviction timeout (default 300)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="FILE", help="write JSON lines to FILE ('-' = stdout)")
    out.add_argument("--to-kafka", action="store_true",
                     help="produce to Kafka through the ingest path (validated, idempotent)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="summary format: json prints counts per type (on stdout when -o is a file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no text summary")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", args.cluster):
        raise UsageError(f"--cluster {args.cluster!r} is not a valid cluster name",
                         hint="use lowercase letters, digits and '-', e.g. --cluster demo")
    if args.events < 0:
        raise UsageError("--events must be >= 0")
    if args.agents is not None and args.agents < 1:
        raise UsageError("--agents must be >= 1")
    if args.frameworks is not None and args.frameworks < 1:
        raise UsageError("--frameworks must be >= 1 (k8sm is always the first)")
    if not args.scale > 0:
        raise UsageError("--scale must be > 0", hint="e.g. --scale 0.02 for a large profile "
                                                     "50 times smaller")
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be > 0")
    if args.start is not None:
        args.start = start_micros(args.start)  # a bad time fails here, before any output is opened


def start_micros(text: str) -> int:
    """``--start`` in the TIME grammar of every command (kmevents/timespec.py: ISO with a zone,
    epoch ms, 15m / now-2h, yesterday 14:05); an ISO time without a zone stays UTC here, as
    --start always read it."""
    from kmevents.timespec import parse_time

    try:
        return parse_time(text).micros
    except UsageError:
        import re

        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+", text.strip()):
            raise
        from kmevents.simulate.clock import parse_start

        return parse_start(text.strip())


def _config(args: argparse.Namespace) -> SimConfig:
    from kmevents.simulate import DEFAULT_START, config

    try:
        return config(args.cluster, args.seed, args.events, profile=args.profile,
                      scale=args.scale, agents=args.agents, frameworks=args.frameworks,
                      pods=args.pods, rate=args.rate, start=args.start or DEFAULT_START,
                      pod_eviction_timeout=args.pod_eviction_timeout)
    except ValueError as exc:
        raise UsageError(str(exc), hint="see `kmevents simulate --help` for the profiles and their sizes") from exc


def _lines(cfg: SimConfig, counts: Counter[str], facts: dict[str, Any]) -> Iterator[bytes]:
    from kmevents.simulate import batches

    facts.update(profile=cfg.profile, scale=cfg.scale, agents=cfg.agents, pods=cfg.target_pods,
                 rate=cfg.events_per_second)
    encode = partial(orjson.dumps, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    by_type: dict[str, int] = {}
    get = by_type.get

    def started(n: int) -> None:
        facts["bootstrap_events"] = min(n, cfg.events)

    try:
        for batch in batches(cfg, started):
            for event in batch:
                type_ = event["type"]
                by_type[type_] = get(type_, 0) + 1
            yield from map(encode, batch)
    finally:
        counts.update(by_type)


def _progress(lines: Iterable[bytes], total: int, enabled: bool) -> Iterator[bytes]:
    if not enabled:
        yield from lines
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("simulate"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                  transient=False) as progress:
        task = progress.add_task("simulate", total=total, rate="")
        started = time.perf_counter()
        done = 0
        for line in lines:
            yield line
            done += 1
            if done % 20_000 == 0:
                elapsed = time.perf_counter() - started
                progress.update(task, completed=done, rate=f"{done / elapsed:,.0f} ev/s")
        progress.update(task, completed=done)


def _write(lines: Iterable[bytes], stream: IO[bytes]) -> None:
    buf: list[bytes] = []
    write = stream.write
    for line in lines:
        buf.append(line)
        if len(buf) >= 4096:
            write(b"".join(buf))
            buf.clear()
    if buf:
        write(b"".join(buf))


def run(args: argparse.Namespace) -> int:
    _check(args)
    cfg = _config(args)
    counts: Counter[str] = Counter()
    facts: dict[str, Any] = {}
    to_stdout = args.output == "-"
    show_progress = not args.quiet and sys.stderr.isatty()
    started = time.perf_counter()
    lines = _progress(_lines(cfg, counts, facts), args.events, show_progress)
    if args.to_kafka:
        produce, settings = _produce_lines()
        failed = _produce(produce, settings, lines)
        if failed:
            for res in failed[:5]:
                print(f"simulate: event #{getattr(res, 'index', '?')} not produced: "
                      f"{getattr(res, 'errors', '')}", file=sys.stderr)
            print(f"simulate: {len(failed)} event(s) were refused by the ingest path",
                  file=sys.stderr)
            return 1
    elif to_stdout:
        try:
            _write(lines, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # the reader went away (`| head`): that is how a pipe ends, not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
    else:
        try:
            with open(args.output, "wb") as fh:
                _write(lines, fh)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}",
                             hint="choose a writable path for -o") from exc
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    summary = {
        "cluster": args.cluster, "seed": args.seed, **facts, "events": total,
        "seconds": round(elapsed, 3), "events_per_second": round(total / elapsed, 1) if elapsed else None,
        "output": "kafka" if args.to_kafka else args.output,
        "by_type": dict(sorted(counts.items())),
    }
    if args.format == "json":
        text = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
        print(text, file=sys.stderr if to_stdout else sys.stdout)
    elif not args.quiet:
        print(f"simulate: {total:,} events in {elapsed:.1f}s ({summary['events_per_second']:,} ev/s)"
              f" -> {summary['output']}", file=sys.stderr)
    return 0


def _produce_lines() -> Any:
    try:
        ingest = importlib.import_module("kmevents.ingest")
    except ImportError:
        ingest = None
    produce = getattr(ingest, "produce_lines", None) if ingest is not None else None
    if produce is None:
        raise EnvironmentProblem(NO_INGEST)
    return produce, _settings()


def _produce(produce: Any, settings: Any, lines: Iterable[bytes]) -> list[Any]:
    """Hand the lines to the ingest path; a broker that cannot be reached is an environment error."""
    from kmevents.errors import KmeventsError

    try:
        return list(produce(settings, lines) or [])
    except KmeventsError:
        raise
    except Exception as exc:
        if "kafka" not in type(exc).__module__.lower() + type(exc).__name__.lower():
            raise
        where = getattr(getattr(settings, "kafka", None), "bootstrap", "the configured brokers")
        raise EnvironmentProblem(
            f"Kafka is not reachable at {where}: {exc}",
            hint="start the local stack with `kmevents stack up`, or write to a file with -o "
                 "and run `kmevents ingest FILE` later",
        ) from exc


def _settings() -> Any:
    """The project's settings object, from whichever loader ``kmevents.settings`` offers."""
    try:
        mod = importlib.import_module("kmevents.settings")
    except ImportError as exc:
        raise EnvironmentProblem(NO_INGEST) from exc
    for name in ("load_settings", "get_settings", "load"):
        loader = getattr(mod, name, None)
        if callable(loader):
            return loader()
    cls = getattr(mod, "Settings", None)
    if cls is None:
        raise EnvironmentProblem(NO_INGEST)
    return cls()
