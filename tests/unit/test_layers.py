"""The import layers hold, and the check fails on a planted back-edge (issue 15)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint(*plant: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(ROOT / "scripts" / "lint_imports.py")]
    for p in plant:
        args += ["--plant", p]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept() -> None:
    out = _lint()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


@pytest.mark.parametrize("plant, broken", [
    ("kmevents.reducer.state:import kmevents.commands", "imports point down the layers"),
    ("kmevents.store.checkpoint:from kmevents.replay import engine", "imports point down the layers"),
    ("kmevents.processors.derive:from kmevents.replay import verify", "imports point down the layers"),
    ("kmevents.contract.codec:import aiokafka", "the fold and the contract import no I/O client"),
    ("kmevents.replay.engine:import aetcd", "only the adapters import the Kafka and etcd clients"),
    ("kmevents.monitor.faust_rules:import faust", "Faust lives behind one module"),
], ids=["reducer->commands", "store->replay", "processors->replay", "contract->aiokafka", "replay->aetcd",
        "monitor->faust"])
def test_a_planted_back_edge_fails_the_check(plant: str, broken: str) -> None:
    out = _lint(plant)
    assert out.returncode != 0
    assert f"{broken} BROKEN" in out.stdout, out.stdout[-3000:]
