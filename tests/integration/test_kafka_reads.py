"""The Kafka adapter's partition reads on a real broker: one-off reads and a kept reader agree."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

from kmevents.adapters import kafka as kafka_adapter
from kmevents.records import LogRecord
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
    assert time.monotonic() - t0 < 5  # the log's end is asked for, not waited for

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


async def test_a_broker_that_stops_answering_fails_the_read_instead_of_ending_it_early(isolated: Settings) -> None:
    """Records stored but none coming: a caller must not take the part read for the whole range."""
    import pytest

    from kmevents.errors import EnvironmentProblem

    k, topic = isolated.kafka, isolated.kafka.events_topic
    await _produce(isolated, 20)
    reader = kafka_adapter.PartitionReader(k, topic, 0)
    reader.stall_seconds = 1.5
    try:
        c = await reader._consumer()  # noqa: SLF001
        real = c.getmany
        calls = {"n": 0}

        async def first_then_nothing(*a: object, **kw: object) -> dict:
            calls["n"] += 1
            if calls["n"] == 1:
                return await real(*a, **kw)
            await asyncio.sleep(0.2)  # a poll's timeout, shortened
            return {}

        c.getmany = first_then_nothing
        got: list[int] = []
        t0 = time.monotonic()
        with pytest.raises(EnvironmentProblem, match="no records of .* from offset"):
            async for b in reader.batches(0, 19, batch=5):
                got.extend(r.offset for r in b)
        assert got == [0, 1, 2, 3, 4] and 1.5 <= time.monotonic() - t0 < 10
    finally:
        await reader.close()


async def test_a_partition_the_topic_does_not_have_is_refused_at_once(isolated: Settings) -> None:
    # `verify --topic IMPORTED` without --partition asked for the cluster's live partition,
    # which the imported copy does not have: aiokafka timed out after 40 s with a traceback.
    import pytest

    from kmevents.errors import UsageError

    started = time.monotonic()
    with pytest.raises(UsageError, match=r"has no partition 7 \(its partitions: 0, 1, 2\)"):
        await kafka_adapter.partition_bounds(isolated.kafka, isolated.kafka.events_topic, 7)
    assert time.monotonic() - started < 10



def _held_fetch(reader: kafka_adapter.PartitionReader) -> Any:
    """A weak reference to the records of the fetch the reader's consumer holds (aiokafka 0.14's
    ``PartitionRecords``; the test is about its lifetime)."""
    held = list(reader._c._fetcher._records.values())  # type: ignore[union-attr]
    assert len(held) == 1 and held[0]._partition_records is not None, held
    return weakref.ref(held[0]._partition_records)


async def test_a_fetch_left_unread_is_freed_when_dropped_not_by_a_full_collection(isolated: Settings) -> None:
    # aiokafka holds a fetch's records in a PartitionRecords whose record generator refers back to
    # it: a fetch dropped before its end (a seek elsewhere, a stop) stayed, with its bytes, until a
    # full collection, which the API runs rarely (~320 MiB after 30 reads at the large profile)
    k, topic = isolated.kafka, isolated.kafka.events_topic
    await _produce(isolated, 400)
    reader = kafka_adapter.PartitionReader(k, topic, 0)
    gc.collect()
    gc.disable()  # (only reference counting frees anything from here)
    try:
        first = [r.offset async for b in reader.batches(0, 9, batch=10) for r in b]
        held = _held_fetch(reader)
        on = [r.offset async for b in reader.batches(10, 19, batch=10) for r in b]  # on from the held fetch
        assert (first, on) == (list(range(10)), list(range(10, 20)))
        assert held() is not None
        elsewhere = [r.offset async for b in reader.batches(300, 309, batch=10) for r in b]
        assert elsewhere == list(range(300, 310))
        assert held() is None  # freed as the seek dropped it
        held = _held_fetch(reader)
        await reader.close()
        assert held() is None
    finally:
        gc.enable()
        await reader.close()


async def test_a_lightened_reader_hands_out_the_same_records_as_log_records(isolated: Settings) -> None:
    """PartitionReader.lighten (replay's sources): aiokafka makes LogRecords from the
    fetch instead of ConsumerRecords; every record's offset, timestamp, key, value and headers
    are the ones a plain reader returns, whether it is lightened before its consumer starts or
    after, over fetches of a few records and of many."""
    k, topic = isolated.kafka, isolated.kafka.events_topic
    p = kafka_adapter.producer(k)
    await p.start()
    try:
        for i in range(120):
            headers = [("kmevents-origin", f"0:{i}:{i * 7}".encode()), ("x", b"")] if i % 3 == 0 else None
            key = None if i % 11 == 5 else f"c{i % 4}".encode()
            value = None if i % 17 == 9 and key is not None else bytes(range(256)) * (i % 5) + f"v{i}".encode()
            await p.send(topic, value, key=key, partition=0, headers=headers)
        await p.flush()
    finally:
        await p.stop()

    def seen(r: Any) -> tuple[Any, ...]:
        return r.offset, r.timestamp, r.key, r.value, tuple(tuple(h) for h in r.headers or ())

    plain = kafka_adapter.PartitionReader(k, topic, 0)
    early = kafka_adapter.PartitionReader(k, topic, 0, max_bytes=2_000)
    late = kafka_adapter.PartitionReader(k, topic, 0)
    try:
        assert early.lighten()
        want = [r async for b in plain.batches(0, None) for r in b]
        assert len(want) == 120 and type(want[0]) is not LogRecord
        got_early = [r async for b in early.batches(0, None) for r in b]
        assert len([r async for b in late.batches(3, 40) for r in b]) == 38  # (its consumer started, plain)
        assert late.lighten()
        got_late = [r async for b in late.batches(0, None) for r in b]
        for got in (got_early, got_late):
            assert all(type(r) is LogRecord for r in got)
            assert [seen(r) for r in got] == [seen(r) for r in want]
        assert got_early[0].headers == [("kmevents-origin", b"0:0:0"), ("x", b"")] and got_early[1].headers == ()
        # a range inside, as the API reads one
        assert [seen(r) for b in [x async for x in early.batches(37, 58)] for r in b] == [seen(r) for r in want[37:59]]
    finally:
        for r in (plain, early, late):
            await r.close()
