"""The derivation worker on real Kafka + etcd: etcd equals the fold of the log, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import orjson
import pytest
from kmevents.processors.worker import DeriveWorker
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings, child_env
from kmevents.simulate import generate
from kmevents.store.checkpoint import Checkpoint


async def ingest_sim(s: Settings, cluster: str, n: int, seed: int = 1) -> None:
    async with Ingestor(s) as ing:
        buf = []
        for ev in generate(cluster, seed, n, agents=20):
            buf.append(ev)
            if len(buf) == 5000:
                res = await ing.submit(buf)
                assert all(r.ok for r in res), [r.errors for r in res if not r.ok][:3]
                buf = []
        if buf:
            assert all(r.ok for r in await ing.submit(buf))


async def checkpoints(s: Settings) -> dict[int, Checkpoint]:
    p = layout.checkpoints_prefix(f"{s.etcd.prefix}/{layout.live_generation()}")
    async with etcd_adapter.client(s.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, p, range_end=etcd_adapter.prefix_end(p))
    return {ck.partition: ck for ck in (Checkpoint.from_bytes(kv.value, mod_revision=kv.mod_revision) for kv in kvs)}


async def end_offsets(s: Settings) -> dict[int, int]:
    """Last offset written per non-empty partition."""
    ends = await kafka_adapter.end_offsets(s.kafka, s.kafka.events_topic)
    return {p: off - 1 for p, off in ends.items() if off > 0}


async def wait_caught_up(s: Settings, timeout: float = 90.0) -> None:
    ends = await end_offsets(s)
    assert ends, "nothing in the events topic"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cps = await checkpoints(s)
        if all(p in cps and cps[p].offset >= o for p, o in ends.items()):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"not caught up: ends {ends}, checkpoints {await checkpoints(s)}")


async def one_partition(s: Settings) -> Settings:
    """``s`` with a fresh events topic of one partition: a worker then takes exactly one."""
    one = s.model_copy(deep=True)
    one.kafka.events_topic = f"{s.kafka.events_topic}1"
    one.kafka.partitions = 1
    await kafka_adapter.ensure_topics(one.kafka)
    return one


async def run_worker_until_caught_up(s: Settings, **kw: object) -> DeriveWorker:
    w = DeriveWorker(s, group_id=f"g-{s.cluster}", **kw)
    await w.start()
    await run_started_until_caught_up(s, w)
    return w


async def run_started_until_caught_up(s: Settings, w: DeriveWorker) -> None:
    """Run a started worker until it has caught up, then stop it."""
    task = asyncio.create_task(w.run())
    try:
        await wait_caught_up(s)
    finally:
        w.stop_requested.set()
        await task
        await w.stop()


async def test_etcd_equals_the_fold_of_the_log_key_for_key(isolated: Settings) -> None:
    await ingest_sim(isolated, isolated.cluster, 6000)
    w = await run_worker_until_caught_up(isolated)
    # A rebalance on a fresh broker may hand the partition over twice; what was already
    # in etcd is then restored rather than applied, so the worker applies at most 6000.
    assert 0 < w.stats.events <= 6000
    report = await verify(isolated, [isolated.cluster])
    assert report.checked_keys > 100
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_a_worker_configured_above_the_etcd_txn_limit_falls_back_to_it_and_derives(
        isolated: Settings) -> None:
    server_limit = isolated.etcd.max_txn_ops  # what the test stack started etcd with
    isolated.etcd.max_txn_ops = server_limit * 8
    await ingest_sim(isolated, isolated.cluster, 3000)
    await run_worker_until_caught_up(isolated)
    assert isolated.etcd.max_txn_ops == server_limit
    report = await verify(isolated, [isolated.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_poison_records_go_to_the_dead_letter_topic_and_processing_continues(isolated: Settings) -> None:
    await ingest_sim(isolated, isolated.cluster, 500)
    p = kafka_adapter.producer(isolated.kafka)
    await p.start()
    try:
        async with Ingestor(isolated) as ing:
            part = await ing._map.partition_for(isolated.cluster)  # noqa: SLF001
        await p.send_and_wait(isolated.kafka.events_topic, b"\x00not json", key=isolated.cluster.encode(),
                              partition=part)
        await p.send_and_wait(isolated.kafka.events_topic, b"[1,2,3]", key=isolated.cluster.encode(),
                              partition=part)
    finally:
        await p.stop()
    await ingest_sim(isolated, isolated.cluster, 500, seed=2)
    w = await run_worker_until_caught_up(isolated)
    assert w.stats.dead_letters == 2
    c = kafka_adapter.consumer(isolated.kafka, isolated.kafka.deadletter_topic)
    await c.start()
    try:
        recs = [r for batch in (await c.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await c.stop()
    letters = [orjson.loads(r.value) for r in recs]
    assert [x["offset"] for x in letters] == [500, 501]
    assert all(x["partition"] == part and x["error"] for x in letters)
    assert (await verify(isolated, [isolated.cluster])).clean


async def test_a_stale_worker_is_fenced_and_gives_the_partition_up(isolated: Settings) -> None:
    await ingest_sim(isolated, isolated.cluster, 1000)
    await run_worker_until_caught_up(isolated)
    # Someone else commits a newer checkpoint behind the stale worker's back.
    from kmevents.processors.derive import PartitionDeriver

    async with etcd_adapter.client(isolated.etcd) as c:
        cps = await checkpoints(isolated)
        part = next(iter(cps))
        stale = PartitionDeriver(isolated, c, part, worker_id="stale")
        await stale.load_checkpoint()
        other = PartitionDeriver(isolated, c, part, worker_id="other")
        await other.load_checkpoint()
        await other._commit({}, type("O", (), {"transactions": 0})())  # noqa: SLF001
        await other.drain()
        from kmevents.errors import FencedError

        class R:
            def __init__(self, o: int) -> None:
                self.partition, self.offset, self.key, self.value, self.timestamp = part, o, b"x", b"{}", 0

        with pytest.raises(FencedError):
            await stale.process([R(stale.checkpoint.offset + 1)])


async def test_a_fenced_worker_gives_the_partition_up_then_takes_it_anew_from_etcd(isolated: Settings) -> None:
    from kmevents.processors.derive import PartitionDeriver

    await ingest_sim(isolated, isolated.cluster, 1500)
    w = DeriveWorker(isolated, group_id=f"g-{isolated.cluster}", worker_id="w1")
    w.retake_after_seconds = 0.5
    await w.start()
    task = asyncio.create_task(w.run())
    try:
        await wait_caught_up(isolated)
        part = next(iter(await checkpoints(isolated)))
        # Another owner commits behind the worker's back (what a repair or a newer owner does).
        async with etcd_adapter.client(isolated.etcd) as c:
            other = PartitionDeriver(isolated, c, part, worker_id="other")
            await other.load_checkpoint()
            await other._commit({}, type("O", (), {"transactions": 0})())  # noqa: SLF001
            await other.drain()
        await ingest_sim(isolated, isolated.cluster, 1500, seed=2)
        deadline = time.monotonic() + 60
        while w.stats.fenced == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert w.stats.fenced == 1  # its write failed the compare and was not retried
        await wait_caught_up(isolated)  # ... and it took the partition anew from etcd's checkpoint
    finally:
        w.stop_requested.set()
        await task
        await w.stop()
    assert w.stats.fenced == 1 and part in w.derivers
    assert (await checkpoints(isolated))[part].worker == "w1"
    report = await verify(isolated, [isolated.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_a_restore_whose_read_comes_back_short_is_refused_not_folded_on(isolated: Settings,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial read of the prefix would restore a state and chains that are not the log's,
    and the worker would commit them on top: it must stop instead (a restart retries)."""
    from kmevents.errors import EnvironmentProblem

    await ingest_sim(isolated, isolated.cluster, 500)
    await run_worker_until_caught_up(isolated)
    part = next(iter(await checkpoints(isolated)))
    whole = kafka_adapter.iter_range

    async def short(*a: object, **kw: object) -> Any:
        # the restore streams the prefix: the read ends 3 records early
        recs = [r async for batch in whole(*a, **kw) for r in batch]  # type: ignore[arg-type]
        yield recs[:-3]

    monkeypatch.setattr(kafka_adapter, "iter_range", short)
    w = DeriveWorker(isolated, group_id=f"g2-{isolated.cluster}", worker_id="w2")
    await w.start()
    try:
        with pytest.raises(EnvironmentProblem, match="ended at"):
            await w.take_partition(kafka_adapter.TopicPartition(isolated.kafka.events_topic, part))
        assert part not in w.derivers
    finally:
        await w.stop()


async def test_a_batch_of_only_already_applied_records_is_skipped_without_a_write(isolated: Settings) -> None:
    # After a rebalance the consumer may hand back records the checkpoint already covers.
    await ingest_sim(isolated, isolated.cluster, 800)
    await run_worker_until_caught_up(isolated)
    from kmevents.processors.derive import PartitionDeriver

    before = await checkpoints(isolated)
    part = next(iter(before))
    c = kafka_adapter.consumer(isolated.kafka, isolated.kafka.events_topic)
    await c.start()
    try:
        recs = [r for batch in (await c.getmany(timeout_ms=5000, max_records=200)).values() for r in batch
                if r.partition == part]
    finally:
        await c.stop()
    assert recs and all(r.offset <= before[part].offset for r in recs)
    async with etcd_adapter.client(isolated.etcd) as client:
        again = PartitionDeriver(isolated, client, part, worker_id="again")
        await again.load_checkpoint()
        out = await again.process(recs)
    assert (out.applied, out.skipped, out.transactions) == (0, len(recs), 0)
    after = await checkpoints(isolated)
    assert after[part].mod_revision == before[part].mod_revision
    assert (await verify(isolated, [isolated.cluster])).clean


def _spawn_worker(s: Settings, group: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **child_env(s)}
    return subprocess.Popen([sys.executable, "-m", "kmevents.cli", "process", "--engine", "plain",
                             "--group", group, "--snapshot-every", "700", "--metrics-port", "0", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def spawned_until_caught_up(s: Settings, group: str, *extra: str) -> None:
    """A worker process (``kmevents process`` with ``extra``) run until it caught up, then SIGTERMed."""
    proc = _spawn_worker(s, group, *extra)
    try:
        asyncio.run(wait_caught_up(s, timeout=120))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_kill_9_at_random_points_then_restart_applies_everything_exactly_once(isolated: Settings) -> None:
    import random

    asyncio.run(ingest_sim(isolated, isolated.cluster, 15_000))
    rng = random.Random(7)
    group = f"g-{isolated.cluster}"
    for _ in range(3):
        proc = _spawn_worker(isolated, group)
        time.sleep(rng.uniform(2.0, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    spawned_until_caught_up(isolated, group)
    report = asyncio.run(verify(isolated, [isolated.cluster]))
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
    cps = asyncio.run(checkpoints(isolated))
    assert sum(1 for c in cps.values() if c.offset >= 0) >= 1
    from tests.integration.test_search_from_index import assert_directory_is_the_logs

    asyncio.run(assert_directory_is_the_logs(isolated, isolated.cluster))  # (search's host directory too)


def test_the_faust_hosted_worker_derives_serves_metrics_on_loopback_and_stops_on_sigterm(
        isolated: Settings, tmp_path) -> None:
    import urllib.request

    from kmevents.stack.process import free_port

    asyncio.run(ingest_sim(isolated, isolated.cluster, 3000))
    port = free_port()
    env = {**os.environ, **child_env(isolated), "KMEVENTS_STACK__HOME": str(tmp_path / "stack")}
    proc = subprocess.Popen([sys.executable, "-m", "kmevents.cli", "process", "--group", f"f-{isolated.cluster}",
                             "--metrics-port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        asyncio.run(wait_caught_up(isolated, timeout=120))
        # The counter moves just after the checkpoint lands (the batch's side outputs go
        # out in between), so the metrics may trail etcd by one batch for a moment.
        deadline = time.monotonic() + 15
        while True:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            if "kmevents_worker_events_total 3000.0" in body or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "kmevents_worker_events_total 3000.0" in body, body
        assert "kmevents_worker_versions_open_parts_total" in body  # (3,000 events: no block left open)
        health = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
        assert health["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else rc
    assert asyncio.run(verify(isolated, [isolated.cluster])).clean


def test_etcd_and_kafka_restarts_under_load_recover_and_stay_equal(stack, isolated: Settings) -> None:
    if stack.restart_etcd is None or stack.restart_kafka is None:
        pytest.skip(f"the {stack.kind} backend cannot restart services")

    async def scenario() -> DeriveWorker:
        await ingest_sim(isolated, isolated.cluster, 4000)
        w = DeriveWorker(isolated, group_id=f"r-{isolated.cluster}", max_records=200)
        await w.start()
        task = asyncio.create_task(w.run())
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(1.0)
            await loop.run_in_executor(None, stack.restart_etcd)
            await ingest_sim(isolated, isolated.cluster, 4000, seed=3)
            await loop.run_in_executor(None, stack.restart_kafka)
            await ingest_sim(isolated, isolated.cluster, 2000, seed=4)
            await wait_caught_up(isolated, timeout=180)
            assert not task.done(), task.exception() if task.done() else None
        finally:
            w.stop_requested.set()
            await asyncio.wait_for(task, 60)
            await w.stop()
        return w

    asyncio.run(scenario())
    report = asyncio.run(verify(isolated, [isolated.cluster]))
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_two_workers_over_three_partitions_with_rebalances_lose_and_repeat_nothing(isolated: Settings) -> None:
    clusters = [f"{isolated.cluster}-{i}" for i in range(3)]
    async with Ingestor(isolated) as ing:
        parts = {c: await ing._map.partition_for(c) for c in clusters}  # noqa: SLF001
    assert len(set(parts.values())) == 3, parts

    async def load(seed: int) -> None:
        for c in clusters:
            await ingest_sim(isolated, c, 1500, seed=seed)

    group = f"two-{isolated.cluster}"
    a = DeriveWorker(isolated, group_id=group, worker_id="A", max_records=300)
    b = DeriveWorker(isolated, group_id=group, worker_id="B", max_records=300)
    await load(1)
    await a.start()
    ta = asyncio.create_task(a.run())
    await asyncio.sleep(2)
    await b.start()  # rebalance: B takes some partitions from A mid-stream
    tb = asyncio.create_task(b.run())
    await load(2)
    deadline = time.monotonic() + 60
    while not (a.derivers and b.derivers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert a.derivers and b.derivers, "both workers should own partitions after the rebalance"
    a.stop_requested.set()  # A leaves: B takes everything
    await ta
    await a.stop()
    await load(3)
    try:
        await wait_caught_up(isolated, timeout=120)
    finally:
        b.stop_requested.set()
        await tb
        await b.stop()
    report = await verify(isolated, clusters)
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
    from tests.integration.test_search_from_index import assert_directory_is_the_logs

    for c in clusters:
        await assert_directory_is_the_logs(isolated, c)
    cps = await checkpoints(isolated)
    assert {cps[p].worker for p in parts.values()} == {"B"}
    assert a.stats.events + b.stats.events >= 3 * 4500


async def test_records_fetched_while_a_partition_is_being_taken_are_not_folded_by_the_deriver_it_installs(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a take restores, the loop's fetches of that partition have no deriver and are
    dropped, and the consumer's position moves on past them. A take that ended after a fetch
    returned but before its records were processed installed a deriver that folded them with a
    hole (offsets 0..299 here): its compare passed, as nobody else had moved the checkpoint, and
    etcd and the checkpoint's chain stopped being the log's (rebalance test, once in CI)."""
    from kmevents.store.partition_map import PartitionMap

    s = await one_partition(isolated)  # the take below is the only one
    await ingest_sim(s, s.cluster, 1200)
    released = asyncio.Event()
    real_refresh = PartitionMap.refresh

    async def refresh(self: PartitionMap) -> dict[str, int]:
        got = await real_refresh(self)
        await released.wait()  # the take's last await (no checkpoint yet): it ends once released
        return got

    monkeypatch.setattr(PartitionMap, "refresh", refresh)
    w = DeriveWorker(s, group_id=f"g-{s.cluster}", worker_id="w", max_records=300)
    await w.start()
    consumer = w._group_consumer()  # noqa: SLF001
    real_getmany = consumer.getmany
    fetched_without_deriver: list[int] = []

    async def getmany(*a: Any, **kw: Any) -> Any:
        got = await real_getmany(*a, **kw)
        if got and not released.is_set() and not w.derivers:
            fetched_without_deriver.append(min(r.offset for recs in got.values() for r in recs))
            if len(fetched_without_deriver) == 2:
                released.set()  # the take ends right after this fetch returns, before its records are processed
        return got

    consumer.getmany = getmany  # type: ignore[method-assign]
    await run_started_until_caught_up(s, w)
    assert fetched_without_deriver == [0, 300]  # the interleaving happened
    report = await verify(s, [s.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_a_retake_whose_partition_went_elsewhere_meanwhile_leaves_no_deriver_behind(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fenced worker takes its partition anew after a pause. When the group gave the partition
    to someone else while that take restored, the take's seek fails: the deriver it had already
    installed stayed, a deriver of a partition this worker does not own, whose state and position
    nobody checks again (its timed snapshots went on; when the partition came back, the loop
    folded records with it until the listener's own take replaced it)."""
    from kmevents.store.partition_map import PartitionMap

    s = await one_partition(isolated)
    await ingest_sim(s, s.cluster, 300)
    w = DeriveWorker(s, group_id=f"g-{s.cluster}", worker_id="w")
    await w.start()
    try:
        deadline = time.monotonic() + 60
        while 0 not in w.derivers and time.monotonic() < deadline:  # the listener took it
            await asyncio.sleep(0.1)
        tp = kafka_adapter.TopicPartition(s.kafka.events_topic, 0)
        consumer: Any = w._group_consumer()  # noqa: SLF001
        del w.derivers[0]  # fenced: given up and paused, as _process_partition does
        consumer.pause(tp)
        real_refresh = PartitionMap.refresh

        async def refresh(self: PartitionMap) -> dict[str, int]:
            consumer.unsubscribe()  # meanwhile the group moves the partition away from this worker
            return await real_refresh(self)

        monkeypatch.setattr(PartitionMap, "refresh", refresh)
        await w._retake(tp)  # noqa: SLF001
        assert tp not in consumer.assignment()
        assert 0 not in w.derivers
    finally:
        await w.stop()


async def test_an_effect_larger_than_one_transaction_spans_several_with_the_checkpoint_last(isolated: Settings) -> None:
    s = isolated.model_copy(deep=True)
    s.etcd.max_txn_ops = 8  # a tiny limit makes an ordinary agent loss "oversized"
    await ingest_sim(s, s.cluster, 3000)
    w = await run_worker_until_caught_up(s)
    assert w.stats.transactions > w.stats.batches, "some events needed more than one transaction"
    report = await verify(s, [s.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]


async def test_ingesting_the_same_events_twice_changes_no_derived_entity(isolated: Settings) -> None:
    async def entities() -> dict[bytes, bytes]:
        sp = layout.state_prefix(isolated.etcd.prefix, isolated.cluster, layout.live_generation())
        async with etcd_adapter.client(isolated.etcd) as c:
            _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
        return {kv.key: kv.value for kv in kvs}

    await ingest_sim(isolated, isolated.cluster, 3000)
    await run_worker_until_caught_up(isolated)
    first = await entities()
    await ingest_sim(isolated, isolated.cluster, 3000)  # the very same events again (same seed)
    w = await run_worker_until_caught_up(isolated)
    assert w.stats.events == 3000, "the repeats reached the log and were folded"
    assert await entities() == first
    report = await verify(isolated, [isolated.cluster])
    assert report.clean
    assert report.annotations.get("duplicate", 0) >= 3000


async def test_values_over_the_request_limit_are_dead_lettered_with_their_position_not_crash_looped(
        isolated: Settings) -> None:
    from kmevents.processors.batch import REQUEST_MARGIN

    s = isolated.model_copy(deep=True)
    s.etcd.max_request_bytes = REQUEST_MARGIN + 1200  # only small entity values fit
    await ingest_sim(s, s.cluster, 800)
    w = await run_worker_until_caught_up(s)
    assert w.stats.dead_letters > 0
    c = kafka_adapter.consumer(s.kafka, s.kafka.deadletter_topic)
    await c.start()
    try:
        recs = [r for batch in (await c.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await c.stop()
    reasons = [orjson.loads(r.value)["error"] for r in recs]
    assert reasons and all("too large" in x for x in reasons), reasons[:3]
    assert all(orjson.loads(r.value)["offset"] >= 0 for r in recs)


async def ingested_records(s: Settings, n: int) -> tuple[int, list[Any]]:
    """``n`` events of the simulator ingested for ``s.cluster``: their partition and records, in order."""
    await ingest_sim(s, s.cluster, n)
    c = kafka_adapter.consumer(s.kafka, s.kafka.events_topic)
    await c.start()
    try:
        recs: list[Any] = []
        while len(recs) < n:
            recs += [r for batch in (await c.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await c.stop()
    part = recs[0].partition
    return part, sorted((r for r in recs if r.partition == part), key=lambda r: r.offset)


async def small_cadence_deriver(s: Settings, client: Any, part: int, worker_id: str) -> Any:
    """A deriver of ``part`` from its checkpoint: a full snapshot every 1,000 events, a delta every 100."""
    from kmevents.processors.derive import PartitionDeriver

    d = PartitionDeriver(s, client, part, worker_id=worker_id, snapshot_every_events=1000,
                         delta_every_events=100, touched_every_events=0)
    await d.load_checkpoint()
    return d


async def test_a_batch_spanning_several_snapshot_and_delta_intervals_asks_for_each_once(isolated: Settings) -> None:
    # A batch of 10,000 records spans two delta intervals of 4,000 events at the large profile:
    # both fall due at the batch's one checkpoint, and the worker encoded and stored the same
    # delta twice (and a delta beside a full snapshot at the same offset).
    part, recs = await ingested_records(isolated, 1200)
    async with etcd_adapter.client(isolated.etcd) as client:
        d = await small_cadence_deriver(isolated, client, part, "once")
        early = await d.process(recs[:150])  # a fold from nothing: its first "delta" is a full snapshot
        assert (early.snapshots_due, early.deltas_due) == ([isolated.cluster], [])
        d.early.clear()  # as after its first regular full snapshot
        deltas = await d.process(recs[150:450])  # three delta intervals
        assert (deltas.snapshots_due, deltas.deltas_due) == ([], [isolated.cluster]), "one delta, not three"
        out = await d.process(recs[450:1150])  # deltas, then the full interval ends, then deltas again
    assert out.snapshots_due == [isolated.cluster], "one full snapshot at the batch's checkpoint"
    assert out.deltas_due == [], "a delta at the full snapshot's offset adds nothing"


async def test_until_due_stops_right_after_the_record_where_a_snapshot_or_delta_falls_due(isolated: Settings) -> None:
    # The worker takes a due snapshot or delta at the deriver's checkpoint: at a batch's end it
    # came up to a batch after its cadence (a delta every 4,000 events lay every ~7,500 offsets
    # with batches of 10,000), and a point-in-time read folded that many records after it.
    part, recs = await ingested_records(isolated, 600)
    async with etcd_adapter.client(isolated.etcd) as client:
        d = await small_cadence_deriver(isolated, client, part, "due")
        early = await d.process(recs[:450], until_due=True)  # from nothing: its first "delta" is a full one
        assert (early.consumed, early.snapshots_due, early.deltas_due) == (100, [isolated.cluster], [])
        assert d.checkpoint.offset == recs[99].offset, "committed up to the record it fell due at"
        d.early.clear()
        rest = recs[100:450]
        out = await d.process(rest, until_due=True)
        assert (out.consumed, out.snapshots_due, out.deltas_due) == (100, [], [isolated.cluster])
        assert d.checkpoint.offset == rest[99].offset
        tail = await d.process(rest[100:150], until_due=True)  # nothing falls due: all of it
        assert (tail.consumed, tail.snapshots_due, tail.deltas_due) == (50, [], [])
        assert d.checkpoint.offset == rest[149].offset


async def test_the_worker_takes_snapshots_and_deltas_at_their_cadence_in_batches_larger_than_it(
        isolated: Settings) -> None:
    from kmevents.store.snapshots import index_entries

    await ingest_sim(isolated, isolated.cluster, 2000)
    w = await run_worker_until_caught_up(isolated, snapshot_every_events=600, delta_every_events=150,
                                         max_records=1000)
    async with etcd_adapter.client(isolated.etcd) as c:
        offsets = [int(e["offset"]) for e in await index_entries(isolated, c, isolated.cluster)]
    assert w.stats.snapshots >= 3 and w.stats.deltas >= 6
    # the cluster's records are the partition's, one an offset: an entry every 150 of them
    assert len(offsets) >= 10 and {b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)} == {150}, offsets
    assert (await verify(isolated, [isolated.cluster])).clean


async def test_early_full_snapshots_end_after_their_interval_when_full_ones_are_set_rarer(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker from nothing takes its deltas due as full snapshots until its first regular full
    # one: set to snapshot every 10^9 events (bench derive's worker, or `--snapshot-every` above
    # the default), it built a full snapshot every delta interval for its whole life. They end
    # after EARLY_EVENTS (the default full interval; 300 here), and the deltas after that are
    # taken against the last of them.
    from kmevents.processors import derive as derive_mod

    from kmevents.store.snapshots import index_entries

    monkeypatch.setattr(derive_mod, "EARLY_EVENTS", 300)
    await ingest_sim(isolated, isolated.cluster, 1000)
    w = await run_worker_until_caught_up(isolated, snapshot_every_events=10**9, delta_every_events=100,
                                         max_records=1000)
    async with etcd_adapter.client(isolated.etcd) as c:
        entries = await index_entries(isolated, c, isolated.cluster)
    full = [int(e["offset"]) for e in entries if e.get("base") is None]
    deltas = [(int(e["offset"]), int(e["base"])) for e in entries if e.get("base") is not None]
    assert len(full) == 3 and full == sorted(full), entries  # the early ones: at 100, 200 and 300 events
    assert len(deltas) == 7 and {base for _, base in deltas} == {full[-1]}, entries
    assert (w.stats.snapshots, w.stats.deltas) == (3, 7)
    assert (await verify(isolated, [isolated.cluster])).clean
