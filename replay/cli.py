"""What the reading commands (state, diff, history, search, verify, archive) share.

``add_source_flags`` gives every reading command the same ``--cluster``,
``--source kafka | ARCHIVE...``, ``--topic``, ``--partition``, snapshot and
progress flags; ``open_source`` turns them into a :class:`Source` (and a
snapshot store when etcd answers). With archives only, nothing connects to
any server: incident analysis works on a laptop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kmevents.commands._common import add_connection_flags, add_format_flag, settings_from
from kmevents.errors import EnvironmentProblem, UsageError
from kmevents.settings import Settings

if TYPE_CHECKING:  # imported where used: building the CLI's parser must stay cheap (cold start)
    from kmevents.replay.sources import Source

    from kmevents.store.snapshots import Snapshots

T = TypeVar("T")

SOURCE_HELP = """\
sources: --source kafka (the default) reads the cluster's partition of the
events topic (or --topic, e.g. one filled by `kmevents archive import`);
--source FILE... reads archives written by `kmevents archive export` (a folder
means every *.kmarch in it) with NO server running; give both
(--source kafka a.kmarch) to replay archives and the topic together: each
original offset is used once. A point in time starts from the newest snapshot
at or before it, from etcd's index or carried by the archives themselves."""


def add_source_flags(p: argparse.ArgumentParser, *, snapshots: bool = True) -> None:
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
    add_format_flag(p)


@dataclass
class Opened:
    source: Source
    cluster: str
    settings: Settings
    snapshots: Snapshots | None
    uses_kafka: bool


def archive_paths(items: list[str]) -> list[Path]:
    from kmevents.replay import archive

    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out.extend(sorted(p.glob(f"*{archive.SUFFIX}")))
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"no such archive: {it}", hint="give archive files, folders of them, or 'kafka'")
    return out


def cluster_given(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "cluster", None))


@contextlib.asynccontextmanager
async def open_source(args: argparse.Namespace, *, want_snapshots: bool = True) -> AsyncIterator[Opened]:
    from kmevents.replay.sources import ArchiveSource, KafkaSource, MergedSource

    from kmevents.store.snapshots import SnapshotStore

    items = list(args.source or ["kafka"])
    use_kafka = "kafka" in items
    files = archive_paths([i for i in items if i != "kafka"])
    settings = settings_from(args)
    arcs = [ArchiveSource(f) for f in files]
    cluster = args.cluster or (arcs[0].cluster if arcs and not use_kafka else settings.cluster)
    for a in arcs:
        if a.cluster != cluster:
            raise UsageError(f"{a.path} holds cluster {a.cluster!r}, not {cluster!r}",
                             hint="pass --cluster matching the archives, or other archives")
    sources: list[Source] = list(arcs)
    store: Snapshots | None = None
    client = None
    reader = None
    try:
        if use_kafka:
            from kmevents.adapters import etcd as etcd_adapter

            partition = args.partition
            if partition is None and arcs:
                partition = arcs[0].partition
            if partition is None or (want_snapshots and not getattr(args, "no_snapshots", False)
                                     and not args.topic):
                client = etcd_adapter.client(settings.etcd)
                try:
                    await asyncio.wait_for(client.connect(), settings.etcd.timeout_seconds)
                    if partition is None:
                        from kmevents.replay.logsource import partition_of

                        partition = await partition_of(settings, cluster)
                except Exception as exc:  # noqa: BLE001
                    if partition is None:
                        raise EnvironmentProblem(
                            f"cannot read the partition map from etcd at {settings.etcd.endpoint}: {exc}",
                            hint="start the stack (`kmevents stack up`), pass --partition N, or read archives "
                                 "with --source FILE") from None
                    client = None
                if partition is None:
                    raise UsageError(f"cluster {cluster!r} was never ingested (no partition in the map)",
                                     hint="check --cluster, or pass --partition N")
                if client is not None and want_snapshots and not getattr(args, "no_snapshots", False) \
                        and not args.topic:
                    store = SnapshotStore(settings, client)
            from kmevents.adapters import kafka as kafka_adapter

            topic = args.topic or settings.kafka.events_topic
            # one consumer for every read of the command (bounds, first record, records)
            reader = kafka_adapter.PartitionReader(settings.kafka, topic, partition)
            sources.append(KafkaSource(settings.kafka, topic, partition, cluster, reader=reader))
        carried = [a for a in arcs if a.header.get("snapshots")]
        if carried and want_snapshots and not getattr(args, "no_snapshots", False):
            from kmevents.replay.snapshots import ArchiveSnapshots, CombinedSnapshots

            own = ArchiveSnapshots(carried)
            store = own if store is None else CombinedSnapshots([own, store])
        src: Source = sources[0] if len(sources) == 1 else MergedSource(sources)
        yield Opened(src, cluster, settings, store, use_kafka)
    finally:
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.close()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; Ctrl-C cancels it cleanly (the CLI prints 'interrupted', exit 130)."""
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    return str(o)
