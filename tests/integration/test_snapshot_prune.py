"""``kmevents snapshots prune`` on a real Kafka + etcd: the old snapshots leave the index, their
chunks are tombstoned (by the keys they were written with) in the compacted snapshots topic, and
every read and verify still equals the fold of the log."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings
from kmevents.store.snapshot_retention import chunk_keys
from kmevents.store.snapshots import SnapshotStore, index_entries, is_delta
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import all_records, cli, kafka_src, reads_equal_the_fold


async def test_prune_thins_old_snapshots_and_reads_and_verify_still_equal_the_fold(isolated: Settings) -> None:
    s = isolated
    described = await kafka_adapter.describe_topics(s.kafka, [s.kafka.snapshots_topic])
    assert described[s.kafka.snapshots_topic]["configs"]["cleanup.policy"] == "compact"
    await ingest_sim(s, s.cluster, 4000)
    await run_worker_until_caught_up(s, snapshot_every_events=400, delta_every_events=100, max_records=100)
    async with etcd_adapter.client(s.etcd) as c:
        before = await index_entries(s, c, s.cluster)
    fulls = [int(e["offset"]) for e in before if not is_delta(e)]
    assert len(fulls) >= 8 and any(is_delta(e) for e in before)
    assert all(e["chunk_key"] == f"r{e['reducer_version']}/{s.cluster}/{e['offset']}" for e in before)

    dry = orjson.loads(cli(s, "snapshots", "prune", "--keep-recent", "2", "--thin-every", "1500", "--dry-run",
                           "--format", "json").stdout)["clusters"][0]
    async with etcd_adapter.client(s.etcd) as c:
        assert len(await index_entries(s, c, s.cluster)) == len(before)  # a dry run removes nothing
    assert dry["drop"] and dry["dry_run"]

    done = cli(s, "snapshots", "prune", "--keep-recent", "2", "--thin-every", "1500", "--format", "json")
    assert done.returncode == 0, done.stderr
    row = orjson.loads(done.stdout)["clusters"][0]
    assert row["keep"] == dry["keep"] and row["drop"] == dry["drop"]
    assert row["result"]["removed"] == len(row["drop"]) and row["result"]["cleanup_policy"] == "compact"
    async with etcd_adapter.client(s.etcd) as c:
        after = await index_entries(s, c, s.cluster)
    kept_fulls = [int(e["offset"]) for e in after if not is_delta(e)]
    assert kept_fulls[-2:] == fulls[-2:]
    assert len({o // 1500 for o in kept_fulls[:-2]}) == len(kept_fulls[:-2])  # one per interval at most
    assert all(int(e["base"]) in fulls[-2:] for e in after if is_delta(e))
    dropped = [e for e in before if int(e["offset"]) not in {int(a["offset"]) for a in after}]
    assert len(dropped) == len(row["drop"])

    # the list says what is left
    listed = orjson.loads(cli(s, "snapshots", "list", "--format", "json").stdout)["clusters"][0]["snapshots"]
    assert [x["offset"] for x in listed] == [int(e["offset"]) for e in after]

    # reads at random offsets still equal the fold of the log, from the snapshots left
    p = int(before[0]["snapshot_partition"])
    src = kafka_src(s, p)
    recs = await all_records(src)
    async with etcd_adapter.client(s.etcd) as c:
        rng = random.Random(5)
        offsets = sorted(rng.sample([r.offset for r in recs], 4)) + [recs[-1].offset]
        assert await reads_equal_the_fold(s, src, SnapshotStore(s, c), recs, offsets) >= 3
    report = await verify(s, [s.cluster], full=True)
    assert report.clean, [f.as_dict() for f in report.drift[:5]]

    # a tombstone for each pruned chunk, by the key it was written with; none for a kept one
    part = int(dropped[0]["snapshot_partition"])
    first, end = await kafka_adapter.partition_bounds(s.kafka, s.kafka.snapshots_topic, part)
    tomb = {r.key for r in await kafka_adapter.read_range(s.kafka, s.kafka.snapshots_topic, part, first, end - 1)
            if r.value is None}
    assert {k for e in dropped for k in chunk_keys(e)} <= tomb
    assert not {k for e in after for k in chunk_keys(e)} & tomb
    # Kafka's cleaner frees the bytes: the tombstones alone are too small a dirty ratio to start it,
    # max.compaction.lag.ms does (a day by default; a second here), on closed segments only
    await _compaction_lag(s, "1000")
    gone = {int(o) for e in dropped for o in e["chunk_offsets"]}
    kept = {int(o) for e in after for o in e["chunk_offsets"]}
    producer = kafka_adapter.producer(s.kafka)
    await producer.start()
    began = time.monotonic()
    try:
        while True:
            await asyncio.sleep(2)
            # a record now and then rolls the active segment (segment.ms), so the tombstones close
            await producer.send_and_wait(s.kafka.snapshots_topic, None, key=b"_roll", partition=part)
            first, end = await kafka_adapter.partition_bounds(s.kafka, s.kafka.snapshots_topic, part)
            stored = {r.offset for r in await kafka_adapter.read_range(
                s.kafka, s.kafka.snapshots_topic, part, first, end - 1) if r.value is not None}
            if not gone & stored:
                break
            assert time.monotonic() - began < 150, f"{len(gone & stored)} of {len(gone)} pruned chunks still stored"
    finally:
        await producer.stop()
    assert kept <= stored


async def _compaction_lag(s: Settings, ms: str) -> None:
    """The snapshots topic as kmevents creates it, but cleaned soon: ``max.compaction.lag.ms``
    ``ms``, segments rolled after 500 ms (alter_configs replaces the whole set)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from kmevents.adapters.kafka.clients import admin
    from kmevents.adapters.kafka.topics import topic_specs

    spec = next(t for t in topic_specs(s.kafka) if t.name == s.kafka.snapshots_topic)
    a = admin(s.kafka)
    await a.start()
    try:
        await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, configs={
            **spec.configs, "max.compaction.lag.ms": ms, "segment.ms": "500"})])
    finally:
        await a.close()


async def test_a_worker_with_prune_snapshots_keeps_only_what_the_retention_keeps(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 4000)
    w = await run_worker_until_caught_up(s, snapshot_every_events=400, delta_every_events=100, max_records=100,
                                         snapshot_retention=(2, 1500))
    async with etcd_adapter.client(s.etcd) as c:
        left = await index_entries(s, c, s.cluster)
    fulls = [int(e["offset"]) for e in left if not is_delta(e)]
    assert w.stats.snapshots >= 8 and w.stats.snapshots_pruned > 0
    assert len(fulls) < w.stats.snapshots
    assert len({o // 1500 for o in fulls[:-2]}) == len(fulls[:-2])  # before the newest 2: one per interval
    assert all(int(e["base"]) in fulls[-2:] for e in left if is_delta(e))
    report = await verify(s, [s.cluster], full=True)
    assert report.clean and report.snapshots_checked == len(left), [f.as_dict() for f in report.drift[:5]]


class _KafkaGoneAfter:
    """The real producer until ``n`` records were sent, then every send fails as a Kafka that
    went away does (the fault a prune meets between the etcd removal and the tombstones)."""

    def __init__(self, producer: object, n: int) -> None:
        self.producer, self.left = producer, n

    async def send(self, *args: object, **kw: object) -> object:
        if self.left <= 0:
            from aiokafka.errors import KafkaConnectionError

            raise KafkaConnectionError("the broker went away (injected)")
        self.left -= 1
        return await self.producer.send(*args, **kw)  # type: ignore[attr-defined]

    async def flush(self) -> None:
        await self.producer.flush()  # type: ignore[attr-defined]


async def test_a_prune_cut_off_before_its_tombstones_leaves_a_record_and_the_next_prune_sends_them(
        isolated: Settings) -> None:
    """Before, a prune that failed after removing the index entries left their chunks in the
    topic for good: no entry named them any more. Now the removal records the chunks' keys in
    the same etcd transaction, and the next prune (here the command) sends their tombstones."""
    from kmevents.store import snapshot_retention

    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    await run_worker_until_caught_up(s, snapshot_every_events=400, delta_every_events=200, max_records=100)
    gen = f"r{(await _entries(s))[0]['reducer_version']}"
    async with etcd_adapter.client(s.etcd) as c:
        p = await snapshot_retention.plan_for(s, c, s.cluster, gen, keep_recent=1, thin_every=10**9)
        assert len(p.drop) >= 3 and not p.unreclaimed
        producer = kafka_adapter.producer(s.kafka)
        await producer.start()
        try:
            try:
                await snapshot_retention.prune(s, c, _KafkaGoneAfter(producer, 2), p.drop)
                raise AssertionError("the injected fault did not stop the prune")
            except Exception as exc:  # noqa: BLE001
                assert "went away" in str(exc)
        finally:
            await producer.stop()
        left = await snapshot_retention.plan_for(s, c, s.cluster, gen, keep_recent=1, thin_every=10**9)
    assert not left.drop  # the entries are gone from the index ...
    assert sorted(r["offset"] for r in left.unreclaimed) == sorted(int(e["offset"]) for e in p.drop)  # ... recorded
    # a hand-edited record beside them: named and left, and the others are still reclaimed
    bad_key = layout.unreclaimed_key(f"{s.etcd.prefix}/{gen}", s.cluster, 99_999_999)
    async with etcd_adapter.client(s.etcd) as c:
        await c.put(bad_key, b'{"chunk_keys": "oops", "partition": 0, "offset": 1}')

    done = cli(s, "snapshots", "prune", "--keep-recent", "1", "--thin-every", str(10**9), "--format", "json")
    assert done.returncode == 0, done.stderr
    row = orjson.loads(done.stdout)["clusters"][0]
    assert row["unreclaimed"] == len(p.drop) and row["result"]["unreclaimed_sent"] == len(p.drop)
    assert row["unreadable_unreclaimed"] == [{"key": bad_key.decode(),
                                              "error": "chunk_keys is not a list of strings"}]
    text = cli(s, "snapshots", "prune", "--keep-recent", "1", "--thin-every", str(10**9))
    assert text.returncode == 0 and f"etcdctl del {bad_key.decode()}" in text.stderr + text.stdout, text.stderr
    async with etcd_adapter.client(s.etcd) as c:
        assert await snapshot_retention.unreclaimed(s, c, s.cluster, gen) == []
        assert (await c.get(bad_key)) is not None  # left for the operator
        await c.delete(bad_key)
    part = int(p.drop[0]["snapshot_partition"])
    first, end = await kafka_adapter.partition_bounds(s.kafka, s.kafka.snapshots_topic, part)
    tomb = {r.key for r in await kafka_adapter.read_range(s.kafka, s.kafka.snapshots_topic, part, first, end - 1)
            if r.value is None}
    assert {k for e in p.drop for k in chunk_keys(e)} <= tomb
    assert not {k for e in p.keep for k in chunk_keys(e)} & tomb
    report = await verify(s, [s.cluster], full=True)
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def _entries(s: Settings) -> list[dict]:
    async with etcd_adapter.client(s.etcd) as c:
        return await index_entries(s, c, s.cluster)
