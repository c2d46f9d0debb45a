"""What the reading commands (state, diff, history, search, verify, archive) share.

``add_source_flags`` gives every reading command the same ``--cluster``,
``--source kafka | ARCHIVE...``, ``--topic``, ``--partition``, snapshot and
progress flags; ``open_source`` hands them to ``kmevents.replay.opening.open_log``
(the keyword API), which turns them into a Source (and a snapshot store when
etcd answers). With archives only, nothing connects to any server.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from kmevents.commands._common import add_connection_flags, add_format_flag, settings_from

T = TypeVar("T")

SOURCE_HELP = """\
sources: --source kafka (the default) reads the cluster's partition of the
events topic (or --topic, e.g. one filled by `kmevents archive import`);
--source FILE... reads archives written by `kmevents archive export` (a folder
means every *.kmarch in it) with NO server running; give both
(--source kafka a.kmarch) to replay archives and the topic together: each
original offset is used once. A point in time starts from the newest snapshot
at or before it, from etcd's index or carried by the archives themselves."""


def add_source_flags(p: argparse.ArgumentParser, *, snapshots: bool = True,
                     formats: tuple[str, ...] = ("table", "json")) -> None:
    p.add_argument("--cluster", help="cluster name (default KMEVENTS_CLUSTER; with archives only: theirs)")
    p.add_argument("--source", nargs="+", metavar="kafka|ARCHIVE", default=None,
                   help="where to read the log: 'kafka' and/or archive files or folders (default kafka)")
    p.add_argument("--topic", help="read this topic instead of the events topic (e.g. an imported copy)")
    p.add_argument("--partition", type=int, help="the cluster's partition (default: the partition map in etcd)")
    if snapshots:
        p.add_argument("--no-snapshots", action="store_true",
                       help="fold from the start of the log instead of the newest snapshot before the target")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_connection_flags(p)
    add_format_flag(p, formats)


def cluster_given(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "cluster", None))


def open_source(args: argparse.Namespace, *, want_snapshots: bool = True) -> Any:
    """``open_log`` with the reading commands' flags (``--cluster``, ``--source``, ``--topic``,
    ``--partition``, ``--no-snapshots``, the connection flags); an async context manager. Its
    settings are deferred (``settings_from(defer=True)``): archives alone never load them."""
    from kmevents.replay.opening import open_log

    return open_log(settings_from(args, defer=True), cluster=args.cluster, read_from=args.source, topic=args.topic,
                    partition=args.partition,
                    snapshots=want_snapshots and not getattr(args, "no_snapshots", False))


def archive_paths(items: list[str]) -> list[Path]:
    from kmevents.replay.opening import archive_paths as paths

    return paths(items)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; Ctrl-C cancels it cleanly (the CLI prints 'interrupted', exit 130).
    These commands fold logs for most of their short life: the process collects as the fold
    does (reducer.apply.collect_rarely; not the API's long-lived process, which has its own)."""
    from kmevents.reducer.apply import collect_rarely

    collect_rarely()

    async def held() -> _Held[T]:
        return _Held(await coro_fn())

    return asyncio.run(held()).value


class _Held(Generic[T]):
    """A command's result as ``asyncio.run`` holds it, with a constant ``repr``. Python 3.11's
    ``asyncio.run`` puts its SIGINT handler back when the coroutine ends, and ``signal.signal``
    then tries the handler it replaced (a partial naming the finished task) as an enum value:
    the failed lookup's message holds ``repr`` of the task, so of its result, whole, twice.
    ``kmevents get pods`` at the large profile returned 144k pods: ~5 s of its 10.5 s and most of
    its 1.3 GB went to those two strings (BENCHMARKS.md)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<kmevents command result>"


def json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    return str(o)
