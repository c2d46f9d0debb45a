"""``run_source`` without servers: a client that fails unexpectedly is restarted, then given up (exit 1,
never 0); a sink lost mid-run ends the run with its summary (exit 2); the dry run writes its file.
Against real servers: tests/integration/test_follow_import.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from kmevents.ingest import Result
from kmevents.settings import Settings, load
from kmevents.sources import DryRunSink, run_source
from kmevents.sources._common import Stream
from kmevents.sources.guard import Held
from tests.unit.sources._helpers import CLUSTER, fixed_now


def settings() -> Settings:
    return load({"kafka.bootstrap": "127.0.0.1:9", "etcd.endpoint": "http://127.0.0.1:9", "cluster": CLUSTER})


def heartbeat_lost(stream: Stream, n: int) -> dict[str, Any]:
    stream.record()
    return stream.event("master.heartbeat_lost", {"master_id": "m1", "missed": n, "interval_seconds": 15.0},
                        occurred_at=stream.adapter_time(), clock="adapter", raw_type="HEARTBEAT")


class Flaky:
    """A client whose ``run()`` yields a batch, then raises what its reconnect loop does not expect,
    ``fail_times`` times; then yields ``after`` batches and ends."""

    def __init__(self, fail_times: int, after: int = 2) -> None:
        self.fail_times = fail_times
        self.after = after
        self.runs = 0
        self.stream = Stream(CLUSTER, "mesos.operator", "op-1", now=fixed_now)
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    async def run(self) -> AsyncIterator[list[dict[str, Any]]]:
        self.runs += 1
        yield [heartbeat_lost(self.stream, self.runs)]
        if self.runs <= self.fail_times:
            raise AttributeError("'list' object has no attribute 'get'")
        for i in range(self.after):
            yield [heartbeat_lost(self.stream, 100 + i)]


def run(client: Any, out: Path, **kw: Any) -> Any:
    s = settings()
    return asyncio.run(run_source("mesos-operator", s, "http://unused", sink=DryRunSink(s, out),
                                  clients=[("mesos-operator", client)], flush_seconds=0.05,
                                  restart_base=0.01, seed=1, **kw))


def test_a_client_that_fails_unexpectedly_is_restarted_and_the_run_still_exits_one(tmp_path: Path) -> None:
    client = Flaky(fail_times=2)
    summary = run(client, tmp_path / "out.jsonl")
    t = summary.tally("mesos-operator")
    assert client.runs == 3 and t.restarts == 2 and t.failed == 2
    assert t.failures == ["AttributeError: 'list' object has no attribute 'get'"] * 2
    written = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert len(written) == t.accepted == 3 + 2, "every batch before and after the failures was written"
    assert summary.exit_code == 1


def test_a_client_that_keeps_failing_ends_the_run_with_exit_one(tmp_path: Path) -> None:
    client = Flaky(fail_times=99)
    summary = run(client, tmp_path / "out.jsonl", max_restarts=2)
    t = summary.tally("mesos-operator")
    assert client.runs == 3 and t.restarts == 2 and t.failed == 3
    assert any(n.startswith("gave up after 3 failures in a row") for n in t.notes)
    assert t.accepted == 3 and summary.exit_code == 1
    assert "stream error: AttributeError" in summary.text()


def test_a_clean_bounded_run_exits_zero(tmp_path: Path) -> None:
    summary = run(Flaky(fail_times=0), tmp_path / "out.jsonl")
    assert summary.tally("mesos-operator").accepted == 3 and summary.exit_code == 0


def test_setting_stop_ends_the_run_and_flushes_what_was_read(tmp_path: Path) -> None:
    class Endless(Flaky):
        async def run(self) -> AsyncIterator[list[dict[str, Any]]]:
            while not self.stopped:
                yield [heartbeat_lost(self.stream, 1)]
                await asyncio.sleep(0.01)

    async def go() -> Any:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        s = settings()
        return await run_source("mesos-operator", s, "", sink=DryRunSink(s, tmp_path / "out.jsonl"), stop=stop,
                                clients=[("mesos-operator", Endless(0))], flush_seconds=0.05)

    summary = asyncio.run(go())
    t = summary.tally("mesos-operator")
    assert t.events > 5 and t.accepted == t.events == len((tmp_path / "out.jsonl").read_bytes().splitlines())


class LostSink(DryRunSink):
    """A sink whose second batch fails the way a producer fails when Kafka went away."""

    calls = 0

    async def submit(self, events: Sequence[Any]) -> list[Result]:
        LostSink.calls += 1
        if LostSink.calls >= 2:
            raise TimeoutError("no broker answered in 30 s")
        return await super().submit(events)

    async def quarantine(self, held: Sequence[Held]) -> None:
        await super().quarantine(held)


def test_a_sink_lost_mid_run_ends_it_with_the_summary_and_exit_two(tmp_path: Path) -> None:
    s = settings()
    client = Flaky(fail_times=0, after=5)

    async def go() -> Any:
        return await run_source("mesos-operator", s, "", sink=LostSink(s, tmp_path / "out.jsonl"),
                                clients=[("mesos-operator", client)], flush_seconds=0.05, batch_size=1)

    summary = asyncio.run(go())
    t = summary.tally("mesos-operator")
    assert summary.fatal is not None and "TimeoutError: no broker answered" in summary.fatal
    assert summary.exit_code == 2
    assert t.accepted == 1 and t.unsent >= 1 and t.events == t.accepted + t.refused + t.unsent
    assert "ended early" in summary.text()


def test_the_dry_run_output_is_what_ingest_would_store(tmp_path: Path) -> None:
    run(Flaky(fail_times=0), tmp_path / "out.jsonl")
    for line in (tmp_path / "out.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        assert e["event_id"] and e["dedupe_key"] and e["cluster"] == CLUSTER and e["redacted"] == []
