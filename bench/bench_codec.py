"""Codec throughput per core: strict validate+encode (ingest) and fast decode (replay).

Events come from a deterministic generator seeded with the published examples
(schemas/examples.json): half of them task status updates (the bulk of a real
k8sm log), the rest spread over every type, each with its own ids, sequence
number and time. A pool of distinct events is cycled to reach the requested
count so memory stays small. The baseline is ``orjson.loads`` of exactly the
bytes that ``decode_fast`` reads, measured in the same run, interleaved with
it; each figure is the best of a few rounds (the machine is shared).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from kmevents.contract import decode_fast, encode, validate_event

EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "schemas" / "examples.json"
POOL = 20_000
ROUNDS = 3


def generate(count: int) -> list[dict[str, Any]]:
    """``count`` distinct producer-form events, half of them status updates."""
    examples = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    status = next(e for e in examples if e["type"] == "task.status_updated")
    others = [e for e in examples if e["type"] != "task.status_updated"]
    states = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED", "TASK_FAILED", "TASK_LOST")
    out: list[dict[str, Any]] = []
    cycle: Iterator[dict[str, Any]] = itertools.cycle(others)
    for i in range(count):
        event = copy.deepcopy(status if i % 2 == 0 else next(cycle))
        event["source"]["seq"] = i
        event["occurred_at"] = 1436367802000 + i * 7  # epoch ms: canonicalised by ingest
        if event["type"] == "task.status_updated":
            s = event["payload"]["status"]
            s["task_id"] = f"pod.{i % 5000:08x}-0001-11e5-9f2c-42010af00002"
            s["state"] = states[i % len(states)]
            s["uuid"] = f"{i:022x}=="
            s["timestamp"] = 1436367802.0 + i * 0.007
        out.append(event)
    return out


def _rate(fn: Callable[[Any], Any], items: list[Any], total: int) -> float:
    """Items per second of ``fn`` over ``total`` calls cycling ``items``."""
    reps, rest = divmod(total, len(items))
    start = time.perf_counter()
    for _ in range(reps):
        for item in items:
            fn(item)
    for item in items[:rest]:
        fn(item)
    return total / (time.perf_counter() - start)


def _strict(event: dict[str, Any]) -> bytes:
    canonical, _warnings = validate_event(event)
    return encode(canonical)


def run(quick: bool) -> list[dict[str, Any]]:
    total = 50_000 if quick else 1_000_000
    pool = generate(min(POOL, total))
    stored = [_strict(e) for e in pool]
    mean_bytes = sum(map(len, stored)) / len(stored)

    strict_best = max(_rate(_strict, pool, total) for _ in range(ROUNDS))
    loads_best = fast_best = 0.0
    for _ in range(ROUNDS):
        loads_best = max(loads_best, _rate(orjson.loads, stored, total))
        fast_best = max(fast_best, _rate(decode_fast, stored, total))

    notes = (f"{total:,} events per figure ({len(pool):,} distinct, cycled), mean {mean_bytes:.0f} bytes "
             f"canonical; half task.status_updated, rest all other types; best of {ROUNDS} rounds, one core")
    return [
        {
            "name": "strict validate+encode",
            "figure": strict_best,
            "unit": "events/s",
            "baseline": "orjson.loads of the same bytes",
            "baseline_figure": loads_best,
            "ratio": strict_best / loads_best,
            "aim": ">= 30k events/s per core",
            "met": strict_best >= 30_000,
            "notes": notes,
        },
        {
            "name": "fast decode (decode_fast)",
            "figure": fast_best,
            "unit": "events/s",
            "baseline": "orjson.loads of the same bytes",
            "baseline_figure": loads_best,
            "ratio": fast_best / loads_best,
            "aim": ">= 0.8 x orjson.loads",
            "met": fast_best / loads_best >= 0.8,
            "notes": notes,
        },
    ]
