"""``kmevents verify --versions``: the worker's entity-versions records and touched-entity index
against a fold of the log.

``kmevents history`` reads most of what it shows from the versions records the worker stores for
each closed block of the touched-entity index, and from the parts its live batches write of the
open block (kmevents/store/versions.py). A wrong record would make a wrong history with nothing
else amiss: etcd's entities, the snapshots and the chain are checked by ``verify`` itself, the
records are not. This check folds the cluster's log once more from its start (the replay
engine, as history's full scan folds it), captures each block that has a record exactly as the
worker does (after each applied event, the entities it changed and their canonical bytes:
``Capture``), and compares:

- each closed block's stored record with the capture, byte for byte (a record of an earlier
  format by what it holds; a record whose chunks cannot be read is counted as ``unreadable``:
  history folds that block, nothing is wrong);
- the open block's parts, joined through its last offset, with the capture of the block so far
  (parts that do not cover it are not used by history, and not checked);
- each block of the touched-entity index (closed ones, grouped ones included, and the open one)
  with what its events changed (``_IndexCheck``): a block's hashes must hold every entity its
  applied events changed (its key, and the names of its value after its last change there) and
  every correlation id they carry. History folds or reads only the blocks whose hashes hold what
  it looks for, so a block that lacks one hides those events from every history.

A record that differs, or a block that lacks a hash, is a finding of kind ``versions`` (drift:
exit 1); the fix is to delete the record's entry or the block's key (or its group's entry):
history then folds that range.

Cost: one more fold of the whole log with a capture per event, blocks folded 16 at a time and
compared as they go: at the large profile's 1.5M events 106 s CPU and 425 MiB for the records,
123 s with the index's blocks too, against 64 s for a plain fold of the same log (x1.7-1.9;
BENCHMARKS.md); opt-in for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents import chain, layout
from kmevents.progress import progress_bar
from kmevents.reducer import ClusterState
from kmevents.settings import Settings
from kmevents.store import touched
from kmevents.store import versions as versions_store
from kmevents.store.snapshots import read_bytes

Key = tuple[str, str]


@dataclass
class VersionsCheck:
    """What ``check`` found: records compared, parts of the open block compared (1 when they
    covered it), records whose bytes could not be read, and each record that differs."""

    checked: int = 0
    open_checked: int = 0
    unreadable: int = 0
    #: closed blocks with no record (history folds them; ``snapshots backfill`` builds them)
    without_record: int = 0
    #: blocks of the touched-entity index checked (``_IndexCheck``), the open block's included
    blocks_checked: int = 0
    #: ``(key, detail)`` of each record unlike the fold's capture
    differ: list[tuple[str, str]] = field(default_factory=list)
    #: why nothing was checked (the log read does not start at the log's beginning)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "open_block_checked": self.open_checked, "unreadable": self.unreadable,
                "without_record": self.without_record,
                "index_blocks_checked": self.blocks_checked, "differ": len(self.differ), "skipped": self.skipped}


def first_difference(stored: versions_store.Versions, folded: versions_store.Versions) -> str:
    """Where a stored record first differs from the fold's, in words."""
    if stored.applied != folded.applied:
        extra = sorted(set(stored.applied) ^ set(folded.applied))[:3]
        return f"the applied events differ (offsets {extra})"
    if stored.anns != folded.anns:
        off = min(o for o in set(stored.anns) | set(folded.anns) if stored.anns.get(o) != folded.anns.get(o))
        return f"the annotations of the event at offset {off} differ"
    for k in sorted(set(stored.values) | set(folded.values)):
        a, b = stored.values.get(k), folded.values.get(k)
        if a != b:
            offs = sorted({o for o, _ in a or ()} ^ {o for o, _ in b or ()}) or sorted(
                o for (o, x), (_, y) in zip(a or (), b or (), strict=False) if x != y)
            return f"{k[0]}/{k[1]}: its versions differ (offsets {offs[:3]})"
    return "the bytes differ"


async def check(settings: Settings, src: Source, cluster: str, client: Any, *, progress: bool = False,
                generation: str | None = None) -> VersionsCheck:
    """Compare the cluster's versions records (and its open block's parts) with a fold of ``src``
    (the cluster's log from its start)."""
    out = VersionsCheck()
    if await src.chain_start() != chain.GENESIS:
        out.skipped = "the log read does not start at the log's beginning (the records hold what a fold from it makes)"
        return out
    gen = generation or layout.live_generation()
    blocks = await touched.read_blocks(settings, client, cluster, gen)
    entries = await versions_store.read_entries(settings, client, cluster, gen)
    opened = await touched.read_open(settings, client, cluster, gen)
    if blocks:
        opened = touched.following(blocks, opened)
    parts = None
    if opened is not None:
        parts = await versions_store.read_open(settings, client, cluster, opened.first, opened.last, gen)
    # the blocks to capture, in log order: those with a record, and the open block when its parts cover it
    todo: list[tuple[int, int, dict[str, Any] | None]] = []
    for b in blocks:
        # (blocks may overlap after a crash, each complete for its range: one capture at a time
        # checks those that follow each other, and passes over the rest)
        if (b.first, b.last) in entries and (not todo or b.first > todo[-1][1]):
            todo.append((b.first, b.last, entries[(b.first, b.last)]))
        elif (b.first, b.last) not in entries:
            out.without_record += 1
    if parts is not None and opened is not None and (not todo or opened.first > todo[-1][1]):
        todo.append((opened.first, opened.last, None))
    # the index's blocks that follow each other (grouped ones included), and the open block after them
    iblocks: list[touched.Block] = []
    for b in [*blocks, *([opened] if opened is not None else [])]:
        if not iblocks or b.first > iblocks[-1].last:
            iblocks.append(b)
    index = _IndexCheck(iblocks)
    if not todo and not iblocks:
        return out
    caps = versions_store.BlockCaptures(cluster, [(first, last) for first, last, _ in todo])

    def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        dirty = st.take_dirty()
        caps.event(rec.offset, dirty, st, anns)
        index.event(rec.offset, ev, dirty, st)

    # folded GROUP blocks at a time, each group's records compared and let go before the next
    # (held to the end, the raw records of the large profile were 2.6 GB)
    first_offset, _ = await src.covers()
    st, cur = ClusterState.empty(cluster), first_offset - 1
    stops = [todo[min(g + GROUP, len(todo)) - 1][1] for g in range(0, len(todo), GROUP)]
    if iblocks and (not stops or iblocks[-1].last > stops[-1]):
        stops.append(iblocks[-1].last)  # (the index's blocks past the last record's)
    with progress_bar("verify: the versions records and the index", total=len(stops), disable=not progress) as bar:
        for through in stops:
            st = (await replay(src, cluster, Target(offset=through), start_state=st, start_offset=cur,
                               on_event=hook, progress=False)).state
            cur = through
            caps.close_through(through + 1)
            index.close_through(through + 1)
            for i, raw in caps.take():
                first, last, entry = todo[i]
                await _compare(settings, out, first, last, entry, raw, parts)
            bar.advance(1)
    out.blocks_checked = index.checked
    out.differ.extend(index.differ)
    return out


class _IndexCheck:
    """The touched-entity index's blocks against the fold. What history relies on is that a block's
    set never misses (store/touched.py): for every applied event of the block, its correlation id's
    hash, and for every entity it changed, its key's hash and the names of its value after its last
    change in the block (what the worker hashes at the flush after that change; the names of values
    it had before may be missing, and extra hashes are allowed). Kinds the index does not serve
    (``touched.UNSERVED_KINDS``) are not checked."""

    def __init__(self, blocks: list[touched.Block]) -> None:
        self.blocks, self.i, self.checked = blocks, 0, 0
        self.hashes: dict[Key, list[int]] = {}
        self.corrs: set[str] = set()
        #: ``(key, detail)`` of each block that lacks a hash
        self.differ: list[tuple[str, str]] = []

    def event(self, offset: int, ev: dict[str, Any], dirty: set[Key], st: ClusterState) -> None:
        self.close_through(offset)
        if self.i < len(self.blocks) and self.blocks[self.i].first <= offset:
            c = ev.get("correlation_id")
            if type(c) is str:
                self.corrs.add(c)
            read, hashes = st.entity_read, self.hashes
            for k in dirty:
                if k[0] not in touched.UNSERVED_KINDS:
                    hashes[k] = touched.entity_hashes(k[0], k[1], read(k[0], k[1]))

    def close_through(self, offset: int) -> None:
        """Check every block that ends before ``offset``."""
        while self.i < len(self.blocks) and self.blocks[self.i].last < offset:
            b = self.blocks[self.i]
            lacks = sorted(f"{k[0]}/{k[1]}" for k, hs in self.hashes.items() if not all(map(b.holds, hs)))
            lacks += sorted(f"correlation id {c}" for c in self.corrs if not b.holds(touched.corr(c)))
            if lacks:
                more = f" and {len(lacks) - 3} more" if len(lacks) > 3 else ""
                self.differ.append((f"touched/{b.first}..{b.last}",
                                    f"its hashes lack what it changed: {', '.join(lacks[:3])}{more}"))
            self.checked += 1
            self.i += 1
            self.hashes, self.corrs = {}, set()


#: Blocks folded between two comparisons (their raw records held meanwhile: ~1.6 MB each at the
#: large profile).
GROUP = 16


async def _compare(settings: Settings, out: VersionsCheck, first: int, last: int, entry: dict[str, Any] | None,
                   raw: bytes, parts: versions_store.Versions | None) -> None:
    """One block's capture against its stored record (``entry``), or against the open block's
    parts (``entry`` None)."""
    key = f"versions/{first}..{last}"
    if entry is None:
        assert parts is not None
        folded = versions_store.decode(raw)
        out.open_checked += 1
        if (parts.applied, parts.anns, parts.values) != (folded.applied, folded.anns, folded.values):
            out.differ.append((f"{key} (open block)", first_difference(parts, folded)))
        return
    stored = await read_bytes(settings, entry)
    if stored is None:
        out.unreadable += 1
        return
    out.checked += 1
    detail = difference(stored, raw)
    if detail is not None:
        out.differ.append((key, detail))


def difference(stored: bytes, raw: bytes) -> str | None:
    """Where a stored record's bytes differ from the capture's (``raw``), in words; None when
    they are the same, or hold the same in an earlier format (a worker before FORMAT's bump)."""
    if stored == raw:
        return None
    try:
        was, now = versions_store.decode(stored), versions_store.decode(raw)
    except versions_store.VersionsError as exc:
        return str(exc)
    if (was.applied, was.anns, was.values) == (now.applied, now.anns, now.values):
        return None
    return first_difference(was, now)


__all__ = ["VersionsCheck", "check", "difference", "first_difference"]
