"""A search from a time (``kmevents search --from T``, ``--since``) on real Kafka + etcd begins where
the worker's touched-entity index says the events at or after T may lie, and names agents by the host
directory the worker keeps (kmevents/store/hosts.py): the same hits as a scan from the log's first
record, with blocks in etcd and in groups."""

from __future__ import annotations

import json
from typing import Any

import orjson
from kmevents.replay import occurrence, search

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store import hosts
from kmevents.store.snapshots import SnapshotStore
from kmevents.timespec import Point, parse_time
from tests.integration.test_replay import cli, kafka_src
from tests.integration.test_state_at_index import _derived
from tests.unit.replay.test_occurrence import named_long_ago


def _host_of_id_only_hit(recs: list[Any], share: float) -> tuple[int, str, str]:
    """A record at about ``share`` of the log naming an agent by its ``agent_id`` only, >= 200 records
    after the last one that said that id's host: its offset, its time, the host."""
    events = [orjson.loads(r.value) for r in recs]
    i, host = named_long_ago(events, share, gap=200)
    return recs[i].offset, events[i]["occurred_at"], host


async def assert_directory_is_the_logs(s: Settings, cluster: str) -> None:
    """The host directory etcd holds for ``cluster`` is every change a fold of its partition's records
    up to the checkpoint makes, each once (what a worker that died mid-batch left past its checkpoint
    written over by its successor)."""
    from kmevents.replay import logsource
    from kmevents.replay.sources import KafkaSource

    p = await logsource.partition_of(s, cluster)
    assert p is not None
    async with etcd_adapter.client(s.etcd) as c:
        known = await hosts.read_known(c, f"{s.etcd.prefix}/{layout.live_generation()}", cluster, p)
    expected = hosts.Directory()
    src = KafkaSource(s.kafka, s.kafka.events_topic, p, cluster)
    async for batch in src.batches(0, known.through):
        for r in batch:
            named = hosts.host_named(orjson.loads(r.value))
            if named is not None:
                expected.note(r.offset, *named)
    got = {aid: [list(ch) for ch in changes] for aid, changes in known.entries}
    assert got == expected.changes and got, cluster


async def test_the_directory_says_what_a_scan_of_the_records_before_each_offset_learns(isolated: Settings) -> None:
    s = isolated
    p, recs = await _derived(s)
    async with etcd_adapter.client(s.etcd) as c:
        known = await hosts.read_known(c, f"{s.etcd.prefix}/{layout.live_generation()}", s.cluster, p)
    assert known.through == recs[-1].offset and len(known.entries) >= 5
    learnt: dict[str, str] = {}
    for i, r in enumerate(recs):
        if i % 250 == 0:
            assert known.before(r.offset) == learnt, r.offset
        hosts.learn(orjson.loads(r.value), learnt)
    assert known.before(recs[-1].offset + 1) == learnt


async def test_a_search_from_a_time_begins_late_and_finds_what_the_whole_scan_finds(isolated: Settings) -> None:
    s = isolated
    p, recs = await _derived(s)
    async with etcd_adapter.client(s.etcd) as c:
        store = SnapshotStore(s, c)
        for share in (0.3, 0.6, 0.9):
            offset, when, host = _host_of_id_only_hit(recs, share)
            f = search.Filters(agent=host, start=Point(time=parse_time(when)))
            got = [h async for h in search.hits(kafka_src(s, p), f, index=store, cluster=s.cluster)]
            whole = [h async for h in search.hits(kafka_src(s, p), f)]
            assert got == whole and offset in {h["offset"] for h in got}, share
            at = await occurrence.start_from(store, s.cluster, when, recs[0].offset, recs[-1].offset)
            assert at is not None and at.begin > recs[0].offset + int(share * len(recs)) - 400, share
            assert at.covered == recs[-1].offset
            # every hit of a plain time range too (objects named by host), the groups skipped by their times
            plain = search.Filters(start=Point(time=parse_time(when)))
            assert [h async for h in search.hits(kafka_src(s, p), plain, index=store, cluster=s.cluster)] == [
                h async for h in search.hits(kafka_src(s, p), plain)]


def test_the_cli_searches_from_a_time_with_the_index(isolated: Settings) -> None:
    import asyncio

    s = isolated
    _, recs = asyncio.run(_derived(s))
    offset, when, host = _host_of_id_only_hit(recs, 0.7)
    for args in (["--from", when, "--agent", host], ["--from", when, "--type", "task.*"]):
        out = cli(s, "search", *args, "--format", "json")
        whole = cli(s, "search", *args, "--format", "json", "--no-index")
        assert out.returncode == 0 and whole.returncode == 0, out.stderr + whole.stderr
        assert out.stdout == whole.stdout and json.loads(out.stdout)["count"] > 0, args
    assert offset in {h["offset"] for h in json.loads(cli(s, "search", "--from", when, "--agent", host, "--format",
                                                          "json").stdout)["events"]}
