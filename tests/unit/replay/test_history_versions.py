"""History that reads blocks from their versions records (store/versions.py) equals the full scan.

The worker's side is emulated here as processors/derive.py does it: the fold's dirty set taken
after every applied event into a ``Capture``, a touched-index block (store/touched.py) and a
record closed every ``EVERY`` events. The records stand in the index the reader is given; the
history of each entity asked must be the scan's, entry for entry, whatever records are missing.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
from kmevents.replay import history
from kmevents.replay.engine import replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents import chain
from kmevents.folding import APPLIED, FAILED, Fold
from kmevents.reducer import ClusterState
from kmevents.simulate import generate
from kmevents.store import touched, versions
from tests.unit.replay import test_warm

CLUSTER = "c1"
EVERY = 250


def _records(n: int, seed: int = 3) -> list[LogRecord]:
    return [LogRecord(i, 1_700_000_000_000 + i, CLUSTER.encode(), orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(generate(CLUSTER, seed, n, agents=12))]


RECS = _records(3600)


class ListSource(test_warm.ListSource):
    """The records in memory, from the log's start (history's index serves only such a read)."""

    async def chain_start(self) -> str | None:
        return chain.GENESIS


def _derive(recs: list[LogRecord], every: int = EVERY) -> tuple[list[touched.Block], dict[int, bytes]]:
    """The touched-index blocks and the versions records a worker writes for ``recs`` (the last,
    open block written neither: history folds that tail)."""
    f = Fold(ClusterState.empty(CLUSTER), chain.GENESIS, partition=0)
    acc, cap = touched.Accumulator(), versions.Capture()
    names: set[tuple[str, str]] = set()
    blocks, records = [], {}
    for r in recs:
        out = f.step(r.offset, r.key, r.value)
        acc.event(r.offset, f.event, applied=out is APPLIED, failed=out is FAILED)
        if out is APPLIED:
            d = f.state.take_dirty()
            cap.event(r.offset, d, f.state, f.anns)
            names |= d
        if acc.due(every):
            for k in names:  # hashed with the values at the block's end, as a flush does
                acc.hashes.update(touched.entity_hashes(k[0], k[1], f.state.entity_read(*k)))
            names = set()
            first, value = acc.close(r.offset)
            raw = cap.close(CLUSTER, first, r.offset)
            assert raw is not None
            blocks.append(touched.decode(value))
            records[first] = raw
    return blocks, records


BLOCKS, RECORDS = _derive(RECS)


def _index(blocks: list[touched.Block], records: dict[int, bytes], *, damaged: set[int] = frozenset()  # type: ignore[assignment]
           ) -> history.Indexed:
    entries = {(b.first, b.last): {"first": b.first, "last": b.last} for b in blocks if b.first in records}

    async def fetch(e: dict[str, Any]) -> versions.Versions | None:
        if e["first"] in damaged:
            return None
        return versions.decode(records[e["first"]])

    return history.Indexed(list(blocks), None, versions=entries, fetch=fetch)


async def _history(src: Source, kind: str, id: str, index: history.Indexed | None) -> dict[str, Any]:
    rel = await history.related(src, CLUSTER, kind, [id], None, progress=False, index=index)
    entries = await history.collect(src, CLUSTER, rel, progress=False, index=index)
    out: dict[str, Any] = orjson.loads(orjson.dumps({
        "targets": sorted(rel.targets), "keys": sorted(rel.keys), "corr": sorted(rel.correlation), "events": entries}))
    return out


def _cases(st: ClusterState, rng: random.Random) -> list[tuple[str, str]]:
    cases = [("pod", i) for i in rng.sample(sorted(st.pods), 5)]
    cases += [("task", i) for i in rng.sample(sorted(st.tasks), 3)]
    cases += [("agent", i) for i in rng.sample(sorted(st.agents), 2)]
    cases += [("offer", i) for i in rng.sample(sorted(st.offers), 1)]
    cases += [("agent", st.agents[sorted(st.agents)[0]]["hostname"])]  # by name: every id the host had
    pod = st.pods[sorted(st.pods)[1]]
    cases += [("pod", pod["name"])]  # pod/NAME in any namespace
    if pod.get("task_id"):
        cases += [("task", pod["task_id"])]  # task/TASK_ID without its framework
    return cases + [("pod", "no-such/pod")]


def test_the_record_round_trips_and_names_each_events_dirty_set() -> None:
    rec = versions.decode(RECORDS[BLOCKS[1].first])
    assert (rec.first, rec.last) == (BLOCKS[1].first, BLOCKS[1].last)
    f = Fold(ClusterState.empty(CLUSTER), chain.GENESIS, partition=0)
    for r in RECS[:rec.last + 1]:
        out = f.step(r.offset, r.key, r.value)
        if out is APPLIED:
            d = f.state.take_dirty()
            if r.offset >= rec.first:
                assert rec.dirty_at(r.offset) == d, r.offset
                for k in d:
                    assert rec.value_after(k, r.offset) == (True, f.state.entity(*k)), (r.offset, k)
    assert rec.applied and all(rec.first <= o <= rec.last for o in rec.applied)
    with pytest.raises(versions.VersionsError):
        versions.decode(RECORDS[BLOCKS[1].first][:-40])


def _format_1(rec: versions.Versions) -> bytes:
    """``rec`` as a worker before format 2 wrote it: every value inline in the second line."""
    head = orjson.dumps({"cluster": rec.cluster, "first": rec.first, "format": 1, "last": rec.last},
                        option=orjson.OPT_SORT_KEYS)
    body = orjson.dumps({
        "events": [[o, rec.anns.get(o)] for o in rec.applied],
        "values": [[k[0], k[1], [[o, None if v is None else orjson.Fragment(v)] for o, v in vs]]
                   for k, vs in sorted(rec.values.items())]}, option=orjson.OPT_SORT_KEYS)
    return head + b"\n" + body


def test_values_stay_bytes_until_asked_for_and_format_1_records_read_the_same() -> None:
    from kmevents.replay.verify_versions import difference

    raw = RECORDS[BLOCKS[2].first]
    rec = versions.decode(raw)
    assert rec.values and all(v is None or type(v) is bytes for vs in rec.values.values() for _, v in vs)
    assert versions.encode(CLUSTER, rec.first, rec.last, [(o, rec.anns.get(o)) for o in rec.applied],
                           rec.values) == raw  # canonical: decoding and encoding again gives the bytes
    k, vs = next((k, vs) for k, vs in sorted(rec.values.items()) if vs[0][1] is not None)
    one = rec.value_after(k, vs[0][0])[1]
    assert one == orjson.loads(vs[0][1]) and rec.value_after(k, vs[0][0])[1] is one  # decoded once
    assert rec.value_after(k, rec.first - 1) == (False, None) and rec.raw_after(k, vs[0][0]) == (True, vs[0][1])
    old = _format_1(rec)
    was = versions.decode(old)
    assert (was.applied, was.anns, was.values) == (rec.applied, rec.anns, rec.values)
    # verify --versions: the same content in the earlier format is no drift; a changed version is
    assert difference(old, raw) is None and difference(raw, raw) is None
    changed = dict(rec.values)
    changed[k] = [(vs[0][0], orjson.dumps({**one, "x": 1}, option=orjson.OPT_SORT_KEYS)), *vs[1:]]
    bad = versions.encode(CLUSTER, rec.first, rec.last, [(o, rec.anns.get(o)) for o in rec.applied], changed)
    assert difference(bad, raw) == f"{k[0]}/{k[1]}: its versions differ (offsets [{vs[0][0]}])"
    # damage anywhere is an error: the index, a value's bytes cut or added, another format
    nl = raw.index(b"\n", raw.index(b"\n") + 1)
    for broken in (raw[:nl - 3] + raw[nl:], raw[:-1], raw + b"x", raw.replace(b'"format":2', b'"format":3', 1)):
        with pytest.raises(versions.VersionsError):
            versions.decode(broken)


def test_may_hold_is_false_only_when_no_needle_is_in_the_bytes() -> None:
    v = orjson.dumps({"hostname": "h1.example", "name": 'a"b'}, option=orjson.OPT_SORT_KEYS)
    assert versions.Versions.may_hold(v, [orjson.dumps("h1.example")])
    assert versions.Versions.may_hold(v, [orjson.dumps("zz"), orjson.dumps('a"b')])  # escaped as JSON holds it
    assert not versions.Versions.may_hold(v, [orjson.dumps("h1")])  # a prefix is not the string
    assert not versions.Versions.may_hold(None, [orjson.dumps("h1.example")])  # gone


def test_history_read_from_versions_records_equals_the_full_scan() -> None:
    src = ListSource(RECS)
    st = asyncio.run(replay(src, CLUSTER, progress=False)).state
    served = folded = 0
    for kind, id in _cases(st, random.Random(11)):
        idx = _index(BLOCKS, RECORDS)
        got = asyncio.run(_history(src, kind, id, idx))
        want = asyncio.run(_history(src, kind, id, None))
        assert got == want, (kind, id)
        assert idx.lookup_folds == 0, (kind, id)  # every value before a unit read came from records
        if id != "no-such/pod":
            assert want["events"], (kind, id)
        served += idx.served
        folded += idx.folded
    assert served > 3 * folded, (served, folded)  # the folds left: the tail the worker has no block for yet


def test_missing_or_unreadable_records_are_folded_and_the_answer_is_the_same() -> None:
    src = ListSource(RECS)
    st = asyncio.run(replay(src, CLUSTER, progress=False)).state
    rng = random.Random(4)
    gone = {b.first for b in rng.sample(BLOCKS, 4)}
    damaged = {b.first for b in rng.sample(BLOCKS, 3)}
    records = {k: v for k, v in RECORDS.items() if k not in gone}
    for kind, id in _cases(st, random.Random(12))[:8]:
        idx = _index(BLOCKS, records, damaged=damaged)
        assert asyncio.run(_history(src, kind, id, idx)) == asyncio.run(_history(src, kind, id, None)), (kind, id)


def test_a_value_from_before_a_read_unit_past_a_range_with_no_index_comes_from_the_state_at_its_end() -> None:
    """A value pass 1's links need from before a unit read may lie in offsets no block covers (a
    worker that wrote no index then): the state at that range's end answers it (folded, here from
    the log's start), and the units are still read from their records."""
    src = ListSource(RECS)
    st = asyncio.run(replay(src, CLUSTER, progress=False)).state
    blocks = BLOCKS[3:]  # offsets 0..3*EVERY-1: no index
    folds = served = 0
    for kind, id in _cases(st, random.Random(13))[:8]:
        idx = _index(blocks, RECORDS)
        assert asyncio.run(_history(src, kind, id, idx)) == asyncio.run(_history(src, kind, id, None)), (kind, id)
        folds += idx.lookup_folds
        served += idx.served
    assert folds, "some history needed a value from the range with no index"
    assert served


def test_a_record_lists_only_applied_events_and_a_failed_events_changes_go_with_the_next_applied() -> None:
    good = [orjson.loads(r.value) for r in RECS[:40]]
    bad = dict(good[20])
    bad["payload"] = {"nonsense": True}
    lines = good[:20] + [bad] + good[21:]
    recs = [LogRecord(i, i, CLUSTER.encode(), orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(lines)]
    f = Fold(ClusterState.empty(CLUSTER), chain.GENESIS, partition=0)
    outcomes = [f.step(r.offset, r.key, r.value) for r in recs]
    blocks, records = _derive(recs, every=30)
    rec = versions.decode(records[0])
    assert [o for o in range(rec.first, rec.last + 1) if outcomes[o] is APPLIED] == rec.applied
    if outcomes[20] is not APPLIED:
        assert 20 not in rec.applied


@pytest.mark.parametrize("gaps", [False, True])
def test_the_view_of_a_unit_read_answers_what_the_fold_holds_for_any_entity_and_task_id(gaps: bool) -> None:
    """``_View`` stands for the state in pass 1's links: right after an event of a unit read from
    its record, every entity's value (changed in the unit or long before it, or gone) and every
    Mesos task id's task entities are the fold's at that event. ``gaps``: the log's first blocks
    have no index and some later ones no record (their answers come from a state folded then)."""
    src = ListSource(RECS)
    first, last = 0, len(RECS) - 1
    rng = random.Random(21)
    blocks = BLOCKS[2:] if gaps else BLOCKS
    gone_records = {b.first for b in rng.sample(blocks[:-4], 3)} if gaps else set()
    idx = _index(blocks, {k: v for k, v in RECORDS.items() if k not in gone_records})
    idx._units = history._units(idx.blocks, first, last)
    full = asyncio.run(replay(src, CLUSTER, progress=False)).state
    keys = [(kind, i) for kind in ("pod", "task", "offer", "agent")
            for i in rng.sample(sorted(full._tables[kind]), min(25, len(full._tables[kind])))]
    tids = [v["task_id"] for _, v in rng.sample(sorted(full.tasks.items()), 15)] + ["no-such-task"]

    async def ask(view: Any, what: str, arg: Any) -> Any:
        while True:
            try:
                return view.entity(*arg) if what == "value" else view.task_ids(arg)
            except history._Missing as m:
                await view.resolve(m)

    served = [i for i, u in enumerate(idx._units) if u.block is not None and u.first not in gone_records]
    for i in sorted(rng.sample(served[3:-1], 4)):
        u = idx._units[i]
        rec = versions.decode(RECORDS[u.first])
        at = rng.choice(rec.applied)
        st = asyncio.run(replay(src, CLUSTER, history.Target(offset=at), progress=False)).state
        view = history._View(idx, i, rec, src, CLUSTER)
        view.at = at
        gone = 0
        for k in keys:
            assert asyncio.run(ask(view, "value", k)) == st.entity(*k), (at, k)
            gone += st.entity(*k) is None
        for tid in tids:
            assert asyncio.run(ask(view, "tasks", tid)) == st.task_ids(tid), (at, tid)
        assert gone < len(keys)
    assert (idx.lookup_folds > 0) == gaps, idx.lookup_folds


def test_a_unit_read_shows_events_for_their_correlation_id_and_gives_the_logs_last_time() -> None:
    """Of a unit read from its record, pass 2 reads from the log only the events it shows: those
    that touched a related key, and those that carry a related correlation id (a pod whose
    history has an event shown for its uid alone); and the unit's block gives the log's last time,
    which says how long a condition still holds (pods changed in the last block). The log ends
    where its last block does, so nothing is folded (a tail folded from the start would see
    every unit on its way)."""
    end = BLOCKS[-1].last
    src = ListSource(RECS[:end + 1])
    st = asyncio.run(replay(src, CLUSTER, progress=False)).state
    found = None
    for p in sorted(st.pods)[:120]:
        want = asyncio.run(_history(src, "pod", p, None))
        if any(not e["results"] for e in want["events"]):
            found = (p, want, [e["offset"] for e in want["events"] if not e["results"]])
            break
    assert found is not None
    p, want, only = found
    idx = _index(BLOCKS, RECORDS)
    assert asyncio.run(_history(src, "pod", p, idx)) == want
    assert idx.folded == 0 and any(u.first <= only[0] <= u.last for u, _ in idx.read.values()), only
    last = versions.decode(RECORDS[BLOCKS[-1].first])
    late = sorted(k[1] for k in last.values if k[0] == "pod" and k[1] in st.pods)[:3]
    assert late
    for p in late:
        want = asyncio.run(_history(src, "pod", p, None))
        idx = _index(BLOCKS, RECORDS)
        assert asyncio.run(_history(src, "pod", p, idx)) == want, p
        assert idx.folded == 0 and BLOCKS[-1].first in idx.read, p
        assert any("lasted_seconds" in r for e in want["events"] for r in e["results"].values()), p


def test_a_record_the_log_read_lacks_is_an_error_that_names_it() -> None:
    """The versions records name an event the log read does not hold (an index of another log):
    history says so, with the offset, instead of showing a history without it."""
    from kmevents.errors import EnvironmentProblem

    end = BLOCKS[-1].last
    full = ListSource(RECS[:end + 1])
    st = asyncio.run(replay(full, CLUSTER, progress=False)).state
    pod = sorted(st.pods)[3]
    want = asyncio.run(_history(full, "pod", pod, None))
    gone = want["events"][0]["offset"]
    holed = ListSource([r for r in RECS[:end + 1] if r.offset != gone])
    with pytest.raises(EnvironmentProblem, match=f"at offset {gone}"):
        asyncio.run(_history(holed, "pod", pod, _index(BLOCKS, RECORDS)))


def test_a_task_entity_is_found_by_a_version_that_names_its_mesos_task_id() -> None:
    named_t9 = [(5, orjson.dumps({"state": "TASK_RUNNING", "task_id": "t9"}, option=orjson.OPT_SORT_KEYS)), (9, None)]
    other = [(5, orjson.dumps({"note": "t9", "task_id": "t1"}, option=orjson.OPT_SORT_KEYS))]
    assert history._is_task(("task", "fw/odd"), named_t9, "t9")
    assert not history._is_task(("task", "fw/odd"), other, "t9")  # the bytes hold "t9", its task_id is not
    assert history._is_task(("task", "fw/t9"), None, "t9")  # by its id's tail
