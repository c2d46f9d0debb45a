"""The JSON-lines reader accounts for every line and never stops at a bad one."""

from __future__ import annotations

from pathlib import Path

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
