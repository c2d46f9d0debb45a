"""The hostile-input corpus (tests/corpus/hostile/): loaders shared by the tests that run it
through every entry point. See tests/corpus/hostile/README.md for what each file holds."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOSTILE = Path(__file__).resolve().parent / "corpus" / "hostile"


@dataclass(frozen=True)
class RawRecord:
    """One record as written raw to the events topic, and what the fold must make of it."""

    name: str
    reproduces: str
    outcome: str  # undecodable | malformed | unknown_type | foreign_cluster | applied | unkeyed
    key: bytes | None
    value: bytes | None


def _bytes(spec: Any, cluster: str) -> bytes | None:
    if spec is None:
        return None
    if "b64" in spec:
        return base64.b64decode(spec["b64"])
    if "text" in spec:
        return spec["text"].replace("CLUSTER", cluster).encode()
    if "json" in spec:
        return json.dumps(spec["json"], separators=(",", ":")).replace("CLUSTER", cluster).encode()
    r = spec["repeat"]
    return (r["prefix"].replace("CLUSTER", cluster) + r["unit"] * r["n"] + r["suffix"]).encode()


def raw_records(cluster: str) -> list[RawRecord]:
    doc = json.loads((HOSTILE / "records.json").read_text())
    out = []
    for e in doc["records"]:
        key = cluster.encode() if "key" not in e else _bytes(e["key"], cluster)
        out.append(RawRecord(e["name"], e["reproduces"], e["outcome"], key, _bytes(e["value"], cluster)))
    return out


@dataclass(frozen=True)
class ProducerLine:
    """One line of a producer's JSON-lines input, and whether ingest must accept it."""

    name: str
    reproduces: str
    valid: bool
    line: bytes


def producer_lines(cluster: str) -> list[ProducerLine]:
    doc = json.loads((HOSTILE / "events.json").read_text())
    out = []
    for e in doc["entries"]:
        if "line_b64" in e:
            raw = base64.b64decode(e["line_b64"])
        elif "line_repeat" in e:
            r = e["line_repeat"]
            raw = (r["prefix"] + r["unit"] * r["n"] + r["suffix"]).replace("CLUSTER", cluster).encode()
        else:
            raw = e["line"].replace("CLUSTER", cluster).encode()
        out.append(ProducerLine(e["name"], e["reproduces"], e["valid"], raw))
    return out
