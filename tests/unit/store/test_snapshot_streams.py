"""A stored snapshot is loaded from a decompressing stream, line by line (issue 17): the whole
canonical snapshot is never in memory at once, and damage anywhere in it is a SnapshotError."""

from __future__ import annotations

import orjson
import pytest

from kmevents.reducer import ClusterState, SnapshotError, apply
from kmevents.simulate import generate
from kmevents.store.snapshots import ChunkStream, compress, load_snapshot, open_stored


def _state() -> ClusterState:
    st = ClusterState.empty("s1")
    for e in generate("s1", 5, 3000):
        apply(st, e)
    return st


def test_a_state_loaded_from_a_compressed_stream_equals_one_loaded_from_bytes() -> None:
    data = _state().to_snapshot(chain_hash="h")
    from_stream = load_snapshot(open_stored(compress(data), "zstd"), freeze=False)
    assert from_stream.to_snapshot(chain_hash="h") == data
    assert load_snapshot(open_stored(data, None), freeze=False).to_snapshot(chain_hash="h") == data


def test_damage_in_the_stream_or_in_a_line_is_a_snapshot_error() -> None:
    data = _state().to_snapshot()
    stored = compress(data)
    with pytest.raises(SnapshotError, match="damaged snapshot bytes"):  # not a zstd frame at all
        load_snapshot(open_stored(b"\x00" * 64 + stored, "zstd"), freeze=False)
    with pytest.raises(SnapshotError, match="line .* is damaged"):  # cut inside a line
        load_snapshot(open_stored(stored[: len(stored) // 2], "zstd"), freeze=False)
    cut = data[: data.index(b"\n", len(data) // 2) + 1]  # cut between two lines
    with pytest.raises(SnapshotError, match="header counts"):
        load_snapshot(open_stored(compress(cut), "zstd"), freeze=False)
    from kmevents.reducer.snapshot import FORMAT_4, dump

    lines = dump(_state(), format=FORMAT_4).split(b"\n")  # format 5 has no entity lines
    lines[5] = lines[5].replace(b"\t", b" ", 1)  # an entity line without its tab
    with pytest.raises(SnapshotError, match="line 6"):
        load_snapshot(open_stored(compress(b"\n".join(lines)), "zstd"), freeze=False)
    with pytest.raises(SnapshotError, match="codec 'lz4'"):
        open_stored(stored, "lz4")


def test_packed_kinds_lines_name_their_condition_and_a_load_counts_them_without_decoding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from kmevents.reducer.conditions import condition
    from kmevents.reducer.packed import PACKED_KINDS, PackedTable
    from kmevents.reducer.snapshot import FORMAT_3, dump

    st = _state()
    data = dump(st, format=FORMAT_3)  # format 4's packed kinds: tests/unit/reducer/test_snapshot_format.py
    lines = data.split(b"\n")
    assert orjson.loads(lines[0])["format"] == FORMAT_3
    heads = [orjson.loads(ln[: ln.index(b"\t")]) for ln in lines[1:] if ln]
    pods = {h[1]: h[2] for h in heads if h[0] == "pod"}
    assert pods == {i: condition(v) for i, v in st.entities("pod")}
    assert all(len(h) == (3 if h[0] in PACKED_KINDS else 2) for h in heads)
    tasks = Counter(condition(v) for _, v in st.entities("task"))
    loaded = load_snapshot(open_stored(compress(data), "zstd"), freeze=True)
    monkeypatch.setattr(PackedTable, "_decode", lambda self, v: pytest.fail("decoded a value to count it"))
    assert Counter(c for _, c in loaded.conditions("pod")) == Counter(pods.values())
    assert Counter(c for _, c in loaded.conditions("task")) == tasks


def test_a_format_2_snapshot_without_conditions_still_loads_and_counts() -> None:
    from kmevents.reducer.snapshot import FORMAT_3, dump
    from tests.unit.reducer.test_snapshot_format import format_2_of

    st = _state()
    data = dump(st, "h", format=FORMAT_3)
    loaded = load_snapshot(open_stored(format_2_of(data), None), freeze=False)
    assert dump(loaded, "h", format=FORMAT_3) == data
    assert dict(loaded.conditions("pod")) == dict(st.conditions("pod"))


@pytest.mark.parametrize("head", [b'["pod","a","Running","x"]', b'["pod",1,"Running"]', b'["pod"]', b'{"pod":"a"}'])
def test_an_entity_line_with_another_head_is_a_snapshot_error(head: bytes) -> None:
    from kmevents.reducer.snapshot import FORMAT_3, dump

    data = dump(_state(), format=FORMAT_3)
    lines = data.split(b"\n")
    n = next(i for i, ln in enumerate(lines) if ln.startswith(b'["pod"'))
    lines[n] = head + lines[n][lines[n].index(b"\t"):]
    with pytest.raises(SnapshotError, match=f"line {n + 1}"):
        load_snapshot(open_stored(b"\n".join(lines), None), freeze=False)


def test_no_gc_moves_what_it_made_to_the_oldest_generation_and_freezes_it_when_objects_are_frozen() -> None:
    import gc

    from kmevents import frozen
    from kmevents.store.snapshots import no_gc

    frozen.unfreeze()  # (an earlier test's load_snapshot may have frozen its objects)
    assert gc.isenabled()
    with no_gc():
        made = [[i] for i in range(5000)]
        assert not gc.isenabled()
    assert gc.isenabled() and not gc.get_freeze_count()
    assert gc.get_count()[0] < 100  # nothing left young for the next allocation's collection
    frozen.freeze()
    try:
        before = gc.get_freeze_count()
        with no_gc():
            made += [[i] for i in range(5000)]
        # a caller's freeze stands, and what no_gc made is frozen with it: left young, the next
        # young collection would walk all of it (a whole loaded state, in the API)
        assert gc.get_freeze_count() >= before + 5000
        assert gc.get_count()[0] < 100
    finally:
        frozen.unfreeze()


def test_kmevents_knows_whether_it_froze_objects_without_counting_them() -> None:
    """``gc.get_freeze_count`` walks every frozen object; ``frozen.any_frozen`` is a flag kept by
    kmevents' own freezes and thaws, and ``to_oldest`` thaws nothing it froze."""
    import gc

    from kmevents import frozen

    frozen.unfreeze()
    try:
        assert not frozen.any_frozen()
        kept = [[i] for i in range(1000)]
        frozen.to_oldest()  # nothing frozen: moved to the oldest generation, not frozen
        assert not frozen.any_frozen() and gc.get_freeze_count() == 0
        frozen.freeze()
        assert frozen.any_frozen() and gc.get_freeze_count() >= 1000
        n = gc.get_freeze_count()
        kept.append([0])
        frozen.to_oldest()  # frozen already: the new objects join them, none is thawed
        assert frozen.any_frozen() and gc.get_freeze_count() >= n + 1
        frozen.unfreeze()
        assert not frozen.any_frozen() and gc.get_freeze_count() == 0
    finally:
        frozen.unfreeze()


def test_a_snapshot_read_fetches_about_what_the_entry_stores() -> None:
    """A fetch brings up to its size from the first chunk's offset (the next snapshots' chunks too),
    and the consumer prefetches as much again: sized to the entry, at most FETCH_BYTES."""
    from kmevents.store.snapshots import FETCH_BYTES, fetch_bytes

    small = {"stored_bytes": 570_250, "chunk_offsets": [7]}
    assert 570_250 < fetch_bytes(small) <= 570_250 + 3 * 64 * 1024
    assert fetch_bytes({"stored_bytes": 52_000_000, "chunk_offsets": list(range(50))}) == FETCH_BYTES
    assert fetch_bytes({"bytes": 1_000, "chunk_offsets": [0]}) >= 64 * 1024  # an entry without a codec
    assert fetch_bytes({"stored_bytes": 0, "chunk_offsets": [0]}) >= 64 * 1024


def test_a_state_loaded_from_its_stored_chunks_equals_one_loaded_from_bytes() -> None:
    data = _state().to_snapshot(chain_hash="h")
    stored = compress(data)
    for size in (1, 7, 4096, len(stored)):
        chunks = [stored[i:i + size] for i in range(0, len(stored), size)]
        st = load_snapshot(open_stored(chunks, "zstd"), freeze=False)
        assert st.to_snapshot(chain_hash="h") == data
    plain = [data[i:i + 1000] for i in range(0, len(data), 1000)]  # codec none: the chunks are the bytes
    assert load_snapshot(open_stored(plain, None), freeze=False).to_snapshot(chain_hash="h") == data
    with pytest.raises(SnapshotError, match="line .* is damaged|damaged snapshot bytes"):  # a chunk missing
        load_snapshot(open_stored([stored[:5000], stored[6000:]], "zstd"), freeze=False)


def test_a_chunk_stream_reads_across_chunks_and_lets_go_of_each_once_read() -> None:
    import io
    import sys

    held = [bytes([c]) * 3 + b"\n" for c in b"abc"]  # fresh objects: their only other owner is the stream

    def refs() -> list[int]:
        return [sys.getrefcount(held[i]) for i in range(3)]

    alone = refs()
    raw = ChunkStream(list(held))
    assert refs() == [n + 1 for n in alone]
    buf = bytearray(3)
    assert raw.readinto(buf) == 3 and bytes(buf) == b"aaa"
    assert raw.readinto(buf) == 1 and bytes(buf[:1]) == b"\n"
    assert raw.readinto(buf) == 3 and bytes(buf) == b"bbb"
    assert refs() == [alone[0], alone[1] + 1, alone[2] + 1]  # the first, read whole: let go of
    assert raw.read() == b"\nccc\n"
    assert refs() == alone
    raw = ChunkStream([b"ab\ncd", b"", b"e\nfgh", b"ij"])
    assert raw.read(4) == b"ab\nc"
    assert raw.read() == b"de\nfghij"
    assert raw.read(5) == b"" and raw.readinto(buf) == 0
    lines = io.BufferedReader(ChunkStream([b"x\ny", b"y\n", b"", b"z"]), buffer_size=2)
    assert list(lines) == [b"x\n", b"yy\n", b"z"]
    lines.close()
    assert lines.closed
    assert ChunkStream([]).read() == b""


def test_a_section_read_part_by_part_loads_alike_and_a_cut_one_is_a_snapshot_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kmevents.reducer.snapshot as snapshot

    data = _state().to_snapshot(chain_hash="h")
    for part in (1, 100, 1 << 20):
        monkeypatch.setattr(snapshot, "_PART_BYTES", part)
        assert load_snapshot(open_stored(data, None), freeze=False).to_snapshot(chain_hash="h") == data
    lines = data.split(b"\n")
    n = max(range(1, len(lines)), key=lambda i: len(lines[i]))  # the largest section's values
    with pytest.raises(SnapshotError, match="ends before its .* bytes of values"):
        load_snapshot(open_stored(b"\n".join(lines[:n]) + b"\n" + lines[n][:-10], None), freeze=False)
    damaged = data.replace(lines[n][:20], lines[n][:19] + bytes([lines[n][19] ^ 1]), 1)
    with pytest.raises(SnapshotError, match="CRC differs|not a zstd frame|not a JSON object"):
        load_snapshot(open_stored(damaged, None), freeze=False)
