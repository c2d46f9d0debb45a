"""``--format json`` output of every command (``_common.emit_json``)."""

from __future__ import annotations

import contextlib
import io
import json

from kmevents.commands._common import emit_json


def test_output_is_indented_sorted_utf8_json(capsysbinary) -> None:
    emit_json({"b": 1, "a": {"name": "café-ü", 3: "int key"}, "s": {"x"}})
    raw = capsysbinary.readouterr().out
    assert "café-ü".encode() in raw  # UTF-8, not \\u escapes
    doc = json.loads(raw)
    assert list(doc) == ["a", "b", "s"] and doc["a"]["3"] == "int key" and doc["s"] == "{'x'}"
    assert raw.startswith(b'{\n  "a"') and raw.endswith(b"}\n")


def test_an_integer_beyond_64_bits_falls_back_to_the_standard_library(capsys) -> None:
    emit_json({"big": 2**70, "name": "é"})
    out = capsys.readouterr().out
    assert json.loads(out) == {"big": 2**70, "name": "é"} and "é" in out


def test_a_text_only_stdout_gets_the_same_document() -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        emit_json({"k": [1, 2]})
    assert json.loads(buf.getvalue()) == {"k": [1, 2]} and buf.getvalue().endswith("\n")
