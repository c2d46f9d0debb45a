"""Cumulative deltas (kmevents/reducer/delta.py): base snapshot + one delta is the full state, exactly."""

from __future__ import annotations

import copy
import zlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmevents.reducer import ClusterState, Retention, apply
from kmevents.reducer.delta import (
    FORMAT,
    FORMAT_2,
    FORMAT_3,
    apply_delta,
    base_offset_of,
    compact_upserts,
    dump_delta,
    parse_delta,
    stored_format,
)
from kmevents.reducer.snapshot import SnapshotError
from kmevents.simulate import generate
from tests.unit.reducer.streams import mixed_streams

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _fresh(evs: list[dict]) -> list[dict]:
    return copy.deepcopy(evs)


@SETTINGS
@given(mixed_streams(), st.data(), st.sampled_from([2, 3, 5, 100_000]))
def test_base_snapshot_plus_delta_equals_the_full_snapshot(evs: list[dict], data: st.DataObject,
                                                          window: int) -> None:
    # Small dedupe windows rotate once, twice or more between the base and the delta.
    cut = data.draw(st.integers(0, len(evs)))
    retention = Retention(dedupe_window=window)
    st_ = ClusterState.empty("prod-1", retention)
    for e in _fresh(evs[:cut]):
        apply(st_, e)
        st_.take_dirty()
    base = st_.to_snapshot(chain_hash="b")
    st_.mark_base()
    for e in _fresh(evs[cut:]):
        apply(st_, e)
        if data.draw(st.booleans()):
            st_.take_dirty()  # the worker takes dirty sets per batch; the delta must not depend on it
    full = st_.to_snapshot(chain_hash="d")
    delta = st_.to_delta(chain_hash="d")
    assert base_offset_of(delta) == ClusterState.from_snapshot(base).offset
    rebuilt = apply_delta(ClusterState.from_snapshot(base), delta)
    assert rebuilt.to_snapshot(chain_hash="d") == full
    # format 3 (values in sections) gives what format 2 (values in the document) gives, still
    # loaded; onto a fork of a held base too, whose freeze then packs nothing of it again
    old = dump_delta(st_, "d", format=FORMAT_2)
    assert (stored_format(delta), stored_format(old), base_offset_of(old)) == (FORMAT, FORMAT_2, base_offset_of(delta))
    assert apply_delta(ClusterState.from_snapshot(base), old).to_snapshot(chain_hash="d") == full
    # format 4 holds the totals of the agents brought up to date since the base; format 3 (all
    # of them) still loads, alike from its bytes and compacted, onto a fork too
    three = dump_delta(st_, "d", format=FORMAT_3)
    assert stored_format(three) == FORMAT_3
    assert apply_delta(ClusterState.from_snapshot(base), three).to_snapshot(chain_hash="d") == full
    assert apply_delta(ClusterState.from_snapshot(base).freeze().fork(),
                       compact_upserts(parse_delta(three))).freeze().to_snapshot(chain_hash="d") == full
    assert apply_delta(ClusterState.from_snapshot(base),
                       compact_upserts(parse_delta(delta))).to_snapshot(chain_hash="d") == full
    held = ClusterState.from_snapshot(base).freeze()
    fork = apply_delta(held.fork(), parse_delta(delta))
    assert not any(getattr(t, "_hot", ()) for t in fork._tables.values())
    assert fork.freeze().to_snapshot(chain_hash="d") == full and held.to_snapshot(chain_hash="b") == base
    # and it folds on exactly like the original
    more = _fresh(evs[-3:])
    for e in more:
        apply(rebuilt, e)
    again = ClusterState.from_snapshot(full)
    for e in _fresh(evs[-3:]):
        apply(again, e)
    assert rebuilt.to_snapshot() == again.to_snapshot()


def test_a_delta_applied_to_a_fork_leaves_the_base_alone() -> None:
    evs = list(generate("d1", 1, 3000))
    s = ClusterState.empty("d1")
    # the base 800 events back: with the dedupe keys as digests (reducer 5) a full snapshot
    # lost the keys' text, and 1,000 events of this young cluster change half its state
    for e in evs[:2200]:
        apply(s, e)
    base_bytes = s.to_snapshot()
    s.take_dirty()  # the worker has written what changed before it marks the base
    s.mark_base()
    for e in evs[2200:]:
        apply(s, e)
    delta = s.to_delta()
    base = ClusterState.from_snapshot(base_bytes).freeze()
    rebuilt = apply_delta(base.fork(), delta)
    assert rebuilt.to_snapshot() == s.to_snapshot()
    assert base.to_snapshot() == base_bytes, "the held base did not change"
    assert len(delta) < len(s.to_snapshot()) / 2


def test_a_delta_is_refused_against_another_base() -> None:
    evs = list(generate("d2", 1, 500))
    s = ClusterState.empty("d2")
    for e in evs[:200]:
        apply(s, e)
    s.mark_base()
    for e in evs[200:]:
        apply(s, e)
    other = ClusterState.empty("d2")
    with pytest.raises(SnapshotError, match="against the snapshot at offset"):
        apply_delta(other, s.to_delta())
    with pytest.raises(ValueError, match="no base"):
        ClusterState.empty("x").to_delta()


def test_a_delta_applied_to_a_fork_copies_only_the_entities_it_changes() -> None:
    # rebuilding the derived indexes reads every pod, task and offer: through a fork's tables
    # that would deep-copy each one (the cost of a delta load, most of it, in history's folds)
    from kmevents.reducer.fork import CowTable
    from kmevents.reducer.packed import PackedTable

    evs = list(generate("d2", 3, 3000))
    s = ClusterState.empty("d2")
    for e in evs[:2500]:
        apply(s, e)
    base_bytes = s.to_snapshot()
    s.take_dirty()
    s.mark_base()
    for e in evs[2500:2520]:
        apply(s, e)
    delta = s.to_delta()
    base = ClusterState.from_snapshot(base_bytes).freeze()
    rebuilt = apply_delta(base.fork(), delta)
    assert rebuilt.to_snapshot() == s.to_snapshot()
    for kind in ("pod", "task", "offer"):
        t = rebuilt._tables[kind]
        assert len(t) > 100
        if type(t) is PackedTable:  # pods and tasks: only what the delta set was decoded and kept
            assert t.hot_count <= 40, (kind, t.hot_count, len(t))
        else:
            assert type(t) is CowTable
            assert len(t._own) <= 40, (kind, len(t._own), len(t))


@SETTINGS
@given(mixed_streams())
def test_leaving_totals_stale_changes_no_dirty_mark_but_agents_and_roles_nor_the_state(evs: list[dict]) -> None:
    # history reads pods, tasks and offers without bringing agent/role totals up to date per event
    eager, lazy = ClusterState.empty("t1"), ClusterState.empty("t1")
    for e, f in zip(_fresh(evs), _fresh(evs), strict=True):
        apply(eager, e)
        apply(lazy, f)
        got, want = lazy.take_dirty(totals=False), eager.take_dirty()
        assert {k for k in got if k[0] not in ("agent", "role")} == {k for k in want if k[0] not in ("agent", "role")}
        for k in got:
            if k[0] not in ("agent", "role"):
                assert lazy.peek(*k) == eager.entity(*k)
    lazy.take_dirty()
    assert lazy.to_snapshot() == eager.to_snapshot()


# -- format 2: the indexes and the retention order as changes since the base -----------------


def _based(n_base: int, n_more: int, seed: int = 1) -> tuple[bytes, ClusterState]:
    evs = list(generate("d2", seed, n_base + n_more))
    s = ClusterState.empty("d2", Retention(max_terminal_tasks=50, max_terminal_other=20))
    for e in evs[:n_base]:
        apply(s, e)
    s.take_dirty()
    base = s.to_snapshot()
    s.mark_base()
    for e in evs[n_base:]:
        apply(s, e)
    return base, s


def test_a_format_2_delta_holds_the_indexes_changes_and_is_smaller_than_format_1() -> None:
    from kmevents.reducer.delta import FORMAT_1, FORMAT_2, dump_delta

    base, s = _based(3000, 40)
    new, old = dump_delta(s, format=FORMAT_2), dump_delta(s, format=FORMAT_1)
    assert orjson.loads(new)["format"] == FORMAT_2 and orjson.loads(old)["format"] == FORMAT_1
    assert len(new) < len(old)
    doc = orjson.loads(new)
    assert "terminal" not in doc and set(doc["index_changes"]) == {"pods_by_ns", "svc_members", "rc_members"}
    # both give the same state on the same base: format 1 still loads
    full = s.to_snapshot()
    assert apply_delta(ClusterState.from_snapshot(base), new).to_snapshot() == full
    assert apply_delta(ClusterState.from_snapshot(base), old).to_snapshot() == full


def test_a_format_2_delta_onto_a_fork_changes_no_index_of_the_base() -> None:
    base, s = _based(3000, 400)
    held = ClusterState.from_snapshot(base).freeze()
    before = held.to_snapshot()
    got = apply_delta(held.fork(), s.to_delta())
    assert got.to_snapshot() == s.to_snapshot()
    assert held.to_snapshot() == before
    # and folding on from it leaves the base alone too
    for e in generate("d2", 2, 200):
        apply(got, e)
    assert held.to_snapshot() == before


@pytest.mark.parametrize("damage", [
    {"index_changes": {"pods_by_ns": {"ns": "x"}, "svc_members": {}, "rc_members": {}}},
    {"index_changes": {"pods_by_ns": {}, "svc_members": {}, "rc_members": {"r": [["a"], []]}}},
    {"index_changes": {"pods_by_ns": {"ns": [[1], []]}, "svc_members": {}, "rc_members": {}}},
    {"index_changes": []},
    {"terminal_changes": {"task": {"drop": "x", "tail": []}}},
    {"terminal_changes": {"task": {"tail": []}}},
    {"terminal_changes": {"task": {"drop": [], "tail": [["only-an-id"]]}}},
])
def test_a_damaged_format_2_delta_is_refused_before_the_base_changes(damage: dict) -> None:
    from kmevents.reducer.delta import FORMAT_2, dump_delta

    base, s = _based(3000, 40)
    doc = orjson.loads(dump_delta(s, format=FORMAT_2)) | damage
    if "terminal_changes" in damage:
        doc["terminal_changes"] = orjson.loads(dump_delta(s, format=FORMAT_2))["terminal_changes"] | damage["terminal_changes"]
    st_ = ClusterState.from_snapshot(base)
    with pytest.raises(SnapshotError, match="damaged delta"):
        apply_delta(st_, orjson.dumps(doc))
    assert st_.to_snapshot() == base


def test_a_retention_order_is_its_drops_and_tail_or_else_whole() -> None:
    from kmevents.reducer.delta import _order_changes, _ordered

    base = {"a": "1", "b": "2", "c": "3"}
    appended = {"b": "2", "c": "3", "d": "4"}
    assert _order_changes(base, appended) == {"drop": ["a"], "tail": [["d", "4"]]}
    moved = {"b": "2", "a": "1", "c": "3"}  # not what the base's order minus drops gives
    assert _order_changes(base, moved) == {"whole": [["b", "2"], ["a", "1"], ["c", "3"]]}
    for now in (appended, moved, {}, {"z": "9"}):
        assert list(_ordered(base, _order_changes(base, now)).items()) == list(now.items())


def test_a_delta_applies_alike_from_its_bytes_and_from_its_parsed_document() -> None:
    from kmevents.reducer.delta import FORMAT_2, dump_delta, parse_delta

    base, s = _based(3000, 40)
    delta, full = dump_delta(s, "d", format=FORMAT_2), s.to_snapshot(chain_hash="d")
    doc = parse_delta(delta)
    assert doc["format"] == "kmevents.reducer.delta/2"
    assert apply_delta(ClusterState.from_snapshot(base), doc).to_snapshot(chain_hash="d") == full
    assert apply_delta(ClusterState.from_snapshot(base), delta).to_snapshot(chain_hash="d") == full
    with pytest.raises(SnapshotError, match="not JSON"):
        parse_delta(delta[:-3])
    with pytest.raises(SnapshotError, match="not a reducer delta"):
        parse_delta(b'{"format": "x"}')
    with pytest.raises(SnapshotError, match="reducer version 1"):
        parse_delta(orjson.dumps(doc | {"reducer_version": 1}))


def test_a_compacted_delta_applies_to_the_same_state_and_rests_its_values_as_bytes() -> None:
    from collections import Counter

    from kmevents.reducer.delta import FORMAT_2, compact_upserts, dump_delta, parse_delta
    from kmevents.reducer.packed import PackedTable
    from kmevents.reducer.snapshot import FORMAT_4, dump

    base, s = _based(3000, 400)
    delta, full = dump_delta(s, "d", format=FORMAT_2), s.to_snapshot(chain_hash="d")
    doc = compact_upserts(parse_delta(delta))
    assert type(doc["allocation"]) is type(doc["contributions"]) is bytes
    assert doc["upserts"] and all(type(v) is bytes for k, vs in doc["upserts"].items() if k != "offer"
                                  for v in vs.values())
    got = apply_delta(ClusterState.from_snapshot(base), doc)
    for kind, table in got._tables.items():  # conditions known without decoding, nothing hot
        if type(table) is PackedTable:
            assert not table._hot and table.notes.complete(dict.__len__(table)), kind
            assert table.notes.counts(dict.__len__(table)) == Counter(c for _, c in s.conditions(kind)), kind
    assert got.to_snapshot(chain_hash="d") == full
    fork = apply_delta(ClusterState.from_snapshot(base).fork(), compact_upserts(parse_delta(delta)))
    assert fork.to_snapshot(chain_hash="d") == full
    # a format-4 base's unpacked kinds load as plain dicts: the values are decoded there
    plain = ClusterState.from_snapshot(dump(ClusterState.from_snapshot(base), format=FORMAT_4))
    assert any(type(t) is dict for k, t in plain._tables.items() if k in doc["upserts"] and k != "offer")
    assert apply_delta(plain, compact_upserts(parse_delta(delta))).to_snapshot(chain_hash="d") == full
    # and folds on like the state it stands for
    more = list(generate("d2", 1, 3500))[3400:]
    again = ClusterState.from_snapshot(full)
    for e in copy.deepcopy(more):
        apply(got, e)
    for e in copy.deepcopy(more):
        apply(again, e)
    assert got.to_snapshot() == again.to_snapshot()


@pytest.mark.parametrize("damage", [{"upserts": []}, {"upserts": {"pod": []}}, {"upserts": {"pod": {"ns/a": "x"}}},
                                    {"allocation": None}, {"contributions": []}])
def test_a_delta_whose_upserts_or_totals_are_not_objects_is_refused_when_compacted(damage: dict) -> None:
    from kmevents.reducer.delta import FORMAT_2, compact_upserts, dump_delta, parse_delta

    _, s = _based(3000, 40)
    doc = parse_delta(dump_delta(s, format=FORMAT_2)) | damage
    with pytest.raises(SnapshotError, match="damaged delta"):
        compact_upserts(doc)


# -- format 3: the upserted values as canonical bytes in sections ------------------------------


def test_a_format_3_delta_parses_to_what_a_compacted_format_2_delta_is() -> None:
    from collections import Counter

    from kmevents.reducer.delta import _RESTING, FORMAT_2, compact_upserts, dump_delta, parse_delta
    from kmevents.reducer.packed import PackedTable, train

    base, s = _based(3000, 400)
    new = parse_delta(s.to_delta(chain_hash="d"))
    old = compact_upserts(parse_delta(dump_delta(s, "d", format=FORMAT_2)))
    # (format 5: the offers too; format 4 held them in its header)
    assert new["sections"] and "pod" in new["sections"] and "offer" in new["sections"]
    assert new["upserts"] == old["upserts"] and new[_RESTING] == old[_RESTING]
    got = apply_delta(ClusterState.from_snapshot(base), new)
    for kind, table in got._tables.items():  # conditions known without decoding, nothing hot
        if type(table) is PackedTable:
            assert not table._hot and table.notes.complete(dict.__len__(table)), kind
            assert table.notes.counts(dict.__len__(table)) == Counter(c for _, c in s.conditions(kind)), kind
    assert got.to_snapshot(chain_hash="d") == s.to_snapshot(chain_hash="d")
    # onto a table with a dictionary the values rest compressed, as a pack leaves them
    trained = ClusterState.from_snapshot(base)
    assert train(trained._tables["pod"]) and train(trained._tables["task"])
    apply_delta(trained, parse_delta(s.to_delta()))
    for kind in ("pod", "task"):
        table = trained._tables[kind]
        assert not any(v[:1] == b"{" for v in dict.values(table)) and table.values() and not table._hot, kind
        assert {i: table.get(i) for i in new["upserts"][kind]} == {i: s.entity(kind, i) for i in new["upserts"][kind]}
    # compacting it (a reader of one point) leaves its sections' values as they are
    again = compact_upserts(parse_delta(s.to_delta(chain_hash="d")))
    assert again["upserts"] == new["upserts"] and type(again["allocation_changes"]) is bytes
    assert apply_delta(ClusterState.from_snapshot(base), again).to_snapshot(chain_hash="d") == s.to_snapshot(chain_hash="d")


def test_a_format_5_delta_holds_its_offers_in_a_section_and_a_format_4_one_still_applies() -> None:
    """Format 5 writes the offers as every other kind, in a section: applied onto a loaded base
    (whose offers rest as bytes in a lazy table), nothing is decoded and nothing is left to pack
    again; format 4 (offers in the header, decoded) still applies to the same state."""
    from kmevents.reducer.delta import _RESTING, FORMAT_4, compact_upserts, dump_delta, parse_delta
    from kmevents.reducer.packed import NEVER, PackedTable

    base, s = _based(3000, 400)
    five, four = s.to_delta(chain_hash="d"), dump_delta(s, "d", format=FORMAT_4)
    assert (stored_format(five), stored_format(four)) == (FORMAT, FORMAT_4)
    head5, head4 = (orjson.loads(d.split(b"\n")[0]) for d in (five, four))
    assert "offer" in head5["sections"] and "offer" not in head5["upserts"]
    assert "offer" not in head4["sections"] and head4["upserts"]["offer"], "the fold changed offers since its base"
    loaded = ClusterState.from_snapshot(base)
    offers = loaded._tables["offer"]
    assert type(offers) is PackedTable and offers._train_at == NEVER
    assert all(type(v) is bytes for v in dict.values(offers)), "a load decodes no offer"
    got = apply_delta(loaded, parse_delta(five))
    assert not got._tables["offer"]._hot and got._tables["offer"].notes.complete(len(got.offers))
    assert got._agent_offers == s._agent_offers
    want = s.to_snapshot(chain_hash="d")
    assert got.to_snapshot(chain_hash="d") == want
    assert apply_delta(ClusterState.from_snapshot(base), parse_delta(four)).to_snapshot(chain_hash="d") == want
    compacted = compact_upserts(parse_delta(four))  # a reader of one point: the header's offers as bytes too
    assert set(compacted[_RESTING]["offer"]) == set(head4["upserts"]["offer"])
    assert apply_delta(ClusterState.from_snapshot(base), compacted).to_snapshot(chain_hash="d") == want


def test_a_format_4_delta_holds_the_totals_of_the_agents_brought_up_to_date_since_its_base() -> None:
    base, s = _based(3000, 150)
    doc = orjson.loads(s.to_delta().split(b"\n")[0])
    three = orjson.loads(dump_delta(s, format=FORMAT_3).split(b"\n")[0])
    was = orjson.loads(base.split(b"\n")[0])
    assert doc["format"] == FORMAT and "allocation" not in doc and "contributions" not in doc
    changed = set(doc["allocation_changes"])
    assert changed == set(doc["contributions_changes"]) == s._base.aggs
    assert changed and len(changed) < len(s.agents), "a few agents, not all"
    for a in changed:  # theirs now (null: none)
        assert doc["allocation_changes"][a] == three["allocation"].get(a)
        assert doc["contributions_changes"][a] == three["contributions"].get(a)
    for a in set(three["allocation"]) | set(three["contributions"]) | set(was["allocation"]) - changed:
        if a not in changed:  # every other agent's totals are the base's
            assert three["allocation"].get(a) == was["allocation"].get(a), a
            assert three["contributions"].get(a) == was["contributions"].get(a), a
    assert len(s.to_delta()) < len(dump_delta(s, format=FORMAT_3))
    assert apply_delta(ClusterState.from_snapshot(base), s.to_delta()).to_snapshot() == s.to_snapshot()


@pytest.mark.parametrize("damage", [{"allocation_changes": []}, {"allocation_changes": {"a": [1]}},
                                    {"contributions_changes": {"a": [{}]}}, {"contributions_changes": {"a": {}}},
                                    {"contributions_changes": None}])
def test_a_format_4_delta_with_damaged_totals_is_refused_before_the_base_changes(damage: dict) -> None:
    base, s = _based(3000, 60)
    head, nl, rest = s.to_delta().partition(b"\n")
    data = orjson.dumps(orjson.loads(head) | damage, option=orjson.OPT_SORT_KEYS) + nl + rest
    st_ = ClusterState.from_snapshot(base)
    with pytest.raises(SnapshotError, match="damaged delta: .*changes"):
        apply_delta(st_, parse_delta(data))
    assert st_.to_snapshot() == base
    with pytest.raises(SnapshotError, match="damaged delta"):
        apply_delta(ClusterState.from_snapshot(base), compact_upserts(parse_delta(data)))


def test_a_format_3_delta_without_sections_and_an_old_one_still_load() -> None:
    from kmevents.reducer.delta import FORMAT_1, FORMAT_2, dump_delta

    base, s = _based(3000, 0)
    empty = s.to_delta()
    assert orjson.loads(empty.split(b"\n")[0])["sections"] == [] and empty.endswith(b"}\n")
    assert apply_delta(ClusterState.from_snapshot(base), empty).to_snapshot() == base
    base, s = _based(3000, 60)
    for fmt in (FORMAT_2, FORMAT_1):
        assert apply_delta(ClusterState.from_snapshot(base), dump_delta(s, format=fmt)).to_snapshot() == s.to_snapshot()


def _damaged_sections(delta: bytes) -> list[tuple[str, bytes]]:
    head, _, rest = delta.partition(b"\n")
    line, _, values = rest.partition(b"\n")
    doc = orjson.loads(head)
    sec = orjson.loads(line)
    return [
        ("truncated (a truncated delta)", delta[:-200]),
        ("a value's byte changed (CRC)", b"\n".join([head, line, values[:5] + b"X" + values[6:]])),
        ("no section after the header", head + b"\n"),
        ("bytes after the last section", delta + b"x"),
        ("a section of another kind", b"\n".join([orjson.dumps(doc | {"sections": ["task", *doc["sections"][1:]]}),
                                                  rest])),
        ("an offer section", orjson.dumps(doc | {"sections": ["offer"]}) + b"\n"),
        ("a condition code out of range", b"\n".join([head, orjson.dumps(sec | {"conds": [9] * len(sec["ids"])}),
                                                      values])),
        ("sizes and ids apart", b"\n".join([head, orjson.dumps(sec | {"sizes": sec["sizes"][1:]}), values])),
        ("a value that is not an object", b"\n".join(
            [orjson.dumps(doc | {"sections": ["pod"]}),
             orjson.dumps(sec | {"kind": "pod", "ids": ["a"], "conds": [0], "sizes": [3], "crc": zlib.crc32(b"[1]")}),
             b"[1]", b""])),
    ]


@pytest.mark.parametrize("case", range(9))
def test_a_damaged_format_3_delta_is_refused_with_what_is_wrong(case: int) -> None:
    from kmevents.reducer.delta import parse_delta

    base, s = _based(3000, 40)
    what, data = _damaged_sections(s.to_delta())[case]
    st_ = ClusterState.from_snapshot(base)
    with pytest.raises(SnapshotError, match="damaged delta|not JSON") as e:
        apply_delta(st_, parse_delta(data))
    assert st_.to_snapshot() == base, what
    assert "replay from the log" in str(e.value.hint), what
    assert "(a truncated delta)" in str(e.value) or not what.startswith("truncated"), what


def test_a_terminal_index_over_the_plain_limit_is_an_ordered_dict_and_reads_back_the_same() -> None:
    # retention.new_index: a dict up to PLAIN_UP_TO ids (its oldest popped by a scan), an
    # OrderedDict above (pops stay O(1)); snapshots and deltas are the same bytes either way
    from collections import OrderedDict

    from kmevents.reducer.retention import PLAIN_UP_TO, pop_oldest

    big = Retention(max_terminal_tasks=PLAIN_UP_TO + 1, max_terminal_other=3, max_deleted_pods=2, max_closed_offers=2)
    s = ClusterState.empty("d3", big)
    assert type(s._terminal["task"]) is OrderedDict and type(s._terminal["pod"]) is dict
    evs = list(generate("d3", 2, 3200))
    for e in evs[:3000]:
        apply(s, e)
    base = s.to_snapshot()
    loaded = ClusterState.from_snapshot(base)
    assert type(loaded._terminal["task"]) is OrderedDict and type(loaded._terminal["executor"]) is dict
    assert loaded.to_snapshot() == base
    loaded.take_dirty()
    loaded.mark_base()
    for e in evs[3000:]:
        apply(loaded, e)
    rebuilt = apply_delta(ClusterState.from_snapshot(base), loaded.to_delta())
    assert type(rebuilt._terminal["task"]) is OrderedDict and type(rebuilt._terminal["pod"]) is dict
    assert rebuilt.to_snapshot() == loaded.to_snapshot()
    assert list(rebuilt._terminal["pod"]) == list(loaded._terminal["pod"])
    for order in (OrderedDict(a="1", b="2", c="3"), {"a": "1", "b": "2", "c": "3"}):
        order["a"] = order.pop("a")  # re-inserted: the newest
        assert pop_oldest(order) == "b" and list(order) == ["c", "a"]


# -- Remembered: a delta's values kept for the next delta of the same base (verify) ----------


def test_deltas_written_with_remembered_values_are_the_deltas_written_without() -> None:
    from kmevents.reducer.delta import Remembered
    from kmevents.reducer.packed import pack_tables

    evs = list(generate("rm", 4, 6000))
    s = ClusterState.empty("rm", Retention(max_terminal_tasks=50, max_terminal_other=20))
    memo = Remembered()
    checked = 0
    for i, e in enumerate(evs):
        apply(s, e)
        if i == 1500 or i == 4000:  # a new base: the memo starts afresh
            s.take_dirty()
            s.mark_base()
        if s.base_offset is not None and i % 250 == 17:
            if i % 500 == 17:
                pack_tables(s._tables)  # (values the fold only read are packed again: equal bytes)
            assert dump_delta(s, "c", remembered=memo) == dump_delta(s, "c")
            checked += 1
    assert checked > 10


def test_a_remembered_value_is_read_again_once_marked_changed_and_only_then() -> None:
    from kmevents.reducer.delta import Remembered
    from kmevents.reducer.packed import pack, train

    _, s = _based(3000, 400)
    pods = s._tables["pod"]
    assert train(pods)  # frames under a dictionary, as at a large cluster
    memo = Remembered()
    first = dump_delta(s, "c", remembered=memo)
    pid = next(k for kind, k in sorted(s._base.changed) if kind == "pod" and dict.get(pods, k) is not None)
    v = dict(pods[pid])
    v["kmevents_test"] = 1
    pods[pid] = v
    pack(pods)
    # not marked: the delta is what it was (the fold marks every change it makes; verify then
    # finds the stored delta unlike this one and checks it the slow way)
    assert dump_delta(s, "c", remembered=memo) == first
    s._dirty.add(("pod", pid))  # marked: read again, as a delta without memory reads it
    again = dump_delta(s, "c", remembered=memo)
    assert again == dump_delta(s, "c") != first
    assert b'"kmevents_test":1' in again
    del pods[pid]
    s._dirty.add(("pod", pid))  # gone: in "removed", out of the section
    gone = dump_delta(s, "c", remembered=memo)
    assert gone == dump_delta(s, "c") and pid.encode() in gone and b'"kmevents_test":1' not in gone


def test_two_memories_of_one_base_each_start_afresh_when_the_other_took_its_marks() -> None:
    from kmevents.reducer.delta import Remembered

    evs = list(generate("d2", 5, 800))
    _, s = _based(3000, 100)
    one, two = Remembered(), Remembered()
    for i, e in enumerate(evs):
        apply(s, e)
        if i % 100 == 99:
            memo = one if i % 300 == 99 else two
            assert dump_delta(s, "c", remembered=memo) == dump_delta(s, "c")


def test_remembered_values_of_another_base_are_never_used() -> None:
    from kmevents.reducer.delta import Remembered

    _, s = _based(3000, 300)
    memo = Remembered()
    dump_delta(s, "c", remembered=memo)
    was = memo.base
    s.take_dirty()
    s.mark_base()
    for e in list(generate("d2", 2, 200)):
        apply(s, e)
    assert dump_delta(s, "c", remembered=memo) == dump_delta(s, "c")
    assert memo.base is s._base is not was


@SETTINGS
@given(mixed_streams(), st.data(), st.sampled_from([2, 3, 100_000]))
def test_deltas_with_memory_are_the_deltas_without_at_any_points_of_any_stream(evs: list[dict], data: st.DataObject,
                                                                                window: int) -> None:
    from kmevents.reducer.delta import Remembered

    memo = Remembered()
    s = ClusterState.empty("prod-1", Retention(dedupe_window=window, max_terminal_tasks=2, max_terminal_other=2))
    for e in _fresh(evs):
        apply(s, e)
        if data.draw(st.booleans()):
            s.take_dirty()
        act = data.draw(st.sampled_from(["", "", "base", "delta"]))
        if act == "base":
            s.take_dirty()
            s.mark_base()
        elif act == "delta" and s.base_offset is not None:
            assert dump_delta(s, "h", remembered=memo) == dump_delta(s, "h")


@pytest.mark.parametrize("fmt", [FORMAT, FORMAT_3, FORMAT_2])
def test_a_delta_matches_the_states_only_when_its_bytes_are_dump_deltas(fmt: str) -> None:
    """verify's check of a stored delta (matches_delta) compares the parts where they lie, not
    joined: it must say equal exactly when dump_delta's bytes are the stored ones."""
    from kmevents.reducer.delta import matches_delta

    _, s = _based(3000, 600)
    good = dump_delta(s, "h", format=fmt)
    assert matches_delta(good, s, "h", format=fmt)
    assert not matches_delta(good, s, "other", format=fmt)
    lines = good.split(b"\n")
    assert len(lines) >= (6 if fmt != FORMAT_2 else 1)  # (a header, then a line and values a kind)
    cuts = [len(lines[0]) // 2] + [sum(len(x) + 1 for x in lines[:i]) + len(lines[i]) // 2 for i in range(1, len(lines) - 1)]
    bad = [good + b"\n", good[:-1], good + b"x", good[:len(good) // 2]]
    bad += [good[:i] + bytes([good[i] ^ 1]) + good[i + 1:] for i in cuts]
    bad += [good[:i] + good[i + 1:] for i in cuts]
    newlines = [i for i, c in enumerate(good) if c == 0x0A]
    bad += [good[:i] + b" " + good[i + 1:] for i in newlines]
    for b in bad:
        assert b != good
        assert not matches_delta(b, s, "h", format=fmt)


def test_a_delta_onto_a_plain_fork_rests_its_values_uncompressed_and_is_the_same_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kmevents.reducer.packed as packed_module
    from kmevents.reducer.delta import FORMAT_2, compact_upserts, dump_delta, parse_delta
    from kmevents.reducer.packed import PackedTable

    monkeypatch.setattr(packed_module, "TRAIN_AT", 200)  # trained, as at any real size

    base, s = _based(3000, 400)
    delta = dump_delta(s, "d", format=FORMAT_2)
    loaded = ClusterState.from_snapshot(base)
    framed = apply_delta(loaded.fork(), compact_upserts(parse_delta(delta)))
    plain = apply_delta(loaded.fork(plain=True), compact_upserts(parse_delta(delta)))
    # (not compared with s's own snapshot: at this TRAIN_AT s trained its task table after the
    # base, which a delta's path does not do, so its bytes differ the same way for any fork)
    assert plain.to_snapshot(chain_hash="d") == framed.to_snapshot(chain_hash="d")
    upserted = compact_upserts(parse_delta(delta))["upserts"]
    seen = 0
    for kind, table in plain._tables.items():
        if type(table) is not PackedTable or table.codec is None:
            continue
        for id in upserted.get(kind, ()):
            assert dict.__getitem__(table, id)[0] == ord("{"), (kind, id)
            assert dict.__getitem__(framed._tables[kind], id)[0] != ord("{"), (kind, id)
            seen += 1
    assert seen > 0, "the delta upserted values into trained tables"
    for e in copy.deepcopy(list(generate("d2", 1, 3600))[3400:]):  # and both fold on alike
        apply(plain, e)
    for e in copy.deepcopy(list(generate("d2", 1, 3600))[3400:]):
        apply(framed, e)
    assert plain.to_snapshot() == framed.to_snapshot()
