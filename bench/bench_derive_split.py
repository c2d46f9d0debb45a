"""Where the derive worker's CPU goes, feature by feature, with no I/O (issues 6 and 17).

    python -m bench.run derive_split [--quick]
    KMEVENTS_BENCH_PROFILE=large python -m bench.run derive_split [--quick]

``bench derive`` measures the worker end to end against a real Kafka and etcd: its figure moves
with the machine and the servers. This one measures the same per-record path in one process,
in CPU time, so that what each feature costs can be told apart from noise:
``PartitionDeriver.process`` over the simulator's default profile (one cluster, batches of
10,000 records, ``until_due`` as the worker calls it), with every due snapshot, delta and versions
record built and compressed as the worker does (``snapshots.compress`` at the worker's levels; the
worker compresses in threads, here it counts in the one process), and the etcd transaction replaced by a
stub that accepts it (so this is a profile of the fold and of what the worker builds around it,
never a stand-in for the integration tests or for ``bench derive``).

``KMEVENTS_BENCH_PROFILE=large``: the large profile's log instead (``bench/large_log.py``, the shape
of the 12,500-machine trace at ``--scale 0.2``: 300,000 events, its first ~65,000 the attach; quick
150,000), where the state a full snapshot writes is ~25x the default profile's.

Configurations, each from an empty state over the same records, alternated, best of two rounds:

- ``worker``: the defaults (touched-entity index, entity versions, host directory, a full
  snapshot every 20,000 events and a delta every 4,000);
- ``no snapshots``: no full snapshot nor delta;
- ``no versions``: the index and directory without the versions records;
- ``no index``: neither the index, the directory nor the versions;
- ``fold + etcd values``: none of these, only the fold and the values of the keys written.

Baseline, same run: ``Fold.step`` over the same records (chain link, decode, apply), the part
of the path every reader of the log pays. Each row's ratio is its rate over the fold's: what the
worker keeps of the fold's speed. The aim is issue 6's 20,000 events/s, i.e. at most 50 us of
CPU an event for everything, I/O included.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import namedtuple
from typing import Any

from kmevents.processors.derive import PartitionDeriver

from kmevents.contract import encode, validate_event
from kmevents.folding import Fold
from kmevents.reducer import ClusterState
from kmevents.reducer.apply import collect_rarely
from kmevents.settings import load
from kmevents.simulate import generate
from kmevents.store import snapshots as snapshot_store
from kmevents.store import versions as versions_store

_Record = namedtuple("_Record", "partition offset key value")
CLUSTER = "split"
BATCH = 10_000
CONFIGS: dict[str, dict[str, Any]] = {
    "worker": {},
    "no snapshots": {"snapshot_every_events": 10**12, "delta_every_events": 0},
    "no versions": {"versions": False},
    "no index": {"touched_every_events": 0},
    "fold + etcd values": {"touched_every_events": 0, "snapshot_every_events": 10**12, "delta_every_events": 0},
}


class _NoEtcd(PartitionDeriver):
    """The deriver with its checkpoint-guarded transaction accepted at once (no etcd)."""

    revision = 1
    ops = 0

    async def _guarded_txn(self, ops: dict[bytes, bytes | None], *, moves_checkpoint: Any) -> tuple[bool, int]:
        self.ops += len(ops)
        self.revision += 1
        return True, self.revision


async def _derive(records: list[_Record], **kw: Any) -> tuple[float, dict[str, int]]:
    d = _NoEtcd(load(), None, 0, worker_id="bench", **kw)  # type: ignore[arg-type]
    snapshots = deltas = 0
    t0 = time.process_time()
    for i in range(0, len(records), BATCH):
        rest = records[i:i + BATCH]
        while True:
            out = await d.process(rest, until_due=True)
            for _, _, _, raw in out.versions:
                snapshot_store.compress(raw, versions_store.LEVEL)  # as DeriveWorker._store_versions
            for cluster in out.snapshots_due:
                got = d.snapshot_encoder(cluster)
                assert got is not None
                offset, _, _, build = got
                snapshot_store.compress(build())  # the worker's level, as it stores snapshots
                d.mark_base(cluster, offset)
                snapshots += 1
            for cluster in out.deltas_due:
                got = d.snapshot_encoder(cluster, delta=True)
                if got is not None:
                    snapshot_store.compress(got[3]())
                    deltas += 1
            if out.consumed >= len(rest):
                break
            rest = rest[out.consumed:]
    return time.process_time() - t0, {"ops": d.ops, "snapshots": snapshots, "deltas": deltas}


def _fold(records: list[_Record], cluster: str = CLUSTER) -> float:
    f = Fold(ClusterState.empty(cluster), partition=0)
    t0 = time.process_time()
    for r in records:
        f.step(r.offset, r.key, r.value)
    return time.process_time() - t0


def _large_records(n: int) -> list[_Record]:
    """The first ``n`` events of the large profile's 300,000-event log at scale 0.2, as records."""
    import orjson

    from bench.large_log import CLUSTER as LARGE
    from bench.large_log import large_log

    out: list[_Record] = []
    key = LARGE.encode()
    with open(large_log(300_000, scale=0.2).path, "rb") as f:
        for i, line in zip(range(n), f, strict=False):
            out.append(_Record(0, i, key, encode(validate_event(orjson.loads(line))[0])))
    return out


def run(quick: bool) -> list[dict]:
    profile = os.environ.get("KMEVENTS_BENCH_PROFILE", "default")
    if profile not in ("default", "large"):
        raise SystemExit(f"KMEVENTS_BENCH_PROFILE={profile!r}: use default or large")
    collect_rarely()  # the worker's GC setting (DeriveWorker.start)
    if profile == "large":
        from bench.large_log import CLUSTER as LARGE

        n = 150_000 if quick else 300_000
        cluster = LARGE  # (a fold folds only its own cluster's events)
        records = _large_records(n)
    else:
        n = 30_000 if quick else 100_000
        cluster = CLUSTER
        key = CLUSTER.encode()
        records = [_Record(0, i, key, encode(validate_event(e)[0])) for i, e in enumerate(generate(CLUSTER, 1, n))]
    best: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    fold = float("inf")
    for _ in range(2):
        fold = min(fold, _fold(records, cluster))
        for name, kw in CONFIGS.items():
            took, counts[name] = asyncio.run(_derive(records, **kw))
            best[name] = min(best.get(name, float("inf")), took)
    fold_rate = n / fold
    rows = []
    for name in CONFIGS:
        rate = n / best[name]
        c = counts[name]
        rows.append({
            "name": f"derive path, {name}: {n:,} events of the {profile} profile, CPU, no I/O",
            "figure": rate, "unit": "events/s",
            "baseline": "Fold.step alone (link + decode + apply) over the same records, same run",
            "baseline_figure": fold_rate, "ratio": rate / fold_rate,
            "aim": ">= 20,000 events/s (issue 6), I/O included" if name == "worker" else "",
            "met": rate >= 20_000 if name == "worker" else None,
            "notes": (f"{1e6 * best[name] / n:.1f} us an event against the fold's {1e6 * fold / n:.1f}; "
                      f"{c['ops']:,} etcd ops, {c['snapshots']} snapshots, {c['deltas']} deltas"),
        })
    return rows
