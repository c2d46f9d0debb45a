"""The project's topics: what they are (:func:`topic_specs`), creating them, describing them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from kmevents.adapters.kafka.clients import admin
from kmevents.settings import KafkaSettings


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
                # every chunk has a key of its own: compaction removes only the chunks of pruned
                # snapshots (tombstoned by `kmevents snapshots prune`, store/snapshot_retention.py);
                # 256 MiB segments let it reclaim them without waiting for 1 GiB of newer ones.
                # Tombstones are tiny beside the chunks they remove, so the dirty ratio alone would
                # not start a cleaning (3.36 GB stayed for minutes at the large profile after a prune
                # of 1.63 GB); at most a day after a prune the cleaner runs anyway (it then rewrites
                # the topic: 1.73 GB ~70 s after the lag was set, BENCHMARKS.md)
                "cleanup.policy": "compact",
                "segment.bytes": str(256 * 1024 * 1024),
                "max.compaction.lag.ms": str(24 * 3600 * 1000),
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
        # records a source adapter could not read, kept whole with their position (issue 16)
        TopicSpec(
            k.quarantine_topic,
            1,
            k.replication_factor,
            {**common, "message.timestamp.type": "LogAppendTime", "retention.ms": "-1"},
        ),
    ]


async def ensure_topics(k: KafkaSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    specs = specs or topic_specs(k)
    client = admin(k)
    await client.start()
    try:
        existing = set(await client.list_topics())
        todo = [s for s in specs if s.name not in existing]
        if todo:
            with contextlib.suppress(TopicAlreadyExistsError):
                await client.create_topics(
                    [
                        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
                        for s in todo
                    ]
                )
            await _until_served(client, [s.name for s in todo])
        return [s.name for s in todo]
    finally:
        await client.close()


async def _until_served(client: Any, names: list[str], timeout: float = 15.0) -> None:
    """Until the broker's metadata shows every named topic with a leader for each partition.

    Creation returns before the new topic's metadata has propagated; a client
    using it at once logs "not found in cluster metadata" and retries.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        topics = await client.describe_topics(names)
        if len(topics) == len(names) and all(
            t.get("error_code") == 0 and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"]) for t in topics
        ):
            return
        await asyncio.sleep(0.1)


async def describe_topics(k: KafkaSettings, names: list[str]) -> dict[str, dict[str, Any]]:
    """Partition count and the non-default configs of each named topic."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    client = admin(k)
    await client.start()
    try:
        meta = await client.describe_topics(names)
        out: dict[str, dict[str, Any]] = {
            t["topic"]: {"partitions": len(t["partitions"]), "configs": {}} for t in meta
        }
        resp = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        for r in resp:
            for res in r.resources:
                _err, _msg, _type, name, entries = res[:5]
                if name in out:
                    out[name]["configs"] = {e[0]: e[1] for e in entries}
        return out
    finally:
        await client.close()
