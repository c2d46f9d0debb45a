"""Packing state changes under etcd's limits (pure logic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kmevents.processors.batch import REQUEST_MARGIN, Limits, ValueTooLarge, fits, op_size, split

LIMITS = Limits(max_ops=8, max_bytes=REQUEST_MARGIN + 2000)


def test_one_operation_is_always_left_for_the_checkpoint() -> None:
    ops = {f"k{i}".encode(): b"v" for i in range(7)}
    assert fits(ops, LIMITS)
    ops[b"k7"] = b"v"
    assert not fits(ops, LIMITS), "8 entity writes + the checkpoint would be 9 > max_ops"


@given(st.dictionaries(st.binary(min_size=1, max_size=20), st.one_of(st.none(), st.binary(max_size=400)),
                       max_size=60))
def test_split_keeps_every_operation_once_in_order_and_every_chunk_fits(ops: dict) -> None:
    chunks = list(split(ops, LIMITS))
    merged: dict = {}
    for c in chunks:
        assert c and fits(c, LIMITS)
        assert not (set(c) & set(merged))
        merged.update(c)
    assert list(merged.items()) == list(ops.items())


def test_a_value_that_cannot_fit_any_request_is_named_with_its_size() -> None:
    big = b"x" * 3000
    with pytest.raises(ValueTooLarge) as err:
        list(split({b"small": b"v", b"/c/task/huge": big}, LIMITS))
    assert err.value.key == b"/c/task/huge"
    assert err.value.size == op_size(b"/c/task/huge", big)
