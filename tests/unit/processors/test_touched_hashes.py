"""The touched-entity index's hashes: the worker's one-piece builders give exactly the
streamed recipe's values (blocks already stored are read with the same needles)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kmevents.store import touched


@given(st.text(max_size=12), st.text(max_size=80))
def test_key_name_and_corr_equal_the_length_prefixed_streamed_blake2b(kind: str, part: str) -> None:
    assert touched.key(kind, part) == touched._h(b"k\0", kind, part)
    assert touched.name(kind, part) == touched._h(b"n\0", kind, part)
    assert touched.corr(part) == touched._h(b"c\0", part)


def test_parts_are_length_prefixed_so_moving_a_separator_changes_the_hash() -> None:
    assert touched.key("a\0b", "c") != touched.key("a", "b\0c")
    assert touched.key("pod", "ns/a") < 2**64


def test_the_worker_hashes_its_batchs_changed_entities_without_waking_resting_ones() -> None:
    from typing import Any, cast

    from kmevents.processors.derive import PartitionDeriver

    from kmevents.reducer import ClusterState, apply
    from kmevents.reducer.packed import PACKED_KINDS, pack_tables
    from kmevents.settings import Settings
    from kmevents.simulate import generate
    from kmevents.store.touched import Accumulator, entity_hashes

    s = ClusterState.empty("c1")
    evs = list(generate("c1", 3, 3000, agents=4))
    for i, ev in enumerate(evs[:1500]):
        apply(s, ev, partition=0, offset=i)
    s.take_dirty()
    for i, ev in enumerate(evs[1500:], start=1500):
        apply(s, ev, partition=0, offset=i)
    pack_tables(s._tables)  # the batch ends with its entities at rest
    want: set[int] = set()
    d = PartitionDeriver(Settings(), cast(Any, None), 0, worker_id="w", touched_every_events=200)
    d.touched["c1"] = Accumulator()
    pending: dict[bytes, Any] = {}
    d._take_dirty("c1", s, pending)
    assert pending and all(s._tables[k].hot_count == 0 for k in PACKED_KINDS)
    for ref in pending.values():
        _, kind, id = ref
        want.update(entity_hashes(kind, id, s.entity_read(kind, id)))
    assert set(d.touched["c1"].hashes) == want
