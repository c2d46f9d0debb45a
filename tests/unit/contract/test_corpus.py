"""Hand-written events shaped like the real sources validate and keep the source's values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kmevents.contract import decode_fast, encode, validate_event

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(CORPUS.glob("*.json"))
_SPLIT = re.compile(r"(?<!\\)\.")


def _get(node: Any, path: str) -> Any:
    for key in _SPLIT.split(path):
        key = key.replace("\\.", ".")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def test_the_corpus_is_not_empty() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file(path: Path) -> None:
    entry = json.loads(path.read_text(encoding="utf-8"))
    results = [validate_event(event) for event in entry["events"]]
    canonical = {"events": [c for c, _ in results]}
    warned = {f"events.{i}.{w.path}" for i, (_, ws) in enumerate(results) for w in ws}
    assert warned == set(entry["warnings"])
    for raw_path, event_path in entry["same"]:
        assert _get(entry["raw"], raw_path) == _get(canonical, event_path), (raw_path, event_path)
    for event_path, value in entry.get("expect", {}).items():
        assert _get(canonical, event_path) == value, event_path
    for event in canonical["events"]:
        assert decode_fast(encode(event)) == event
