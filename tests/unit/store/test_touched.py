"""The touched-entity index: block codec, hashes, the worker's accumulator (kmevents/store/touched.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmevents.store import touched

ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
kinds = st.sampled_from(["pod", "task", "agent", "offer", "node", "framework"])


@given(st.sets(st.tuples(kinds, ids), max_size=300), st.sets(ids, max_size=50),
       st.integers(0, 10**12), st.integers(0, 10**6))
def test_a_decoded_block_holds_every_key_and_correlation_id_it_was_encoded_with(
        keys: set[tuple[str, str]], corrs: set[str], first: int, span: int) -> None:
    hashes = [touched.key(k, i) for k, i in keys] + [touched.corr(c) for c in corrs]
    b = touched.decode(touched.encode(first, first + span, 7, "2024-01-01T00:00:00Z", hashes))
    assert (b.first, b.last, b.events, b.max_occurred_at) == (first, first + span, 7, "2024-01-01T00:00:00Z")
    assert all(b.holds(touched.key(k, i)) for k, i in keys)  # no false negative
    assert all(b.holds(touched.corr(c)) for c in corrs)
    assert len(b.hashes) == len(set(hashes))
    assert list(b.hashes) == sorted(b.hashes)


@given(st.sets(st.tuples(kinds, ids), min_size=1, max_size=200), st.tuples(kinds, ids))
def test_a_block_answers_no_for_a_key_it_was_not_given_save_for_a_64_bit_collision(
        keys: set[tuple[str, str]], other: tuple[str, str]) -> None:
    b = touched.decode(touched.encode(0, 10, 1, None, [touched.key(*k) for k in keys]))
    if other not in keys:
        assert not b.holds(touched.key(*other))


def test_keys_names_and_correlation_ids_hash_apart() -> None:
    assert len({touched.key("pod", "a"), touched.name("pod", "a"), touched.corr("a"), touched.key("task", "a"),
                touched.key("pod", "a\0b"), touched.key("pod\0a", "b")}) == 6


def test_a_damaged_block_is_refused_with_a_reason_never_read_as_empty() -> None:
    good = touched.encode(0, 9, 3, None, [1, 2, 3])
    for bad in (b"", b"XXXX" + good[4:], good[:-3], good[:9] + b"!" + good[10:]):
        with pytest.raises(touched.IndexError_):
            touched.decode(bad)


def test_an_entity_gone_by_the_flush_is_still_found_by_the_names_its_id_carries() -> None:
    assert touched.id_tails("ns/web-1") == ["web-1"]
    assert touched.id_tails("fw-1/pod.1234") == ["pod.1234"]
    gone = touched.entity_hashes("pod", "ns/web-1", None)
    assert touched.name("pod", "web-1") in gone and touched.key("pod", "ns/web-1") in gone
    live = touched.entity_hashes("agent", "a-1", {"hostname": "h1", "name": 5, "task_id": None})
    assert live == [touched.key("agent", "a-1"), touched.name("agent", "h1")]
    assert touched.entity_hashes("offer", "o1", {"hostname": "h1"}) == [touched.key("offer", "o1")]


def test_the_accumulator_keeps_a_block_open_past_a_fold_failed_event_until_one_applies() -> None:
    acc = touched.Accumulator()
    acc.event(10, {"correlation_id": "c1", "occurred_at": "2024-01-01T00:00:02Z"}, applied=True)
    acc.event(11, {"occurred_at": "2024-01-01T00:00:01Z"}, applied=True)
    acc.event(12, None, applied=False, failed=True)
    assert not acc.due(3)  # the failed event's dirty marks reach history with the next applied one
    acc.event(13, None, applied=False)  # undecodable: no change
    assert not acc.due(3)
    acc.event(14, {"occurred_at": "2024-01-01T00:00:00Z"}, applied=True)
    assert acc.due(3)
    first, value = acc.close(20)
    b = touched.decode(value)
    assert (first, b.first, b.last, b.events, b.max_occurred_at) == (10, 10, 20, 5, "2024-01-01T00:00:02Z")
    assert b.holds(touched.corr("c1"))
    acc.event(25, {}, applied=True)
    assert acc.first == 21  # the next block starts right after: records in between are other clusters'


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_a_group_gives_back_its_blocks_values_in_order(values: list[bytes]) -> None:
    assert touched.unpack_group(touched.pack_group(values)) == values


def test_a_damaged_group_is_refused_never_read_short() -> None:
    data = touched.pack_group([touched.encode(0, 9, 10, None, [1, 2]), touched.encode(10, 19, 10, None, [3])])
    for bad in (data[:-1], data[:6], b"KMT1" + data[4:], data + b"\x01"):
        with pytest.raises(touched.IndexError_):
            touched.unpack_group(bad)
