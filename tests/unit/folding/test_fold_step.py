"""The one fold step (kmevents/folding.py): every bad record is an outcome, never an exception."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents import chain
from kmevents.contract import DecodeError, decode_fast, encode
from kmevents.folding import APPLIED, FAILED, LATER, UNDECODABLE, Fold
from kmevents.reducer import ClusterState
from kmevents.reducer import apply as reducer_apply
from tests.unit.reducer.streams import Log

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def v1_status(status: Any) -> bytes:
    """A v1 ``task.status_updated`` as a raw producer might write it past ingest."""
    return orjson.dumps({"type": "task.status_updated", "schema_version": 1, "cluster": "c1",
                         "occurred_at": "2024-05-01T00:00:00.000000Z", "payload": {"status": status}})


def test_a_v1_status_update_that_cannot_be_upcast_is_undecodable_and_the_next_record_folds() -> None:
    log = Log()
    fold = Fold(ClusterState.empty("c1"), chain.GENESIS, partition=0)
    poison = v1_status(5)
    good = encode(log.agent_added("a1"))
    assert fold.step(0, b"c1", poison) == UNDECODABLE
    assert fold.error is not None and "cannot upcast" in fold.error
    assert fold.head == chain.link(chain.GENESIS, b"c1", poison), "an undecodable record still extends the chain"
    assert fold.step(1, b"c1", good) == APPLIED
    assert fold.state.entity("agent", "a1") is not None
    assert fold.counts == {UNDECODABLE: 1, APPLIED: 1}


@settings(max_examples=300, deadline=None)
@given(payload=json_values, version=json_values | st.integers(0, 3))
def test_decoding_any_older_version_payload_raises_nothing_but_decode_error(payload: Any, version: Any) -> None:
    raw = orjson.dumps({"type": "task.status_updated", "schema_version": version, "payload": payload})
    with contextlib.suppress(DecodeError):
        decode_fast(raw)


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_the_fold_step_returns_an_outcome_for_any_json(doc: Any) -> None:
    fold = Fold(ClusterState.empty("c1"), chain.GENESIS, partition=0)
    assert fold.step(0, b"c1", orjson.dumps(doc)) in (APPLIED, UNDECODABLE, FAILED)


def test_an_event_that_happened_after_the_bound_is_later_and_not_applied() -> None:
    log = Log()
    ev = log.agent_added("a1")
    fold = Fold(ClusterState.empty("c1"), None)
    assert fold.step(0, b"c1", encode(ev), happened_by="2000-01-01T00:00:00.000000Z") == LATER
    assert fold.state.entity("agent", "a1") is None
    assert fold.head is None, "an unknown chain start stays unknown"


def test_an_exception_escaping_the_reducer_is_a_failed_outcome_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import kmevents.folding as folding

    def boom(state: ClusterState, event: Any, **kw: Any) -> list[dict[str, Any]]:
        reducer_apply(state, event, **kw)
        raise RecursionError("deep")

    monkeypatch.setattr(folding, "apply", boom)
    log = Log()
    fold = Fold(ClusterState.empty("c1"), chain.GENESIS, partition=0)
    assert fold.step(0, b"c1", encode(log.agent_added("a1"))) == FAILED
    assert fold.error == "RecursionError: deep"
    assert fold.event is not None and fold.event["type"] == "agent.added"
    assert fold.state.entity("agent", "a1") is not None, "what the reducer changed before raising stays"


def test_annotations_are_counted_by_kind_in_the_counter_given() -> None:
    log = Log()
    ev = log.agent_added("a1")
    fold = Fold(ClusterState.empty("c1"))
    fold.step(0, b"c1", encode(ev))
    fold.step(1, b"c1", encode(ev))  # same dedupe key: a duplicate
    assert fold.annotations["duplicate"] == 1
    assert [a["kind"] for a in fold.anns] == ["duplicate"]


def _link_by_definition(head_hex: str, key: bytes | None, value: bytes | None) -> str:
    """chain.py's rule written out: sha256(head || uint32_be(len(key)) || key || value), hex."""
    import hashlib

    k = key or b""
    return hashlib.sha256(bytes.fromhex(head_hex) + len(k).to_bytes(4, "big") + k + (value or b"")).hexdigest()


@given(st.lists(st.tuples(st.none() | st.binary(max_size=40), st.none() | st.binary(max_size=200)), max_size=12))
@settings(max_examples=150, deadline=None)
def test_the_fold_keeps_the_chain_as_bytes_and_shows_the_same_heads_as_the_rule(records: list[Any]) -> None:
    fold = Fold(ClusterState.empty("c1"), chain.GENESIS, partition=0)
    linked = Fold(ClusterState.empty("c1"), chain.GENESIS, partition=0)
    want = chain.GENESIS
    for i, (key, value) in enumerate(records):
        fold.step(i, key, value)
        linked.link(key, value)  # the chain only (verify's records before its verified point)
        assert chain.link(want, key, value) == _link_by_definition(want, key, value)
        want = _link_by_definition(want, key, value)
        assert fold.head == linked.head == want
    assert linked.state.offset == ClusterState.empty("c1").offset, "link() folds nothing"


def test_a_head_set_on_the_fold_is_where_the_chain_goes_on() -> None:
    fold = Fold(ClusterState.empty("c1"), None, partition=0)
    fold.link(b"k", b"v")
    assert fold.head is None, "an unlinked fold stays unlinked"
    fold.head = chain.link(chain.GENESIS, b"a", b"b")
    fold.link(b"k", b"v")
    assert fold.head == _link_by_definition(_link_by_definition(chain.GENESIS, b"a", b"b"), b"k", b"v")
