"""Pure parts of the query API: continue tokens refuse anything forged or garbled with
``BadToken`` (never another exception, never a revision etcd cannot hold), and a
namespace-limited token's view of a history holds only what it may read directly."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmevents.api.filters import namespace_of_id, visible_history
from kmevents.api.reads import BadToken, decode_token, encode_token

QUERY = "state=active|at=None|known_at=None|offset=None"


def _forge(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def _decoded_or_refused(token: str) -> None:
    try:
        rev, after = decode_token(token, "pods", QUERY)
    except BadToken as exc:
        assert str(exc).startswith("continue token")
        return
    assert type(rev) is int and 0 < rev < 2**63 and type(after) is str


def test_a_token_round_trips_and_another_lists_token_is_refused() -> None:
    t = encode_token(4711, "pods", "prod/web-1", QUERY)
    assert decode_token(t, "pods", QUERY) == (4711, "prod/web-1")
    with pytest.raises(BadToken, match="another list"):
        decode_token(t, "tasks", QUERY)


@pytest.mark.parametrize("rev", [2**63, 2**64 + 5, 10**30, 0, -1, "12", True, 1.5, None, [1]])
def test_a_forged_revision_etcd_cannot_hold_is_refused(rev: object) -> None:
    with pytest.raises(BadToken):
        decode_token(_forge({"r": rev, "k": "pods", "a": "x", "q": QUERY}), "pods", QUERY)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


@given(st.text(max_size=200))
def test_any_text_is_decoded_or_refused_with_bad_token(token: str) -> None:
    _decoded_or_refused(token)


@given(json_values, json_values, json_values)
def test_any_forged_document_is_decoded_or_refused_with_bad_token(rev: object, after: object, k: object) -> None:
    _decoded_or_refused(_forge({"r": rev, "k": "pods" if k is None else k, "a": after, "q": QUERY}))
    _decoded_or_refused(_forge(rev))


def test_an_id_names_its_namespace_only_where_the_kind_puts_it_there() -> None:
    assert namespace_of_id("pod", "prod/web-1") == "prod"
    assert namespace_of_id("service", "kube-system/dns") == "kube-system"
    assert namespace_of_id("namespace", "prod") == "prod"
    assert namespace_of_id("task", "pod.1234") is None
    assert namespace_of_id("pod", "no-slash") is None


def _entry(offset: int, results: dict[str, object], visible: bool = False) -> dict[str, object]:
    return {"offset": offset, "type": "t", "results": results, "_visible": visible}


def test_a_limited_history_keeps_the_entities_of_its_namespaces_and_drops_the_rest() -> None:
    task = {"id": "t1", "pod": "prod/web-1", "offer_id": "O1", "state": "TASK_RUNNING"}
    entries = [
        _entry(1, {"offer/O1": {"condition": "outstanding", "value": {"id": "O1", "hostname": "agent-7"}}}),
        _entry(2, {"offer/O1": {"condition": "accepted", "value": None},
                   "task/t1": {"condition": "TASK_STAGING", "value": task}}),
        _entry(3, {"pod/prod/web-1": {"condition": "Running", "value": {"namespace": "prod", "name": "web-1"}}}),
        _entry(4, {}, visible=True),  # an event naming prod, that changed nothing related
        _entry(5, {}, visible=False),  # an event of another namespace, tied by a correlation id
        _entry(6, {"task/t1": {"condition": "Deleted", "value": None}}),  # deleted: keeps its namespace
        _entry(7, {"pod/other/db-0": {"condition": "Running", "value": {"namespace": "other", "name": "db-0"}}}),
    ]
    related = ["offer/O1", "pod/other/db-0", "pod/prod/web-1", "task/t1"]
    shown, rel = visible_history(frozenset({"prod"}), [dict(e) for e in entries], related)
    assert [e["offset"] for e in shown] == [2, 3, 4, 6]
    assert [sorted(e["results"]) for e in shown] == [["task/t1"], ["pod/prod/web-1"], [], ["task/t1"]]
    assert rel == ["pod/prod/web-1", "task/t1"]
    assert all("_visible" not in e for e in shown)
    everything, rel_all = visible_history(None, [dict(e) for e in entries], related)
    assert len(everything) == 7 and rel_all == related and all("_visible" not in e for e in everything)
