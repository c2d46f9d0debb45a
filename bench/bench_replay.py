"""Replay throughput (archives, Kafka), point-in-time latency with snapshots, search latency, memory.

    python -m bench.run replay [--quick]

Input: ``kmevents.simulate.iter_lines`` (quick 200,000 events, full 10,000,000, or
``KMEVENTS_BENCH_REPLAY_EVENTS``; ``KMEVENTS_BENCH_REPLAY_KAFKA_EVENTS`` runs the Kafka
part on a prefix), one cluster, stored as they would be (canonical JSON values, key = cluster).

- archive replay: read a ``.kmarch`` + hash chain + ``decode_fast`` + the reducer's
  ``apply``, CPU time of this process, against the same-run baseline
  ``orjson.loads`` + one dict update per record over the same bytes;
- archive read alone (decompress, frame, chain): what the archive layer costs;
- Kafka replay: the same fold reading the topic on the local stack;
- point in time: ``replay(Target(offset=random))`` starting from the newest
  snapshot (one every ``SNAP_EVERY`` events, written in the worker's format),
  warm in-process p50/p99, and a cold ``kmevents state --offset`` CLI run;
- point in time from archives alone (no server): a cold ``kmevents state --source
  FILE --offset`` on an archive keeping a snapshot every ``archiving.SNAPSHOT_EVERY``
  offsets (the export default), against the same reads with ``--no-snapshots``;
- search: ``kmevents.replay.search`` of one event type over the whole archive;
- peak RSS (VmHWM) of this process.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from bench._stats import percentile

CLUSTER = "bench-replay"


def _vmhwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _records(n: int) -> list[Any]:
    from kmevents.simulate import iter_lines

    return records_of(iter_lines(CLUSTER, 42, n), CLUSTER)


def records_of(lines: Iterable[bytes], cluster: str) -> list[Any]:
    """JSON lines as the log stores them: offsets from 0, key = cluster, a record time 20 ms
    after each event's ``occurred_at``."""
    from kmevents.replay.records import LogRecord

    from kmevents.timespec import micros_of

    key = cluster.encode()
    out = []
    for i, line in enumerate(lines):
        v = line.rstrip(b"\n")
        occ = v.split(b'"occurred_at":"', 1)[1][:27].decode()
        out.append(LogRecord(i, micros_of(occ) // 1000 + 20, key, v))
    return out


def _baseline(recs: list[Any]) -> float:
    loads = orjson.loads
    acc: dict[str, Any] = {}
    t = time.process_time()
    for r in recs:
        e = loads(r.value)
        acc[e["type"]] = e
    return len(recs) / (time.process_time() - t)


def _result(name: str, figure: float, unit: str, aim: str, met: bool | None, notes: str,
            baseline: str | None = None, base_fig: float | None = None) -> dict[str, Any]:
    return {"name": name, "figure": round(figure, 1), "unit": unit, "baseline": baseline,
            "baseline_figure": None if base_fig is None else round(base_fig, 1),
            "ratio": None if not base_fig else round(figure / base_fig, 3), "aim": aim, "met": met, "notes": notes}


def run(quick: bool) -> list[dict[str, Any]]:
    from kmevents.replay import archive
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.search import Filters, search
    from kmevents.replay.sources import ArchiveSource

    n = int(os.environ.get("KMEVENTS_BENCH_REPLAY_EVENTS", 200_000 if quick else 10_000_000))
    # The Kafka part (load, snapshots, replay, point in time) may run on a prefix: at
    # 10M events it alone takes most of an hour here.
    n_kafka = int(os.environ.get("KMEVENTS_BENCH_REPLAY_KAFKA_EVENTS", n))
    out: list[dict[str, Any]] = []
    recs = _records(n)
    nbytes = sum(len(r.value) for r in recs)
    with tempfile.TemporaryDirectory(prefix="kmevents-bench-replay-") as tmp:
        arc = Path(tmp) / "bench.kmarch"
        archive.write(arc, recs, cluster=CLUSTER, partition=0, topic="kmevents.events", covers_from=0)
        size = arc.stat().st_size
        base = _baseline(recs)
        src = ArchiveSource(arc)
        t = time.process_time()
        from kmevents import chain

        h = chain.GENESIS
        for batch in archive.iter_batches(arc):
            for r in batch:
                h = chain.link(h, r.key, r.value)
        read_rate = n / (time.process_time() - t)
        best = 0.0
        for _ in range(1 if not quick else 2):
            t = time.process_time()
            r = asyncio.run(replay(src, CLUSTER, Target(), progress=False))
            best = max(best, n / (time.process_time() - t))
        assert r.applied == n
        out.append(_result(f"archive replay, fold included ({n:,} events)", best, "events/s",
                           ">= 250k events/s and >= 0.6 of baseline", best >= 250_000 and best / base >= 0.6,
                           f"{nbytes / n:.0f} B/event, archive {size / 2**20:.0f} MiB (zstd) for "
                           f"{nbytes / 2**20:.0f} MiB; the reducer's apply dominates",
                           "orjson.loads + one dict update per record, same bytes", base))
        out.append(_result("archive read + chain hash only", read_rate, "events/s", "(the archive layer's cost)",
                           None, "decompress, frame parse, sha256 chain; no decode, no fold"))
        t = time.perf_counter()
        hits = asyncio.run(search(src, Filters(types=["pod.evicted"])))
        out.append(_result("search one type over the whole archive", (time.perf_counter() - t) * 1000, "ms",
                           "(no aim)", None, f"{len(hits)} hits in {n:,} events"))
        out.extend(_archive_point_in_time(recs[:n_kafka], Path(tmp), size))
        out.extend(_kafka_part(recs[:n_kafka], Path(tmp), quick))
    out.append(_result("peak RSS of the benchmark process", _vmhwm_mib(), "MiB", "(no aim)", None,
                       f"holds all {n:,} records in memory for the baselines"))
    return out


def _snapshots_along(recs: list[Any], every: int, delta_every: int = 0, *, cluster: str = CLUSTER
                     ) -> Iterator[tuple[Any, str, bytes | None, int | None]]:
    """Each record with the chain head after it and, every ``every`` offsets, the snapshot of
    the fold there (the worker's format), and every ``delta_every`` offsets between them the
    delta against the last one; None between. The last item: the delta's base offset."""
    from kmevents import chain
    from kmevents.reducer import ClusterState, apply

    st, h = ClusterState.empty(cluster), chain.GENESIS
    for r in recs:
        h = chain.link(h, r.key, r.value)
        apply(st, orjson.loads(r.value), partition=0, offset=r.offset)
        data, base = None, None
        if (r.offset + 1) % every == 0:
            st.take_dirty()
            data = st.to_snapshot(chain_hash=h)
            st.mark_base(r.offset)
        elif delta_every and (r.offset + 1) % delta_every == 0 and st.base_offset is not None:
            st.take_dirty()
            base = st.base_offset
            data = st.to_delta(chain_hash=h)
        yield r, h, data, base


def _cold_state(*argv: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kmevents.cli", "state", "--cluster", CLUSTER, "--format", "json",
                    "--no-progress", *argv], capture_output=True, check=True,
                   env={**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": "127.0.0.1:9",
                        "KMEVENTS_ETCD__ENDPOINT": "http://127.0.0.1:9"})  # nothing may connect
    return time.perf_counter() - t


def _archive_point_in_time(recs: list[Any], tmp: Path, plain_size: int) -> list[dict[str, Any]]:
    """Cold CLI reads from archives that keep snapshots (export's default spacing, and the
    processors' interval), no server."""
    from kmevents.processors.worker import SNAPSHOT_EVERY_EVENTS
    from kmevents.replay.archiving import SNAPSHOT_EVERY

    return [_archive_pit(recs, tmp, plain_size, every, label)
            for every, label in ((SNAPSHOT_EVERY, "the export default"),
                                 (SNAPSHOT_EVERY_EVENTS, "--snapshot-every as the processors' interval"))]


def _archive_pit(recs: list[Any], tmp: Path, plain_size: int, every: int, label: str) -> dict[str, Any]:
    from kmevents.replay import archive

    from kmevents.reducer import REDUCER_VERSION

    n = len(recs)
    arc = tmp / f"snapshots-{every}.kmarch"
    at = range(every - 1, n, every)
    w = archive.ArchiveWriter(arc, cluster=CLUSTER, partition=0, topic="kmevents.events", covers_from=0)
    for r, h, data, _ in _snapshots_along(recs, every):
        w.add(r)
        if data is not None:
            w.add_snapshot(data, offset=r.offset, chain_head=h, reducer_version=REDUCER_VERSION)
    header = w.close()
    size = arc.stat().st_size
    offs = [*random.Random(4).sample(range(n), 3), max(at) - 1 if at else n - 1]  # the last: the longest fold
    cold = [_cold_state("--source", str(arc), "--offset", str(o)) for o in offs]
    base = _cold_state("--source", str(arc), "--offset", str(offs[-1]), "--no-snapshots")
    arc.unlink()
    return _result(f"point in time from an archive alone, a snapshot per {every:,} offsets, cold CLI (max of 4)",
                   max(cold), "s", "<= 2 s cold CLI", max(cold) <= 2,
                   f"offsets {', '.join(f'{o:,}' for o in offs)}: {', '.join(f'{c:.2f}' for c in cold)} s; the "
                   f"archive keeps {len(header['snapshots'])} snapshots ({label}), {size / 2**20:.0f} MiB against "
                   f"{plain_size / 2**20:.0f} MiB without; no server running",
                   "the last offset with --no-snapshots (fold from offset 0)", base)


def _kafka_part(recs: list[Any], tmp: Path, quick: bool) -> list[dict[str, Any]]:
    from kmevents.processors.derive import DELTA_EVERY_EVENTS, SNAPSHOT_EVERY_EVENTS
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.sources import KafkaSource

    from bench._stack import running_stack
    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.reducer import REDUCER_VERSION
    from kmevents.store.snapshots import SnapshotWriter

    n = len(recs)
    snap_every = SNAPSHOT_EVERY_EVENTS  # the worker's default
    snap_bytes: list[tuple[int, int]] = []  # (bytes, stored bytes) per snapshot
    delta_bytes: list[tuple[int, int]] = []  # ... per delta
    out: list[dict[str, Any]] = []
    with running_stack() as s:
        s.kafka.events_topic = f"bench{int(time.time())}.events"
        s.kafka.snapshots_topic = s.kafka.events_topic.replace("events", "snapshots")
        s.etcd.prefix = f"/bench{int(time.time())}/kmevents/v1"
        no_deltas = s.model_copy(deep=True)
        no_deltas.etcd.prefix = s.etcd.prefix.replace("/kmevents/", "/kmevents-full-only/")

        async def load() -> None:
            await kafka_adapter.ensure_topics(s.kafka)
            p = kafka_adapter.producer(s.kafka, linger_ms=20, max_batch_size=1 << 20,
                                        max_request_size=s.kafka.snapshot_max_message_bytes)
            await p.start()
            try:
                futs = []
                for r in recs:
                    futs.append(await p.send(s.kafka.events_topic, r.value, key=r.key, partition=0))
                    if len(futs) >= 5000:
                        await asyncio.gather(*futs)
                        futs = []
                await asyncio.gather(*futs)
                # snapshots in the worker's format, every snap_every events, and deltas every
                # DELTA_EVERY_EVENTS between them; the same-run baseline's index (another
                # prefix) lists the full snapshots only
                async with etcd_adapter.client(s.etcd) as c:
                    writer = SnapshotWriter(s, p, c)
                    for r, h, data, base in _snapshots_along(recs, snap_every, DELTA_EVERY_EVENTS):
                        if data is None:
                            continue
                        entry = await writer.write(cluster=CLUSTER, generation=layout.live_generation(),
                                                   partition=0, offset=r.offset, chain_head=h, state_bytes=data,
                                                   reducer_version=REDUCER_VERSION, base=base)
                        if base is None:
                            snap_bytes.append((entry["bytes"], entry["stored_bytes"]))
                            await c.put(layout.snapshot_index_key(f"{no_deltas.etcd.prefix}/{layout.live_generation()}",
                                                                  CLUSTER, r.offset),
                                        orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
                        else:
                            delta_bytes.append((entry["bytes"], entry["stored_bytes"]))
            finally:
                await p.stop()

        asyncio.run(load())
        src = KafkaSource(s.kafka, s.kafka.events_topic, 0, CLUSTER)
        t0, c0 = time.perf_counter(), time.process_time()
        r = asyncio.run(replay(src, CLUSTER, Target(), progress=False))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert r.applied == n
        out.append(_result(f"Kafka replay, fold included ({n:,} events)", n / wall, "events/s", ">= 100k events/s",
                           n / wall >= 100_000, f"wall clock; this process's CPU {n / cpu:,.0f} events/s"))

        async def read_only() -> float:
            t = time.perf_counter()
            k = 0
            async for b in src.batches(0, n - 1):
                k += len(b)
            return k / (time.perf_counter() - t)

        out.append(_result("Kafka read only (no decode, no fold)", asyncio.run(read_only()), "events/s",
                           "(the transport's share)", None, "aiokafka fetch + record objects"))

        out.extend(asyncio.run(_point_in_time(s, src, n, snap_every, snap_bytes, recs, quick)))
        from kmevents.settings import child_env

        env_over = child_env(s)
        import os

        def cold_read(off: int, prefix: str) -> float:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kmevents.cli", "state", "--cluster", CLUSTER, "--partition", "0",
                            "--offset", str(off), "--format", "json", "--no-progress"],
                           env={**os.environ, **env_over, "KMEVENTS_ETCD__PREFIX": prefix},
                           capture_output=True, check=True)
            return time.perf_counter() - t

        cold, cold_full = [], []
        offs = [*random.Random(2).sample(range(n), 3), n - 2]  # n - 2: the biggest snapshot, the longest fold
        for off in offs:
            cold.append(cold_read(off, s.etcd.prefix))
            cold_full.append(cold_read(off, no_deltas.etcd.prefix))
        out.append(_result("point in time, cold CLI (max of 4)", max(cold), "s", "<= 1 s cold CLI (issue 17)",
                           max(cold) <= 1,
                           f"offsets {', '.join(str(o) for o in offs)}: {', '.join(f'{c:.2f}' for c in cold)} s "
                           f"with a delta every {DELTA_EVERY_EVENTS:,} events (baseline, full snapshots only: "
                           f"{', '.join(f'{c:.2f}' for c in cold_full)} s), incl. interpreter start and the state "
                           f"printed as JSON; deltas stored {sum(z for _, z in delta_bytes) / max(len(delta_bytes), 1) / 2**20:.2f}"
                           f" MiB each on average (zstd; {len(delta_bytes)} deltas), full snapshots "
                           f"{sum(z for _, z in snap_bytes) / max(len(snap_bytes), 1) / 2**20:.2f} MiB",
                           "the same reads with full snapshots only", max(cold_full)))
    return out


async def _point_in_time(s: Any, src: Any, n: int, snap_every: int, snap_bytes: list[tuple[int, int]],
                         recs: list[Any], quick: bool) -> list[dict[str, Any]]:
    """Point-in-time reads: the engine alone (baseline), then the API's path (TimeTravel)."""
    from kmevents.replay.engine import Target, replay

    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.api.timetravel import TimeTravel
    from kmevents.store.snapshots import SnapshotStore

    out: list[dict[str, Any]] = []
    k = 20 if quick else 40
    rng = random.Random(1)
    uniform = [rng.randrange(n) for _ in range(3 * k)]
    last_window = n - snap_every
    window = [last_window + rng.randrange(snap_every) for _ in range(40)]
    async with etcd_adapter.client(s.etcd) as c:
        # same-run baseline: the engine as the CLI uses it, no warm state (a new consumer per
        # read, the snapshot fetched and parsed per read)
        store = SnapshotStore(s, c)
        base = []
        for off in uniform[:k]:
            t = time.perf_counter()
            await replay(src, CLUSTER, Target(offset=off), snapshots=store, progress=False)
            base.append((time.perf_counter() - t) * 1000)
        tt = TimeTravel(s, c)
        try:
            async def reads(offs: list[int]) -> tuple[list[float], list[dict[str, float]]]:
                lat, tim = [], []
                for off in offs:
                    t = time.perf_counter()
                    r = await tt.state(CLUSTER, 0, Target(offset=off))
                    lat.append((time.perf_counter() - t) * 1000)
                    assert r.end_offset == off
                    tim.append(dict(tt.last_timing))
                return lat, tim

            first, _ = await reads(uniform[:k])
            steady, steady_t = await reads(uniform[k:])
            await reads(window[:1])
            win, win_t = await reads(window[1:])
            final = (await tt.state(CLUSTER, 0, Target(offset=n - 1))).state
        finally:
            await tt.close()
    counts = ", ".join(f"{kind} {final.count(kind):,}" for kind in final.kinds if final.count(kind))
    terminal = sum(1 for kind in ("task", "pod", "offer") for _ in final.terminal_ids(kind))

    def stages(ts: list[dict[str, float]]) -> str:
        keys = sorted({k for t in ts for k in t})
        return "; ".join(f"{k} {statistics.mean(t.get(k, 0.0) for t in ts) * 1000:.0f}" for k in keys)

    bp50, bp99 = statistics.median(base), percentile(base, 0.99)
    raw = sum(b for b, _ in snap_bytes)
    stored = sum(z for _, z in snap_bytes)
    log_bytes = sum(len(r.value) for r in recs)
    common = (f"API path (kmevents/api/timetravel.py TimeTravel.state, default settings: "
              f"{s.api.replay_state_cache_entries} held states, a state held every {s.api.replay_state_every:,} "
              f"offsets, {s.api.replay_record_cache_mib} MiB of records); snapshot every {snap_every:,} events; "
              f"state at the end: {counts} ({terminal:,} of the tasks/pods/offers terminal, kept by retention)")
    out.append(_result("point in time at a random offset, warm, reads within one snapshot interval (p99)",
                       percentile(win, 0.99), "ms", "p99 <= 200 ms warm", percentile(win, 0.99) <= 200,
                       f"p50 {statistics.median(win):.0f} ms, p90 {percentile(win, 0.9):.0f} ms; {len(win)} reads at "
                       f"random offsets in "
                       f"[{last_window:,}, {n - 1:,}] after one read there; mean ms per stage: {stages(win_t)}; "
                       f"{common}", "same reads' engine baseline p99 (below)", bp99))
    out.append(_result("point in time at a random offset over the whole log, warm process (p99)",
                       percentile(steady, 0.99), "ms", "p99 <= 200 ms warm", percentile(steady, 0.99) <= 200,
                       f"p50 {statistics.median(steady):.0f} ms, p90 {percentile(steady, 0.9):.0f} ms; {len(steady)} reads "
                       f"after {k} earlier ones; "
                       f"mean ms per stage: {stages(steady_t)}", "engine baseline p99", bp99))
    out.append(_result("point in time at a random offset, first reads of a fresh API process (p99)",
                       percentile(first, 0.99), "ms", "(caches filling)", None,
                       f"p50 {statistics.median(first):.0f} ms; the same {k} offsets as the baseline",
                       "engine baseline p99, same offsets", bp99))
    out.append(_result("point in time, engine without warm state (baseline, p99)", bp99, "ms", "(baseline)", None,
                       f"p50 {bp50:.0f} ms; replay() + SnapshotStore as `kmevents state` runs it: a new consumer "
                       f"per read, the snapshot fetched and parsed per read"))
    out.append(_result("snapshots stored (zstd), per event of the log", stored / n, "B/event", "(storage)", None,
                       f"{len(snap_bytes)} snapshots: {raw / 2**20:.0f} MiB raw, {stored / 2**20:.0f} MiB stored "
                       f"({raw / max(stored, 1):.1f}x); the log {log_bytes / 2**20:.0f} MiB "
                       f"({log_bytes / n:.0f} B/event); newest snapshot {snap_bytes[-1][0] / 2**20:.0f} MiB raw",
                       "uncompressed", raw / n))
    return out
