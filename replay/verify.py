"""Does etcd equal the fold of the log, and is the log the one we think? (``kmevents verify``)

For each cluster: read its ``current`` generation and the partition's checkpoint
there, then fold the cluster's records from the start of the log with the
reducer, in ONE pass, and check along the way:

- **state**: at the checkpoint offset, every entity key etcd holds for the
  cluster against the fold, key by key (missing / extra / different, with a
  field-level diff). A key whose ``mod_revision`` is newer than the
  checkpoint's was written after it: it is ``ahead`` (an oversized effect in
  flight, DESIGN.md rule 3) only if its value is what the cluster's next
  record after the checkpoint makes of it; anything else written after the
  checkpoint (a hand edit) is drift like any other.
- **chain**: the chain head at the checkpoint offset against the checkpoint's;
  every archive's chain against its header; anchors (``--anchor FILE``)
  against the log's chain at their offsets.
- **snapshots**: each snapshot index entry's chain against the log's chain at
  its offset, the bytes must load, and they must equal the fold's own
  snapshot at that offset.
- **reducer version**: a generation or checkpoint derived by another reducer
  version is reported as ``reducer_version`` ("derived by an older reducer"),
  not as drift: its keys are not compared (a rebuild, ``--repair``, is the fix).

Annotations of the fold are counted, not judged (exit 0 unless ``--strict``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.replay import archive, logsource
from kmevents.replay.diffing import field_changes
from kmevents.replay.snapshots import ArchiveSnapshots
from kmevents.replay.sources import ArchiveSource, KafkaSource, MergedSource, Source

from kmevents import chain, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.folding import BAD, UNDECODABLE, Fold
from kmevents.reducer import REDUCER_VERSION, ClusterState, SnapshotError
from kmevents.reducer.delta import Remembered, matches_delta, stored_format
from kmevents.reducer.snapshot import (
    FORMAT,
    FORMAT_3,
    FORMAT_4,
    FORMAT_5,
    dump,
    snapshot_document,
    snapshot_format,
)
from kmevents.reducer.snapshot_match import Held, match, track_from
from kmevents.settings import Settings
from kmevents.store import verified
from kmevents.store.checkpoint import partitions_of_clusters, read_checkpoint, read_checkpoints
from kmevents.store.generations import current_generation
from kmevents.store.snapshots import Snapshots, SnapshotStore, is_delta
from kmevents.timespec import iso_of_ms

#: findings that make a report unclean (exit 1): the state or the log is not what it should be,
#: readers are pointed at a derivation the workers do not keep (``current``), or a record
#: cannot be checked at all (``unverifiable``)
DRIFT_KINDS = ("missing", "extra", "different", "chain", "snapshot", "anchor", "current", "unverifiable",
               "versions")
ANCHOR_FORMAT = "kmevents.anchor/1"
_SORT = orjson.OPT_SORT_KEYS


@dataclass
class Finding:
    kind: str  # missing | extra | different | ahead | chain | snapshot | anchor | reducer_version | versions
    cluster: str
    key: str
    detail: str = ""
    changes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "cluster": self.cluster, "key": self.key, "detail": self.detail}
        if self.changes:
            d["changes"] = self.changes
        return d


@dataclass
class Report:
    checked_keys: int = 0
    checkpoints: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    annotations: dict[str, int] = field(default_factory=dict)
    heads: list[dict[str, Any]] = field(default_factory=list)  # the log's chain heads at its end (anchors)
    records: int = 0
    snapshots_checked: int = 0
    #: of those, deltas found equal to the fold's own changes since their base (no rebuild)
    deltas_by_changes: int = 0
    #: of those, full snapshots shown equal by the fold's changes since the full one before
    #: (snapshot_match.py), not value by value
    full_by_changes: int = 0
    anchors_checked: int = 0
    #: cluster -> the verified snapshot offset the fold started from (None: the start of the log)
    resumed_from: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: records in the log the fold could not use, by outcome (the worker dead-letters them)
    unfolded: dict[str, int] = field(default_factory=dict)
    #: cluster -> processes its fold from the start was split over (verify_split.py), when it was
    segments: dict[str, int] = field(default_factory=dict)
    #: what ``--versions`` checked of history's versions records (replay/verify_versions.py), when asked
    versions: dict[str, Any] | None = None
    #: what ``--versions`` checked of the workers' host directory (replay/verify_hosts.py), when asked
    host_directory: dict[str, Any] | None = None

    @property
    def drift(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in DRIFT_KINDS]

    @property
    def older_reducer(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "reducer_version"]

    @property
    def clean(self) -> bool:
        return not self.drift

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "checked_keys": self.checked_keys, "records": self.records,
                "checkpoints": self.checkpoints, "snapshots_checked": self.snapshots_checked,
                "deltas_by_changes": self.deltas_by_changes, "full_by_changes": self.full_by_changes,
                "anchors_checked": self.anchors_checked, "annotations": dict(sorted(self.annotations.items())),
                "unfolded_records": dict(sorted(self.unfolded.items())),
                "folded_from": self.resumed_from, "segments": self.segments, "notes": self.notes,
                **({"versions": self.versions} if self.versions is not None else {}),
                **({"host_directory": self.host_directory} if self.host_directory is not None else {}),
                "drift": [f.as_dict() for f in self.drift],
                "other_findings": [f.as_dict() for f in self.findings if f.kind not in DRIFT_KINDS],
                "chain_heads": self.heads}


# -- anchors -------------------------------------------------------------------
def anchor_document(heads: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"format": ANCHOR_FORMAT, "heads": heads}, option=_SORT | orjson.OPT_INDENT_2)


def read_anchor(data: bytes) -> list[dict[str, Any]]:
    from kmevents.errors import UsageError

    try:
        doc = orjson.loads(data)
        if doc.get("format") != ANCHOR_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}")
        return list(doc["heads"])
    except (orjson.JSONDecodeError, ValueError, KeyError, AttributeError) as exc:
        raise UsageError(f"not an anchor file: {exc}", hint="anchors are written by `kmevents verify --export-anchor`"
                         ) from None


# -- the pass over the log ----------------------------------------------------
@dataclass
class Checks:
    """What one pass must look at, by offset."""

    checkpoint_offset: int | None = None
    snapshot_entries: list[dict[str, Any]] = field(default_factory=list)
    #: where the bytes of ``snapshot_entries`` are read
    snapshots: Snapshots | None = None
    anchor_offsets: set[int] = field(default_factory=set)
    keep_state: bool = True
    #: resume from a verified snapshot: ``(offset S, chain head at S, the state at S)``. The
    #: records up to S are only hashed into the chain (whose head at S must be the recorded
    #: one, else :class:`ResumeRefused`); the fold starts from the state at S.
    resume: tuple[int, str, ClusterState] | None = None
    #: a segment of a split verify (``verify_split.py``): ``(offset B, chain head at B, the state
    #: of the stored full snapshot at B)``; records up to B are not read at all (another segment
    #: checks that snapshot equal to the fold from the start, and the chain up to it)
    begin: tuple[int, str, ClusterState] | None = None
    #: read no record past this offset (a segment's end)
    until: int | None = None


class ResumeRefused(Exception):
    """The log's chain at the verified point is not the recorded one: verify from the start."""


@dataclass
class PassResult:
    head_at: dict[int, str | None]  # chain head after the last record <= offset
    expected: ClusterState | None  # the fold's state at the checkpoint (read-only; compared key by key)
    ahead: dict[tuple[str, str], bytes | None]  # keys the next record after the checkpoint writes
    snapshot_mismatch: dict[int, str]  # snapshot offset -> what differs
    end_head: str | None
    last_offset: int | None
    last_ts: int | None
    records: int
    annotations: Counter[str]
    #: records the fold could not use, by outcome (undecodable, fold_failed)
    bad: dict[str, int] = field(default_factory=dict)
    #: snapshot offsets whose content was compared equal to the fold (a verified point)
    snapshots_equal: list[int] = field(default_factory=list)
    #: deltas equal to the fold's own changes since their base (checked without a rebuild)
    deltas_by_changes: int = 0
    #: full snapshots shown equal by the fold's changes since the full one before
    full_by_changes: int = 0
    #: etcd already compared with the state at the checkpoint where that state was (a split
    #: verify's last segment, in its process): the findings and the keys checked
    compared: tuple[list[Finding], int] | None = None


@dataclass(frozen=True)
class Compare:
    """What a split verify's last segment compares with its state at the checkpoint: etcd's keys
    under the state prefix ``sp`` (:func:`compare_state`), the checkpoint written at ``revision``."""

    sp: bytes
    revision: int


def expected_entities(st: ClusterState) -> Iterator[tuple[tuple[str, str], bytes]]:
    """The fold's entities as etcd would hold them, in etcd's key order (``<kind>/<id>``
    bytewise: kinds by name, then ids; no kind's name is a prefix of another's), one at a
    time: a large state is never encoded in one piece."""
    for kind in sorted(st.kinds):
        for id in sorted(st.ids(kind)):
            value = st.entity_bytes(kind, id)
            if value is not None:
                yield (kind, id), value


async def fold_pass(src: Source, cluster: str, checks: Checks) -> PassResult:
    """Fold the cluster's whole log once, stopping at the offsets ``checks`` names.

    With ``checks.resume`` the records up to the resume offset are only linked into the
    chain (no decoding), and the fold starts from the resumed state after it.
    """
    first, last = await src.covers()
    if checks.until is not None:
        last = min(last, checks.until)
    resume_at = checks.resume[0] if checks.resume is not None else -1
    if checks.begin is not None:
        begin_at, begin_head, st = checks.begin
        fold = Fold(st, begin_head, partition=src.partition)
        st.take_dirty()
        st.mark_base(begin_at)  # the deltas based on that full snapshot are checked by their changes
        first = begin_at + 1
    else:
        begin_at = -1
        st = ClusterState.empty(cluster)
        fold = Fold(st, await src.chain_start(), partition=src.partition)
    stops = sorted(o for o in ({checks.checkpoint_offset} if checks.checkpoint_offset is not None else set())
                   | {int(e["offset"]) for e in checks.snapshot_entries} | set(checks.anchor_offsets)
                   | ({resume_at} if resume_at >= 0 else set())
                   if begin_at < o and (checks.until is None or o <= checks.until))
    snaps = {int(e["offset"]): e for e in checks.snapshot_entries}
    prefetch = _Prefetch(checks.snapshots, [snaps[o] for o in stops if o in snaps and o >= resume_at]
                   ) if checks.snapshots is not None else None
    res = PassResult({}, None, {}, {}, None, None, None, 0, Counter())
    fold.annotations = res.annotations
    si = 0
    ahead_pending = checks.checkpoint_offset is not None
    # Snapshot contents can be compared when the fold is exact: it began at offset 0, or at a
    # verified snapshot; those at or before the resume point were compared by an earlier run.
    exact = first == 0 or checks.resume is not None or checks.begin is not None

    #: the last full snapshot shown equal to the fold in place, while the fold tracks its changes from it
    held: Held | None = None
    #: the values the last delta check wrote of the fold's changes (the next delta of the base
    #: reads again only those changed since)
    remembered = Remembered()

    async def reach(off: int) -> None:
        """Everything at or before ``off`` is folded: record what the checks at ``off`` need."""
        nonlocal st, held
        res.head_at[off] = fold.head
        if off == resume_at and checks.resume is not None:
            if fold.head != checks.resume[1]:
                raise ResumeRefused(f"the log's chain at offset {off} is {fold.head}, the verified point "
                                    f"recorded {checks.resume[1]}")
            st = fold.state = checks.resume[2]
        if off == checks.checkpoint_offset and checks.keep_state:
            # Keep the state at the checkpoint as it is (compared with etcd after the pass) and
            # fold on in a copy-on-write fork of it: no copy of the whole state.
            st.take_dirty()
            res.expected = st.freeze()
            st = fold.state = st.fork()
            held = None  # (a fork tracks no changes: nothing to check by them, and its bytes let go of)
        if off in snaps and prefetch is not None and off >= resume_at:
            entry = snaps[off]
            found = await _same_delta(prefetch, entry, st, fold.head, remembered) if exact else None
            res.deltas_by_changes += found is not None
            matched = None
            if found is None:
                found, matched = await _check(prefetch, entry, st, fold.head, compare=exact, since=held)
            prefetch.done(entry)
            res.snapshot_mismatch.update(found)
            if exact and not found and off > resume_at:
                res.snapshots_equal.append(off)
            res.full_by_changes += matched is not None and matched.by_changes and not is_delta(entry)
            if exact and not found and not is_delta(entry):
                # the next deltas name this snapshot as their base, and the next full snapshot is
                # checked by the fold's changes since (snapshot_match.py): track them from here
                held = track_from(st, matched, off)
        elif off in snaps and fold.head is not None and snaps[off].get("chain") != fold.head:
            res.snapshot_mismatch[off] = (f"index chain {snaps[off].get('chain')} but the log's chain there is "
                                          f"{fold.head}")

    try:
        async for batch in src.batches(first, last):
            for rec in batch:
                while si < len(stops) and stops[si] < rec.offset:
                    await reach(stops[si])
                    si += 1
                res.records += 1
                res.last_offset, res.last_ts = rec.offset, rec.timestamp
                if rec.offset <= resume_at:  # before the verified point: the chain only
                    fold.link(rec.key, rec.value)
                    continue
                if fold.step(rec.offset, rec.key, rec.value) is UNDECODABLE:
                    continue  # counted in res.bad (the worker dead-letters it)
                if ahead_pending and checks.checkpoint_offset is not None and rec.offset > checks.checkpoint_offset:
                    ahead_pending = False
                    for k in st.take_dirty():
                        v = st.entity(*k)
                        res.ahead[k] = None if v is None else orjson.dumps(v, option=_SORT)
            st.take_dirty()  # reach() and the ahead capture take their own; keep it from growing
        while si < len(stops):
            await reach(stops[si])
            si += 1
    finally:
        if prefetch is not None:
            prefetch.close()
    res.end_head = None if getattr(src, "gaps", None) else fold.head
    res.bad = {k: v for k, v in fold.counts.items() if k in BAD}
    return res


class _Prefetch:
    """The stored bytes of the snapshots a pass checks, fetched one entry ahead of the fold.

    Reading a stored snapshot waits on Kafka (0.3-0.4 s for a 125 MB full one at the large
    profile, ~0.2 s for a delta; 77 + 133 of them over 1.5M records): the next entry's bytes
    are read while the fold runs up to it (the broker works on the other core), so a check
    finds them there. Holds at most one entry's bytes besides the one being checked."""

    def __init__(self, snapshots: Snapshots, entries: list[dict[str, Any]]) -> None:
        self.snapshots = snapshots
        self.entries = entries
        self.next = 0
        self.task: asyncio.Task[bytes | None] | None = None
        self.task_offset = -1
        self._start()

    def _start(self) -> None:
        if self.next < len(self.entries):
            e = self.entries[self.next]
            self.task_offset = int(e["offset"])
            self.task = asyncio.ensure_future(self.snapshots.state_bytes(e))
            self.next += 1

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        if self.task is not None and int(entry["offset"]) == self.task_offset:
            task, self.task = self.task, None
            return await task
        return await self.snapshots.state_bytes(entry)

    async def full_bytes(self, entry: dict[str, Any]) -> bytes | None:
        return await (self.state_bytes(entry) if not is_delta(entry) else self.snapshots.full_bytes(entry))

    def done(self, entry: dict[str, Any]) -> None:
        """``entry`` is checked: start reading the one after it (skipping any passed over)."""
        off = int(entry["offset"])
        while self.next < len(self.entries) and int(self.entries[self.next]["offset"]) <= off:
            self.next += 1
        if self.task is not None and self.task_offset <= off:
            self.task.cancel()
            self.task = None
        if self.task is None:
            self._start()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


async def _same_delta(snapshots: Snapshots | _Prefetch, entry: dict[str, Any], st: ClusterState,
                      head: str | None, remembered: Remembered | None = None) -> dict[int, str] | None:
    """A delta checked cheaply: ``{}`` when its bytes are exactly the fold's own changes since
    the base it names (which was checked equal to the fold), else None (check it in full).

    Rebuilding a delta's state and encoding both whole costs seconds per delta at a large
    cluster; the fold's own delta is the size of what changed. Bytes can also differ for an
    equal state (a worker that restored from the base tracks its changes from its load), so
    a difference is only a reason for the full check, never a finding by itself. ``remembered``:
    the values the delta check before wrote (delta.py), read again only where they changed."""
    if not is_delta(entry) or st.base_offset != int(entry["base"]) or head != entry.get("chain"):
        return None
    if int(entry.get("reducer_version", REDUCER_VERSION)) != REDUCER_VERSION:
        return None
    stored = await snapshots.state_bytes(entry)
    if stored is None:
        return None
    # in the stored delta's format (a store written before format 3 or 2 is checked as cheaply)
    if not matches_delta(stored, st, entry.get("chain"), format=stored_format(stored), remembered=remembered):
        return None
    return {}


async def _check_snapshot(snapshots: Snapshots | _Prefetch, entry: dict[str, Any], st: ClusterState, head: str | None,
                          *, compare: bool = True) -> dict[int, str]:
    """What is wrong with one snapshot: its chain head against the log's at its offset, its bytes
    loading, and (``compare``: the fold began at offset 0) its content against the fold."""
    return (await _check(snapshots, entry, st, head, compare=compare))[0]


async def _check(snapshots: Snapshots | _Prefetch, entry: dict[str, Any], st: ClusterState, head: str | None,
                 *, compare: bool = True, since: Held | None = None) -> tuple[dict[int, str], Held | None]:
    """:func:`_check_snapshot`, and what :func:`~kmevents.reducer.snapshot_match.match` kept of
    the snapshot when it showed it equal in place (checked against ``since`` and the fold's
    changes since it, when the fold tracks them from there)."""
    off = int(entry["offset"])
    if int(entry.get("reducer_version", REDUCER_VERSION)) != REDUCER_VERSION:
        return {}, None
    matched = None
    problems = []
    if head is not None and entry.get("chain") != head:
        problems.append(f"index chain {entry.get('chain')} but the log's chain there is {head}")
    data = await snapshots.full_bytes(entry)  # a delta's: its base's state with the delta applied
    if data is None:
        problems.append("its bytes cannot be read (chunks missing from the snapshots topic, or a damaged archive)"
                        + (f", or its base snapshot at offset {entry.get('base')} is unusable" if is_delta(entry) else ""))
    elif compare and (matched := match(st, data, entry.get("chain"), since)) is not None:
        pass  # a format-6 or -5 snapshot checked in place against the fold (snapshot_match.py)
    else:
        # in the stored bytes' format when this version writes it (a format-4 store's
        # snapshots then compare byte for byte, not by loading and parsing both)
        fmt = snapshot_format(data)
        mine = (dump(st, entry.get("chain"), format=fmt if fmt in (FORMAT_5, FORMAT_4, FORMAT_3) else FORMAT)
                if compare else None)
        if mine is None or data != mine:
            # Bytes equal to the fold's own encoding load as its state does and carry the entry's
            # chain; only other bytes are loaded and parsed (each is seconds at a large cluster).
            try:
                ClusterState.from_snapshot(data)
            except SnapshotError as exc:
                problems.append(f"bytes do not load: {exc.message}")
            else:
                doc = snapshot_document(data)
                if mine is not None:
                    # equal states may differ in bytes: an older format, or (format 4) a packed
                    # table's dictionary trained elsewhere (a state restored from format 3)
                    ch = [c for c in field_changes(snapshot_document(mine), doc) if c.path != "format"]
                    if ch:
                        problems.append(f"content differs from the fold at offset {off}: "
                                        + "; ".join(f"{c.path}" for c in ch[:5]))
                if doc.get("chain_hash") != entry.get("chain"):
                    problems.append("chain hash inside the snapshot differs from its index entry")
    return ({off: "; ".join(problems)} if problems else {}), (None if problems else matched)


# -- etcd side -----------------------------------------------------------------
async def clusters_of_live_checkpoints(c: etcd_adapter.EtcdClient, prefix: str) -> dict[str, int]:
    """``cluster -> partition`` of every cluster the live generation's checkpoints cover."""
    _, cps = await read_checkpoints(c, prefix)
    return partitions_of_clusters(cps)


def compare_key(report: Report, cluster: str, k: tuple[str, str], s: etcd_adapter.KV | None,
                expected: bytes | None, ckpt_rev: int, ahead: dict[tuple[str, str], bytes | None]) -> None:
    """One key: what etcd holds (``s``) against the fold at the checkpoint (``expected``)."""
    report.checked_keys += 1
    name = f"{k[0]}/{k[1]}"
    if s is not None and s.mod_revision > ckpt_rev and k in ahead and ahead[k] == s.value:
        report.findings.append(Finding("ahead", cluster, name, "written ahead of the checkpoint by the "
                                       "event in flight"))
    elif s is None and k in ahead and ahead[k] is None and expected is not None:
        report.findings.append(Finding("ahead", cluster, name, "deleted ahead of the checkpoint by the "
                                       "event in flight"))
    elif s is None:
        report.findings.append(Finding("missing", cluster, name, "the log's fold has it; etcd does not"))
    elif expected is None:
        report.findings.append(Finding("extra", cluster, name, "etcd has it; the log's fold does not"))
    elif s.value != expected:
        try:
            changes = [c.as_dict() for c in field_changes(orjson.loads(expected), orjson.loads(s.value))]
        except orjson.JSONDecodeError:
            changes = [{"path": ".", "before": "(log)", "after": "etcd value is not JSON"}]
        report.findings.append(Finding(
            "different", cluster, name,
            "; ".join(f"{c['path']}: log {c['before']!r}, etcd {c['after']!r}" for c in changes[:3]),
            [{"path": c["path"], "log": c["before"], "etcd": c["after"]} for c in changes]))


async def compare_state(report: Report, cluster: str, c: etcd_adapter.EtcdClient, sp: bytes,
                        expected: ClusterState, ckpt_rev: int, ahead: dict[tuple[str, str], bytes | None]) -> None:
    """Every key of the cluster's state prefix against the fold, merged in key order: etcd is
    read a page at a time at one revision, the fold's values are encoded one at a time."""
    want = expected_entities(expected)
    nxt = next(want, None)
    # (pages of etcd_adapter.PAGE_KEYS: ~11 MB of values each at the large profile, two held)
    async for _, kvs in _read_ahead(etcd_adapter.range_pages(c, sp, etcd_adapter.prefix_end(sp))):
        for kv in kvs:
            k = layout.split_entity_key(sp, kv.key)
            while nxt is not None and nxt[0] < k:
                compare_key(report, cluster, nxt[0], None, nxt[1], ckpt_rev, ahead)
                nxt = next(want, None)
            if nxt is not None and nxt[0] == k:
                compare_key(report, cluster, k, kv, nxt[1], ckpt_rev, ahead)
                nxt = next(want, None)
            else:
                compare_key(report, cluster, k, kv, None, ckpt_rev, ahead)
    while nxt is not None:
        compare_key(report, cluster, nxt[0], None, nxt[1], ckpt_rev, ahead)
        nxt = next(want, None)


async def _read_ahead(pages: AsyncIterator[tuple[int, list[etcd_adapter.KV]]]
                      ) -> AsyncIterator[tuple[int, list[etcd_adapter.KV]]]:
    """``pages``, the next one asked for while the caller compares this one: etcd reads a page
    while the fold's values are encoded and compared (at the large profile 377 pages of 1,000
    keys, each a wait on etcd as long as the comparison of the one before)."""
    it = aiter(pages)
    ahead: asyncio.Future[tuple[int, list[etcd_adapter.KV]]] = asyncio.ensure_future(anext(it))
    try:
        while True:
            try:
                page = await ahead
            except StopAsyncIteration:
                return
            ahead = asyncio.ensure_future(anext(it))
            yield page
    finally:
        if ahead.done() and not ahead.cancelled():
            ahead.exception()  # (retrieved: the caller stopped early, or etcd failed)
        ahead.cancel()


async def verify(settings: Settings, clusters: list[str] | None = None, *, source: Source | None = None,
                 topic: str | None = None, anchors: list[dict[str, Any]] | None = None,
                 check_snapshots: bool = True, full: bool = False, jobs: int = 0) -> Report:
    """Verify the named clusters (default: every cluster of the live checkpoints).

    ``source`` replaces the cluster's partition of the events topic (an
    imported copy, archives + topic); ``topic`` reads another topic.

    Unless ``full``, the fold starts from the snapshot the last clean verify of the cluster
    checked equal to its own fold (``kmevents.store.verified``): the chain is still followed
    from the start of the log, only the fold is not repeated. A clean run records its newest
    such snapshot for the next.

    A fold from the start is split over ``jobs`` processes at the worker's full snapshots
    (``verify_split.py``; 0: one per core for a long enough log, 1: never).

    A ``full`` check of the snapshots reads Kafka without checking each record batch's CRC-32C
    (``kafka.check_crcs``): every record it reads is linked into the hash chain, and every stored
    snapshot and delta compared with the fold, so a damaged byte is found anyway, as drift (the
    CRCs were ~3 s of its CPU at the large profile's 1.5M events: ~7 GB read).
    """
    if full and check_snapshots:
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"check_crcs": False})})
    report = Report()
    prefix = settings.etcd.prefix
    async with etcd_adapter.client(settings.etcd) as c:
        if clusters is None:
            clusters = sorted(await clusters_of_live_checkpoints(c, prefix))
        for cluster in clusters:
            partition = await logsource.partition_of(settings, cluster)
            if partition is None:
                partition = (await clusters_of_live_checkpoints(c, prefix)).get(cluster)
            if partition is None:
                report.findings.append(Finding("missing", cluster, "-", "cluster unknown: no partition, no checkpoint"))
                continue
            gen = await current_generation(c, prefix, cluster) or layout.live_generation()
            ckpt = await read_checkpoint(c, prefix, layout.base_generation(gen), partition)
            if layout.base_generation(gen) != layout.live_generation():
                live = await read_checkpoint(c, prefix, layout.live_generation(), partition)
                if live is not None and cluster in live.chains:
                    # The workers keep this cluster under the live generation, yet readers are
                    # sent elsewhere: what the API serves is not the fold of the log.
                    report.findings.append(Finding(
                        "current", cluster, layout.current_key(prefix, cluster).decode(),
                        f"readers are pointed at generation {gen!r}, but the workers derive this cluster "
                        f"under {layout.live_generation()!r} (checkpoint at offset {live.offset}): the API "
                        f"serves a state that is not the log's; `kmevents verify --repair` rebuilds and "
                        f"switches readers back"))
            src = source or KafkaSource(settings.kafka, topic or settings.kafka.events_topic, partition, cluster)
            older = gen != layout.live_generation() and gen.split(".")[0] != layout.live_generation() or (
                ckpt is not None and ckpt.reducer_version != REDUCER_VERSION)
            if older:
                version = ckpt.reducer_version if ckpt is not None else gen
                report.findings.append(Finding("reducer_version", cluster, "-",
                                               f"derived by an older reducer ({version}; this is {REDUCER_VERSION}): "
                                               "not drift; rebuild with `kmevents verify --repair`"))
            if ckpt is not None:
                report.checkpoints[partition] = ckpt.offset
            store = SnapshotStore(settings, c, gen)
            entries = (await store.entries(cluster)) if check_snapshots else []
            checks = Checks(checkpoint_offset=ckpt.offset if ckpt is not None and ckpt.offset >= 0 else None,
                            snapshot_entries=entries, snapshots=store,
                            anchor_offsets={int(a["offset"]) for a in anchors or [] if a.get("cluster") == cluster},
                            keep_state=not older)
            if not full and not older and ckpt is not None and source is None and topic is None:
                checks.resume = await _resume_point(c, prefix, gen, cluster, entries, store, ckpt.offset)
            res = None
            if checks.resume is None and source is None and not older and jobs != 1:
                compare = (None if ckpt is None or ckpt.offset < 0 else
                           Compare(layout.state_prefix(prefix, cluster, gen), ckpt.mod_revision))
                res = await _split(report, settings, src, cluster, gen, checks, jobs, compare)
            try:
                if res is None:
                    res = await fold_pass(src, cluster, checks)
            except ResumeRefused as exc:
                report.notes.append(f"{cluster}: {exc}; verified from the start instead")
                checks.resume = None
                res = await fold_pass(src, cluster, checks)
            report.resumed_from[cluster] = checks.resume[0] if checks.resume is not None else None
            _chain_and_heads(report, cluster, partition, src, res, anchors)
            _snapshot_findings(report, cluster, entries, res)
            if ckpt is None or ckpt.offset < 0:
                continue
            log_head = res.head_at.get(ckpt.offset)
            if cluster in ckpt.chains and log_head != ckpt.chains[cluster]:
                report.findings.append(Finding("chain", cluster, f"offset {ckpt.offset}",
                                               f"checkpoint chain {ckpt.chains[cluster]} but the log gives {log_head}: "
                                               "the log (or the checkpoint) was rewritten"))
            if res.compared is not None:
                findings, keys = res.compared
                report.findings.extend(findings)
                report.checked_keys += keys
            elif older or res.expected is None:
                continue
            else:
                await compare_state(report, cluster, c, layout.state_prefix(prefix, cluster, gen), res.expected,
                                    ckpt.mod_revision, res.ahead)
            equal = [o for o in res.snapshots_equal if o <= ckpt.offset and res.head_at.get(o)]
            if equal and not any(f.cluster == cluster for f in report.drift):
                best = max(equal)
                await verified.write_point(c, prefix, gen, cluster, snapshot_offset=best,
                                           chain=str(res.head_at[best]), checkpoint_offset=ckpt.offset,
                                           reducer_version=REDUCER_VERSION)
    return report


async def _split(report: Report, settings: Settings, src: Source, cluster: str, gen: str, checks: Checks,
                 jobs: int, compare: Compare | None = None) -> PassResult | None:
    """The fold from the start split over processes, when the log is long enough and has full
    snapshots to cut it at (None: fold in this process); ``compare``: etcd compared by the last
    segment (the result's ``compared``)."""
    from kmevents.replay import verify_split

    if checks.checkpoint_offset is None or not isinstance(src, KafkaSource) or await src.chain_start() is None:
        return None
    first, _ = await src.covers()
    n = jobs or verify_split.default_jobs(checks.checkpoint_offset - first)
    compare = compare if checks.keep_state else None
    at = verify_split.cuts(checks.snapshot_entries, first, checks.checkpoint_offset, n, compare=compare is not None)
    if not at:
        return None
    res = await verify_split.split_pass(settings, src, cluster, gen, checks, at, compare)
    if res is None:
        report.notes.append(f"{cluster}: a full snapshot the fold was split at ({', '.join(str(e['offset']) for e in at)}) "
                            "did not verify; folded from the start in one process instead")
    else:
        report.segments[cluster] = len(at) + 1
    return res


async def _resume_point(c: etcd_adapter.EtcdClient, prefix: str, gen: str, cluster: str,
                        entries: list[dict[str, Any]], store: SnapshotStore,
                        checkpoint: int) -> tuple[int, str, ClusterState] | None:
    """The state at the last clean verify's snapshot, when it is still there and usable."""
    point = await verified.read_point(c, prefix, gen, cluster)
    if point is None or point.reducer_version != REDUCER_VERSION or point.snapshot_offset > checkpoint:
        return None
    entry = next((e for e in entries if int(e["offset"]) == point.snapshot_offset), None)
    if entry is None or entry.get("chain") != point.chain:
        return None
    state = await store.load(entry)
    return None if state is None else (point.snapshot_offset, point.chain, state)


def _chain_and_heads(report: Report, cluster: str, partition: int | None, src: Source, res: PassResult,
                     anchors: list[dict[str, Any]] | None) -> None:
    report.records += res.records
    for k, v in res.annotations.items():
        report.annotations[k] = report.annotations.get(k, 0) + v
    for k, v in res.bad.items():
        report.unfolded[k] = report.unfolded.get(k, 0) + v
    for a in anchors or []:
        if a.get("cluster") != cluster:
            continue
        report.anchors_checked += 1
        got = res.head_at.get(int(a["offset"]))
        if got != a.get("head"):
            report.findings.append(Finding("anchor", cluster, f"offset {a['offset']}",
                                           f"anchor head {a.get('head')} but the log gives {got}"))
    for arc in _archives(src):
        _check_archive(report, arc)
    if getattr(src, "gaps", None):
        report.findings.append(Finding("chain", cluster, "-", f"the sources miss offsets {src.gaps}: "
                                       "the chain cannot be followed across the hole"))
    if res.last_offset is not None:
        report.heads.append({"cluster": cluster, "partition": partition, "offset": res.last_offset,
                             "head": res.end_head, "time": iso_of_ms(res.last_ts or 0)})


def _snapshot_findings(report: Report, cluster: str, entries: list[dict[str, Any]], res: PassResult) -> None:
    report.snapshots_checked += len(entries)
    report.deltas_by_changes += res.deltas_by_changes
    report.full_by_changes += res.full_by_changes
    for off, problem in sorted(res.snapshot_mismatch.items()):
        report.findings.append(Finding("snapshot", cluster, f"snapshot@{off}", problem))


def _archives(src: Source) -> list[ArchiveSource]:
    if isinstance(src, ArchiveSource):
        return [src]
    if isinstance(src, MergedSource):
        return [s for s in src.sources if isinstance(s, ArchiveSource)]
    return []


def _check_archive(report: Report, arc: ArchiveSource) -> None:
    """The chain over an archive's records must lead from its start head to its end head.

    A header without a start head holds records nobody can check: an archive filtered
    for a limited token says so (``filtered``); any other is reported as tampered."""
    h = arc.header.get("chain_head_start")
    if h is None or arc.header.get("chain_head_end") is None:
        if arc.header.get("filtered"):
            report.findings.append(Finding("unverifiable", arc.cluster, str(arc.path),
                                           f"a filtered archive ({arc.header['filtered']}) carries no chain heads: "
                                           "its records cannot be checked against the log"))
        else:
            report.findings.append(Finding("chain", arc.cluster, str(arc.path),
                                           "the header has no chain head (chain_head_start/chain_head_end null) "
                                           "and does not say it was filtered: the archive was edited after export"))
        return
    hb, link = bytes.fromhex(h), chain.link_bytes
    for batch in archive.iter_batches(arc.path):
        for r in batch:
            hb = link(hb, r.key, r.value)
    h = hb.hex()
    if h != arc.header.get("chain_head_end"):
        report.findings.append(Finding("chain", arc.cluster, str(arc.path),
                                       f"records hash to {h} but the header says {arc.header.get('chain_head_end')}: "
                                       "a record was changed after export"))


async def verify_offline(src: Source, cluster: str, anchors: list[dict[str, Any]] | None = None,
                         check_snapshots: bool = True) -> Report:
    """Verification of archives with no server: archive chains, continuity, anchors, and the
    snapshots the archives carry (chain head at their offset, content equal to the fold)."""
    report = Report()
    store = ArchiveSnapshots(_archives(src))
    entries = await store.entries(cluster) if check_snapshots else []
    checks = Checks(anchor_offsets={int(a["offset"]) for a in anchors or [] if a.get("cluster") == cluster},
                    keep_state=False, snapshot_entries=entries, snapshots=store)
    res = await fold_pass(src, cluster, checks)
    _chain_and_heads(report, cluster, src.partition, src, res, anchors)
    _snapshot_findings(report, cluster, entries, res)
    return report
