"""The hostile-record corpus through every reader of the log, on real Kafka + etcd (issue 14).

Every record of tests/corpus/hostile/records.json is written raw to the cluster's
partition between valid events. Then: the worker folds past them (dead-lettering the
undecodable ones), a worker restarted from etcd's checkpoint and a snapshot taken
after them resumes, `verify` is clean, the reading commands answer without a
traceback, and the API's point-in-time reads, history and search answer without a 500.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kmevents.processors.worker import DeriveWorker
from kmevents.replay.verify import verify

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import ApiToken, Settings, child_env
from kmevents.store.snapshots import index_entries
from tests.hostile import raw_records
from tests.integration.test_ingest_api import Server
from tests.integration.test_processors import (
    checkpoints,
    ingest_sim,
    run_worker_until_caught_up,
    wait_caught_up,
)
from tests.integration.test_worker_hardening import _partition_of, _produce_raw


@dataclass
class Logged:
    s: Settings
    partition: int
    first_hostile: int  # offset of the first hostile record
    last_hostile: int
    undecodable: int
    unkeyed: int  # records without a (UTF-8) key: the worker dead-letters them (no reader selects them)


@pytest.fixture(scope="module")
def logged(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    import hashlib
    import uuid

    tag = uuid.uuid4().hex[:8]
    s = stack.settings.model_copy(deep=True)
    for name in ("events", "snapshots", "deadletter", "alerts"):
        setattr(s.kafka, f"{name}_topic", f"h{tag}.{name}")
    s.etcd.prefix = f"/h{tag}/kmevents/v1"
    s.cluster = "c" + hashlib.sha1(b"hostile-corpus").hexdigest()[:8]
    s.api.tokens = [ApiToken(token="read-token", name="viewer", scopes=["read"])]
    recs = raw_records(s.cluster)

    async def prepare() -> Logged:
        await kafka_adapter.ensure_topics(s.kafka)
        await ingest_sim(s, s.cluster, 300)
        part = await _partition_of(s, s.cluster)
        first = (await kafka_adapter.end_offsets(s.kafka, s.kafka.events_topic))[part]
        await _produce_raw(s, part, [(r.key, r.value) for r in recs])  # type: ignore[misc]
        await ingest_sim(s, s.cluster, 300, seed=2)
        return Logged(s, part, first, first + len(recs) - 1, sum(r.outcome == "undecodable" for r in recs),
                      sum(r.outcome == "unkeyed" for r in recs))

    yield asyncio.run(prepare())


def test_the_worker_folds_past_every_hostile_record_and_a_restart_resumes(logged: Logged) -> None:
    s = logged.s

    async def scenario() -> None:
        # batches of 100 records: snapshots at several checkpoints (a batch takes each due one
        # once, at its end), the newest after the hostile records
        first = await run_worker_until_caught_up(s, snapshot_every_events=150, max_records=100)
        assert first.stats.dead_letters == logged.undecodable + logged.unkeyed
        assert first.stats.snapshots >= 2, "a snapshot after the hostile records is what the restart loads"
        async with etcd_adapter.client(s.etcd) as c:
            offsets = [int(e["offset"]) for e in await index_entries(s, c, s.cluster)]
        assert max(offsets) > logged.last_hostile, offsets
        await ingest_sim(s, s.cluster, 200, seed=3)
        again = DeriveWorker(s, group_id=f"restart-{s.cluster}")
        await again.start()
        task = asyncio.create_task(again.run())
        try:
            await wait_caught_up(s, timeout=120)
            assert not task.done(), task.exception() if task.done() else None
        finally:
            again.stop_requested.set()
            await task
            await again.stop()
        assert again.stats.dead_letters == 0, "nothing after the restart was poison"
        report = await verify(s, [s.cluster])
        assert report.clean, [f.as_dict() for f in report.drift[:5]]
        assert report.unfolded == {"undecodable": logged.undecodable}
        assert (await checkpoints(s))[logged.partition].offset > logged.last_hostile

    asyncio.run(scenario())


def _cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **child_env(s, cluster=True)}
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args", [
    ("state", "--format", "json"),
    ("state", "--offset", "MID"),
    ("state", "--offset", "MID", "--no-snapshots"),
    ("diff", "--from", "offset:FIRST", "--to", "offset:LAST"),
    ("history", "AGENT"),
    ("search", "--type", "master.error", "--format", "json"),
    ("verify",),
], ids=lambda a: "-".join(a))
def test_the_reading_commands_answer_across_hostile_records_without_a_traceback(
        logged: Logged, args: tuple[str, ...]) -> None:
    asyncio.run(run_worker_until_caught_up(logged.s))
    mid = (logged.first_hostile + logged.last_hostile) // 2
    subst = {"MID": str(mid), "offset:FIRST": f"offset:{logged.first_hostile - 1}",
             "offset:LAST": f"offset:{logged.last_hostile + 1}", "AGENT": f"agent/{_an_agent(logged.s.cluster)}"}
    out = _cli(logged.s, *[subst.get(a, a) for a in args])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 0, (out.returncode, out.stdout[-1000:], out.stderr[-2000:])


def _an_agent(cluster: str) -> str:
    from kmevents.simulate import generate

    return next(ev["payload"]["agent"]["id"] for ev in generate(cluster, 1, 300, agents=20)
                if ev["type"] == "agent.added")


def test_the_api_reads_across_hostile_records_without_a_500(logged: Logged) -> None:
    asyncio.run(run_worker_until_caught_up(logged.s))
    c, h = logged.s.cluster, {"Authorization": "Bearer read-token"}
    paths = [
        (f"/v1/clusters/{c}/agents", {"offset": logged.last_hostile}),
        (f"/v1/clusters/{c}/pods", {"offset": (logged.first_hostile + logged.last_hostile) // 2}),
        (f"/v1/clusters/{c}/agents", {"at": "2100-01-01T00:00:00Z"}),
        (f"/v1/clusters/{c}/history/agent/{_an_agent(c)}", {}),
        (f"/v1/clusters/{c}/search", {"type": "master.error"}),
        (f"/v1/clusters/{c}/master", {}),
    ]
    with Server(logged.s) as url:
        for path, params in paths:
            r = httpx.get(f"{url}{path}", params=params, headers=h, timeout=120)
            assert r.status_code < 500, (path, params, r.status_code, r.text[:500])
