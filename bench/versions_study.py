"""A study, not product code: "entity versions per block" as a store for ``history`` (issue 17).

The design measured: the worker, which marks per event which entities changed (``take_dirty``),
would also keep per block of ``BLOCK`` offsets each changed entity's canonical bytes after each
event that changed it (None once gone): ``{(kind, id): [(offset, bytes | None), ...]}``, one
compressed record per block. History would read only the blocks the touched index names and take
the versions from them: no snapshot load, no fold. This script folds the large profile's log
(bench/large_log.py) with that capture and reports:

1. storage: the records' bytes against the log's, per block (median, p99), per version; zstd
   level 3 per kind section, and the same with a dictionary per kind trained on early blocks;
2. capture cost: CPU per event of the fold with and without the capture, alternated in one
   process (``--ab N``: the first N events of the quick profile, scale 0.2; with ``--ab-after M``
   the N events after the full-size log's first M, each run on a fork of the state at M);
3. read cost: for 5 pods whose versions lie in >= 4 blocks far apart, the time to decompress the
   blocks that name them and pick their versions; and the same for the whole set a history relates
   (the pod, its tasks, their offers, and the events carrying their correlation ids).

A block record is one zstd frame per kind (``encode``: per entity, sorted by id, its id and its
versions, length-prefixed), plus an ``_entries`` frame: per event, the fields a history entry
shows that are not entity values (``entry``), so that the records could serve a history alone.

    python -m bench.versions_study                    # full size (1.5M events, ~100 s CPU)
    python -m bench.versions_study --scale 0.2        # the quick profile (300k events)
    python -m bench.versions_study --ab 300000 --skip-full   # only the alternated capture cost
    python -m bench.versions_study --ab 300000 --ab-after 600000 --skip-full   # the same at full size
    python -m bench.versions_study --kafka 127.0.0.1:PORT     # and fetch the records from a scratch broker

Prints a JSON report (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import zstandard
from kmevents.replay.history import _reason

from bench.large_log import large_log
from kmevents.reducer import ClusterState, apply, few_collections

Key = tuple[str, str]
Versions = list[tuple[int, bytes | None]]

BLOCK = 1_000
LEVEL = 3
ENTRIES = "_entries"
DICT_BYTES = 64 * 1024
#: blocks whose values train the dictionaries: the log's first ones (a worker has no others)
TRAIN_BLOCKS = 100
_HEAD = struct.Struct("<HH")  # id length, number of versions
_VER = struct.Struct("<HI")  # offset - block's first, value length (GONE: removed)
GONE = 0xFFFFFFFF
_U32 = struct.Struct("<I")
#: max.message.bytes of the study's topic (the local broker takes up to the snapshots topic's 8 MiB)
MAX_RECORD = 8 * 1024 * 1024


def encode(first: int, items: Iterable[tuple[str, Versions]]) -> bytes:
    out = bytearray()
    for id, vs in sorted(items):
        b = id.encode()
        out += _HEAD.pack(len(b), len(vs))
        out += b
        for off, v in vs:
            out += _VER.pack(off - first, GONE if v is None else len(v))
            if v is not None:
                out += v
    return bytes(out)


def decode(data: bytes, first: int) -> Iterator[tuple[str, Versions]]:
    pos, n = 0, len(data)
    while pos < n:
        ln, k = _HEAD.unpack_from(data, pos)
        pos += 4
        id = data[pos:pos + ln].decode()
        pos += ln
        vs: Versions = []
        for _ in range(k):
            off, vl = _VER.unpack_from(data, pos)
            pos += 6
            if vl == GONE:
                vs.append((first + off, None))
            else:
                vs.append((first + off, data[pos:pos + vl]))
                pos += vl
        yield id, vs


def entry(offset: int, ev: dict[str, Any], anns: list[dict[str, Any]]) -> list[Any]:
    """What a history entry shows of the event itself (replay/history.py ``collect``; the Kafka
    timestamp, ``recorded_at``, is not in a file: 8 more bytes)."""
    return [offset, ev.get("event_id"), ev.get("type"), ev.get("occurred_at"), ev.get("actor"),
            ev.get("correlation_id"), ev.get("causation_id"), _reason(ev),
            [[a.get("kind"), a.get("message")] for a in anns]]


def needles(key: Key) -> list[int]:
    """What the touched index would name a block by for this version (a stand-in: Python hashes)."""
    out = [hash(key)]
    if key[0] == "task":
        out.append(hash(("task#", key[1].rsplit("/", 1)[-1])))
    return out


@dataclass
class Block:
    first: int
    sections: dict[str, bytes]  # kind (or ENTRIES) -> zstd frame
    raw: dict[str, int]  # kind -> bytes before compression
    versions: int
    keys: set[int] = field(default_factory=set)  # the touched index's role (``needles``, correlation ids)


@dataclass
class Capture:
    """The worker's side of the design: the versions of the block being filled, then its record."""

    entries: bool = True
    index: bool = True
    cctx: Any = field(default_factory=lambda: zstandard.ZstdCompressor(level=LEVEL))
    versions: dict[Key, Versions] = field(default_factory=dict)
    rows: list[list[Any]] = field(default_factory=list)
    corrs: set[str] = field(default_factory=set)

    def event(self, st: ClusterState, offset: int, ev: dict[str, Any], anns: list[dict[str, Any]]) -> None:
        got = self.versions
        for key in st.take_dirty():
            v = got.get(key)
            if v is None:
                v = got[key] = []
            v.append((offset, st.entity_bytes(*key)))
        if self.entries:
            self.rows.append(entry(offset, ev, anns))
            c = ev.get("correlation_id")
            if c:
                self.corrs.add(str(c))

    def close(self, first: int) -> Block:
        by_kind: dict[str, list[tuple[str, Versions]]] = {}
        n = 0
        keys: set[int] = set()
        for key, vs in self.versions.items():
            by_kind.setdefault(key[0], []).append((key[1], vs))
            n += len(vs)
            if self.index:
                keys.update(needles(key))
        raws = {k: encode(first, items) for k, items in by_kind.items()}
        if self.entries:
            raws[ENTRIES] = orjson.dumps(self.rows)
            keys.update(hash(("corr", c)) for c in self.corrs)
        b = Block(first, {k: self.cctx.compress(r) for k, r in raws.items()}, {k: len(r) for k, r in raws.items()},
                  n, keys)
        self.versions, self.rows, self.corrs = {}, [], set()
        return b


def lines_of(path: Any, limit: int | None = None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                return
            yield line


def fold(lines: Iterable[bytes], cluster: str, cap: Capture | None, *, timed: bool = False,
         pods: dict[str, list[int]] | None = None, state: ClusterState | None = None,
         start: int = 0) -> tuple[list[Block], dict[str, float]]:
    """Fold ``lines`` (offsets from ``start``, a multiple of ``BLOCK``, onto ``state``, default
    empty); with ``cap``, capture every block's versions. Without, the dirty set is taken once a
    block, as the worker takes it once a batch. ``timed``: CPU of the capture's parts (adds two
    clock reads an event). ``pods``: each pod's blocks, filled."""
    st = ClusterState.empty(cluster) if state is None else state
    loads, clock = orjson.loads, time.thread_time_ns
    blocks: list[Block] = []
    t = {"fold": 0.0, "capture": 0.0, "close": 0.0, "bytes": 0.0}
    c0 = time.process_time()
    with few_collections():
        for off, line in enumerate(lines, start):
            t["bytes"] += len(line)
            ev = loads(line)
            anns = apply(st, ev, partition=0, offset=off)
            if cap is None:
                if off % BLOCK == BLOCK - 1:
                    st.take_dirty()
                continue
            if timed:
                a = clock()
                cap.event(st, off, ev, anns)
                t["capture"] += clock() - a
            else:
                cap.event(st, off, ev, anns)
            if off % BLOCK == BLOCK - 1:
                a = clock() if timed else 0
                if pods is not None:
                    for k in cap.versions:
                        if k[0] == "pod":
                            pods.setdefault(k[1], []).append(len(blocks))
                blocks.append(cap.close(off - BLOCK + 1))
                if timed:
                    t["close"] += clock() - a
        if cap is not None and cap.versions:
            blocks.append(cap.close(off - off % BLOCK))
    t["fold"] = (time.process_time() - c0) * 1e9
    t["events"] = off + 1 - start
    return blocks, {k: v / 1e9 if k in ("fold", "capture", "close") else v for k, v in t.items()}


def pct(xs: list[int], q: float) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def storage(blocks: list[Block], log_bytes: int, events: int) -> dict[str, Any]:
    """Sizes with zstd level 3 per section, then with a dictionary per kind (and the time to compress with it)."""
    dctx = zstandard.ZstdDecompressor()
    kinds = sorted({k for b in blocks for k in b.sections})
    samples: dict[str, list[Any]] = {k: [] for k in kinds}
    for b in blocks[:TRAIN_BLOCKS]:
        for k, s in b.sections.items():
            raw = dctx.decompress(s)
            if k == ENTRIES:
                samples[k].extend(orjson.dumps(r) for r in orjson.loads(raw))
            else:
                samples[k].extend(v for _, vs in decode(raw, b.first) for _, v in vs if v is not None)
    cctxs: dict[str, Any] = {}
    for k in kinds:
        if len(samples[k]) >= 100:
            d = zstandard.train_dictionary(DICT_BYTES, samples[k][:50_000])
            cctxs[k] = zstandard.ZstdCompressor(level=LEVEL, dict_data=d)
    plain = [sum(len(s) for s in b.sections.values()) for b in blocks]
    versions_only = [sum(len(s) for k, s in b.sections.items() if k != ENTRIES) for b in blocks]
    c0 = time.process_time()
    with_dict = []
    by_kind: dict[str, list[int]] = {k: [0, 0, 0] for k in kinds}  # raw, plain, dict
    for b in blocks:
        n = 0
        for k, s in b.sections.items():
            raw = dctx.decompress(s)
            size = len(cctxs[k].compress(raw)) if k in cctxs else len(s)
            n += size
            by_kind[k][0] += len(raw)
            by_kind[k][1] += len(s)
            by_kind[k][2] += size
        with_dict.append(n)
    recompress = time.process_time() - c0
    versions = [b.versions for b in blocks]
    nv = sum(versions)
    raw_versions = sum(v for b in blocks for k, v in b.raw.items() if k != ENTRIES)
    late = slice(TRAIN_BLOCKS, None)  # blocks the dictionaries did not see
    return {
        "blocks": len(blocks), "log_bytes": log_bytes, "log_bytes_per_event": round(log_bytes / events),
        "versions": nv, "versions_per_block": {"median": statistics.median(versions), "p99": pct(versions, 0.99),
                                               "max": max(versions)},
        "versions_raw_bytes": raw_versions, "raw_bytes_per_version": round(raw_versions / nv),
        "zstd3": {"total": sum(plain), "of_log": round(sum(plain) / log_bytes, 4),
                  "versions_only": sum(versions_only), "versions_only_of_log": round(sum(versions_only) / log_bytes, 4),
                  "block_median": statistics.median(plain), "block_p99": pct(plain, 0.99), "block_max": max(plain),
                  "versions_block_median": statistics.median(versions_only),
                  "versions_block_p99": pct(versions_only, 0.99),
                  "bytes_per_version": round(sum(versions_only) / nv, 1)},
        "zstd3_dict": {"total": sum(with_dict), "of_log": round(sum(with_dict) / log_bytes, 4),
                       "untrained_blocks_total": sum(with_dict[late]), "untrained_plain": sum(plain[late]),
                       "block_median": statistics.median(with_dict), "block_p99": pct(with_dict, 0.99),
                       "cpu_decompress_and_recompress_all_s": round(recompress, 2)},
        "by_kind_raw_plain_dict": by_kind,
    }


def diff(a: bytes | None, b: bytes | None) -> bytes | None:
    """``b`` as a top-level JSON diff against ``a`` (``{"set": {...}, "del": [...]}``) when both exist."""
    if a is None or b is None:
        return b
    x, y = orjson.loads(a), orjson.loads(b)
    return orjson.dumps({"set": {k: v for k, v in y.items() if x.get(k, GONE) != v},
                         "del": [k for k in x if k not in y]}, option=orjson.OPT_SORT_KEYS)


def diff_estimate(blocks: list[Block], every: int = 10) -> dict[str, Any]:
    """Every ``every``-th block's version sections again, each version after an entity's first in
    the block stored as ``diff`` against the one before it: bytes raw and zstd, against the same
    blocks as they are, and the CPU of the diffs (a capture would pay it per version)."""
    dctx, cctx = zstandard.ZstdDecompressor(), zstandard.ZstdCompressor(level=LEVEL)
    raw = [0, 0]
    packed = [0, 0]
    cpu = 0.0
    n = 0
    for b in blocks[::every]:
        for k, s in b.sections.items():
            if k == ENTRIES:
                continue
            data = dctx.decompress(s)
            c0 = time.process_time()
            items = [(id, [vs[0]] + [(o, diff(vs[i - 1][1], v)) for i, (o, v) in enumerate(vs) if i])
                     for id, vs in decode(data, b.first)]
            cpu += time.process_time() - c0
            n += sum(len(vs) - 1 for _, vs in items)
            d = encode(b.first, items)
            raw[0] += len(data)
            raw[1] += len(d)
            packed[0] += len(s)
            packed[1] += len(cctx.compress(d))
    return {"blocks": len(blocks[::every]), "raw": raw[0], "raw_diffed": raw[1], "zstd3": packed[0],
            "zstd3_diffed": packed[1], "diffs": n, "us_per_diff": round(cpu / max(n, 1) * 1e6, 2)}


def links(kind: str, value: bytes | None) -> tuple[str | None, list[str], list[Key]]:
    """What a version relates (replay/history.py ``_link``): a pod's task id (its task entities are
    ``<framework>/<task id>``), correlation ids, keys."""
    if value is None or kind not in ("pod", "task"):
        return None, [], []
    v = orjson.loads(value)
    if kind == "pod":
        tid = str(v["task_id"]) if v.get("task_id") else None
        return tid, [c for c in (v.get("uid"), tid) if c], []
    oid = str(v["offer_id"]) if v.get("offer_id") else None
    return None, [oid] if oid else [], ([("pod", str(v["pod"]))] if v.get("pod") else []) + (
        [("offer", oid)] if oid else [])


def history(blocks: list[Block], target: Key, *, linked: bool) -> dict[str, Any]:
    """The entity's versions (``linked``: and those of what it relates, and the entries of the events
    touching them or carrying their correlation ids) from the blocks that name them, as history would."""
    dctx = zstandard.ZstdDecompressor()
    want_keys = {target}
    want_h = {hash(target)}
    task_ids: set[str] = set()
    corr: set[str] = set()
    got: dict[Key, Versions] = {}
    read: set[int] = set()
    sections = 0
    while True:
        todo = [i for i, b in enumerate(blocks) if i not in read and not want_h.isdisjoint(b.keys)]
        if not todo:
            break
        for i in todo:
            b = blocks[i]
            read.add(i)
            for kind in sorted({k for k, _ in want_keys} | ({"task"} if task_ids else set())):
                s = b.sections.get(kind)
                if s is None:
                    continue
                sections += 1
                for id, vs in decode(dctx.decompress(s), b.first):
                    key = (kind, id)
                    if key not in want_keys and not (kind == "task" and id.rsplit("/", 1)[-1] in task_ids):
                        continue
                    got.setdefault(key, []).extend(vs)
                    if not linked:
                        continue
                    for _, v in vs:
                        tid, cs, ks = links(kind, v)
                        if tid is not None and tid not in task_ids:
                            task_ids.add(tid)
                            want_h.add(hash(("task#", tid)))
                        for c in cs:
                            if c not in corr:
                                corr.add(c)
                                want_h.add(hash(("corr", c)))
                        for k in ks:
                            if k not in want_keys:
                                want_keys.add(k)
                                want_h.add(hash(k))
                    if kind == "task":
                        want_keys.add(key)
                        want_h.add(hash(key))
    entries = 0
    if linked:  # the events of the related versions, and those carrying a related correlation id
        offsets = {o for vs in got.values() for o, _ in vs}
        for i in sorted(read):
            s = blocks[i].sections.get(ENTRIES)
            if s is not None:
                sections += 1
                entries += sum(1 for r in orjson.loads(dctx.decompress(s)) if r[0] in offsets or r[5] in corr)
    return {"blocks": len(read), "read_blocks": sorted(read), "sections": sections, "keys": len(got),
            "versions": sum(len(v) for v in got.values()), "entries": entries}


#: the two 6-unit pods of "History of one entity at full size" (BENCHMARKS.md): 4.5-4.9 s CPU today
NAMED_PODS = ("default/db-migrate-2985-sz5hm", "default/backup-37803-9dn2g")


def read_cost(blocks: list[Block], pods: dict[str, list[int]], n: int = 5, span: int = 60) -> list[dict[str, Any]]:
    """``NAMED_PODS`` (when the log has them) and pods (seeded) whose versions lie in >= 4 blocks
    spanning >= ``span`` blocks (60: three snapshot intervals of 20,000 events), ``n`` in all."""
    spread = sorted(p for p, bs in pods.items() if len(set(bs)) >= 4 and bs[-1] - bs[0] >= span)
    chosen = [p for p in NAMED_PODS if p in pods]
    chosen += random.Random(17).sample(spread, min(n - len(chosen), len(spread)))
    out = []
    for p in chosen:
        row: dict[str, Any] = {"pod": p, "pod_blocks": sorted(set(pods[p]))}
        for linked in (False, True):
            best = None
            for _ in range(3):
                w, c = time.perf_counter(), time.process_time()
                r = history(blocks, ("pod", p), linked=linked)
                w, c = time.perf_counter() - w, time.process_time() - c
                best = (w, c) if best is None or w < best[0] else best
            assert best is not None
            row["linked" if linked else "alone"] = {**r, "wall_ms": round(best[0] * 1e3, 1),
                                                    "cpu_ms": round(best[1] * 1e3, 1)}
        out.append(row)
    return out


def agent_cost(blocks: list[Block]) -> dict[str, Any]:
    """One agent's own versions (an agent changes with every task and offer on it: named by most blocks)."""
    mid = next(b for b in blocks[len(blocks) // 2:] + blocks if "agent" in b.sections)
    aid = next(decode(zstandard.ZstdDecompressor().decompress(mid.sections["agent"]), mid.first))[0]
    w, c = time.perf_counter(), time.process_time()
    r = history(blocks, ("agent", aid), linked=False)
    r.pop("read_blocks")
    return {"agent": aid, **r, "wall_ms": round((time.perf_counter() - w) * 1e3, 1),
            "cpu_ms": round((time.process_time() - c) * 1e3, 1)}


def record(b: Block) -> bytes:
    """One block as one Kafka record's value: the sections' kinds and lengths (JSON), then the sections."""
    head = orjson.dumps([[k, len(s)] for k, s in b.sections.items()])
    return _U32.pack(len(head)) + head + b"".join(b.sections.values())


async def kafka_cost(bootstrap: str, blocks: list[Block], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every block as one record of a topic of one partition on the broker at ``bootstrap`` (a
    scratch stack), then, for each pod of ``rows``, the fetch of the records its linked history read,
    one after the other, through one open ``PartitionReader`` (as the API keeps one)."""
    from kmevents.adapters.kafka.clients import producer
    from kmevents.adapters.kafka.reader import PartitionReader
    from kmevents.adapters.kafka.topics import TopicSpec, ensure_topics
    from kmevents.settings import KafkaSettings

    k = KafkaSettings(bootstrap=bootstrap)
    topic = f"kmevents.study.versions.{int(time.time())}"
    await ensure_topics(k, [TopicSpec(topic, 1, 1, {"max.message.bytes": str(MAX_RECORD)})])
    p = producer(k, max_request_size=MAX_RECORD)
    await p.start()
    try:
        futs = [await p.send(topic, record(b), key=str(b.first).encode()) for b in blocks]
        base = (await futs[0]).offset
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    reader = PartitionReader(k, topic, 0)
    out: dict[str, Any] = {"topic": topic, "pods": []}
    try:
        first, _ = await reader.bounds()
        for row in rows:
            w, c, n, size = time.perf_counter(), time.process_time(), 0, 0
            for i in row["linked"]["read_blocks"]:
                async for recs in reader.batches(base + i, base + i, first=first):
                    n += len(recs)
                    size += sum(len(r.value or b"") for r in recs)
            out["pods"].append({"pod": row["pod"], "records": n, "bytes": size,
                                "wall_ms": round((time.perf_counter() - w) * 1e3, 1),
                                "cpu_ms": round((time.process_time() - c) * 1e3, 1)})
    finally:
        await reader.close()
    return out


def ab(path: Any, cluster: str, events: int, rounds: int = 2, after: int = 0) -> dict[str, Any]:
    """CPU per event of the plain fold, the capture (versions) and the capture with entries,
    alternated ``rounds`` times over the same lines held in memory: the log's first ``events``, or
    with ``after`` the ``events`` after its first ``after``, each run on a fork of the state there."""
    it = lines_of(path, after + events)
    base = None
    if after:
        base = ClusterState.empty(cluster)
        fold((next(it) for _ in range(after)), cluster, None, state=base)
        base.freeze()
    lines = list(it)
    res: dict[str, list[float]] = {"plain": [], "versions": [], "versions+entries": []}
    for _ in range(rounds):
        for mode in res:
            cap = None if mode == "plain" else Capture(entries=mode != "versions", index=False)
            st = None if base is None else base.fork()
            c0 = time.process_time()
            fold(lines, cluster, cap, state=st, start=after)
            res[mode].append(round((time.process_time() - c0) / len(lines) * 1e6, 2))
    return {"events": len(lines), "after": after, "us_per_event": res,
            "ratio_versions": round(min(res["versions"]) / min(res["plain"]), 3),
            "ratio_versions_entries": round(min(res["versions+entries"]) / min(res["plain"]), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.versions_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="1: 1.5M events; 0.2: 300k")
    p.add_argument("--ab", type=int, default=0, help="alternated capture cost over the quick profile's first N events")
    p.add_argument("--ab-after", type=int, default=0,
                   help="with --ab: the N events after this many of the full-size log (forks of the state there)")
    p.add_argument("--skip-full", action="store_true", help="only the alternated capture cost")
    p.add_argument("--limit", type=int, default=None, help="fold only the log's first N events (a smoke test)")
    p.add_argument("--span", type=int, default=60, help="blocks a chosen pod's versions span at least")
    p.add_argument("--kafka", default=None, help="bootstrap of a scratch broker: also time fetching the blocks")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    report: dict[str, Any] = {"started": time.strftime("%H:%M:%S", time.gmtime()), "load_start": _load()}
    if a.ab:
        ablog = large_log(300_000, scale=0.2) if not a.ab_after else large_log()
        report["capture_ab"] = ab(ablog.path, ablog.meta["recipe"]["cluster"], a.ab, after=a.ab_after)
        report["load_after_ab"] = _load()
    if not a.skip_full:
        log = large_log(1_500_000 if a.scale == 1 else int(1_500_000 * a.scale), scale=a.scale)
        pods: dict[str, list[int]] = {}
        blocks, t = fold(lines_of(log.path, a.limit), log.meta["recipe"]["cluster"], Capture(), timed=True, pods=pods)
        n = t["events"]
        report["fold"] = {"events": n, "cpu_s": round(t["fold"], 1),
                          "us_per_event_all": round(t["fold"] / n * 1e6, 2),
                          "us_per_event_capture_event": round(t["capture"] / n * 1e6, 2),
                          "us_per_event_block_close": round(t["close"] / n * 1e6, 2)}
        report["load_after_fold"] = _load()
        report["storage"] = storage(blocks, int(t["bytes"]), int(n))
        report["read"] = read_cost(blocks, pods, span=a.span)
        report["agent"] = agent_cost(blocks)
        report["diff"] = diff_estimate(blocks)
        records = [len(record(b)) for b in blocks]
        report["records"] = {"median": statistics.median(records), "p99": pct(records, 0.99), "max": max(records),
                             "over_1_MiB": sum(1 for r in records if r > 1 << 20)}
        if a.kafka:
            report["kafka"] = asyncio.run(kafka_cost(a.kafka, blocks, report["read"]))
    report["load_end"] = _load()
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["ended"] = time.strftime("%H:%M:%S", time.gmtime())
    text = json.dumps(report, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)
    return 0


def _load() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


if __name__ == "__main__":
    sys.exit(main())
