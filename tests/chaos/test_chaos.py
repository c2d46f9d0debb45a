"""Chaos: kill -9 of workers, etcd and the broker while events are ingested and derived,
with poison and hostile records written raw in between (issue 14).

One seeded run (``KMEVENTS_CHAOS_SEED``, default 1414) of 8 to 12 faults on the session's
native stack, about two and a half minutes, then, with every fault healed:

- a final worker takes every partition (etcd checkpoint + snapshot + log) and catches up;
- ``verify`` is clean for every cluster: etcd equals the fold of the log, so nothing
  was applied twice and nothing was skipped;
- every event ingest accepted (``Result.ok``) is in the log at the offset it was
  acknowledged with, exactly once;
- the dead-letter topic holds exactly the poison records (by ``partition:offset``),
  and none of the hostile records the fold accepts.

A summary line is printed for the CI log, and written as JSON to
``KMEVENTS_CHAOS_REPORT`` when that is set. The README's "Reliability" section quotes it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kmevents.replay.verify import verify

from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.stack.process import free_port
from tests.chaos.harness import (
    Fault,
    HostileTally,
    IngestTally,
    Workers,
    event_stream,
    ingest_loop,
    plan,
    scan_dead_letters,
    scan_log,
    submit,
    write_hostile,
)
from tests.chaos.hostile import Hostile, catalogue
from tests.integration.test_processors import wait_caught_up
from tests.stacks import TestStack

SEED = int(os.environ.get("KMEVENTS_CHAOS_SEED", "1414"))
#: events/s submitted while the faults happen (the machine has 2 cores for broker, etcd, workers and ingest)
RATE = float(os.environ.get("KMEVENTS_CHAOS_RATE", "600"))
CLUSTERS = 3
HOSTILE_ROUNDS = 2
WARM_UP_EVENTS = 1500


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())
    except OSError as e:
        return 0, {"reason": str(e)}


async def _wait_ready(port: int, timeout: float) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        code, doc = await asyncio.to_thread(_readyz, port)
        if code == 200 or time.monotonic() > deadline:
            return code, doc
        await asyncio.sleep(0.3)


class Faults:
    """Injects the plan's faults on the stack and the workers, and heals what is still down."""

    def __init__(self, stack: TestStack, workers: Workers, kafka_up: asyncio.Event) -> None:
        self.stack, self.workers, self.kafka_up = stack, workers, kafka_up
        self.down: set[str] = set()
        self.log: list[dict[str, Any]] = []

    async def inject(self, f: Fault, t0: float) -> None:
        started = time.monotonic()
        entry: dict[str, Any] = {"at": round(started - t0, 1), "kind": f.kind, "outage": round(f.outage, 1)}
        if f.kind == "worker":
            entry["slot"] = f.slot
            # the supervisor starts it again after the outage
            entry["killed"] = await self.workers.kill9(f.slot, f.outage)
        else:
            await self._kill(f.kind)
            await asyncio.sleep(f.outage)
            await self._heal(f.kind)
            entry["down_for"] = round(time.monotonic() - started, 1)
        self.log.append(entry)

    async def _kill(self, kind: str) -> None:
        self.down.add(kind)
        if kind == "kafka":
            self.kafka_up.clear()
            assert self.stack.kill_kafka is not None
            await asyncio.to_thread(self.stack.kill_kafka)
        else:
            assert self.stack.kill_etcd is not None
            await asyncio.to_thread(self.stack.kill_etcd)

    async def _heal(self, kind: str) -> None:
        restart = self.stack.restart_kafka if kind == "kafka" else self.stack.restart_etcd
        assert restart is not None
        await asyncio.to_thread(restart)  # returns when the service answers again
        self.down.discard(kind)
        if kind == "kafka":
            self.kafka_up.set()

    async def heal_all(self) -> None:
        for kind in sorted(self.down):
            await self._heal(kind)


def _hostile_schedule(rng: random.Random, clusters: list[str], parts: dict[str, int], times: list[float]
                      ) -> tuple[list[Hostile], list[tuple[float, Hostile, int]]]:
    records: list[Hostile] = []
    for r in range(HOSTILE_ROUNDS):
        home, other = clusters[r % len(clusters)], clusters[(r + 1) % len(clusters)]
        records += catalogue(rng, home, other, r)
    order = list(records)
    rng.shuffle(order)
    return records, [(when, h, parts[h.cluster]) for when, h in zip(times, order, strict=True)]


def _summary(seed: int, faults: Faults, workers: Workers, tally: IngestTally, hostile: list[Hostile],
             htally: HostileTally, scan: Any, dlq: Counter[str], report: Any, seconds: dict[str, float],
             final: dict[str, Any]) -> dict[str, Any]:
    accepted_ids = Counter(eid for eid, _, _ in tally.accepted)
    at_offset = sum(1 for eid, p, o in tally.accepted if scan.event_at.get((p, o)) == eid)
    exactly_once = sum(1 for eid, n in accepted_ids.items() if scan.event_ids[eid] == n)
    # A copy beyond what was submitted (acknowledged, or given up on) would be a producer retry
    # written twice: the idempotent producer must prevent it.
    written_twice = sum(max(0, n - accepted_ids[eid] - tally.unanswered[eid]) for eid, n in scan.event_ids.items())
    accepted_pos = {(p, o) for _, p, o in tally.accepted}
    unacknowledged_in_log = sum(1 for pos in scan.event_at if pos not in accepted_pos)
    expected_dl = {f"{p}:{o}" for h in hostile if h.expect == "dead_letter" for p, o in scan.hostile_at.get(h.name, [])}
    folded_pos = {f"{p}:{o}" for h in hostile if h.expect == "folded" for p, o in scan.hostile_at.get(h.name, [])}
    return {
        "seed": seed,
        "faults": {"total": len(faults.log), "by_kind": dict(Counter(f["kind"] for f in faults.log)),
                   "schedule": faults.log},
        "workers": {"killed": workers.kills, "exited_on_their_own": workers.self_exits,
                    "starts": sum(s.starts for s in workers.slots)},
        "events": {"submitted": tally.submitted, "accepted": len(tally.accepted),
                   "refused": sum(tally.refused.values()), "refused_by_reason": dict(tally.refused),
                   "unanswered": sum(tally.unanswered.values()), "submit_errors": dict(tally.errors),
                   "found_at_acknowledged_offset": at_offset, "lost": len(tally.accepted) - at_offset,
                   "accepted_event_ids": len(accepted_ids), "exactly_once": exactly_once,
                   "written_twice": written_twice, "in_log_not_acknowledged": unacknowledged_in_log},
        "hostile": {"written": len(htally.written), "send_retries": htally.retries,
                    "copies_in_log": sum(len(v) for v in scan.hostile_at.values()),
                    "expected_dead_letters": len(expected_dl), "dead_letters": sum(dlq.values()),
                    "dead_letter_keys": len(dlq), "repeated_dead_letters": sum(n - 1 for n in dlq.values()),
                    "missing_dead_letters": sorted(expected_dl - set(dlq)),
                    "unexpected_dead_letters": sorted(set(dlq) - expected_dl),
                    "folded_but_dead_lettered": sorted(folded_pos & set(dlq))},
        "log_records": scan.records,
        "verify": {"clean": report.clean, "clusters": sorted({h["cluster"] for h in report.heads}),
                   "checked_keys": report.checked_keys, "records": report.records,
                   "unfolded": dict(report.unfolded),
                   "drift_by_kind": dict(Counter(f.kind for f in report.drift)),
                   "drift": [f.as_dict() for kind in sorted({f.kind for f in report.drift})
                             for f in [g for g in report.drift if g.kind == kind][:3]]},
        "final_worker": final,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def _line(s: dict[str, Any]) -> str:
    e, h, f = s["events"], s["hostile"], s["faults"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(f["by_kind"].items()))
    return (f"chaos seed={s['seed']}: faults {f['total']} ({kinds}); events accepted {e['accepted']}, "
            f"found in log {e['found_at_acknowledged_offset']}, lost {e['lost']}, written twice {e['written_twice']}, "
            f"refused {e['refused']}, unanswered {e['unanswered']} ({e['in_log_not_acknowledged']} of them in the log); "
            f"dead letters {h['dead_letter_keys']}/{h['expected_dead_letters']} expected "
            f"(repeats {h['repeated_dead_letters']}); worker self-exits {s['workers']['exited_on_their_own']}; "
            f"verify {'clean' if s['verify']['clean'] else 'DRIFT'} ({len(s['verify']['clusters'])} clusters, "
            f"{s['verify']['checked_keys']} keys); {s['seconds']['total']}s")


@pytest.mark.timeout(540)
async def test_kill_9_of_workers_etcd_and_broker_with_poison_in_between_loses_no_accepted_event_and_applies_none_twice(
        stack: TestStack, isolated: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if stack.kill_kafka is None or stack.kill_etcd is None or stack.restart_kafka is None or stack.restart_etcd is None:
        pytest.skip(f"the {stack.kind} stack cannot kill and restart Kafka and etcd (chaos runs on native)")
    s = isolated
    started = time.monotonic()
    seconds: dict[str, float] = {}
    rng = random.Random(SEED)
    clusters = [f"{s.cluster}-{i}" for i in range(CLUSTERS)]
    streams = {c: event_stream(c, SEED + i, 10_000_000) for i, c in enumerate(clusters)}
    tally = IngestTally()
    ing = Ingestor(s)
    workers = Workers(s, tmp_path, group=f"chaos-{s.cluster}")
    await ing.start()
    try:
        # Before the first fault: every cluster pinned (to its own partition) with some history.
        for c in clusters:
            await submit(ing, [ev for _, ev in zip(range(WARM_UP_EVENTS), streams[c], strict=False)], tally, timeout=60)
        parts = {c: await ing._map.partition_for(c) for c in clusters}  # noqa: SLF001
        assert len(set(parts.values())) == CLUSTERS, parts
        p = plan(SEED, hostile=HOSTILE_ROUNDS * len(catalogue(random.Random(0), "a", "b", 0)))
        hostile, schedule = _hostile_schedule(rng, clusters, parts, p.hostile_at)

        workers.start()
        stop, kafka_up = asyncio.Event(), asyncio.Event()
        kafka_up.set()
        faults = Faults(stack, workers, kafka_up)
        htally = HostileTally()
        t0 = time.monotonic()
        supervisor = asyncio.create_task(workers.supervise(stop))
        feeder = asyncio.create_task(ingest_loop(ing, streams, tally, stop, rate=RATE))
        poisoner = asyncio.create_task(write_hostile(s, schedule, htally, kafka_up, t0, deadline=t0 + 400))
        try:
            for f in p.faults:
                await asyncio.sleep(f.gap)
                await faults.inject(f, t0)
            await asyncio.wait_for(poisoner, 120)
            await asyncio.sleep(3.0)  # ingest goes on a little after the last fault
        finally:
            stop.set()
            await faults.heal_all()
            kafka_up.set()
            await asyncio.wait_for(asyncio.gather(feeder, supervisor, return_exceptions=True), 90)
            poisoner.cancel()
        seconds["chaos"] = time.monotonic() - t0

        # Every fault healed: the chaos workers leave, and a final one takes every partition.
        t1 = time.monotonic()
        stopped = workers.terminate()
        port = free_port()
        final_proc = workers.spawn(0, metrics_port=port)
        final: dict[str, Any] = {"chaos_workers_sigterm_exit_codes": stopped}
        try:
            await wait_caught_up(s, timeout=180)
            seconds["catch_up"] = time.monotonic() - t1
            code, doc = await _wait_ready(port, 30)
            final.update(readyz=code, partitions=doc.get("partitions"), reason=doc.get("reason"))
        finally:
            final["sigterm_exit_code"] = workers.terminate()[0]
        assert final_proc.returncode is not None

        t2 = time.monotonic()
        report = await verify(s)  # every cluster with a live checkpoint
        scan = await scan_log(s, hostile)
        dlq = await scan_dead_letters(s)
        seconds["verify_and_count"] = time.monotonic() - t2
        seconds["total"] = time.monotonic() - started
    finally:  # whatever is still running when something failed midway
        workers.terminate(timeout=30)
        await ing.stop()

    summary = _summary(SEED, faults, workers, tally, hostile, htally, scan, dlq, report, seconds, final)
    if os.environ.get("KMEVENTS_CHAOS_REPORT"):
        Path(os.environ["KMEVENTS_CHAOS_REPORT"]).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    with capsys.disabled():
        print("\n" + _line(summary))
    detail = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n" + workers.tails()

    ev, hs = summary["events"], summary["hostile"]
    assert len(faults.log) == len(p.faults) >= 8, detail
    assert all(f.get("killed", True) for f in faults.log), detail
    assert ev["accepted"] > 0 and ev["lost"] == 0, detail
    assert ev["written_twice"] == 0, detail
    written = {(n, part, off) for n, part, off in htally.written}
    assert all((part, off) in scan.hostile_at.get(n, []) for n, part, off in written), detail
    assert hs["expected_dead_letters"] >= sum(h.expect == "dead_letter" for h in hostile), detail
    assert not hs["missing_dead_letters"] and not hs["unexpected_dead_letters"], detail
    assert not hs["folded_but_dead_lettered"], detail
    assert report.clean, detail
    assert set(clusters) <= set(summary["verify"]["clusters"]), detail
    assert final["readyz"] == 200 and final["partitions"] == sorted(parts.values()), detail
    # SIGTERM ends a running worker with 0; one restarted a moment before (still importing, its
    # handler not yet installed) ends by the signal itself, which a supervisor also reads as stopped.
    assert final["sigterm_exit_code"] == 0, detail
    assert all(c in (0, -signal.SIGTERM) for c in stopped if c is not None), detail
