"""What the API's kept touched-entity indexes hold (replay/history_cache.py): never an index with a
hole, never more block-hash bytes than the budget (the least recently used let go first), never
one index larger than the budget."""

from __future__ import annotations

from array import array
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from kmevents.replay.history_cache import IndexCache, _Kept, _whole

from kmevents.store.touched import Block


def _kept(hashes: int) -> _Kept:
    return _Kept(0.0, [Block(0, 999, hashes=array("Q", range(hashes)))], {})


def test_an_index_with_a_hole_is_not_whole() -> None:
    assert _whole([Block(0, 9), Block(10, 19), Block(15, 29)])  # (an overlap after a crash is whole)
    assert not _whole([Block(0, 9), Block(20, 29)])  # a group's blocks left out for want of its chunks
    assert _whole([])


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 120)), max_size=40), st.integers(0, 200))
def test_the_kept_indexes_stay_within_the_budget_and_the_least_recently_used_go_first(
        uses: list[tuple[str, int]], budget_hashes: int) -> None:
    cache = IndexCache(SimpleNamespace(api=SimpleNamespace(history_index_cache_mib=0)), None,
                       budget=budget_hashes * 8)
    order: list[str] = []  # the clusters by last use, the model
    sizes: dict[str, int] = {}
    for cluster, hashes in uses:
        cache._keep(cluster, _kept(hashes))
        if cluster in order:
            order.remove(cluster)
        sizes.pop(cluster, None)
        if hashes <= budget_hashes:
            while order and sum(sizes.values()) + hashes > budget_hashes:
                sizes.pop(order.pop(0))
            order.append(cluster)
            sizes[cluster] = hashes
        assert list(cache._kept) == order
        assert cache.kept_bytes == 8 * sum(sizes.values()) <= cache.budget
