"""The CLI commands that read logs fold most of their life: they collect as the fold does."""

from __future__ import annotations

import gc

from kmevents.commands._source import run
from kmevents.reducer.apply import FOLD_GC_THRESHOLDS


def test_a_log_reading_command_runs_with_the_folds_gc_thresholds() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)

        async def thresholds() -> tuple[int, int, int]:
            return gc.get_threshold()

        assert run(thresholds) == FOLD_GC_THRESHOLDS
    finally:
        gc.set_threshold(*saved)
