"""The rules, timers and spontaneous actions that change the simulated world (split in progress)."""

from __future__ import annotations

from kmevents.simulate.scenarios.simulator import WEIGHTS, Simulator
from kmevents.simulate.scenarios.world import SimConfig

__all__ = ["WEIGHTS", "SimConfig", "Simulator"]
