"""The Kafka adapter's partition reads on a real broker: one-off reads and a kept reader agree."""

from __future__ import annotations

import time

from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings
from tests.integration.test_stack_roundtrip import _produce


async def test_one_off_reads_return_exactly_the_range_asked(isolated: Settings) -> None:
    k, topic = isolated.kafka, isolated.kafka.events_topic
    await _produce(isolated, 30)
    assert await kafka_adapter.partition_bounds(k, topic, 0) == (0, 30)
    assert [r.offset for r in await kafka_adapter.read_range(k, topic, 0, 5, 12)] == list(range(5, 13))
    assert await kafka_adapter.read_range(k, topic, 0, 7, 6) == []
    streamed = [r.offset async for b in kafka_adapter.iter_range(k, topic, 0, 20) for r in b]
    assert streamed == list(range(20, 30))
    assert await kafka_adapter.offset_for_time(k, topic, 0, 0) == 0
    assert await kafka_adapter.offset_for_time(k, topic, 0, int(time.time() * 1000) + 3_600_000) is None


async def test_a_read_past_the_end_of_the_log_returns_what_is_stored_without_waiting(isolated: Settings) -> None:
    k, topic = isolated.kafka, isolated.kafka.events_topic
    await _produce(isolated, 10)
    t0 = time.monotonic()
    recs = await kafka_adapter.read_range(k, topic, 0, 4, 1_000)
    assert [r.offset for r in recs] == list(range(4, 10))
    assert time.monotonic() - t0 < 5  # not the 10 s an idle broker gets before a read gives up

    reader = kafka_adapter.PartitionReader(k, topic, 0)
    try:
        status: dict[str, int] = {}
        got = [r.offset async for b in reader.batches(8, 1_000, status=status) for r in b]
        assert got == [8, 9]
        assert status["reached"] == 9  # how far the read surely covered, not the end asked for
        # the kept reader serves another read after the log grew
        await _produce(isolated, 3)
        assert [r.offset async for b in reader.batches(9, None) for r in b] == [9, 10, 11, 12]
        assert reader.consumers_started == 1
    finally:
        await reader.close()


async def test_a_created_topic_is_served_before_ensure_topics_returns(isolated: Settings, caplog) -> None:
    import logging

    k = isolated.kafka
    name = f"{k.events_topic}.fresh"
    assert await kafka_adapter.ensure_topics(k, [kafka_adapter.TopicSpec(name, 3, 1, {})]) == [name]
    p = kafka_adapter.producer(k)
    await p.start()
    try:
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            assert await p.partitions_for(name) == {0, 1, 2}
            await p.send_and_wait(name, b"x", partition=2)
    finally:
        await p.stop()
    assert not [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert await kafka_adapter.ensure_topics(k, [kafka_adapter.TopicSpec(name, 3, 1, {})]) == []
    assert await kafka_adapter.wait_group_coordinator(k, timeout=30)
