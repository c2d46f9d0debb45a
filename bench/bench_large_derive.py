"""The large profile through the whole system (issue 17): derive, etcd's size, verify,
cold point-in-time reads from the worker's snapshots and deltas.

    python -m bench.run large_derive [--quick]
    KMEVENTS_BENCH_PROFILE=default python -m bench.run large_derive [--quick]

Input: ``bench.large_log`` (1,500,000 events, 12,500 agents, ~140,000 running pod
tasks; quick: 300,000 events at ``--scale 0.2``), ingested into a fresh topic of one
partition on a temporary native stack (``bench/_stack.py``). With
``KMEVENTS_BENCH_PROFILE=default``, the simulator's own profile instead (50 agents; 1,000,000
events, quick 200,000; ``KMEVENTS_BENCH_EVENTS`` sets another count), measured against the
issue's aims at the simulator's scale: a cold read <= 1 s, a warm one p99 <= 200 ms.

- derive: one ``DeriveWorker`` in this process with the processors' defaults (a
  snapshot every 20,000 events, a delta every 4,000), from the first record to the
  checkpoint at the last: events/s (wall) and this process's peak RSS;
- etcd: the live state's bytes (keys + values of every key in the database: the run's
  prefix, and on a kept stack earlier runs' too) against etcd's database size, as left by
  the run and after a compaction at the current revision and a defragmentation (what
  periodic auto-compaction converges to);
- verify: ``kmevents verify --full --jobs 1`` (one process, the same-run baseline),
  ``kmevents verify --full`` (split over processes by default) and then an incremental
  ``kmevents verify``, as child processes: wall time, the largest process's peak RSS and
  the whole process tree's;
- point in time: cold ``kmevents state --offset N`` children (the summary) at random
  offsets and at one just before a full snapshot (the farthest from it);
- warm point in time: the API's path (``TimeTravel.state``) in a spawned child, at random
  offsets over the log and within the last snapshot interval: p50 and p99.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import random
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson

from bench._peak import run_kmevents, run_kmevents_tree
from bench._stack import running_stack, stack_env
from bench.bench_derive import _fresh, derive_until
from bench.bench_replay import _result, _vmhwm_mib
from bench.large_log import large_log
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.timespec import iso_of_micros, micros_of


async def _ingest(s: Settings, path: Any) -> int:
    n = 0
    async with Ingestor(s) as ing:
        buf = []
        with open(path, "rb") as f:
            for line in f:
                buf.append(orjson.loads(line))
                if len(buf) == 10_000:
                    res = await ing.submit(buf)
                    assert all(r.ok for r in res)
                    n += len(buf)
                    buf = []
        if buf:
            assert all(r.ok for r in await ing.submit(buf))
            n += len(buf)
    return n


def _gateway(s: Settings, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(f"{s.etcd.endpoint}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - 127.0.0.1 only
        return dict(json.loads(resp.read()))


async def _live_bytes(s: Settings, everything: bool = False) -> tuple[int, int]:
    """Keys and bytes (keys + values) under the run's prefix, or with ``everything`` of every key
    the database holds: a kept stack (``KMEVENTS_BENCH_EXTERNAL=1``) also holds earlier runs'
    prefixes, which its database size counts too."""
    p = b"\0" if everything else f"{s.etcd.prefix}/".encode()
    end = b"\0" if everything else etcd_adapter.prefix_end(p)  # (etcd: "\0" ends no range: every key from p)
    keys = size = 0
    async with etcd_adapter.client(s.etcd) as c:
        async for _, kvs in etcd_adapter.range_pages(c, p, end):
            keys += len(kvs)
            size += sum(len(kv.key) + len(kv.value) for kv in kvs)
    return keys, size


def _child(s: Settings, *argv: str) -> tuple[float, float, str]:
    """``kmevents ARGV`` against the stack: wall seconds, its own peak RSS (MiB), stdout."""
    return run_kmevents(list(argv), stack_env(s))


def _child_tree(s: Settings, *argv: str) -> tuple[float, float, float, str]:
    """:func:`_child` with the peak RSS of its whole process tree (MiB) before stdout."""
    return run_kmevents_tree(list(argv), stack_env(s))


#: The issue's aims by profile: a cold read's seconds, a warm read's p99 in milliseconds.
AIMS = {"large": (3.0, 500.0), "default": (1.0, 200.0)}


def _log(quick: bool) -> tuple[str, Any]:
    import os

    profile = os.environ.get("KMEVENTS_BENCH_PROFILE", "large")
    if profile not in AIMS:
        raise SystemExit(f"KMEVENTS_BENCH_PROFILE={profile!r}: use one of {', '.join(AIMS)}")
    events = os.environ.get("KMEVENTS_BENCH_EVENTS")
    if profile == "default":
        return profile, large_log(int(events or (200_000 if quick else 1_000_000)), profile="default", cluster="sim")
    return profile, large_log(int(events or (300_000 if quick else 1_500_000)), scale=0.2 if quick else 1.0)


def run(quick: bool) -> list[dict[str, Any]]:
    profile, log = _log(quick)
    cold_aim, warm_aim = AIMS[profile]
    what = f"{log.events:,} events, {log.meta['agents']:,} agents, the {profile} profile"
    out: list[dict[str, Any]] = []
    with running_stack() as base:
        s = _fresh(base)
        s.cluster = log.meta["recipe"]["cluster"]  # the events name their cluster; the prefix is fresh
        s.kafka.partitions = 1
        asyncio.run(kafka_adapter.ensure_topics(s.kafka))
        t = time.perf_counter()
        n = asyncio.run(_ingest(s, log.path))
        ingest_rate = n / (time.perf_counter() - t)
        rss_before = _vmhwm_mib()
        took, worker = asyncio.run(derive_until(s, n))
        stats = worker.stats
        rate = n / took
        out.append(_result(f"derive into etcd ({what}; 1 worker, 1 partition)", rate, "events/s",
                           ">= 20,000 events/s", rate >= 20_000,
                           f"{took:.0f} s; {stats.transactions:,} transactions, {stats.snapshots} snapshots, "
                           f"{stats.deltas} deltas; this process's peak RSS {_vmhwm_mib():.0f} MiB "
                           f"({rss_before:.0f} before deriving)",
                           "ingest of the same log into Kafka, same run (events/s)", ingest_rate))
        keys, mine = asyncio.run(_live_bytes(s))
        all_keys, live = asyncio.run(_live_bytes(s, everything=True))  # (what the database holds)
        db = int(_gateway(s, "/v3/maintenance/status", {})["dbSize"])
        rev = int(_gateway(s, "/v3/kv/range", {"key": base64.b64encode(b"x").decode()})["header"]["revision"])
        _gateway(s, "/v3/kv/compaction", {"revision": rev, "physical": True})
        _gateway(s, "/v3/maintenance/defragment", {})
        db_after = int(_gateway(s, "/v3/maintenance/status", {})["dbSize"])
        out.append(_result("etcd database after compaction + defrag, against the live state's bytes", db_after / live,
                           "x", "< 2x the live state", db_after < 2 * live,
                           f"this run's {keys:,} keys, {mine / 2**20:.0f} MiB of keys + values"
                           + ("" if all_keys == keys else f" ({all_keys:,} keys, {live / 2**20:.0f} MiB in the database "
                                                          "with earlier runs' on this kept stack)")
                           + "; database "
                           f"{db / 2**20:.0f} MiB as the run left it (revision {rev:,}), {db_after / 2**20:.0f} MiB "
                           "after compacting at the current revision and defragmenting"))
        one, one_rss, one_tree, text = _child_tree(s, "verify", "--cluster", s.cluster, "--full", "--jobs", "1",
                                                   "--format", "json")
        one_clean = json.loads(text).get("clean")
        wall, rss, tree, text = _child_tree(s, "verify", "--cluster", s.cluster, "--full", "--format", "json")
        rep = json.loads(text)
        out.append(_result("kmevents verify --full (child process, split over processes by default), wall", wall, "s",
                           "<= 60 s and <= 1 GiB", wall <= 60 and tree <= 1024,
                           f"segments {rep.get('segments')}; peak RSS {rss:.0f} MiB the largest process, "
                           f"{tree:.0f} MiB the whole process tree; clean={rep.get('clean')}; "
                           f"one process (--jobs 1): {one:.1f} s, {one_rss:.0f} MiB (tree {one_tree:.0f}), "
                           f"clean={one_clean}", "verify --full --jobs 1, same run (s)", one))
        wall2, rss2, text2 = _child(s, "verify", "--cluster", s.cluster, "--format", "json")
        out.append(_result("kmevents verify, incremental after the full run, wall", wall2, "s", "(the fold is not "
                           "repeated)", None, f"peak RSS {rss2:.0f} MiB; "
                           f"clean={json.loads(text2).get('clean')}", "verify --full", wall))
        rng = random.Random(7)
        offs = [*rng.sample(range(n // 4, n), 3), (n // 20_000) * 20_000 - 2]
        reads, peaks = [], []
        for o in offs:
            w, m, _ = _child(s, "state", "--cluster", s.cluster, "--offset", str(o), "--no-progress")
            reads.append(w)
            peaks.append(m)
        out.append(_result("point in time, cold `kmevents state --offset N` (summary) from the worker's snapshots "
                           "and deltas (max of 4)", max(reads), "s", f"<= {cold_aim:g} s at the {profile} profile",
                           max(reads) <= cold_aim,
                           f"offsets {', '.join(f'{o:,}' for o in offs)}: {', '.join(f'{w:.1f}' for w in reads)} s; "
                           f"peak RSS {', '.join(f'{m:.0f}' for m in peaks)} MiB"))
        out += _listings(s, offs[0], min(reads), max(peaks))
        out += _report(s, _last_time(log.path))
        out += _points_by_time(s, log, n)
        out += _report_middle(s, log, n)
        out += _search_recent(s, log)
        # in a fresh process, as the API runs: this one's heap holds what the derive's worker left
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out += pool.submit(_warm_child, s, n, 20 if quick else 30, warm_aim, profile).result()
    return out


#: The reading commands that list or compare whole kinds (issue 17: nothing reads or writes a whole
#: large state in one piece), each at one offset (``{o}``) or live from etcd.
LISTINGS = (
    ("get pods (table) at an offset", ["get", "pods", "--offset", "{o}"]),
    ("get pods (table), live from etcd", ["get", "pods"]),
    ("get tasks -o json at an offset", ["get", "tasks", "--offset", "{o}", "-o", "json"]),
    ("diff of 20,000 offsets", ["diff", "--from", "offset:{p}", "--to", "offset:{o}"]),
    ("state --format json --kinds pod,task at an offset", ["state", "--offset", "{o}", "--format", "json",
                                                          "--kinds", "pod,task"]),
)


def _listings(s: Settings, o: int, summary: float, summary_rss: float) -> list[dict[str, Any]]:
    """:data:`LISTINGS` in children (stdout to a file): wall and peak RSS, beside the cold summary's
    of the same run (the state's load alone). No bar of their own: the issue asks that they hold no
    whole state in one piece, which their peak against the summary's shows (``diff`` holds two)."""
    from bench._peak import run_kmevents_to_file

    out = []
    for label, argv in LISTINGS:
        args = [a.format(o=o, p=max(0, o - 20_000)) for a in argv]
        wall, rss, size = run_kmevents_to_file([*args, "--cluster", s.cluster, "--no-progress"], stack_env(s))
        out.append(_result(f"reading at scale: {label} (`kmevents {' '.join(args)}`)", wall, "s", "", None,
                           f"peak RSS {rss:.0f} MiB (the cold summary's {summary_rss:.0f} MiB); "
                           f"{size / 1024:,.0f} KiB written",
                           "cold `kmevents state --offset N` (the summary), same run, fastest of 4 (s)", summary))
    return out


#: The report's window: the last 10 minutes of the log's source time (an incident just past).
REPORT_WINDOW_US = 600 * 1_000_000


def _last_time(path: Any) -> int:
    """The ``occurred_at`` (µs) of the log file's last event (its last line, read from the end)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 65536))
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return micros_of(json.loads(last)["occurred_at"])


def _report(s: Settings, end_us: int) -> list[dict[str, Any]]:
    """``kmevents report --format json`` of the log's last 10 minutes (a child, stdout to a file),
    from the snapshot before the window, against the same report read from the log's start
    (``--no-snapshots``, the only way before) in the same run."""
    from bench._peak import run_kmevents_to_file

    argv = ["report", "--cluster", s.cluster, "--from", iso_of_micros(end_us - REPORT_WINDOW_US), "--to",
            iso_of_micros(end_us), "--format", "json", "--no-progress"]
    wall, rss, size = run_kmevents_to_file(argv, stack_env(s))
    whole, whole_rss, whole_size = run_kmevents_to_file([*argv, "--no-snapshots"], stack_env(s))
    return [_result("reading at scale: `kmevents report` of the log's last 10 minutes (--format json)", wall, "s", "",
                    None, f"peak RSS {rss:.0f} MiB; {size / 2**20:,.0f} MiB written; from the log's start: "
                    f"{whole_rss:.0f} MiB, {whole_size / 2**20:,.0f} MiB written"
                    + ("" if size == whole_size else " (NOT the same size)"),
                    "the same report read from the log's start (--no-snapshots), same run (s)", whole)]


def _times_at(path: Any, indexes: list[int]) -> dict[int, int]:
    """The ``occurred_at`` (µs) of the log file's events at ``indexes`` (0-based lines)."""
    want, out = set(indexes), {}
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i in want:
                out[i] = micros_of(json.loads(line)["occurred_at"])
                if len(out) == len(want):
                    break
    return out


def _points_by_time(s: Settings, log: Any, n: int) -> list[dict[str, Any]]:
    """Cold ``state --at T`` at the times of the events a quarter, half and three quarters into the
    log, against ``state --offset N`` of those events (no late arrivals to look for) in the same run:
    what reading on for late arrivals costs once the touched index says where to stop."""
    idx = [n // 4, n // 2, 3 * n // 4]
    times = _times_at(log.path, idx)
    rows, base, peaks = [], [], []
    for i in idx:
        w, m, text = _child(s, "state", "--cluster", s.cluster, "--at", iso_of_micros(times[i]), "--no-progress",
                            "--format", "json", "--kinds", "cluster")
        pos = json.loads(text)["position"]
        rows.append((w, pos["records_scanned"], pos["covered_to_offset"], pos.get("log_last_offset")))
        peaks.append(m)
        base.append(_child(s, "state", "--cluster", s.cluster, "--offset", str(i), "--no-progress")[0])
    return [_result("point in time by occurrence, cold `kmevents state --at T` (max of 3: a quarter, half and three "
                    "quarters into the log)", max(r[0] for r in rows), "s", "", None,
                    "; ".join(f"{w:.1f} s, {scanned:,} records read to offset {to:,} of {last:,}"
                              for w, scanned, to, last in rows) + f"; peak RSS {max(peaks):.0f} MiB",
                    "cold `state --offset N` of the same events, max of 3, same run (s)", max(base))]


#: The searches' range: the log's last 5 minutes of source time (``search --since 5m`` just after).
SEARCH_WINDOW_US = 300 * 1_000_000


def _first_host(path: Any) -> str:
    """The host name of the log file's first ``agent.added`` event."""
    with open(path, "rb") as f:
        for line in f:
            if b'"agent.added"' in line:
                return str(json.loads(line)["payload"]["agent"]["hostname"])
    raise RuntimeError("no agent.added in the log")


def _search_recent(s: Settings, log: Any) -> list[dict[str, Any]]:
    """``kmevents search --from T`` over the log's last 5 minutes (by type, and by an agent's host name,
    which also finds the events that name only its id), against ``--no-index`` (a scan from the log's
    first record, as every search from a time read before) in the same run; the same output."""
    from bench._peak import run_kmevents_to_file

    start = iso_of_micros(_last_time(log.path) - SEARCH_WINDOW_US)
    out = []
    for label, extra in (("--type pod.evicted", ["--type", "pod.evicted"]),
                         ("--agent HOST", ["--agent", _first_host(log.path)])):
        argv = ["search", "--cluster", s.cluster, "--from", start, *extra, "--format", "json", "--no-progress"]
        wall, rss, size = run_kmevents_to_file(argv, stack_env(s))
        whole, whole_rss, whole_size = run_kmevents_to_file([*argv, "--no-index"], stack_env(s))
        out.append(_result(f"reading at scale: `kmevents search --from T {label}` of the log's last 5 minutes "
                           "(--format json)", wall, "s", "", None,
                           f"peak RSS {rss:.0f} MiB; {size / 1024:,.0f} KiB written; --no-index: {whole_rss:.0f} MiB"
                           + ("" if size == whole_size else " (NOT the same size)"),
                           "the same search with --no-index (from the log's first record), same run (s)", whole))
    return out


def _report_middle(s: Settings, log: Any, n: int) -> list[dict[str, Any]]:
    """``kmevents report`` of 10 minutes ending at the log's middle event, followed the default 15
    minutes (the replay stops where the touched index says nothing later happened by then), against
    ``--follow end`` (every event to the log's end, as reports read before) in the same run."""
    from bench._peak import run_kmevents_to_file

    hi = _times_at(log.path, [n // 2])[n // 2]
    argv = ["report", "--cluster", s.cluster, "--from", iso_of_micros(hi - REPORT_WINDOW_US), "--to",
            iso_of_micros(hi), "--format", "json", "--no-progress"]
    wall, rss, size = run_kmevents_to_file(argv, stack_env(s))
    whole, whole_rss, whole_size = run_kmevents_to_file([*argv, "--follow", "end"], stack_env(s))
    return [_result("reading at scale: `kmevents report` of 10 minutes in the middle of the log (--format json), "
                    "followed 15 minutes", wall, "s", "", None,
                    f"peak RSS {rss:.0f} MiB; {size / 2**20:,.0f} MiB written; --follow end: {whole_rss:.0f} MiB, "
                    f"{whole_size / 2**20:,.0f} MiB written",
                    "the same window with --follow end (every event to the log's end), same run (s)", whole)]


def _warm_child(s: Settings, n: int, k: int, aim: float, profile: str) -> list[dict[str, Any]]:
    return asyncio.run(_warm(s, n, k, aim, profile))


async def _warm(s: Settings, n: int, k: int, aim: float, profile: str) -> list[dict[str, Any]]:
    """The API's warm path (``TimeTravel.state``, default settings) in the process it runs in (a
    spawned child, :func:`_warm_child`, as the API runs: not the derive's): ``k``
    reads at random offsets over the log (caches filling), ``k`` more (steady), then ``k``
    within the last snapshot interval after one read there; p50/p99 in milliseconds."""
    from kmevents.replay.engine import Target

    from bench._stats import percentile
    from kmevents.api.timetravel import TimeTravel

    rng = random.Random(11)
    interval = 20_000  # the processors' default snapshot interval
    async with etcd_adapter.client(s.etcd) as c:
        tt = TimeTravel(s, c)
        try:
            slowest: dict[str, str] = {}

            async def reads(offs: list[int], group: str = "") -> list[float]:
                lat = []
                for off in offs:
                    t = time.perf_counter()
                    r = await tt.state(s.cluster, 0, Target(offset=off))
                    lat.append((time.perf_counter() - t) * 1000)
                    assert r.end_offset == off
                    if group and lat[-1] == max(lat):
                        slowest[group] = _read_plan(tt, lat[-1])
                return lat

            first = await reads([rng.randrange(n) for _ in range(k)], "first")
            steady = await reads([rng.randrange(n) for _ in range(k)], "steady")
            lo = max(0, n - interval)
            window = [lo + rng.randrange(n - lo) for _ in range(k + 1)]
            await reads(window[:1])
            win = await reads(window[1:], "win")
        finally:
            await tt.close()
    from kmevents.replay.collector import COLLECTOR

    settings = (f"TimeTravel defaults: {s.api.replay_state_cache_entries} held states, one held every "
                f"{s.api.replay_state_every:,} offsets, {s.api.replay_record_cache_mib} MiB of records; "
                f"the collector's full passes {COLLECTOR.sweeps} ({COLLECTOR.sweep_seconds * 1000:.0f} ms in all); "
                f"peak RSS {_vmhwm_mib():.0f} MiB (a fresh process, as the API)")
    return [
        _result("point in time, warm API path, within the last snapshot interval (p99)", percentile(win, 0.99), "ms",
                f"p99 <= {aim:g} ms at the {profile} profile", percentile(win, 0.99) <= aim,
                f"p50 {percentile(win, 0.5):.0f} ms; {len(win)} reads in [{lo:,}, {n - 1:,}] after one there; "
                f"the slowest: {slowest['win']}; {settings}"),
        _result("point in time, warm API path, anywhere in the log after earlier reads (p99)", percentile(steady, 0.99),
                "ms", f"p99 <= {aim:g} ms at the {profile} profile", percentile(steady, 0.99) <= aim,
                f"p50 {percentile(steady, 0.5):.0f} ms; {len(steady)} reads at random offsets after {k} others; "
                f"the slowest: {slowest['steady']}"),
        _result("point in time, warm API path, first reads of a fresh process (p99)", percentile(first, 0.99), "ms",
                "(caches filling)", None, f"p50 {percentile(first, 0.5):.0f} ms; {len(first)} reads at random offsets; "
                f"the slowest: {slowest['first']}"),
    ]


def _read_plan(tt: Any, ms: float) -> str:
    """How a read was built (``TimeTravel.last_plan``) and where its time went (``last_timing``)."""
    plan = tt.last_plan
    stages = ", ".join(f"{k} {v * 1000:.0f}" for k, v in sorted(tt.last_timing.items(), key=lambda kv: -kv[1]))
    return (f"{ms:.0f} ms at offset {plan.get('end'):,} from {plan.get('from')} at {plan.get('from_offset')}, "
            f"{plan.get('records'):,} records folded, {plan.get('loads')} stored states loaded ({stages} ms)")
