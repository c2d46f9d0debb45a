"""Reading one cluster's records from the events topic (its pinned partition)."""

from __future__ import annotations

from typing import Any

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings


async def partition_of(settings: Settings, cluster: str) -> int | None:
    """The cluster's pinned partition, or None if the cluster was never ingested."""
    key = layout.partition_map_key(settings.etcd.prefix, cluster)
    async with etcd_adapter.client(settings.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, key)
    if not kvs:
        return None
    return int(orjson.loads(kvs[0].value)["partition"])


async def records(settings: Settings, partition: int, start: int, end: int) -> list[Any]:
    """Records of ``partition`` with offsets in ``[start, end]`` (all clusters of the partition)."""
    return await kafka_adapter.read_range(settings.kafka, settings.kafka.events_topic, partition, start, end)
