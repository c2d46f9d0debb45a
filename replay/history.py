"""One entity's causal history: every event that touched it, in log order.

"Touched" is decided by the reducer itself: after each event, ``take_dirty()``
names the entities it changed. The history follows the links between
entities so the causal chain reads end to end:

- a pod pulls in its tasks (``pod.task_id`` over time, the k8sm annotations)
  and events whose ``correlation_id`` is the pod's uid;
- a task pulls in its pod (``task.pod``) and the offer it was launched from
  (``task.offer_id``): offer -> accept -> launch -> STAGING -> RUNNING -> LOST
  -> pod evicted.

An entity may be named by its id or by what people call it: ``agent/HOST``
(every agent id the host ever had: an agent that re-registers after a restart
gets a new id), ``node/HOST``, ``pod/NAME`` (in any namespace), ``task/TASK_ID``
(the Mesos task id without its framework), ``framework/NAME``.

Two passes over the log: the first finds the related entities (an offer is
made before anyone knows which task it will carry), the second collects the
events.

With the worker's touched-entity index (kmevents/store/touched.py, passed as
:class:`Indexed`) a pass folds only the *units* of the log that matter, in log
order: each block of the index whose hash set holds one of the pass's needles
(pass 1: the related keys so far and the names asked for; pass 2: the related keys
and correlation ids), and every range the index does not cover (the records the worker has not
folded yet, a range the worker wrote no index for). The worker's open block (what its last
batch left of the block it has not closed yet, ``touched.read_open``; ``Indexed.opened``) counts
as a block. Each such unit is folded from the
state before it: the fold so far when it is near, else the newest snapshot (or delta)
before it (decoded once, then forked), with the same hook as the full scan on every
event folded, so the result is the scan's (the hook decides what is related; the index
only says which units cannot matter). Pass 1 keeps what each event it folded did (its
dirty set and the values of the dirty pods, tasks, offers and entities of the asked
kind), so pass 2 folds only the units links found late implicate, and builds the
entries from what the passes kept.
Worked example: blocks [0..999] {pod/a, task/t1}, [1000..1999] {offer/o9},
[2000..2999] {task/t1}; ``history pod/a``: pass 1 folds [0..999] (finds task/t1 and,
from its value, offer/o7), skips [1000..1999], folds [2000..2999]; pass 2 folds only
the blocks holding offer/o7 or a correlation id that pass 1 skipped.

A unit that is a whole block with a *versions record* (kmevents/store/versions.py: the worker's
record of each applied event's annotations and of what it left each entity it changed) is read
instead of folded: its events' dirty sets and values come from the record, and no state is
decoded; the log is read only for the events pass 2 shows (for their fields: ``_read_shown``,
the events whose dirty sets hold a related key, and in a block that holds a related correlation
id, those that carry one), not for the unit's other records. Pass 1's links also read what the state
held before such a unit (a linked pod's uid, the tasks of a Mesos task id): from the records
of the blocks before it whose hash sets name the entity or the task id (``_View``); past a block
with no record, or a range with no index, from the state at that unit's end, folded from the
snapshot before it (``Indexed.lookup_folds``). At the large profile a history then reads
a few records (~0.2 MB each) where it decoded a ~0.5 s state per snapshot interval it spans.
The open block has a record too while the worker keeps up: each of its live batches writes
what it added (``Capture.part``), and the parts joined through the open block's last offset
are its record (``versions_store.read_open``); without them (a worker catching up, or just
restarted) the open block is folded from a state (~1 s at the large profile).

Each entry carries the event's two times and lag, its actor, the annotations it produced, and the resulting state of each related entity it
touched; ``lasted`` says how long the condition it put the entity in held
(until the entity's next condition, or "still" at the end of the log).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents import chain
from kmevents.contract import decode_fast
from kmevents.errors import EnvironmentProblem
from kmevents.jsonobj import obj
from kmevents.reducer import REDUCER_VERSION, ClusterState, Retention, condition
from kmevents.reducer.state import SHORT_FOLD
from kmevents.selectors import Selector
from kmevents.store import touched
from kmevents.store import versions as versions_store
from kmevents.store.snapshots import Snapshots, is_delta, no_gc
from kmevents.timespec import iso_of_ms, lag_seconds, micros_of

Key = tuple[str, str]

#: A history reads the whole log twice: its passes show a progress bar (on a terminal) from this
#: many records on; a point-in-time replay only from 200,000 (it is quicker per record).
PROGRESS_FROM = 20_000


#: Load a snapshot rather than fold on when the next unit starts this many offsets past the fold
#: (tests lower it); a snapshot is then taken only when it saves more than it costs (``_cheaper``).
JUMP = 4_000
#: Canonical snapshot bytes that cost as much to decode as one record to fold: on the bench machine
#: a format-5 full state is read and decoded at ~6-7 ns a byte (a 56 MB one in ~0.35 s CPU at the
#: large profile), a delta onto its held base at ~8 ns, and history folds a record in ~20-25 us
#: (BENCHMARKS.md, History of one entity at full size; 2,000 when states decoded at ~14 ns a byte:
#: a history of 6 units at 1.5M events then folded 61,701 records from 5 states, 23,249 from 6 now,
#: 5.6 -> 4.7 s CPU).
BYTES_PER_RECORD = 3_000


@dataclass
class _Seen:
    """One applied event of a folded unit, as pass 2 needs it: the record (the event is decoded
    again from its bytes for an entry), its annotations, its dirty set and the values (orjson) of
    the dirty entities of the kinds a history can relate (``Indexed.kinds``) right after it."""

    rec: LogRecord
    anns: list[dict[str, Any]]
    dirty: set[Key]
    #: orjson bytes
    values: dict[Key, bytes]
    occurred_at: str | None
    correlation_id: Any

    def value_of(self, key: Key) -> dict[str, Any] | None:
        out: dict[str, Any] | None = orjson.loads(self.values[key])
        return out


@dataclass
class Indexed:
    """The cluster's touched-entity index and the snapshots its folds start from.

    ``folded``, ``units``, ``loads``, ``events``: what the passes did (units folded by
    both passes together, units the log was cut into, snapshots/deltas decoded, records
    read); ``scanned``: why the full scan was used instead (None while the index serves).
    Pass 1 keeps what it saw of each unit it folded (``seen``), so pass 2 folds only the
    units that links found late implicate."""

    blocks: list[touched.Block]
    snapshots: Snapshots | None = None
    #: the worker's open block so far, when it follows the last of ``blocks`` (read_index checks)
    opened: touched.Block | None = None
    folded: int = 0
    units: int = 0
    loads: int = 0
    events: int = 0
    scanned: str | None = None
    #: set by ``usable``: the index serves this history
    serves: bool = False
    #: first offsets of the units folded so far, and what their events did
    done: set[int] = field(default_factory=set)
    #: the first offset of the unit being folded: the hook keeps nothing of the events before it
    hook_from: int = -1
    seen: dict[int, _Seen] = field(default_factory=dict)
    #: kinds whose dirty values ``seen`` keeps (set by ``related``)
    kinds: frozenset[str] = frozenset()
    #: the usable snapshot entries (None: not read yet) and states decoded, by offset (read only:
    #: a fold starts from a fork); at most ``KEEP_STATES`` of them
    _entries: list[dict[str, Any]] | None = None
    _states: dict[int, ClusterState] = field(default_factory=dict)
    #: the blocks' versions records' index entries by ``(first, last)`` (store/versions.py): a unit
    #: that is a whole block with one is read from it instead of folded; ``fetch`` reads one
    versions: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    fetch: Callable[[dict[str, Any]], Awaitable[versions_store.Versions | None]] | None = None
    #: the open block's record joined from the parts the worker's live batches wrote
    #: (``versions_store.read_open``; None when they do not cover it)
    fetch_open: Callable[[touched.Block], Awaitable[versions_store.Versions | None]] | None = None
    #: units read from their versions records (of ``units``; ``folded`` counts the others);
    #: ``lookups``: records read to find a value or a task from before a unit read
    served: int = 0
    lookups: int = 0
    #: closed blocks folded because no versions record was stored for them (``snapshots backfill``
    #: builds those)
    unrecorded: int = 0
    #: reads the blocks closed since, their records and the open block again (read_index sets it);
    #: ``waited``: seconds a pass waited for the worker to index the source's last records
    refresh: Callable[[], Awaitable[None]] | None = None
    waited: float = 0.0
    #: the blocks and entries were kept from an earlier history and refreshed (``IndexCache``), not
    #: read whole
    kept: bool = False
    #: states folded to answer lookups past a block with no record (or a range with no index)
    lookup_folds: int = 0
    #: the units read from their versions records, by first offset: pass 2 takes its entries of
    #: them from the records (and the log's records of only those events)
    read: dict[int, tuple[_Unit, versions_store.Versions]] = field(default_factory=dict)
    #: the versions records read, by first offset (None: unreadable, the unit is folded)
    _records: dict[int, versions_store.Versions | None] = field(default_factory=dict)
    _open_record: tuple[int, int, versions_store.Versions | None] | None = None
    _lookup_states: dict[int, ClusterState] = field(default_factory=dict)
    #: the units of the log as the passes cut it (set by ``_fold_units``)
    _units: list[_Unit] = field(default_factory=list)
    #: the groups of blocks not read (a command's index: ``read_index(lazy=True)``), read when a needle
    #: asked of one is one of its hashes (``expand``); ``again``: the passes run again after that
    spans: touched.Spans | None = None
    again: int = 0

    async def expand(self, needles: Any = ()) -> bool:
        """Read the groups not read yet that hold a needle the passes asked of them (or one of
        ``needles``); False when none does (the passes' answers are then the whole index's)."""
        if self.spans is None:
            return False
        got = await self.spans.expand(self.blocks, needles)
        if got is None:
            return False
        self.blocks = got
        return True

    def restart(self) -> None:
        """Forget what the passes did (not what they read: states, records), to run them again."""
        self.done, self.seen, self.read, self._units = set(), {}, {}, []
        self.hook_from, self.kinds, self.serves = -1, frozenset(), False
        self.again += 1


@dataclass
class _Unit:
    first: int
    last: int
    block: touched.Block | None  # None: not indexed, always folded


#: A state folded for at most this many records since it was loaded (or began empty) leaves the
#: values it touches decoded (``ClusterState.packs``; the reducer's rule for a short fold).
PACK_FROM = SHORT_FOLD

#: Decoded snapshot/delta states an indexed history keeps to fork from (each may be large).
KEEP_STATES = 3


def _units(blocks: list[touched.Block], first: int, last: int) -> list[_Unit]:
    """The log's offsets first..last cut into blocks and the ranges no block covers.

    Blocks may overlap (a block written by a worker that crashed before its checkpoint,
    and the block its successor wrote over the same offsets): each is complete for its
    own range, so the part of a block past what the previous ones covered keeps its set."""
    out: list[_Unit] = []
    pos = first
    for b in blocks:
        if b.last < pos or b.first > last:
            continue
        if b.first > pos:
            out.append(_Unit(pos, b.first - 1, None))
            pos = b.first
        if b.last > last:  # the index runs past what this source holds: fold the rest
            break
        out.append(_Unit(pos, b.last, b))
        pos = b.last + 1
    if pos <= last:
        out.append(_Unit(pos, last, None))
    return out


async def usable(src: Source, idx: Indexed | None, kind: str, selector: Selector | None) -> Indexed | None:
    """``idx`` when it can serve this history exactly; else None, with ``idx.scanned`` saying why."""
    if idx is None:
        return None
    why = None
    if not idx.blocks:
        why = "no touched-entity index for this cluster (the worker has not closed a block yet, or predates it)"
    elif selector is not None:
        why = "a label selector needs every entity's labels"
    elif kind in touched.UNSERVED_KINDS:
        why = f"the index does not serve {kind} (its totals are materialised per batch)"
    elif await src.chain_start() != chain.GENESIS or getattr(src, "gaps", None):
        why = "the log read does not start at the log's beginning"
    idx.scanned = why
    idx.serves = why is None
    return None if why else idx


async def open_index(opened: Any, *, lazy: bool = False) -> Indexed:
    """The touched-entity index of an opened log (kmevents/replay/opening.py's ``Opened``):
    read from etcd when it answered; empty (so history scans, saying why) otherwise. ``lazy``: see
    :func:`read_index` (then answer with :func:`history_of`)."""
    client = getattr(opened, "client", None)
    if client is None:
        return Indexed([], opened.snapshots, scanned="etcd (where the worker keeps the index) is not reachable "
                       "or not used for this source")
    return await read_index(opened.settings, client, opened.cluster, opened.snapshots,
                            reader_of=getattr(opened, "snapshot_points", None), lazy=lazy,
                            part_reader_of=getattr(opened, "snapshot_parts", None))


async def read_index(settings: Any, client: Any, cluster: str, snapshots: Snapshots | None, *,
                     reader_of: Any = None, lazy: bool = False, part_reader_of: Any = None) -> Indexed:
    """The cluster's touched-entity index read from etcd through ``client`` (empty, saying why,
    when it cannot be read), with the snapshots its folds start from. ``reader_of``: kept-open
    readers of the snapshots topic by partition for its records (a command's:
    ``Opened.snapshot_points``); default the snapshot store's (the API's).

    ``lazy``: the groups of old blocks that the hash -> groups runs cover are not read
    (store/touched_runs.py): each is a :class:`touched.Span` until a needle asked of it is one of its
    hashes, and :func:`history_of` then reads it and passes again. What a history reads of the index
    is then the blocks left in etcd, one part of each run a needle, and the groups that matter,
    whatever the log's length (a process per history: the API keeps the whole index instead).
    ``part_reader_of``: readers of small fetches for the runs' parts (default ``reader_of``)."""
    reader_of = reader_of or getattr(snapshots, "reader_of", None)
    spans = touched.Spans(part_reader_of=part_reader_of) if lazy else None
    try:
        blocks = await touched.read_blocks(settings, client, cluster, reader_of=reader_of, spans=spans)
        # the open block so far (the records past the last closed one up to the worker's last batch):
        # folded only when it names what a pass looks for; stale once a block closed after it
        opened = touched.following(blocks, await touched.read_open(settings, client, cluster)) if blocks else None
    except Exception as exc:  # noqa: BLE001 - the index only saves time
        return Indexed([], snapshots, scanned=f"the touched-entity index could not be read ({exc})")
    try:
        entries = await versions_store.read_entries(settings, client, cluster)
    except Exception:  # noqa: BLE001 - the records only save time: every unit is folded
        entries = {}
    idx = indexed(settings, client, cluster, snapshots, blocks, entries, opened, reader_of=reader_of)
    idx.spans = spans if spans is not None and spans.entries else None
    return idx


async def history_of(src: Source, cluster: str, kind: str, ids: list[str], selector: Selector | None,
                     progress: bool = True, *, index: Indexed | None = None) -> tuple[Related, list[dict[str, Any]]]:
    """Both passes (:func:`related`, then :func:`collect`). With an index whose groups were not all read
    (``read_index(lazy=True)``), the groups holding the names and ids asked for are read first; after
    the passes, those holding a needle they asked of a group not read are, and the passes run again,
    until every needle asked of a group not read is none of its hashes: the answers are then those of
    the whole index (a group not read answered "not here" to each needle, which is true)."""
    if index is not None and index.spans is not None:
        await index.expand([h for i in ids for h in (touched.key(kind, i), touched.name(kind, i))])
    while True:
        rel = await related(src, cluster, kind, ids, selector, progress, index=index)
        entries = await collect(src, cluster, rel, progress, index=index)
        if index is None or not index.serves or not await index.expand():
            return rel, entries
        index.restart()


def indexed(settings: Any, client: Any, cluster: str, snapshots: Snapshots | None, blocks: list[touched.Block],
            entries: dict[tuple[int, int], dict[str, Any]], opened: touched.Block | None, *,
            reader_of: Any = None) -> Indexed:
    """An :class:`Indexed` of blocks and records' entries read already (``read_index``'s, or those an
    ``IndexCache`` keeps), whose ``refresh`` reads what the worker added since."""

    async def fetch(entry: dict[str, Any]) -> versions_store.Versions | None:
        reader = reader_of(int(entry["snapshot_partition"])) if reader_of is not None else None
        return await versions_store.read(settings, entry, reader)

    async def fetch_open(b: touched.Block) -> versions_store.Versions | None:
        return await versions_store.read_open(settings, client, cluster, b.first, b.last)

    idx = Indexed(blocks, snapshots, versions=entries, fetch=fetch, fetch_open=fetch_open, opened=opened)

    async def refresh() -> None:
        """The blocks closed since, the records' entries stored since and the open block, read again
        (a block's record is stored shortly after the block: the entries are read from the last
        block that has one)."""
        for b in await touched.read_blocks(settings, client, cluster, after=idx.blocks[-1].first,
                                           reader_of=reader_of):
            if b.first == idx.blocks[-1].last + 1:
                idx.blocks.append(b)
        after = max((first for first, _ in idx.versions), default=-1)
        if any((b.first, b.last) not in idx.versions for b in idx.blocks[-RECENT:]):
            idx.versions.update(await versions_store.read_entries(settings, client, cluster, after=after))
        idx.opened = touched.following(idx.blocks, await touched.read_open(settings, client, cluster))

    idx.refresh = refresh
    return idx


#: The newest blocks whose records a history waits for (with ``_await_worker``) when the worker
#: writes records: a block's record is stored just after the batch that closed it.
RECENT = versions_store.PENDING_BLOCKS


#: A history waits at most this long (seconds) for the worker to derive the records its index does not
#: cover yet (those past the worker's last batch: a live cluster's log always has some) and to store
#: the records of its newest blocks, while it makes progress at least every ``STALL`` seconds; what
#: is still not covered is folded, from a whole state (~1 s at the large profile).
WAIT_FOR_WORKER = 2.0
STALL = 0.5


async def _await_worker(idx: Indexed, last: int) -> None:
    """Let the worker index the source's records up to ``last`` (bounded: see ``WAIT_FOR_WORKER``)."""
    if idx.refresh is None or not idx.blocks:
        return

    def progress() -> tuple[int, int]:
        """How far the index covers the log, and how many records it has."""
        return (idx.opened.last if idx.opened is not None else max(b.last for b in idx.blocks)), len(idx.versions)

    def done() -> bool:
        return progress()[0] >= last and not (
            idx.versions and any((b.first, b.last) not in idx.versions for b in idx.blocks[-RECENT:]))

    got = progress()
    start = moved = time.monotonic()
    while not done():
        now = time.monotonic()
        if now - start > WAIT_FOR_WORKER or now - moved > STALL:
            return
        await asyncio.sleep(0.05)
        try:
            await idx.refresh()
        except Exception:  # noqa: BLE001 - the index only saves time: the rest is folded
            return
        if progress() > got:
            got, moved = progress(), time.monotonic()
        idx.waited = time.monotonic() - start


def _decode_cost(idx: Indexed, cluster: str, e: dict[str, Any]) -> int:
    """What decoding the state of entry ``e`` costs, in records folded (``BYTES_PER_RECORD``):
    nothing once decoded (a fork), a delta's unheld base counted with it."""
    if int(e["offset"]) in idx._states:
        return 0
    cost = int(e.get("bytes") or 0)
    if is_delta(e) and idx.snapshots is not None and int(e["base"]) not in idx._states \
            and not idx.snapshots.holds_base(cluster, int(e["base"])):
        base = next((b for b in idx._entries or () if int(b["offset"]) == int(e["base"])), None)
        cost += int(base.get("bytes") or 0) if base is not None else 0
    return cost // BYTES_PER_RECORD


def _cheaper(idx: Indexed, cluster: str, before: int, fold_from: int) -> list[dict[str, Any]]:
    """The entries at or before ``before`` whose state plus the fold from it to ``before`` costs
    less than folding from ``fold_from``, cheapest first (a delta whose base is not held may lose to
    an older full snapshot)."""
    costs = [(_decode_cost(idx, cluster, e) + before - int(e["offset"]), -int(e["offset"]), i)
             for i, e in enumerate(idx._entries or ()) if fold_from < int(e["offset"]) <= before]
    return [idx._entries[i] for c, _, i in sorted(costs) if c < before - fold_from]  # type: ignore[index]


async def _start_from(idx: Indexed, cluster: str, first: int, before: int,
                      cur: int | None = None) -> tuple[ClusterState, int] | None:
    """A fork of the usable snapshot (or the state of a delta, not kept) at or before offset ``before`` (and at or past
    ``first - 1``, where the source starts) that costs least to decode and fold on from, with its
    offset; None when none costs less than folding from the start, or from ``cur`` (the fold's
    offset, when there is a fold)."""
    snaps = idx.snapshots
    if snaps is None:
        return None
    if idx._entries is None:
        try:
            entries = await snaps.entries(cluster)
        except Exception:  # noqa: BLE001 - a missing snapshot store only costs time
            entries = []
        idx._entries = [e for e in entries if int(e.get("reducer_version", REDUCER_VERSION)) == REDUCER_VERSION
                        and int(e["offset"]) >= first - 1]
    default = Retention()
    for e in _cheaper(idx, cluster, before, first - 1 if cur is None else cur):
        off = int(e["offset"])
        st = idx._states.get(off)
        if st is None:
            try:
                loaded = await _load(idx, e)
            except Exception:  # noqa: BLE001
                loaded = None
            # a snapshot of a worker with other retention limits folds differently from the scan
            if loaded is None or loaded.retention != default:
                continue
            idx.loads += 1
            if is_delta(e):
                # folded on as it is and not kept: keeping it to fork from would first pack the values
                # the delta put in (~30 ms at 1.5M events), and a later unit seldom starts from the
                # same delta (one in the same interval folds on); its base stays held
                return loaded, off
            st = loaded.freeze()
            while len(idx._states) >= KEEP_STATES:
                del idx._states[min(idx._states)]
            idx._states[off] = st
        return st.fork(), off
    return None


async def _load(idx: Indexed, e: dict[str, Any]) -> ClusterState | None:
    """The state of entry ``e`` (None when it cannot be read): a delta whose base this history
    decoded already is applied onto a fork of that base (the store would decode the base again:
    it holds only the base of the last delta it loaded)."""
    snaps = idx.snapshots
    assert snaps is not None
    base = idx._states.get(int(e["base"])) if is_delta(e) else None
    return await (snaps.load(e) if base is None else snaps.delta_onto(base.fork(), e))


async def _fold_units(src: Source, cluster: str, idx: Indexed, wants: Callable[[touched.Block], bool],
                      hook: _Observer, skipped: Callable[[touched.Block], None] | None = None,
                      also: Callable[[touched.Block], bool] | None = None) -> None:
    """Fold the units ``wants`` (asked in log order, as the hook widens what it wants) and the
    ones not indexed, each with ``hook`` on its events, from the state just before it. Units an
    earlier pass folded are left out (what they did is in ``idx.seen``). Of the units folded on
    the way to one, the hook sees those from the first one ``also`` wants (a later pass's guess)."""
    first, last = await src.covers()
    if not idx._units:  # (pass 1: pass 2 reads the log as pass 1 did)
        await _await_worker(idx, last)
    units = idx._units = _units(idx.blocks + ([idx.opened] if idx.opened is not None else []), first, last)
    idx.units = len(units)
    # the collector off while folding: the objects of the states and of what the passes keep live
    # till the end, and its passes over them were ~13% of an indexed history (BENCHMARKS.md)
    with no_gc():
        await _fold_wanted(src, cluster, idx, units, first, wants, hook, skipped, also)


async def _fold_wanted(src: Source, cluster: str, idx: Indexed, units: list[_Unit], first: int,
                       wants: Callable[[touched.Block], bool], hook: _Observer,
                       skipped: Callable[[touched.Block], None] | None,
                       also: Callable[[touched.Block], bool] | None) -> None:
    st: ClusterState | None = None
    cur = first - 1
    origin = cur  # where ``st`` began: the records folded into it since are ``cur - origin``
    for i, u in enumerate(units):
        if u.first in idx.done:
            continue
        if u.block is not None and not wants(u.block):
            if skipped is not None:
                skipped(u.block)
            continue
        rec = await _record_of(idx, u)
        if rec is not None and await _serve(src, cluster, idx, i, rec, hook):
            continue
        idx.folded += 1
        b = u.block
        if b is not None and b is not idx.opened and (b.first, b.last) not in idx.versions:
            idx.unrecorded += 1
        if st is None or u.first - 1 - cur > JUMP // 2:
            # from a snapshot when it saves more folding than it costs (or there is no fold yet)
            got = await _start_from(idx, cluster, first, u.first - 1, None if st is None else cur)
            if got is not None:
                st, cur = got
                origin = cur
        if st is None:
            st, cur = ClusterState.empty(cluster), first - 1
            origin = cur
        st.take_dirty()
        # the hook keeps what the unit's events did; the units before it, folded on the way, were
        # not wanted when their turn came (nothing in them can matter to this pass): it keeps what
        # they did only from the first one ``also`` wants (a later pass would fold it again)
        hook_from = u.first
        j = i - 1
        while also is not None and j >= 0 and units[j].first > cur:
            b = units[j].block
            if b is None or also(b):
                hook_from = units[j].first
            j -= 1
        idx.hook_from = hook_from
        # a short fold leaves what it touched decoded (~5 % of a history at the large profile, packing
        # values nobody reads again); a long one packs, as every fold does, to bound its memory, and
        # so does a state folded on from unit to unit past PACK_FROM records (an entity touched in
        # every block: the values left decoded would grow with the log)
        st.packs = u.last - origin > PACK_FROM
        r = await replay(src, cluster, Target(offset=u.last), start_state=st, start_offset=cur,
                         on_event=hook, progress=False)
        idx.events += r.scanned
        j = i
        while j >= 0 and units[j].first >= hook_from:
            idx.done.add(units[j].first)
            j -= 1
        cur = u.last


class _Observer:
    """The hook of an indexed pass: it keeps what each event folded did in ``idx.seen`` (then
    ``then``); for an event read from a versions record (``served``) it calls ``then_served``, which
    may read records to answer what the state held before the unit (the record itself is kept in
    ``idx.read``)."""

    def __init__(self, idx: Indexed, then: Callable[[set[Key], Any], None] | None = None,
                 then_served: Callable[[set[Key], _View], Awaitable[None]] | None = None) -> None:
        self.idx, self.then, self.then_served = idx, then, then_served
        # the totals of agents and roles are brought up to date only when one of them can matter
        self.totals = not idx.kinds.isdisjoint(TOTALS_KINDS)

    def __call__(self, rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        idx, totals = self.idx, self.totals
        dirty = st.take_dirty(totals=totals)
        if rec.offset < idx.hook_from:  # on the way to the unit (its dirty marks taken all the same)
            return
        value, dumps, kinds = (st.entity if totals else st.peek), orjson.dumps, idx.kinds
        values = {k: dumps(value(*k)) for k in dirty if k[0] in kinds}
        occ = ev.get("occurred_at")
        idx.seen[rec.offset] = _Seen(rec, anns, dirty, values, occ if type(occ) is str else None,
                                     ev.get("correlation_id"))
        if self.then is not None:
            self.then(dirty, st)

    async def served(self, off: int, view: _View) -> None:
        if self.then_served is not None:
            await self.then_served(view.record.dirty_at(off), view)


# -- units read from their versions records (store/versions.py) -----------------------------

#: Versions records an indexed history keeps decoded (~5-10 MB each at the large profile).
KEEP_RECORDS = 64


class _Missing(Exception):
    """The view does not know yet what the state held before its unit (internal): ``what`` is
    ``("value", key)`` or ``("tasks", task_id)``; resolved by :meth:`_View.resolve`."""

    def __init__(self, what: tuple[str, Any]) -> None:
        super().__init__(what)
        self.what = what


async def _record_of(idx: Indexed, u: _Unit) -> versions_store.Versions | None:
    """The versions record of unit ``u`` when it is a whole block that has a readable one."""
    b = u.block
    if idx.fetch is None or b is None or (u.first, u.last) != (b.first, b.last):
        return None
    if b is idx.opened:
        return await _open_record_of(idx, b)
    entry = idx.versions.get((b.first, b.last))
    if entry is None:
        return None
    if b.first in idx._records:
        return idx._records[b.first]
    try:
        got = await idx.fetch(entry)
    except Exception:  # noqa: BLE001 - a record only saves time: the unit is folded
        got = None
    if got is not None and (got.first, got.last) != (b.first, b.last):
        got = None
    while len(idx._records) >= KEEP_RECORDS:
        del idx._records[next(iter(idx._records))]
    idx._records[b.first] = got
    return got


async def _open_record_of(idx: Indexed, b: touched.Block) -> versions_store.Versions | None:
    """The open block's record, joined from its parts (read once a history)."""
    held = idx._open_record
    if held is not None and held[:2] == (b.first, b.last):
        return held[2]
    got = None
    if idx.fetch_open is not None:
        try:
            got = await idx.fetch_open(b)
        except Exception:  # noqa: BLE001 - a record only saves time: the block is folded
            got = None
    idx._open_record = (b.first, b.last, got)
    return got


async def _serve(src: Source, cluster: str, idx: Indexed, i: int, record: versions_store.Versions,
                 obs: _Observer) -> bool:
    """Unit ``i`` read from its versions record: what the record says each applied event did, to
    ``obs`` in log order. The log is not read: pass 1's links need only the record, and pass 2
    reads the records of the events it shows (``collect``)."""
    u = idx._units[i]
    view = _View(idx, i, record, src, cluster)
    for off in record.applied:
        view.at = off
        await obs.served(off, view)
    idx.served += 1
    idx.read[u.first] = (u, record)
    idx.done.add(u.first)
    return True


class _View:
    """What pass 1's links read of the state (``entity``, ``peek``, ``task_ids``) right after the
    event at ``at`` of a unit read from its versions record: the record's versions, and for what
    the unit had not changed by then, the state before the unit (:meth:`resolve`), as the records
    of the blocks before it hold it (found through the index's hashes), or, past a block with no
    record or a range with no index, the state at that unit's end (folded from the snapshot before
    it: it answers for everything before too)."""

    def __init__(self, idx: Indexed, i: int, record: versions_store.Versions, src: Source, cluster: str) -> None:
        self.idx, self.i, self.record, self.src, self.cluster = idx, i, record, src, cluster
        self.at = record.first
        #: values before the unit (None: not there), and the task keys of a Mesos task id before it
        self.before: dict[Key, Any] = {}
        self.tasks_before: dict[str, set[Key]] = {}

    def entity(self, kind: str, id: str) -> dict[str, Any] | None:
        k = (kind, id)
        found, v = self.record.value_after(k, self.at)
        if found:
            out: dict[str, Any] | None = v
            return out
        if k not in self.before:
            raise _Missing(("value", k))
        got: dict[str, Any] | None = self.before[k]
        return got

    peek = entity

    def may_hold(self, k: Key, needles: list[bytes]) -> bool:
        """False when ``k``'s value right after ``at``, as the record holds it, holds none of
        ``needles`` (``Versions.may_hold``); True when it may, or the record does not hold it."""
        found, raw = self.record.raw_after(k, self.at)
        return not found or self.record.may_hold(raw, needles)

    def task_ids(self, task_id: str) -> list[str]:
        """As ``ClusterState.task_ids``: the task entities (still there) whose Mesos task id it is."""
        cands = self.tasks_before.get(task_id)
        if cands is None:
            raise _Missing(("tasks", task_id))
        cands = cands | {k for k, vs in self.record.values.items() if k[0] == "task" and _is_task(k, vs, task_id)}
        out = []
        for k in cands:
            v = self.entity(*k)
            if v is not None and v.get("task_id") == task_id:
                out.append(k[1])
        return sorted(out)

    async def resolve(self, m: _Missing) -> None:
        what, arg = m.what
        if what == "value":
            self.before[arg] = await self._before(arg, touched.key(*arg))
            return
        # every block where a task of this Mesos task id changed holds name("task", task_id)
        # (its task_id field while it is there, its id's tail once gone: touched.py)
        found: set[Key] = set()
        async for got in self._holders(touched.name("task", arg)):
            if isinstance(got, ClusterState):  # (and everything before it)
                found.update(("task", t) for t in got.task_ids(arg))
            else:
                found.update(k for k, vs in got.values.items() if k[0] == "task" and _is_task(k, vs, arg))
        self.tasks_before[arg] = found
        for k in found:
            if k not in self.before:
                self.before[k] = await self._before(k, touched.key(*k))

    async def _holders(self, needle: int) -> AsyncIterator[versions_store.Versions | ClusterState]:
        """The records of the units before this one whose blocks hold ``needle``, newest first; a
        unit with no record or no index ends it with the state at its end."""
        idx = self.idx
        for j in range(self.i - 1, -1, -1):
            w = idx._units[j]
            if w.block is not None and not w.block.holds(needle):
                continue
            got = await _record_of(idx, w) if w.block is not None else None
            idx.lookups += 1
            if got is not None:
                yield got
                continue
            yield await self._state_after(w)
            return

    async def _state_after(self, w: _Unit) -> ClusterState:
        """The state at the end of unit ``w``, folded from the snapshot (or delta) that costs least
        (kept for the next lookups: ``KEEP_LOOKUP_STATES``)."""
        idx = self.idx
        st = idx._lookup_states.get(w.last)
        if st is not None:
            return st
        first = idx._units[0].first
        got = await _start_from(idx, self.cluster, first, w.last)
        start, cur = got if got is not None else (ClusterState.empty(self.cluster), first - 1)
        st = (await replay(self.src, self.cluster, Target(offset=w.last), start_state=start, start_offset=cur,
                           progress=False)).state if cur < w.last else start
        idx.lookup_folds += 1
        while len(idx._lookup_states) >= KEEP_LOOKUP_STATES:
            del idx._lookup_states[next(iter(idx._lookup_states))]
        idx._lookup_states[w.last] = st
        return st

    async def _before(self, k: Key, needle: int) -> Any:
        """``k``'s value at the end of the unit before this one (None: not in the state)."""
        async for got in self._holders(needle):
            if isinstance(got, ClusterState):
                return got.entity(*k)
            found, v = got.value_after(k, got.last)
            if found:
                return v
        return None


#: States at a unit's end a history keeps for its lookups (``_View._state_after``).
KEEP_LOOKUP_STATES = 2


def _is_task(k: Key, versions: list[tuple[int, bytes | None]] | None, task_id: str) -> bool:
    """Whether the task entity ``k`` may carry Mesos task id ``task_id``: its id ends so, or one of
    its versions (canonical bytes) names it (decoded only when its bytes hold the id)."""
    if k[1].endswith("/" + task_id):
        return True
    needle = (orjson.dumps(task_id),)
    return any(v is not None and versions_store.Versions.may_hold(v, needle)
               and orjson.loads(v).get("task_id") == task_id for _, v in versions or ())


#: Kinds whose values hold totals brought up to date lazily (reducer/aggregates.py).
TOTALS_KINDS = frozenset({"agent", "role"})

#: Kinds ``_link`` relates an entity to (with the history's own kind, what ``Related.keys`` may hold).
LINKED_KINDS = ("pod", "task", "offer")


@dataclass
class Related:
    targets: set[Key] = field(default_factory=set)
    keys: set[Key] = field(default_factory=set)
    correlation: set[str] = field(default_factory=set)


def _link(st: Any, key: Key, rel: Related) -> None:  # a ClusterState, or a _View
    kind, id = key
    v = st.entity(kind, id)
    if v is None:
        return
    if kind == "pod":
        if v.get("uid"):
            rel.correlation.add(str(v["uid"]))
        if v.get("task_id"):  # k8sm's task id; the task entity's id carries its framework too
            for task in st.task_ids(str(v["task_id"])):
                rel.keys.add(("task", task))
            rel.correlation.add(str(v["task_id"]))
    if kind == "task":
        if v.get("pod"):
            rel.keys.add(("pod", str(v["pod"])))
        if v.get("offer_id"):
            rel.keys.add(("offer", str(v["offer_id"])))
            rel.correlation.add(str(v["offer_id"]))


#: Fields of an entity's value that name it the way people do (``agent/HOST``, ``pod/NAME``).
NAME_FIELDS = ("hostname", "name", "task_id")


def named(kind: str, id: str, value: dict[str, Any] | None, name: str) -> bool:
    """Is the entity ``kind/id`` the one ``name`` means: its id, or one of ``NAME_FIELDS``?"""
    if id == name:
        return True
    if value is None or kind in ("offer", "inverse_offer"):  # offers have ids only
        return False
    return any(value.get(f) == name for f in NAME_FIELDS)


async def related(src: Source, cluster: str, kind: str, ids: list[str], selector: Selector | None,
                  progress: bool = True, progress_from: int | None = None, *,
                  index: Indexed | None = None) -> Related:
    """Pass 1: the targets (by id, name or label selector) and the entities/correlation ids
    linked to them. A name that is no id becomes every entity it names (see ``named``).

    ``index``: fold only the units that can matter (module docstring), when it can serve
    this history (``usable``); else the whole log, saying so on stderr with ``progress``."""
    rel = Related()
    rel.targets = {(kind, i) for i in ids}
    rel.keys = set(rel.targets)
    seen_ids: set[str] = set()  # the given ids that are ids of entities
    wanted = set(ids)

    # a value read from a versions record whose bytes hold none of the names asked for is not
    # decoded to compare its name fields (most versions an agent's history passes are other agents')
    needles = [orjson.dumps(n) for n in wanted]

    def links(dirty: set[Key], st: Any) -> None:  # a ClusterState, or a _View of a unit read
        for k in dirty:
            if k[0] == kind and k not in rel.targets:
                if selector is None and k[1] not in wanted and isinstance(st, _View) and not st.may_hold(k, needles):
                    continue
                v = st.entity(*k) if kind in TOTALS_KINDS else st.peek(*k)
                if (selector is not None and v is not None and selector.matches(v.get("labels"))) or (
                        wanted and v is not None and any(named(kind, k[1], v, n) for n in wanted)):
                    rel.targets.add(k)
                    rel.keys.add(k)
            elif k[0] == kind and k[1] in wanted:
                seen_ids.add(k[1])
            if k in rel.keys:
                before = len(rel.keys)
                _link(st, k, rel)
                if len(rel.keys) > before:  # a task's pod -> that pod's links too
                    for k2 in list(rel.keys):
                        _link(st, k2, rel)

    idx = await usable(src, index, kind, selector)
    if idx is not None:
        hashes: dict[Key, int] = {}
        names = [touched.name(kind, n) for n in wanted]

        def wants(b: touched.Block) -> bool:
            for k in rel.keys:
                h = hashes.get(k)
                if h is None:
                    h = hashes[k] = touched.key(*k)
                if b.holds(h):
                    return True
            return b.holds_any(names)

        def later(b: touched.Block) -> bool:  # pass 2's needles beyond pass 1's: the correlation ids
            return b.holds_any(touched.corr(c) for c in rel.correlation)

        async def links_served(dirty: set[Key], view: _View) -> None:
            if not any(k[0] == kind or k in rel.keys for k in dirty):
                return  # (what ``links`` looks at: most events of a unit read touch neither)
            # what the view does not know yet is read, and the links taken again from where they were
            while True:
                was = set(rel.targets), set(rel.keys), set(rel.correlation), set(seen_ids)
                try:
                    links(dirty, view)
                    return
                except _Missing as m:
                    rel.targets, rel.keys, rel.correlation = was[0], was[1], was[2]
                    seen_ids.clear()
                    seen_ids.update(was[3])
                    await view.resolve(m)

        idx.kinds = frozenset({kind, *LINKED_KINDS})
        await _fold_units(src, cluster, idx, wants, _Observer(idx, links, links_served), also=later)
    else:
        _say_scan(index, progress)

        def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
            links(st.take_dirty(), st)

        await replay(src, cluster, Target(), on_event=hook, progress=progress,
                     progress_from=PROGRESS_FROM if progress_from is None else progress_from,
                     label="history 1/2: finding links")
    # a name that matched entities by name is no entity of its own: drop it (agent/HOST -> agent/<ids>)
    for i in wanted - seen_ids:
        if any(k[0] == kind and k[1] != i for k in rel.targets):
            rel.targets.discard((kind, i))
            rel.keys.discard((kind, i))
    return rel


def _say_scan(index: Indexed | None, progress: bool) -> None:
    if progress and index is not None and index.scanned:
        print(f"history: scanning the whole log: {index.scanned}", file=sys.stderr, flush=True)


#: An event pass 2 shows: its offset, its log record, its annotations, its dirty set, and the value
#: of an entity right after it.
_Shown = tuple[int, LogRecord, list[dict[str, Any]], set[Key], Callable[[Key], Any]]


async def collect(src: Source, cluster: str, rel: Related, progress: bool = True,
                  extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                  progress_from: int | None = None, *, index: Indexed | None = None) -> list[dict[str, Any]]:
    """Pass 2: the events that touched a related entity or carry a related correlation id.

    ``extra(event)``: more fields for the event's entry (the API marks what a
    namespace-limited token may see of the event itself)."""
    entries: list[dict[str, Any]] = []
    open_cond: dict[Key, tuple[int, str, str]] = {}  # key -> (entry index, condition, since)
    last_time = [""]

    def add(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], dirty: set[Key], occ: str | None,
            value_of: Callable[[Key], dict[str, Any] | None]) -> None:
        """The entry of one applied event (when it touched a related entity or carries a related
        correlation id); ``value_of(key)``: a copy of the entity's value right after the event."""
        if occ:
            last_time[0] = max(last_time[0], occ)
        touched = sorted(k for k in dirty if k in rel.keys)
        corr = ev.get("correlation_id")
        if not touched and corr not in rel.correlation:
            return
        results = {}
        for k in touched:
            v = value_of(k)
            cond = condition(v)
            results[f"{k[0]}/{k[1]}"] = {"condition": cond, "value": v}
            since = (v or {}).get("since") or occ or ""
            prev = open_cond.get(k)
            if prev is None or prev[1] != cond:
                if prev is not None:
                    entries[prev[0]]["results"][f"{k[0]}/{k[1]}"]["lasted_seconds"] = _secs(prev[2], since)
                open_cond[k] = (len(entries), cond, since)
        lag = lag_seconds(occ, rec.timestamp)
        entries.append({
            "offset": rec.offset, "event_id": ev.get("event_id"), "type": ev.get("type"),
            "occurred_at": occ, "recorded_at": iso_of_ms(rec.timestamp),
            "ingest_lag_seconds": None if lag is None else round(lag, 6),
            "actor": ev.get("actor"), "correlation_id": corr, "causation_id": ev.get("causation_id"),
            "reason": _reason(ev), "results": results,
            "annotations": [{"kind": a.get("kind"), "message": a.get("message")} for a in anns],
            **(extra(ev) if extra is not None else {}),
        })

    if index is not None and index.serves:
        needles = [touched.key(*k) for k in rel.keys] + [touched.corr(c) for c in rel.correlation]

        def skipped(b: touched.Block) -> None:  # "held for ... by the end of the log" needs the log's last time
            if b.max_occurred_at:
                last_time[0] = max(last_time[0], b.max_occurred_at)

        # only the units pass 1 left out: what the others did is in index.seen
        index.kinds = index.kinds | {k for k, _ in rel.keys}  # (pass 1 set them: every kind rel.keys holds)
        await _fold_units(src, cluster, index, lambda b: b.holds_any(needles), _Observer(index), skipped)
        shown: list[_Shown] = []
        for off, x in index.seen.items():
            if x.occurred_at:
                last_time[0] = max(last_time[0], x.occurred_at)
            if not (x.dirty & rel.keys) and x.correlation_id not in rel.correlation:
                continue
            shown.append((off, x.rec, x.anns, x.dirty, x.value_of))
        shown += await _read_shown(src, cluster, index, rel, last_time)
        for _, r, anns, dirty, value_of in sorted(shown, key=lambda t: t[0]):
            ev = decode_fast(r.value or b"")
            occ = ev.get("occurred_at")
            add(r, ev, anns, dirty, occ if type(occ) is str else None, value_of)
    else:
        def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
            occ = ev.get("occurred_at")
            add(rec, ev, anns, st.take_dirty(), occ if type(occ) is str else None,
                lambda k: orjson.loads(orjson.dumps(st.entity(*k))))

        await replay(src, cluster, Target(), on_event=hook, progress=progress,
                     progress_from=PROGRESS_FROM if progress_from is None else progress_from,
                     label="history 2/2: collecting")
    for k, (i, _cond, since) in open_cond.items():
        r = entries[i]["results"][f"{k[0]}/{k[1]}"]
        r["lasted_seconds"] = None
        r["still_at_end"] = True
        r["held_for_seconds_by_end"] = _secs(since, last_time[0])
    return entries


async def _read_shown(src: Source, cluster: str, idx: Indexed, rel: Related, last_time: list[str]
                     ) -> list[_Shown]:
    """The events of the units read from versions records that pass 2 shows: those whose dirty
    set holds a related key, and those carrying a related correlation id (looked for only in a
    unit whose block holds one). Only their records are read from the log."""
    corr_needles = [touched.corr(c) for c in rel.correlation]
    want: dict[int, versions_store.Versions] = {}
    for u, record in idx.read.values():
        b = u.block
        assert b is not None
        if b.max_occurred_at:  # (every applied event's time: the block keeps their latest)
            last_time[0] = max(last_time[0], b.max_occurred_at)
        corr = bool(corr_needles) and b.holds_any(corr_needles)
        for off in record.applied:
            if off in idx.seen:  # (folded too, on the way to a later unit: pass 1 kept it)
                continue
            if corr or record.dirty_at(off) & rel.keys:  # (``add`` keeps those with a related id)
                want[off] = record
    recs = await _records_at(src, sorted(want))
    idx.events += len(recs)
    out: list[_Shown] = []
    for off, record in want.items():
        r = recs.get(off)
        if r is None:
            raise EnvironmentProblem(
                f"history: the log read has no record of cluster {cluster} at offset {off}, which the "
                "worker's versions record of that block names",
                hint="the index in etcd is of another log than the one read (another topic or a recreated one "
                     "with the same etcd prefix?): read the log the worker derives, or rebuild its derivation "
                     "(`kmevents verify --repair`)")
        out.append((off, r, record.anns.get(off, []), record.dirty_at(off), _value_after(record, off)))
    return out


def _value_after(record: versions_store.Versions, off: int) -> Callable[[Key], Any]:
    """An entity's value right after the event at ``off``, as ``record`` holds it."""
    return lambda k: record.value_after(k, off)[1]


#: Offsets this close together are read in one range (a fetch brings many records anyway).
NEAR = 64


async def _records_at(src: Source, offsets: list[int]) -> dict[int, LogRecord]:
    """The cluster's records at ``offsets`` (ascending), read in ranges of nearby offsets (through
    the source's reader of small fetches, when it has one)."""
    for_points = getattr(src, "for_points", None)
    if for_points is not None:
        src = for_points()
    out: dict[int, LogRecord] = {}
    i = 0
    while i < len(offsets):
        j = i
        while j + 1 < len(offsets) and offsets[j + 1] - offsets[j] <= NEAR:
            j += 1
        want = set(offsets[i:j + 1])
        async for batch in src.batches(offsets[i], offsets[j]):
            for r in batch:
                if r.offset in want:
                    out[r.offset] = r
        i = j + 1
    return out


def _reason(ev: dict[str, Any]) -> str | None:
    pl = obj(ev, "payload")
    st = obj(pl, "status")
    parts = [str(x) for x in (st.get("state"), st.get("reason"), pl.get("reason"), st.get("message") or pl.get("message"))
             if x]
    return " ".join(parts) if parts else None


def _secs(a: str, b: str) -> float | None:
    try:
        return round((micros_of(b) - micros_of(a)) / 1e6, 6)
    except ValueError:
        return None
