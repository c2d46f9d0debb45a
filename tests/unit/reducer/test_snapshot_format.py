"""Snapshot format 4 (kmevents/reducer/snapshot.py): the packed kinds as they rest in memory.

A format-4 snapshot holds each packed table's zstd dictionary and its values as frames of
it, so a load puts them in place without training or compressing. What must hold: it loads
to the same state (entity by entity, canonical bytes) as the format-3 snapshot of that
state; a state dumps the same bytes whether it was folded or loaded, before or after its
tables trained; formats 3, 2 and 1 still load; damage is a SnapshotError that says where."""

from __future__ import annotations

import asyncio
import base64
import io
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import zstandard
from kmevents.replay.verify import _check_snapshot

import kmevents.reducer.packed as packed_module
from kmevents.reducer import ClusterState, SnapshotError, apply
from kmevents.reducer.packed import PACKED_KINDS, Codec
from kmevents.reducer.snapshot import (
    FORMAT,
    FORMAT_1,
    FORMAT_2,
    FORMAT_3,
    FORMAT_4,
    dump,
    load,
    snapshot_entities,
)
from kmevents.simulate import generate
from tests.unit.store.test_snapshot_deltas import InMemory

_SORT = orjson.OPT_SORT_KEYS


@pytest.fixture
def train_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables train at 100 values (the simulator's small cluster then trains pods and tasks)."""
    monkeypatch.setattr(packed_module, "TRAIN_AT", 100)


def _events(n: int) -> list[dict[str, Any]]:
    return list(generate("s1", 5, n))


def _fold(evs: list[dict[str, Any]], st: ClusterState | None = None) -> ClusterState:
    st = st or ClusterState.empty("s1")
    for e in evs:
        apply(st, e)
    return st


def _canonical(st: ClusterState) -> dict[str, dict[str, bytes | None]]:
    """Every entity's canonical bytes, by kind and id."""
    return {kind: {i: st.entity_bytes(kind, i) for i in sorted(dict.keys(t))} for kind, t in st._tables.items()}


@pytest.mark.parametrize("fmt", [FORMAT, FORMAT_4])
def test_format_4_and_format_3_load_to_the_same_state(train_early: None, fmt: str) -> None:
    st = _fold(_events(4000))
    assert st.pods.codec is not None and st.tasks.codec is not None  # type: ignore[attr-defined]
    d4, d3 = dump(st, format=fmt), dump(st, format=FORMAT_3)
    assert orjson.loads(d4[:d4.index(b"\n")])["format"] == fmt
    a, b = load(d4), load(d3)
    want = _canonical(st)
    assert _canonical(a) == want and _canonical(b) == want
    assert dump(a, format=FORMAT_3) == dump(b, format=FORMAT_3) == d3
    assert snapshot_entities(d4) == snapshot_entities(d3)
    for kind in PACKED_KINDS:
        assert dict(a.conditions(kind)) == dict(st.conditions(kind)), kind
    assert len(d4) < len(d3) / 1.5, "the packed values are stored compressed"


def test_a_format_4_load_neither_trains_nor_compresses(train_early: None, monkeypatch: pytest.MonkeyPatch) -> None:
    st = _fold(_events(4000))
    data = dump(st)

    def refuse(*a: Any, **k: Any) -> Any:
        pytest.fail("the load trained or compressed")

    monkeypatch.setattr(zstandard, "train_dictionary", refuse)
    monkeypatch.setattr(Codec, "compress_many", refuse)
    monkeypatch.setattr(Codec, "compress", refuse)
    loaded = load(data)
    assert loaded.pods.codec.raw == st.pods.codec.raw  # type: ignore[attr-defined]
    assert _canonical(loaded) == _canonical(st)


@pytest.mark.parametrize("at", [300, 1500, 4000])
def test_a_loaded_state_dumps_and_folds_on_to_the_bytes_its_fold_gives(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Snapshots before the tables train, while some have and after all have: the loaded
    state trains where the fold does, with the same dictionary, so the bytes stay equal."""
    monkeypatch.setattr(packed_module, "TRAIN_AT", 400)
    evs = _events(6000)
    st = _fold(evs[:at])
    data = st.to_snapshot()
    loaded = load(data)
    assert loaded.to_snapshot() == data
    _fold(evs[at:], st)
    _fold(evs[at:], loaded)
    assert st.pods.codec is not None  # type: ignore[attr-defined]
    assert loaded.to_snapshot() == st.to_snapshot()


def format_2_of(d3: bytes) -> bytes:
    """A format-3 snapshot's bytes as format 2 (the same without the packed kinds' conditions)."""
    header, *rest = d3.split(b"\n")
    v2 = [header.replace(FORMAT_3.encode(), FORMAT_2.encode())]
    for ln in rest:
        if ln:
            tab = ln.index(b"\t")
            v2.append(orjson.dumps(orjson.loads(ln[:tab])[:2]) + ln[tab:])
    return b"\n".join([*v2, b""])


def test_formats_3_2_and_1_still_load(train_early: None) -> None:
    st = _fold(_events(3000))
    want = _canonical(st)
    d3 = dump(st, format=FORMAT_3)
    doc = orjson.loads(d3[:d3.index(b"\n")])
    for k in ("counts", "indexes"):
        del doc[k]
    doc["format"] = FORMAT_1
    doc["entities"] = {k: v for k, v in snapshot_entities(d3).items() if v}
    v1 = orjson.dumps(doc, option=_SORT)
    for name, data in (("3", d3), ("2", format_2_of(d3)), ("1", v1)):
        loaded = load(data)
        assert _canonical(loaded) == want, f"format {name}"
        assert dump(loaded, format=FORMAT_3) == d3, f"format {name}"


def test_a_format_3_snapshot_with_a_multiple_of_4096_values_of_a_kind_loads() -> None:
    """The loader puts a format-3 snapshot's packed values in batches of 4,096; the last batch
    of a trained table was then empty, and compressing no values raised a bare ValueError."""
    st = ClusterState.empty("s1")
    for i in range(4096):
        st.pods[f"ns/p{i:05d}"] = {"metadata": {"name": f"p{i:05d}", "namespace": "ns", "uid": f"u{i}"},
                                   "status": {"phase": "Running", "podIP": f"10.0.{i // 256}.{i % 256}"}}
    data = dump(st, format=FORMAT_3)
    loaded = load(data)
    assert loaded.pods.codec is not None  # type: ignore[attr-defined]
    assert _canonical(loaded) == _canonical(st)


# -- damage -----------------------------------------------------------------------------

def _split(data: bytes) -> tuple[bytes, list[tuple[dict[str, Any], list[bytes]]]]:
    """A format-4 snapshot as the bytes before its sections and each section (line, values)."""
    first = data.index(b'\n{"conds"') + 1
    head, pos, sections = data[:first], first, []
    while pos < len(data):
        nl = data.index(b"\n", pos)
        doc = orjson.loads(data[pos:nl])
        pos = nl + 1
        values = []
        for size in doc["sizes"]:
            values.append(data[pos:pos + size])
            pos += size
        assert data[pos:pos + 1] == b"\n"
        pos += 1
        sections.append((doc, values))
    return head, sections


def _join(head: bytes, sections: list[tuple[dict[str, Any], list[bytes]]], *, crc: bool = True) -> bytes:
    parts = [head]
    for doc, values in sections:
        blob = b"".join(values)
        doc = {**doc, "sizes": [len(v) for v in values]}
        if crc:
            raw = b"" if doc["dict"] is None else base64.b64decode(doc["dict"])
            doc["crc"] = zlib.crc32(blob, zlib.crc32(raw))
        parts += [orjson.dumps(doc, option=_SORT), b"\n", blob, b"\n"]
    return b"".join(parts)


def _section(sections: list[tuple[dict[str, Any], list[bytes]]], kind: str) -> tuple[dict[str, Any], list[bytes]]:
    return next(s for s in sections if s[0]["kind"] == kind)


def _bad_dictionary(head: bytes, secs: list[Any]) -> bytes:
    _section(secs, "pod")[0]["dict"] = base64.b64encode(b"\x37\xa4\x30\xec" + b"not a dictionary" * 8).decode()
    return _join(head, secs)


def _another_tables_dictionary(head: bytes, secs: list[Any]) -> bytes:
    _section(secs, "pod")[0]["dict"] = _section(secs, "task")[0]["dict"]
    return _join(head, secs)


def _a_frame_that_does_not_decompress(head: bytes, secs: list[Any]) -> bytes:
    values = _section(secs, "pod")[1]
    values[0] = values[0][:4] + b"\xff" * (len(values[0]) - 4)
    return _join(head, secs)


def _a_damaged_byte(head: bytes, secs: list[Any]) -> bytes:
    values = _section(secs, "task")[1]
    v = values[7]
    values[7] = v[:10] + bytes([v[10] ^ 0x40]) + v[11:]
    return _join(head, secs, crc=False)


def _not_base64(head: bytes, secs: list[Any]) -> bytes:
    _section(secs, "pod")[0]["dict"] = "not base64!"
    return _join(head, secs, crc=False)


def _truncated_values(head: bytes, secs: list[Any]) -> bytes:
    data = _join(head, secs)
    return data[: data.index(b'"kind":"task"')] + data[data.index(b'"kind":"task"'):][:5000]


def _truncated_section_line(head: bytes, secs: list[Any]) -> bytes:
    data = _join(head, secs)
    return data[: data.index(b'"kind":"task"') + 5]


def _a_second_section_of_a_kind(head: bytes, secs: list[Any]) -> bytes:
    return _join(head, [*secs, _section(secs, "pod")])


def _sizes_that_do_not_match(head: bytes, secs: list[Any]) -> bytes:
    doc, values = _section(secs, "pod")
    data = _join(head, secs)
    line = orjson.dumps({**doc, "sizes": doc["sizes"][:-1]}, option=_SORT)
    return data.replace(orjson.dumps(doc, option=_SORT), line)


def _a_value_not_a_frame(head: bytes, secs: list[Any]) -> bytes:
    values = _section(secs, "pod")[1]
    values[3] = b'{"plain":1}'
    return _join(head, secs)


DAMAGE: dict[str, tuple[Callable[[bytes, list[Any]], bytes], str]] = {
    "bad dictionary": (_bad_dictionary, "'pod' section's dictionary does not decode"),
    "another table's dictionary": (_another_tables_dictionary, "'pod' section's dictionary does not decode"),
    "a frame that does not decompress": (_a_frame_that_does_not_decompress, "'pod' section's dictionary does not decode"),
    "a damaged byte": (_a_damaged_byte, "'task' section's values or dictionary are damaged"),
    "dictionary not base64": (_not_base64, "not base64"),
    "truncated in the values": (_truncated_values, "'task' section ends before"),
    "truncated in a section's line": (_truncated_section_line, "the line does not end (a truncated snapshot)"),
    "a second section of a kind": (_a_second_section_of_a_kind, "a second section of kind 'pod'"),
    "sizes that do not match": (_sizes_that_do_not_match, "not lists of one length"),
    "a value that is not a frame": (_a_value_not_a_frame, "a 'pod' value is not a zstd frame"),
}


@pytest.mark.parametrize("fmt", [FORMAT, FORMAT_4])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_format_4_snapshot_is_a_snapshot_error_that_says_what(train_early: None, damage: str, fmt: str) -> None:
    data = dump(_fold(_events(3000)), format=fmt)
    load(_join(*_split(data)))  # the test's own reassembly loads
    bad, says = DAMAGE[damage]
    broken = bad(*_split(data))
    with pytest.raises(SnapshotError, match="is damaged") as err:
        load(broken)
    assert says in err.value.message


# -- what compares snapshot bytes: verify ---------------------------------------------

def _fold_at(evs: list[dict[str, Any]], marks: dict[int, str]) -> ClusterState:
    st = ClusterState.empty("s1")
    for i, e in enumerate(evs):
        apply(st, e, offset=i)
        if i in marks:
            st.take_dirty()
            if marks[i] == "base":
                st.mark_base(i)
    st.take_dirty()
    return st


def test_verify_finds_nothing_in_a_format_3_snapshot_of_the_folds_state(train_early: None) -> None:
    """A worker's stored format-3 snapshot, or one from a worker restored from one (its
    dictionary trained at its load): other bytes than the fold's format 4, the same state."""
    st = _fold_at(_events(3000), {})
    restored = load(dump(st, format=FORMAT_3))
    assert restored.to_snapshot() != st.to_snapshot() and dump(restored, format=FORMAT_3) == dump(st, format=FORMAT_3)
    entry = {"cluster": "s1", "offset": 2999, "chain": "c", "kind": "full"}
    for stored in (dump(st, "c", format=FORMAT_3), restored.to_snapshot("c")):
        assert asyncio.run(_check_snapshot(InMemory([entry], {2999: stored}), entry, st, "c")) == {}
    wrong = _fold_at(_events(2990), {}).to_snapshot("c")
    assert "content differs" in asyncio.run(_check_snapshot(InMemory([entry], {2999: wrong}), entry, st, "c"))[2999]


def test_verify_finds_nothing_in_a_delta_whose_base_had_not_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base snapshot before the tables trained, the delta after: the state rebuilt from
    them has not trained (no fold ran between), the fold's has; their contents are equal."""
    monkeypatch.setattr(packed_module, "TRAIN_AT", 400)
    evs = _events(3000)
    base = _fold_at(evs[:300], {})
    st = _fold_at(evs, {299: "base"})
    assert base.pods.codec is None and st.pods.codec is not None  # type: ignore[attr-defined]
    full = {"cluster": "s1", "offset": 299, "chain": "c299", "kind": "full"}
    entry = {"cluster": "s1", "offset": 2999, "chain": "c", "kind": "delta", "base": 299}
    store = InMemory([full, entry], {299: base.to_snapshot("c299"), 2999: st.to_delta("c")})
    assert asyncio.run(_check_snapshot(store, entry, st, "c")) == {}


class _Trickle(io.RawIOBase):
    """A raw stream that returns at most 1,000 bytes a read (as a decompressing reader may)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), 1000, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def test_a_format_4_snapshot_loads_from_a_stream_that_returns_short_reads(train_early: None) -> None:
    st = _fold(_events(3000))
    data = st.to_snapshot()
    assert load(_Trickle(data)).to_snapshot() == data  # type: ignore[arg-type]


# -- format 5: every kind a section, unpacked kinds lazy, indexes by position ------------

def test_format_5_round_trips_and_loads_to_the_state_formats_4_and_3_give(train_early: None) -> None:
    st = _fold(_events(4000))
    d5 = dump(st)
    assert orjson.loads(d5[:d5.index(b"\n")])["format"] == FORMAT
    loaded = load(d5)
    assert loaded.to_snapshot() == d5
    assert _canonical(loaded) == _canonical(st)
    for fmt in (FORMAT_4, FORMAT_3):
        assert dump(loaded, format=fmt) == dump(st, format=fmt) == dump(load(dump(st, format=fmt)), format=fmt), fmt
    for name in ("_pods_by_ns", "_rc_members", "_svc_members", "_rc_sel", "_svc_sel", "_task_keys", "_agent_offers"):
        assert getattr(loaded, name) == getattr(st, name), name
    for kind in st.kinds:
        assert dict(loaded.conditions(kind)) == dict(st.conditions(kind)), kind
    assert snapshot_entities(d5) == snapshot_entities(dump(st, format=FORMAT_3))


def test_a_format_5_load_keeps_the_agents_and_offers_bytes_until_one_is_read() -> None:
    st = _fold(_events(3000))
    loaded = load(dump(st))
    aid = next(iter(st.agents))
    assert all(type(v) is bytes for v in dict.values(loaded.agents))
    assert loaded.entity("agent", aid) == st.entity("agent", aid)
    assert type(dict.__getitem__(loaded.agents, aid)) is dict  # kept: the fold mutates it in place
    assert sum(type(v) is bytes for v in dict.values(loaded.agents)) == len(st.agents) - 1
    # offers too: the outstanding-offer index is rebuilt from the section's conditions, decoding
    # only the outstanding ones, and none kept
    assert all(type(v) is bytes for v in dict.values(loaded.offers))
    assert loaded._agent_offers == st._agent_offers and any(st._agent_offers)


def test_a_fork_of_a_format_5_state_folds_on_as_the_fold_does() -> None:
    evs = _events(4000)
    st = _fold(evs[:2500])
    base = load(dump(st)).freeze()
    fork = base.fork()
    _fold(evs[2500:], st)
    _fold(evs[2500:], fork)
    assert fork.to_snapshot() == st.to_snapshot()
    assert base.to_snapshot() == load(dump(_fold(evs[:2500]))).to_snapshot()  # the base did not change


def _header_doc(data: bytes) -> tuple[dict[str, Any], bytes]:
    nl = data.index(b"\n")
    return orjson.loads(data[:nl]), data[nl:]


def _with_header(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc, rest = _header_doc(data)
    change(doc)
    return orjson.dumps(doc, option=_SORT) + rest


def _a_position_past_the_pods(doc: dict[str, Any]) -> None:
    ns = next(iter(doc["indexes"]["pods_by_ns"]))
    doc["indexes"]["pods_by_ns"][ns].append(10**6)


def _a_negative_position(doc: dict[str, Any]) -> None:
    ns = next(iter(doc["indexes"]["pods_by_ns"]))
    doc["indexes"]["pods_by_ns"][ns][0] = -1


def _no_selector_index(doc: dict[str, Any]) -> None:
    del doc["indexes"]["rc_sel"]


def _an_anchor_not_a_pair(doc: dict[str, Any]) -> None:
    ns = next(iter(doc["indexes"]["rc_sel"]))
    doc["indexes"]["rc_sel"][ns][0][0] = 7


HEADER_DAMAGE = {
    "a position past the pods": (_a_position_past_the_pods, "IndexError"),
    "a negative position": (_a_negative_position, "a negative position"),
    "no selector index": (_no_selector_index, "KeyError: 'rc_sel'"),
    "an anchor not a pair": (_an_anchor_not_a_pair, "TypeError"),
}


@pytest.mark.parametrize("damage", sorted(HEADER_DAMAGE))
def test_a_format_5_header_with_damaged_indexes_is_a_snapshot_error(damage: str) -> None:
    data = dump(_fold(_events(3000)))
    change, says = HEADER_DAMAGE[damage]
    with pytest.raises(SnapshotError, match="header's indexes are damaged") as err:
        load(_with_header(data, change))
    assert says in err.value.message


def test_a_format_5_section_with_a_condition_code_past_its_names_is_a_snapshot_error() -> None:
    head, secs = _split(dump(_fold(_events(3000))))
    doc, _ = _section(secs, "agent")
    doc["conds"][0] = len(doc["names"])
    with pytest.raises(SnapshotError, match="is damaged") as err:
        load(_join(head, secs))
    assert "a condition code of the 'agent' section is not one of its" in err.value.message


def test_a_format_5_snapshot_without_a_kinds_section_is_a_snapshot_error() -> None:
    head, secs = _split(dump(_fold(_events(3000))))
    without = [s for s in secs if s[0]["kind"] != "role"]
    with pytest.raises(SnapshotError, match="its header counts"):
        load(_join(head, without))

    def uncount(doc: dict[str, Any]) -> None:
        del doc["counts"]["role"]
    with pytest.raises(SnapshotError, match="sections of 12 kinds, not of all 13"):
        load(_join(_with_header(head, uncount), without))


def test_an_index_naming_an_id_its_table_lacks_round_trips() -> None:
    """A fold never leaves one, but a format-5 header keeps such an id as itself."""
    st = _fold(_events(3000))
    ns = next(iter(st._pods_by_ns))
    st._pods_by_ns[ns].add("ns/not-a-pod")
    loaded = load(dump(st))
    assert loaded._pods_by_ns == st._pods_by_ns
    assert dump(loaded) == dump(st)


def test_equal_selector_anchors_write_one_json() -> None:
    """``{"a": 1}`` and ``{"a": true}`` file under one anchor, whichever came first: the
    snapshot writes it the same (as the number) either way."""
    from kmevents.reducer.membership import sel_add

    a, b = ClusterState.empty("s1"), ClusterState.empty("s1")
    sel_add(a._rc_sel, "ns", "ns/r1", {"app": True})
    sel_add(a._rc_sel, "ns", "ns/r2", {"app": 1})
    sel_add(b._rc_sel, "ns", "ns/r2", {"app": 1})
    sel_add(b._rc_sel, "ns", "ns/r1", {"app": True})
    assert dump(a) == dump(b)
    assert load(dump(a))._rc_sel == {"ns": {("app", 1): {"ns/r1", "ns/r2"}}}


def test_a_selector_files_under_one_anchor_whatever_its_keys_order() -> None:
    """An event's selector has its keys in the event's order, one read back from canonical
    bytes (a packed service, a loaded RC) sorted: both must file, and unfile, alike."""
    from kmevents.reducer.membership import sel_add, sel_anchor, sel_remove

    assert sel_anchor({"tier": "web", "app": "fe"}) == sel_anchor({"app": "fe", "tier": "web"}) == ("app", "fe")
    index: dict[str, Any] = {}
    sel_add(index, "ns", "ns/r", {"tier": "web", "app": "fe"})
    sel_remove(index, "ns", "ns/r", {"app": "fe", "tier": "web"})
    assert index == {}


def test_verify_compares_a_stored_format_4_snapshot_with_the_folds_format_4_bytes(
        train_early: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written before format 5: the fold is dumped in format 4 and the bytes are equal,
    so nothing is loaded or parsed."""
    import kmevents.replay.verify as verify

    st = _fold_at(_events(3000), {})
    entry = {"cluster": "s1", "offset": 2999, "chain": "c", "kind": "full"}
    stored = dump(st, "c", format=FORMAT_4)

    def refuse(data: bytes) -> Any:
        pytest.fail("bytes equal to the fold's format 4 were parsed")

    real = verify.snapshot_document
    monkeypatch.setattr(verify, "snapshot_document", refuse)
    assert asyncio.run(_check_snapshot(InMemory([entry], {2999: stored}), entry, st, "c")) == {}
    monkeypatch.setattr(verify, "snapshot_document", real)
    wrong = dump(_fold_at(_events(2990), {}), "c", format=FORMAT_4)
    assert "content differs" in asyncio.run(_check_snapshot(InMemory([entry], {2999: wrong}), entry, st, "c"))[2999]


def test_a_table_at_its_training_size_but_untrained_loads_untrained_and_trains_where_its_fold_does(
        train_early: None) -> None:
    """The fold trains a table between events, at its next packing (every 1,024 events): a
    snapshot taken in between holds it untrained past its size. A load used to train it at
    once, on other samples: the restored state's later snapshots then differed in bytes from
    its fold's (equal content; verify took the slow way for each)."""
    evs = _events(1500)  # the fold packs (and may train) every 1,024 events (retention.AGE_CHECK_EVERY)
    st = _fold_at(evs[:300], {})
    assert st.pods.codec is None and len(st.pods) >= packed_module.TRAIN_AT  # type: ignore[attr-defined]
    data = st.to_snapshot("c")
    restored = load(data)
    assert restored.pods.codec is None  # type: ignore[attr-defined]
    assert restored.to_snapshot("c") == data
    for i, e in enumerate(evs[300:], start=300):
        apply(st, e, offset=i)
        apply(restored, dict(e), offset=i)
    assert st.pods.codec is not None  # type: ignore[attr-defined]
    assert restored.to_snapshot() == st.to_snapshot()
