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
