"""Building the entity-versions records the worker did not store (``kmevents snapshots backfill``).

History reads each closed block of the touched-entity index from its *versions record*
(kmevents/store/versions.py) and folds a block that has none from the stored state before it
(~0.5-1 s a snapshot interval at the large profile, against ~2-5 ms a record read). A block has
no record when:

- the worker ran with ``--no-versions``: the capture costs it ~30-45 us an event, a fifth to a
  third of its CPU (BENCHMARKS.md, "Where the worker's time went", "History's versions records
  built beside the worker"), so a cluster that needs the worker's
  whole speed turns it off and lets this build the records beside it;
- a restart re-folded the block's first records (the worker's capture of it is incomplete);
- the record's write failed (logged and counted by the worker, never retried);
- the block is older than the worker's records, or its record was deleted (``verify --versions``
  tells to delete a record that differs from the fold).

:class:`Backfill` folds each run of such blocks from the newest stored state before it (or on
from where its last block ended, when that is nearer), captures each block exactly as the worker
does (``Capture``: after each applied event, the entities it changed and their canonical bytes),
and stores the record as the worker does: chunks to the snapshots topic, then the index entry in
etcd. A record is a function of the log, so a block built twice gets the same bytes; a crash
between the chunks and the entry leaves chunks no entry names, and the next run builds the
block again.

The newest closed blocks (``skip_newest``, default 3) are left to the worker, which stores a
block's record just after the batch that closed it: two writers of one record would each send
chunks under the same keys, and the compacted topic keeps only the later ones. With a worker
that writes no records (``--no-versions``), give 0.

Worked example: blocks 0..199, 200..399, 400..599, 600..799 closed, records for 200..399 only,
a snapshot at 399: the backfill folds 0..199 from the empty state (capturing), folds on to 399
(not capturing: that block has its record), captures 400..599, then 600..799, and stores three
records; a second run finds nothing to build.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents import chain, layout
from kmevents.progress import progress_bar
from kmevents.reducer import REDUCER_VERSION, ClusterState
from kmevents.settings import Settings
from kmevents.store import touched
from kmevents.store import versions as versions_store
from kmevents.store.snapshots import Snapshots, compress

log = logging.getLogger("kmevents.replay.versions_backfill")

#: The newest closed blocks left to the worker (see the module docstring).
SKIP_NEWEST = versions_store.PENDING_BLOCKS
#: Load a stored state rather than fold on when the next block to build starts this many records
#: past the fold (history's ``JUMP``: a state's load at the large profile costs about as much as
#: folding a few thousand records).
JUMP = 4_000
#: Records compressed and written while the next blocks fold (each ~0.2-1.6 MB raw).
WRITES_AHEAD = 2
#: Consecutive blocks folded in one read of the log (their raw records held meanwhile: ~1.6 MB
#: each at the large profile), not a read (a seek and a fetch) per block.
RUN_BLOCKS = 16


@dataclass
class Pass:
    """What one pass over a cluster's index did."""

    cluster: str
    #: closed blocks of the index, and those that had a record already
    blocks: int = 0
    had: int = 0
    #: ``(first, last)`` of each block without a record, in log order (the ones built, or with
    #: ``dry_run`` the ones a run would build)
    missing: list[tuple[int, int]] = field(default_factory=list)
    built: int = 0
    #: raw and stored bytes of the records built
    bytes: int = 0
    stored_bytes: int = 0
    #: blocks without a record left to the worker (the newest ``skip_newest``)
    left_to_worker: int = 0
    #: blocks passed over: they overlap the block before them (a crash between two workers'
    #: closes; history does not use them either)
    overlapping: int = 0
    #: why nothing could be built, when so
    skipped: str | None = None
    #: stored states loaded, and records folded
    loads: int = 0
    folded: int = 0
    seconds: float = 0.0

    def add(self, later: Pass) -> None:
        """Take ``later`` (a later pass over the same cluster) into this running total: what was
        built, loaded, folded and spent is summed; the index's view (blocks, records, missing ones,
        why nothing could be built) is the later pass's."""
        self.built += later.built
        self.bytes += later.bytes
        self.stored_bytes += later.stored_bytes
        self.loads += later.loads
        self.folded += later.folded
        self.seconds += later.seconds
        self.blocks, self.had, self.missing = later.blocks, later.had, later.missing
        self.left_to_worker, self.overlapping, self.skipped = later.left_to_worker, later.overlapping, later.skipped

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "blocks": self.blocks, "had_records": self.had,
                "missing": len(self.missing), "built": self.built, "bytes": self.bytes,
                "stored_bytes": self.stored_bytes, "left_to_worker": self.left_to_worker,
                "overlapping": self.overlapping, "states_loaded": self.loads, "records_folded": self.folded,
                "seconds": round(self.seconds, 3), "skipped": self.skipped,
                "missing_blocks": [[f, last] for f, last in self.missing]}


class Backfill:
    """One cluster's backfill. It keeps the state its last pass folded to (a follower's next pass
    folds on from it when the next block to build is near), so a long-lived one is cheap to call
    again: ``await b.run(source)`` per pass.

    ``writer``: a :class:`~kmevents.store.snapshots.SnapshotWriter` (None with ``dry_run``);
    ``snapshots``: the stored states a run starts from (None: from the log's start)."""

    def __init__(self, settings: Settings, cluster: str, client: Any, *, snapshots: Snapshots | None,
                 writer: Any, partition: int, generation: str | None = None, skip_newest: int = SKIP_NEWEST,
                 jump: int = JUMP) -> None:
        self.settings, self.cluster, self.client = settings, cluster, client
        self.snapshots, self.writer, self.partition = snapshots, writer, partition
        self.generation = generation or layout.live_generation()
        self.skip_newest, self.jump = skip_newest, jump
        #: the fold kept between blocks and passes, and the offset it is at
        self.state: ClusterState | None = None
        self.at = -1

    async def plan(self, out: Pass) -> list[touched.Block]:
        """The closed blocks to build, in log order (filling ``out``'s counts)."""
        gen = self.generation
        blocks = await touched.read_blocks(self.settings, self.client, self.cluster, gen)
        entries = await versions_store.read_entries(self.settings, self.client, self.cluster, gen)
        out.blocks = len(blocks)
        chained: list[touched.Block] = []
        for b in blocks:  # (a crash may leave overlapping blocks: only those that follow each other count)
            if chained and b.first <= chained[-1].last:
                out.overlapping += 1
            else:
                chained.append(b)
        newest = {(b.first, b.last) for b in chained[max(0, len(chained) - self.skip_newest):]}
        todo = []
        for b in chained:
            if (b.first, b.last) in entries:
                out.had += 1
            elif (b.first, b.last) in newest:
                out.left_to_worker += 1
            else:
                todo.append(b)
        out.missing = [(b.first, b.last) for b in todo]
        return todo

    async def run(self, src: Source, *, dry_run: bool = False, progress: bool = False,
                  stop: Callable[[], bool] | None = None) -> Pass:
        """One pass: build (or with ``dry_run`` list) the records of the blocks without one;
        ``stop()`` is asked before each run of blocks (a follower told to stop ends its pass there)."""
        t0 = time.monotonic()
        out = Pass(self.cluster)
        todo = await self.plan(out)
        if dry_run or not todo:
            out.seconds = time.monotonic() - t0
            return out
        first, _ = await src.covers()
        genesis = await src.chain_start() == chain.GENESIS
        # each record is compressed (in a thread) and written while the next block folds
        writing: set[asyncio.Task[None]] = set()
        with progress_bar(f"backfill: versions records of {self.cluster}", total=len(todo),
                          disable=not progress) as bar:
            try:
                for run in _runs(todo):
                    if stop is not None and stop():
                        break
                    if not await self._reach(src, run[0].first - 1, first, genesis, out):
                        out.skipped = (f"no stored state at or before offset {run[0].first - 1} and the log read "
                                       "does not start at the log's beginning: the blocks from there cannot be "
                                       "folded")
                        break
                    for b, raw in await self._capture(src, run, out):
                        while len(writing) >= WRITES_AHEAD:
                            done, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
                            for t in done:
                                t.result()
                        writing.add(asyncio.create_task(self._store(b, raw, out, bar)))
                if writing:
                    await asyncio.gather(*writing)
            finally:
                for t in writing:
                    t.cancel()
        out.seconds = time.monotonic() - t0
        log.info("versions records built", extra={k: v for k, v in out.as_dict().items() if k != "missing_blocks"})
        return out

    async def _store(self, b: touched.Block, raw: bytes, out: Pass, bar: Any) -> None:
        """Compress and store the record of block ``b`` (chunks, then the entry: store/versions.py)."""
        stored = await asyncio.get_running_loop().run_in_executor(None, compress, raw, versions_store.LEVEL)
        await versions_store.write(self.writer, cluster=self.cluster, generation=self.generation,
                                   partition=self.partition, first=b.first, last=b.last, stored=stored,
                                   size=len(raw), reducer_version=REDUCER_VERSION)
        out.built += 1
        out.bytes += len(raw)
        out.stored_bytes += len(stored)
        bar.advance(1)

    async def _reach(self, src: Source, offset: int, first: int, genesis: bool, out: Pass) -> bool:
        """Bring the kept fold to ``offset`` (just before a block to build): on from where it is when
        that is near, else from the newest stored state at or before ``offset``, else from the log's
        start. False when none of those can reach it."""
        st, at = self.state, self.at
        if st is None or at > offset or offset - at > self.jump:
            loaded = await self._stored_state(offset, after=at if st is not None and at <= offset else None)
            if loaded is not None:
                st, at = loaded
                out.loads += 1
            elif st is None or at > offset:
                if not genesis:
                    return False
                st, at = ClusterState.empty(self.cluster), first - 1
        if offset > at:
            r = await replay(src, self.cluster, Target(offset=offset), start_state=st, start_offset=at,
                             progress=False)
            st = r.state
            out.folded += r.scanned
            at = offset
        # what the load or the fold there marked belongs to no event of the block: the worker's
        # capture took it after the events before the block (a block never ends with a fold-failed
        # event's marks pending: it stays open until the next applied one)
        st.take_dirty()
        self.state, self.at = st, at
        return True

    async def _stored_state(self, offset: int, after: int | None) -> tuple[ClusterState, int] | None:
        """The newest stored state at or before ``offset`` (and past ``after``, when given: one at or
        before the fold's own offset saves nothing), with its offset."""
        if self.snapshots is None:
            return None
        try:
            loaded = await self.snapshots.best(self.cluster, at_or_before=offset, after=after)
        except Exception:  # noqa: BLE001 - a missing snapshot store only costs folding
            return None
        if loaded is None:
            return None
        return loaded.state, loaded.offset

    async def _capture(self, src: Source, run: list[touched.Block], out: Pass) -> list[tuple[touched.Block, bytes]]:
        """Fold the blocks of ``run`` (consecutive) on from the kept fold (at the first one's first
        offset - 1) in one read of the log, capturing each as the worker does; each block with its
        record's canonical bytes."""
        assert self.state is not None and self.at == run[0].first - 1
        caps = versions_store.BlockCaptures(self.cluster, [(b.first, b.last) for b in run])

        def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
            caps.event(rec.offset, st.take_dirty(), st, anns)

        r = await replay(src, self.cluster, Target(offset=run[-1].last), start_state=self.state, start_offset=self.at,
                         on_event=hook, progress=False)
        caps.close_through(run[-1].last + 1)
        self.state, self.at = r.state, run[-1].last
        out.folded += r.scanned
        return [(run[i], raw) for i, raw in caps.take()]


def _runs(blocks: list[touched.Block]) -> list[list[touched.Block]]:
    """``blocks`` (in log order) cut into runs of consecutive blocks, at most ``RUN_BLOCKS`` each."""
    runs: list[list[touched.Block]] = []
    for b in blocks:
        if runs and len(runs[-1]) < RUN_BLOCKS and runs[-1][-1].last + 1 == b.first:
            runs[-1].append(b)
        else:
            runs.append([b])
    return runs


__all__ = ["JUMP", "RUN_BLOCKS", "SKIP_NEWEST", "Backfill", "Pass"]
