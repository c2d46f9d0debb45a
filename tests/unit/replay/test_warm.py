"""The warm caches of replay/warm.py give exactly what an uncached fold gives.

- a fork of a held state, folded on, equals the fold of the whole prefix, and
  the held state (and every state it was forked from) stays byte-identical;
- a chain of forks (state at M, read at N > M, held, read at K > N) too;
- the record cache returns the records of a direct read, keeps only blocks
  the fetch covered, and stays within its byte bound;
- a state's size estimate bounds what it takes in memory (tracemalloc), and the
  held states stay within their byte budget, a state shared by entries counted once.
"""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from collections.abc import AsyncIterator, Callable

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source
from kmevents.replay.warm import (
    Held,
    RecordCache,
    StateCache,
    estimate_bytes,
)

from kmevents.reducer import ClusterState, apply
from kmevents.reducer.fork import CowTable
from kmevents.reducer.packed import PackedTable
from kmevents.simulate import generate
from kmevents.store.snapshots import load_snapshot

CLUSTER = "c1"
N = 4000


def _records(n: int = N) -> list[LogRecord]:
    return [LogRecord(i, i, CLUSTER.encode(), orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(generate(CLUSTER, 5, n, agents=8))]


RECS = _records()


def _fold(to: int) -> ClusterState:
    st = ClusterState.empty(CLUSTER)
    for r in RECS[:to + 1]:
        apply(st, orjson.loads(r.value), partition=0, offset=r.offset)
    st.take_dirty()
    return st


class ListSource(Source):
    name = "list"
    partition = 0

    def __init__(self, recs: list[LogRecord]) -> None:
        self.recs = recs

    async def covers(self) -> tuple[int, int]:
        return 0, len(self.recs) - 1

    async def chain_start(self) -> str | None:
        return None

    async def batches(self, start: int, end: int | None) -> AsyncIterator[list[LogRecord]]:
        hi = len(self.recs) - 1 if end is None else end
        for lo in range(start, hi + 1, 300):
            yield self.recs[lo:min(hi, lo + 299) + 1]


def _on(parent: ClusterState, parent_offset: int, to: int) -> ClusterState:
    r = asyncio.run(replay(ListSource(RECS), CLUSTER, Target(offset=to), start_state=parent.fork(),
                           start_offset=parent_offset, progress=False))
    return r.state.freeze()


def test_a_fork_folded_on_equals_the_prefix_fold_and_leaves_its_parent_alone() -> None:
    base = load_snapshot(_fold(999).to_snapshot())
    before = base.to_snapshot()
    tasks, offers = base.tasks, base.offers  # (a packed table, and a lazy one: snapshot.py)
    for to in random.Random(1).sample(range(1000, N), 6):
        got = _on(base, 999, to)
        assert got.to_snapshot() == _fold(to).to_snapshot(), to
        assert base.to_snapshot() == before
    assert base.tasks is tasks and base.offers is offers  # not replaced by the forks
    assert type(tasks) is PackedTable and type(offers) is PackedTable


def test_chains_of_forks_stay_exact_and_every_ancestor_unchanged() -> None:
    base = load_snapshot(_fold(499).to_snapshot())
    held = [(499, base, base.to_snapshot())]
    rng = random.Random(7)
    for _ in range(8):
        off, st, _ = held[rng.randrange(len(held))]
        to = rng.randrange(off, N)
        got = _on(st, off, to)
        assert got.to_snapshot() == _fold(to).to_snapshot(), (off, to)
        held.append((to, got, got.to_snapshot()))
        for o, s, b in held:
            assert s.to_snapshot() == b, f"state at {o} changed"


def test_cow_table_copies_on_every_read_path() -> None:
    parent = {"a": {"x": [1]}, "b": {"x": [2]}}
    t = CowTable(parent)
    t["a"]["x"].append(9)
    t.get("b")["x"].append(9)
    for v in t.values():
        v["y"] = 1
    assert parent == {"a": {"x": [1]}, "b": {"x": [2]}}
    assert dict(t)["a"] is not parent["a"]
    t2 = CowTable(parent)
    assert t2.pop("a") is not parent["a"] and "a" in parent
    assert t2.setdefault("b", None) is not parent["b"]


async def _collect(it: AsyncIterator[list[LogRecord]]) -> list[LogRecord]:
    return [r for b in [b async for b in it] for r in b]


def test_record_cache_returns_what_a_direct_read_returns() -> None:
    recs = [r for r in RECS if r.offset % 3]  # other clusters' records hold the missing offsets
    fetched: list[tuple[int, int]] = []

    async def fetch(lo: int, hi: int, status: dict[str, int]) -> AsyncIterator[list[LogRecord]]:
        fetched.append((lo, hi))
        for i in range(lo, hi + 1, 250):
            yield [r for r in recs if i <= r.offset <= min(hi, i + 249)]
            status["reached"] = min(hi, i + 249)

    cache = RecordCache(1 << 30, block=100)
    rng = random.Random(3)
    last = 2999  # the log ends here for now
    for _ in range(40):
        a = rng.randrange(last + 1)
        b = rng.randrange(a, last + 1)
        got = asyncio.run(_collect(cache.batches("k", a, b, last, fetch)))
        assert got == [r for r in recs if a <= r.offset <= b]
        if rng.random() < 0.2:
            last = min(N - 1, last + 137)  # new records arrive
    assert cache.hits > 0
    assert all(k[1] * 100 + 99 <= last for k in cache.blocks)
    asyncio.run(_collect(cache.batches("k", 0, 999, last, fetch)))
    n = len(fetched)
    assert asyncio.run(_collect(cache.batches("k", 10, 990, last, fetch))) == \
        [r for r in recs if 10 <= r.offset <= 990]
    assert len(fetched) == n  # held: no fetch


def test_the_records_a_cache_holds_leave_the_cyclic_collectors_lists_once_seen() -> None:
    """A block rests as tuples of plain values, which a collection untracks: full passes then
    walk none of the cache's records (a record object per record was tracked for good)."""
    async def full(lo: int, hi: int, status: dict[str, int]) -> AsyncIterator[list[LogRecord]]:
        yield [r for r in RECS if lo <= r.offset <= hi]
        status["reached"] = hi

    cache = RecordCache(1 << 30, block=100)
    asyncio.run(_collect(cache.batches("k", 0, 999, N - 1, full)))
    assert len(cache.blocks) == 10
    gc.collect()
    gc.collect()  # (a block's outer tuple is untracked once its inner ones are)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(part) in tracked or id(b) in tracked for b in cache.blocks.values() for part in b)
    # and what it serves is still the records, whole blocks or parts of one
    assert asyncio.run(_collect(cache.batches("k", 0, 999, N - 1, full))) == RECS[:1000]
    assert asyncio.run(_collect(cache.batches("k", 150, 160, N - 1, full))) == RECS[150:161]


def test_record_cache_keeps_nothing_a_fetch_did_not_cover_and_stays_bounded() -> None:
    async def short(lo: int, hi: int, status: dict[str, int]) -> AsyncIterator[list[LogRecord]]:
        yield [r for r in RECS if lo <= r.offset <= min(hi, lo + 150)]
        status["reached"] = min(hi, lo + 150)  # then the broker went quiet

    cache = RecordCache(1 << 30, block=100)
    asyncio.run(_collect(cache.batches("k", 0, 999, 3999, short)))
    assert sorted(k[1] for k in cache.blocks) == [0]

    async def full(lo: int, hi: int, status: dict[str, int]) -> AsyncIterator[list[LogRecord]]:
        yield [r for r in RECS if lo <= r.offset <= hi]
        status["reached"] = hi

    small = RecordCache(200_000, block=100)
    for a in range(0, N - 500, 500):
        got = asyncio.run(_collect(small.batches("k", a, a + 499, N - 1, full)))
        assert got == RECS[a:a + 500]
        assert small.bytes <= small.max_bytes
    assert 0 < len(small.blocks) < N // 100


# -- held states: bounded in bytes -------------------------------------------------------


def _measured(make: Callable[[], ClusterState]) -> tuple[int, ClusterState]:
    """Bytes allocated (and still alive) while ``make`` builds a state."""
    gc.collect()
    tracemalloc.start()
    try:
        st = make()
        return tracemalloc.get_traced_memory()[0], st
    finally:
        tracemalloc.stop()


def test_the_size_estimate_of_a_state_bounds_what_it_takes_in_memory_without_tripling_it() -> None:
    for to in (999, 2999, N - 1):
        data = _fold(to).to_snapshot()
        loaded_bytes, loaded = _measured(lambda data=data: load_snapshot(data))  # the largest form
        folded_bytes, folded = _measured(lambda to=to: _fold(to))
        est = estimate_bytes(loaded)
        assert loaded_bytes <= est <= 2 * loaded_bytes, (to, loaded_bytes, est)
        # the same state folded (entities in another order, so another sample) takes less
        assert folded_bytes <= estimate_bytes(folded), (to, folded_bytes, estimate_bytes(folded))


def _held(st: ClusterState, offset: int, nbytes: int) -> Held:
    return Held(st, offset, None, None, bytes=nbytes)


def test_held_states_and_kept_reads_share_one_byte_budget_and_a_shared_state_counts_once() -> None:
    a, b, c, d = (ClusterState.empty(f"s{i}") for i in range(4))
    cache = StateCache(10, max_bytes=100, results=10)
    assert cache.put("c", 0, _held(a, 1, 40)) and cache.put("c", 0, _held(b, 2, 40))
    assert cache.bytes == 80
    assert cache.put_result(("read", 1), "answer-a", a)  # the same state: no more bytes
    assert cache.bytes == 80
    assert cache.put("c", 0, _held(c, 3, 40))  # 120 > 100: the least recently used go first
    # a's held entry was the oldest, but its state stays (the kept read holds it): b goes too
    assert cache.exact("c", 0, 1) is None and cache.exact("c", 0, 2) is None
    assert cache.result(("read", 1)) == "answer-a" and cache.exact("c", 0, 3) is not None
    assert cache.bytes == 80 and cache.evicted == 2
    assert not cache.put("c", 0, _held(d, 4, 101))  # larger than the whole budget: never held
    assert cache.bytes == 80 and cache.too_big == 1
    assert cache.nearest("c", 0, 10) is not None and cache.nearest("c", 0, 10).offset == 3
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 7), st.integers(1, 60)), max_size=40),
       st.integers(1, 120), st.integers(1, 4), st.integers(0, 4))
# a read kept again under its key, its state held too: it was dropped (uncounted) and put back free
@example([(False, 1, 0, 1), (True, 1, 0, 1), (False, 0, 0, 1), (True, 1, 0, 1)], 2, 1, 1)
def test_what_the_state_cache_keeps_never_exceeds_its_bounds(
        ops: list[tuple[bool, int, int, int]], max_bytes: int, entries: int, results: int) -> None:
    states = [ClusterState.empty(f"s{i}") for i in range(6)]
    sizes: dict[int, int] = {}  # id(state) -> bytes the cache was told or estimated
    cache = StateCache(entries, max_bytes=max_bytes, results=results)
    for is_result, which, slot, nbytes in ops:
        s = states[which]
        if is_result:
            if id(s) not in {id(x) for _, x in cache.kept()}:
                sizes[id(s)] = estimate_bytes(s)
            cache.put_result(("r", slot), slot, s)
        else:
            if id(s) not in {id(x) for _, x in cache.kept()}:
                sizes[id(s)] = nbytes
            cache.put("c", 0, _held(s, slot, sizes[id(s)]))
        kept = cache.kept()
        assert cache.bytes == sum(sizes[i] for i in {id(x) for _, x in kept}) <= max_bytes
        assert sum(1 for k, _ in kept if k[0] == "held") <= entries
        assert sum(1 for k, _ in kept if k[0] == "result") <= results


# -- families: a held state and its forks share one charge ---------------------------------


def test_a_fork_is_estimated_by_what_it_does_not_share_and_that_bounds_what_it_adds() -> None:
    base = load_snapshot(_fold(1999).to_snapshot())
    base.freeze()
    whole = estimate_bytes(base)
    assert estimate_bytes(base, base) < whole // 4  # nothing of its own but its tables' slots and copies
    for to in (2100, 2999, N - 1):
        added, fork = _measured(lambda to=to: _on(base, 1999, to))
        own = estimate_bytes(fork, base)
        assert added <= own, (to, added, own)  # an upper bound of what the fork keeps beyond base
        assert own < estimate_bytes(fork), (to, own)  # and less than counting it whole
    # a fork of a fork, estimated against the root, still bounds what the chain adds
    mid = _on(base, 1999, 2500)
    added, last = _measured(lambda: _on(mid, 2500, 3500))
    assert estimate_bytes(last, base) >= estimate_bytes(mid, base) // 2
    assert added <= estimate_bytes(last, base)


def test_a_fork_is_not_charged_for_the_bookkeeping_it_still_shares() -> None:
    import sys

    from kmevents.reducer.sizing import FORK_BYTES_PER_KEY, _window_bytes

    base = load_snapshot(_fold(1999).to_snapshot())
    base.freeze()
    f = base.fork().freeze()  # nothing folded: every namespace's, RC's and service's members shared
    assert sum(len(m) for m in base._pods_by_ns.values()) > 50
    assert all(f._pods_by_ns[ns] is m for ns, m in base._pods_by_ns.items())
    outer = len(f._terminal) + len(f._pods_by_ns) + len(f._rc_members) + len(f._svc_members) + len(f._task_keys)
    mine = sum(sys.getsizeof(t) for t in f._tables.values() if dict.__len__(t)) + _window_bytes(f._seen_new)
    assert estimate_bytes(f, base) == mine + FORK_BYTES_PER_KEY * outer + 4096
    # folded on, the containers it changed are its own again, and counted
    g = _on(base, 1999, 2999)
    changed = [ns for ns, m in g._pods_by_ns.items() if base._pods_by_ns.get(ns) is not m]
    assert changed
    assert estimate_bytes(g, base) >= FORK_BYTES_PER_KEY * sum(len(g._pods_by_ns[ns]) for ns in changed)


def test_a_dedupe_window_half_is_sized_by_its_containers() -> None:
    import random as _random
    import sys

    from kmevents.reducer.dedupe import Recent
    from kmevents.reducer.sizing import INT_BYTES, _window_bytes

    rng = _random.Random(7)
    digests = [rng.getrandbits(64) for _ in range(40_000)]
    as_set = set(digests)
    assert _window_bytes(as_set) == sys.getsizeof(as_set) + INT_BYTES * len(as_set)
    recent = Recent(digests, 100_000)  # two sorted runs of 16,384 and the newest 7,232 in a set
    got = _window_bytes(recent)
    assert got >= 8 * 2 * Recent.SPILL + sys.getsizeof(recent.bits)  # the runs' uint64s, the bitmap
    assert got < _window_bytes(as_set) // 2  # what it is for: ~a quarter of a set's bytes


def _scanned(fork: ClusterState, base: ClusterState) -> int:
    """``estimate_bytes(fork, base)`` by comparing every value (the packed tables' record of
    what they wrote since they were copied put aside)."""
    saved = [(t, t._origin) for t in fork._tables.values() if type(t) is PackedTable]
    for t, _ in saved:
        t._origin = None
    try:
        return estimate_bytes(fork, base)
    finally:
        for t, origin in saved:
            t._origin = origin


def test_a_fork_estimated_from_what_its_packed_tables_wrote_equals_comparing_every_value() -> None:
    from kmevents.reducer.delta import apply_delta, compact_upserts, parse_delta

    base = load_snapshot(_fold(1999).to_snapshot())
    base.freeze()
    mid = _on(base, 1999, 2700)  # a fork of the root, folded on and frozen
    last = _on(mid, 2700, N - 1)  # a fork of a fork, against the root through both
    assert all(t._origin is not None for k, t in last._tables.items() if type(t) is PackedTable and dict.__len__(t))
    for fork in (mid, last):
        assert estimate_bytes(fork, base) == _scanned(fork, base) > estimate_bytes(base, base)
    # a delta onto a fork of its base (the API's held bases), then a fold on from it
    st = _fold(1999)
    st.mark_base(st.offset)
    for r in RECS[2000:3000]:
        apply(st, orjson.loads(r.value), partition=0, offset=r.offset)
    st.take_dirty()
    onto = apply_delta(base.fork(), st.to_delta()).freeze()
    after = _on(onto, 2999, N - 1)
    # ... and with its values as canonical bytes (compact_upserts: they go into the storage as they are)
    compact = apply_delta(base.fork(), compact_upserts(parse_delta(st.to_delta()))).freeze()
    for fork in (onto, after, compact):
        assert estimate_bytes(fork, base) == _scanned(fork, base)
    # written or removed by hand (a value set as bytes, an entity gone, one decoded and kept)
    f = base.fork()
    pods = f.pods
    gone, kept, put = list(dict.keys(pods))[:3]
    del pods[gone]
    assert pods[kept] is not None
    pods[put] = dict.__getitem__(base.pods, gone)
    f.freeze()
    assert estimate_bytes(f, base) == _scanned(f, base)
    # against a state the fork was not copied from: every value compared, as before
    other = load_snapshot(_fold(1999).to_snapshot())
    assert estimate_bytes(last, other) == _scanned(last, other)


def test_a_family_is_charged_its_root_once_while_any_member_is_kept() -> None:
    root_st, a_st, b_st = (ClusterState.empty(f"f{i}") for i in range(3))
    cache = StateCache(10, max_bytes=100)
    root = Held(root_st, 10, None, 10, bytes=50)
    a = root.descend(a_st, 20, None, None)
    a.bytes = 10
    b = a.descend(b_st, 30, None, None)
    b.bytes = 10
    assert b.root is root and a.root is root  # a fork of a fork belongs to the first state's family
    assert cache.put("c", 0, root) and cache.bytes == 50
    assert cache.put("c", 0, a) and cache.put("c", 0, b)
    assert cache.bytes == 70  # the root once, each fork for its own bytes
    cache.put("c", 0, Held(ClusterState.empty("other"), 99, None, None, bytes=40))
    # 110 > 100: the least recently used go first, but not a root whose family is kept: its
    # entry would free nothing (b and a keep it alive, charged) and it is where the family's
    # reads start without loading a snapshot. So a goes, the oldest member
    assert cache.holds("c", 0, 10) and not cache.holds("c", 0, 20)
    assert cache.holds("c", 0, 30) and cache.holds("c", 0, 99)
    assert cache.bytes == 50 + 10 + 40 and cache.evicted == 1
    assert cache.nearest("c", 0, 25) is root  # a read between root and b still starts from the root
    cache.put("c", 0, Held(ClusterState.empty("big"), 98, None, None, bytes=60))
    # 160 > 100, in LRU order b, other, root (just used): b goes, then other, then the root, a
    # member no more, with its family's charge
    assert not cache.holds("c", 0, 30) and not cache.holds("c", 0, 99) and not cache.holds("c", 0, 10)
    assert cache.holds("c", 0, 98) and cache.bytes == 60 and cache.evicted == 4
    cache.clear()
    assert cache.bytes == 0


def test_members_go_before_their_root_whatever_the_order_they_were_used_in() -> None:
    cache = StateCache(10, max_bytes=100)
    root = Held(ClusterState.empty("r"), 10, None, 10, bytes=60)
    members = []
    for i in range(3):
        m = root.descend(ClusterState.empty(f"m{i}"), 20 + i, None, None)
        m.bytes = 10
        members.append(m)
    assert cache.put("c", 0, root) and all(cache.put("c", 0, m) for m in members)
    assert cache.exact("c", 0, 21) is members[1]  # m1 most recently used, the root least
    cache.put("c", 0, Held(ClusterState.empty("x"), 99, None, None, bytes=20))
    # 110 > 100: m0 (the least recently used member) goes; the root stays, though older
    assert cache.holds("c", 0, 10) and not cache.holds("c", 0, 20)
    assert cache.holds("c", 0, 21) and cache.holds("c", 0, 22) and cache.bytes == 100


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["root", "member", "touch"]), st.integers(0, 3), st.integers(1, 50)),
                max_size=40), st.integers(20, 150), st.integers(2, 8))
# another family's root overflows the budget: the old order dropped root 0 (freeing nothing), then one member
@example([("root", 0, 50), ("member", 0, 10), ("member", 0, 10), ("root", 1, 40)], 100, 8)
# ... or the count of held states
@example([("root", 0, 5), ("member", 0, 5), ("member", 0, 5)], 100, 2)
def test_a_root_never_leaves_before_a_member_of_its_family_and_the_budget_holds(
        ops: list[tuple[str, int, int]], max_bytes: int, entries: int) -> None:
    cache = StateCache(entries, max_bytes=max_bytes)
    roots: dict[int, Held] = {}
    for offset, (op, which, nbytes) in enumerate(ops, start=1):
        before = {id(h) for h in cache.held()}
        if op == "root":
            roots[which] = Held(ClusterState.empty(f"r{offset}"), offset, None, offset, bytes=nbytes)
            cache.put("c", 0, roots[which])
        elif op == "member" and which in roots:
            m = roots[which].descend(ClusterState.empty(f"m{offset}"), offset, None, None)
            m.bytes = nbytes
            cache.put("c", 0, m)
        elif op == "touch":
            cache.nearest("c", 0, offset - which)
        held = cache.held()
        kept = {id(h) for h in held}
        for h in held:
            if h.root is not None and id(h.root) in before:
                assert id(h.root) in kept, "a root went while a member of its family stayed"
        charged = {id(h.root or h): (h.root or h).bytes for h in held}
        assert cache.bytes == sum(charged.values()) + sum(h.bytes for h in held if h.root is not None) <= max_bytes
        assert len(held) <= entries


def test_a_member_alone_brings_its_family_charge_and_too_big_families_are_not_kept() -> None:
    root = Held(ClusterState.empty("r"), 1, None, 1, bytes=80)
    m = root.descend(ClusterState.empty("m"), 2, None, None)
    m.bytes = 30
    cache = StateCache(10, max_bytes=100)
    assert not cache.put("c", 0, m) and cache.too_big == 1  # 80 + 30 > 100
    m.bytes = 15
    assert cache.put("c", 0, m) and cache.bytes == 95  # the root is not held, but kept alive: charged
    cache.clear()
    assert cache.bytes == 0


def test_a_fork_copies_bookkeeping_it_touches_and_leaves_the_rest_shared_until_frozen() -> None:
    base = load_snapshot(_fold(1999).to_snapshot())
    base.freeze()
    before = base.to_snapshot()
    fork = base.fork()
    assert fork._seen_old is base._seen_old  # never changed in place by the fold: shared
    assert type(fork._alloc) is CowTable and type(fork._rc_members) is CowTable
    r = asyncio.run(replay(ListSource(RECS), CLUSTER, Target(offset=2999), start_state=fork,
                           start_offset=1999, progress=False))
    st = r.state.freeze()
    assert st.to_snapshot() == _fold(2999).to_snapshot() and base.to_snapshot() == before
    lazy = ("_terminal", "_alloc", "_contrib", "_pods_by_ns", "_rc_sel", "_svc_sel", "_rc_members", "_svc_members")
    assert all(type(getattr(st, n)) is dict for n in lazy)  # frozen: plain dicts, read-only
    # what the fold did not touch is still the parent's very object
    kept = [(n, k) for n in lazy for k, v in getattr(base, n).items() if getattr(st, n).get(k) is v]
    assert kept, "every bookkeeping value was copied"
