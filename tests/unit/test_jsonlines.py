"""The JSON-lines reader accounts for every line and never stops at a bad one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents import jsonlines


def test_every_kind_of_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'{"a":1}\n\n{nope\n\xff\n' + b'"' + b"x" * 200 + b'"\n{"b":2}\n{"c":')
    lines = list(jsonlines.read(f, max_line_bytes=100))
    assert [(ln.number, ln.obj) for ln in lines if ln.error is None] == [(1, {"a": 1}), (6, {"b": 2})]
    errors = {ln.number: ln.error for ln in lines if ln.error}
    assert errors[3].startswith("not JSON")
    assert errors[4].startswith("not UTF-8")
    assert "over the limit of 100" in errors[5]
    assert errors[7].startswith("truncated last line")


def test_an_empty_file_yields_nothing(tmp_path: Path) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_bytes(b"")
    assert list(jsonlines.read(f)) == []


# ---- keys written twice ----


def test_a_repeated_key_is_an_error_of_its_line_naming_the_key_and_where(tmp_path: Path) -> None:
    f = tmp_path / "dup.jsonl"
    f.write_bytes(b'{"type":"a","x":1}\n{"type":"a","type":"b"}\n{"p":{"s":{"k":1,"k":2}}}\n{"ok":true}\n')
    lines = list(jsonlines.read(f))
    assert [ln.number for ln in lines if ln.error is None] == [1, 4]
    errors = {ln.number: ln.error or "" for ln in lines}
    assert errors[2].startswith("duplicate key 'type' in event at line 2")
    assert "send each key once" in errors[2]
    assert errors[3].startswith("duplicate key 'k' (in p.s) in event at line 3")


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a":1,"a":2}', [((), "a")]),
    (b'{"a" : 1 , "a" :\t2}', [((), "a")]),  # whitespace around colons
    (b'{"t":"a:b","t":"c"}', [((), "t")]),  # the dropped value held a colon
    (b'{"m":"\\u0022:","t":1,"t":2}', [((), "t")]),  # an escaped quote before a colon
    (b'{"a\\\\":1,"a\\\\":2}', [((), "a\\")]),  # a key ending in a backslash
    (b'[{"a":1},{"b":1,"b":2,"b":3}]', [((1,), "b")]),
    (b'{"l":[{"x":1,"x":1}]}', [(("l", 0), "x")]),
    (b'{"a":"x\\":","b":{"a":1}}', []),  # the same key in two objects, a colon after an escaped quote
    (b'{"a":"\\u00e9:"}', []),
])
def test_repeated_keys_are_found_exactly(raw: bytes, expected: list[Any]) -> None:
    assert jsonlines.repeated_keys(raw, orjson.loads(raw)) == expected
    assert jsonlines.repeated_keys(raw.decode(), orjson.loads(raw)) == expected


def test_a_line_nested_deeper_than_an_event_can_be_stored_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "deep.jsonl"
    f.write_bytes(b"[" * 300 + b"]" * 300 + b"\n" + b'{"a":1}\n')
    lines = list(jsonlines.read(f))
    assert "nested more than 254 levels" in (lines[0].error or "") and lines[1].obj == {"a": 1}


class _Obj(list):  # type: ignore[type-arg]
    """An object as written: pairs in order, keys possibly repeated."""


_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                                                   allow_infinity=False)
_keys = st.sampled_from(["a", "b", "type", 'q"uote', "back\\slash", "c:olon", "é", "\u2028"])
_texts = st.text(alphabet=st.sampled_from(list('ab:"\\é \n\t{}')), max_size=6)
_written = st.recursive(
    _scalars | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(_keys, inner), max_size=4).map(_Obj),
    max_leaves=12,
)


def _dump(node: Any, draw_space: Any, ascii_: bool) -> str:
    sp = draw_space
    if isinstance(node, _Obj):
        return "{" + sp + ",".join(f"{json.dumps(k, ensure_ascii=ascii_)}{sp}:{sp}{_dump(v, sp, ascii_)}"
                                   for k, v in node) + sp + "}"
    if isinstance(node, list):
        return "[" + sp + f",{sp}".join(_dump(v, sp, ascii_) for v in node) + "]"
    return json.dumps(node, ensure_ascii=ascii_)


def _expected(node: Any, path: tuple[Any, ...] = ()) -> set[Any]:
    """The oracle: (path, key) for each key counted more than once in an object."""
    if isinstance(node, _Obj):
        counts = Counter(k for k, _ in node)
        return {(path, k) for k, n in counts.items() if n > 1}.union(*(_expected(v, (*path, k)) for k, v in node))
    if isinstance(node, list):
        return set().union(*(_expected(v, (*path, i)) for i, v in enumerate(node)))
    return set()


@settings(max_examples=400, deadline=None)
@given(_written, st.sampled_from(["", " ", "\n  "]), st.booleans())
def test_repeated_keys_are_found_whatever_the_spacing_and_escapes(node: Any, space: str, ascii_: bool) -> None:
    raw = _dump(node, space, ascii_).encode()
    found = jsonlines.repeated_keys(raw, orjson.loads(raw))
    assert len(found) == len(set(found)) and set(found) == _expected(node)
