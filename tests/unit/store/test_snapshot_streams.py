"""A stored snapshot is loaded from a decompressing stream, line by line (issue 17): the whole
canonical snapshot is never in memory at once, and damage anywhere in it is a SnapshotError."""

from __future__ import annotations

import pytest

from kmevents.reducer import ClusterState, SnapshotError, apply
from kmevents.simulate import generate
from kmevents.store.snapshots import compress, load_snapshot, open_stored


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
    lines = data.split(b"\n")
    lines[5] = lines[5].replace(b"\t", b" ", 1)  # an entity line without its tab
    with pytest.raises(SnapshotError, match="line 6"):
        load_snapshot(open_stored(compress(b"\n".join(lines)), "zstd"), freeze=False)
    with pytest.raises(SnapshotError, match="codec 'lz4'"):
        open_stored(stored, "lz4")
