"""A fold from the start of the log, split over processes (``kmevents verify --jobs N``).

A verify that folds the whole log (``--full``, or the first run) is one fold on one core: at
the large profile 1.5 million records, a minute of CPU before any snapshot is compared. The
worker's full snapshots cut the log into pieces that can be checked side by side, each by
its own process (``spawn``: a fresh interpreter, nothing forked from this one's gRPC or
Kafka clients):

- the log is cut at ``jobs - 1`` full snapshots ``S1 < S2 < ...`` before the checkpoint,
  into segments of about even work (:func:`cuts`: a record weighs more where the state is
  larger, as the snapshots and deltas checked there cost more);
- segment 0 folds from the start of the log to S1, checking every snapshot, delta and
  anchor on the way, S1 included: its content equal to the fold and its chain head equal to
  the log's chain there;
- segment i folds from the *stored* state of Si, with the chain head its index entry
  records, to S(i+1); the last one to the end of the log, and it compares etcd with its state
  at the checkpoint (``verify.Compare``) while the other segments still fold: the cuts count
  that comparison as work of the last segment, so it folds fewer records
  (:data:`COMPARE_BYTES_PER_WEIGHT`);
- every segment runs in a child process, started with glibc's malloc asking for transparent
  huge pages and keeping a stored snapshot's buffers in its heap (:func:`child_env`), and this
  process waits for them;
- the result is the one-process fold's **only if every cut verified**: Si equal to the fold
  of segment i-1 and the log's chain there equal to the entry's. Then the fold from Si is
  the fold from the start (the state is the same), and the chain is followed end to end
  (each segment's starts where the previous one's was checked). When a cut did not verify
  (a damaged or differing snapshot), the segments after it proved nothing: :func:`split_pass`
  returns None and the caller folds the whole log in one process, which reports the snapshot.

Memory: every child holds one state of the cluster (the last one also a page or two of etcd
while it compares), so the peak of the whole run is about ``jobs`` times a one-process verify's
fold; this process holds no state.

Huge pages: a segment's fold decompresses every stored snapshot it checks (~116 MB each at the
large profile), reads them from Kafka and builds large lists; each such buffer is fresh memory
from the kernel, 4 KiB a page fault: 4.5 million faults in a ``verify --full`` of 1.5M records.
With ``glibc.malloc.hugetlb=1`` (glibc >= 2.35; a no-op elsewhere, or when the kernel's
transparent huge pages are ``never`` or ``always``) malloc asks for 2 MiB pages with
``madvise``: 0.8 million faults, and 1-3 % less user time (BENCHMARKS.md).

The heap: a buffer above glibc's mmap threshold (32 MiB at most, as it adapts) is fresh pages
from the kernel each time, zeroed as they are touched, and given back when freed. Every stored
snapshot a segment checks is decompressed into one (~108 MB); with
``glibc.malloc.mmap_threshold`` at 256 MiB they come from the heap, and the next snapshot reuses
the pages the last one freed: 1.5-3.6 s less of a ``verify --full``'s ~60 s at the large profile,
for ~100-140 MiB more in each child (898-936 MiB the largest, against 792-799; BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from kmevents.replay.sources import KafkaSource
from kmevents.replay.verify import Checks, Compare, PassResult, Report, compare_state, fold_pass

from kmevents.adapters import etcd as etcd_adapter
from kmevents.reducer import REDUCER_VERSION
from kmevents.reducer.apply import collect_rarely
from kmevents.settings import Settings
from kmevents.store.snapshots import SnapshotStore, is_delta

#: The fewest offsets a segment should span: below that, starting a process and loading a
#: state costs more than the fold it takes off the parent (a state loads in ~1 s at the large
#: profile, and the fold runs at ~20-40k records a second).
SEGMENT_MIN_OFFSETS = 150_000
#: At most this many processes by default (``--jobs`` may ask for more).
MAX_DEFAULT_JOBS = 4


def default_jobs(span: int) -> int:
    """Processes for a fold over ``span`` offsets: one per core, one per ``SEGMENT_MIN_OFFSETS``."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_JOBS, span // SEGMENT_MIN_OFFSETS))


#: What a record of the log weighs in a segment's cost, over the one it would have in an empty
#: state: 1 + the state's size there (its full snapshots' ``bytes``, in between on a line)
#: over this. The fold of a record costs about the same at any size; checking the snapshots
#: and deltas on the way grows with the state (at the large profile's 1.5M records ~60 s of
#: the fold against ~95 s of checks, BENCHMARKS.md; at 300k a segment from 140k to 300k took
#: 1.38x the CPU of the one before it, for 1.14x its records).
STATE_BYTES_PER_WEIGHT = 64 << 20
#: What the last segment's comparison with etcd weighs: the state's size at the last full
#: snapshot over this. Measured at the large profile's 1.5M records: the comparison took 6.2 s
#: (377k keys, etcd's work and this side's), as long as ~75,000 records of the last
#: segment's fold there (~180,000 of weight at ~2.4 each) for a 116 MB state. That made the last
#: segment end 5.6-5.7 s after the first (its wait on etcd while both cores are busy counts too);
#: at 360 the two end within 0.2-1.3 s of each other and the whole run is 2.3-3.1 s shorter
#: (BENCHMARKS.md, "verify --full: the last segment's comparison weighed by its wall").
COMPARE_BYTES_PER_WEIGHT = 360
#: The tunable that has glibc's malloc ask for transparent huge pages (see the module docstring).
HUGE_PAGES = "glibc.malloc.hugetlb=1"
#: The tunable that keeps buffers up to 256 MiB in glibc's heap (see the module docstring).
HEAP_BUFFERS = "glibc.malloc.mmap_threshold=268435456"
#: What the children are started with.
TUNABLES = (HUGE_PAGES, HEAP_BUFFERS)


@contextlib.contextmanager
def child_env() -> Iterator[None]:
    """While processes are started: ``GLIBC_TUNABLES`` with :data:`TUNABLES` added to what it
    holds (a tunable already set there is kept as it is). Glibc reads it when a process starts,
    so it can only be given to children; this process's environment is put back after."""
    was = os.environ.get("GLIBC_TUNABLES")
    mine = [t for t in TUNABLES if f"{t.split('=')[0]}=" not in (was or "")]
    if not mine:
        yield
        return
    os.environ["GLIBC_TUNABLES"] = ":".join([was, *mine] if was else mine)
    try:
        yield
    finally:
        if was is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = was


def cuts(entries: list[dict[str, Any]], first: int, checkpoint: int, jobs: int,
         *, compare: bool = False) -> list[dict[str, Any]]:
    """The full snapshots to cut the log at (offsets strictly between ``first`` and
    ``checkpoint``, of this reducer version, with a chain head): the one nearest each
    ``i / jobs`` of the log's weight up to the checkpoint (:func:`weights`: its offsets when the
    entries say no size), sorted, each at most once (fewer cuts when there are fewer
    snapshots). ``compare``: the last segment also compares etcd (its weight counted in,
    :data:`COMPARE_BYTES_PER_WEIGHT`)."""
    fulls = sorted((e for e in entries if not is_delta(e) and e.get("chain")
                    and int(e.get("reducer_version", REDUCER_VERSION)) == REDUCER_VERSION
                    and first < int(e["offset"]) < checkpoint), key=lambda e: int(e["offset"]))
    if jobs < 2 or not fulls:
        return []
    at = weights(entries, first, [int(e["offset"]) for e in fulls] + [checkpoint])
    total = at[-1] + (compare_weight(entries, checkpoint) if compare else 0.0)
    chosen: dict[int, dict[str, Any]] = {}
    for i in range(1, jobs):
        aim = total * i / jobs
        j = min(range(len(fulls)), key=lambda j: abs(at[j] - aim))
        chosen[int(fulls[j]["offset"])] = fulls[j]
    return [chosen[o] for o in sorted(chosen)]


def compare_weight(entries: list[dict[str, Any]], checkpoint: int) -> float:
    """The weight of comparing etcd at ``checkpoint``: the size of the last full snapshot at or
    before it over :data:`COMPARE_BYTES_PER_WEIGHT` (0 when no entry says a size)."""
    sized = [(int(e["offset"]), int(e["bytes"])) for e in entries
             if not is_delta(e) and type(e.get("bytes")) is int and int(e["offset"]) <= checkpoint]
    return max(sized)[1] / COMPARE_BYTES_PER_WEIGHT if sized else 0.0


def weights(entries: list[dict[str, Any]], first: int, offsets: list[int]) -> list[float]:
    """The weight of the log from ``first`` to each of ``offsets`` (ascending): each record 1 +
    the state's size there over :data:`STATE_BYTES_PER_WEIGHT`, the size a line through the
    full snapshots' ``bytes`` (0 at ``first``; the last one's after it)."""
    sized = sorted((int(e["offset"]), int(e["bytes"])) for e in entries
                   if not is_delta(e) and type(e.get("bytes")) is int and int(e["offset"]) > first)
    points = [(first, 0), *sized]

    def size_at(x: int) -> float:
        i = bisect_right(points, (x, float("inf"))) - 1
        if i + 1 >= len(points):
            return float(points[i][1])
        (x0, s0), (x1, s1) = points[i], points[i + 1]
        return s0 + (s1 - s0) * (x - x0) / (x1 - x0)

    out: list[float] = []
    w, x = 0.0, first
    for o in offsets:
        # trapezoids between the points the way crosses (the size is a line between them)
        stops = [p for p, _ in points if x < p < o] + [o]
        for p in stops:
            w += (p - x) * (1 + (size_at(x) + size_at(p)) / 2 / STATE_BYTES_PER_WEIGHT)
            x = p
        out.append(w)
    return out


def _plain(res: PassResult) -> dict[str, Any]:
    """What the parent needs of a child's pass (no state: it stays in the child)."""
    return {"head_at": res.head_at, "snapshot_mismatch": res.snapshot_mismatch,
            "snapshots_equal": res.snapshots_equal, "deltas_by_changes": res.deltas_by_changes,
            "full_by_changes": res.full_by_changes, "end_head": res.end_head, "last_offset": res.last_offset,
            "last_ts": res.last_ts, "records": res.records, "annotations": dict(res.annotations), "bad": res.bad}


def _segment_child(settings: Settings, topic: str, partition: int, cluster: str, generation: str,
                   begin: dict[str, Any] | None, until: int | None, entries: list[dict[str, Any]],
                   anchor_offsets: set[int], last: tuple[int | None, bool] | None = None,
                   compare: Compare | None = None) -> dict[str, Any]:
    """One segment in a child process (its own event loop, etcd client and Kafka consumer)."""
    collect_rarely()
    return asyncio.run(_segment(settings, topic, partition, cluster, generation, begin, until, entries,
                                anchor_offsets, last, compare))


async def _segment(settings: Settings, topic: str, partition: int, cluster: str, generation: str,
                   begin: dict[str, Any] | None, until: int | None, entries: list[dict[str, Any]],
                   anchor_offsets: set[int], last: tuple[int | None, bool] | None = None,
                   compare: Compare | None = None) -> dict[str, Any]:
    """One segment's pass: from the stored state of ``begin`` (None: the log's start) to
    ``until``; the last segment (``last``: the whole pass's checkpoint offset and whether it
    keeps its state) to the end of the log, then ``compare``, the comparison with etcd at the
    checkpoint."""
    async with etcd_adapter.client(settings.etcd) as c:
        store = SnapshotStore(settings, c, generation)
        if last is None:
            checks = Checks(snapshot_entries=entries, snapshots=store, anchor_offsets=anchor_offsets,
                            keep_state=False, until=until)
        else:
            checkpoint_offset, keep_state = last
            checks = Checks(checkpoint_offset=checkpoint_offset, snapshot_entries=entries, snapshots=store,
                            anchor_offsets=anchor_offsets, keep_state=keep_state and compare is not None)
        if begin is not None:
            st = await store.load(begin)
            if st is None:
                return {"unusable": int(begin["offset"])}
            checks.begin = (int(begin["offset"]), str(begin["chain"]), st)
        res = await fold_pass(KafkaSource(settings.kafka, topic, partition, cluster), cluster, checks)
        out = _plain(res)
        if compare is not None and res.expected is not None:
            report = Report()
            await compare_state(report, cluster, c, compare.sp, res.expected, compare.revision, res.ahead)
            out["compared"] = (report.findings, report.checked_keys)
        return out


async def split_pass(settings: Settings, src: KafkaSource, cluster: str, generation: str,
                     checks: Checks, at: list[dict[str, Any]],
                     compare: Compare | None = None) -> PassResult | None:
    """``fold_pass(src, cluster, checks)`` cut at the full snapshots ``at`` (see the module
    docstring), every segment in a child process; with ``compare`` the last one also compares
    etcd (the result's ``compared``, its ``expected`` None). None when a cut did not verify, or
    a segment's state could not be loaded."""
    ctx = multiprocessing.get_context("spawn")
    starts: list[dict[str, Any] | None] = [None, *at]
    ends: list[int | None] = [int(e["offset"]) for e in at] + [None]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=len(starts), mp_context=ctx) as pool:
        with child_env():
            children = [loop.run_in_executor(pool, _segment_child, settings, src.topic, src.read_partition, cluster,
                                             generation, starts[i], ends[i], checks.snapshot_entries,
                                             checks.anchor_offsets,
                                             (checks.checkpoint_offset, checks.keep_state) if i == len(at) else None,
                                             compare if i == len(at) else None)
                        for i in range(len(starts))]
        try:
            parts = await asyncio.gather(*children)
        except BaseException:
            for f in children:
                f.cancel()
            raise
    *cut_parts, last = parts
    if "unusable" in last:
        return None
    for cut, part in zip(at, cut_parts, strict=True):
        off = int(cut["offset"])
        if ("unusable" in part or off not in part["snapshots_equal"] or off in part["snapshot_mismatch"]
                or part["head_at"].get(off) != cut["chain"]):
            return None
    mine = PassResult(last["head_at"], None, {}, last["snapshot_mismatch"], last["end_head"], last["last_offset"],
                      last["last_ts"], last["records"], Counter(last["annotations"]), dict(last["bad"]),
                      list(last["snapshots_equal"]), last["deltas_by_changes"], last["full_by_changes"])
    if "compared" in last:
        findings, keys = last["compared"]
        mine.compared = (list(findings), int(keys))
    merged_annotations: Counter[str] = Counter()
    for part in cut_parts:
        mine.head_at.update(part["head_at"])
        mine.snapshot_mismatch.update(part["snapshot_mismatch"])
        mine.snapshots_equal.extend(part["snapshots_equal"])
        mine.deltas_by_changes += part["deltas_by_changes"]
        mine.full_by_changes += part["full_by_changes"]
        mine.records += part["records"]
        merged_annotations.update(part["annotations"])
        for k, v in part["bad"].items():
            mine.bad[k] = mine.bad.get(k, 0) + v
    mine.annotations.update(merged_annotations)
    mine.snapshots_equal.sort()
    return mine
