"""The one module that imports aiokafka: clients, topic layout and health.

Every other module asks this adapter for a producer, a consumer or an admin
operation, so the transport's quirks stay here:

- ``ConsumerRecord.timestamp`` is milliseconds; ``timestamp_type == 1`` means
  LogAppendTime, which is what the events topic uses (``recorded_at``).
- aiokafka's transactional requests are version 0 only; kmevents needs none:
  the exactly-once effect lives in etcd (DESIGN.md rule 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from kmevents.errors import EnvironmentProblem, UsageError
from kmevents.settings import KafkaSettings

__all__ = [
    "ConsumerRebalanceListener",
    "TopicPartition",
    "TopicSpec",
    "read_range",
    "client_options",
    "consumer",
    "ensure_topics",
    "healthy",
    "describe_topics",
    "producer",
    "topic_specs",
    "KafkaError",
]

#: LogAppendTime in ``ConsumerRecord.timestamp_type``.
LOG_APPEND_TIME = 1


@dataclass(frozen=True)
class TopicSpec:
    """A topic kmevents creates explicitly, with the configs it depends on."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def topic_specs(k: KafkaSettings) -> list[TopicSpec]:
    """The project's topics and their settings (also checked against compose.yaml by a test)."""
    common = {"min.insync.replicas": str(k.min_insync_replicas)}
    return [
        TopicSpec(
            k.events_topic,
            k.partitions,
            k.replication_factor,
            {
                **common,
                # recorded_at is the broker's clock: one clock for the whole log.
                "message.timestamp.type": "LogAppendTime",
                "retention.ms": str(k.events_retention_ms),
                "retention.bytes": "-1",
                "cleanup.policy": "delete",
            },
        ),
        TopicSpec(
            k.snapshots_topic,
            k.partitions,
            k.replication_factor,
            {
                **common,
                "message.timestamp.type": "LogAppendTime",
                "max.message.bytes": str(k.snapshot_max_message_bytes),
                "retention.ms": "-1",
                "cleanup.policy": "delete",
            },
        ),
        TopicSpec(
            k.deadletter_topic,
            1,
            k.replication_factor,
            {**common, "message.timestamp.type": "LogAppendTime", "retention.ms": "-1"},
        ),
        TopicSpec(
            k.alerts_topic,
            1,
            k.replication_factor,
            {**common, "message.timestamp.type": "LogAppendTime", "retention.ms": str(30 * 86400_000)},
        ),
        TopicSpec(
            k.quarantine_topic,
            1,
            k.replication_factor,
            {**common, "message.timestamp.type": "LogAppendTime", "retention.ms": "-1"},
        ),
    ]


def client_options(k: KafkaSettings) -> dict[str, Any]:
    """Connection and security keyword arguments shared by every aiokafka client."""
    opts: dict[str, Any] = {"bootstrap_servers": k.bootstrap, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
        if k.ssl_certfile:
            ctx.load_cert_chain(str(k.ssl_certfile), str(k.ssl_keyfile) if k.ssl_keyfile else None)
        opts["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = k.sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = k.sasl_username
        opts["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    return opts


def producer(k: KafkaSettings, **kwargs: Any) -> AIOKafkaProducer:
    """An idempotent producer (``acks=all``); call ``await p.start()`` before use."""
    opts = {
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        **client_options(k),
        **kwargs,
    }
    return AIOKafkaProducer(**opts)


def consumer(k: KafkaSettings, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
    """A consumer with auto-commit off (positions are owned by etcd checkpoints)."""
    opts = {"enable_auto_commit": False, "auto_offset_reset": "earliest", **client_options(k), **kwargs}
    return AIOKafkaConsumer(*topics, **opts)


async def ensure_topics(k: KafkaSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    specs = specs or topic_specs(k)
    admin = AIOKafkaAdminClient(**client_options(k))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        todo = [s for s in specs if s.name not in existing]
        if todo:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
                        for s in todo
                    ]
                )
            await _until_served(admin, [s.name for s in todo])
        return [s.name for s in todo]
    finally:
        await admin.close()


async def _until_served(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 15.0) -> None:
    """Until the broker's metadata shows every named topic with a leader for each partition.

    Creation returns before the new topic's metadata has propagated; a client
    using it at once logs "not found in cluster metadata" and retries.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        topics = await admin.describe_topics(names)
        if len(topics) == len(names) and all(
            t.get("error_code") == 0 and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"]) for t in topics
        ):
            return
        await asyncio.sleep(0.1)


async def wait_group_coordinator(k: KafkaSettings, timeout: float = 60.0) -> bool:
    """Wait until the broker coordinates consumer groups; True when it does.

    On a fresh broker the first group request creates ``__consumer_offsets``
    and every group client logs "coordinator not available" errors until it
    exists. Asking here, quietly, lets ``stack up`` return a broker that is
    ready for consumer groups.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    admin = AIOKafkaAdminClient(**client_options(k))
    await admin.start()
    try:
        while True:
            try:
                await admin.find_coordinator("kmevents-readiness")
                return True
            except KafkaError:
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def describe_topics(k: KafkaSettings, names: list[str]) -> dict[str, dict[str, Any]]:
    """Partition count and the non-default configs of each named topic."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(k))
    await admin.start()
    try:
        meta = await admin.describe_topics(names)
        out: dict[str, dict[str, Any]] = {
            t["topic"]: {"partitions": len(t["partitions"]), "configs": {}} for t in meta
        }
        resp = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        for r in resp:
            for res in r.resources:
                _err, _msg, _type, name, entries = res[:5]
                if name in out:
                    out[name]["configs"] = {e[0]: e[1] for e in entries}
        return out
    finally:
        await admin.close()


async def healthy(k: KafkaSettings, timeout: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within ``timeout`` seconds."""
    host, _, port = k.bootstrap.split(",")[0].rpartition(":")
    try:
        # A plain TCP probe first, so a broker still starting is not logged as an error.
        _r, w = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        w.close()
    except (TimeoutError, OSError, ValueError):
        return False
    admin = AIOKafkaAdminClient(**client_options(k), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (TimeoutError, KafkaConnectionError, KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):  # closing a never-started client may fail
            await admin.close()


async def read_range(k: KafkaSettings, topic: str, partition: int, start: int, end: int,
                     *, max_bytes: int = 32 * 1024 * 1024) -> list[Any]:
    """Records of one partition with ``start <= offset <= end`` (no group, no commits)."""
    if end < start:
        return []
    return [r async for batch in iter_range(k, topic, partition, start, end, max_bytes=max_bytes, batch=50_000)
            for r in batch]


async def end_offsets(k: KafkaSettings, topic: str) -> dict[int, int]:
    """Each partition's next offset to be written (its high watermark)."""
    c = AIOKafkaConsumer(topic, **client_options(k), enable_auto_commit=False, group_id=None)
    try:
        await c.start()  # subscribing fetches the topic's metadata (stopped also when this fails)
        parts = c.partitions_for_topic(topic)
        if not parts:
            return {}
        ends = await c.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


# -- reading for replay (kmevents.replay) --------------------------------------
# A header an archive import puts on each record: the record's position in the
# log it was exported from, so readers can dedupe by the original offset.
ORIGIN_HEADER = "kmevents-origin"


# One-off reads go through a PartitionReader made for the read and closed after
# it, so the range-reading loop exists once (PartitionReader.batches).

async def iter_range(k: KafkaSettings, topic: str, partition: int, start: int, end: int | None = None,
                     *, max_bytes: int = 16 * 1024 * 1024, batch: int = 20_000) -> Any:
    """Batches (lists) of one partition's records with ``start <= offset <= end``, streaming.

    ``end=None`` means "up to the high watermark when the read started". Memory
    stays at one fetch; no group, no commits. An async generator.
    """
    reader = PartitionReader(k, topic, partition, max_bytes=max_bytes)
    try:
        async for recs in reader.batches(start, end, batch=batch):
            yield recs
    finally:
        await reader.close()


async def partition_bounds(k: KafkaSettings, topic: str, partition: int) -> tuple[int, int]:
    """``(first offset still stored, next offset to be written)`` of one partition."""
    reader = PartitionReader(k, topic, partition)
    try:
        return await reader.bounds()
    finally:
        await reader.close()


async def offset_for_time(k: KafkaSettings, topic: str, partition: int, ms: int) -> int | None:
    """The first offset whose timestamp (log-append time) is ``>= ms``; None if there is none."""
    reader = PartitionReader(k, topic, partition)
    try:
        return await reader.offset_for_time(ms)
    finally:
        await reader.close()


async def group_assignment(k: KafkaSettings, group_id: str) -> dict[str, list[tuple[str, int]]]:
    """Live members of a consumer group and the ``(topic, partition)`` each is assigned.

    Empty when the group has no members (no worker running). Read with the
    admin API (DescribeGroups), so nothing joins the group.
    """
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(**client_options(k))
    await admin.start()
    try:
        out: dict[str, list[tuple[str, int]]] = {}
        for resp in await admin.describe_consumer_groups([group_id]):
            for g in resp.to_object()["groups"]:
                for m in g.get("members", []):
                    parts: list[tuple[str, int]] = []
                    raw = m.get("member_assignment") or b""
                    if raw:
                        a = ConsumerProtocolMemberAssignment.decode(raw)
                        parts = [(t, p) for t, ps in a.assignment for p in ps]
                    out[str(m.get("member_id"))] = parts
        return out
    finally:
        await admin.close()


class PartitionReader:
    """One consumer kept open to read one partition again and again (assign, seek, fetch).

    A long-lived reader (the API's point-in-time reads) uses it instead of a
    new consumer per read (~50-500 ms each: connect, metadata, offsets).
    Reads may interleave: each fetch seeks to where its own read is when the
    consumer stands elsewhere. During a read the consumer prefetches the next
    records; after it the partition is paused.
    """

    #: How long a read waits for records the log holds before it fails.
    stall_seconds = 60.0

    def __init__(self, k: KafkaSettings, topic: str, partition: int, *, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.k = k
        self.tp = TopicPartition(topic, partition)
        self.max_bytes = max_bytes
        self._c: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._starting = asyncio.Lock()
        self._at: int | None = None  # the consumer's position after our last fetch
        self.consumers_started = 0

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._c is None:
            async with self._starting:
                if self._c is None:
                    # auto_offset_reset "none": a seek below the log start (records deleted since the
                    # bounds were read) fails the read instead of jumping silently to the end
                    c = AIOKafkaConsumer(**client_options(self.k), enable_auto_commit=False, group_id=None,
                                         auto_offset_reset="none",
                                         max_partition_fetch_bytes=self.max_bytes, fetch_max_bytes=self.max_bytes)
                    await c.start()
                    try:
                        # Asked for by name, a missing topic would be created by a broker that
                        # auto-creates topics (the local stack's does): a typo in --topic would
                        # leave an empty topic behind and read as an empty log. The list of
                        # every topic creates none.
                        # (what c.topics() does, keeping the partitions it learns as well)
                        metadata = await c._client.fetch_all_metadata()
                        if self.tp.topic not in metadata.topics():
                            raise UsageError(f"topic {self.tp.topic!r} does not exist on {self.k.bootstrap}",
                                             hint="check --topic and KMEVENTS_KAFKA__EVENTS_TOPIC, or ingest first "
                                                  "(`kmevents stack up` creates kmevents' own topics)")
                        # A partition the topic does not have would time out after 40 s inside
                        # aiokafka (an imported copy has fewer partitions than the live topic).
                        parts = sorted(metadata.partitions_for_topic(self.tp.topic) or ())
                        if self.tp.partition not in parts:
                            raise UsageError(
                                f"topic {self.tp.topic!r} has no partition {self.tp.partition} "
                                f"(its partitions: {', '.join(map(str, parts)) or 'none'})",
                                hint="pass --partition N (`kmevents archive import` writes partition 0 "
                                     "unless told otherwise)")
                    except BaseException:
                        await c.stop()
                        raise
                    c.assign([self.tp])
                    c.pause(self.tp)
                    self._c = c
                    self.consumers_started += 1
        return self._c

    async def close(self) -> None:
        c, self._c = self._c, None
        self._at = None
        if c is not None:
            await c.stop()

    async def bounds(self) -> tuple[int, int]:
        """``(first offset still stored, next offset to be written)``."""
        c = await self._consumer()
        first = (await c.beginning_offsets([self.tp]))[self.tp]
        end = (await c.end_offsets([self.tp]))[self.tp]
        return first, end

    async def offset_for_time(self, ms: int) -> int | None:
        """The first offset whose timestamp (log-append time) is ``>= ms``; None if there is none."""
        c = await self._consumer()
        found = (await c.offsets_for_times({self.tp: max(0, int(ms))})).get(self.tp)
        return None if found is None else int(found.offset)

    async def batches(self, start: int, end: int | None = None, *, batch: int = 20_000,
                      status: dict[str, int] | None = None, first: int | None = None) -> Any:
        """Batches of records with ``start <= offset <= end`` (``None``: the end when the read starts).

        ``status["reached"]`` is kept at the last offset this read surely covered
        (every record up to it returned): ``end`` when the read completed.
        ``first``: the log start as the caller read it moments ago (saves two requests).
        """
        st = status if status is not None else {}
        c = await self._consumer()
        tp = self.tp
        if end is None or first is None:
            first, nxt = await self.bounds()
            if end is None:
                end = nxt - 1
        pos = max(start, first)
        st["reached"] = pos - 1
        loop = asyncio.get_running_loop()
        progress_at = loop.time()
        while pos <= end:
            async with self._lock:
                if self._at != pos:
                    c.seek(tp, pos)
                if c.paused():
                    c.resume(tp)
                # no more records than the read still wants: a fetch brings up to max_bytes and
                # every record handed out is unpacked (a first-record check would unpack ~15k)
                got = await c.getmany(tp, timeout_ms=1000, max_records=max(1, min(batch, end - pos + 1)))
                recs = [r for r in got.get(tp, []) if r.offset >= pos]
                # nothing, or only offsets without records (transaction markers): skip them
                pos = recs[-1].offset + 1 if recs else max(pos, await c.position(tp))
                self._at = pos
            if not recs:
                log_end = (await c.end_offsets([tp]))[tp]
                if pos >= log_end:
                    break  # ``end`` lies beyond what is stored: the read ends where the log does
                if pos > st["reached"] + 1:
                    progress_at = loop.time()  # only offsets without records (markers) passed
                elif loop.time() - progress_at > self.stall_seconds:
                    # Never end early with records still stored: a caller (the worker's restore)
                    # would take a partial read for the whole range.
                    raise EnvironmentProblem(
                        f"Kafka returned no records of {tp.topic}/{tp.partition} from offset {pos} for "
                        f"{self.stall_seconds:.0f}s although the log holds offsets up to {log_end - 1}",
                        hint="check the broker (`kmevents stack status`, `kmevents stack logs kafka`)")
                st["reached"] = min(pos - 1, end)
                continue
            progress_at = loop.time()
            if recs[-1].offset > end:
                recs = [r for r in recs if r.offset <= end]
            st["reached"] = min(pos - 1, end)
            if recs:
                yield recs
        st["reached"] = min(pos - 1, end)
        async with self._lock:  # not while another read waits in getmany
            c.pause(tp)  # nothing to prefetch until the next read
