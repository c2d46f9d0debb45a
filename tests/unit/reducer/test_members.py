"""The membership sets as dicts' keys (``state.Members``): what the fold, its deltas and its
snapshots ask of a set, answered alike."""

from __future__ import annotations

import pytest

from kmevents.reducer.fork import _copy
from kmevents.reducer.state import Members


def test_members_answer_as_the_set_of_their_ids() -> None:
    m = Members.of(["b", "a"])
    m.add("c")
    m.add("a")
    m.discard("x")
    m.discard("b")
    assert len(m) == 2 and "a" in m and "b" not in m and sorted(m) == ["a", "c"]
    assert m == {"a", "c"} and {"a", "c"} == m and m != {"a"} and {"a"} != m
    assert m == Members.of(["c", "a"]) and m != Members.of(["a"])
    assert (m, Members()) == ({"a", "c"}, set())  # as an RC's (running, other) pair compares
    assert m - {"a", "z"} == {"c"} and {"a", "z"} - m == {"z"}
    m.update(["d", "e"])
    m.difference_update(["a", "e", "q"])
    assert m == {"c", "d"}
    c = _copy(m)  # a fork's private copy
    assert type(c) is Members and c == m and c is not m
    c.add("f")
    assert "f" not in m
    assert repr(m) == "Members(['c', 'd'])"
    with pytest.raises(TypeError):
        hash(m)
