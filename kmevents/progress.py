"""Progress bars for long work (rich), off when not on a terminal or when asked."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._p, self._t = progress, task

    def advance(self, n: float = 1) -> None:
        if self._p is not None:
            self._p.advance(self._t, n)

    def update(self, **kw: Any) -> None:
        if self._p is not None:
            self._p.update(self._t, **kw)


@contextlib.contextmanager
def progress_bar(label: str, *, total: float | None, unit: str = "", disable: bool = False) -> Iterator[_Bar]:
    """A rich progress bar on stderr; a no-op when disabled or stderr is not a terminal."""
    if disable or not sys.stderr.isatty():
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    size_col = DownloadColumn() if unit == "B" else MofNCompleteColumn()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), size_col, TimeElapsedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as p:
        yield _Bar(p, p.add_task(label, total=total))
