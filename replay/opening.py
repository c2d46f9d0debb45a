"""Opening a cluster's log for reading: the topic, archives, or both, and their snapshots.

``open_log`` is the keyword API every reader of the log uses (the reading commands
through ``kmevents.commands._source``): it turns "which cluster, from where" into a
:class:`~kmevents.replay.sources.Source` and, when etcd answers, the snapshot store.
With archives only, nothing connects to any server: incident analysis works on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmevents.errors import EnvironmentProblem, UsageError

if TYPE_CHECKING:  # imported where used: a reading command's cold start stays cheap
    from kmevents.replay.sources import Source

    from kmevents.settings import Settings
    from kmevents.store.snapshots import Snapshots


@dataclass
class Opened:
    source: Source
    cluster: str
    settings: Settings
    snapshots: Snapshots | None
    uses_kafka: bool
    #: the connected etcd client when one was opened (the snapshot store's): history reads
    #: the touched-entity index through it
    client: Any = None
    #: ``(snapshot partition) -> reader`` kept open for the command, of fetches sized for one chunk
    #: (:data:`SNAPSHOT_POINT_FETCH_BYTES`): for many scattered records of the snapshots topic, as a
    #: history reads its versions records and the touched index's groups (each read through a consumer
    #: of its own started 38 consumers for an agent's history at the large profile). None: no Kafka.
    snapshot_points: Any = None
    #: the same, of small fetches (:data:`SNAPSHOT_PART_FETCH_BYTES`): for the touched index's run parts
    #: (store/touched_runs.py), ~50 KB each at random offsets, a few dozen a history
    snapshot_parts: Any = None


#: A fetch of :attr:`Opened.snapshot_points`' readers: one chunk of the snapshots topic (1 MiB at most)
#: and its framing; a versions record is ~0.2 MB at the large profile.
SNAPSHOT_POINT_FETCH_BYTES = 1_100_000
#: A fetch of :attr:`Opened.snapshot_parts`' readers: a run's part and some room (a fetch holds at least
#: one record whatever its size); 1 MiB fetches made a history's 40 part reads at 6M events ~0.2 s.
SNAPSHOT_PART_FETCH_BYTES = 128 * 1024


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


@contextlib.asynccontextmanager
async def open_log(settings: Settings, *, cluster: str | None = None, read_from: list[str] | None = None,
                   topic: str | None = None, partition: int | None = None,
                   snapshots: bool = True) -> AsyncIterator[Opened]:
    """Open ``cluster``'s log (default: the archives', else ``settings.cluster``) for reading.

    ``read_from``: ``"kafka"`` and/or archive files or folders (default ``["kafka"]``);
    ``topic``: another topic than the events topic (an imported copy); ``partition``:
    the cluster's partition (default: the partition map in etcd, or the archives');
    ``snapshots``: also open the snapshot store (etcd's, and the archives' own).
    Closes what it opened on exit.
    """
    from kmevents.replay.sources import POINT_FETCH_BYTES, ArchiveSource, KafkaSource, MergedSource

    from kmevents.store.snapshots import SnapshotStore

    items = list(read_from or ["kafka"])
    use_kafka = "kafka" in items
    files = archive_paths([i for i in items if i != "kafka"])
    arcs = [ArchiveSource(f) for f in files]
    cluster = cluster or (arcs[0].cluster if arcs and not use_kafka else settings.cluster)
    for a in arcs:
        if a.cluster != cluster:
            raise UsageError(f"{a.path} holds cluster {a.cluster!r}, not {cluster!r}",
                             hint="pass --cluster matching the archives, or other archives")
    sources: list[Source] = list(arcs)
    store: Snapshots | None = None
    client = None
    reader = point_reader = None
    #: the snapshots topic's readers of scattered records by partition (``Opened.snapshot_points``),
    #: made when first used and kept open for the command
    snapshot_readers: dict[tuple[int, int], Any] = {}

    def snapshot_reader(p: int, fetch: int) -> Any:
        from kmevents.adapters import kafka as kafka_adapter

        r = snapshot_readers.get((p, fetch))
        if r is None:
            r = snapshot_readers[(p, fetch)] = kafka_adapter.PartitionReader(
                settings.kafka, settings.kafka.snapshots_topic, p, max_bytes=fetch)
        return r

    def snapshot_points(p: int) -> Any:
        return snapshot_reader(p, SNAPSHOT_POINT_FETCH_BYTES)

    def snapshot_parts(p: int) -> Any:
        return snapshot_reader(p, SNAPSHOT_PART_FETCH_BYTES)

    try:
        if use_kafka:
            from kmevents.adapters import etcd as etcd_adapter

            if partition is None and arcs:
                partition = arcs[0].partition
            if partition is None or (snapshots and not topic):
                client = etcd_adapter.client(settings.etcd)
                try:
                    await asyncio.wait_for(client.connect(), settings.etcd.timeout_seconds)
                    if partition is None:
                        from kmevents.replay.logsource import partition_of

                        partition = await partition_of(settings, cluster)
                except Exception as exc:  # noqa: BLE001
                    if partition is None:
                        raise EnvironmentProblem(
                            f"cannot read the partition map from etcd at {settings.etcd.endpoint}",
                            hint="start the stack (`kmevents stack up`), pass --partition N, or read archives "
                                 "with --source FILE") from exc  # the cause: gRPC's status, said in one line
                    client = None
                if partition is None:
                    raise UsageError(f"cluster {cluster!r} was never ingested (no partition in the map)",
                                     hint="check --cluster, or pass --partition N")
                if client is not None and snapshots and not topic:
                    store = SnapshotStore(settings, client)
            from kmevents.adapters import kafka as kafka_adapter

            name = topic or settings.kafka.events_topic
            # one consumer for every read of the command (bounds, first record, records)
            reader = kafka_adapter.PartitionReader(settings.kafka, name, partition)  # fetches of reader.FETCH_BYTES
            # and one of small fetches for reads of a few scattered records (history; started when used)
            point_reader = kafka_adapter.PartitionReader(settings.kafka, name, partition,
                                                         max_bytes=POINT_FETCH_BYTES)
            sources.append(KafkaSource(settings.kafka, name, partition, cluster, reader=reader,
                                       point_reader=point_reader))
        carried = [a for a in arcs if a.header.get("snapshots")]
        if carried and snapshots:
            from kmevents.replay.snapshots import ArchiveSnapshots, CombinedSnapshots

            own = ArchiveSnapshots(carried)
            store = own if store is None else CombinedSnapshots([own, store])
        src: Source = sources[0] if len(sources) == 1 else MergedSource(sources)
        yield Opened(src, cluster, settings, store, use_kafka, client,
                     snapshot_points=snapshot_points if use_kafka else None,
                     snapshot_parts=snapshot_parts if use_kafka else None)
    finally:
        for r in (reader, point_reader, *snapshot_readers.values()):
            if r is not None:
                with contextlib.suppress(Exception):
                    await r.close()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
