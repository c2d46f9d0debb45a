"""What the cluster answers about itself: health, group coordination, a group's members.

All asked with the admin API, so nothing here joins a group or reads a record.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.errors import KafkaConnectionError, KafkaError

from kmevents.adapters.kafka.clients import admin
from kmevents.settings import KafkaSettings


async def healthy(k: KafkaSettings, timeout: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within ``timeout`` seconds."""
    host, _, port = k.bootstrap.split(",")[0].rpartition(":")
    try:
        # A plain TCP probe first, so a broker still starting is not logged as an error.
        _r, w = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        w.close()
    except (TimeoutError, OSError, ValueError):
        return False
    client = admin(k, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.start(), timeout)
        await asyncio.wait_for(client.list_topics(), timeout)
        return True
    except (TimeoutError, KafkaConnectionError, KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):  # closing a never-started client may fail
            await client.close()


async def wait_group_coordinator(k: KafkaSettings, timeout: float = 60.0) -> bool:
    """Wait until the broker coordinates consumer groups; True when it does.

    On a fresh broker the first group request creates ``__consumer_offsets``
    and every group client logs "coordinator not available" errors until it
    exists. Asking here, quietly, lets ``stack up`` return a broker that is
    ready for consumer groups.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    client = admin(k)
    await client.start()
    try:
        while True:
            try:
                await client.find_coordinator("kmevents-readiness")
                return True
            except KafkaError:
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.2)
    finally:
        await client.close()


async def group_assignment(k: KafkaSettings, group_id: str) -> dict[str, list[tuple[str, int]]]:
    """Live members of a consumer group and the ``(topic, partition)`` each is assigned.

    Empty when the group has no members (no worker running). Read with the
    admin API (DescribeGroups), so nothing joins the group.
    """
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    client = admin(k)
    await client.start()
    try:
        out: dict[str, list[tuple[str, int]]] = {}
        for resp in await client.describe_consumer_groups([group_id]):
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
        await client.close()
